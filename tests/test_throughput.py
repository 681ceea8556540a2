"""Throughput features: aspect-preserving detector input, the decode thread, stride-aware
tracking, batched recognition with any embedding dimension, and a CLI that starts without the
heavy libraries. Cheap: a few dozen frames of the real clip, the real ci_pack/ci_pack_mbf models."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
import supervision as sv

from resources.models import available_cores, load_face_models
from screenalytics_assets.core.detect import (
    Detections,
    detect_faces,
    detector_input_size,
    effective_stride,
    fitted_size,
    refine_landmarks,
    scan_episode,
)
from screenalytics_assets.core.embedding import embed_faces, model_batch_size
from screenalytics_assets.core.parallel import ordered_map
from screenalytics_assets.core.schedule import adaptive_map, steady
from screenalytics_assets.core.shots import ShotCutDetector
from screenalytics_assets.core.tracking import TrackingParams, track_detections
from screenalytics_assets.core.video import Prefetcher, iter_frames, probe_video
from tests.conftest import FACES, HAMILTON, HAMILTON_CUTS, REPO, SHARED


@pytest.mark.parametrize("size,det,expected", [
    ((1280, 720), 640, (640, 384)),   # 16:9 -> 640x360, short side up to a multiple of 32
    ((1920, 1080), 480, (480, 288)),
    ((640, 360), 960, (640, 384)),   # never enlarged: the frame's own size is the largest
    ((1280, 720), 960, (960, 544)),
    ((300, 200), 640, (320, 224)),   # ... rounded up to a multiple of 32
    ((720, 1280), 640, (384, 640)),   # portrait
    ((640, 640), 640, (640, 640)),
    ((4000, 100), 640, (640, 32)),    # never below one stride-32 cell
])
def test_detector_input_keeps_the_aspect_ratio(size, det, expected):
    inp = detector_input_size(*size, det)
    assert inp == expected and inp[0] % 32 == 0 and inp[1] % 32 == 0
    fit = fitted_size(*size, inp)
    assert fit[0] <= inp[0] and fit[1] <= inp[1]
    assert fit[0] / fit[1] == pytest.approx(size[0] / size[1], rel=0.02)


def test_aspect_input_finds_the_same_faces_as_the_letterboxed_square():
    """Every 10th frame of the real clip: the 640x384 input finds the faces the 640x640
    letterbox finds (boxes within IoU 0.5), bar faces scored at the threshold's edge."""
    m = load_face_models(str(SHARED), "ci_pack", "cpu")
    info = probe_video(HAMILTON)
    inp = detector_input_size(info.width, info.height, 640)
    assert inp == (640, 384)
    square = aspect = 0
    for frame in iter_frames(HAMILTON, info, stride=10):
        if frame.image is None:
            continue
        b0, s0, _ = detect_faces(m.detector, frame.image, 640, 0.5)
        b1, s1, k1 = detect_faces(m.detector, frame.image, inp, 0.5)
        square += len(s0)
        aspect += len(s1)
        for box, score in zip(b0, s0):
            if score < 0.55:
                continue  # at the threshold's edge either input may drop it
            assert len(b1) and _iou(box, b1).max() > 0.9, (frame.frame_idx, box, score)
        assert k1.shape == (len(s1), 5, 2)
    assert square > 30 and abs(aspect - square) <= 0.05 * square


def _iou(box, boxes):
    """IoU of one box [4] with boxes [K, 4] (supervision's box maths)."""
    return sv.box_iou_batch(np.asarray(box, np.float32)[None], np.asarray(boxes, np.float32))[0]


def test_frames_decoded_at_detector_scale_give_full_frame_boxes():
    """The detection pass decodes processed frames at the detector's scale: boxes come back in
    full-frame pixels, as when the detector scales the full frame itself."""
    from screenalytics_assets.core.detect import scan_episode

    m = load_face_models(str(SHARED), "ci_pack", "cpu")
    info = probe_video(HAMILTON)
    scan = scan_episode(HAMILTON, m.detector, stride=30, det_size=320)
    inp = detector_input_size(info.width, info.height, 320)
    assert scan.det_input == inp == (320, 192)
    d = scan.detections
    assert len(d) > 0
    wanted = set(d.frame_idx.tolist())
    full = {f.frame_idx: f.image for f in iter_frames(HAMILTON, info) if f.frame_idx in wanted}
    for fi in np.unique(d.frame_idx):
        ref, _, _ = detect_faces(m.detector, full[int(fi)], inp, 0.5)
        for box in d.bbox[d.frame_idx == fi]:
            assert len(ref) and _iou(box, ref).max() > 0.8


def test_small_faces_get_their_landmarks_from_the_full_size_frame():
    """Every 10th frame of the real clip (640x360) detected at a 320-px input: the faces under
    48 input px get landmarks found again at the frame's own scale, closer to those the detector
    finds on the whole frame at 640 px than the coarse ones; boxes, scores and the larger faces'
    landmarks stay as they were, and 0 refines nothing."""
    m = load_face_models(str(SHARED), "ci_pack", "cpu")
    info = probe_video(HAMILTON)
    coarse_in = detector_input_size(info.width, info.height, 320)
    native_in = detector_input_size(info.width, info.height, 640)
    scale = info.width / coarse_in[0]
    assert (coarse_in, scale) == ((320, 192), 2.0)
    coarse, refined, large = [], [], 0
    for frame in iter_frames(HAMILTON, info, stride=10):
        if frame.image is None:
            continue
        ref_box, _, ref_kps = detect_faces(m.detector, frame.image, native_in, 0.3)
        box, score, kps = detect_faces(m.detector, frame.image, coarse_in, 0.3)
        out = refine_landmarks(m.detector, frame.image, box, kps, scale, 48, 0.3)
        assert refine_landmarks(m.detector, frame.image, box, kps, scale, 0, 0.3) is kps
        side = np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
        small = side < 48 * scale
        assert np.array_equal(out[~small], kps[~small]) and out.shape == kps.shape
        large += int((~small).sum())
        for i in np.flatnonzero(small):
            iou = _iou(box[i], ref_box) if len(ref_box) else np.zeros(1)
            if iou.max() >= 0.5:
                ref = ref_kps[int(iou.argmax())]
                coarse.append(np.linalg.norm(kps[i] - ref, axis=1).mean())
                refined.append(np.linalg.norm(out[i] - ref, axis=1).mean())
    assert len(refined) >= 20 and large >= 10
    # measured: median 3.1 px -> 1.8 px (mean 3.3 -> 2.6) from the landmarks at 640 px
    assert np.median(refined) < 0.75 * np.median(coarse), (np.median(refined), np.median(coarse))


def test_prefetcher_runs_ahead_in_a_bounded_queue_and_forwards_errors():
    made = []

    def numbers():
        for i in range(100):
            made.append(i)
            yield i

    with Prefetcher(numbers, maxsize=3) as it:
        first = next(it)
        time.sleep(0.3)
        # the producer ran ahead, but no further than the queue bound (+1 in hand)
        assert first == 0 and 2 <= len(made) <= 5
        assert list(it) == list(range(1, 100))

    def broken():
        yield 1
        raise ValueError("truncated video")

    it = Prefetcher(broken, maxsize=2)
    assert next(it) == 1
    with pytest.raises(ValueError, match="truncated video"):
        next(it)


def test_prefetcher_stops_its_thread_when_the_consumer_stops_early():
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    before = threading.active_count()
    with Prefetcher(endless, maxsize=2) as it:
        assert next(it) == 0
    time.sleep(0.1)
    assert threading.active_count() == before


def test_stride_restarts_at_every_cut():
    """At stride 4 the first frame of every shot is processed (the clip cuts at 20, 82, 211)."""
    info = probe_video(HAMILTON)
    cuts = ShotCutDetector(info.fps)
    processed = [f.frame_idx for f in iter_frames(HAMILTON, info, stride=4, new_shot=cuts.feed)
                 if f.image is not None]
    assert cuts.cuts() == HAMILTON_CUTS
    for start in [0, *HAMILTON_CUTS]:
        assert start in processed
    assert 20 + 4 in processed and 20 + 2 not in processed and 84 not in processed


def test_small_copies_taken_from_the_detector_image_find_the_same_cuts():
    """At stride 1 the small copy for cut detection is resized from the frame converted for the
    detector (one conversion per frame): the same cuts, and small copies within a few grey
    levels of the ones converted from the full frame."""
    info = probe_video(HAMILTON)
    fit = fitted_size(info.width, info.height, detector_input_size(info.width, info.height, 480))
    assert fit[0] >= 320 and fit != (info.width, info.height)
    cuts = ShotCutDetector(info.fps)
    one = list(iter_frames(HAMILTON, info, stride=1, image_size=fit, new_shot=cuts.feed))
    assert cuts.cuts() == HAMILTON_CUTS
    direct = {f.frame_idx: f.small for f in iter_frames(HAMILTON, info, stride=5,
                                                          image_size=fit)}
    for f in one[::25]:
        assert f.image.shape == (fit[1], fit[0], 3) and f.small.shape == direct[f.frame_idx].shape
        assert np.abs(f.small.astype(int) - direct[f.frame_idx].astype(int)).mean() < 3


def _one_face(frames: np.ndarray, fps: float) -> Detections:
    n = len(frames)
    x = 100 + 2.0 * frames  # moves 2 px per frame
    bbox = np.stack([x, np.full(n, 100.0), x + 60, np.full(n, 180.0)], 1).astype(np.float32)
    return Detections(frames.astype(np.int64), frames / fps, frames.astype(np.int64), bbox,
                      np.full(n, 0.9, np.float32), np.zeros((n, 5, 2), np.float32),
                      np.zeros(n, np.int32), np.full(n, 1 / fps))


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_tracker_keeps_a_moving_face_at_any_stride(stride):
    """A face seen on every stride-th frame, lost for 0.8 s (under the 1 s buffer) and back
    where its motion takes it, stays one track; lost for 1.5 s, it starts a new one."""
    fps = 30.0
    params = TrackingParams(track_buffer=30)
    for gap_s, tracks in ((0.8, 1), (1.5, 2)):
        gap = int(gap_s * fps)
        frames = np.r_[np.arange(0, 60, stride), np.arange(60 + gap, 120 + gap, stride)]
        frames = frames[(frames < 60) | (frames >= 60 + gap)]
        found = track_detections(_one_face(frames, fps), fps, params, stride=stride)
        assert len(found) == tracks, (stride, gap_s)
        assert sum(len(t) for t in found) == len(frames)


@pytest.mark.parametrize("stride, fps, floor, expected", [
    (2, 29.97, 10, 2), (2, 25.0, 10, 2), (2, 10.0, 10, 1), (2, 59.94, 10, 2),
    (3, 29.97, 8, 3), (3, 24.0, 8, 3), (3, 10.0, 8, 1), (3, 15.0, 8, 1), (4, 30.0, 0, 4),
    (1, 5.0, 10, 1)])
def test_the_stride_keeps_the_processed_frame_rate_over_its_floor(stride, fps, floor, expected):
    assert effective_stride(stride, fps, floor) == expected


def test_balanced_runs_broadcast_video_at_stride_2_and_a_10_fps_stream_at_1():
    from screenalytics_assets.settings import load_settings
    from tests.known_answer import FPS

    s = load_settings(profile="balanced")
    assert s["stride"] == 2
    assert effective_stride(s["stride"], 29.97, s["min_detection_fps"]) == 2
    assert effective_stride(s["stride"], FPS, s["min_detection_fps"]) == 1
    m = load_face_models(str(SHARED), "ci_pack", "cpu")
    scan = scan_episode(HAMILTON, m.detector, stride=s["stride"], det_size=320,
                        min_detection_fps=s["min_detection_fps"])
    assert scan.stride == 2 and scan.frames_processed < 0.55 * scan.video.n_frames


def test_anchors_are_steady_when_the_same_faces_stay_in_place():
    a = np.array([[100, 100, 160, 180], [400, 90, 450, 150]], np.float32)
    hi = np.array([0.9, 0.8], np.float32)
    moved = a + np.array([6, 2, 6, 2], np.float32)  # a few px, IoU well over 0.5
    assert steady(a, hi, moved[::-1], hi[::-1])  # order does not matter
    assert steady(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 4)), np.zeros(0))
    assert not steady(a, hi, a[:1], hi[:1])  # a face left
    assert not steady(a[:1], hi[:1], a, hi)  # a face came
    assert not steady(a, hi, a + np.array([40, 0, 40, 0], np.float32), hi)  # moved 2/3 of a side
    assert not steady(a, np.array([0.9, 0.5], np.float32), a, hi)  # one the detector doubts
    # two faces, each matching only the other one's place: no one-to-one pairing
    twins = np.array([[0, 0, 100, 100], [60, 0, 160, 100]], np.float32)
    assert not steady(twins, hi, np.array([[30, 0, 130, 100], [300, 0, 400, 100]],
                                          np.float32), hi)


class _Frame:
    def __init__(self, frame_idx: int, stride: int, phase: int) -> None:
        self.frame_idx, self.shot_offset = frame_idx, frame_idx - phase
        self.image = None if self.shot_offset % stride else frame_idx


def _frames(n: int, stride: int, cuts: set[int]):
    phase = 0
    for i in range(n):
        phase = i if i in cuts else phase
        yield _Frame(i, stride, phase)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_the_adaptive_schedule_detects_between_anchors_only_where_they_differ(workers):
    """Stride 2, a cut at 30, 40 frames: the anchors (0, 4, ... of each shot) are detected; a
    midpoint is detected only where its anchors differ (the scene changes at frame 21), within
    ``hold`` frames after that, at the end of a shot, and at the end of the video; every frame
    comes out once, in order, and an anchor whose midpoint was skipped stands for 4 frames."""
    calls = []

    def detect(frame):
        calls.append(frame.frame_idx)
        time.sleep(0.001 * (frame.frame_idx % 3))  # results come back out of order
        return "a" if frame.frame_idx < 21 else "b"

    out = list(adaptive_map(detect, _frames(40, 2, {30}), 2, workers,
                            same=lambda x, y: x == y))
    assert [f.frame_idx for f, _, _ in out] == list(range(40))
    processed = [(f.frame_idx, span) for f, result, span in out if result is not None]
    assert processed == [(0, 4), (4, 4), (8, 4), (12, 4), (16, 4), (20, 2), (22, 2), (24, 4),
                         (28, 2), (30, 4), (34, 4), (38, 2)]
    assert sorted(calls) == [i for i, _ in processed]
    # held for 8 frames after an anchor that lost a face (24): 26 is detected too, but not 32:
    # the hold ends at the cut (30), where the tracker starts afresh
    held = [(f.frame_idx, span) for f, r, span in adaptive_map(
        detect, _frames(40, 2, {30}), 2, workers, same=lambda x, y: x == y,
        lost=lambda x, y: (x, y) == ("a", "b"), hold=8) if r is not None]
    assert held == [(0, 4), (4, 4), (8, 4), (12, 4), (16, 4), (20, 2), (22, 2), (24, 2), (26, 2),
                    (28, 2), (30, 4), (34, 4), (38, 2)]
    # without the cut, the hold runs its 8 frames: the midpoints 26 and 30 are detected, 34 is
    # not (its anchor 32 = 24 + 8 is past the hold); 38 is the video's end
    one_shot = [(f.frame_idx, span) for f, r, span in adaptive_map(
        lambda frame: "a" if frame.frame_idx < 21 else "b", _frames(40, 2, set()), 2, workers,
        same=lambda x, y: x == y, lost=lambda x, y: (x, y) == ("a", "b"), hold=8)
        if r is not None]
    assert one_shot == [(0, 4), (4, 4), (8, 4), (12, 4), (16, 4), (20, 2), (22, 2), (24, 2),
                        (26, 2), (28, 2), (30, 2), (32, 4), (36, 2), (38, 2)]
    # without a comparison every stride-th frame is detected
    every = [f.frame_idx for f, r, _ in adaptive_map(detect, _frames(40, 2, {30}), 2, workers)
             if r is not None]
    assert every == list(range(0, 40, 2))


def test_the_adaptive_schedule_raises_what_the_detector_raises():
    def detect(frame):
        if frame.frame_idx == 8:
            raise RuntimeError("model failed")
        return "a"

    with pytest.raises(RuntimeError, match="model failed"):
        list(adaptive_map(detect, _frames(20, 2, set()), 2, 2, same=lambda x, y: True))


def test_low_score_leading_frames_join_the_track_they_lead_into():
    """A face whose first 10 frames score under track_thresh (as the Hamilton clip's audience
    face of shot 1 does, frames 20-34) keeps them: they continue the track its first high score
    starts, even when leftover low-score boxes of the same face inside the track (a second,
    overlapping detection ByteTrack matched to nothing) chain on from them."""
    fps = 30.0
    frames = np.arange(0, 40)
    dets = _one_face(frames, fps)
    dets.score[:10] = 0.45  # under track_thresh 0.6: these alone never start a track
    dup = _one_face(np.array([12, 14]), fps)  # a second box of the face, shifted by 6 px
    dup.bbox[:, [0, 2]] += 6
    dup.score[:] = 0.4
    both = Detections.concat([dets, dup])
    found = track_detections(both, fps, TrackingParams(track_thresh=0.6), stride=1)
    assert len(found) == 1
    assert found[0].start_frame == 0 and found[0].end_frame == 39
    assert sorted(found[0].frame_idx.tolist()) == list(range(40))


def test_leading_frames_join_a_fast_face_across_a_missed_detection():
    """A 30-px face sliding 8 px a frame (a small face leaving the frame, as in the long
    known-answer episode): its low-score leading frames and its track are three missed frames
    apart, where the boxes no longer overlap, but the lead moved on at its own speed meets the
    track's first box."""
    fps = 30.0
    frames = np.r_[np.arange(0, 10), np.arange(13, 30)]
    n = len(frames)
    x = 100 + 8.0 * frames
    bbox = np.stack([x, np.full(n, 100.0), x + 30, np.full(n, 140.0)], 1).astype(np.float32)
    score = np.where(frames < 10, 0.4, 0.8).astype(np.float32)
    dets = Detections(frames.astype(np.int64), frames / fps, frames.astype(np.int64), bbox, score,
                      np.zeros((n, 5, 2), np.float32), np.zeros(n, np.int32),
                      np.full(n, 1 / fps))
    found = track_detections(dets, fps, TrackingParams(track_thresh=0.6), stride=1)
    assert len(found) == 1 and found[0].start_frame == 0 and len(found[0]) == n


def test_a_face_scored_low_for_a_whole_second_becomes_a_track_and_a_flicker_does_not():
    """ByteTrack starts tracks only from scores >= track_thresh. A face the detector scores
    0.3-0.57 for a whole shot (a 40-px face of the long known-answer episode, seed 0, shot 8: 6.9 s
    lost) becomes a track when its low-score chain lasts low_score_track_s, detected on half its
    frames or more; a 0.5-s flicker, a sparse chain and a second box on a tracked face do not."""
    fps = 30.0
    stride = 2
    steady = _one_face(np.arange(0, 60, stride), fps)  # 2 s, every processed frame
    steady.score[:] = 0.45
    flicker = _one_face(np.arange(0, 15, stride), fps)  # 0.5 s, elsewhere in the frame
    flicker.bbox[:, [1, 3]] += 300
    flicker.score[:] = 0.45
    sparse = _one_face(np.arange(0, 60, 6 * stride), fps)  # 2 s, one processed frame in 6
    sparse.bbox[:, [1, 3]] += 600
    sparse.score[:] = 0.45
    tracked = _one_face(np.arange(0, 60, stride), fps)  # a tracked face and a second box on it
    tracked.bbox[:, [0, 2]] += 400
    second = _one_face(np.arange(0, 60, stride), fps)
    second.bbox[:, [0, 2]] += 404
    second.score[:] = 0.4
    dets = Detections.concat([steady, flicker, sparse, tracked, second])
    params = TrackingParams(track_thresh=0.6, low_score_track_s=1.0)
    found = track_detections(dets, fps, params, stride=stride)
    assert len(found) == 2  # the tracked face, and the steady low-score face
    low = [t for t in found if t.score.max() < 0.6]
    assert len(low) == 1 and len(low[0]) == len(steady)
    assert low[0].bbox[0].tolist() == steady.bbox[0].tolist()
    # 0 keeps ByteTrack's rule: low scores alone start nothing
    off = track_detections(dets, fps, TrackingParams(track_thresh=0.6), stride=stride)
    assert [t.score.max() >= 0.6 for t in off] == [True]


def test_batched_recognizer_matches_one_by_one_and_keeps_its_dimension():
    """ci_pack_mbf has a dynamic batch: batches give the embeddings of one-by-one calls; its
    vectors are 128-d, ci_pack's 512-d."""
    from screenalytics_assets.core.sampling import align_face

    mbf = load_face_models(str(SHARED), "ci_pack_mbf", "cpu")
    ci = load_face_models(str(SHARED), "ci_pack", "cpu")
    assert model_batch_size(mbf.recognizer) is None and model_batch_size(ci.recognizer) == 1
    crops = []
    for person in sorted(p for p in FACES.iterdir() if p.is_dir())[:6]:
        image = cv2.imread(str(person / "ref_01.jpg"))
        _, _, kps = detect_faces(mbf.detector, image, 640, 0.5)
        crops.append(align_face(image, kps[0]))
    crops = np.stack(crops)
    batched = embed_faces(mbf.recognizer, crops, batch_size=4)
    single = np.concatenate([embed_faces(mbf.recognizer, crops[i:i + 1]) for i in range(6)])
    assert batched.shape == (6, 128) == (6, mbf.embedding_dim)
    assert np.abs(batched - single).max() < 1e-4
    assert embed_faces(ci.recognizer, crops[:2]).shape == (2, 512)


def test_facebank_of_another_dimension_is_a_clear_error():
    from screenalytics_assets.core.cast_links import reference_similarity
    from screenalytics_assets.core.facebank import Facebank

    rng = np.random.default_rng(0)
    fb = Facebank("show", "ci_pack", ["a"], ["a"], ["a/1.jpg"],
                  rng.normal(size=(1, 512)).astype(np.float32))
    with pytest.raises(ValueError, match="128-d but the facebank .* 512-d .* rebuild"):
        reference_similarity(rng.normal(size=(2, 128)).astype(np.float32), fb)


def test_session_options_are_set_and_reported():
    m = load_face_models(str(SHARED), "ci_pack", "cpu", intra_op_threads=2)
    opts = m.session_options
    assert opts["graph_optimization_level"] == "ORT_ENABLE_ALL"
    # on the CPU provider: single-threaded sessions, one call per core at once
    assert opts["intra_op_num_threads"] == 1 and opts["parallel_calls"] == m.parallel_calls == 2
    for model in (m.detector, m.recognizer):
        assert model.session.get_session_options().intra_op_num_threads == 1
    assert load_face_models(str(SHARED), "ci_pack", "cpu").parallel_calls == available_cores()


def test_ordered_map_keeps_the_order_bounds_what_is_in_flight_and_forwards_errors():
    in_flight, peak, lock = [0], [0], threading.Lock()

    def slow_square(i):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.02 if i % 3 else 0.05)  # later items finish first
        with lock:
            in_flight[0] -= 1
        return i * i

    produced = []

    def items():
        for i in range(30):
            produced.append(i)
            yield i

    seen = []
    for i, sq in ordered_map(slow_square, items(), workers=3, ahead=2):
        assert sq == i * i and len(produced) - len(seen) <= 6  # at most workers * ahead ahead
        seen.append(i)
    assert seen == list(range(30)) and 1 < peak[0] <= 3

    def fails_at_5(i):
        if i == 5:
            raise ValueError("bad item 5")
        return i

    got = []
    with pytest.raises(ValueError, match="bad item 5"):
        for i, _ in ordered_map(fails_at_5, range(10), workers=2):
            got.append(i)
    assert got == [0, 1, 2, 3, 4]
    assert list(ordered_map(str, [1, 2], workers=1)) == [(1, "1"), (2, "2")]


def test_parallel_model_calls_give_the_same_detections_and_embeddings():
    """Frames detected two at a time and faces embedded two at a time give what one call at a
    time gives, in the same order (every 4th frame of the real clip)."""
    m = load_face_models(str(SHARED), "ci_pack", "cpu", intra_op_threads=2)
    one, two = (scan_episode(HAMILTON, m.detector, stride=4, det_size=640, det_thresh=0.3,
                             workers=w) for w in (1, 2))
    assert one.frames_processed == two.frames_processed > 60
    assert len(one.detections) == len(two.detections) > 100
    for col in ("frame_idx", "shot_id", "bbox", "score", "landmarks", "dur"):
        np.testing.assert_allclose(getattr(one.detections, col), getattr(two.detections, col),
                                   atol=1e-4, err_msg=col)
    crops = np.stack([cv2.resize(cv2.imread(str(p)), (112, 112))
                      for p in sorted(FACES.glob("*/*.jpg"))[:7]])
    for pack in ("ci_pack", "ci_pack_mbf"):
        rec = load_face_models(str(SHARED), pack, "cpu", intra_op_threads=2).recognizer
        np.testing.assert_allclose(embed_faces(rec, crops, workers=2), embed_faces(rec, crops),
                                   atol=1e-5, err_msg=pack)


def test_samples_are_good_faces_spread_over_the_track():
    from screenalytics_assets.core.sampling import spread_best

    # a good first second, a profile stretch, a fair last second: samples from both good ends
    q = np.r_[np.linspace(0.9, 1.0, 30), np.full(30, 0.1), np.linspace(0.5, 0.6, 30)]
    keep = spread_best(q, 8)
    assert len(keep) == 8 and list(keep) == sorted(keep)
    assert (keep < 30).sum() == 4 and (keep >= 60).sum() == 4
    assert list(spread_best(q[:5], 8)) == [0, 1, 2, 3, 4]


def test_faces_cut_in_the_detection_pass_are_the_faces_decoded_again(tmp_path):
    """The detection pass keeps every detection's aligned face, cut from the full-size frame
    (the 1280x720 clip, detected at 640x384): the faces stage's samples taken from it are the
    crops it would decode, pixel for pixel, and a cache of another pass (other boxes) is never
    used."""
    from screenalytics_assets.core.detection_crops import CropCache, CropWriter
    from screenalytics_assets.core.sampling import extract_faces, select_samples

    from tests.clips import cut_clip

    video = cut_clip(tmp_path / "hamilton_720p.mp4", start=0, frames=120, width=1280)
    m = load_face_models(str(SHARED), "ci_pack", "cpu")
    writer = CropWriter(tmp_path / "crops" / "hamilton-s01e01.u8")
    scan = scan_episode(video, m.detector, stride=3, det_size=640, det_thresh=0.3, crops=writer,
                        workers=2)
    writer.commit()
    assert writer.rows == len(scan.detections) > 50
    tracks = track_detections(scan.detections, scan.video.fps, TrackingParams(), stride=3)
    samples = select_samples(tracks, 4)
    cache = CropCache.open(writer.path)
    assert cache.matches(samples.det_index, samples.bbox).all()
    from_pass, _ = extract_faces(video, samples, cache=cache)
    decoded, _ = extract_faces(video, samples)
    diff = np.abs(from_pass.astype(int) - decoded.astype(int))
    assert diff.max() == 0, (diff.max(), diff.mean())
    moved = samples.bbox.copy()
    moved[0] += 1.0
    assert not cache.matches(samples.det_index[:1], moved[:1]).any()
    cache.remove()
    assert CropCache.open(writer.path) is None


def test_a_discarded_crop_cache_commits_nothing(tmp_path):
    """A pass that fails (e.g. on a truncated video) discards its cache; a commit afterwards
    leaves no cache and raises nothing."""
    from screenalytics_assets.core.detection_crops import CropCache, CropWriter

    writer = CropWriter(tmp_path / "crops" / "odd-s01e01.u8")
    writer.add(np.zeros((1, 112, 112, 3), np.uint8), np.zeros((1, 4), np.float32))
    writer.discard()
    writer.commit()
    assert CropCache.open(writer.path) is None
    assert not list((tmp_path / "crops").iterdir())


def test_cli_starts_without_dagster_models_or_scientific_libraries():
    code = ("import sys; from screenalytics_assets.cli import build_parser; build_parser(); "
            "heavy = [m for m in ('dagster', 'onnxruntime', 'insightface', 'sklearn', 'pandas', "
            "'matplotlib', 'scipy', 'cv2', 'av', 'torch') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"
    help_text = subprocess.run([sys.executable, "-m", "screenalytics_assets.cli", "--help"],
                               cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "run" in help_text and "facebank" in help_text


@pytest.mark.parametrize("argv, module, validator", [
    (["run", "--ep-id", "Not An Ep Id!"], "run", "validate_ep_id"),
    (["facebank", "build", "Not A Show!"], "facebank", "validate_show"),
    (["facebank", "add", "Not A Show!", "someone", "photo.jpg"], "facebank", "validate_show"),
    (["review", "Not An Ep Id!", "--run", "show"], "review", "validate_ep_id"),
])
def test_commands_that_run_a_job_load_with_the_collector_off_and_run_with_it_on(
        monkeypatch, capsys, argv, module, validator):
    """The console script's process exits after its command, so its commands that run a job
    (``run``, ``facebank add/build``, ``review --run``) load what it needs with CPython's cyclic
    collector off (it would only re-scan the long-lived objects being loaded) and turn it back
    on, with those objects frozen (also the exit's full collections skip them), before anything
    runs; ``main`` inside a longer-lived process neither freezes nor touches the collector.
    Each command here is refused at its first check, while loading."""
    import gc
    import importlib

    from screenalytics_assets import cli
    from screenalytics_assets.cli import common

    command = importlib.import_module(f"screenalytics_assets.cli.{module}")
    real = getattr(command, validator)
    seen = []

    def validate(value):
        seen.append(gc.isenabled())
        return real(value)

    monkeypatch.setattr(command, validator, validate)
    gc.unfreeze()
    try:
        assert cli.main(argv) == 2
        assert seen == [True] and gc.isenabled() and gc.get_freeze_count() == 0
        monkeypatch.setattr(common, "PROCESS_EXITS_AFTER_COMMAND", False)
        monkeypatch.setattr(sys, "argv", ["screenalytics", *argv])
        assert cli.console_main() == 2
        assert common.PROCESS_EXITS_AFTER_COMMAND  # the console script says its process exits
        assert seen == [True, False]  # loading: off
        assert gc.isenabled() and gc.get_freeze_count() > 0  # after: on, the loaded frozen
    finally:
        gc.enable()
        gc.unfreeze()
    assert "error:" in capsys.readouterr().err


def test_the_progress_bar_samples_at_most_ten_times_a_second_and_shows_the_end():
    """Assets report every frame; the CLI's bar passes rich a sample at most every 0.1 s per
    stage (rich sums its samples for each speed), and always the last one."""
    import io

    from rich.console import Console

    from screenalytics_assets.cli.run import _live_progress

    bar = _live_progress(Console(file=io.StringIO()))
    updates = []
    update = bar.progress.update
    bar.progress.update = lambda task, **kw: (updates.append(kw["completed"]), update(task, **kw))
    start = time.monotonic()
    for done in range(1, 2001):
        bar.sink("detections", done, 2000)
    elapsed = time.monotonic() - start
    assert updates[-1] == 2000
    assert len(updates) <= 2 + elapsed / _live_progress.UPDATE_EVERY_S
    assert bar.progress.tasks[bar.tasks["detections"]].completed == 2000


@pytest.mark.slow
def test_fast_profile_keeps_the_cast_screen_time_of_balanced(hamilton_run, tmp_path):
    """At ``fast`` (stride 3, det_size 480) every cast member's *named* screen time on the real
    clip is within 0.3 s of ``balanced``: seconds per cast id, so a person found but left
    unnamed at ``fast`` counts as lost. alex-lacamoire's far shot (a 24-px face) is named only
    because its landmarks are refined at the frame's scale (``refine_below_px``): from the
    480-px input's it scores 0.26 against his photo (``cast_link_thresh`` 0.30)."""
    from screenalytics_assets.settings import load_settings
    from tests.conftest import FACEBANK, HAMILTON_EP
    from tests.helpers import run_episode

    fast = run_episode(tmp_path, HAMILTON, HAMILTON_EP, settings=load_settings(profile="fast"),
                       facebank=FACEBANK)
    assert fast.load("tracks").stride == 3
    named = fast.load("screentime").cast_seconds()
    balanced = hamilton_run.load("screentime").cast_seconds()
    assert balanced["lin-manuel-miranda"] > 4 and balanced["barack-obama"] > 1
    assert set(named) == set(balanced)
    for cast_id, seconds in balanced.items():
        assert named[cast_id] == pytest.approx(seconds, abs=0.3), (cast_id, named, balanced)
