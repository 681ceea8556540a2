"""Screenalytics: screen time per person in TV episodes, as a Dagster asset graph."""
