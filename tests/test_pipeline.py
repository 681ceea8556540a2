"""The whole episode job on real footage and on a synthetic episode with a known answer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from dagster import AssetKey

from tests.conftest import HAMILTON_CUTS, HAMILTON_FRONTAL_SHOT

#: Every test here runs the pipeline on video.
pytestmark = pytest.mark.slow

EPISODE_ASSETS = ["detections", "tracks", "faces", "embeddings", "identities", "track_reps",
                  "cast_links", "screentime"]
DESIGN_FILES = ["detections.jsonl", "tracks.jsonl", "faces.jsonl", "faces_embeddings.npy",
                "identities.json", "cluster_centroids.json", "track_reps.jsonl",
                "track_metrics.json", "cast_links.json", "screentime.json", "screentime.csv",
                "screentime.png"]


def test_hamilton_shot_cuts_are_where_the_footage_cuts(hamilton_run):
    scan = hamilton_run.load("detections")
    assert [s.start_frame for s in scan.shots] == [0, *HAMILTON_CUTS]
    assert scan.video.n_frames == 275
    assert scan.shots[-1].end_frame == 274


def test_hamilton_every_shot_has_faces(hamilton_run):
    scan = hamilton_run.load("detections")
    per_shot = np.bincount(scan.detections.shot_id, minlength=len(scan.shots))
    assert (per_shot > 0).all(), per_shot
    # shot 0 shows exactly two people (performer and pianist) on every frame
    frames0 = scan.detections.frame_idx[scan.detections.shot_id == 0]
    assert set(np.bincount(frames0)[frames0]) == {2}


def test_hamilton_no_track_crosses_a_cut(hamilton_run):
    tracks = hamilton_run.load("tracks")
    assert tracks.tracks
    for t in tracks.tracks:
        shot = tracks.shots[t.shot_id]
        assert shot.start_frame <= t.start_frame <= t.end_frame <= shot.end_frame
        assert (np.diff(t.frame_idx) > 0).all()


def test_hamilton_frontal_performer_gets_most_screen_time(hamilton_run):
    tracks = hamilton_run.load("tracks")
    report = hamilton_run.load("screentime")
    identities = hamilton_run.load("identities")
    frontal = [t.track_id for t in tracks.tracks if t.shot_id == HAMILTON_FRONTAL_SHOT]
    assert len(frontal) == 1  # the long frontal shot shows one face
    top = report.people[0]
    top_tracks = next(i.track_ids for i in identities.identities
                      if i.identity_id == top.identity_id)
    assert frontal[0] in top_tracks
    assert top.seconds > report.people[1].seconds
    # the frontal shot alone is 129 frames = 4.3 s
    assert top.seconds >= 129 / 29.97 - 0.05


def test_hamilton_files_and_record_formats(hamilton_run):
    folder = hamilton_run.store.root / "manifests" / hamilton_run.ep_id
    for name in DESIGN_FILES:
        assert (folder / name).is_file(), name
    track = json.loads((folder / "tracks.jsonl").read_text().splitlines()[0])
    assert {"track_id", "start_frame", "end_frame", "start_ts", "end_ts", "shot_id",
            "frames"} <= set(track)
    assert {"frame_idx", "ts", "bbox", "score"} <= set(track["frames"][0])
    ids = json.loads((folder / "identities.json").read_text())
    assert {"identity_id", "track_ids", "n_faces", "seconds"} <= set(ids["identities"][0])
    assert "params" in ids
    st = json.loads((folder / "screentime.json").read_text())
    assert st["ep_id"] == hamilton_run.ep_id and st["fps"] == pytest.approx(29.97)
    assert {"identity_id", "cast_id", "seconds", "n_tracks", "first_ts", "last_ts"} <= set(
        st["people"][0])
    emb = np.load(folder / "faces_embeddings.npy")
    assert emb.dtype == np.float32 and emb.shape[1] == 512
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    n_faces = len((folder / "faces.jsonl").read_text().splitlines())
    assert emb.shape[0] == n_faces
    # no temporary file is left behind by the atomic writes
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_hamilton_materializations_carry_metadata(hamilton_run):
    inst = hamilton_run.instance
    for name in EPISODE_ASSETS:
        mat = inst.get_latest_materialization_event(AssetKey(name)).asset_materialization
        assert mat.partition == hamilton_run.ep_id
        md = mat.metadata
        assert {"runtime_s", "settings_used", "path"} <= set(md), (name, set(md))
    det = inst.get_latest_materialization_event(AssetKey("detections")).asset_materialization
    md = det.metadata
    # balanced: stride 2, restarting at the cuts 20, 82 and 211 (shots of 20, 62, 129, 64 frames)
    assert md["stride_used"].value == 2 and md["frames_decoded"].value == 275
    # with the adaptive schedule: every anchor (frames 0, 4, 8, ... of each shot), and of the
    # frames between them only those where the faces change (the audience shots: most of them)
    assert md["settings_used"].value["adaptive_stride"] is True
    assert 5 + 16 + 33 + 16 < md["frames_processed"].value < 10 + 31 + 65 + 32
    assert md["detections"].value > 0
    assert md["model_pack"].value == "ci_pack"
    assert md["execution_provider"].value == "CPUExecutionProvider"
    assert md["frames_per_second"].value > 0
    assert md["settings_used"].value["det_thresh"] == hamilton_run.settings["det_thresh"]
    # the faces stage took every sample from the detection pass and decoded nothing
    faces = inst.get_latest_materialization_event(AssetKey("faces")).asset_materialization
    assert faces.metadata["faces_from_detection_pass"].value == faces.metadata["faces"].value > 0
    assert faces.metadata["frames_decoded"].value == 0
    assert not list((hamilton_run.store.spool_dir() / "detection_crops").glob("*.u8"))


def _panel_of(track, n_panels: int, width: int = 640) -> int:
    cx = float((track.bbox[:, 0] + track.bbox[:, 2]).mean() / 2)
    return min(int(cx // (width / n_panels)), n_panels - 1)


def test_synthetic_identities_and_seconds(synthetic_episode, synthetic_run):
    from tests.synthetic import SHOTS

    tracks = synthetic_run.load("tracks")
    identities = synthetic_run.load("identities")
    report = synthetic_run.load("screentime")
    # ground truth: (shot, panel) -> person
    truth = {(s, k): person for s, (_, members) in enumerate(SHOTS)
             for k, (person, _) in enumerate(members)}
    shot_of = {}
    starts = synthetic_episode.shot_starts
    for t in tracks.tracks:
        shot = int(np.searchsorted(starts, t.start_frame, side="right") - 1)
        shot_of[t.track_id] = truth[(shot, _panel_of(t, len(SHOTS[shot][1])))]
    people = {}
    for ident in identities.identities:
        persons = {shot_of[t] for t in ident.track_ids}
        assert len(persons) == 1, f"identity {ident.identity_id} mixes {persons}"
        people.setdefault(persons.pop(), []).append(ident.identity_id)
    # every person is one identity, across two different photos
    assert sorted(people) == sorted(synthetic_episode.seconds)
    assert all(len(v) == 1 for v in people.values()), people
    assert len(identities.identities) == len(synthetic_episode.seconds)
    # Seconds: each person is on screen for whole shots. Tolerance 0.25 s per shot they appear in:
    # a shot cut can land one frame off (0.1 s at 10 fps) and the detector can miss a frame at a
    # shot's edge (another 0.1 s), with rounding to spare.
    seconds = {p.identity_id: p.seconds for p in report.people}
    for person, (ident,) in people.items():
        n_shots = sum(1 for _, members in SHOTS for who, _ in members if who == person)
        assert seconds[ident] == pytest.approx(synthetic_episode.seconds[person],
                                               abs=0.25 * n_shots), person


def test_synthetic_shot_cuts(synthetic_episode, synthetic_run):
    scan = synthetic_run.load("detections")
    assert [s.start_frame for s in scan.shots] == synthetic_episode.shot_starts
