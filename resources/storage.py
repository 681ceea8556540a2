"""Where videos and artifacts live: a local data root (the embedded default) or an S3 bucket.

Local layout under the data root::

    videos/{ep_id}/episode.mp4
    manifests/{ep_id}/<artifact file>
    frames/{ep_id}/crops/... and frames/{ep_id}/thumbs/...

Writes are atomic: each file is written to a temporary name in the same folder, flushed, then
renamed over the final name, so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

from screenalytics_assets.core.ep_id import validate_ep_id
from screenalytics_assets.core.errors import ArtifactError

IMAGE_PREFIXES = ("crops/", "thumbs/")
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + fsync + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ArtifactStore(ABC):
    """Storage of one backend. File names are those of ``core.artifacts`` (``tracks.jsonl``,
    ``crops/track_0001/face_00001.jpg``...)."""

    @abstractmethod
    def write_files(self, ep_id: str, files: dict[str, bytes]) -> list[str]:
        """Write every file atomically; return their URIs. Image files are written first and
        manifest files last, so a manifest never names a crop that is not there yet."""

    @abstractmethod
    def read_file(self, ep_id: str, name: str) -> bytes:
        """Bytes of one artifact file. Raises ArtifactError when it is missing."""

    @abstractmethod
    def uri(self, ep_id: str, name: str) -> str:
        """Where ``name`` is stored (a path or ``s3://`` URI)."""

    @abstractmethod
    def video_path(self, ep_id: str) -> Path:
        """A local path to the episode's video (downloaded into a cache for remote stores).

        Raises:
            VideoError: there is no uploaded video for ``ep_id``.
        """

    @abstractmethod
    def video_version(self, ep_id: str) -> str | None:
        """Content version of the uploaded video (sha256 or ETag), None when there is none."""


class LocalStore(ArtifactStore):
    """Artifacts under a local data root (see the module docstring for the layout)."""

    def __init__(self, data_root: str | os.PathLike) -> None:
        self.root = Path(data_root).expanduser().resolve()

    def path(self, ep_id: str, name: str) -> Path:
        """Local path of an artifact file, after validating ``ep_id`` and ``name``."""
        validate_ep_id(ep_id)
        if name.startswith("/") or ".." in Path(name).parts:
            raise ArtifactError(f"invalid artifact file name {name!r}")
        if name.startswith(IMAGE_PREFIXES):
            return self.root / "frames" / ep_id / name
        return self.root / "manifests" / ep_id / name

    def manifest_dir(self, ep_id: str) -> Path:
        return self.root / "manifests" / validate_ep_id(ep_id)

    def video_key_path(self, ep_id: str) -> Path:
        """``<root>/videos/{ep_id}/episode.mp4``."""
        return self.root / "videos" / validate_ep_id(ep_id) / "episode.mp4"

    def write_files(self, ep_id: str, files: dict[str, bytes]) -> list[str]:
        names = sorted(files, key=lambda n: (not n.startswith(IMAGE_PREFIXES), n))
        for name in names:
            atomic_write(self.path(ep_id, name), files[name])
        return [self.uri(ep_id, n) for n in names]

    def read_file(self, ep_id: str, name: str) -> bytes:
        p = self.path(ep_id, name)
        try:
            return p.read_bytes()
        except FileNotFoundError as exc:
            raise ArtifactError(
                f"artifact {p} is missing; materialize its asset for partition {ep_id!r} first"
            ) from exc

    def uri(self, ep_id: str, name: str) -> str:
        return str(self.path(ep_id, name))

    def video_path(self, ep_id: str) -> Path:
        from screenalytics_assets.core.errors import VideoError

        p = self.video_key_path(ep_id)
        if not p.is_file():
            raise VideoError(
                f"no video for episode {ep_id!r} at {p}; add it with "
                f"`screenalytics run VIDEO --ep-id {ep_id}` or copy it there")
        return p

    def video_version(self, ep_id: str) -> str | None:
        p = self.video_key_path(ep_id)
        return file_sha256(p) if p.is_file() else None

    def put_video(self, ep_id: str, source: str | os.PathLike) -> Path:
        """Copy a video into ``videos/{ep_id}/episode.mp4`` atomically; returns the new path."""
        dest = self.video_key_path(ep_id)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".episode.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
