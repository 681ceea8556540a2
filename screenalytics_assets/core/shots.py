"""Shot (scene-cut) detection with PySceneDetect's content detector, fed frame by frame.

The detector is fed the small copies that the decoding pass already makes, so finding cuts costs no
second decode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# PySceneDetect's default content threshold, and its default minimum scene length (15 frames) as
# seconds at 30 fps, so that it means the same at any frame rate; see
# https://www.scenedetect.com/docs/latest/api/detectors.html#scenedetect.detectors.content_detector
DEFAULT_SCENE_THRESHOLD = 27.0
DEFAULT_MIN_SCENE_LEN_S = 0.5


@dataclass(frozen=True)
class Shot:
    """A run of frames between two cuts.

    Attributes:
        shot_id: 0-based index in the episode.
        start_frame, end_frame: first and last frame (inclusive, 0-based decode order).
        start_ts, end_ts: seconds; ``end_ts`` is the end of the last frame (see
            :func:`frame_ends`).
    """

    shot_id: int
    start_frame: int
    end_frame: int
    start_ts: float
    end_ts: float

    def to_dict(self) -> dict:
        return asdict(self)


class ShotCutDetector:
    """Streaming wrapper around :class:`scenedetect.ContentDetector`.

    Args:
        fps: frames per second of the stream (for PySceneDetect's timecodes).
        threshold: content threshold (PySceneDetect default 27).
        min_scene_len_s: minimum shot length in seconds (0.5 s = PySceneDetect's 15 frames at 30
            fps).
    """

    def __init__(self, fps: float, threshold: float = DEFAULT_SCENE_THRESHOLD,
                 min_scene_len_s: float = DEFAULT_MIN_SCENE_LEN_S) -> None:
        # imported here: only the detection pass needs PySceneDetect
        from scenedetect import ContentDetector
        from scenedetect.common import FrameTimecode

        self._timecode = FrameTimecode
        self._fps = fps
        self._detector = ContentDetector(threshold=threshold,
                                         min_scene_len=float(min_scene_len_s))
        self._cuts: list[int] = []
        self._last = 0

    def feed(self, frame_idx: int, small_bgr: np.ndarray) -> bool:
        """Feed the next frame (frame indices must be consecutive). ``small_bgr``: uint8 [h, w, 3].

        Returns True when a cut is found at this very frame (a new shot starts here).
        PySceneDetect's content detector reports a cut on the frame where it happens; with its
        default flash filter (merge mode) a cut that follows the previous one too closely is
        merged into it, i.e. not reported at all, never reported late.
        """
        tc = self._timecode(frame_idx, fps=self._fps)
        found = [c.frame_num for c in self._detector.process_frame(tc, small_bgr)]
        self._cuts.extend(found)
        self._last = frame_idx
        return frame_idx in found and frame_idx > 0

    def cuts(self) -> list[int]:
        """Frame indices where a new shot starts (never 0), sorted. Call after the last frame."""
        tail = self._detector.post_process(self._timecode(self._last, fps=self._fps))
        cuts = sorted(set(self._cuts) | {c.frame_num for c in tail})
        return [c for c in cuts if c > 0]


def frame_ends(frame_ts: np.ndarray, fps: float) -> np.ndarray:
    """float64 [n_frames]: when each frame ends (s), i.e. the next frame's timestamp.

    The last frame lasts as long as the one before it (right for constant and variable frame
    rates alike); a single frame lasts ``1 / fps``.
    """
    frame_ts = np.asarray(frame_ts, np.float64)
    if len(frame_ts) == 0:
        return frame_ts
    last = frame_ts[-1] - frame_ts[-2] if len(frame_ts) > 1 else 1.0 / fps
    return np.append(frame_ts[1:], frame_ts[-1] + last)


def shots_from_cuts(cuts: list[int], frame_ts: np.ndarray, fps: float) -> list[Shot]:
    """Build shots from cut frames.

    Args:
        cuts: frame indices where a shot starts, sorted, each in ``(0, n_frames)``.
        frame_ts: float64 [n_frames], timestamp (s) of every decoded frame.
        fps: frames per second (see :func:`frame_ends`).
    """
    n = len(frame_ts)
    ends = frame_ends(frame_ts, fps)
    bounds = [0, *[c for c in cuts if 0 < c < n], n]
    return [
        Shot(i, a, b - 1, float(frame_ts[a]), float(ends[b - 1]))
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
    ]


def shot_ids_for_frames(shots: list[Shot], frame_idx: np.ndarray) -> np.ndarray:
    """int32 [N] shot id of each frame index in ``frame_idx`` (int [N])."""
    starts = np.array([s.start_frame for s in shots], dtype=np.int64)
    return (np.searchsorted(starts, np.asarray(frame_idx), side="right") - 1).astype(np.int32)
