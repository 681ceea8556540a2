"""Face detection over an episode: one decode pass that detects faces and shot cuts together."""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .rows import FaceRows
from .shots import Shot, ShotCutDetector, frame_ends, shot_ids_for_frames, shots_from_cuts
from .video import VideoInfo, iter_frames, probe_video

ProgressFn = Callable[[int, int], None]
"""``progress(frames_done, frames_total)``; ``frames_total`` is 0 when unknown."""


Detections = FaceRows
"""The detections table: a :class:`~.rows.FaceRows` with ``shot_id`` and ``dur``, one row per
face per processed frame."""


@dataclass
class EpisodeScan:
    """Output of the detection pass.

    Attributes:
        video: stream metadata; ``n_frames`` is the number of frames actually decoded.
        stride: every ``stride``-th frame was processed.
        frames_processed: frames run through the detector.
        shots: shots in order, covering every frame.
        detections: faces found on processed frames.
    """

    video: VideoInfo
    stride: int
    frames_processed: int
    shots: list[Shot]
    detections: Detections


def detect_faces(detector, image: np.ndarray, det_size: int, det_thresh: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run an InsightFace SCRFD/RetinaFace detector on one frame.

    Args:
        detector: an ``insightface.model_zoo`` detection model (``SCRFD`` or ``RetinaFace``).
        image: BGR uint8 [H, W, 3].
        det_size: square detector input size in pixels (the frame is letterboxed into it).
        det_thresh: minimum detection score.

    Returns:
        ``(bbox float32 [n, 4] px, score float32 [n], landmarks float32 [n, 5, 2] px)``.
    """
    boxes, kps = detector.detect(image, input_size=(det_size, det_size), det_thresh=det_thresh)
    n = 0 if boxes is None else len(boxes)
    if n == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
    if kps is None:
        raise ValueError("the detection model gives no landmarks; use a 5-landmark SCRFD/RetinaFace")
    return (boxes[:, :4].astype(np.float32), boxes[:, 4].astype(np.float32),
            np.asarray(kps, np.float32).reshape(n, 5, 2))


def coverage(frame_idx: np.ndarray, shot_id: np.ndarray, frame_ts: np.ndarray,
             shots: list[Shot], stride: int, fps: float) -> np.ndarray:
    """Seconds each processed frame stands for (float64 [N]).

    A processed frame ``p`` stands for frames ``p .. p + stride - 1``, cut at the last frame of
    its shot; its coverage runs from its own ts to the end of the last of those frames (the next
    frame's ts; see ``shots.frame_ends`` for the stream's last frame).

    Args:
        frame_idx: int [N] processed frame of each row. shot_id: int [N] its shot.
        frame_ts: float64 [n_frames] ts of every decoded frame. shots: the shots.
        stride: frames per processed frame. fps: for the duration of the stream's last frame.
    """
    n = len(frame_ts)
    frame_end = frame_ends(frame_ts, fps)
    shot_end = np.array([s.end_frame for s in shots], np.int64)[shot_id]
    last = np.minimum(np.minimum(frame_idx + stride - 1, n - 1), shot_end)
    return frame_end[last] - frame_ts[frame_idx]


def scan_episode(
    path: str | os.PathLike,
    detector,
    *,
    stride: int = 1,
    fps: float = 0.0,
    det_size: int = 640,
    det_thresh: float = 0.5,
    scene_threshold: float = 27.0,
    min_scene_len_s: float = 0.5,
    progress: ProgressFn | None = None,
) -> EpisodeScan:
    """Decode the episode once; detect faces on every ``stride``-th frame and shot cuts on all.

    Args:
        path: video file.
        detector: InsightFace detection model (see :func:`detect_faces`).
        stride: process every ``stride``-th frame.
        fps: frames per second override; 0 reads it from the container.
        det_size: detector input size (px). det_thresh: minimum detection score.
        scene_threshold, min_scene_len_s: PySceneDetect content-detector settings (min length in s).
        progress: called as ``progress(frames_done, frames_total)`` after every frame.

    Raises:
        VideoError: unreadable, empty, truncated or audio-only video (see :mod:`.video`).
    """
    info = probe_video(path, fps=fps)
    cuts = ShotCutDetector(info.fps, scene_threshold, min_scene_len_s)
    frame_ts = array("d")
    cols: dict[str, list] = {k: [] for k in ("frame_idx", "ts", "pts", "bbox", "score", "kps")}
    processed = 0
    for frame in iter_frames(path, info, stride):
        frame_ts.append(frame.ts)
        cuts.feed(frame.frame_idx, frame.small)
        if frame.image is not None:
            processed += 1
            bbox, score, kps = detect_faces(detector, frame.image, det_size, det_thresh)
            n = len(score)
            cols["frame_idx"].append(np.full(n, frame.frame_idx, np.int64))
            cols["ts"].append(np.full(n, frame.ts, np.float64))
            cols["pts"].append(np.full(n, frame.pts, np.int64))
            cols["bbox"].append(bbox)
            cols["score"].append(score)
            cols["kps"].append(kps)
        if progress is not None:
            progress(frame.frame_idx + 1, info.n_frames)
    ts = np.frombuffer(frame_ts, dtype=np.float64)
    shots = shots_from_cuts(cuts.cuts(), ts, info.fps)
    if cols["score"]:
        frame_idx = np.concatenate(cols["frame_idx"])
        shot_id = shot_ids_for_frames(shots, frame_idx)
        dets = Detections(
            frame_idx, *(np.concatenate(cols[k]) for k in ("ts", "pts", "bbox", "score", "kps")),
            shot_id=shot_id, dur=coverage(frame_idx, shot_id, ts, shots, stride, info.fps))
    else:
        dets = Detections.empty()
    video = replace(info, n_frames=len(ts), duration_s=max(info.duration_s, shots[-1].end_ts))
    return EpisodeScan(video, stride, processed, shots, dets)
