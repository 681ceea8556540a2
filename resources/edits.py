"""The reviewer's edits file of an episode (``identity_edits.json`` in its manifests), in storage."""

from __future__ import annotations

from screenalytics_assets.core.review import EDITS_FILE

from .storage import ArtifactStore


def read_edits(store: ArtifactStore, ep_id: str) -> bytes | None:
    """Bytes of the episode's edits file, or ``None`` when there is none."""
    key = store.artifact_key(ep_id, EDITS_FILE)
    return store.get(key) if store.exists(key) else None


def write_edits(store: ArtifactStore, ep_id: str, data: bytes) -> str:
    """Replace the edits file atomically (the store's ``put``); returns its URI."""
    key = store.artifact_key(ep_id, EDITS_FILE)
    store.put(key, data)
    return store.uri(key)
