"""ByteTrack tracking of detections, reset at every shot cut so that no track crosses one.

Uses Roboflow's ``trackers`` package (``ByteTrackTracker``), the maintained successor of the ByteTrack
that ``supervision`` shipped until 0.26. It works on boxes and scores only, so tracking reads the
detections table and never touches pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .detect import Detections
from .rows import FaceRows


@dataclass(frozen=True)
class TrackingParams:
    """ByteTrack settings (Zhang et al., "ByteTrack", ECCV 2022; defaults from ``trackers``).

    Attributes:
        track_thresh: detections at or above this score start new tracks and are matched first.
        match_thresh: minimum IoU between a track's predicted box and a detection to match them.
        track_buffer: how long a lost track is kept, in frames at 30 fps (ByteTrack's convention,
            scaled by ``trackers`` to the real frame rate).
        min_consecutive_frames: matched frames before a track gets an id; 1 keeps a face's first
            frame in its track.
        low_score_track_s: a chain of detections under ``track_thresh`` that continues no track
            becomes a track of its own when it lasts at least this many seconds, detected on at
            least :data:`LOW_SCORE_DENSITY` of the processed frames it spans (see
            :func:`_promote_persistent`); 0 drops them all, as ByteTrack does.
    """

    track_thresh: float = 0.6
    match_thresh: float = 0.1
    track_buffer: int = 30
    min_consecutive_frames: int = 1
    low_score_track_s: float = 0.0


#: The per-face columns of a track (its rows of the detections table).
TRACK_COLUMNS = ("det_index", "frame_idx", "ts", "pts", "bbox", "score", "landmarks", "dur")


#: Largest ratio between the areas of a track's box and a detection for them to match. A face
#: does not grow or shrink fourfold between two processed frames, but with ByteTrack's low IoU
#: threshold a small face's lost track could otherwise take the low-score box of a large face
#: that covers it (a close-up passing in front of the audience).
MAX_AREA_RATIO = 4.0


def _box_iou(boxes_1: np.ndarray, boxes_2: np.ndarray) -> np.ndarray:
    """IoU matrix [N, M] float of xyxy boxes [N, 4] and [M, 4] (``supervision.box_iou_batch``).

    supervision and trackers are imported on first use, not with this module: every artifact
    codec imports :class:`Track`, and the command line should not pay for them when it only plans
    a run."""
    import supervision as sv

    return sv.box_iou_batch(boxes_1, boxes_2)


def scale_gated_iou():
    """A ``trackers`` association metric: IoU (``supervision.box_iou_batch``) set to 0 between
    boxes whose areas differ by more than :data:`MAX_AREA_RATIO`; plugged into
    ``ByteTrackTracker(iou=...)``, the ``trackers`` hook for custom association metrics."""
    from trackers import BaseIoU

    class ScaleGatedIoU(BaseIoU):
        def _compute(self, boxes_1: np.ndarray, boxes_2: np.ndarray) -> np.ndarray:
            iou = _box_iou(boxes_1, boxes_2)
            a1 = (boxes_1[:, 2] - boxes_1[:, 0]) * (boxes_1[:, 3] - boxes_1[:, 1])
            a2 = (boxes_2[:, 2] - boxes_2[:, 0]) * (boxes_2[:, 3] - boxes_2[:, 1])
            ratio = np.maximum(a1[:, None], a2[None]) / np.maximum(
                np.minimum(a1[:, None], a2[None]), 1e-9)
            return np.where(ratio <= MAX_AREA_RATIO, iou, 0.0)

    return ScaleGatedIoU()


@dataclass
class Track:
    """A face followed through consecutive processed frames of one shot.

    Attributes:
        track_id: 0-based, unique in the episode, in order of first appearance.
        shot_id: the shot the track lies in.
        rows: its L detections in frame order (:class:`~.rows.FaceRows` with ``det_index``, the
            rows of the detections table, and ``dur``). Their columns read as attributes:
            ``det_index`` int64 [L]; ``frame_idx`` int64 [L]; ``ts`` float64 [L] s; ``pts``
            int64 [L]; ``bbox`` float32 [L, 4] px; ``score`` float32 [L]; ``landmarks`` float32
            [L, 5, 2] px; ``dur`` float64 [L] s each detection stands for.
    """

    track_id: int
    shot_id: int
    rows: FaceRows = field(repr=False)

    @classmethod
    def from_columns(cls, track_id: int, shot_id: int, det_index, frame_idx, ts, pts, bbox,
                     score, landmarks, dur) -> "Track":
        """A track from its column arrays (shapes as in :class:`~.rows.FaceRows`)."""
        return cls(track_id, shot_id, FaceRows(frame_idx, ts, pts, bbox, score, landmarks,
                                               dur=dur, det_index=det_index))

    @property
    def start_frame(self) -> int:
        return int(self.rows.frame_idx[0])

    @property
    def end_frame(self) -> int:
        return int(self.rows.frame_idx[-1])

    def __len__(self) -> int:
        return len(self.rows)


def _column(name: str) -> property:
    return property(lambda self: getattr(self.rows, name),
                    lambda self, value: setattr(self.rows, name, value), doc=f"``rows.{name}``")


for _name in TRACK_COLUMNS:
    setattr(Track, _name, _column(_name))


def track_detections(dets: Detections, fps: float, params: TrackingParams = TrackingParams(),
                     stride: int = 1) -> list[Track]:
    """Link detections into tracks with ByteTrack, one fresh tracker state per shot.

    At ``stride`` k the tracker sees every k-th frame, so it runs at ``fps / k`` processed frames
    per second: one Kalman step per processed frame (the motion model ByteTrack is tuned for)
    and a lost track kept for ``track_buffer`` frames at 30 fps, the same time at every stride.
    Each detection still stands for the k frames it represents (``Detections.dur``).

    Args:
        dets: the detections table; rows need not be sorted.
        fps: stream frame rate (frames per second).
        params: ByteTrack settings.
        stride: every ``stride``-th frame was processed (>= 1).

    Returns:
        Tracks sorted by (start frame, shot, first detection), with ids 0..T-1. Every detection
        the tracker keeps belongs to exactly one track. Detections under ``track_thresh``
        continue a track (ByteTrack's second association, and
        :func:`_continue_with_low_scores` where the motion model lost the face), make one of
        their own when they persist for ``params.low_score_track_s`` (:func:`_promote_persistent`),
        or are dropped.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    import supervision as sv
    from trackers import ByteTrackTracker

    rate = fps / stride  # processed frames per second
    order = np.lexsort((np.arange(len(dets)), dets.frame_idx))
    members: dict[tuple[int, int], list[int]] = {}
    tracker = None
    shot = -1
    pending: list[int] = []
    low: list[int] = []  # low-score detections no track took
    for frame, rows in _group_by_frame(dets.frame_idx[order], order):
        if dets.shot_id[rows[0]] != shot:
            low += [r for r in pending if dets.score[r] < params.track_thresh]
            shot = int(dets.shot_id[rows[0]])
            tracker = ByteTrackTracker(
                lost_track_buffer=params.track_buffer, frame_rate=rate,
                track_activation_threshold=params.track_thresh,
                minimum_consecutive_frames=params.min_consecutive_frames,
                minimum_iou_threshold=params.match_thresh,
                high_conf_det_threshold=params.track_thresh,
                iou=scale_gated_iou(),
            )
            pending = []
        sv_dets = sv.Detections(xyxy=dets.bbox[rows].astype(np.float32),
                                confidence=dets.score[rows].astype(np.float32),
                                data={"row": rows})
        out = tracker.update(sv_dets, timestamp=float(dets.ts[rows[0]]))
        unassigned = []
        for tid, row in zip(out.tracker_id, out.data["row"]):
            if tid < 0:
                unassigned.append(int(row))
                continue
            key = (shot, int(tid))
            if key not in members:
                members[key] = _spawning_detection(dets, pending, int(row), params.match_thresh)
            members[key].append(int(row))
        low += [r for r in pending if dets.score[r] < params.track_thresh]
        pending = unassigned
    low += [r for r in pending if dets.score[r] < params.track_thresh]
    left = _continue_with_low_scores(dets, members, low, params.track_buffer / 30.0,
                                     params.match_thresh)
    _promote_persistent(dets, members, left, params.low_score_track_s, rate)
    groups = sorted(members.items(), key=lambda kv: (dets.frame_idx[kv[1][0]], kv[0][0], kv[1][0]))
    tracks = []
    for track_id, ((shot_id, _), rows) in enumerate(groups):
        r = np.asarray(rows, np.int64)
        tracks.append(Track(track_id, shot_id, dets[r].with_columns(det_index=r, shot_id=None)))
    return tracks


def _continue_with_low_scores(dets: Detections, members: dict[tuple[int, int], list[int]],
                              low: list[int], max_gap_s: float, min_iou: float
                              ) -> list[list[int]]:
    """Give tracks the low-score detections that continue them where ByteTrack's motion model
    lost the face (updates ``members`` in place); return the tracklets that continue no track.

    ByteTrack's second association matches a low-score detection only to a lost track's Kalman
    prediction; a face that slides out of the frame (scores fall under ``track_thresh``), is missed
    for a few frames and comes back cut by the edge, is no longer where the prediction went, and
    low-score detections can never start a track, so those frames were dropped. Here (own code:
    ``trackers`` has no such pass) the leftover low-score detections of a shot are chained into
    tracklets (IoU >= ``min_iou`` between consecutive boxes), and a tracklet joins the track of the
    same shot whose last box it overlaps (IoU >= ``min_iou``), starting at most ``max_gap_s``
    after the track's end, or whose first box it overlaps, ending at most ``max_gap_s`` before its
    start (a face entering cut by the edge); the nearest in time wins. ``max_gap_s`` is how long
    ByteTrack keeps a lost track (``track_buffer`` frames at 30 fps). The tracklets that continue
    no track are left over (ByteTrack drops unmatched low-score detections; see
    :func:`_promote_persistent`).
    """
    if not low:
        return []
    by_shot: dict[int, list[int]] = {}
    for r in sorted(set(low), key=lambda r: (int(dets.frame_idx[r]), r)):
        by_shot.setdefault(int(dets.shot_id[r]), []).append(r)
    keys_by_shot: dict[int, list[tuple[int, int]]] = {}
    for key in members:
        keys_by_shot.setdefault(key[0], []).append(key)
    left: list[list[int]] = []
    for shot, rows in by_shot.items():
        left += _attach_tracklets(dets, members, keys_by_shot.get(shot, []),
                                  _chain(dets, rows, max_gap_s, min_iou), max_gap_s, min_iou)
    return left


#: Share of the processed frames a low-score tracklet spans on which it must be detected to
#: become a track (:func:`_promote_persistent`): a face the detector scores low is still found on
#: most frames (a 40-px face of the known-answer episodes: 59 % at stride 2), a flicker is not.
LOW_SCORE_DENSITY = 0.5

#: IoU with a track's box in the same frame above which a low-score detection is taken for a
#: second box on a face already tracked, and its tracklet is not promoted.
DUPLICATE_IOU = 0.3


def _promote_persistent(dets: Detections, members: dict[tuple[int, int], list[int]],
                        tracklets: list[list[int]], min_s: float, rate: float) -> None:
    """Make tracks of the low-score tracklets that persist (updates ``members`` in place).

    ByteTrack starts tracks only from detections at or above ``track_thresh``: a face the
    detector never scores that high (small, blurred, in profile; SCRFD-500M scores some 40-px
    faces 0.3-0.57 for a whole shot) gets no track, and its seconds are lost. A false detection
    rarely persists in one place, so a tracklet (:func:`_chain`) that lasts at least ``min_s``
    seconds, detected on at least :data:`LOW_SCORE_DENSITY` of the processed frames it spans,
    and is not a second box on a tracked face (:data:`DUPLICATE_IOU`), becomes a track: the
    confirmation of a tentative track by consecutive hits of SORT-style trackers (Wojke et al.,
    "Simple Online and Realtime Tracking with a Deep Association Metric", ICIP 2017: ``n_init``),
    asked here of a whole second instead of three frames because the scores are low. Own code:
    ``trackers`` confirms tracks only from high-score detections.

    Args:
        dets: the detections table. members: ``(shot, track key) -> rows`` of the tracks.
        tracklets: rows of the low-score tracklets that continue no track, each in frame order.
        min_s: seconds a tracklet must last (its first detection's ts to its last one's end);
            <= 0 promotes none. rate: processed frames per second.
    """
    if min_s <= 0:
        return
    by_frame: dict[int, list[int]] = {}
    for rows in members.values():
        for r in rows:
            by_frame.setdefault(int(dets.frame_idx[r]), []).append(r)
    promoted = 0
    for tl in sorted(tracklets, key=lambda tl: (int(dets.frame_idx[tl[0]]), tl[0])):
        span = float(dets.ts[tl[-1]] + dets.dur[tl[-1]] - dets.ts[tl[0]])
        if span + 1e-6 < min_s or len(tl) < LOW_SCORE_DENSITY * span * rate:
            continue
        if any(float(_box_iou(dets.bbox[[r]], dets.bbox[by_frame[f]]).max()) >= DUPLICATE_IOU
               for r in tl if (f := int(dets.frame_idx[r])) in by_frame):
            continue
        promoted += 1
        members[int(dets.shot_id[tl[0]]), -promoted] = list(tl)


def _chain(dets: Detections, rows: list[int], max_gap_s: float, min_iou: float
           ) -> list[list[int]]:
    """Chain detections of one shot (in frame order) into tracklets by box overlap."""
    done: list[list[int]] = []
    open_: list[list[int]] = []
    for r in rows:
        # tracklets idle for longer than max_gap_s can take nothing more
        still = [tl for tl in open_ if dets.ts[r] - dets.ts[tl[-1]] <= max_gap_s]
        done += [tl for tl in open_ if dets.ts[r] - dets.ts[tl[-1]] > max_gap_s]
        open_ = still
        best, best_iou = None, min_iou
        for tl in open_:
            if dets.frame_idx[tl[-1]] >= dets.frame_idx[r]:
                continue
            iou = float(_box_iou(dets.bbox[[r]], dets.bbox[[tl[-1]]])[0, 0])
            if iou >= best_iou:
                best, best_iou = tl, iou
        if best is None:
            open_.append([r])
        else:
            best.append(r)
    return done + open_


def _attach_tracklets(dets: Detections, members: dict[tuple[int, int], list[int]],
                      keys: list[tuple[int, int]], tracklets: list[list[int]], max_gap_s: float,
                      min_iou: float) -> list[list[int]]:
    """Give each tracklet to the track of ``keys`` it continues best (see
    :func:`_continue_with_low_scores`); return what continues no track.

    A tracklet may run on past a track's first frame (or start before its last one): the face's
    low-score leading frames chain on into the frames where the track already holds it and the
    detections ByteTrack left over there. Only the part of the tracklet before the track's first
    frame (its lead) or after its last frame (its trail) can continue the track; what is left of
    the tracklet is tried again against the other tracks. The part's end box meets the track's
    end box as it is, or moved on to the track's frame at the part's own speed
    (:func:`_extrapolated_box`): a small face sliding out of frame moves more than its width
    between a missed detection's neighbours, as it would in ByteTrack's constant-velocity
    prediction.
    """
    frame = dets.frame_idx
    queue = [list(tl) for tl in tracklets]
    left: list[list[int]] = []
    while queue:
        tl = queue.pop(0)
        best = None
        for key in keys:
            head, tail = members[key][0], members[key][-1]
            lead = [r for r in tl if frame[r] < frame[head]]
            trail = [r for r in tl if frame[r] > frame[tail]]
            # the lead's last row meets the track's first; the trail's first meets its last
            for part, near, end in ((lead, head, -1), (trail, tail, 0)):
                if not part:
                    continue
                gap = abs(float(dets.ts[near] - dets.ts[part[end]]))
                moved = _extrapolated_box(dets, part, end, int(frame[near]))
                iou = float(_box_iou(dets.bbox[[near]],
                                     np.stack([dets.bbox[part[end]], moved]))[0].max())
                if gap <= max_gap_s + 1e-6 and iou >= min_iou:
                    cand = (gap, -iou, key, part)
                    if best is None or cand[:2] < best[:2]:
                        best = cand
        if best is None:
            left.append(tl)  # continues no track
            continue
        key, part = best[2], best[3]
        members[key] = sorted(members[key] + part, key=lambda r: int(frame[r]))
        attached = set(part)
        rest = [r for r in tl if r not in attached]
        if rest:
            queue.append(rest)
    return left


#: Rows of a tracklet's end that its speed is measured over (:func:`_extrapolated_box`).
SPEED_ROWS = 5


def _extrapolated_box(dets: Detections, part: list[int], end: int, to_frame: int) -> np.ndarray:
    """The box of ``part`` at its end (``end`` = -1: last row, 0: first row) moved to frame
    ``to_frame`` at the part's mean speed over its :data:`SPEED_ROWS` end rows (px per frame, each
    side of the box on its own, as ByteTrack's constant-velocity Kalman model moves a box);
    float32 [4] px. A one-row part does not move."""
    rows = part[-SPEED_ROWS:] if end == -1 else part[:SPEED_ROWS]
    box = dets.bbox[part[end]].astype(np.float64)
    if len(rows) < 2:
        return box.astype(np.float32)
    frames = dets.frame_idx[rows].astype(np.float64)
    speed = (dets.bbox[rows[-1]] - dets.bbox[rows[0]]).astype(np.float64) / max(
        frames[-1] - frames[0], 1.0)
    return (box + speed * (to_frame - float(dets.frame_idx[part[end]]))).astype(np.float32)


def _spawning_detection(dets: Detections, pending: list[int], row: int, min_iou: float
                        ) -> list[int]:
    """The previous frame's detection that started a new track, as a one-row list (or empty).

    ``ByteTrackTracker`` returns a new track's first detection with id -1 and names the track only
    from its second frame on; without this, every track would lose its first frame (and a shot's
    first frame would have no faces). The spawning detection is the unassigned one of the previous
    processed frame that overlaps the track's first named box most.
    """
    if not pending:
        return []
    cand = np.asarray(pending)
    ious = _box_iou(dets.bbox[row][None], dets.bbox[cand])[0]
    best = int(np.argmax(ious))
    if ious[best] < min_iou:
        return []
    pending.remove(int(cand[best]))
    return [int(cand[best])]


def _group_by_frame(frames: np.ndarray, rows: np.ndarray):
    if len(frames) == 0:
        return
    splits = np.flatnonzero(np.diff(frames)) + 1
    for chunk in np.split(np.arange(len(frames)), splits):
        yield int(frames[chunk[0]]), rows[chunk]
