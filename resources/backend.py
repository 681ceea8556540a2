"""Which storage backend is in use: one setting, ``STORAGE_BACKEND=local|s3``.

Environment:
    STORAGE_BACKEND: ``local`` (default, the embedded data root) or ``s3``.
    SCREENALYTICS_DATA_ROOT: the local data root (also holds the S3 backend's video cache).
    SCREENALYTICS_S3_BUCKET: bucket (required for ``s3``).
    SCREENALYTICS_S3_PREFIX: optional key prefix inside the bucket.
    SCREENALYTICS_S3_ENDPOINT_URL or AWS_ENDPOINT_URL: endpoint of an S3-compatible store (MinIO).
    AWS_REGION (or AWS_DEFAULT_REGION): region.
    SCREENALYTICS_CACHE_DIR: video cache folder (default ``<data root>/cache``).
Credentials are never read here: boto3 takes them from the usual AWS chain.
"""

from __future__ import annotations

import os

from screenalytics_assets.core.errors import ScreenalyticsError

from .dagster_storage import LocalStorageResource, StorageResource, data_root_from_env

BACKENDS = ("local", "s3")


class StorageConfigError(ScreenalyticsError):
    """The storage settings in the environment are incomplete or unknown."""


def backend_from_env() -> str:
    """``STORAGE_BACKEND`` (lower-cased), default ``local``.

    Raises:
        StorageConfigError: an unknown backend name.
    """
    name = os.environ.get("STORAGE_BACKEND", "local").strip().lower() or "local"
    if name not in BACKENDS:
        raise StorageConfigError(
            f"STORAGE_BACKEND={name!r} is unknown; set it to 'local' or 's3'")
    return name


def storage_from_env(data_root: str | None = None) -> StorageResource:
    """The storage resource the environment asks for (see the module docstring).

    Raises:
        StorageConfigError: ``STORAGE_BACKEND=s3`` without ``SCREENALYTICS_S3_BUCKET``.
    """
    root = data_root or data_root_from_env()
    if backend_from_env() == "local":
        return LocalStorageResource(data_root=root)
    from dagster_aws.s3 import S3Resource

    from .s3_dagster import S3StorageResource

    bucket = os.environ.get("SCREENALYTICS_S3_BUCKET", "").strip()
    if not bucket:
        raise StorageConfigError(
            "STORAGE_BACKEND=s3 needs a bucket: set SCREENALYTICS_S3_BUCKET (and "
            "AWS_ENDPOINT_URL for an S3-compatible store such as MinIO)")
    endpoint = (os.environ.get("SCREENALYTICS_S3_ENDPOINT_URL")
                or os.environ.get("AWS_ENDPOINT_URL") or None)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    return S3StorageResource(
        s3=S3Resource(endpoint_url=endpoint, region_name=region),
        bucket=bucket, prefix=os.environ.get("SCREENALYTICS_S3_PREFIX", ""),
        cache_dir=os.environ.get("SCREENALYTICS_CACHE_DIR") or os.path.join(root, "cache"))
