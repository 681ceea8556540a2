"""Face detection over an episode: one decode pass that detects faces and shot cuts together."""

from __future__ import annotations

import math
import os
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .detection_crops import CropWriter
from .parallel import ordered_map
from .rows import FaceRows
from .sampling import align_faces
from .schedule import HOLD_S, adaptive_map, fewer_faces, iou_matrix, steady
from .shots import Shot, ShotCutDetector, frame_ends, shot_ids_for_frames, shots_from_cuts
from .video import PREFETCH_FRAMES, Prefetcher, VideoInfo, iter_frames, probe_video

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
        det_input: ``(width, height)`` of the detector input in pixels (see
            :func:`detector_input_size`).
    """

    video: VideoInfo
    stride: int
    frames_processed: int
    shots: list[Shot]
    detections: Detections
    det_input: tuple[int, int] = (0, 0)


# SCRFD's feature maps have strides 8, 16 and 32: an input whose sides are multiples of 32 maps
# onto whole anchor grids (InsightFace's SCRFD.forward builds its anchor centers per input size).
DET_INPUT_MULTIPLE = 32


def detector_input_size(width: int, height: int, det_size: int) -> tuple[int, int]:
    """Detector input ``(width, height)`` in pixels for a ``width`` x ``height`` frame.

    The long side is ``det_size`` and the short side keeps the frame's aspect ratio, both rounded
    up to a multiple of 32, so a 16:9 frame at ``det_size`` 640 goes in as 640x384 instead of
    being letterboxed into 640x640 (40 % fewer pixels for the same detail). SCRFD takes any input
    whose sides divide by 32.

    A frame smaller than ``det_size`` is not enlarged: its long side (rounded up to 32) is the
    input's, so ``det_size`` is an upper bound. Enlarging adds no detail, and the faces are aligned
    for recognition from the landmarks found at the detector's scale: on the 640x360 Hamilton
    clip, SCRFD-500M's landmarks on the frame enlarged to 960 px sit 0.5-3.5 px (mean, in frame
    pixels) away from those at its own size, and the faces aligned from them match their cast
    photos worse (a 24-px face 0.33 -> 0.25 cosine with ``ci_pack``; a 64-px face 0.47 -> 0.37
    with ``ci_pack_mbf``), so ``accurate`` lost cast members that ``balanced`` found.

    Args:
        width, height: the frame (px). det_size: the largest input side wanted (px).

    Raises:
        ValueError: a non-positive size.
    """
    if width <= 0 or height <= 0 or det_size <= 0:
        raise ValueError(f"sizes must be positive: frame {width}x{height}, det_size {det_size}")
    m = DET_INPUT_MULTIPLE
    side = -(-min(int(det_size), max(width, height)) // m) * m
    short = max(m, -(-int(round(side * min(width, height) / max(width, height))) // m) * m)
    return (side, short) if width >= height else (short, side)


def effective_stride(stride: int, fps: float, min_detection_fps: float = 0.0) -> int:
    """The stride a stream of ``fps`` frames per second is processed at: ``stride``, made
    smaller where it would leave fewer than ``min_detection_fps`` processed frames per second.

    ByteTrack (Zhang et al., ECCV 2022) associates a track's predicted box with a detection by
    IoU, tuned on MOT17 sequences of 14-30 fps; a face that moves its own width in 0.2 s no
    longer overlaps its last box at 5 processed frames per second, and its track breaks. So the
    floor is set in processed frames per second (the rate the tracker sees), not in frames:
    ``balanced`` (stride 2, floor 10) runs broadcast video at stride 2 and a 10-fps stream at 1.

    Args:
        stride: the largest stride wanted (>= 1). fps: the stream's frames per second.
        min_detection_fps: processed frames per second not to go under; 0 keeps ``stride``.

    Raises:
        ValueError: ``stride`` < 1.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if min_detection_fps <= 0 or fps <= 0:
        return int(stride)
    return int(max(1, min(stride, math.floor(fps / min_detection_fps + 1e-9))))


def fitted_size(width: int, height: int, input_size: tuple[int, int]) -> tuple[int, int]:
    """``(width, height)`` the frame is scaled to inside the detector input: the largest size of
    the frame's aspect ratio that fits, computed as InsightFace's ``SCRFD.detect`` does, so a
    frame decoded at this size is not resized again by the detector."""
    im_ratio = height / width
    if im_ratio > input_size[1] / input_size[0]:
        return max(1, int(input_size[1] / im_ratio)), input_size[1]
    return input_size[0], max(1, int(input_size[0] * im_ratio))


def detect_faces(detector, image: np.ndarray, det_size: int | tuple[int, int],
                 det_thresh: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run an InsightFace SCRFD/RetinaFace detector on one frame.

    Args:
        detector: an ``insightface.model_zoo`` detection model (``SCRFD`` or ``RetinaFace``).
        image: BGR uint8 [H, W, 3].
        det_size: detector input in pixels: ``(width, height)`` (see
            :func:`detector_input_size`), or one side of a square; the frame is scaled to fit
            and padded (InsightFace's ``detect``).
        det_thresh: minimum detection score.

    Returns:
        ``(bbox float32 [n, 4] px, score float32 [n], landmarks float32 [n, 5, 2] px)``.
    """
    size = (det_size, det_size) if np.isscalar(det_size) else tuple(det_size)
    boxes, kps = detector.detect(image, input_size=size, det_thresh=det_thresh)
    n = 0 if boxes is None else len(boxes)
    if n == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
    if kps is None:
        raise ValueError("the detection model gives no landmarks; use a 5-landmark SCRFD/RetinaFace")
    return (boxes[:, :4].astype(np.float32), boxes[:, 4].astype(np.float32),
            np.asarray(kps, np.float32).reshape(n, 5, 2))


#: Side step (px) of the windows faces are detected again in, and the smallest window: a
#: multiple of SCRFD's strides (8, 16, 32), and few distinct input shapes for ONNX Runtime.
REFINE_WINDOW_STEP = 64


def refine_landmarks(detector, frame: np.ndarray, bbox: np.ndarray, kps: np.ndarray,
                     scale: float, below_px: float, det_thresh: float) -> np.ndarray:
    """The landmarks of the small faces, found again at the frame's full resolution.

    The detector sees the frame scaled down ``scale`` times, and its landmarks are only as
    precise as the pixels it sees: at ``fast`` on 720p (a 480-px input), one input pixel is 2.7
    frame pixels, more than a quarter of the distance between the eyes of a 24-px face. The
    faces are aligned for recognition from these landmarks, so a small face aligned from coarse
    ones matches its cast photo worse (on the Hamilton clip, alex-lacamoire's far shot: 0.26 at ``fast`` against
    0.33 at its own scale; ``ci_pack`` links at 0.30). So every face whose box is under
    ``below_px`` in the detector's input is detected again in a square window of the full-size
    frame around it (three times its side, at least :data:`REFINE_WINDOW_STEP` px, rounded up
    to that step; zeros beyond the frame's edge), at scale 1, and the landmarks of the face
    found there that overlaps the first box most (IoU >= 0.5) replace the first ones. Boxes and
    scores are kept, so tracking sees the same detections; a face not found again keeps its
    landmarks. This is the coarse-to-fine cascade of MTCNN (Zhang et al., "Joint Face Detection
    and Alignment using Multi-task Cascaded Convolutional Networks", IEEE SPL 2016), whose later
    stages refine landmarks on crops at a finer scale.

    Args:
        detector: the detection model (see :func:`detect_faces`).
        frame: BGR uint8 [H, W, 3], the full-size frame.
        bbox: float32 [N, 4] px in ``frame``. kps: float32 [N, 5, 2] px in ``frame``.
        scale: frame pixels per detector-input pixel (1 or less: nothing to refine).
        below_px: faces whose longer box side is under this many detector-input pixels are
            refined; 0 refines none.
        det_thresh: the pass's minimum score. The face is looked for again at
            ``min(det_thresh, 0.3)``: it was accepted already, and the window's context
            scores it differently.

    Returns:
        float32 [N, 5, 2] px: a copy with the refined rows replaced (``kps`` itself when none).
    """
    if below_px <= 0 or scale <= 1.0 or not len(bbox):
        return kps
    side = np.maximum(bbox[:, 2] - bbox[:, 0], bbox[:, 3] - bbox[:, 1])
    small = np.flatnonzero(side < below_px * scale)
    if not len(small):
        return kps
    kps = kps.copy()
    height, width = frame.shape[:2]
    step = REFINE_WINDOW_STEP
    for i in small:
        win = int(-(-max(step, 3 * side[i]) // step) * step)
        x0 = int(round((bbox[i, 0] + bbox[i, 2] - win) / 2))
        y0 = int(round((bbox[i, 1] + bbox[i, 3] - win) / 2))
        window = np.zeros((win, win, 3), np.uint8)
        fx0, fy0 = max(0, x0), max(0, y0)
        fx1, fy1 = min(width, x0 + win), min(height, y0 + win)
        window[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0] = frame[fy0:fy1, fx0:fx1]
        found, _, found_kps = detect_faces(detector, window, (win, win), min(det_thresh, 0.3))
        if not len(found):
            continue
        found = found + np.array([x0, y0, x0, y0], np.float32)
        iou = iou_matrix(bbox[i], found)[0]
        best = int(np.argmax(iou))
        if iou[best] >= 0.5:
            kps[i] = found_kps[best] + np.array([x0, y0], np.float32)
    return kps


def coverage(frame_idx: np.ndarray, shot_id: np.ndarray, frame_ts: np.ndarray,
             shots: list[Shot], stride: int | np.ndarray, fps: float) -> np.ndarray:
    """Seconds each processed frame stands for (float64 [N]).

    A processed frame ``p`` stands for frames ``p .. p + stride - 1``, cut at the last frame of
    its shot; its coverage runs from its own ts to the end of the last of those frames (the next
    frame's ts; see ``shots.frame_ends`` for the stream's last frame).

    Args:
        frame_idx: int [N] processed frame of each row. shot_id: int [N] its shot.
        frame_ts: float64 [n_frames] ts of every decoded frame. shots: the shots.
        stride: frames per processed frame, one for all or int [N] per row (the adaptive
            schedule's span, :func:`.schedule.adaptive_map`). fps: for the duration of the
            stream's last frame.
    """
    n = len(frame_ts)
    frame_end = frame_ends(frame_ts, fps)
    shot_end = np.array([s.end_frame for s in shots], np.int64)[shot_id]
    last = np.minimum(np.minimum(frame_idx + stride - 1, n - 1), shot_end)
    return frame_end[last] - frame_ts[frame_idx]


def scan_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of :func:`scan_episode` that come from a profile's settings (the
    ``detections`` stage's keys of ``settings.ASSET_SETTINGS``, ``adaptive_stride`` as
    ``adaptive``), so that every caller runs the pass as the ``detections`` asset does.

    Raises:
        KeyError: a setting is missing from ``settings``.
    """
    return {"stride": settings["stride"], "fps": settings["fps"],
            "det_size": settings["det_size"], "det_thresh": settings["det_thresh"],
            "scene_threshold": settings["scene_threshold"],
            "min_scene_len_s": settings["min_scene_len_s"],
            "min_detection_fps": settings["min_detection_fps"],
            "refine_below_px": settings["refine_below_px"],
            "adaptive": settings["adaptive_stride"]}


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
    workers: int = 1,
    min_detection_fps: float = 0.0,
    crops: CropWriter | None = None,
    refine_below_px: float = 0.0,
    adaptive: bool = False,
) -> EpisodeScan:
    """Decode the episode once; detect faces on every ``stride``-th frame and shot cuts on all.

    Decoding and shot-cut detection (on the small copy of every frame) run in their own thread, a
    few frames ahead (:class:`.video.Prefetcher`); the detector runs on the caller's thread, on
    frames decoded at the detector's scale (:func:`detector_input_size`, :func:`fitted_size`),
    ``workers`` frames at once (:func:`.parallel.ordered_map`; results are kept in frame order).
    The stride restarts at every cut, so each shot's first frame is processed.

    Args:
        path: video file.
        detector: InsightFace detection model (see :func:`detect_faces`).
        stride: process every ``stride``-th frame, or a smaller stride where the stream's
            frame rate would leave fewer than ``min_detection_fps`` processed frames per second
            (:func:`effective_stride`; the one used is ``EpisodeScan.stride``).
        fps: frames per second override; 0 reads it from the container.
        det_size: detector input's largest long side (px); a smaller frame keeps its own size
            (:func:`detector_input_size`). det_thresh: minimum detection score.
        scene_threshold, min_scene_len_s: PySceneDetect content-detector settings (min length in s).
        progress: called as ``progress(frames_done, frames_total)`` after every frame.
        workers: detector calls run at once (one per core with single-threaded ONNX Runtime
            sessions, see ``resources.models``); 1 runs them on the caller's thread.
        crops: where to append the ArcFace-aligned crop of every detection, in the detections
            table's row order, cut from the full-size frame in the same worker call as the
            detection (:func:`.sampling.align_faces`; see :mod:`.detection_crops`). The
            caller commits or discards it.
        refine_below_px: faces under this many pixels in the detector's input get their
            landmarks from the full-size frame (:func:`refine_landmarks`); 0 keeps the
            detector's.
        adaptive: the adaptive schedule (:mod:`.schedule`): every other processed frame of a
            shot is skipped where the detections on either side of it agree
            (:func:`.schedule.steady`) and no face was lost for :data:`.schedule.HOLD_S`, and
            those stand for its frames too. Not at stride 1 (a stream slow enough that
            ``min_detection_fps`` asks for every frame).

    Raises:
        VideoError: unreadable, empty, truncated or audio-only video (see :mod:`.video`).
    """
    info = probe_video(path, fps=fps)
    stride = effective_stride(stride, info.fps, min_detection_fps)
    det_input = detector_input_size(info.width, info.height, det_size)
    # Processed frames are decoded straight to the size the detector scales them to, and the
    # boxes and landmarks scaled back to full-frame pixels.
    fit = fitted_size(info.width, info.height, det_input)
    to_full = np.array([info.width / fit[0], info.height / fit[1]], np.float32)
    scale = float(to_full.max())
    refine = refine_below_px > 0 and scale > 1.0
    # at stride 1 the stream is too slow for the profile's stride: every frame is needed
    adaptive = adaptive and stride > 1
    cuts = ShotCutDetector(info.fps, scene_threshold, min_scene_len_s)
    frame_ts = array("d")
    cols: dict[str, list] = {k: [] for k in ("frame_idx", "span", "ts", "pts", "bbox", "score",
                                             "kps")}
    processed = 0

    def detect(frame):
        if frame.image is None:  # a frame between two processed ones: decoded for cuts only
            return None
        bbox, score, kps = detect_faces(detector, frame.image, det_input, det_thresh)
        bbox, kps = bbox * np.tile(to_full, 2), kps * to_full
        if refine:
            kps = refine_landmarks(detector, frame.full, bbox, kps, scale, refine_below_px,
                                   det_thresh)
        aligned = align_faces(frame.full, kps) if crops is not None else None
        return bbox, score, kps, aligned

    def agree(a, b) -> bool:
        return steady(a[0], a[1], b[0], b[1])

    def fewer(a, b) -> bool:
        return fewer_faces(a[0], b[0])

    # Cuts are found in the decode thread, so that the stride restarts at every shot.
    with Prefetcher(lambda: iter_frames(path, info, stride, image_size=fit, new_shot=cuts.feed,
                                        keep_full=crops is not None or refine),
                    PREFETCH_FRAMES) as frames:
        results = adaptive_map(detect, frames, stride, workers, same=agree, lost=fewer,
                               hold=int(round(HOLD_S * info.fps))) if adaptive else \
            ((frame, found, stride) for frame, found in ordered_map(detect, frames, workers))
        for frame, found, span in results:
            frame_ts.append(frame.ts)
            if found is not None:
                processed += 1
                bbox, score, kps, aligned = found
                if crops is not None:
                    crops.add(aligned, bbox)
                n = len(score)
                cols["frame_idx"].append(np.full(n, frame.frame_idx, np.int64))
                cols["span"].append(np.full(n, span, np.int64))
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
            shot_id=shot_id,
            dur=coverage(frame_idx, shot_id, ts, shots, np.concatenate(cols["span"]), info.fps))
    else:
        dets = Detections.empty()
    video = replace(info, n_frames=len(ts), duration_s=max(info.duration_s, shots[-1].end_ts))
    return EpisodeScan(video, stride, processed, shots, dets, det_input)
