"""Aligned faces of every detection, kept from the detection pass so that the faces stage need not
decode the episode a second time.

The detection pass has each processed frame decoded at full size anyway; aligning its faces there
(:func:`.sampling.align_faces`, on the full-size frame the decode thread converts once) costs a fraction of
decoding the sampled frames again, which for an episode whose tracks cover most of it means
decoding nearly every frame twice. The crops are a local cache, not an artifact: a raw file under
the storage's spool folder, one row per row of the detections table, beside the boxes they were
cut at. The faces stage takes a sample's crop from it only when the row's box is the sample's box
(so a cache left by another detection pass is never used), and decodes the frames of the samples
it lacks (a run on another machine, or a pass that failed and left no cache).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .sampling import ALIGNED_SIZE

CROP_SHAPE = (ALIGNED_SIZE, ALIGNED_SIZE, 3)
CROP_BYTES = int(np.prod(CROP_SHAPE))
#: Boxes are stored with 2 decimals in the detections table (``rows.COLUMNS``): a sample's box and
#: the box its crop was cut at agree to that.
BOX_TOLERANCE_PX = 0.01


def crops_path(spool_dir: str | os.PathLike, ep_id: str) -> Path:
    """The cache file of an episode (``<spool>/detection_crops/<ep_id>.u8``); its boxes sit
    beside it as ``<ep_id>.bbox.npy``."""
    return Path(spool_dir) / "detection_crops" / f"{ep_id}.u8"


def _bbox_path(path: Path) -> Path:
    return path.with_name(path.name[:-len(".u8")] + ".bbox.npy")


#: A cache whose faces stage has not run this long after its detection pass (the two ran on
#: different machines, or the run stopped between them) is removed by the next pass here.
STALE_AFTER_S = 6 * 3600


def _remove_stale(folder: Path) -> None:
    cutoff = time.time() - STALE_AFTER_S
    for path in folder.iterdir():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:  # removed meanwhile by another pass
            continue


class CropWriter:
    """Appends the aligned crops of the detections table's rows, in row order, to a temporary
    file; :meth:`commit` moves it into place (the boxes first, then the crops, each by rename),
    :meth:`discard` removes it. Memory: none beyond one frame's crops.

    Args:
        path: from :func:`crops_path`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(self.path.parent)
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.part")
        self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in commit/discard
        self._boxes: list[np.ndarray] = []
        self.rows = 0

    def add(self, crops: np.ndarray, bbox: np.ndarray) -> None:
        """Append ``crops`` uint8 [n, 112, 112, 3] BGR cut at ``bbox`` float32 [n, 4] px
        (full-frame x1, y1, x2, y2, as the detections table stores them)."""
        crops = np.ascontiguousarray(crops, np.uint8).reshape(-1, *CROP_SHAPE)
        if len(crops) != len(bbox):
            raise ValueError(f"{len(crops)} crops for {len(bbox)} boxes")
        self._file.write(crops.tobytes())
        self._boxes.append(np.asarray(bbox, np.float32).reshape(-1, 4))
        self.rows += len(crops)

    def commit(self) -> None:
        """Close the file and move it into place, replacing an earlier pass's cache; nothing
        after :meth:`discard` (a pass that failed, e.g. on a truncated video, leaves no cache)."""
        if self._file.closed:
            return
        self._file.close()
        boxes = np.concatenate(self._boxes) if self._boxes else np.zeros((0, 4), np.float32)
        bbox_tmp = self._tmp.with_suffix(".bbox.npy")
        np.save(bbox_tmp, boxes)
        self.path.unlink(missing_ok=True)  # never a new box file beside the old crops
        os.replace(bbox_tmp, _bbox_path(self.path))
        os.replace(self._tmp, self.path)

    def discard(self) -> None:
        """Close and remove the temporary file (a failed pass leaves nothing)."""
        self._file.close()
        self._tmp.unlink(missing_ok=True)


class CropCache:
    """Read side of a committed cache: the crop of a detections row, if its box matches."""

    def __init__(self, path: Path, bbox: np.ndarray) -> None:
        self.path = path
        self.bbox = bbox

    @classmethod
    def open(cls, path: str | os.PathLike) -> "CropCache | None":
        """The cache at ``path``, or None when there is none (or it is incomplete)."""
        path = Path(path)
        try:
            bbox = np.load(_bbox_path(path))
            if path.stat().st_size != len(bbox) * CROP_BYTES:
                return None
        except (OSError, ValueError):
            return None
        return cls(path, bbox)

    def matches(self, det_index: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        """bool [F]: whether the cache holds the crop of each detections row ``det_index``
        int [F] cut at ``bbox`` float32 [F, 4] (to :data:`BOX_TOLERANCE_PX`)."""
        det_index = np.asarray(det_index, np.int64)
        ok = (det_index >= 0) & (det_index < len(self.bbox))
        found = np.zeros(len(det_index), bool)
        diff = np.abs(self.bbox[det_index[ok]] - np.asarray(bbox, np.float32)[ok])
        found[ok] = np.all(diff <= BOX_TOLERANCE_PX, axis=1)
        return found

    def crops(self, det_index) -> Iterator[np.ndarray]:
        """uint8 [112, 112, 3] BGR of each detections row of ``det_index`` (int [F]), in order,
        the file opened once.

        Positional reads, not a memory map: the cache holds every detection of the episode
        (1.7 GB for 20 minutes), and the pages a map touches stay in the process's resident
        memory (a 20-minute episode's faces stage: +170 MiB).

        Raises:
            ValueError: a row is beyond the cache.
        """
        with open(self.path, "rb") as f:
            for row in det_index:
                data = os.pread(f.fileno(), CROP_BYTES, int(row) * CROP_BYTES)
                if len(data) != CROP_BYTES:
                    raise ValueError(f"{self.path}: no crop for detections row {row}")
                yield np.frombuffer(data, np.uint8).reshape(CROP_SHAPE).copy()

    def remove(self) -> None:
        """Delete the cache files."""
        remove_crops(self.path)


def remove_crops(path: str | os.PathLike) -> None:
    """Delete the cache at ``path`` (:func:`crops_path`), complete or not."""
    path = Path(path)
    path.unlink(missing_ok=True)
    _bbox_path(path).unlink(missing_ok=True)
