"""One typed container for per-face rows (detections, a track's frames, sampled faces) and its
JSON Lines codec.

Modelled on supervision's ``Detections`` (``supervision/detection/core.py``): column arrays of
equal length, dtypes and shapes validated in ``__post_init__``, and indexing by an index array or
boolean mask returns a new container with those rows.

Example:
    >>> import numpy as np
    >>> rows = FaceRows.empty()
    >>> len(rows), rows.bbox.shape
    (0, (0, 4))
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Column:
    """A per-face column: numpy dtype, shape of one row, and the decimals kept in JSON files
    (None: an integer column)."""

    dtype: Any
    shape: tuple[int, ...] = ()
    digits: int | None = None


#: Every per-face column: dtype, row shape, JSON decimals. Units are in :class:`FaceRows`.
COLUMNS: dict[str, Column] = {
    "frame_idx": Column(np.int64),
    "ts": Column(np.float64, (), 6),
    "pts": Column(np.int64),
    "bbox": Column(np.float32, (4,), 2),
    "score": Column(np.float32, (), 4),
    "landmarks": Column(np.float32, (5, 2), 2),
    "shot_id": Column(np.int32),
    "dur": Column(np.float64, (), 6),
    "det_index": Column(np.int64),
    "track_id": Column(np.int64),
    "face_id": Column(np.int64),
    "quality": Column(np.float32, (), 4),
}

#: The columns every :class:`FaceRows` has; the others are optional (None when absent).
REQUIRED = ("frame_idx", "ts", "pts", "bbox", "score", "landmarks")


class FaceRowsError(ValueError):
    """Columns of a :class:`FaceRows` with a wrong shape or unequal lengths."""


@dataclass
class FaceRows:
    """Faces, one row per face on one frame (column arrays of equal length N).

    Attributes:
        frame_idx: int64 [N], 0-based frame index in decode order.
        ts: float64 [N], seconds from the start of the stream.
        pts: int64 [N], presentation timestamp in the stream's time base.
        bbox: float32 [N, 4], x1, y1, x2, y2 in pixels of the full frame.
        score: float32 [N], detector confidence in [0, 1].
        landmarks: float32 [N, 5, 2], 5 facial landmarks (eyes, nose, mouth corners) in pixels.
        shot_id: int32 [N] or None, the shot the frame belongs to.
        dur: float64 [N] or None, seconds the processed frame stands for: from its ts to the end
            of the last frame it represents (the ``stride`` frames from it, cut at its shot's
            end). Measured from the frames' own timestamps, so it stays right for variable frame
            rate.
        det_index: int64 [N] or None, row of the episode's detections table.
        track_id: int64 [N] or None. face_id: int64 [N] or None, 0..N-1 for sampled faces.
        quality: float32 [N] or None, ``sampling.face_quality``.

    Raises:
        FaceRowsError: a column whose row shape is wrong, or columns of unequal length.
    """

    frame_idx: np.ndarray
    ts: np.ndarray
    pts: np.ndarray
    bbox: np.ndarray
    score: np.ndarray
    landmarks: np.ndarray
    shot_id: np.ndarray | None = None
    dur: np.ndarray | None = None
    det_index: np.ndarray | None = None
    track_id: np.ndarray | None = None
    face_id: np.ndarray | None = None
    quality: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = None
        for name, col in COLUMNS.items():
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.asarray(value, col.dtype)
            if arr.ndim == 1 and len(arr) == 0 and col.shape:
                arr = arr.reshape((0, *col.shape))
            if arr.shape[1:] != col.shape or arr.ndim != 1 + len(col.shape):
                raise FaceRowsError(f"column {name} has shape {arr.shape}, expected "
                                    f"(N, {', '.join(map(str, col.shape))})".replace(", )", ")"))
            if n is None:
                n = len(arr)
            elif len(arr) != n:
                raise FaceRowsError(f"column {name} has {len(arr)} rows, the others {n}")
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return len(self.frame_idx)

    def __getitem__(self, index) -> "FaceRows":
        """The rows at ``index`` (int array, slice or boolean mask) as a new FaceRows."""
        return FaceRows(**{name: None if v is None else v[index]
                           for name, v in self.columns().items()})

    def columns(self) -> dict[str, np.ndarray | None]:
        """Column name -> array (None for an absent optional column), in declaration order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def with_columns(self, **columns: np.ndarray) -> "FaceRows":
        """A copy with some columns added or replaced (validated again)."""
        return FaceRows(**{**self.columns(), **columns})

    @classmethod
    def empty(cls) -> "FaceRows":
        """No rows, with every column (optional ones included) present and empty."""
        return cls(**{name: np.zeros((0, *col.shape), col.dtype)
                      for name, col in COLUMNS.items()})

    @classmethod
    def concat(cls, parts: list["FaceRows"]) -> "FaceRows":
        """The rows of ``parts`` one after the other (:meth:`empty` when there are none)."""
        if not parts:
            return cls.empty()
        names = [n for n, v in parts[0].columns().items() if v is not None]
        return cls(**{n: np.concatenate([getattr(p, n) for p in parts]) for n in names})


# ------------------------------------------------------------------------------------ codec
#: Rows :func:`encode_rows` and :func:`decode_rows` convert at a time.
CHUNK_ROWS = 4096


def encode_rows(rows: FaceRows, names: tuple[str, ...], rename: dict[str, str] | None = None
                ) -> Iterator[dict]:
    """JSON-ready dicts of the columns ``names`` (in that key order), floats rounded to their
    column's decimals; ``rename`` maps a column to its key in the file. Yielded one at a time,
    so that writing a long episode's table never holds all its rows as Python objects (45,000
    detections of a 20-minute episode: about 100 MiB)."""
    rename = rename or {}
    cols = [(rename.get(n, n), COLUMNS[n], getattr(rows, n)) for n in names]
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = [(key, col, values[start:start + CHUNK_ROWS].tolist())
                 for key, col, values in cols]
        for i in range(len(chunk[0][2])):
            yield {key: _rounded(values[i], col.digits) for key, col, values in chunk}


def decode_rows(records: Iterable[dict], names: tuple[str, ...],
                rename: dict[str, str] | None = None) -> FaceRows:
    """The inverse of :func:`encode_rows`: a FaceRows with the columns ``names`` read from the
    keys (``rename``) of ``records`` (any iterable, read once, :data:`CHUNK_ROWS` records at a
    time, so memory use is the arrays and one chunk of records)."""
    rename = rename or {}
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    chunk: list[dict] = []

    def flush() -> None:
        for n in names:
            parts[n].append(np.array([r[rename.get(n, n)] for r in chunk],
                                     COLUMNS[n].dtype).reshape((-1, *COLUMNS[n].shape)))
        chunk.clear()

    for record in records:
        chunk.append(record)
        if len(chunk) >= CHUNK_ROWS:
            flush()
    if chunk:
        flush()
    if not parts[names[0]]:
        return FaceRows.empty()
    return FaceRows(**{n: np.concatenate(parts[n]) for n in names})


def _rounded(value, digits: int | None):
    if digits is None:
        return value
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    return round(float(value), digits)
