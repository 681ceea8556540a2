"""Where videos and artifacts live: a local data root (the embedded default) or an S3 bucket.

Every backend stores objects under string keys. The key layout of the local backend, under the
data root::

    videos/{ep_id}/episode.mp4
    manifests/{ep_id}/<artifact file>
    frames/{ep_id}/crops/... and frames/{ep_id}/thumbs/...
    manifests/{show}-s{ss}/<season file>        (season roll-up)
    cache/...                                   (local caches, e.g. downloaded videos)
    facebank/{show}/{cast_id}/<photo>

The S3 backend (``resources.s3_storage.S3Store``) has the same interface with the design map's
bucket layout.

Writes are atomic: a file is written to a temporary name in the same folder, flushed, then renamed
over the final name, so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from screenalytics_assets.core.artifacts import Reader, SpoolFile
from screenalytics_assets.core.ep_id import validate_ep_id, validate_show
from screenalytics_assets.core.errors import ArtifactError, VideoError

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


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_name(name: str) -> str:
    """Reject artifact file names that could escape their folder (absolute, ``..``, empty)."""
    if not name or name.startswith("/") or "\\" in name or ".." in name.split("/"):
        raise ArtifactError(f"invalid artifact file name {name!r}")
    return name


@dataclass(frozen=True)
class VideoObject:
    """An object found under ``videos/``.

    Attributes:
        key: its key (``videos/rhobh-s05e14/episode.mp4``, or anything else found there).
        stamp: a cheap change token: the ETag (S3) or ``{size}-{mtime_ns}`` (local).
        size: bytes.
        modified: when a local file was last written, seconds since the epoch; 0 where an object
            only appears once complete (S3).
    """

    key: str
    stamp: str
    size: int
    modified: float = 0.0


class ArtifactStore(ABC):
    """Storage of one backend, addressed by keys (``manifests/rhobh-s05e14/tracks.jsonl``).

    Subclasses give the key layout (:meth:`artifact_key`, :meth:`video_key`) and the object
    operations (:meth:`put`, :meth:`get`, :meth:`list_keys`, :meth:`delete_keys`, :meth:`uri`);
    the episode-level methods are built on them.
    """

    # ------------------------------------------------------------------ layout
    @abstractmethod
    def artifact_key(self, ep_id: str, name: str) -> str:
        """Key of artifact file ``name`` (``tracks.jsonl``, ``crops/track_0001/...``)."""

    def video_key(self, ep_id: str) -> str:
        """Key of the episode's uploaded video: ``videos/{ep_id}/episode.mp4``."""
        return f"videos/{validate_ep_id(ep_id)}/episode.mp4"

    @abstractmethod
    def episode_prefixes(self, ep_id: str) -> list[str]:
        """Key prefixes (ending in ``/``) holding every artifact of the episode (not its video)."""

    @abstractmethod
    def season_key(self, show: str, season: int, name: str) -> str:
        """Key of season roll-up file ``name`` of ``show`` season ``season``."""

    @abstractmethod
    def cache_dirs(self, ep_id: str) -> list[Path]:
        """Local cache folders of the episode (removed by ``screenalytics delete``)."""

    @staticmethod
    def _check_season(show: str, season: int) -> None:
        validate_show(show)
        if not isinstance(season, int) or not 0 <= season <= 99:
            raise ArtifactError(f"invalid season {season!r}: expected a number from 0 to 99")

    def track_image_keys(self, ep_id: str, track_id: int) -> list[str]:
        """Keys of a track's JPEG face crops and its thumbnail (empty when crops were not saved)."""
        keys = set(self.list_keys(self.artifact_key(ep_id, f"crops/track_{track_id:04d}/")))
        thumb = self.artifact_key(ep_id, f"thumbs/track_{track_id:04d}.jpg")
        if self.exists(thumb):
            keys.add(thumb)
        return sorted(keys)

    def facebank_prefix(self, show: str) -> str:
        """Prefix of a show's cast photos: ``facebank/{show}/`` (then ``{cast_id}/{photo}``)."""
        return f"facebank/{show}/"

    # ------------------------------------------------------------------ objects
    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key`` atomically (readers never see a partial object)."""

    def put_file(self, key: str, path: Path) -> None:
        """Store a local file's content at ``key`` atomically, then delete the file (a
        :class:`SpoolFile`). The default reads it whole; backends stream it."""
        self.put(key, Path(path).read_bytes())
        Path(path).unlink(missing_ok=True)

    @abstractmethod
    def local_file(self, ep_id: str, name: str) -> Path:
        """A local path holding artifact file ``name`` (downloaded first by remote stores), for
        memory-mapping large arrays. Raises ArtifactError when it is missing."""

    @abstractmethod
    def spool_dir(self) -> Path:
        """Local folder for :class:`SpoolFile` temporaries (on the data root's file system for
        the local store, so moving one into place is a rename)."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Bytes at ``key``. Raises ArtifactError when there is no such object."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix``, sorted."""

    @abstractmethod
    def delete_keys(self, keys: list[str]) -> int:
        """Delete these keys; returns how many existed."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """Where ``key`` is stored (a path or ``s3://`` URI)."""

    def share_url(self, key: str, expires_s: int = 3600) -> str:
        """A link a user can open: a presigned URL for S3, the file path for local storage."""
        return self.uri(key)

    # ------------------------------------------------------------------ videos
    @abstractmethod
    def video_path(self, ep_id: str) -> Path:
        """A local path to the episode's video (downloaded into a cache for remote stores).

        Raises:
            VideoError: there is no uploaded video for ``ep_id``.
        """

    @abstractmethod
    def video_version(self, ep_id: str) -> str | None:
        """Content version of the uploaded video (sha256 or ETag); None when there is none."""

    @abstractmethod
    def list_videos(self) -> list[VideoObject]:
        """Every object under ``videos/`` (valid uploads or not), sorted by key."""

    def video_versions(self, ep_ids: list[str]) -> dict[str, str]:
        """``ep_id -> video_version(ep_id)`` for the episodes that have a video; stores override
        it with a cheaper batch (one listing of the bucket, cached local digests)."""
        versions = {ep_id: self.video_version(ep_id) for ep_id in ep_ids}
        return {ep_id: v for ep_id, v in versions.items() if v is not None}

    # ------------------------------------------------------------------ episode artifacts
    def write_files(self, ep_id: str, files: dict[str, bytes | SpoolFile]) -> list[str]:
        """Write an asset's files; image files first and manifest files last, so a manifest never
        names a crop that is not there yet. Returns their URIs."""
        names = sorted(files, key=lambda n: (not n.startswith(IMAGE_PREFIXES), n))
        keys = [self.artifact_key(ep_id, n) for n in names]
        for name, key in zip(names, keys):
            value = files[name]
            if isinstance(value, SpoolFile):
                self.put_file(key, value.path)
            else:
                self.put(key, value)
        return [self.uri(k) for k in keys]

    def read_file(self, ep_id: str, name: str) -> bytes:
        """Bytes of one artifact file.

        Raises:
            ArtifactError: the file is missing (its asset was not materialized).
        """
        key = self.artifact_key(ep_id, name)
        try:
            return self.get(key)
        except ArtifactError as exc:
            raise ArtifactError(
                f"artifact {self.uri(key)} is missing; materialize its asset for partition "
                f"{ep_id!r} first") from exc

    def file_uri(self, ep_id: str, name: str) -> str:
        return self.uri(self.artifact_key(ep_id, name))

    def reader(self, ep_id: str) -> Reader:
        """A reader of the episode's artifact files as they are (unverified: see
        ``resources.integrity.verified_reader``): ``read(name) -> bytes`` and
        ``read.path(name)``, a local copy for large files. Both raise ArtifactError when the
        file is missing."""
        def read(name: str) -> bytes:
            return self.read_file(ep_id, name)

        read.path = lambda name: self.local_file(ep_id, name)
        return read


class LocalStore(ArtifactStore):
    """Objects as files under a local data root (see the module docstring for the layout)."""

    def __init__(self, data_root: str | os.PathLike) -> None:
        self.root = Path(data_root).expanduser().resolve()

    def artifact_key(self, ep_id: str, name: str) -> str:
        validate_ep_id(ep_id)
        check_name(name)
        if name.startswith(IMAGE_PREFIXES):
            return f"frames/{ep_id}/{name}"
        return f"manifests/{ep_id}/{name}"

    def episode_prefixes(self, ep_id: str) -> list[str]:
        validate_ep_id(ep_id)
        return [f"manifests/{ep_id}/", f"frames/{ep_id}/"]

    def season_key(self, show: str, season: int, name: str) -> str:
        self._check_season(show, season)
        return f"manifests/{show}-s{season:02d}/{check_name(name)}"

    def cache_dirs(self, ep_id: str) -> list[Path]:
        return [self.root / "cache" / "videos" / validate_ep_id(ep_id)]

    def video_version_cache(self, ep_id: str) -> Path:
        """The cached digest of the episode's video (see :meth:`video_version`)."""
        return self.root / "cache" / "video_versions" / f"{validate_ep_id(ep_id)}.json"

    def list_videos(self) -> list[VideoObject]:
        out = []
        for key in self.list_keys("videos/"):
            st = self.path(key).stat()
            out.append(VideoObject(key, f"{st.st_size}-{st.st_mtime_ns}", st.st_size,
                                   st.st_mtime))
        return out

    def path(self, key: str) -> Path:
        """Local path of a key (keys never leave the data root)."""
        return self.root / check_name(key)

    def put(self, key: str, data: bytes) -> None:
        atomic_write(self.path(key), data)

    def put_file(self, key: str, path: Path) -> None:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
        try:
            shutil.move(str(path), tmp)  # a rename when the spool is on the same file system
            os.chmod(tmp, 0o666 & ~_UMASK)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def local_file(self, ep_id: str, name: str) -> Path:
        p = self.path(self.artifact_key(ep_id, name))
        if not p.is_file():
            raise ArtifactError(
                f"artifact {p} is missing; materialize its asset for partition {ep_id!r} first")
        return p

    def spool_dir(self) -> Path:
        return self.root / ".spool"

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise ArtifactError(f"no object at {self.path(key)}") from exc

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list_keys(self, prefix: str) -> list[str]:
        base = self.root / prefix[:prefix.rfind("/")] if "/" in prefix else self.root
        if not base.is_dir():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and not Path(k).name.startswith("."))

    def delete_keys(self, keys: list[str]) -> int:
        n = 0
        for key in keys:
            p = self.path(key)
            if p.is_file():
                p.unlink()
                n += 1
                self._prune(p.parent)
        return n

    def _prune(self, folder: Path) -> None:
        """Remove folders left empty, up to (not including) the data root's top-level folders."""
        while folder != self.root and folder.parent != self.root:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def uri(self, key: str) -> str:
        return str(self.path(key))

    def manifest_dir(self, ep_id: str) -> Path:
        return self.root / "manifests" / validate_ep_id(ep_id)

    def video_path(self, ep_id: str) -> Path:
        p = self.path(self.video_key(ep_id))
        if not p.is_file():
            raise VideoError(
                f"no video for episode {ep_id!r} at {p}; add it with "
                f"`screenalytics run VIDEO --ep-id {ep_id}` or copy it there")
        return p

    def video_version(self, ep_id: str) -> str | None:
        """sha256 of the video, hashed once per (size, mtime, inode): the digest is cached in
        ``cache/video_versions/{ep_id}.json``, so observing an unchanged video reads no byte of
        it (a rewrite changes the mtime or inode and is hashed again)."""
        p = self.path(self.video_key(ep_id))
        try:
            st = p.stat()
        except FileNotFoundError:
            return None
        if not p.is_file():
            return None
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        cache = self.video_version_cache(ep_id)
        try:
            cached = json.loads(cache.read_bytes())
            if cached.get("stamp") == stamp:
                return str(cached["sha256"])
        except (OSError, ValueError, KeyError, AttributeError):
            pass
        digest = file_sha256(p)
        try:
            atomic_write(cache, json.dumps({"stamp": stamp, "sha256": digest}).encode())
        except OSError:
            pass  # a read-only data root: no cache, the digest is still right
        return digest

    def put_video(self, ep_id: str, source: str | os.PathLike) -> Path:
        """Copy a video into ``videos/{ep_id}/episode.mp4`` atomically; returns the new path."""
        dest = self.path(self.video_key(ep_id))
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".episode.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.chmod(tmp, 0o666 & ~_UMASK)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest
