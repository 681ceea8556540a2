"""The Dagster resource of the S3 backend, built on dagster-aws's ``S3Resource``."""

# No ``from __future__ import annotations`` here: Dagster resolves the nested resource's type
# from the annotation at class creation.

from dagster_aws.s3 import S3Resource
from pydantic import Field

from .dagster_storage import StorageResource
from .s3_storage import S3Store


class S3StorageResource(StorageResource):
    """Videos and artifacts in an S3 (or S3-compatible) bucket.

    ``s3`` carries the endpoint and region; credentials come from the usual AWS chain
    (environment, shared config/credentials files, instance or container role), never from
    this configuration.
    """

    s3: S3Resource
    bucket: str = Field(description="bucket holding videos/ and artifacts/")
    prefix: str = Field(default="", description="optional key prefix inside the bucket")
    cache_dir: str = Field(default="data/cache",
                           description="local folder for downloaded videos (by ETag)")

    def store(self) -> S3Store:
        return S3Store(self.s3.get_client(), self.bucket, self.prefix, self.cache_dir)
