"""The reviewer's edits file of an episode (``identity_edits.json`` in its manifests), in storage."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

from screenalytics_assets.core.cast_links import IdentityLink
from screenalytics_assets.core.ep_id import parse_ep_id, validate_ep_id
from screenalytics_assets.core.facebank import all_cast_ids
from screenalytics_assets.core.review import (
    EDITS_FILE,
    ReviewError,
    ReviewResult,
    apply_edits,
    dump_edits,
    edits_version,
    make_edit,
    parse_edits,
)

from .facebank import read_facebank
from .integrity import load_artifact
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


def current_review(store: ArtifactStore, ep_id: str,
                   spans: dict[int, tuple[int, int]] | None = None
                   ) -> tuple[ReviewResult, dict[int, tuple[int, int]], list[str] | None]:
    """The episode as a reviewer sees it now: the stored identities with the automatic links
    (from ``cast_links.json`` when materialized) and the stored edits applied.

    ``spans`` (track id -> (start_frame, end_frame)) saves reading ``tracks.jsonl`` when the
    caller has them for the current tracks.

    Returns:
        ``(review result, track spans, cast ids of the facebank or None)``.

    Raises:
        ArtifactError: identities or tracks were not materialized. ArtifactIntegrityError: their
            files are damaged (the message names them and the command that rebuilds them).
        ReviewError: bad edits file.
    """
    ep_id = validate_ep_id(ep_id)
    identities = _clustered(store, ep_id)
    if spans is None:
        tracks = load_artifact(store, ep_id, "tracks")
        spans = {t.track_id: (t.start_frame, t.end_frame) for t in tracks.tracks}
    fb = read_facebank(store, parse_ep_id(ep_id).show)
    cast_ids = all_cast_ids(fb) if fb else None
    edits = parse_edits(read_edits(store, ep_id), store.file_uri(ep_id, EDITS_FILE))
    result = apply_edits(identities, _auto_links(store, ep_id), edits, spans, cast_ids)
    return result, spans, cast_ids


class StaleEditError(ReviewError):
    """The edits file changed since the reviewer read it (another tab, the CLI): nothing was
    written; reload and redo the edit."""


@contextmanager
def edits_lock(store: ArtifactStore, ep_id: str) -> Iterator[None]:
    """Hold the episode's edits lock: an exclusive ``flock`` on a file beside the store's spool
    folder, so the CLI and the review app on this machine never interleave a read-modify-write
    of ``identity_edits.json``."""
    folder = store.spool_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"edits-{validate_ep_id(ep_id)}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _check_version(raw: bytes | None, expected: str | None, ep_id: str) -> None:
    if expected is not None and edits_version(raw) != expected:
        raise StaleEditError(
            f"the edits of {ep_id} changed since this page was loaded (version {expected}, now "
            f"{edits_version(raw)}: another tab or the command line edited it); nothing was "
            "changed. Reload the page and redo the edit.")


def add_edits(store: ArtifactStore, ep_id: str, ops: list[tuple[str, dict]],
              expected_version: str | None = None) -> tuple[list[dict], bytes]:
    """Append review edits (``(op, args)`` pairs, see ``core.review.make_edit``) to the
    episode's edits file in one atomic write, each built against the episode as the edits
    before it left it. All or nothing: an invalid edit writes none.

    Args:
        expected_version: the edits version (``core.review.edits_version``) the caller's view
            was built from; when given and the file has changed since, nothing is written.

    Returns:
        ``(the new edits, the new file bytes)``.

    Raises:
        StaleEditError: ``expected_version`` is not the current version.
        ReviewError: an edit names an unknown identity or track, or bad values.
    """
    with edits_lock(store, ep_id):
        raw = read_edits(store, ep_id)
        _check_version(raw, expected_version, ep_id)
        current, spans, cast_ids = current_review(store, ep_id)
        auto = _auto_links(store, ep_id)
        identities = _clustered(store, ep_id)
        edits = parse_edits(raw)
        new = []
        for op, args in ops:
            edit = make_edit(op, current, spans, cast_ids=cast_ids, **args)
            new.append(edit)
            current = apply_edits(identities, auto, edits + new, spans, cast_ids)
        data = dump_edits(ep_id, edits + new)
        write_edits(store, ep_id, data)
    return new, data


def undo_last_edit(store: ArtifactStore, ep_id: str, expected_version: str | None = None
                   ) -> tuple[dict, bytes | None]:
    """Remove the last edit of the episode (the file is deleted when none is left).

    Returns:
        ``(the removed edit, the new file bytes or None)``.

    Raises:
        StaleEditError: see :func:`add_edits`. ReviewError: there is no edit to undo.
    """
    with edits_lock(store, ep_id):
        raw = read_edits(store, ep_id)
        _check_version(raw, expected_version, ep_id)
        edits = parse_edits(raw, store.file_uri(ep_id, EDITS_FILE))
        if not edits:
            raise ReviewError(f"{ep_id} has no review edit to undo")
        if len(edits) == 1:
            clear_edits(store, ep_id)
            return edits[0], None
        data = dump_edits(ep_id, edits[:-1])
        write_edits(store, ep_id, data)
    return edits[-1], data


def _auto_links(store: ArtifactStore, ep_id: str) -> list[IdentityLink]:
    if store.exists(store.artifact_key(ep_id, "cast_links.json")):
        return load_artifact(store, ep_id, "cast_links").auto
    return []


def _clustered(store: ArtifactStore, ep_id: str) -> list[tuple[int, list[int]]]:
    ids = load_artifact(store, ep_id, "identities")
    return [(i.identity_id, i.track_ids) for i in ids.identities]


def add_edit(store: ArtifactStore, ep_id: str, op: str, expected_version: str | None = None,
             **args) -> tuple[dict, bytes]:
    """Append one review edit (see ``core.review.make_edit`` for ``op`` and ``args``) to the
    episode's edits file, written atomically. Nothing is written when the edit is invalid.

    Returns:
        ``(the edit, the new file bytes)``.

    Raises:
        StaleEditError: see :func:`add_edits`.
        ReviewError: the edit names an unknown identity or track, or bad values.
    """
    new, data = add_edits(store, ep_id, [(op, args)], expected_version)
    return new[0], data


def episode_review_queue(store: ArtifactStore, ep_id: str, cluster_thresh: float):
    """The episode's review queue now (``core.review_queue.review_queue``): the reviewed
    identities of :func:`current_review`, their centroids from the embeddings artifact.

    Raises:
        ArtifactError: identities, tracks or embeddings were never materialized.
    """
    from screenalytics_assets.core.review_queue import identity_centroids, review_queue

    current, spans, _ = current_review(store, ep_id)
    emb = load_artifact(store, ep_id, "embeddings")
    centroids = identity_centroids(current.identities, emb.track_id, emb.vectors)
    return review_queue(current.identities, centroids, spans, cluster_thresh)
