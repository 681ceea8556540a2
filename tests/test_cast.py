"""Facebank, cast linking, review edits and the screen-time report, on real footage and models."""

from __future__ import annotations

import csv
import io
import json

import cv2
import numpy as np
import pytest
from dagster import AssetCheckSeverity, AssetKey, DagsterInstance

from resources.edits import add_edit, clear_edits, read_edits
from resources.facebank import add_photos, read_facebank
from resources.storage import LocalStore
from screenalytics_assets.assets.cast import record_edits_version
from screenalytics_assets.core.facebank import FacebankError
from screenalytics_assets.core.review import ReviewError, dump_edits, on_screen_together
from screenalytics_assets.core.screentime import identity_seconds
from screenalytics_assets.definitions import build_definitions
from screenalytics_assets.settings import load_settings
from tests.conftest import FACEBANK, HAMILTON_FRONTAL_SHOT
from tests.helpers import build_facebank, dagster_stale_status, stale_assets
from tests.synthetic import SHOTS, person_of_track

LIN, BIDEN, OBAMA = "lin-manuel-miranda", "joe-biden", "barack-obama"


# ---------------------------------------------------------------------------- helpers
def frontal_track(run) -> int:
    tracks = run.load("tracks")
    (tid,) = [t.track_id for t in tracks.tracks if t.shot_id == HAMILTON_FRONTAL_SHOT]
    return tid


def identity_of(links, track_id: int):
    """The reviewed identity holding a track."""
    return next(i for i in links.reviewed() if track_id in i.track_ids)


def row_of(report, identity_id: int):
    return next((p for p in report.people if p.identity_id == identity_id), None)


def seconds_of(run, track_ids) -> float:
    tracks = run.load("tracks")
    by_id = {t.track_id: t for t in tracks.tracks}
    return identity_seconds([by_id[t] for t in track_ids], tracks.video.duration_s,
                            run.settings["stitch_gap_s"])


def edit(run, op: str, **args):
    """Record one review edit as the CLI does, check that exactly what reads the edits became
    stale, re-materialize only that, and return the new screen-time report."""
    add_edit(run.store, run.ep_id, op, **args)
    record_edits_version(run.instance, run.ep_id, read_edits(run.store, run.ep_id))
    assert stale_assets(run) == {"cast_links", "screentime"}
    result = run.materialize("cast_links", "screentime")
    assert result.success
    assert stale_assets(run) == set()
    return run.load("screentime")


@pytest.fixture
def review(hamilton_run):
    """The Hamilton run with no edits; yields (run, links and report before the edit). Afterwards
    the edits are cleared and what they made stale is re-materialized, so the session's run
    reads as before for the other tests."""
    run = hamilton_run
    assert read_edits(run.store, run.ep_id) is None
    yield run, run.load("cast_links"), run.load("screentime")
    if read_edits(run.store, run.ep_id) is not None:
        clear_edits(run.store, run.ep_id)
        record_edits_version(run.instance, run.ep_id, None)
        assert run.materialize("cast_links", "screentime").success


# ---------------------------------------------------------------------------- linking
@pytest.mark.slow
def test_hamilton_performer_linked_to_lin_with_most_screen_time(hamilton_run):
    links = hamilton_run.load("cast_links")
    report = hamilton_run.load("screentime")
    lin = identity_of(links, frontal_track(hamilton_run))
    assert lin.cast_id == LIN and lin.link_source == "auto"
    assert lin.score >= hamilton_run.settings["cast_link_thresh"]
    assert report.people[0].identity_id == lin.identity_id
    assert report.people[0].cast_id == LIN
    cast = report.cast_seconds()
    assert set(cast) == {LIN, BIDEN, OBAMA, "alex-lacamoire"}
    assert cast[LIN] == max(cast.values()) and cast[LIN] >= 129 / 29.97 - 0.05
    assert cast[BIDEN] == 0
    assert all(i.cast_id != BIDEN for i in links.reviewed())
    # identities that share a cast member never share a frame
    frames = {t.track_id: set(t.frame_idx.tolist()) for t in hamilton_run.load("tracks").tracks}
    linked = [i for i in links.reviewed() if i.cast_id]
    for a in linked:
        for b in linked:
            if a.identity_id < b.identity_id and a.cast_id == b.cast_id:
                assert not (set().union(*(frames[t] for t in a.track_ids))
                            & set().union(*(frames[t] for t in b.track_ids)))
    # every identity keeps ranked suggestions over the whole cast
    for a in links.auto:
        scores = [s["score"] for s in a.suggestions]
        assert {s["cast_id"] for s in a.suggestions} == set(cast)
        assert scores == sorted(scores, reverse=True)
    st = json.loads((hamilton_run.store.manifest_dir(hamilton_run.ep_id)
                     / "screentime.json").read_text())
    assert st["cast"][BIDEN] == 0 and st["people"][0]["cast_id"] == LIN


@pytest.mark.slow
def test_hamilton_facebank_asset(hamilton_run):
    fb = read_facebank(hamilton_run.store, "hamilton")
    assert fb.cast_ids == sorted(p.name for p in FACEBANK.iterdir())
    assert fb.vectors.shape == (7, 512) and fb.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(fb.vectors, axis=1), 1, atol=1e-4)
    mat = hamilton_run.instance.get_latest_materialization_event(
        AssetKey("facebank")).asset_materialization
    assert mat.partition == "hamilton"
    assert mat.metadata["photos"].value == 7
    assert mat.metadata["photos_without_face"].value == []
    assert "hamilton" in hamilton_run.instance.get_dynamic_partitions("shows")


@pytest.mark.slow
def test_hamilton_report_files_and_chart(hamilton_run):
    folder = hamilton_run.store.manifest_dir(hamilton_run.ep_id)
    png = (folder / "screentime.png").read_bytes()
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] >= 800
    rows = list(csv.DictReader(io.StringIO((folder / "screentime.csv").read_text())))
    assert rows[0]["cast_id"] == LIN and "name" in rows[0]
    md = hamilton_run.instance.get_latest_materialization_event(
        AssetKey("screentime")).asset_materialization.metadata
    assert md["chart"].value.startswith("![screen time](data:image/png;base64,")


# ---------------------------------------------------------------------------- review edits
@pytest.mark.slow
def test_review_rename(review):
    run, links, before = review
    lin = identity_of(links, frontal_track(run))
    after = edit(run, "rename", identity=lin.identity_id, name="Lin-Manuel Miranda (Hamilton)")
    row = row_of(after, lin.identity_id)
    assert row.name == "Lin-Manuel Miranda (Hamilton)" and row.cast_id == LIN
    assert row.seconds == pytest.approx(row_of(before, lin.identity_id).seconds)
    csv_text = (run.store.manifest_dir(run.ep_id) / "screentime.csv").read_text()
    assert "Lin-Manuel Miranda (Hamilton)" in csv_text


@pytest.mark.slow
def test_review_merge(review):
    run, links, before = review
    lin = identity_of(links, frontal_track(run))
    # an unknown single-track identity whose track never overlaps Lin's
    lin_frames = set().union(*[set(range(*_span(run, t))) for t in lin.track_ids])
    other = next(i for i in links.reviewed() if i.cast_id is None and len(i.track_ids) == 1
                 and not lin_frames & set(range(*_span(run, i.track_ids[0]))))
    after = edit(run, "merge", source=other.identity_id, target=lin.identity_id)
    assert row_of(after, other.identity_id) is None
    row = row_of(after, lin.identity_id)
    assert row.n_tracks == len(lin.track_ids) + 1 and row.cast_id == LIN
    # each figure is stored rounded to 1 ms, so a sum of two may be off by up to 1 ms
    assert row.seconds == pytest.approx(row_of(before, lin.identity_id).seconds
                                        + row_of(before, other.identity_id).seconds, abs=2e-3)
    # Lin may have other identities too (the stage shot): his total grows by the merged seconds
    assert after.cast_seconds()[LIN] == pytest.approx(
        before.cast_seconds()[LIN] + row_of(before, other.identity_id).seconds, abs=2e-3)


def _span(run, track_id: int) -> tuple[int, int]:
    t = run.load("tracks").tracks[track_id]
    return t.start_frame, t.end_frame + 1


@pytest.mark.slow
def test_review_move_track(review):
    run, links, before = review
    lin = identity_of(links, frontal_track(run))
    source = next(i for i in links.reviewed()
                  if i.identity_id != lin.identity_id and len(i.track_ids) >= 2)
    moved = source.track_ids[0]
    after = edit(run, "move_track", track=moved, target=lin.identity_id)
    assert row_of(after, lin.identity_id).seconds == pytest.approx(
        seconds_of(run, lin.track_ids + [moved]), abs=1e-3)
    assert row_of(after, lin.identity_id).n_tracks == len(lin.track_ids) + 1
    rest = [t for t in source.track_ids if t != moved]
    assert row_of(after, source.identity_id).seconds == pytest.approx(seconds_of(run, rest),
                                                                      abs=1e-3)
    assert row_of(after, source.identity_id).seconds < row_of(before, source.identity_id).seconds


@pytest.mark.slow
def test_review_delete_track(review):
    run, links, before = review
    ident = next(i for i in links.reviewed() if len(i.track_ids) >= 2)
    first, *rest = ident.track_ids  # track ids follow first appearance
    after = edit(run, "delete_track", track=first)
    row = row_of(after, ident.identity_id)
    assert row.n_tracks == len(ident.track_ids) - 1
    assert row.seconds == pytest.approx(seconds_of(run, rest), abs=1e-3)
    assert row.seconds < row_of(before, ident.identity_id).seconds
    tracks = run.load("tracks")
    assert row.first_ts == pytest.approx(min(tracks.tracks[t].ts[0] for t in rest), abs=1e-3)


@pytest.mark.slow
def test_review_link(review):
    run, links, before = review
    unknown = next(i for i in links.reviewed() if i.cast_id is None)
    assert before.cast_seconds()[BIDEN] == 0
    after = edit(run, "link", identity=unknown.identity_id, cast_id=BIDEN)
    assert row_of(after, unknown.identity_id).cast_id == BIDEN
    assert after.cast_seconds()[BIDEN] == pytest.approx(
        row_of(before, unknown.identity_id).seconds, abs=1e-3)
    reviewed = identity_of(run.load("cast_links"), unknown.track_ids[0])
    assert reviewed.link_source == "manual"


@pytest.mark.slow
def test_review_link_is_many_to_one_but_never_for_people_on_screen_together(review):
    run, links, before = review
    spans = {t.track_id: (t.start_frame, t.end_frame) for t in run.load("tracks").tracks}

    def together(a, b) -> bool:  # to pick the identities; the link edits are checked below
        return on_screen_together(a.track_ids, b.track_ids, spans)

    reviewed = links.reviewed()
    unlinked = [i for i in reviewed if i.cast_id is None]
    # an identity of Lin (the stage shot, with Alex beside him), an unlinked identity never on
    # screen with it, and another identity on screen with Lin but not with that one
    lin, apart, beside = next(
        (lin, a, b) for lin in reviewed if lin.cast_id == LIN
        for a in unlinked if not together(a, lin)
        for b in reviewed if b.identity_id != lin.identity_id and together(b, lin)
        and not together(b, a))
    # a second identity of Lin, never on screen with the first: both are Lin
    after = edit(run, "link", identity=apart.identity_id, cast_id=LIN)
    assert row_of(after, apart.identity_id).cast_id == LIN
    assert row_of(after, lin.identity_id).cast_id == LIN
    assert after.cast_seconds()[LIN] == pytest.approx(
        before.cast_seconds()[LIN] + row_of(before, apart.identity_id).seconds, abs=2e-3)
    # an identity on screen with the first Lin takes Lin from it (two people at once)
    after = edit(run, "link", identity=beside.identity_id, cast_id=LIN)
    assert row_of(after, beside.identity_id).cast_id == LIN
    assert row_of(after, lin.identity_id).cast_id is None
    assert row_of(after, apart.identity_id).cast_id == LIN


@pytest.mark.slow
def test_review_unlink(review):
    run, links, before = review
    lin = identity_of(links, frontal_track(run))
    after = edit(run, "unlink", identity=lin.identity_id)
    assert row_of(after, lin.identity_id).cast_id is None
    assert row_of(after, lin.identity_id).seconds == pytest.approx(
        row_of(before, lin.identity_id).seconds)
    # what Lin keeps is his other identities' time (the stage shot), if any
    assert after.cast_seconds().get(LIN, 0.0) == pytest.approx(
        before.cast_seconds()[LIN] - row_of(before, lin.identity_id).seconds, abs=2e-3)


@pytest.mark.slow
def test_observing_sources_picks_up_a_hand_edited_file(review):
    """What the UI's "Observe sources" does for identity_edits (a run of an asset job selecting
    the observable source) records the hand-edited file's version; Dagster itself then shows
    cast_links and screentime stale, and nothing upstream of them."""
    from dagster import Definitions, define_asset_job

    from resources.dagster_storage import LocalStorageResource
    from screenalytics_assets.assets.cast import identity_edits
    from screenalytics_assets.core.review import edits_version

    run, links, _ = review
    add_edit(run.store, run.ep_id, "unlink", identity=links.reviewed()[0].identity_id)
    assert stale_assets(run) == set()  # not observed yet
    observer = Definitions(
        assets=[identity_edits],
        jobs=[define_asset_job("observe_edits", selection=[identity_edits.key])],
        resources={"storage": LocalStorageResource(data_root=str(run.store.root))})
    assert observer.resolve_job_def("observe_edits").execute_in_process(
        instance=run.instance).success
    record = run.instance.get_latest_data_version_record(identity_edits.key, True, run.ep_id)
    assert record.asset_observation.tags["dagster/data_version"] == edits_version(
        read_edits(run.store, run.ep_id))
    assert stale_assets(run) == {"cast_links", "screentime"}
    statuses = dagster_stale_status(run.instance, run.settings, run.store.root,
                                    ["cast_links", "screentime", "identities"], [run.ep_id])
    assert statuses == {("cast_links", run.ep_id): "STALE", ("screentime", run.ep_id): "STALE",
                        ("identities", run.ep_id): "FRESH"}


@pytest.mark.slow
def test_review_rejects_unknown_identity_and_track(review):
    run, links, _ = review
    with pytest.raises(ReviewError, match="unknown identity 999"):
        add_edit(run.store, run.ep_id, "rename", identity=999, name="x")
    with pytest.raises(ReviewError, match="unknown track 999"):
        add_edit(run.store, run.ep_id, "delete_track", track=999)
    with pytest.raises(ReviewError, match="not in the show's facebank"):
        add_edit(run.store, run.ep_id, "link", identity=links.reviewed()[0].identity_id,
                 cast_id="someone-else")
    assert read_edits(run.store, run.ep_id) is None  # nothing was written


@pytest.mark.slow
def test_review_edits_survive_reclustering(review):
    """Edits anchored on tracks follow them when clustering renumbers identities; an edit whose
    track is gone is reported, in the metadata and in screentime.json."""
    run, links, _ = review
    frontal = frontal_track(run)
    lin = identity_of(links, frontal)
    add_edit(run.store, run.ep_id, "rename", identity=lin.identity_id, name="Lin")
    edits = json.loads(read_edits(run.store, run.ep_id))["edits"]
    # a track span that no longer exists, as after a re-run of tracking
    edits.append({"op": "delete_track", "track": [frontal, 0, 3]})
    run.store.put(run.store.artifact_key(run.ep_id, "identity_edits.json"),
                  dump_edits(run.ep_id, edits))
    record_edits_version(run.instance, run.ep_id, read_edits(run.store, run.ep_id))
    config = {"ops": {"identities": {"config": {"cluster_thresh": 0.05}}}}
    try:
        defs = build_definitions(run.settings, data_root=str(run.store.root))
        result = defs.resolve_job_def("episode_job").execute_in_process(
            instance=run.instance, partition_key=run.ep_id, run_config=config,
            asset_selection=[AssetKey(a) for a in ("identities", "cast_links", "screentime")])
        assert result.success
        reclustered = run.load("identities")
        assert len(reclustered.identities) > len(links.reviewed())  # tracks split apart
        after = run.load("screentime")
        named = [p for p in after.people if p.name == "Lin"]
        assert len(named) == 1
        ident = next(i for i in run.load("cast_links").reviewed()
                     if i.identity_id == named[0].identity_id)
        assert set(ident.track_ids) & set(lin.track_ids)
        assert len(after.skipped_edits) == 1
        assert "no longer exists" in after.skipped_edits[0]["reason"]
        md = run.instance.get_latest_materialization_event(
            AssetKey("cast_links")).asset_materialization.metadata
        assert md["edits_skipped"].value == 1 and md["edits_applied"].value == 1
    finally:
        clear_edits(run.store, run.ep_id)
        record_edits_version(run.instance, run.ep_id, None)
        assert run.materialize("identities", "cast_links", "screentime").success


# ---------------------------------------------------------------------------- synthetic
@pytest.mark.slow
def test_synthetic_cast_linking_and_seconds(synthetic_episode, synthetic_run):
    tracks = synthetic_run.load("tracks")
    links = synthetic_run.load("cast_links")
    report = synthetic_run.load("screentime")
    truth = {t.track_id: person_of_track(synthetic_episode, t) for t in tracks.tracks}
    linked = {}
    for ident in links.reviewed():
        persons = {truth[t] for t in ident.track_ids}
        assert len(persons) == 1, (ident.identity_id, persons)
        assert ident.cast_id == persons.pop(), ident
        linked[ident.cast_id] = ident.identity_id
    # all four persons on screen are linked, each to their own identity
    assert sorted(linked) == sorted(synthetic_episode.seconds)
    seconds = report.cast_seconds()
    assert seconds["p30"] == 0 and "p30" not in linked
    # Tolerance 0.25 s per shot the person is in: a cut can land one frame off (0.1 s at 10 fps)
    # and the detector can miss a frame at a shot's edge (another 0.1 s), with rounding to spare.
    for person, truth_s in synthetic_episode.seconds.items():
        n_shots = sum(1 for _, members in SHOTS for who, _ in members if who == person)
        assert seconds[person] == pytest.approx(truth_s, abs=0.25 * n_shots), person


# ---------------------------------------------------------------------------- teaching
@pytest.mark.slow
def test_reviews_of_episode_1_teach_episode_2(tmp_path, monkeypatch, capsys):
    """A season of two synthetic episodes, same people, other photos (tests/synthetic.py,
    SEASON_PEOPLE). The reviewer confirms every identity of episode 1 (`review link --teach`
    where it is not linked, `facebank add-reviewed` where it is): the faces become reviewed
    references of the show, episode 2's cast_links (and only what reads it) turn stale, and
    episode 2 names more of its true screen time than before, with no wrong link."""
    from screenalytics_assets.cli import main
    from tests.conftest import FACES
    from tests.helpers import named_recall, run_episode
    from tests.synthetic import (
        SEASON_PEOPLE,
        build_episode,
        season_facebank,
        season_shots,
    )

    def person_of(episode, photo, track):
        return person_of_track(episode, track, shots=season_shots(photo))

    ep1 = build_episode(FACES, tmp_path / "e1.mp4", season_shots("ref_02"), people=SEASON_PEOPLE)
    ep2 = build_episode(FACES, tmp_path / "e2.mp4", season_shots("ref_03"), people=SEASON_PEOPLE)
    run1 = run_episode(tmp_path / "run", ep1.path, "season-s01e01",
                       facebank=season_facebank(FACES))
    run2 = run_episode(tmp_path / "run", ep2.path, "season-s01e02", instance=run1.instance)
    before = named_recall(run2.load("screentime").cast_seconds(), ep2.seconds)

    monkeypatch.setenv("DAGSTER_HOME", str(run1.root / "dagster_home"))
    monkeypatch.setenv("SCREENALYTICS_DATA_ROOT", str(run1.store.root))
    tracks = {t.track_id: t for t in run1.load("tracks").tracks}
    for ident in run1.load("cast_links").reviewed():
        (person,) = {person_of(ep1, "ref_02", tracks[t]) for t in ident.track_ids}
        if ident.cast_id == person:  # confirm the automatic link
            assert main(["facebank", "add-reviewed", run1.ep_id, str(ident.identity_id)]) == 0
        else:
            assert main(["review", run1.ep_id, "link", str(ident.identity_id), person,
                         "--teach"]) == 0
    assert "are now stale" in capsys.readouterr().out
    assert stale_assets(run2) == {"cast_links", "screentime"}
    assert run2.materialize("cast_links", "screentime").success
    links = run2.load("cast_links")
    tracks2 = {t.track_id: t for t in run2.load("tracks").tracks}
    for ident in links.reviewed():
        if ident.cast_id:
            assert {person_of(ep2, "ref_03", tracks2[t]) for t in ident.track_ids} \
                == {ident.cast_id}
    after = named_recall(run2.load("screentime").cast_seconds(), ep2.seconds)
    with capsys.disabled():
        print(f"\nepisode 2 named recall: {before:.3f} without reviewed references, "
              f"{after:.3f} with")
    assert after > before

    # listed apart from the photos, and removable: episode 2 is back where it was
    assert main(["facebank", "show", "season"]) == 0
    listed = capsys.readouterr().out
    assert "reviewed references of season: 4" in listed and "season-s01e01-identity" in listed
    assert main(["facebank", "remove-reviewed", "season", "--ep-id", run1.ep_id]) == 0
    assert stale_assets(run2) == {"cast_links", "screentime"}
    assert run2.materialize("cast_links", "screentime").success
    assert named_recall(run2.load("screentime").cast_seconds(), ep2.seconds) == before
    assert main(["facebank", "remove-reviewed", "season", "--cast", "t"]) == 2
    assert "no reviewed reference of season matches" in capsys.readouterr().err

    # without them, the review queue of episode 2 leads to the exact answer: one click per
    # identity in need of review and per merge accepted, each its first suggestion when right
    from resources.edits import episode_review_queue

    queue = episode_review_queue(run2.store, run2.ep_id, run2.settings["cluster_thresh"])
    assert queue and queue[0].kind == "needs_review"
    assert main(["review", run2.ep_id, "queue"]) == 0
    assert f"link {queue[0].identity_ids[0]} t" in capsys.readouterr().out
    reviewed = {i.identity_id: i for i in links.reviewed()}
    clicks = accepted = 0
    for item in queue:
        members = [reviewed[i].track_ids for i in item.identity_ids]
        persons = [{person_of(ep2, "ref_03", tracks2[t]) for t in ts} for ts in members]
        if item.kind == "needs_review":
            (person,) = persons[0]
            assert item.suggestions[0]["cast_id"] == person
            clicks += main(["review", run2.ep_id, "link", str(item.identity_ids[0]),
                            person]) == 0
        elif persons[0] == persons[1]:
            accepted += 1
            clicks += main(["review", run2.ep_id, "merge", *map(str, item.identity_ids)]) == 0
    assert clicks <= sum(q.kind == "needs_review" for q in queue) + accepted
    assert run2.materialize("cast_links", "screentime").success
    got = run2.load("screentime").cast_seconds()
    for person, truth in ep2.seconds.items():
        assert got[person] == pytest.approx(truth, abs=0.25 * 2), (person, got)


# ---------------------------------------------------------------------------- bad input
def _facebank_run(tmp_path, photos):
    store = LocalStore(tmp_path / "data")
    instance = DagsterInstance.ephemeral()
    return store, build_facebank(store, instance, load_settings(), "emptyshow", photos,
                                 raise_on_error=False)


def test_empty_facebank_fails_with_a_clear_message(tmp_path):
    store, result = _facebank_run(tmp_path, {})
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = str(failure.step_failure_data.error)
    assert "empty" in message and "screenalytics facebank add emptyshow" in message
    assert read_facebank(store, "emptyshow") is None


def test_photo_without_face_is_reported_by_name(tmp_path):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((400, 300, 3), 127, np.uint8))
    store, result = _facebank_run(tmp_path, {"lin-manuel-miranda": [FACEBANK / LIN / "01.png",
                                                                    blank]})
    assert result.success
    mat = result.asset_materializations_for_node("facebank")[0]
    assert mat.metadata["photos_without_face"].value == ["lin-manuel-miranda/blank.png"]
    assert mat.metadata["references"].value == 1


def test_facebank_add_rejects_bad_input(tmp_path):
    store = LocalStore(tmp_path)
    with pytest.raises(FacebankError, match="invalid cast id"):
        add_photos(store, "show", "Lin Manuel", [FACEBANK / LIN / "01.png"])
    bad = tmp_path / "notaphoto.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(FacebankError, match="not a readable"):
        add_photos(store, "show", "lin", [FACEBANK / LIN / "01.png", bad])
    assert store.list_keys("facebank/") == []  # nothing half-added


@pytest.mark.slow
def test_review_cli_records_an_edit_and_refuses_bad_input(review, monkeypatch, capsys):
    from screenalytics_assets.cli import main

    run, links, _ = review
    monkeypatch.setenv("DAGSTER_HOME", str(run.root / "dagster_home"))
    monkeypatch.setenv("SCREENALYTICS_DATA_ROOT", str(run.store.root))
    lin = identity_of(links, frontal_track(run))
    assert main(["review", run.ep_id, "rename", str(lin.identity_id), "Lin"]) == 0
    assert "cast_links, screentime are now stale" in capsys.readouterr().out
    (only,) = json.loads(read_edits(run.store, run.ep_id))["edits"]
    assert only["op"] == "rename" and only["name"] == "Lin"
    assert stale_assets(run) == {"cast_links", "screentime"}
    assert main(["review", run.ep_id, "merge", "999", str(lin.identity_id)]) == 2
    assert "unknown identity 999" in capsys.readouterr().err
    assert main(["review", "Bad Id", "unlink", "0"]) == 2
    assert "invalid ep_id" in capsys.readouterr().err
    assert len(json.loads(read_edits(run.store, run.ep_id))["edits"]) == 1


def test_facebank_check_flags_a_cast_member_without_a_usable_photo(tmp_path):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((400, 300, 3), 127, np.uint8))
    _, result = _facebank_run(tmp_path, {"lin-manuel-miranda": [FACEBANK / LIN / "01.png"],
                                         "nobody": [blank]})
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "facebank_has_a_face_per_cast_member"
    # a warning naming the photo, not an error: the episodes of the show still run
    assert not check.passed and "nobody/blank.png" in check.description
    assert check.severity == AssetCheckSeverity.WARN and result.success
    _, ok = _facebank_run(tmp_path / "ok", {"lin-manuel-miranda": [FACEBANK / LIN / "01.png"]})
    assert ok.get_asset_check_evaluations()[0].passed
