"""Unit tests of the pure computation package (no Dagster)."""

from __future__ import annotations

import numpy as np
import pytest

from screenalytics_assets.core.clustering import ClusteringParams, cluster_tracks, track_embeddings
from screenalytics_assets.core.embedding import l2_normalize
from screenalytics_assets.core.ep_id import parse_ep_id, validate_ep_id
from screenalytics_assets.core.errors import InvalidEpIdError
from screenalytics_assets.core.sampling import face_quality, select_samples
from screenalytics_assets.core.screentime import screen_time, union_intervals
from screenalytics_assets.core.shots import shot_ids_for_frames, shots_from_cuts
from screenalytics_assets.core.tracking import Track
from screenalytics_assets.core.video import iter_frames, probe_video, read_frames_at
from screenalytics_assets.settings import ASSET_SETTINGS, load_settings
from tests.conftest import HAMILTON


# ---------------------------------------------------------------- ep_id
@pytest.mark.parametrize("ep_id", ["rhobh-s05e14", "the-office-s01e01", "show2-s10e100"])
def test_valid_ep_ids(ep_id):
    assert validate_ep_id(ep_id) == ep_id


@pytest.mark.parametrize("ep_id", ["../x", "RHOBH-s05e14", "my show-s01e01", "rhobh-s5e14",
                                   "rhobh-s05e14/..", "rhobh_s05e14", "", "rhobh--a-s01e01",
                                   "x-s01e007", None, "a/b-s01e01"])
def test_invalid_ep_ids(ep_id):
    with pytest.raises(InvalidEpIdError, match="ep_id"):
        validate_ep_id(ep_id)


def test_parse_ep_id():
    e = parse_ep_id("rhobh-s05e14")
    assert (e.show, e.season, e.episode) == ("rhobh", 5, 14)


# ---------------------------------------------------------------- video
def test_read_frames_at_matches_sequential_decode():
    info = probe_video(HAMILTON)
    frames = {f.pts: f for f in iter_frames(HAMILTON, info, stride=1)}
    pts = sorted(frames)
    wanted = [pts[3], pts[100], pts[101], pts[270]]
    got = dict(read_frames_at(HAMILTON, wanted, seek_gap_s=0.5))
    assert sorted(got) == wanted
    for p in wanted:
        assert np.array_equal(got[p], frames[p].image)


def test_iter_frames_stride_and_timestamps():
    info = probe_video(HAMILTON)
    frames = list(iter_frames(HAMILTON, info, stride=3))
    assert len(frames) == 275
    assert [f.frame_idx for f in frames if f.image is not None] == list(range(0, 275, 3))
    ts = np.array([f.ts for f in frames])
    assert ts[0] == 0.0 and (np.diff(ts) > 0).all()
    assert ts[-1] == pytest.approx(274 / 29.97, abs=1e-3)


# ---------------------------------------------------------------- shots
def test_shots_from_cuts_cover_every_frame():
    ts = np.arange(10) / 10.0
    shots = shots_from_cuts([3, 7], ts, fps=10.0)
    assert [(s.start_frame, s.end_frame) for s in shots] == [(0, 2), (3, 6), (7, 9)]
    assert shots[-1].end_ts == pytest.approx(1.0)
    assert shot_ids_for_frames(shots, np.array([0, 2, 3, 9])).tolist() == [0, 0, 1, 2]


# ---------------------------------------------------------------- screen time
def _track(tid, shot, frames, fps=10.0, stride=2):
    f = np.asarray(frames, np.int64)
    n = len(f)
    box = np.tile(np.array([[0, 0, 100, 100]], np.float32), (n, 1))
    lm = np.tile(np.array([[[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]]], np.float32),
                 (n, 1, 1))
    return Track.from_columns(tid, shot, f, f, f / fps, f, box, np.full(n, 0.9, np.float32), lm,
                              np.full(n, stride / fps))


def test_union_intervals_merges_overlaps_and_clips():
    assert union_intervals([(0, 1), (0.5, 2), (3, 4)]) == [(0, 2), (3, 4)]
    assert union_intervals([(9, 12)], duration_s=10) == [(9, 10)]


def test_screen_time_is_stride_aware_and_unions_tracks():
    # stride 2 at 10 fps: each processed frame stands for 0.2 s
    a = _track(0, 0, [0, 2, 4])  # 0.0-0.6
    b = _track(1, 0, [4, 6])     # 0.4-0.8 overlaps a
    c = _track(2, 1, [20])       # 2.0-2.2
    people = screen_time({0: [a, b], 1: [c]}, duration_s=10.0)
    assert people[0].identity_id == 0
    assert people[0].seconds == pytest.approx(0.8)
    assert people[0].first_ts == 0.0 and people[0].last_ts == pytest.approx(0.8)
    assert people[1].seconds == pytest.approx(0.2)


# ---------------------------------------------------------------- clustering
def test_cooccurring_tracks_are_never_merged():
    tracks = [_track(0, 0, range(0, 10)), _track(1, 0, range(5, 15)), _track(2, 1, range(20, 30))]
    v = l2_normalize(np.ones((1, 8)))
    emb = np.repeat(v, 9, axis=0)  # identical embeddings for every face
    face_tracks = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    c = cluster_tracks(tracks, face_tracks, emb, ClusteringParams(0.5, 0.4, 3))
    assert c.labels[0] != c.labels[1]
    assert c.labels[2] in (c.labels[0], c.labels[1])


def test_clustering_threshold_and_weak_tracks():
    rng = np.random.default_rng(0)
    a, b = l2_normalize(rng.normal(size=(2, 64)))
    tracks = [_track(i, i, range(10 * i, 10 * i + 5)) for i in range(5)]
    # tracks 0,1 look like a; 2,3 like b; 4 is weak (1 face) and looks like a
    emb = l2_normalize(np.vstack([a + 0.05 * rng.normal(size=(3, 64)),
                                  a + 0.05 * rng.normal(size=(3, 64)),
                                  b + 0.05 * rng.normal(size=(3, 64)),
                                  b + 0.05 * rng.normal(size=(3, 64)),
                                  a[None] + 0.05 * rng.normal(size=(1, 64))]))
    face_tracks = np.array([0] * 3 + [1] * 3 + [2] * 3 + [3] * 3 + [4])
    c = cluster_tracks(tracks, face_tracks, emb, ClusteringParams(0.5, 0.4, 3))
    assert c.labels.tolist() == [0, 0, 1, 1, 0]
    assert c.attached.tolist() == [False, False, False, False, True]
    assert np.allclose(np.linalg.norm(c.centroids, axis=1), 1.0)
    # a very strict threshold leaves every strong track alone; the weak one needs 0.99 similarity
    strict = cluster_tracks(tracks, face_tracks, emb, ClusteringParams(0.001, 0.999, 3))
    assert len(set(strict.labels.tolist())) == 5


def test_clusters_merge_below_the_threshold_not_at_it():
    """Two strong tracks merge when their cosine distance is under ``cluster_thresh`` and stay
    apart at it (scikit-learn's ``distance_threshold``: "at or above which clusters will not
    be merged"); average linkage of three tracks merges the closest pair first."""
    rng = np.random.default_rng(3)
    a, b = l2_normalize(rng.normal(size=(2, 32)))
    tracks = [_track(i, i, range(10 * i, 10 * i + 5)) for i in range(3)]
    emb = l2_normalize(np.vstack([np.repeat(a[None], 3, 0), np.repeat(l2_normalize(a + 0.4 * b)
                                  [None], 3, 0), np.repeat(b[None], 3, 0)]).astype(np.float32))
    face_tracks = np.repeat(np.arange(3), 3)
    te, _ = track_embeddings(face_tracks, emb, np.arange(3))
    d01 = float(np.float32(1.0) - te[0] @ te[1])  # as cluster_tracks computes it
    at = cluster_tracks(tracks, face_tracks, emb, ClusteringParams(d01, 0.999, 3))
    assert len(set(at.labels.tolist())) == 3
    above = cluster_tracks(tracks, face_tracks, emb,
                           ClusteringParams(float(np.nextafter(d01, 1.0)), 0.999, 3))
    assert above.labels.tolist()[:2] == [0, 0] and above.labels[2] == 1
    merged = cluster_tracks(tracks, face_tracks, emb, ClusteringParams(1.99, 0.999, 3))
    assert merged.labels.tolist() == [0, 0, 0]


def test_track_embeddings_are_unit_means():
    emb = l2_normalize(np.array([[1, 0], [0, 1], [1, 1]], np.float32))
    te, n = track_embeddings(np.array([7, 7, 9]), emb, np.array([7, 9, 11]))
    assert n.tolist() == [2, 1, 0]
    assert np.allclose(te[0], l2_normalize(np.array([1, 1], np.float32)))
    assert np.allclose(te[2], 0)


# ---------------------------------------------------------------- sampling
def test_face_quality_prefers_frontal_and_large_faces():
    box = np.array([[0, 0, 120, 120]] * 3, np.float32)
    frontal = [[30, 40], [90, 40], [60, 70], [40, 95], [80, 95]]
    profile = [[30, 40], [50, 40], [52, 70], [40, 95], [50, 95]]
    q = face_quality(box, np.array([0.9, 0.9, 0.9]), np.array([frontal, profile, frontal]))
    assert q[0] > q[1]
    small = face_quality(box / 4, np.array([0.9]), np.array([frontal]) / 4)
    assert small[0] < q[0]


def test_select_samples_caps_per_track():
    t = _track(0, 0, range(40))
    s = select_samples([t, _track(1, 0, range(3))], max_samples_per_track=16)
    assert (s.track_id == 0).sum() == 16 and (s.track_id == 1).sum() == 3
    assert s.face_id.tolist() == list(range(19))


# ---------------------------------------------------------------- settings
def test_code_version_changes_only_for_assets_reading_the_setting():
    base = load_settings(profile="balanced")
    changed = base.with_overrides({"cluster_thresh": base["cluster_thresh"] + 0.1})
    differs = {a for a in ASSET_SETTINGS if base.code_version(a) != changed.code_version(a)}
    assert differs == {"identities"}
    det = base.with_overrides({"det_thresh": "0.6"})
    assert det["det_thresh"] == 0.6
    # cast photos have their own detector settings (a photo is not a video frame)
    assert {a for a in ASSET_SETTINGS if base.code_version(a) != det.code_version(a)} == {
        "detections"}
    photo = base.with_overrides({"facebank_det_thresh": "0.6"})
    assert {a for a in ASSET_SETTINGS if base.code_version(a) != photo.code_version(a)} == {
        "facebank"}
    gap = base.with_overrides({"stitch_gap_s": "0.2"})
    assert {a for a in ASSET_SETTINGS if base.code_version(a) != gap.code_version(a)} == {
        "identities", "screentime"}


def test_unknown_setting_is_rejected():
    from screenalytics_assets.settings import SettingsError

    with pytest.raises(SettingsError, match="unknown setting 'nope'"):
        load_settings().with_overrides({"nope": 1})
    with pytest.raises(SettingsError, match="unknown profile"):
        load_settings(profile="turbo")


def test_coverage_follows_real_frame_times_and_stops_at_cuts():
    from screenalytics_assets.core.detect import coverage

    # variable frame rate: 0.1 s frames, then 0.03 s frames; a cut at frame 4
    frame_ts = np.array([0.0, 0.1, 0.2, 0.3, 0.33, 0.36, 0.39])
    shots = shots_from_cuts([4], frame_ts, fps=30.0)
    frames = np.array([0, 2, 4, 6])
    dur = coverage(frames, shot_ids_for_frames(shots, frames), frame_ts, shots, stride=2, fps=30.0)
    # frame 0 stands for 0-1 (0.2 s); frame 2 for 2-3, cut before 4 (0.13 s);
    # frame 4 for 4-5 (0.06 s); frame 6 is the last frame, as long as the one before (0.03 s)
    assert dur == pytest.approx([0.2, 0.13, 0.06, 0.03])


def test_npy_rows_round_trip_without_holding_the_array(tmp_path):
    from screenalytics_assets.core.artifacts import NpyRows, spool_array

    rows = spool_array(tmp_path, (5, 4, 3), np.uint8)
    for i in range(5):
        rows[i] = np.full((4, 3), i, np.uint8)
    saved = np.load(rows.path)
    assert saved.shape == (5, 4, 3) and saved[:, 0, 0].tolist() == [0, 1, 2, 3, 4]
    back = NpyRows(rows.path)
    assert len(back) == 5 and back.dtype == np.uint8
    assert np.array_equal(back[1:3], saved[1:3]) and np.array_equal(back[-1], saved[4])
    assert np.array_equal(np.asarray(back), saved)
    with pytest.raises(ValueError, match="row shape"):
        rows[0] = np.zeros((2, 2), np.uint8)
