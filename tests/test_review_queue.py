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
