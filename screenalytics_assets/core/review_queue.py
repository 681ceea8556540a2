"""What in an episode needs a reviewer's decision, most useful first.

1. Identities marked ``needs_review`` by cast linking (``cast_links.IdentityLink.needs_review``:
   a cast member scores above ``cast_link_thresh`` but not clearly ahead of another), with their
   ranked suggestions: accepting the first is one ``link``.
2. Merge suggestions: pairs of identities that clustering kept apart although their centroids
   are close, within :data:`MERGE_WINDOW` of ``cluster_thresh`` (a cosine distance), and that
   are never on screen together (two faces at once are two people). A person seen from two
   angles or two photos often forms two such identities; accepting is one ``merge``. Pairs whose
   screen time already goes to one cast member, or to two different ones, are left out: merging
   them would change nothing, or contradict a link.

Pure computation over the reviewed identities (``core.review``), the episode's face embeddings
and the tracks' frame spans.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .embedding import l2_normalize
from .review import ReviewedIdentity, Span, on_screen_together

#: How far above ``cluster_thresh`` (cosine distance) a pair of identities is still suggested
#: for a merge. Measured on the known-answer episode (tests/known_answer.py): person c's two
#: identities are 0.02 (ci_pack) and 0.09 (ci_pack_mbf) above the threshold, the closest pair of
#: two different people 0.04 and 0.20; on the Hamilton clip with ci_pack_mbf, the performer's
#: stage shot and close-up are 0.02 above it.
MERGE_WINDOW = 0.10


@dataclass
class QueueItem:
    """One decision for the reviewer.

    Attributes:
        kind: ``"needs_review"`` (link the identity) or ``"merge"`` (merge ``identity_ids[0]``
            into ``identity_ids[1]``).
        identity_ids: ``[identity]`` or ``[source, target]`` (the target has more tracks).
        suggestions: for ``needs_review``, ranked ``{"cast_id", "score"}``, best first.
        distance: for ``merge``, cosine distance of the two centroids; ``cluster_thresh`` for
            comparison in ``thresh``.
        cast_ids: the current cast member of each identity (``None``: unknown).
    """

    kind: str
    identity_ids: list[int]
    suggestions: list[dict] = field(default_factory=list)
    distance: float | None = None
    thresh: float | None = None
    cast_ids: list[str | None] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "identity_ids": self.identity_ids,
                "suggestions": self.suggestions, "distance": self.distance,
                "thresh": self.thresh, "cast_ids": self.cast_ids}


def identity_centroids(identities: list[ReviewedIdentity], face_track_ids: np.ndarray,
                       face_vectors: np.ndarray) -> dict[int, np.ndarray]:
    """Unit centroid of each identity: the normalised mean of all its face embeddings (so a
    merge or a moved track counts as the reviewer left it).

    Args:
        identities: the reviewed identities. face_track_ids: int [F]. face_vectors: float32
            [F, D] unit face embeddings.

    Returns:
        identity id -> float32 [D]; identities without an embedded face are left out.
    """
    out = {}
    for ident in identities:
        mine = np.isin(face_track_ids, ident.track_ids)
        if mine.any():
            out[ident.identity_id] = l2_normalize(face_vectors[mine].mean(axis=0))
    return out


def merge_suggestions(identities: list[ReviewedIdentity], centroids: dict[int, np.ndarray],
                      spans: dict[int, Span], cluster_thresh: float,
                      window: float = MERGE_WINDOW) -> list[QueueItem]:
    """Pairs worth merging (see the module docstring), closest first.

    Args:
        identities: the reviewed identities. centroids: from :func:`identity_centroids`.
        spans: track id -> (start_frame, end_frame). cluster_thresh: the identities' setting
            (cosine distance). window: how far above it a pair is still suggested.
    """
    out = []
    for k, a in enumerate(identities):
        for b in identities[k + 1:]:
            if a.identity_id not in centroids or b.identity_id not in centroids:
                continue
            if a.cast_id is not None and b.cast_id is not None:
                continue  # one person already, or two different ones
            distance = 1.0 - float(centroids[a.identity_id] @ centroids[b.identity_id])
            if distance > cluster_thresh + window:
                continue
            if on_screen_together(a.track_ids, b.track_ids, spans):
                continue
            source, target = sorted((a, b), key=lambda i: (len(i.track_ids), -i.identity_id))
            out.append(QueueItem("merge", [source.identity_id, target.identity_id],
                                 distance=round(distance, 4), thresh=cluster_thresh,
                                 cast_ids=[source.cast_id, target.cast_id]))
    return sorted(out, key=lambda q: (q.distance, q.identity_ids))


def review_queue(identities: list[ReviewedIdentity], centroids: dict[int, np.ndarray],
                 spans: dict[int, Span], cluster_thresh: float,
                 window: float = MERGE_WINDOW) -> list[QueueItem]:
    """The episode's review queue: ``needs_review`` identities (best first suggestion score
    first), then :func:`merge_suggestions`."""
    pending = sorted((i for i in identities if i.needs_review and i.cast_id is None),
                     key=lambda i: (-(i.suggestions[0]["score"] if i.suggestions else -1.0),
                                    i.identity_id))
    items = [QueueItem("needs_review", [i.identity_id], list(i.suggestions), cast_ids=[None])
             for i in pending]
    return items + merge_suggestions(identities, centroids, spans, cluster_thresh, window)
