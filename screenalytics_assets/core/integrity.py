"""Integrity of stored artifacts: each file's sha256 and row count, recorded at write time.

When an asset's files are written, a small manifest ``{asset}.manifest.json`` is written beside
them (after them)::

    {"format": 1, "asset": "tracks", "ep_id": "rhobh-s05e14", "image_files": 0,
     "files": {"tracks.jsonl": {"sha256": "<hex>", "bytes": 48213, "rows": 37}, ...}}

Whoever reads the files later (the IO manager, the asset checks, ``run --stale-only``, the review
commands) measures them again and compares: any changed byte changes the sha256, and the row count
says how much was lost (a dropped line, a file cut mid-line). Image files (JPEG crops and
thumbnails) are counted, not digested: nothing downstream reads them.

Rows are: non-empty lines of ``.jsonl``; data lines of ``.csv`` (header excluded); the first
dimension of ``.npy`` (from its header, the array is not read); the members of a ``.zip`` archive
(from its central directory: the aligned faces, one JPEG per face); for the JSON files with one list
of records, the length of that list (a top-level list, or the key in :data:`JSON_ROWS`); ``None``
for anything else.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import ArtifactIntegrityError

MANIFEST_FORMAT = 1
MANIFEST_SUFFIX = ".manifest.json"

JSON_ROWS = {
    "shots.json": "shots", "tracks_meta.json": "shots", "faces_embeddings.json": "face_id",
    "identities.json": "identities", "cluster_centroids.json": "centroids",
    "track_metrics.json": "tracks", "cast_links.json": "identities", "screentime.json": "people",
}
"""JSON artifact file -> the top-level key holding its records (a list or an object)."""

_CHUNK = 1 << 20

LARGE_SUFFIXES = (".npy", ".zip")
"""Artifact files that can be large (arrays, archives of images): hashed from a local copy in
chunks, never held whole in memory."""


def is_large(name: str) -> bool:
    """Whether an artifact file is one of the large kinds (:data:`LARGE_SUFFIXES`)."""
    return name.endswith(LARGE_SUFFIXES)


def manifest_name(asset: str) -> str:
    """File name of an asset's integrity manifest: ``{asset}.manifest.json``."""
    return f"{asset}{MANIFEST_SUFFIX}"


def rebuild_command(ep_id: str) -> str:
    """The command that re-materializes an episode's damaged or missing artifacts."""
    return f"screenalytics run --ep-id {ep_id} --stale-only"


@dataclass(frozen=True)
class FileDigest:
    """What is recorded about one artifact file.

    Attributes:
        sha256: hex digest of its bytes. bytes: its size. rows: records it holds (see the module
            docstring), or ``None`` where a file has no rows.
    """

    sha256: str
    bytes: int
    rows: int | None

    def to_dict(self) -> dict:
        return asdict(self)


def _npy_rows(f) -> int | None:
    try:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) \
            else np.lib.format.read_array_header_2_0
        shape, _, _ = read(f)
    except (ValueError, OSError, SyntaxError):
        return None
    return int(shape[0]) if shape else 1


def _zip_rows(f) -> int | None:
    try:
        with zipfile.ZipFile(f) as z:
            return len(z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None


def count_rows(name: str, data: bytes) -> int | None:
    """Rows of an artifact file's content (see the module docstring); ``None`` when the file
    kind has no rows or the content does not parse."""
    if name.endswith(".jsonl"):
        return sum(1 for line in data.splitlines() if line.strip())
    if name.endswith(".csv"):
        return max(0, sum(1 for line in data.splitlines() if line.strip()) - 1)
    if name.endswith(".npy"):
        return _npy_rows(io.BytesIO(data))
    if name.endswith(".zip"):
        return _zip_rows(io.BytesIO(data))
    if name.endswith(".json"):
        try:
            doc = json.loads(data)
            return len(doc) if isinstance(doc, list) else len(doc[JSON_ROWS[name]])
        except (ValueError, KeyError, TypeError):
            return None
    return None


def digest_bytes(name: str, data: bytes) -> FileDigest:
    """sha256, size and rows of an artifact file's content."""
    return FileDigest(hashlib.sha256(data).hexdigest(), len(data), count_rows(name, data))


def digest_file(name: str, path: str | os.PathLike) -> FileDigest:
    """sha256, size and rows of an artifact file on disk, read in 1 MiB chunks (large ``.npy``
    arrays and ``.zip`` archives are never held whole); other kinds are small and counted from
    their bytes."""
    path = Path(path)
    if not is_large(name):
        return digest_bytes(name, path.read_bytes())
    h = hashlib.sha256()
    with open(path, "rb") as f:
        rows = _npy_rows(f) if name.endswith(".npy") else _zip_rows(f)
        f.seek(0)
        while block := f.read(_CHUNK):
            h.update(block)
    return FileDigest(h.hexdigest(), path.stat().st_size, rows)


def manifest_bytes(asset: str, ep_id: str, digests: Mapping[str, FileDigest],
                   image_files: int = 0) -> bytes:
    """The manifest of one asset's files, as JSON bytes."""
    doc = {"format": MANIFEST_FORMAT, "asset": asset, "ep_id": ep_id, "image_files": image_files,
           "files": {n: d.to_dict() for n, d in sorted(digests.items())}}
    return (json.dumps(doc, indent=2) + "\n").encode()


def parse_manifest(data: bytes, where: str) -> dict[str, FileDigest]:
    """``file name -> FileDigest`` recorded in a manifest.

    Raises:
        ArtifactIntegrityError: the manifest itself is damaged (names ``where``).
    """
    try:
        doc = json.loads(data)
        files = {n: FileDigest(str(d["sha256"]), int(d["bytes"]),
                               None if d["rows"] is None else int(d["rows"]))
                 for n, d in doc["files"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArtifactIntegrityError(f"integrity manifest {where} is damaged ({exc})") from exc
    if doc.get("format") != MANIFEST_FORMAT or not files:
        raise ArtifactIntegrityError(f"integrity manifest {where} is damaged (no files)")
    return files


def compare(recorded: FileDigest, found: FileDigest | None) -> str | None:
    """Why a file does not match what was recorded about it, or ``None`` when it does."""
    if found is None:
        return "missing"
    if found.sha256 == recorded.sha256:
        return None
    parts = []
    if recorded.rows is not None and found.rows != recorded.rows:
        parts.append(f"{'unreadable' if found.rows is None else found.rows} rows, "
                     f"{recorded.rows} recorded")
    if found.bytes != recorded.bytes:
        parts.append(f"{found.bytes} bytes, {recorded.bytes} recorded")
    parts.append("sha256 differs from the one recorded")
    return "; ".join(parts)
