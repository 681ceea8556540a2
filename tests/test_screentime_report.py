"""What screentime and track_reps give a reviewer: per-person segments, a thumbnail of every
track, and screen time the Dagster UI can show (numeric metadata, a table with names, kinds)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from dagster import AssetKey

from screenalytics_assets.core.artifacts import ScreenTimeReport, load_segments, segments_files
from screenalytics_assets.core.reps import rep_thumb_name
from screenalytics_assets.core.screentime import person_segments, screen_time
from tests.test_core import _track


def test_segments_split_at_gaps_and_shots_and_add_up_to_seconds():
    # 10 fps, stride 2: each processed frame covers 0.2 s
    a = _track(0, 0, [0, 2, 4])    # 0.0-0.6, shot 0
    b = _track(1, 0, [4, 6])       # 0.4-0.8 overlaps a: one segment with both tracks
    c = _track(2, 0, [20, 22])     # 2.0-2.4 after a gap: a second segment
    d = _track(3, 1, [30])         # 3.0-3.2, shot 1
    e = _track(4, 1, [10])         # another person, 1.0-1.2
    tracks = {0: [a, b, c, d], 1: [e]}
    people = screen_time(tracks, 10.0, cast_ids={0: "lin", 1: None})
    segs = person_segments(people, tracks, 10.0)
    assert [(s.person, s.shot_id, s.track_ids) for s in segs] == [
        ("lin", 0, [0, 1]), ("id_01", 1, [4]), ("lin", 0, [2]), ("lin", 1, [3])]
    assert [s.start_s for s in segs] == sorted(s.start_s for s in segs)
    assert segs[0].start_s == 0.0 and segs[0].end_s == pytest.approx(0.8)
    for p in people:
        mine = [s for s in segs if s.identity_id == p.identity_id]
        assert sum(s.end_s - s.start_s for s in mine) == pytest.approx(p.seconds)
    files = segments_files(segs)
    assert [s.to_dict() for s in load_segments(lambda n: files[n])] == [s.to_dict() for s in segs]
    assert files["segments.csv"].decode().splitlines()[1] == "lin,0,lin,,0.0,0.8,0,0 1"


def test_table_rows_never_show_an_empty_person():
    people = screen_time({3: [_track(0, 0, [0])], 4: [_track(1, 0, [2])]}, 10.0,
                         cast_ids={3: "lin"}, names={4: None})
    rows = ScreenTimeReport("x-s01e01", 10.0, 10.0, people).labelled_rows()
    assert [r["person"] for r in rows] == ["lin", "id_04"]
    assert all(v is not None for r in rows for v in r.values())


def test_season_metadata_is_numeric_per_person_with_the_chart_inline():
    from screenalytics_assets.assets.presentation import season_metadata
    from screenalytics_assets.core.season import season_table

    people = screen_time({0: [_track(0, 0, [0, 2])], 1: [_track(1, 0, [4])]}, 10.0,
                         cast_ids={0: "lin"})
    table = season_table({"x-s01e01": ScreenTimeReport("x-s01e01", 10.0, 10.0, people)})
    md = season_metadata(table, b"\x89PNG")
    assert md["seconds: lin"].value == pytest.approx(0.4)
    assert md["seconds: x-s01e01:id_01"].value == pytest.approx(0.2)
    assert md["chart_image"].value.startswith("![season screen time](data:image/png;base64,")
    rows = md["season_table"].value.records
    assert [r.data["person"] for r in rows] == ["lin", "x-s01e01:id_01"]


def test_season_table_rows_are_people_by_reviewed_name_then_cast_id():
    """Review names reach the season table: a renamed identity is a row under its name (never
    ``{ep_id}:id_NN``), the same name in two episodes is one person, a cast member named in one
    episode keeps that name where it is only linked, and nobody named or linked is their own
    row."""
    from screenalytics_assets.core.season import season_json, season_table

    def report(ep, cast_ids, names):
        tracks = {i: [_track(i, 0, [2 * i])] for i in cast_ids}  # 0.2 s each at 10 fps
        return ScreenTimeReport(ep, 10.0, 10.0, screen_time(tracks, 10.0, cast_ids=cast_ids,
                                                                names=names))

    reports = {
        # id 6 renamed by a reviewer; id 1 linked and named; id 2 nobody's
        "x-s01e01": report("x-s01e01", {6: None, 1: "lin", 2: None}, {6: "Alice", 1: "Lin"}),
        # Alice again under another identity number; lin linked but not named here
        "x-s01e02": report("x-s01e02", {3: None, 4: "lin"}, {3: "Alice"}),
    }
    table = season_table(reports)
    assert sorted(table.index) == ["Alice", "Lin", "x-s01e01:id_02"]
    assert table.loc["Alice", "x-s01e01"] == pytest.approx(0.2)
    assert table.loc["Alice", "x-s01e02"] == pytest.approx(0.2)
    assert table.loc["Alice", "total_s"] == pytest.approx(0.4)
    assert table.loc["Lin", "total_s"] == pytest.approx(0.4)
    assert not [p for p in table.index if p.endswith(":id_06")]
    doc = season_json("x-s01", table)
    assert {p["person"] for p in doc["people"]} == {"Alice", "Lin", "x-s01e01:id_02"}


@pytest.mark.slow
def test_hamilton_segments_thumbnails_and_ui_metadata(hamilton_run):
    ep, store = hamilton_run.ep_id, hamilton_run.store
    report = hamilton_run.load("screentime")
    segs = load_segments(lambda n: store.read_file(ep, n))
    assert segs and [s.start_s for s in segs] == sorted(s.start_s for s in segs)
    for p in report.people:
        mine = [s for s in segs if s.identity_id == p.identity_id]
        assert sum(s.end_s - s.start_s for s in mine) == pytest.approx(p.seconds, abs=0.01)
        assert {s.person for s in mine} == {p.cast_id or f"id_{p.identity_id:02d}"}
    assert "track_ids" in store.read_file(ep, "segments.csv").decode().splitlines()[0]

    # a thumbnail for every track though save_crops is off
    assert hamilton_run.settings.for_asset("faces")["save_crops"] is False
    tracks = hamilton_run.load("tracks").tracks
    for t in tracks:
        jpg = store.get(store.artifact_key(ep, rep_thumb_name(t.track_id)))
        img = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == (112, 112, 3) and len(jpg) < 20_000

    inst = hamilton_run.instance
    md = inst.get_latest_materialization_event(
        AssetKey("screentime")).asset_materialization.metadata
    assert md["chart"].value.startswith("![screen time](data:image/png;base64,")
    per_label: dict[str, float] = {}
    for p in report.people:  # a cast member's identities (Lin: stage and frontal) add up
        per_label[p.label] = per_label.get(p.label, 0.0) + p.seconds
    for label, seconds in per_label.items():
        assert md[f"seconds: {label}"].value == pytest.approx(seconds, abs=2e-3)
        assert isinstance(md[f"seconds: {label}"].value, float)
    records = md["screen_time"].value.records
    assert [r.data["person"] for r in records] == [p.label for p in report.people]
    assert all(r.data["person"] and "nan" not in json.dumps(r.data) for r in records)

    defs_graph = hamilton_run.result.job_def.asset_layer.asset_graph
    spec = {n.key: n for n in defs_graph.asset_nodes}
    node = spec[AssetKey("detections")]
    assert {"onnx", "local"} <= set(node.kinds) and node.owners == ["team:screenalytics"]
    assert node.tags["stage"] == "detection"
