"""``screenalytics review EP show``: the screen-time table after review, the identities and the
edits numbered as ``undo`` counts them; ``--json`` for the raw form. On review artifacts written
through the real codecs (tests/review_episode.py), no video."""

from __future__ import annotations

import json

from resources.storage import LocalStore
from screenalytics_assets.cli import main
from tests.review_episode import write_review_episode

EP = "short-s01e01"


def test_show_prints_the_table_and_the_numbered_edits(cli_env, capsys):
    store = LocalStore(cli_env / "data")
    ep = write_review_episode(store, EP, minutes=0.5, people=6, cast=4)
    assert main(["review", EP, "show"]) == 0
    out = capsys.readouterr().out
    assert f"Screen time — {EP}" in out and "screen time includes every edit" in out
    assert "no review edits" in out and "Identities after review" in out
    assert "person01" in out  # cast ids, not only id_NN
    ids = sorted(ep.identity_person)
    assert main(["review", EP, "rename", str(ids[0]), "Alice"]) == 0
    assert main(["review", EP, "merge", str(ids[2]), str(ids[1])]) == 0
    capsys.readouterr()
    assert main(["review", EP, "show"]) == 0
    out = capsys.readouterr().out
    assert "screen time is from before the latest edits" in out
    assert f"`screenalytics review {EP} --run show`" in " ".join(out.split())
    assert "2 edit(s), oldest first; `undo` removes #2:" in out
    assert f"1. rename: identity {ids[0]} named 'Alice'" in out
    assert f"2. merge: identity {ids[2]} merged into {ids[1]}" in out
    assert "{" not in out  # a table and a list, not JSON lines
    # --json: one document, the same numbers
    assert main(["review", EP, "show", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [e["n"] for e in doc["edits"]] == [1, 2] and doc["edits"][1]["op"] == "merge"
    assert doc["screentime_up_to_date"] is False and len(doc["screentime"]) == len(ids)
    assert ids[2] not in {i["identity_id"] for i in doc["identities"]}  # merged away
    # undo removes the highest number
    assert main(["review", EP, "undo"]) == 0
    assert f"{EP}: removed the last edit, #2 (merge)" in capsys.readouterr().out
    assert main(["review", EP, "show", "--json"]) == 0
    assert [e["op"] for e in json.loads(capsys.readouterr().out)["edits"]] == ["rename"]


def test_the_table_ends_with_each_cast_members_total_over_their_identities(capsys):
    """A cast member may hold several identities (frontal and profile shots clustered apart):
    the printed report adds them up per person, and names the cast members not on screen."""
    from screenalytics_assets.cli.run import print_report
    from screenalytics_assets.core.artifacts import ScreenTimeReport
    from screenalytics_assets.core.screentime import PersonTime

    people = [PersonTime(0, "lin", 4.304, 1, 2.7, 7.0, [(2.7, 7.0)]),
              PersonTime(1, "obama", 2.135, 1, 7.0, 9.1, [(7.0, 9.1)]),
              PersonTime(2, "lin", 0.667, 1, 0.0, 0.667, [(0.0, 0.667)]),
              PersonTime(3, None, 1.5, 1, 3.0, 4.5, [(3.0, 4.5)])]
    print_report(ScreenTimeReport("show-s01e01", 30.0, 9.2, people, ["biden", "lin", "obama"]))
    out = capsys.readouterr().out
    assert "cast on screen: lin 4.97 s (2 identities), obama 2.13 s" in out
    assert "cast not on screen: biden" in out
