"""Linking identities (clusters of tracks) to a show's cast members.

Score of identity i for cast member c: the highest cosine similarity between the identity's
centroid and any of c's reference embeddings. The maximum rather than the mean, because cast
photos differ in pose and lighting: one reference that looks like the episode is enough, and a
poor photo does not drag a good match down.

Links are a one-to-one assignment that maximises the total score over the pairs above the
threshold (Kuhn-Munkres; ``scipy.optimize.linear_sum_assignment``, Crouse's modified
Jonker-Volgenant algorithm), so two identities never compete greedily for one cast member.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from .facebank import Facebank


@dataclass
class IdentityLink:
    """The automatic link of one identity.

    Attributes:
        identity_id: the identity. cast_id: linked cast member, ``None`` when unknown.
        score: cosine similarity of the link (``None`` when unknown).
        suggestions: every cast member as ``{"cast_id", "score"}``, best first.
    """

    identity_id: int
    cast_id: str | None
    score: float | None
    suggestions: list[dict] = field(default_factory=list)


def cast_similarity(centroids: np.ndarray, facebank: Facebank) -> tuple[np.ndarray, list[str]]:
    """Score of every identity for every cast member.

    Args:
        centroids: float32 [K, D] unit identity centroids.
        facebank: the show's facebank (unit references [R, D], same pack).

    Returns:
        ``(float32 [K, C] max cosine similarity, cast ids [C])``.

    Raises:
        ValueError: the centroids and references have different dimensions (another model pack).
    """
    cast = list(facebank.cast_ids)
    k = len(centroids)
    if k == 0 or not cast:
        return np.zeros((k, len(cast)), np.float32), cast
    if centroids.shape[1] != facebank.vectors.shape[1]:
        raise ValueError(
            f"identity centroids are {centroids.shape[1]}-d but the facebank of show "
            f"{facebank.show!r} is {facebank.vectors.shape[1]}-d (model pack "
            f"{facebank.model_pack!r}); rebuild the facebank with the episode's model pack")
    sims = centroids.astype(np.float32) @ facebank.vectors.T  # [K, R]
    out = np.full((k, len(cast)), -1.0, np.float32)
    col = {c: j for j, c in enumerate(cast)}
    for r, c in enumerate(facebank.ref_cast_id):
        out[:, col[c]] = np.maximum(out[:, col[c]], sims[:, r])
    return out, cast


def assign(scores: np.ndarray, thresh: float) -> list[tuple[int, int]]:
    """One-to-one pairs (row, column) maximising the total score of pairs with score >= thresh.

    Pairs under the threshold weigh 0, so they never displace a pair above it, and are dropped.

    Args:
        scores: float [K, C]. thresh: minimum score of a kept pair.

    Returns:
        ``[(row, col), ...]`` sorted by row.
    """
    if scores.size == 0:
        return []
    gain = np.where(scores >= thresh, scores, 0.0).astype(np.float64)
    rows, cols = linear_sum_assignment(gain, maximize=True)
    return sorted((int(r), int(c)) for r, c in zip(rows, cols) if scores[r, c] >= thresh)


def link_identities(identity_ids: list[int], centroids: np.ndarray, facebank: Facebank | None,
                    thresh: float) -> list[IdentityLink]:
    """Automatic links and ranked suggestions for every identity.

    Args:
        identity_ids: [K] ids, in centroid order. centroids: float32 [K, D] unit vectors.
        facebank: the show's facebank, or ``None`` (then every identity is unknown).
        thresh: minimum cosine similarity of a link (setting ``cast_link_thresh``).

    Returns:
        One :class:`IdentityLink` per identity, in input order.
    """
    if facebank is None:
        return [IdentityLink(int(i), None, None, []) for i in identity_ids]
    scores, cast = cast_similarity(centroids, facebank)
    linked = dict(assign(scores, thresh))
    out = []
    for r, ident in enumerate(identity_ids):
        order = np.argsort(-scores[r], kind="stable")
        suggestions = [{"cast_id": cast[j], "score": round(float(scores[r, j]), 4)}
                       for j in order]
        j = linked.get(r)
        out.append(IdentityLink(int(ident), cast[j] if j is not None else None,
                                round(float(scores[r, j]), 4) if j is not None else None,
                                suggestions))
    return out
