"""Videos and artifacts in an S3 bucket (AWS S3 or any S3-compatible store such as MinIO).

Key layout inside the bucket (under an optional ``prefix``)::

    videos/{ep_id}/episode.mp4                                   uploads (the source)
    artifacts/manifests/{show}/s{ss}/e{ee}/<artifact file>       e.g. tracks.jsonl
    artifacts/crops/{show}/s{ss}/e{ee}/tracks/track_0001/face_00012.jpg   face crops
    artifacts/crops/{show}/s{ss}/e{ee}/tracks/track_0001/thumb.jpg        track thumbnail
    artifacts/frames/{show}/s{ss}/e{ee}/...                      full frames
    artifacts/manifests/{show}/s{ss}/<season file>               season roll-up

Every object is written with a single PutObject, so it appears whole or not at all; a failed
write leaves the previous object (or nothing) in place. Videos are downloaded once into a local
cache keyed by their ETag (streamed to a temporary file in chunks, then renamed).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError

from screenalytics_assets.core.ep_id import parse_ep_id, validate_ep_id
from screenalytics_assets.core.errors import ArtifactError, VideoError

from .storage import ArtifactStore, VideoObject, check_name

_CHUNK = 8 << 20
# Connection refused/reset, timeouts: raised once botocore's own retries (the S3Resource's
# ``max_attempts``) are used up.
_UNREACHABLE = (BotoConnectionError, HTTPClientError)


class StorageUnavailableError(ArtifactError):
    """The S3 endpoint could not be reached, after retries."""


def _unreachable(action: str, uri: str, exc: Exception) -> StorageUnavailableError:
    return StorageUnavailableError(
        f"S3 endpoint unreachable while {action} {uri} ({exc}); nothing was written for it. "
        "Check the endpoint and re-run the materialization when it is back.")
_THUMB_RE = re.compile(r"^thumbs/(track_\d+)\.jpg$")
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def strip_etag(etag: str) -> str:
    """An ETag without its surrounding quotes (``"abc"`` -> ``abc``)."""
    return etag.strip('"')


class S3Store(ArtifactStore):
    """Objects in ``bucket`` under ``prefix``, through a boto3 S3 client.

    Args:
        client: a boto3 S3 client (``S3Resource.get_client()``), configured with the endpoint,
            region and credentials to use (credentials come from the usual AWS chain).
        bucket: bucket name.
        prefix: optional key prefix inside the bucket (``""`` = the bucket root); every key of
            the layout above lives under it.
        cache_dir: local folder for downloaded videos (``{cache_dir}/videos/{ep_id}/{etag}/``).
    """

    def __init__(self, client, bucket: str, prefix: str = "",
                 cache_dir: str | os.PathLike = "data/cache") -> None:
        if not bucket:
            raise ArtifactError("no S3 bucket configured; set SCREENALYTICS_S3_BUCKET")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            check_name(self.prefix)
        self.cache_dir = Path(cache_dir).expanduser().resolve()

    # ------------------------------------------------------------------ layout
    @staticmethod
    def episode_path(ep_id: str) -> str:
        """``{show}/s{ss}/e{ee}`` of a valid ep_id."""
        e = parse_ep_id(validate_ep_id(ep_id))
        return f"{e.show}/s{e.season:02d}/e{e.episode:02d}"

    def artifact_key(self, ep_id: str, name: str) -> str:
        ep = self.episode_path(ep_id)
        check_name(name)
        if name.startswith("crops/"):
            return f"artifacts/crops/{ep}/tracks/{name[len('crops/'):]}"
        if m := _THUMB_RE.match(name):
            return f"artifacts/crops/{ep}/tracks/{m[1]}/thumb.jpg"
        if name.startswith("thumbs/"):
            return f"artifacts/crops/{ep}/{name}"
        if name.startswith("frames/"):
            return f"artifacts/frames/{ep}/{name[len('frames/'):]}"
        return f"artifacts/manifests/{ep}/{name}"

    def episode_prefixes(self, ep_id: str) -> list[str]:
        ep = self.episode_path(ep_id)
        return [f"artifacts/manifests/{ep}/", f"artifacts/crops/{ep}/",
                f"artifacts/frames/{ep}/"]

    def season_key(self, show: str, season: int, name: str) -> str:
        self._check_season(show, season)
        return f"artifacts/manifests/{show}/s{season:02d}/{check_name(name)}"

    def cache_dirs(self, ep_id: str) -> list[Path]:
        return [self.cache_dir / "videos" / validate_ep_id(ep_id)]

    # ------------------------------------------------------------------ objects
    def _obj(self, key: str) -> str:
        check_name(key.rstrip("/") or "x")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _logical(self, obj_key: str) -> str:
        return obj_key[len(self.prefix) + 1:] if self.prefix else obj_key

    def put(self, key: str, data: bytes) -> None:
        # One PutObject: S3 stores the object whole or not at all (no multipart upload here).
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._obj(key), Body=data)
        except _UNREACHABLE as exc:
            raise _unreachable("writing", self.uri(key), exc) from exc
        except ClientError as exc:
            raise ArtifactError(f"cannot write {self.uri(key)}: {exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._obj(key))
        except _UNREACHABLE as exc:
            raise _unreachable("reading", self.uri(key), exc) from exc
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise ArtifactError(f"no object at {self.uri(key)}") from exc
            raise ArtifactError(f"cannot read {self.uri(key)}: {exc}") from exc
        body = resp["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def put_file(self, key: str, path: Path) -> None:
        # upload_file streams the file (multipart above 8 MiB); a multipart object becomes
        # visible only when the upload completes, so readers never see part of it.
        try:
            self.client.upload_file(str(path), self.bucket, self._obj(key))
        except _UNREACHABLE as exc:
            raise _unreachable("writing", self.uri(key), exc) from exc
        except (ClientError, S3UploadFailedError) as exc:
            raise ArtifactError(f"cannot write {self.uri(key)}: {exc}") from exc
        finally:
            Path(path).unlink(missing_ok=True)

    def local_file(self, ep_id: str, name: str) -> Path:
        """Download an artifact file into the cache (once per ETag) and return its path."""
        key = self.artifact_key(ep_id, name)
        h = self.head(key)
        if h is None:
            raise ArtifactError(f"artifact {self.uri(key)} is missing; materialize its asset "
                                f"for partition {ep_id!r} first")
        etag = re.sub(r"[^A-Za-z0-9_-]", "_", strip_etag(h["ETag"]))
        dest = self.cache_dir / "artifacts" / validate_ep_id(ep_id) / etag / name
        if dest.is_file():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        os.close(fd)
        try:
            self.client.download_file(self.bucket, self._obj(key), tmp)
            os.replace(tmp, dest)
        except _UNREACHABLE as exc:
            Path(tmp).unlink(missing_ok=True)
            raise _unreachable("reading", self.uri(key), exc) from exc
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest

    def spool_dir(self) -> Path:
        return self.cache_dir / "spool"

    def head(self, key: str) -> dict | None:
        """The HeadObject response of ``key``, or None when there is no such object."""
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._obj(key))
        except _UNREACHABLE as exc:
            raise _unreachable("checking", self.uri(key), exc) from exc
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            raise ArtifactError(f"cannot stat {self.uri(key)}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def _list(self, prefix: str):
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._obj(prefix)):
            for obj in page.get("Contents", []):
                yield obj

    def list_keys(self, prefix: str) -> list[str]:
        try:
            return sorted(self._logical(o["Key"]) for o in self._list(prefix))
        except _UNREACHABLE as exc:
            raise _unreachable("listing", self.uri(prefix), exc) from exc

    def delete_keys(self, keys: list[str]) -> int:
        keys = sorted(set(keys))
        folders = {k.rsplit("/", 1)[0] + "/" if "/" in k else "" for k in keys}
        existing = {k for f in folders for k in self.list_keys(f)}
        gone = [k for k in keys if k in existing]
        for i in range(0, len(gone), 1000):  # DeleteObjects takes at most 1000 keys
            batch = gone[i:i + 1000]
            try:
                resp = self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": self._obj(k)} for k in batch], "Quiet": True})
            except _UNREACHABLE as exc:
                raise _unreachable("deleting", self.uri(batch[0]), exc) from exc
            if resp.get("Errors"):
                e = resp["Errors"][0]
                raise ArtifactError(
                    f"cannot delete s3://{self.bucket}/{e.get('Key')}: {e.get('Message')}")
        return len(gone)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._obj(key)}"

    def share_url(self, key: str, expires_s: int = 3600) -> str:
        """A presigned GET URL of ``key``, valid for ``expires_s`` seconds."""
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._obj(key)},
            ExpiresIn=int(expires_s))

    # ------------------------------------------------------------------ videos
    def list_videos(self) -> list[VideoObject]:
        return [VideoObject(self._logical(o["Key"]), strip_etag(o["ETag"]), int(o["Size"]))
                for o in sorted(self._list("videos/"), key=lambda o: o["Key"])]

    def video_versions(self, ep_ids: list[str]) -> dict[str, str]:
        """The ETags of the episodes' videos from one listing of ``videos/`` (one request per
        1,000 objects instead of one HEAD per episode)."""
        wanted = {self.video_key(ep_id): ep_id for ep_id in ep_ids}
        return {wanted[v.key]: v.stamp for v in self.list_videos() if v.key in wanted}

    def video_version(self, ep_id: str) -> str | None:
        h = self.head(self.video_key(ep_id))
        return strip_etag(h["ETag"]) if h else None

    def video_path(self, ep_id: str) -> Path:
        """Download the episode's video into the cache (once per ETag) and return its path.

        The object is streamed to a temporary file in 8 MiB chunks with ``If-Match`` on the ETag
        (so the cached bytes are exactly that version), then renamed into place. Older cached
        versions of the episode are removed.

        Raises:
            VideoError: there is no ``videos/{ep_id}/episode.mp4`` in the bucket, or the download
                failed.
        """
        key = self.video_key(ep_id)
        h = self.head(key)
        if h is None:
            raise VideoError(
                f"no video for episode {ep_id!r} at {self.uri(key)}; upload it there "
                f"(e.g. `aws s3 cp episode.mp4 {self.uri(key)}`)")
        etag = strip_etag(h["ETag"])
        folder = self.cache_dirs(ep_id)[0]
        dest = folder / re.sub(r"[^A-Za-z0-9_-]", "_", etag) / "episode.mp4"
        if dest.is_file() and dest.stat().st_size == h["ContentLength"]:
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".episode.", suffix=".part", dir=dest.parent)
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._obj(key),
                                          IfMatch=h["ETag"])
            body = resp["Body"]
            try:
                with os.fdopen(fd, "wb") as f:
                    for chunk in body.iter_chunks(_CHUNK):
                        f.write(chunk)
                    f.flush()
                    os.fsync(f.fileno())
            finally:
                body.close()
            os.replace(tmp, dest)
        except ClientError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise VideoError(f"cannot download {self.uri(key)}: {exc}; if it was re-uploaded "
                             "during the download, run again") from exc
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for old in folder.iterdir():
            if old != dest.parent and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        return dest

    def put_video(self, ep_id: str, source: str | os.PathLike) -> str:
        """Upload a local video as ``videos/{ep_id}/episode.mp4``; returns its ETag."""
        key = self.video_key(ep_id)
        self.client.upload_file(str(source), self.bucket, self._obj(key))
        return self.video_version(ep_id) or ""
