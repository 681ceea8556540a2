"""Asset checks: the invariants pass on real output and fail on broken artifacts."""

from __future__ import annotations

import pytest

import numpy as np


from screenalytics_assets.checks import (
    INVARIANTS,
    episode_check_specs,
    every_track_in_one_identity,
    screentime_within_duration,
    tracks_stay_in_one_shot,
)
from screenalytics_assets.core.artifacts import (
    CODECS,
    Identity,
    IdentitySet,
    ScreenTimeReport,
    TrackSet,
)
from screenalytics_assets.core.screentime import PersonTime
from screenalytics_assets.core.validation import (
    embedding_problems,
    membership_problems,
    screentime_problems,
    track_problems,
)


@pytest.mark.slow
def test_checks_pass_on_the_hamilton_run(hamilton_run):
    evaluations = hamilton_run.result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == {
        "embeddings_are_unit_vectors", "tracks_stay_in_one_shot", "every_track_in_one_identity",
        "screentime_within_duration", *(f"{a}_files_intact" for a in CODECS)}
    assert all(e.passed for e in evaluations)


@pytest.mark.slow
def test_each_check_runs_in_its_assets_step(hamilton_run):
    """No step of its own per check: the run's steps are its assets, and every evaluation comes
    from the step of the asset it checks (files_intact passing there means the files had been
    written: a missing manifest is a problem)."""
    from dagster import DagsterEventType

    events = hamilton_run.result.all_events
    assert {e.step_key for e in events if e.step_key} == set(CODECS)
    checks = [e for e in events if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION]
    assert len(checks) == len(CODECS) + 4
    assert all(e.step_key == e.asset_check_evaluation_data.asset_key.path[-1] for e in checks)


def test_every_episode_check_is_blocking():
    specs = {a: episode_check_specs(a) for a in CODECS}
    assert {s.name for a in CODECS for s in specs[a]} == {
        *(f"{a}_files_intact" for a in CODECS), *(n for c in INVARIANTS.values() for n in c)}
    assert all(s.blocking and s.asset_key.path[-1] == a for a in CODECS for s in specs[a])


def test_embedding_problems():
    good = np.eye(4, 8, dtype=np.float32)
    assert embedding_problems(good, 8) == []
    assert "expected [n_faces, 512]" in embedding_problems(good, 512)[0]
    bad = good.copy()
    bad[1, 0] = np.nan
    bad[2] *= 2
    problems = " ".join(embedding_problems(bad, 8))
    assert "NaN" in problems and "not unit-norm" in problems


@pytest.mark.slow
def test_track_problems_on_a_track_crossing_a_cut(hamilton_run):
    tracks = hamilton_run.load("tracks")
    assert track_problems(tracks.tracks, tracks.shots) == []
    t = tracks.tracks[0]
    t.frame_idx = t.frame_idx.copy()
    t.frame_idx[-1] = tracks.shots[t.shot_id].end_frame + 5
    assert "leaves shot" in track_problems(tracks.tracks, tracks.shots)[0]
    result = tracks_stay_in_one_shot(TrackSet(tracks.video, tracks.stride, tracks.shots,
                                              tracks.tracks))
    assert not result.passed and "leaves shot" in result.description


def test_membership_problems():
    assert membership_problems([0, 1, 2], {0: [0, 1], 1: [2]}) == []
    problems = membership_problems([0, 1, 2, 3], {0: [0, 1], 1: [1, 2, 9]})
    assert "track 1 is in identities [0, 1]" in problems
    assert "track 3 is in no identity" in problems
    assert "identity names unknown track 9" in problems


@pytest.mark.slow
def test_identity_check_fails_on_a_shared_track(hamilton_run):
    tracks = hamilton_run.load("tracks")
    ids = hamilton_run.load("identities")
    broken = IdentitySet([*ids.identities, Identity(99, [ids.identities[0].track_ids[0]], 1, 0.1)],
                         ids.centroids, ids.params)
    assert not every_track_in_one_identity(broken, tracks).passed
    assert every_track_in_one_identity(ids, tracks).passed


def test_screentime_check():
    assert screentime_problems({0: 5.0}, 9.0) == []
    assert screentime_problems({0: 9.5}, 9.0)
    report = ScreenTimeReport("x-s01e01", 30.0, 9.0, [PersonTime(0, None, 12.0, 1, 0, 12, [])])
    assert not screentime_within_duration(report).passed


@pytest.mark.slow
def test_checks_run_per_partition_with_two_episodes(synthetic_episode, tmp_path):
    """Two episodes on one instance: each check reads its own partition."""
    from tests.helpers import run_episode

    first = run_episode(tmp_path / "a", synthetic_episode.path, "synth-s02e01")
    second = run_episode(tmp_path / "b", synthetic_episode.path, "synth-s02e02",
                         instance=first.instance)
    evaluations = second.result.get_asset_check_evaluations()
    assert len(evaluations) == 4 + len(CODECS) and all(e.passed for e in evaluations)
    assert {e.partition for e in evaluations} == {"synth-s02e02"}
