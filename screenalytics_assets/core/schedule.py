"""The adaptive detection schedule: the detector runs at twice the stride where nothing changes.

At stride k the detection pass processes frames 0, k, 2k, ... of every shot. With the adaptive
schedule, the frames 0, 2k, 4k, ... (*anchors*) are always processed; a frame between two anchors
of one shot (*midpoint*) is processed only when the detections of its two anchors differ: a face
appears or leaves, moves or changes size (no one-to-one match at :data:`STEADY_IOU`), or scores
under :data:`STEADY_SCORE`; and for :data:`HOLD_S` after an anchor that lost a face, within its
shot. Where they agree, the first anchor's faces stand for the midpoint's frames too
(:func:`.detect.coverage` with a span of 2k). So births, deaths, fast motion and faces the
detector is unsure of are seen at stride k, and a steady shot (a face talking to the camera, the
bulk of TV) costs half the detector calls.

This is the keyframe idea of detect-then-track pipelines (the detector on some frames only;
Feichtenhofer et al., "Detect to Track and Track to Detect", ICCV 2017), with the keyframes
chosen by whether the scene changed rather than at a fixed interval. Own code: neither
InsightFace nor supervision/trackers decide which frames a detector sees.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

#: Minimum IoU of a face at one anchor with the same face at the next: PASCAL VOC's criterion for
#: "the same box" (Everingham et al., IJCV 2010). At 25 fps and stride 2 the anchors are 0.16 s
#: apart; a face that moves or zooms more than this gets the midpoint processed.
STEADY_IOU = 0.5

#: Minimum detection score of every face at both anchors: ByteTrack's high threshold
#: (``track_thresh`` of the ``fast`` and ``balanced`` profiles). A face scored lower is one the
#: tracker handles by its second association or as a low-score tracklet, which are judged on
#: the detections at stride k (see ``core.tracking``).
STEADY_SCORE = 0.6

#: Seconds after an anchor with fewer faces than the one before it during which every midpoint
#: (of the same shot) is detected: as long as ByteTrack keeps a lost track at the profiles'
#: ``track_buffer`` (30 frames at 30 fps), so a face the detector misses on a few frames in a row
#: is found again before its track is dropped. A cut ends it: tracks do not cross cuts.
HOLD_S = 1.0


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU float32 [M, N] of xyxy boxes ``a`` float [M, 4] with ``b`` float [N, 4] (px).

    The formula of ``supervision.box_iou_batch``, which the tracker uses; written out here
    because importing supervision in the detection pass, the run's peak of memory, adds 70 MiB
    of resident set (it is imported later, by the tracks stage)."""
    a = np.asarray(a, np.float32).reshape(-1, 4)[:, None, :]
    b = np.asarray(b, np.float32).reshape(-1, 4)[None, :, :]
    x1 = np.maximum(a[..., 0], b[..., 0])
    y1 = np.maximum(a[..., 1], b[..., 1])
    x2 = np.minimum(a[..., 2], b[..., 2])
    y2 = np.minimum(a[..., 3], b[..., 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return (inter / np.maximum(area_a + area_b - inter, 1e-9)).astype(np.float32)


def steady(bbox_a: np.ndarray, score_a: np.ndarray, bbox_b: np.ndarray, score_b: np.ndarray,
           min_iou: float = STEADY_IOU, min_score: float = STEADY_SCORE) -> bool:
    """Whether two anchors' detections show the same faces in the same places.

    True when both have the same number of faces, every score is >= ``min_score``, and the
    faces pair up one to one (greedily, highest IoU first) with IoU >= ``min_iou``. Two anchors
    without faces are steady.

    Args:
        bbox_a, bbox_b: float [M, 4], [N, 4] xyxy boxes (px). score_a, score_b: float [M], [N].
    """
    if len(bbox_a) != len(bbox_b):
        return False
    if len(bbox_a) == 0:
        return True
    if min(float(np.min(score_a)), float(np.min(score_b))) < min_score:
        return False
    iou = iou_matrix(bbox_a, bbox_b)
    for _ in range(len(bbox_a)):
        i, j = np.unravel_index(int(np.argmax(iou)), iou.shape)
        if iou[i, j] < min_iou:
            return False
        iou[i, :] = -1.0
        iou[:, j] = -1.0
    return True


def fewer_faces(bbox_a: np.ndarray, bbox_b: np.ndarray) -> bool:
    """Whether the second anchor has fewer faces than the first (float [M, 4], [N, 4] boxes):
    a face left, or the detector missed it."""
    return len(bbox_b) < len(bbox_a)


class ScheduledFrame(Protocol):
    """What :func:`adaptive_map` needs of a frame (``core.video.DecodedFrame``)."""

    image: Any  # None on frames the stride skips
    shot_offset: int  # frames since the first frame of the frame's shot


class _Entry:
    """A frame on its way through :func:`adaptive_map`: ``done`` once its result (or that it
    has none) is known, ``final`` once its span is (an anchor's waits for its midpoint)."""

    __slots__ = ("frame", "future", "result", "done", "final", "span")

    def __init__(self, frame, anchor: bool, span: int) -> None:
        self.frame, self.span = frame, span
        self.future: Future | None = None
        self.result = None
        self.done = frame.image is None  # a frame only decoded for cuts: nothing to compute
        self.final = not anchor


def adaptive_map(detect: Callable[[Any], Any], frames: Iterable[ScheduledFrame], stride: int,
                 workers: int = 1, ahead: int = 2,
                 same: Callable[[Any, Any], bool] | None = None,
                 lost: Callable[[Any, Any], bool] | None = None, hold: int = 0,
                 ) -> Iterator[tuple[Any, Any, int]]:
    """Yield ``(frame, detect(frame) or None, span)`` for every frame, in order, running
    ``detect`` on the anchors and on the midpoints whose anchors are not ``same``, nor within
    ``hold`` frames after an anchor that ``lost`` a face.

    Args:
        detect: the detector call on one frame; its result is passed to ``same``.
        frames: every decoded frame in order; ``image`` is None on frames the stride skips,
            ``shot_offset`` counts frames from the start of the frame's shot.
        stride: the stride the frames were decoded at (frames with an image are ``stride``
            apart within a shot).
        workers: ``detect`` calls at once, in threads (ONNX Runtime releases the GIL; see
            ``core.parallel.ordered_map``); 1 calls it on the caller's thread.
        ahead: with ``workers`` > 1, up to ``workers * ahead`` calls are queued at once.
        same: ``same(result_a, result_b)``: whether the midpoint between two anchors with these
            results can be skipped.
        lost: ``lost(result_a, result_b)``: whether a face of the first anchor is not in the
            second (:func:`fewer_faces`).
        hold: frames after an anchor that ``lost`` a face during which every midpoint of its shot
            is detected anyway (the hold ends at the next cut): a face the detector finds only on
            some frames (small, scored near the threshold) can be missed on both anchors of a
            pair while it is still there, and its tracker needs the frames between to keep it
            (see :data:`HOLD_S`).

    Yields:
        ``(frame, result, span)``: ``result`` is None on frames not processed (skipped by the
        stride or by the schedule); ``span`` is how many frames a processed frame stands for:
        ``2 * stride`` for an anchor whose midpoint was skipped, else ``stride``.

    Raises:
        Whatever ``detect`` raises, when its frame is reached.
    """
    limit = max(1, workers) * max(1, ahead)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="model-call") \
        if workers > 1 else None
    queue: deque[_Entry] = deque()  # every frame not yet yielded, in order
    in_flight: deque[_Entry] = deque()  # detector calls running or queued, in order
    undecided: deque[tuple[_Entry, _Entry, _Entry | None]] = deque()  # (midpoint, anchors)
    last_anchor: _Entry | None = None
    midpoint: _Entry | None = None  # after last_anchor, before the next processed frame
    lost_at = -(1 << 62)  # frame of the latest anchor that lost a face of the one before it

    def run(entry: _Entry) -> None:
        if pool is None:
            entry.result, entry.done = detect(entry.frame), True
        else:
            entry.future = pool.submit(detect, entry.frame)
            in_flight.append(entry)

    def ready(entry: _Entry | None) -> bool:
        return entry is None or entry.done or entry.future is not None and entry.future.done()

    def settle(entry: _Entry | None) -> None:
        if entry is not None and entry.future is not None and not entry.done:
            entry.result, entry.done = entry.future.result(), True

    def decide(block: bool) -> None:
        """Skip or run the midpoints whose anchors are detected (all of them with ``block``),
        in order: the midpoint is skipped when its anchors agree and no face was lost in the
        last ``hold`` frames of its shot."""
        nonlocal lost_at
        while undecided and (block or all(ready(e) for e in undecided[0][1:])):
            mid, before, after = undecided.popleft()
            settle(before)
            settle(after)
            agree = after is not None and same is not None and same(before.result, after.result)
            if after is not None and lost is not None and lost(before.result, after.result):
                lost_at = after.frame.frame_idx
            # the hold ends at a cut too: the tracker starts afresh in every shot, so no lost
            # track of the shot before is kept there to be found again
            shot_start = before.frame.frame_idx - before.frame.shot_offset
            held = shot_start <= lost_at and before.frame.frame_idx < lost_at + hold
            if agree and not held:
                mid.done = True
                before.span = 2 * stride
            else:
                run(mid)
            before.final = True

    try:
        for frame in frames:
            anchor = frame.image is not None and (frame.shot_offset // stride) % 2 == 0
            entry = _Entry(frame, anchor, stride)
            queue.append(entry)
            if anchor:
                run(entry)
                if midpoint is not None:  # its shot goes on here, or a new one starts
                    undecided.append((midpoint, last_anchor,
                                      entry if frame.shot_offset else None))
                    midpoint = None
                elif last_anchor is not None:
                    last_anchor.final = True
                last_anchor = entry
            elif frame.image is not None:
                midpoint = entry
            decide(block=False)
            while in_flight and (len(in_flight) >= limit or in_flight[0].future.done()):
                settle(in_flight.popleft())
                decide(block=False)
            while queue and queue[0].done and queue[0].final:
                e = queue.popleft()
                yield e.frame, e.result, e.span
        if midpoint is not None:  # the video ends before its next anchor
            undecided.append((midpoint, last_anchor, None))
        elif last_anchor is not None:
            last_anchor.final = True
        decide(block=True)
        for e in queue:
            settle(e)
            yield e.frame, e.result, e.span
    finally:
        if pool is not None:
            for e in in_flight:
                if e.future is not None:
                    e.future.cancel()
            pool.shutdown(wait=True)
