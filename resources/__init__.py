"""Dagster resources: model loading, artifact storage (local folder or S3) and IO managers."""
