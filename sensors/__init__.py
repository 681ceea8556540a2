"""Sensors that start episode runs when a video is uploaded (S3 bucket or local folder)."""
