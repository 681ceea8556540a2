"""Dagster resources for artifact storage (local data root; the S3 store plugs in the same way)."""

from __future__ import annotations

import os

from dagster import ConfigurableResource

from .storage import ArtifactStore, LocalStore

DEFAULT_DATA_ROOT = "data"


def data_root_from_env() -> str:
    """``SCREENALYTICS_DATA_ROOT`` or ``./data``, as an absolute path."""
    return os.path.abspath(os.environ.get("SCREENALYTICS_DATA_ROOT", DEFAULT_DATA_ROOT))


class StorageResource(ConfigurableResource):
    """Base of the storage resources: gives the :class:`ArtifactStore` assets and IO managers use."""

    def store(self) -> ArtifactStore:
        raise NotImplementedError


class LocalStorageResource(StorageResource):
    """Videos and artifacts under a local folder (``data_root``)."""

    data_root: str = DEFAULT_DATA_ROOT

    def store(self) -> LocalStore:
        return LocalStore(self.data_root)
