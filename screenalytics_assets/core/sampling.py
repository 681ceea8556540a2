"""Per-track face sampling: pick the best faces of each track and align them for recognition."""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .rows import FaceRows
from .video import read_frames_at

if TYPE_CHECKING:  # tracking imports the detection pass, which aligns faces with this module
    from .detection_crops import CropCache
    from .tracking import Track


ALIGNED_SIZE = 112
"""Side (px) of an ArcFace-aligned crop (InsightFace ``face_align.norm_crop``)."""


def align_face(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """InsightFace's ``norm_crop``: the face warped onto ArcFace's 5-point template, uint8
    [112, 112, 3] BGR, from a BGR image and its landmarks float [5, 2] px."""
    from insightface.utils.face_align import norm_crop  # imports scikit-image: only when used

    with warnings.catch_warnings():
        # norm_crop calls a scikit-image method (SimilarityTransform.estimate) deprecated in
        # scikit-image 0.26; the result is the same, and no InsightFace release avoids it yet
        warnings.filterwarnings("ignore", message=".*estimate.*deprecated", category=FutureWarning)
        return norm_crop(image, landmarks, image_size=ALIGNED_SIZE)


def align_faces(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """:func:`align_face` of every face of one frame.

    Args:
        image: BGR uint8 [H, W, 3], the full-size frame.
        landmarks: float [N, 5, 2] px in that frame (InsightFace order).

    Returns:
        uint8 [N, 112, 112, 3] BGR.
    """
    landmarks = np.asarray(landmarks, np.float32).reshape(-1, 5, 2)
    out = np.zeros((len(landmarks), ALIGNED_SIZE, ALIGNED_SIZE, 3), np.uint8)
    for i, lm in enumerate(landmarks):
        out[i] = align_face(image, lm)
    return out


def face_quality(bbox: np.ndarray, score: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Heuristic face quality in [0, 1]: detector score x size term x frontalness.

    - size term: ``min(1, short side / 112)``, since recognition runs on 112-px aligned crops and
      smaller faces are upsampled;
    - frontalness: ``min(dl, dr) / max(dl, dr)`` where dl, dr are the horizontal distances from the
      nose tip to the left and right eye (5-point landmarks): 1 for a frontal face, 0 in profile.

    Args:
        bbox: float [L, 4] px. score: float [L]. landmarks: float [L, 5, 2] px (InsightFace order:
            left eye, right eye, nose, left mouth corner, right mouth corner).

    Returns:
        float32 [L].
    """
    bbox = np.asarray(bbox, np.float32).reshape(-1, 4)
    lm = np.asarray(landmarks, np.float32).reshape(-1, 5, 2)
    short = np.minimum(bbox[:, 2] - bbox[:, 0], bbox[:, 3] - bbox[:, 1])
    size = np.clip(short / ALIGNED_SIZE, 0.0, 1.0)
    dl = np.abs(lm[:, 2, 0] - lm[:, 0, 0])
    dr = np.abs(lm[:, 1, 0] - lm[:, 2, 0])
    frontal = np.minimum(dl, dr) / np.maximum(np.maximum(dl, dr), 1e-6)
    return (np.asarray(score, np.float32) * size * frontal).astype(np.float32)


FaceSamples = FaceRows
"""The faces chosen for recognition: a :class:`~.rows.FaceRows` with ``face_id`` (0..F-1),
``track_id``, ``det_index`` (detections row) and ``quality`` (:func:`face_quality`)."""

#: The columns of sampled faces, in ``faces.jsonl`` order.
SAMPLE_COLUMNS = ("face_id", "track_id", "det_index", "frame_idx", "ts", "pts", "bbox", "score",
                  "landmarks", "quality")


#: A face is a candidate sample of its track when its quality is at least this share of the
#: track's best (:func:`spread_best`).
CANDIDATE_QUALITY = 0.5


def spread_best(quality: np.ndarray, k: int) -> np.ndarray:
    """Indices (sorted) of ``k`` faces of one track that are good and spread over its length.

    Candidates are the faces of at least :data:`CANDIDATE_QUALITY` times the track's best
    quality (the ``k`` best when fewer are); they are split in frame order into ``k`` runs of
    consecutive candidates and the best of each run is kept. A long steady track so gives faces
    from its whole length instead of ``k`` near-copies from its best second, and a bad stretch (a
    profile, a face cut by the edge) gives none while better faces exist.

    Args:
        quality: float [L] per face in frame order (:func:`face_quality`). k: faces wanted.

    Returns:
        int64 [min(k, L)].
    """
    n = len(quality)
    if n <= k:
        return np.arange(n, dtype=np.int64)
    cand = np.flatnonzero(quality >= CANDIDATE_QUALITY * quality.max())
    if len(cand) < k:
        cand = np.sort(np.argsort(-quality, kind="stable")[:k])
    return np.array([run[np.argmax(quality[run])] for run in np.array_split(cand, k)], np.int64)


def select_samples(tracks: list[Track], max_samples_per_track: int = 16) -> FaceSamples:
    """Choose up to ``max_samples_per_track`` good faces per track, spread over its length
    (:func:`spread_best` on :func:`face_quality`).

    Faces are listed by track, then frame. Raises ValueError if ``max_samples_per_track < 1``.
    """
    if max_samples_per_track < 1:
        raise ValueError(f"max_samples_per_track must be >= 1, got {max_samples_per_track}")
    parts = []
    for t in tracks:
        q = face_quality(t.bbox, t.score, t.landmarks)
        keep = spread_best(q, max_samples_per_track)
        parts.append(t.rows[keep].with_columns(
            track_id=np.full(len(keep), t.track_id, np.int64), quality=q[keep], dur=None))
    rows = FaceRows.concat(parts)
    return rows.with_columns(face_id=np.arange(len(rows), dtype=np.int64))


def crop_with_margin(image: np.ndarray, bbox: np.ndarray, margin: float = 0.25) -> np.ndarray:
    """Crop ``bbox`` (x1, y1, x2, y2 px) grown by ``margin`` of its size on every side, clipped."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = bbox
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    a, b = int(max(0, x1 - mx)), int(max(0, y1 - my))
    c, d = int(min(w, x2 + mx)), int(min(h, y2 + my))
    return image[b:max(d, b + 1), a:max(c, a + 1)]


def extract_faces(
    path: str | os.PathLike,
    samples: FaceSamples,
    *,
    save_crops: bool = False,
    thumb_size: int = 160,
    jpeg_quality: int = 90,
    out: np.ndarray | None = None,
    cache: "CropCache | None" = None,
) -> tuple[np.ndarray, dict[str, bytes]]:
    """Cut the samples' faces out: from the detection pass's crops where ``cache`` holds them,
    else by decoding only the frames the samples are on.

    Args:
        path: the episode video the samples were detected in.
        samples: from :func:`select_samples`.
        save_crops: also return JPEG crops of every sample and one thumbnail per track (its best
            quality face), keyed ``crops/track_{tid:04d}/face_{fid:05d}.jpg`` and
            ``thumbs/track_{tid:04d}.jpg``.
        thumb_size: thumbnail side in px. jpeg_quality: 1-100.
        out: uint8 [F, 112, 112, 3] array to fill, in memory or on disk (``NpyRows``, so the
            crops of a long episode need not fit in memory); a new in-memory array when omitted.
        cache: aligned crops of the detections (:class:`.detection_crops.CropCache`); a sample
            whose row and box it holds is taken from it. Unused with ``save_crops``, whose crops
            and thumbnails need the whole frame.

    Returns:
        ``(aligned uint8 [F, 112, 112, 3] BGR, {name: JPEG bytes})``; the frames decoded are
        those of the samples the cache did not hold.

    Raises:
        VideoError: the video cannot be read or no longer has a sampled frame.
    """
    shape = (len(samples), ALIGNED_SIZE, ALIGNED_SIZE, 3)
    aligned = np.zeros(shape, np.uint8) if out is None else out
    if tuple(aligned.shape) != shape:
        raise ValueError(f"out has shape {aligned.shape}, expected {shape}")
    files: dict[str, bytes] = {}
    cached = cache.matches(samples.det_index, samples.bbox) \
        if cache is not None and not save_crops else np.zeros(len(samples), bool)
    hits = np.flatnonzero(cached)
    for i, crop in zip(hits, cache.crops(samples.det_index[hits]) if len(hits) else ()):
        aligned[i] = crop
    by_pts: dict[int, list[int]] = {}
    for i, p in enumerate(samples.pts):
        if not cached[i]:
            by_pts.setdefault(int(p), []).append(i)
    best = {}
    for i in range(len(samples)):
        t = int(samples.track_id[i])
        if t not in best or samples.quality[i] > samples.quality[best[t]]:
            best[t] = i
    thumbs = set(best.values())
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    for pts, image in read_frames_at(path, by_pts):
        for i in by_pts[pts]:
            aligned[i] = align_face(image, samples.landmarks[i])
            if not save_crops:
                continue
            crop = crop_with_margin(image, samples.bbox[i])
            tid, fid = int(samples.track_id[i]), int(samples.face_id[i])
            files[f"crops/track_{tid:04d}/face_{fid:05d}.jpg"] = _jpeg(crop, params)
            if i in thumbs:
                thumb = cv2.resize(crop, (thumb_size, thumb_size), interpolation=cv2.INTER_AREA)
                files[f"thumbs/track_{tid:04d}.jpg"] = _jpeg(thumb, params)
    return aligned, files


def _jpeg(image: np.ndarray, params: list[int]) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, params)
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
