"""The review queue (core.review_queue): identities marked needs_review first, then merge
suggestions near cluster_thresh that are never on screen together."""

from __future__ import annotations

import numpy as np
import pytest

from screenalytics_assets.core.embedding import l2_normalize
from screenalytics_assets.core.review import ReviewedIdentity
from screenalytics_assets.core.review_queue import (
    MERGE_WINDOW,
    identity_centroids,
    merge_suggestions,
    review_queue,
)
from tests.test_review_pages import EP, app_url, get  # noqa: F401  (the app on a tiny episode)


def _near(distance: float, own: int, dim: int = 8) -> np.ndarray:
    """A unit vector at cosine distance ``distance`` from the first axis, the rest of it on axis
    ``own`` (so two such vectors are far apart from each other)."""
    v = np.zeros(dim, np.float32)
    v[0], v[own] = 1.0 - distance, np.sqrt(1.0 - (1.0 - distance) ** 2)
    return v


def test_queue_lists_ambiguous_identities_then_close_pairs_never_on_screen_together():
    thresh = 0.5
    # identity 0 (3 tracks) and 1 (1 track): close, apart in time -> merge 1 into 0
    # identity 2: as close to 0, but on screen with it -> never suggested
    # identity 3: far from everyone; identity 4: close to 0 but linked, as 0 -> nothing to merge
    centroids = {0: _near(0.0, 1), 1: _near(thresh + 0.05, 2), 2: _near(thresh + 0.01, 3),
                 3: _near(1.0, 4), 4: _near(thresh + 0.02, 5)}
    spans = {10: (0, 9), 11: (20, 29), 12: (40, 49), 13: (60, 69), 14: (5, 15), 15: (80, 89),
             16: (100, 109)}
    idents = [
        ReviewedIdentity(0, [10, 11, 12], cast_id="x", link_source="auto"),
        ReviewedIdentity(1, [13], needs_review=True,
                         suggestions=[{"cast_id": "x", "score": 0.41},
                                      {"cast_id": "y", "score": 0.38}]),
        ReviewedIdentity(2, [14]),
        ReviewedIdentity(3, [15], needs_review=True,
                         suggestions=[{"cast_id": "y", "score": 0.52},
                                      {"cast_id": "x", "score": 0.45}]),
        ReviewedIdentity(4, [16], cast_id="x", link_source="auto"),
    ]
    queue = review_queue(idents, centroids, spans, thresh)
    assert [(q.kind, q.identity_ids) for q in queue] == [
        ("needs_review", [3]), ("needs_review", [1]), ("merge", [1, 0])]
    assert queue[0].suggestions[0]["cast_id"] == "y"
    assert queue[2].distance == pytest.approx(thresh + 0.05, abs=1e-4)
    assert queue[2].cast_ids == [None, "x"]
    # a linked identity is no longer in need of review; a narrower window drops the merge
    idents[1].needs_review = False
    assert [q.identity_ids for q in review_queue(idents, centroids, spans, thresh)] == \
        [[3], [1, 0]]
    assert merge_suggestions(idents, centroids, spans, thresh, window=0.04) == []
    assert MERGE_WINDOW >= 0.05


def test_identity_centroid_is_the_mean_of_all_its_faces():
    rng = np.random.default_rng(6)
    faces = l2_normalize(rng.normal(size=(5, 8)))
    track_of_face = np.array([1, 1, 1, 2, 7])
    idents = [ReviewedIdentity(0, [1, 2]), ReviewedIdentity(1, [9])]
    got = identity_centroids(idents, track_of_face, faces)
    assert set(got) == {0}  # identity 1 has no embedded face
    assert np.allclose(got[0], l2_normalize(faces[:4].mean(axis=0)), atol=1e-5)


# ---------------------------------------------------------------------------- the app's page
@pytest.fixture
def store(tmp_path):
    """A tiny episode (no video): identity 0 linked to x, identity 1 ambiguous between x and y,
    identity 2 close to identity 0 and never on screen with it."""
    from resources.integrity import write_artifact
    from resources.storage import LocalStore
    from screenalytics_assets.core.artifacts import (
        CODECS,
        CastLinks,
        FaceEmbeddings,
        Identity,
        IdentitySet,
        TrackSet,
    )
    from screenalytics_assets.core.cast_links import IdentityLink
    from screenalytics_assets.core.review import NO_EDITS_VERSION, apply_edits
    from screenalytics_assets.core.shots import Shot
    from screenalytics_assets.core.video import VideoInfo
    from tests.test_core import _track

    store = LocalStore(tmp_path / "data")
    tracks = [_track(i, 0, [10 * i, 10 * i + 2]) for i in range(3)]
    write_artifact(store, EP, "tracks", CODECS["tracks"].dump(TrackSet(
        VideoInfo(10.0, 40, 4.0, 64, 64, "1/10", 0), 2, [Shot(0, 0, 39, 0.0, 4.0)], tracks)))
    write_artifact(store, EP, "identities", CODECS["identities"].dump(IdentitySet(
        [Identity(i, [i], 1, 0.4) for i in range(3)], np.eye(3, 8, dtype=np.float32), {})))
    from screenalytics_assets.settings import load_settings

    # identity 2 just outside the clustering threshold of the app's pack, inside the window
    close = load_settings(model_pack="ci_pack")["cluster_thresh"] + MERGE_WINDOW / 2
    vectors = np.stack([_near(0.0, 1), _near(1.0, 2), _near(close, 3)])
    write_artifact(store, EP, "embeddings", CODECS["embeddings"].dump(FaceEmbeddings(
        np.arange(3), np.arange(3), vectors, "ci_pack")))
    ranked = [{"cast_id": "x", "score": 0.41}, {"cast_id": "y", "score": 0.38}]
    auto = [IdentityLink(0, "x", 0.7, ranked, source="facebank"),
            IdentityLink(1, None, None, ranked, needs_review=True),
            IdentityLink(2, None, None, ranked[::-1])]
    review = apply_edits([(i, [i]) for i in range(3)], auto, [],
                         {t.track_id: (t.start_frame, t.end_frame) for t in tracks})
    write_artifact(store, EP, "cast_links", CODECS["cast_links"].dump(CastLinks(
        EP, "tiny", "ok", ["x", "y"], 0.3, auto, review, NO_EDITS_VERSION)))
    return store


def test_review_app_queue_page_offers_one_click_decisions(app_url):  # noqa: F811
    status, body = get(f"{app_url}/episodes/{EP}/queue")
    assert status == 200, body[-500:]
    assert "1 identities to review · 1 merge suggestions" in body
    needs, merge = body.split('class="queue-item ')[1:]
    assert needs.startswith('needs_review" data-identities="1"')
    # one click: the first suggestion is the accept button, a link edit of identity 1
    assert 'name="identity" value="1"' in needs and 'class="accept" data-cast="x"' in needs
    assert merge.startswith('merge" data-identities="2,0"')
    assert merge.count('name="identities"') == 2 and merge.count("data-track=") == 2
    status, body = get(f"{app_url}/episodes/tiny-s01e02/queue")
    assert status == 409 and "Traceback" not in body
