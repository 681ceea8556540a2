"""Dagster assets. Thin: read inputs, call ``screenalytics_assets.core``, attach metadata."""
