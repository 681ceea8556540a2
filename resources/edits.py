"""The reviewer's edits file of an episode (``identity_edits.json`` in its manifests), in storage."""

from __future__ import annotations

from screenalytics_assets.core.artifacts import CODECS
from screenalytics_assets.core.cast_links import IdentityLink
from screenalytics_assets.core.ep_id import parse_ep_id, validate_ep_id
from screenalytics_assets.core.facebank import all_cast_ids
from screenalytics_assets.core.review import (
    EDITS_FILE,
    ReviewResult,
    apply_edits,
    dump_edits,
    make_edit,
    parse_edits,
)

from .facebank import read_facebank
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


def clear_edits(store: ArtifactStore, ep_id: str) -> bool:
    """Delete the episode's edits file; returns whether there was one."""
    return store.delete_keys([store.artifact_key(ep_id, EDITS_FILE)]) > 0


def current_review(store: ArtifactStore, ep_id: str
                   ) -> tuple[ReviewResult, dict[int, tuple[int, int]], list[str] | None]:
    """The episode as a reviewer sees it now: the stored identities with the automatic links
    (from ``cast_links.json`` when materialized) and the stored edits applied.

    Returns:
        ``(review result, track spans, cast ids of the facebank or None)``.

    Raises:
        ArtifactError: identities or tracks were not materialized. ReviewError: bad edits file.
    """
    ep_id = validate_ep_id(ep_id)

    def read(name):
        return store.read_file(ep_id, name)

    identities = CODECS["identities"].load(read)
    tracks = CODECS["tracks"].load(read)
    spans = {t.track_id: (t.start_frame, t.end_frame) for t in tracks.tracks}
    auto: list[IdentityLink] = []
    if store.exists(store.artifact_key(ep_id, "cast_links.json")):
        auto = CODECS["cast_links"].load(read).auto
    fb = read_facebank(store, parse_ep_id(ep_id).show)
    cast_ids = all_cast_ids(fb) if fb else None
    edits = parse_edits(read_edits(store, ep_id), store.file_uri(ep_id, EDITS_FILE))
    result = apply_edits([(i.identity_id, i.track_ids) for i in identities.identities], auto,
                         edits, spans, cast_ids)
    return result, spans, cast_ids


def add_edit(store: ArtifactStore, ep_id: str, op: str, **args) -> tuple[dict, bytes]:
    """Append one review edit (see ``core.review.make_edit`` for ``op`` and ``args``) to the
    episode's edits file, written atomically. Nothing is written when the edit is invalid.

    Returns:
        ``(the edit, the new file bytes)``.

    Raises:
        ReviewError: the edit names an unknown identity or track, or bad values.
    """
    current, spans, cast_ids = current_review(store, ep_id)
    edit = make_edit(op, current, spans, cast_ids=cast_ids, **args)
    edits = parse_edits(read_edits(store, ep_id)) + [edit]
    data = dump_edits(ep_id, edits)
    write_edits(store, ep_id, data)
    return edit, data
