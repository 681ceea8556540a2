"""The pipeline's artifacts and their files (JSON Lines, JSON, CSV, ``.npy``, and one ZIP archive
of JPEG images: the aligned faces).

Each artifact type is what one asset produces. ``CODECS[asset_name]`` turns it into
``{file name: bytes}`` and back; storage decides where those files go. Names starting with
``crops/`` or ``thumbs/`` are image files, every other name is a manifest file of the episode.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .cast_links import IdentityLink
from .clustering import Clustering
from .detect import EpisodeScan
from .errors import ArtifactError
from .reps import TrackRep
from .review import ReviewedIdentity, ReviewResult
from .rows import decode_rows, encode_rows
from .sampling import ALIGNED_SIZE, SAMPLE_COLUMNS, FaceSamples
from .screentime import PersonTime, Segment
from .shots import Shot
from .tracking import Track
from .video import VideoInfo

Reader = Callable[[str], bytes]
"""``read(name) -> bytes``. A reader may also have ``read.path(name) -> Path``, a local copy of
the file, which loaders use to read large arrays row by row instead of whole."""


@dataclass(frozen=True)
class SpoolFile:
    """A temporary file holding an artifact file's content. Storage moves (or uploads) it into
    place and deletes it, so large arrays never have to be held in memory as bytes."""

    path: Path


class NpyRows:
    """Rows of a C-ordered ``.npy`` file read or written on demand with positional reads and
    writes, for arrays too large to hold in memory.

    Unlike ``np.memmap``, it maps nothing, so the pages it touches do not stay in the process's
    resident memory: memory use is the rows in hand. Supports ``len()``, ``shape``, ``dtype``,
    ``rows[i]``, ``rows[a:b]`` (a new array) and ``rows[i] = row``.

    Args:
        path: the ``.npy`` file. shape, dtype: give both to create it (zero-filled); omit both
            to open an existing file.
    """

    def __init__(self, path: str | os.PathLike, shape: tuple[int, ...] | None = None,
                 dtype=None) -> None:
        self.path = Path(path)
        if shape is not None:
            self.dtype = np.dtype(dtype)
            self.shape = tuple(int(n) for n in shape)
            with open(self.path, "wb") as f:
                np.lib.format.write_array_header_2_0(f, {
                    "descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                    "shape": self.shape})
                self.offset = f.tell()
                f.truncate(self.offset + self.dtype.itemsize * int(np.prod(self.shape)))
        else:
            with open(self.path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) \
                    else np.lib.format.read_array_header_2_0
                shape, fortran, self.dtype = read(f)
                if fortran:
                    raise ValueError(f"{path}: Fortran-ordered arrays are not supported")
                self.shape, self.offset = tuple(shape), f.tell()
        self._row = self.dtype.itemsize * int(np.prod(self.shape[1:]))
        self._writer = None  # opened on the first write, kept until close()

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise IndexError("NpyRows slices take no step")
            n = max(0, stop - start)
            with open(self.path, "rb") as f:
                data = os.pread(f.fileno(), n * self._row, self.offset + start * self._row)
            return np.frombuffer(data, self.dtype).reshape((n, *self.shape[1:])).copy()
        i = index + len(self) if index < 0 else index
        if not 0 <= i < len(self):
            raise IndexError(index)
        return self[i:i + 1][0]

    def __setitem__(self, index: int, value) -> None:
        row = np.ascontiguousarray(value, self.dtype)
        if row.shape != self.shape[1:]:
            raise ValueError(f"row shape {row.shape}, expected {self.shape[1:]}")
        if self._writer is None:
            self._writer = open(self.path, "r+b")
        os.pwrite(self._writer.fileno(), row.tobytes(), self.offset + index * self._row)

    def close(self) -> None:
        """Close the write handle (reads open the file per call)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __del__(self) -> None:
        self.close()

    def __array__(self, dtype=None, copy=None):
        arr = self[0:len(self)]
        return arr.astype(dtype) if dtype is not None else arr


def spool_array(folder: str | os.PathLike, shape: tuple[int, ...], dtype) -> NpyRows:
    """A zero-filled ``.npy`` array in a new temporary file in ``folder``, to fill row by row and
    return from an asset: storage then moves the file into place (see :class:`SpoolFile`)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".spool-", suffix=".npy", dir=folder)
    os.close(fd)
    return NpyRows(name, shape, dtype)


ALIGNED_JPEG_QUALITY = 95
"""JPEG quality of the aligned faces' archive (``faces_aligned.zip``). Fixed here rather than read
from the ``jpeg_quality`` setting: that setting is for crops people look at (85 at ``fast``), while
these crops are what the recognizer embeds, so their fidelity must not follow a display choice.
Measured on the 490 faces of the 1-minute long episode (tests/long_episode.py): 5.3 KB per face
instead of 37.6 KB raw; embeddings of decoded faces against raw ones at cosine >= 0.988 (ci_pack)
and >= 0.994 (ci_pack_mbf), and every per-person second the same (see the README, "Artifact
sizes"). Changing it changes the ``faces`` artifact: bump its ``CODE_REVISIONS`` entry."""


class JpegRows:
    """Rows of uint8 images [n, H, W, 3] stored as a ZIP archive of JPEG files (one member per
    row, in row order, stored uncompressed: JPEG does not deflate), decoded on demand.

    The archive's central directory is the index: any row is read without reading the others,
    so memory use is the rows in hand, as with :class:`NpyRows`. Supports ``len()``, ``shape``,
    ``dtype``, ``rows[i]``, ``rows[a:b]`` (a new array), :meth:`jpeg` (a row's stored bytes)
    and ``np.asarray(rows)``. Safe to read from several threads at once.

    Args:
        source: the archive's path, or a binary file object (``io.BytesIO``).
        row_shape: the shape every row must decode to; the first row's when omitted.

    Raises:
        ValueError: the archive is not a ZIP file; (when read) a row is not a JPEG image of
            ``row_shape``.
    """

    def __init__(self, source: "str | os.PathLike | io.BufferedIOBase",
                 row_shape: tuple[int, ...] | None = None) -> None:
        try:
            self._zip = zipfile.ZipFile(source if hasattr(source, "read") else Path(source))
        except zipfile.BadZipFile as exc:
            raise ValueError(f"not a ZIP archive of JPEG images ({exc})") from exc
        self._members = self._zip.infolist()
        self._lock = threading.Lock()
        self.dtype = np.dtype(np.uint8)
        if row_shape is None:
            row_shape = self._image(0).shape if self._members else (0, 0, 3)
        self.shape = (len(self._members), *row_shape)

    def __len__(self) -> int:
        return len(self._members)

    def jpeg(self, index: int) -> bytes:
        """The stored JPEG bytes of row ``index``."""
        with self._lock:  # one file handle: ZipFile reads one member at a time
            return self._zip.read(self._members[index])

    def _image(self, index: int) -> np.ndarray:
        image = cv2.imdecode(np.frombuffer(self.jpeg(index), np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"row {index} ({self._members[index].filename}) is not a JPEG image")
        return image

    def _row(self, index: int) -> np.ndarray:
        image = self._image(index)
        if image.shape != self.shape[1:]:
            raise ValueError(f"row {index} ({self._members[index].filename}) has shape "
                             f"{image.shape}, expected {self.shape[1:]}")
        return image

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            rows = [self._row(i) for i in range(start, stop, step)]
            return np.stack(rows) if rows else np.zeros((0, *self.shape[1:]), self.dtype)
        i = index + len(self) if index < 0 else index
        if not 0 <= i < len(self):
            raise IndexError(index)
        return self._row(i)

    def close(self) -> None:
        self._zip.close()

    def __array__(self, dtype=None, copy=None):
        arr = self[0:len(self)]
        return arr.astype(dtype) if dtype is not None else arr


def write_jpeg_rows(rows, names: list[str], out: "str | os.PathLike | io.BufferedIOBase",
                    quality: int = ALIGNED_JPEG_QUALITY, batch: int = 256) -> None:
    """Write images as a ZIP archive of JPEG files that :class:`JpegRows` reads back.

    Rows are read ``batch`` at a time (``rows`` may be an :class:`NpyRows` on disk), so memory
    use is one batch and the archive being written. The archive's bytes depend only on the
    images, their names and ``quality`` (every member's date is fixed), so the same faces make
    the same file.

    Args:
        rows: uint8 [n, H, W, 3] BGR (an array or anything sliced like one).
        names: member name of each row (``len(names) == len(rows)``).
        out: path or binary file object to write to.
        quality: JPEG quality 1-100 (OpenCV ``IMWRITE_JPEG_QUALITY``).
    """
    if len(names) != len(rows):
        raise ValueError(f"{len(names)} names for {len(rows)} rows")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for start in range(0, len(rows), batch):
            for k, row in enumerate(np.asarray(rows[start:start + batch], np.uint8)):
                ok, buf = cv2.imencode(".jpg", row, params)
                if not ok:
                    raise ValueError(f"row {start + k} ({names[start + k]}) cannot be JPEG-coded")
                info = zipfile.ZipInfo(names[start + k], date_time=(1980, 1, 1, 0, 0, 0))
                zf.writestr(info, buf.tobytes())


# ---------------------------------------------------------------------------- helpers
def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd)


def jsonl_bytes(rows: Iterable[dict]) -> bytes:
    """Rows (any iterable, read once) as JSON Lines (UTF-8, one object per line)."""
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()


def read_jsonl(data: bytes) -> list[dict]:
    return list(iter_jsonl(data))


def iter_jsonl(data: bytes) -> Iterator[dict]:
    """The records of JSON Lines ``data``, one at a time (blank lines skipped)."""
    for line in io.BytesIO(data):
        if line.strip():
            yield json.loads(line)


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, default=_default) + "\n").encode()


def _default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def read_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


# ---------------------------------------------------------------------------- detections
#: Per-face columns of each file, in key order; ``det_index`` is written as ``det_id``.
DETECTION_COLUMNS = ("frame_idx", "ts", "pts", "bbox", "score", "landmarks", "shot_id", "dur")
TRACK_FRAME_COLUMNS = ("frame_idx", "ts", "pts", "det_index", "dur", "bbox", "score",
                       "landmarks")
DET_ID = {"det_index": "det_id"}


def dump_detections(scan: EpisodeScan) -> dict[str, bytes]:
    rows = ({"det_id": i, **r}
            for i, r in enumerate(encode_rows(scan.detections, DETECTION_COLUMNS)))
    meta = {"video": scan.video.to_dict(), "stride": scan.stride,
            "frames_processed": scan.frames_processed, "shots": [s.to_dict() for s in scan.shots]}
    return {"detections.jsonl": jsonl_bytes(rows), "shots.json": json_bytes(meta)}


def load_detections(read: Reader) -> EpisodeScan:
    meta = json.loads(read("shots.json"))
    dets = decode_rows(iter_jsonl(read("detections.jsonl")), DETECTION_COLUMNS)
    return EpisodeScan(VideoInfo(**meta["video"]), meta["stride"], meta["frames_processed"],
                       [Shot(**s) for s in meta["shots"]], dets)


# ---------------------------------------------------------------------------- tracks
@dataclass
class TrackSet:
    """Tracks of an episode plus what downstream math needs about the video.

    Attributes:
        video: stream metadata. stride: processed every k-th frame. shots: the episode's shots.
        tracks: the tracks, ``track_id`` == position.
    """

    video: VideoInfo
    stride: int
    shots: list[Shot]
    tracks: list[Track]


def dump_tracks(ts: TrackSet) -> dict[str, bytes]:
    rows = ({
        "track_id": t.track_id, "shot_id": t.shot_id,
        "start_frame": t.start_frame, "end_frame": t.end_frame,
        "start_ts": _r(t.ts[0], 6), "end_ts": _r(t.ts[-1] + t.dur[-1], 6),
        "n_frames": len(t),
        "frames": list(encode_rows(t.rows, TRACK_FRAME_COLUMNS, DET_ID)),
    } for t in ts.tracks)  # one track's rows at a time
    meta = {"video": ts.video.to_dict(), "stride": ts.stride,
            "shots": [s.to_dict() for s in ts.shots], "n_tracks": len(ts.tracks)}
    return {"tracks.jsonl": jsonl_bytes(rows), "tracks_meta.json": json_bytes(meta)}


def load_tracks(read: Reader) -> TrackSet:
    meta = json.loads(read("tracks_meta.json"))
    tracks = [Track(r["track_id"], r["shot_id"],
                    decode_rows(r["frames"], TRACK_FRAME_COLUMNS, DET_ID))
              for r in iter_jsonl(read("tracks.jsonl"))]
    return TrackSet(VideoInfo(**meta["video"]), meta["stride"],
                    [Shot(**s) for s in meta["shots"]], tracks)


# ---------------------------------------------------------------------------- faces
@dataclass
class FaceSet:
    """Sampled faces: metadata rows, aligned crops, and optional JPEG crops/thumbnails.

    Attributes:
        samples: one row per face. aligned: uint8 [F, 112, 112, 3] BGR ArcFace-aligned crops
            (an in-memory array, or :class:`NpyRows` on a file, read or written row by row; when
            loaded, :class:`JpegRows`, decoded row by row). Stored JPEG-coded in one archive,
            ``faces_aligned.zip`` (:func:`write_jpeg_rows`, :data:`ALIGNED_JPEG_QUALITY`).
        images: ``{"crops/...jpg" | "thumbs/...jpg": JPEG bytes}`` (empty unless ``save_crops``;
            not loaded back).
    """

    samples: FaceSamples
    aligned: np.ndarray
    images: dict[str, bytes] = field(default_factory=dict)


ALIGNED_FILE = "faces_aligned.zip"
"""The aligned faces of the ``faces`` asset, JPEG-coded (:class:`JpegRows`)."""
LEGACY_ALIGNED_FILE = "faces_aligned.npy"
"""The raw uint8 array that ``faces`` wrote before revision 2 (37.6 KB a face); still read, so
that an episode materialized before stays reviewable until ``faces`` is re-materialized (its
code version changed, so Dagster shows it stale and ``run --stale-only`` rebuilds it)."""


def _aligned_names(face_ids: np.ndarray) -> list[str]:
    return [f"face_{int(f):05d}.jpg" for f in face_ids]


def dump_faces(fs: FaceSet) -> dict[str, bytes]:
    s = fs.samples
    rows = [{**r, "crop": (f"crops/track_{r['track_id']:04d}/face_{r['face_id']:05d}.jpg"
                           if fs.images else None)}
            for r in encode_rows(s, SAMPLE_COLUMNS, DET_ID)]
    names = _aligned_names(s.face_id)
    if isinstance(fs.aligned, NpyRows):
        # the archive is spooled beside the raw spool, which goes once it is coded
        spool = fs.aligned
        fd, name = tempfile.mkstemp(prefix=".spool-", suffix=".zip", dir=spool.path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                write_jpeg_rows(spool, names, f)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        spool.close()
        spool.path.unlink(missing_ok=True)
        aligned = SpoolFile(Path(name))
    else:
        buf = io.BytesIO()
        write_jpeg_rows(fs.aligned, names, buf)
        aligned = buf.getvalue()
    return {"faces.jsonl": jsonl_bytes(rows), ALIGNED_FILE: aligned, **fs.images}


def open_aligned(read: Reader) -> "JpegRows | NpyRows | np.ndarray":
    """The aligned faces of a ``faces`` artifact, uint8 [F, 112, 112, 3] BGR, decoded row by row
    on demand: :class:`JpegRows` over ``faces_aligned.zip`` (from the reader's local copy when
    it has one, ``read.path``), or the raw array of an episode written before (``.npy``).

    Raises:
        ArtifactError: neither file is there.
    """
    path = getattr(read, "path", None)
    shape = (ALIGNED_SIZE, ALIGNED_SIZE, 3)
    try:
        source = path(ALIGNED_FILE) if path else io.BytesIO(read(ALIGNED_FILE))
    except ArtifactError:
        try:
            return NpyRows(path(LEGACY_ALIGNED_FILE)) if path \
                else read_npy(read(LEGACY_ALIGNED_FILE))
        except ArtifactError:
            pass
        raise
    return JpegRows(source, shape)


def load_faces(read: Reader) -> FaceSet:
    rows = read_jsonl(read("faces.jsonl"))
    samples = decode_rows(rows, SAMPLE_COLUMNS, DET_ID)
    aligned = open_aligned(read)
    if len(aligned) != len(samples):
        raise ValueError(f"{len(aligned)} aligned faces for {len(samples)} rows of faces.jsonl")
    return FaceSet(samples, aligned)


# ---------------------------------------------------------------------------- embeddings
@dataclass
class FaceEmbeddings:
    """Unit embeddings of the sampled faces, in ``faces.jsonl`` order.

    Attributes:
        face_id, track_id: int64 [F]. vectors: float32 [F, D]. model_pack: the pack used.
    """

    face_id: np.ndarray
    track_id: np.ndarray
    vectors: np.ndarray
    model_pack: str


def dump_embeddings(e: FaceEmbeddings) -> dict[str, bytes]:
    index = {"model_pack": e.model_pack, "dim": int(e.vectors.shape[1]) if e.vectors.ndim == 2
             else 0, "face_id": e.face_id.tolist(), "track_id": e.track_id.tolist()}
    return {"faces_embeddings.npy": npy_bytes(e.vectors.astype(np.float32)),
            "faces_embeddings.json": json_bytes(index)}


def load_embeddings(read: Reader) -> FaceEmbeddings:
    index = json.loads(read("faces_embeddings.json"))
    vec = read_npy(read("faces_embeddings.npy"))
    return FaceEmbeddings(np.array(index["face_id"], np.int64),
                          np.array(index["track_id"], np.int64), vec, index["model_pack"])


# ---------------------------------------------------------------------------- identities
@dataclass
class Identity:
    """A cluster of tracks taken to be one person.

    Attributes:
        identity_id: 0-based, by first appearance. track_ids: its tracks. n_faces: embedded faces.
        seconds: screen time of the union of its tracks (s). attached_track_ids: weak tracks that
            joined by ``min_identity_sim`` rather than by clustering.
    """

    identity_id: int
    track_ids: list[int]
    n_faces: int
    seconds: float
    attached_track_ids: list[int] = field(default_factory=list)


@dataclass
class IdentitySet:
    """Identities of an episode, their centroids float32 [K, D] and the clustering settings."""

    identities: list[Identity]
    centroids: np.ndarray
    params: dict[str, Any]

    def label_of(self) -> dict[int, int]:
        """track_id -> identity_id."""
        return {t: i.identity_id for i in self.identities for t in i.track_ids}

    def to_clustering(self, track_embeddings: np.ndarray, track_ids: np.ndarray) -> Clustering:
        """A :class:`Clustering` for ``track_ids`` (int [T]) with their embeddings [T, D]."""
        label = self.label_of()
        attached = {t for i in self.identities for t in i.attached_track_ids}
        return Clustering(np.asarray(track_ids, np.int64),
                          np.array([label[int(t)] for t in track_ids], np.int64),
                          track_embeddings, self.centroids,
                          np.array([int(t) in attached for t in track_ids], bool))


def dump_identities(s: IdentitySet) -> dict[str, bytes]:
    doc = {"identities": [{"identity_id": i.identity_id, "track_ids": i.track_ids,
                           "n_faces": i.n_faces, "seconds": _r(i.seconds),
                           "attached_track_ids": i.attached_track_ids} for i in s.identities],
           "params": s.params}
    cents = {"dim": int(s.centroids.shape[1]) if s.centroids.ndim == 2 else 0,
             "centroids": {str(i.identity_id): [_r(v, 6) for v in s.centroids[k]]
                           for k, i in enumerate(s.identities)}}
    return {"identities.json": json_bytes(doc), "cluster_centroids.json": json_bytes(cents)}


def load_identities(read: Reader) -> IdentitySet:
    doc = json.loads(read("identities.json"))
    cents = json.loads(read("cluster_centroids.json"))
    ids = [Identity(**i) for i in doc["identities"]]
    c = np.array([cents["centroids"][str(i.identity_id)] for i in ids], np.float32)
    return IdentitySet(ids, c.reshape(len(ids), cents["dim"]), doc["params"])


# ---------------------------------------------------------------------------- track reps
@dataclass
class TrackRepSet:
    """Per-track representatives and metrics, and an episode summary.

    ``images``: the representative thumbnails (``thumbs/reps/track_NNNN.jpg`` -> JPEG bytes,
    see ``core.reps.rep_thumbnails``); written, not loaded back.
    """

    reps: list[TrackRep]
    summary: dict[str, Any]
    images: dict[str, bytes] = field(default_factory=dict)


def dump_track_reps(s: TrackRepSet) -> dict[str, bytes]:
    rows = [{k: (_r(v) if isinstance(v, float) else v) for k, v in r.to_dict().items()}
            for r in s.reps]
    metrics = {"summary": s.summary,
               "tracks": {str(r["track_id"]): {k: v for k, v in r.items() if k != "track_id"}
                          for r in rows}}
    return {"track_reps.jsonl": jsonl_bytes(rows), "track_metrics.json": json_bytes(metrics),
            **s.images}


def load_track_reps(read: Reader) -> TrackRepSet:
    rows = read_jsonl(read("track_reps.jsonl"))
    metrics = json.loads(read("track_metrics.json"))
    return TrackRepSet([TrackRep(**r) for r in rows], metrics["summary"])


# ---------------------------------------------------------------------------- cast links
@dataclass
class CastLinks:
    """Identities linked to the show's cast, with the reviewer's edits applied.

    Attributes:
        ep_id, show: the episode and its show. facebank: ``"ok"``, or why there are no links
            (``"missing"``: the show's facebank was not built). cast_ids: every cast member of
            the facebank. thresh: ``cast_link_thresh`` used. auto: the automatic link and ranked
            suggestions of every clustered identity. review: identities after the edits, and the
            edits applied and skipped. edits_version: data version of the edits file read.
    """

    ep_id: str
    show: str
    facebank: str
    cast_ids: list[str]
    thresh: float
    auto: list[IdentityLink]
    review: ReviewResult
    edits_version: str

    def reviewed(self) -> list[ReviewedIdentity]:
        return self.review.identities


def dump_cast_links(c: CastLinks) -> dict[str, bytes]:
    doc = {"ep_id": c.ep_id, "show": c.show, "facebank": c.facebank, "cast_ids": c.cast_ids,
           "cast_link_thresh": c.thresh, "edits_version": c.edits_version,
           "identities": [i.to_dict() for i in c.review.identities],
           "auto_links": [{"identity_id": a.identity_id, "cast_id": a.cast_id, "score": a.score,
                           "suggestions": a.suggestions, "needs_review": a.needs_review,
                           "source": a.source} for a in c.auto],
           "edits_applied": c.review.applied, "edits_skipped": c.review.skipped}
    return {"cast_links.json": json_bytes(doc)}


def load_cast_links(read: Reader) -> CastLinks:
    doc = json.loads(read("cast_links.json"))
    review = ReviewResult([ReviewedIdentity(**i) for i in doc["identities"]],
                          doc["edits_applied"], doc["edits_skipped"])
    return CastLinks(doc["ep_id"], doc["show"], doc["facebank"], doc["cast_ids"],
                     doc["cast_link_thresh"], [IdentityLink(**a) for a in doc["auto_links"]],
                     review, doc["edits_version"])


# ---------------------------------------------------------------------------- screen time
@dataclass
class ScreenTimeReport:
    """Seconds on screen per person in one episode.

    Attributes:
        ep_id: the episode. fps: frame rate. duration_s: episode length (s).
        people: most seconds first. cast_ids: every cast member of the show's facebank (those
            not on screen get 0 s in :meth:`cast_seconds`). skipped_edits: review edits that no
            longer apply (see ``core.review``). extra_files: more files to write (the PNG chart).
    """

    ep_id: str
    fps: float
    duration_s: float
    people: list[PersonTime]
    cast_ids: list[str] = field(default_factory=list)
    skipped_edits: list[dict] = field(default_factory=list)
    extra_files: dict[str, bytes] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)

    def rows(self) -> list[dict]:
        return [{"identity_id": p.identity_id, "name": p.name, "cast_id": p.cast_id,
                 "seconds": _r(p.seconds, 3), "n_tracks": p.n_tracks,
                 "first_ts": _r(p.first_ts, 3), "last_ts": _r(p.last_ts, 3)}
                for p in self.people]

    def labelled_rows(self) -> list[dict]:
        """:meth:`rows` with a ``person`` column first: the display name, else the cast id,
        else ``id_NN`` (never empty), and ``""`` instead of ``None`` for a missing name or cast
        id, for tables shown to people."""
        return [{"person": p.label, **{k: ("" if v is None else v) for k, v in row.items()}}
                for row, p in zip(self.rows(), self.people)]

    def cast_seconds(self) -> dict[str, float]:
        """cast id -> seconds on screen, for every cast member (0 when never linked)."""
        out = {c: 0.0 for c in self.cast_ids}
        for p in self.people:
            if p.cast_id:
                out[p.cast_id] = out.get(p.cast_id, 0.0) + _r(p.seconds, 3)
        return out


CSV_COLUMNS = ("identity_id", "name", "cast_id", "seconds", "n_tracks", "first_ts", "last_ts")
SEGMENT_COLUMNS = ("person", "identity_id", "cast_id", "name", "start_s", "end_s", "shot_id",
                   "track_ids")


def segments_files(segments: list[Segment]) -> dict[str, bytes]:
    """``segments.json`` (a list of :meth:`Segment.to_dict`) and ``segments.csv`` (track ids
    joined by spaces, empty cells for no name or cast id)."""
    rows = [s.to_dict() for s in segments]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SEGMENT_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: (" ".join(map(str, row[k])) if k == "track_ids"
                        else "" if row[k] is None else row[k]) for k in SEGMENT_COLUMNS})
    return {"segments.json": json_bytes(rows), "segments.csv": buf.getvalue().encode()}


def load_segments(read: Reader) -> list[Segment]:
    """The segments of ``segments.json`` (see :func:`segments_files`)."""
    return [Segment(**r) for r in json.loads(read("segments.json"))]


def dump_screentime(r: ScreenTimeReport) -> dict[str, bytes]:
    people = [{**row, "intervals": [[_r(a, 3), _r(b, 3)] for a, b in p.intervals]}
              for row, p in zip(r.rows(), r.people)]
    doc = {"ep_id": r.ep_id, "fps": r.fps, "duration_s": _r(r.duration_s, 3), "people": people,
           "cast": r.cast_seconds(), "skipped_edits": r.skipped_edits}
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in r.rows():
        w.writerow({k: ("" if row[k] is None else row[k]) for k in CSV_COLUMNS})
    return {"screentime.json": json_bytes(doc), "screentime.csv": buf.getvalue().encode(),
            **segments_files(r.segments), **r.extra_files}


def load_screentime(read: Reader) -> ScreenTimeReport:
    doc = json.loads(read("screentime.json"))
    people = [PersonTime(p["identity_id"], p["cast_id"], p["seconds"], p["n_tracks"],
                         p["first_ts"], p["last_ts"], [tuple(x) for x in p["intervals"]],
                         p.get("name"))
              for p in doc["people"]]
    return ScreenTimeReport(doc["ep_id"], doc["fps"], doc["duration_s"], people,
                            list(doc.get("cast", {})), doc.get("skipped_edits", []))


# ---------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Codec:
    """How one asset's value becomes files. ``files``: the manifest files it always writes;
    ``replaces``: files an older revision wrote instead, deleted once the new ones are written
    (e.g. ``faces_aligned.npy``, 37.6 KB a face, left behind would keep its bytes forever)."""

    files: tuple[str, ...]
    dump: Callable[[Any], dict[str, "bytes | SpoolFile"]]
    load: Callable[[Reader], Any]
    replaces: tuple[str, ...] = ()


CODECS: dict[str, Codec] = {
    "detections": Codec(("detections.jsonl", "shots.json"), dump_detections, load_detections),
    "tracks": Codec(("tracks.jsonl", "tracks_meta.json"), dump_tracks, load_tracks),
    "faces": Codec(("faces.jsonl", ALIGNED_FILE), dump_faces, load_faces,
                   (LEGACY_ALIGNED_FILE,)),
    "embeddings": Codec(("faces_embeddings.npy", "faces_embeddings.json"), dump_embeddings,
                        load_embeddings),
    "identities": Codec(("identities.json", "cluster_centroids.json"), dump_identities,
                        load_identities),
    "track_reps": Codec(("track_reps.jsonl", "track_metrics.json"), dump_track_reps,
                        load_track_reps),
    "cast_links": Codec(("cast_links.json",), dump_cast_links, load_cast_links),
    "screentime": Codec(("screentime.json", "screentime.csv", "segments.json", "segments.csv"),
                        dump_screentime, load_screentime),
}
