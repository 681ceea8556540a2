"""The long known-answer episode (tests/long_episode.py): deterministic, an exact and consistent
answer, cuts the shot-cut detector finds; and one short episode through the real pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from screenalytics_assets.core.tracking import Track
from tests.conftest import FACES
from tests.long_episode import (
    ABSENT,
    CAST,
    FPS,
    GUESTS,
    HEIGHT,
    MAX_FACE_PX,
    MAX_OUT,
    MAX_SHOT_S,
    MIN_CUT_SCORE,
    MIN_FACE_PX,
    MIN_SHOT_S,
    OUTCOMES,
    SPRITE_SCALE,
    WIDTH,
    Face,
    LongEpisode,
    Shot,
    build_long_episode,
    cut_score,
    gradient,
    load_face_boxes,
    main,
    plan,
    seconds_after_review,
    seconds_by_outcome,
    truth_doc,
)


@pytest.fixture(scope="module")
def short_episode(tmp_path_factory):
    """15 seconds (four shots), built in about a second."""
    return build_long_episode(FACES, tmp_path_factory.mktemp("long-short"), minutes=0.25)


def test_same_seed_same_episode(tmp_path, short_episode):
    again = build_long_episode(FACES, tmp_path / "again", minutes=0.25)
    assert again.path.read_bytes() == short_episode.path.read_bytes()
    assert again.truth_path.read_text() == short_episode.truth_path.read_text()
    boxes = load_face_boxes()
    other = truth_doc(plan(0.25, 1, boxes), 0.25, 1)
    assert other["shots"] != json.loads(short_episode.truth_path.read_text())["shots"]


def test_the_answer_is_consistent():
    """A 20-minute plan (no pixels drawn): every person's seconds are the frames of their shots,
    shots of 1-8 s tile the episode, faces 24-300 px inside their bands, never more than
    MAX_OUT out of frame, a cut at every shot, and people recurring from both photos."""
    boxes = load_face_boxes()
    shots = plan(20.0, 0, boxes)
    doc = truth_doc(shots, 20.0, 0)
    assert doc["n_frames"] == 20 * 60 * FPS
    assert [s.start_frame for s in shots[1:]] == [s.end_frame + 1 for s in shots[:-1]]
    assert all(MIN_SHOT_S * FPS <= s.n_frames <= MAX_SHOT_S * FPS for s in shots)
    for key, person in doc["people"].items():
        frames = sum(s.n_frames for s in shots if any(f.person == key for f in s.faces))
        assert person["frames"] == frames and person["seconds"] == frames / FPS, key
        assert person["in_facebank"] == (key in CAST)
    assert set(doc["people"]) == set(CAST) | set(GUESTS)
    assert doc["absent"] == sorted(ABSENT)  # everyone else comes on screen in 20 minutes
    assert all(doc["people"][k]["seconds"] == 0 for k in ABSENT)
    assert all(doc["people"][k]["seconds"] > 0 for k in GUESTS)
    photos = {}
    for k, s in enumerate(shots):
        assert 1 <= len(s.faces) <= 4
        assert len({f.person for f in s.faces}) == len(s.faces)
        for f in s.faces:
            photos.setdefault(f.person, set()).add(f.photo)
            assert MIN_FACE_PX <= min(f.height) and max(f.height) <= MAX_FACE_PX
            assert f.max_out <= MAX_OUT
            x1, y1, x2, y2 = boxes[f.person, f.photo]
            for t in np.linspace(0, 1, 21):
                x, y, h = f.at(t)
                w = h * (x2 - x1) / (y2 - y1)
                assert max(0.0, -(x - w / 2), x + w / 2 - WIDTH) / w <= f.max_out + 1e-6
                half = SPRITE_SCALE * h * max(1.0, (x2 - x1) / (y2 - y1)) / 2
                assert half - 1e-6 <= y <= HEIGHT - half + 1e-6
        if k:
            assert cut_score(gradient(*shots[k - 1].background, 36, 4),
                             gradient(*s.background, 36, 4)) >= MIN_CUT_SCORE
    assert all(p == {"ref_02", "ref_03"} for p in photos.values()), photos
    assert sum(f.max_out > 0.3 for s in shots for f in s.faces) >= 20  # some partly out
    heights = [h for s in shots for f in s.faces for h in f.height]
    assert min(heights) < 30 and max(heights) > 250


def test_shot_cut_detector_finds_every_cut(short_episode):
    from screenalytics_assets.core.shots import ShotCutDetector
    from screenalytics_assets.core.video import iter_frames, probe_video

    info = probe_video(short_episode.path)
    assert (info.width, info.height, info.n_frames) == (WIDTH, HEIGHT, short_episode.n_frames)
    cuts = ShotCutDetector(info.fps)
    for _ in iter_frames(short_episode.path, info, stride=8, new_shot=cuts.feed):
        pass
    assert len(short_episode.shots) >= 3
    assert cuts.cuts() == short_episode.shot_starts[1:]


def test_facebank_folder_and_truth_file(short_episode, tmp_path, capsys):
    assert sorted(p.name for p in short_episode.facebank_dir.iterdir()) == sorted(CAST)
    assert all([p.name for p in (short_episode.facebank_dir / c).iterdir()] == ["ref_01.jpg"]
               for c in CAST)
    loaded = LongEpisode.load(short_episode.path.parent)
    assert loaded.seconds == short_episode.seconds and loaded.shots == short_episode.shots
    assert set(short_episode.absent) >= set(ABSENT)
    assert all(short_episode.seconds[c] == 0 for c in short_episode.absent)
    assert main(["--minutes", "0.001", "--out", str(tmp_path)]) == 2
    assert "shorter than one shot" in capsys.readouterr().err


def _track(track_id: int, frames: range, x: float, dur_frames: int) -> Track:
    n = len(frames)
    bbox = np.tile(np.array([x - 20, 340, x + 20, 380], np.float32), (n, 1))
    return Track.from_columns(track_id, 0, np.arange(n), np.array(frames, np.int64),
                              np.array(frames) / FPS, np.array(frames, np.int64), bbox,
                              np.full(n, 0.9, np.float32), np.zeros((n, 5, 2), np.float32),
                              np.full(n, dur_frames / FPS))


def test_every_second_on_screen_is_counted_once_under_its_outcome():
    """One 2-s shot, p01 (100 px, on the left) and p03 (30 px, on the right): p01's track covers
    40 frames and its identity is named p01; p03's covers 20 and waits for review behind p01;
    a track clustering dropped lies on p01's face within the named one (first in track order:
    the better outcome wins, not the first track). The rest of each person's frames are missed
    (p03's face is small)."""
    faces = (Face("p01", "ref_02", ((0.0, 300.0), (1.0, 300.0)), (360.0, 360.0), (100.0, 100.0)),
             Face("p03", "ref_02", ((0.0, 900.0), (1.0, 900.0)), (360.0, 360.0), (30.0, 30.0)))
    ep = LongEpisode(Path("episode.mp4"), Path("truth.json"), FPS, 50, {"p01": 2.0, "p03": 2.0},
                     ["p01", "p03"], [], [], Path("facebank"), [Shot(0, 49, ((0,) * 3,) * 2,
                                                                      faces)])
    tracks = SimpleNamespace(tracks=[_track(0, range(10, 20, 2), 300.0, 2),
                                     _track(1, range(0, 40, 2), 305.0, 2),
                                     _track(2, range(0, 20, 2), 890.0, 2)])
    links = SimpleNamespace(reviewed=lambda: [
        SimpleNamespace(identity_id=0, cast_id="p01", needs_review=False, suggestions=[]),
        SimpleNamespace(identity_id=1, cast_id=None, needs_review=True,
                        suggestions=[{"cast_id": "p01"}, {"cast_id": "p03"}])])
    report = SimpleNamespace(people=[SimpleNamespace(identity_id=0, cast_id="p01"),
                                     SimpleNamespace(identity_id=1, cast_id=None)])
    out = seconds_by_outcome(ep, tracks, {1: 0, 2: 1}, links, report)
    assert set(out) == {"p01", "p03"} and all(list(by) == list(OUTCOMES) for by in out.values())
    assert out["p01"]["named"] == pytest.approx(40 / FPS)
    assert out["p01"]["missed"] == pytest.approx(10 / FPS)
    assert out["p03"]["review wrong"] == pytest.approx(20 / FPS)
    assert out["p03"]["missed small"] == pytest.approx(30 / FPS)
    for person, by in out.items():
        assert sum(by.values()) == pytest.approx(ep.seconds[person])
        assert by["no identity"] == 0.0  # track 0's frames are p01's named ones


@pytest.mark.slow
def test_pipeline_on_a_one_minute_episode(tmp_path_factory):
    """The real pipeline (ci_pack, balanced) on one minute: per-person error against the answer.

    What holds (measured, seed 0): absent cast members get nothing and nobody gets more than
    their time from the automatic links (precise first: an ambiguous identity is left
    ``needs_review``). Once each of those is linked to its first suggestion (one click per item of
    the review queue), at least 75 % of the people on screen are within 2 % + 0.2 s (5 frames: a
    face cut by the frame edge may be lost for a few frames) beyond their seconds of small faces
    (model-limited: the detector sees a 24-px face of a 720p frame as 12 px at ``det_size`` 640),
    and nobody is off by more than 1.5 s beyond them: at ``balanced`` (stride 2) 16 of 19 were
    exact, p10 lost 0.88 s and p19 1.20 s to identities whose suggestions name someone else or
    nobody (ci_pack's weak recognizer), p05 and p20 only their small faces."""
    from tests.helpers import run_episode

    ep = build_long_episode(FACES, tmp_path_factory.mktemp("long-1min"), minutes=1.0)
    run = run_episode(tmp_path_factory.mktemp("long-1min-run"), ep.path, "long-s01e01",
                      facebank=ep.facebank_dir)
    report = run.load("screentime")
    named = report.cast_seconds()
    got = seconds_after_review(report, run.load("cast_links"))
    errors = {c: got.get(c, 0.0) - s for c, s in ep.cast_seconds().items()}
    small = {k: p["small_seconds"] for k, p in
             json.loads(ep.truth_path.read_text())["people"].items()}
    print("\nperson  truth(s)  small faces(s)  named(s)  after review(s)  error(s)  error(%)")
    for c, s in ep.cast_seconds().items():
        pct = f"{100 * errors[c] / s:+.1f}" if s else "-"
        print(f"{c:6s} {s:8.2f} {small[c]:14.2f} {named.get(c, 0.0):9.2f} "
              f"{got.get(c, 0.0):16.2f} {errors[c]:+8.2f}  {pct}")
    truth = ep.cast_seconds()
    print(f"named recall {sum(min(named.get(c, 0.0), s) for c, s in truth.items()):.2f} of "
          f"{sum(truth.values()):.2f} s")
    assert set(ep.absent) >= set(ABSENT) and len(ep.cast) - len(ep.absent) >= 15
    for c in ep.absent:
        assert got.get(c, 0.0) == 0.0, (c, got)
    present = [c for c, s in truth.items() if s > 0]
    for c in present:
        assert named.get(c, 0.0) <= truth[c] + 0.2, (c, named)
        assert errors[c] <= 0.2, (c, errors)
        assert errors[c] >= -(1.5 + small[c]), (c, errors, small[c])
    exact = [c for c in present if errors[c] >= -(0.02 * truth[c] + 0.2 + small[c])]
    assert len(exact) >= 0.75 * len(present), (exact, errors)
