"""Review edits as the review app makes them: several edits in one write, refusal of an edit made
from a stale view, undo. On tiny artifacts written through the real codecs (no video)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from resources.edits import StaleEditError, add_edit, add_edits, read_edits, undo_last_edit
from resources.integrity import write_artifact
from resources.storage import LocalStore
from screenalytics_assets.core.artifacts import CODECS, Identity, IdentitySet, TrackSet
from screenalytics_assets.core.review import NO_EDITS_VERSION, ReviewError, edits_version
from screenalytics_assets.core.shots import Shot
from screenalytics_assets.core.video import VideoInfo
from tests.test_core import _track

EP = "tiny-s01e01"


@pytest.fixture
def store(tmp_path):
    """Three identities of one track each (tracks 0, 1, 2)."""
    store = LocalStore(tmp_path / "data")
    tracks = [_track(i, 0, [10 * i, 10 * i + 2]) for i in range(3)]
    video = VideoInfo(10.0, 40, 4.0, 64, 64, "1/10", 0)
    write_artifact(store, EP, "tracks", CODECS["tracks"].dump(
        TrackSet(video, 2, [Shot(0, 0, 39, 0.0, 4.0)], tracks)))
    write_artifact(store, EP, "identities", CODECS["identities"].dump(IdentitySet(
        [Identity(i, [i], 1, 0.4) for i in range(3)], np.eye(3, 4, dtype=np.float32), {})))
    return store


def test_merge_of_several_identities_is_one_write(store):
    new, data = add_edits(store, EP, [("merge", {"source": 1, "target": 0}),
                                      ("merge", {"source": 2, "target": 0})],
                          expected_version=NO_EDITS_VERSION)
    assert [e["op"] for e in new] == ["merge", "merge"]
    # the second edit was built against the first's result: its target holds tracks 0 and 1
    assert [t[0] for t in new[1]["target"]["tracks"]] == [0, 1]
    assert read_edits(store, EP) == data


def test_an_invalid_edit_writes_nothing(store):
    with pytest.raises(ReviewError, match="unknown identity 7"):
        add_edits(store, EP, [("rename", {"identity": 0, "name": "A"}),
                              ("merge", {"source": 7, "target": 0})])
    assert read_edits(store, EP) is None


def test_an_edit_from_a_stale_view_is_refused_and_nothing_is_lost(store):
    seen = edits_version(read_edits(store, EP))          # a tab opens the page
    add_edit(store, EP, "rename", identity=0, name="First")  # the CLI (or another tab) edits
    before = read_edits(store, EP)
    with pytest.raises(StaleEditError, match="Reload the page"):
        add_edit(store, EP, "rename", identity=1, name="Second", expected_version=seen)
    assert read_edits(store, EP) == before
    with pytest.raises(StaleEditError):
        undo_last_edit(store, EP, expected_version=seen)
    assert read_edits(store, EP) == before
    # reloaded: the edit goes through, after the first
    add_edit(store, EP, "rename", identity=1, name="Second",
             expected_version=edits_version(before))
    names = [e["name"] for e in json.loads(read_edits(store, EP))["edits"]]
    assert names == ["First", "Second"]


def test_undo_removes_the_last_edit_only(store):
    add_edit(store, EP, "rename", identity=0, name="A")
    add_edit(store, EP, "delete_track", track=2)
    removed, data = undo_last_edit(store, EP)
    assert removed["op"] == "delete_track"
    assert [e["op"] for e in json.loads(data)["edits"]] == ["rename"]
    removed, data = undo_last_edit(store, EP)
    assert removed["op"] == "rename" and data is None and read_edits(store, EP) is None
    with pytest.raises(ReviewError, match="no review edit to undo"):
        undo_last_edit(store, EP)


def test_a_manual_link_is_many_to_one_except_for_identities_on_screen_together():
    from screenalytics_assets.core.cast_links import IdentityLink
    from screenalytics_assets.core.review import apply_edits

    spans = {0: (0, 10), 1: (20, 30), 2: (5, 25)}
    identities = [(0, [0]), (1, [1]), (2, [2])]
    links = [IdentityLink(0, "lin", 0.6), IdentityLink(1, None, None),
             IdentityLink(2, None, None)]

    def link(identity: int) -> dict:
        return {"op": "link", "cast_id": "lin",
                "identity": {"identity_id": identity, "tracks": [[identity, *spans[identity]]]}}

    # identity 1 (frames 20-30) is never on screen with identity 0 (0-10): both are lin
    result = apply_edits(identities, links, [link(1)], spans)
    assert [i.cast_id for i in result.identities] == ["lin", "lin", None]
    assert [i.link_source for i in result.identities] == ["auto", "manual", None]
    # identity 2 (5-25) is on screen with both: linking it takes lin from both
    result = apply_edits(identities, links, [link(1), link(2)], spans)
    assert [i.cast_id for i in result.identities] == [None, None, "lin"]
    assert result.applied[-1]["summary"] == ("identity 2 linked to lin (unlinked from identity "
                                             "0, 1: on screen at the same time)")
