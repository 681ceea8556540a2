"""Linking identities (clusters of tracks) to a show's cast members, many identities to one.

A person seen frontally in one shot and in profile in another often forms two identities (their
embeddings can differ more than two people's do), and both belong to the same cast member. So
linking is many-to-one: several identities may take one cast member, except that two identities
that share a frame are two people and never take the same one.

Score of identity i for cast member c, from all the evidence: every track of the identity is
compared with every reference photo of c; a track's score is its best match over c's photos (the
maximum, because cast photos differ in pose and lighting: one photo that looks like the episode
is enough, and a poor photo does not drag a good match down; several photos per cast member,
profiles included, all count), and the identity's score is the mean of its tracks' scores
weighted by how many faces each track has. A track embedding is the normalised mean of its face
embeddings (:func:`.clustering.track_embeddings`).

Links are made only where the answer is clear (:func:`link_identities`): an identity's best cast
member must score at least ``cast_link_thresh`` **and** beat the runner-up by ``cast_link_margin``.
With the weak recognizers we ship, another person's face often scores a little higher against a
cast member's photo than against the right one's (0.355 against 0.300), and a cast member who was
not in the episode must never get screen time; an ambiguous identity stays unnamed, marked
``needs_review``, with its ranked suggestions one click away in review.

The episode's own evidence then links more (transductive linking): the identities linked with
that confidence become extra references of their cast member within the episode, and the others
are scored against the facebank and those references together, round after round, until nothing
more is clear. This is the "gallery expansion" of face retrieval: confidently recognised probes
join the gallery of their class (query expansion, Chum et al., "Total Recall", ICCV 2007; the
transductive / self-training view is Zhu & Ghahramani, "Learning from labeled and unlabeled data
with label propagation", CMU-CALD-02-107, 2002). The episode's evidence only settles the margin:
the cast member must also be the facebank's own best for the identity and score
``cast_link_thresh`` against the facebank. Each round's links maximise the total score of
the clear pairs subject to: at most one cast member per identity, and co-occurring identities
never on one cast member (cannot-link), also across rounds. That is a small 0-1 integer programme
(a constrained assignment), solved exactly with SciPy's ``milp`` (HiGHS).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .clustering import track_embeddings
from .facebank import Facebank
from .tracking import Track


@dataclass
class IdentityLink:
    """The automatic link of one identity.

    Attributes:
        identity_id: the identity. cast_id: linked cast member, ``None`` when unknown.
        score: cosine similarity of the link (``None`` when unknown).
        suggestions: every cast member as ``{"cast_id", "score"}``, best first; the score is
            the best of the facebank's and the episode's references (see the module docstring).
        needs_review: not linked, though a cast member scores at least ``cast_link_thresh``
            (the answer is ambiguous: margin) who is not held by an identity on screen with
            this one (two people at once are never one cast member).
        source: how the link was made: ``"facebank"`` (the facebank alone is clear),
            ``"episode"`` (clear only with the episode's linked identities as references), or
            ``None`` when not linked.
    """

    identity_id: int
    cast_id: str | None
    score: float | None
    suggestions: list[dict] = field(default_factory=list)
    needs_review: bool = False
    source: str | None = None

    @property
    def margin(self) -> float | None:
        """Best minus second-best suggestion score (``None`` with fewer than two cast members)."""
        if len(self.suggestions) < 2:
            return None
        return round(self.suggestions[0]["score"] - self.suggestions[1]["score"], 4)


def _check_dim(dim: int, facebank: Facebank) -> None:
    if dim != facebank.vectors.shape[1]:
        raise ValueError(
            f"identity embeddings are {dim}-d but the facebank of show "
            f"{facebank.show!r} is {facebank.vectors.shape[1]}-d (model pack "
            f"{facebank.model_pack!r}); rebuild the facebank with the episode's model pack")


def reference_similarity(vectors: np.ndarray, facebank: Facebank) -> tuple[np.ndarray, list[str]]:
    """Best cosine similarity of each vector to each cast member's reference photos.

    Args:
        vectors: float32 [N, D] unit vectors (faces, tracks or centroids).
        facebank: the show's facebank (unit references [R, D], same pack).

    Returns:
        ``(float32 [N, C] max over each cast member's references, cast ids [C])``.

    Raises:
        ValueError: the vectors and references have different dimensions (another model pack).
    """
    cast = list(facebank.cast_ids)
    n = len(vectors)
    if n == 0 or not cast:
        return np.zeros((n, len(cast)), np.float32), cast
    _check_dim(vectors.shape[1], facebank)
    sims = vectors.astype(np.float32) @ facebank.vectors.T  # [N, R]
    out = np.full((n, len(cast)), -1.0, np.float32)
    col = {c: j for j, c in enumerate(cast)}
    for r, c in enumerate(facebank.ref_cast_id):
        out[:, col[c]] = np.maximum(out[:, col[c]], sims[:, r])
    return out, cast


def identity_scores(track_identity: np.ndarray, track_vectors: np.ndarray,
                    track_weight: np.ndarray, n_identities: int, facebank: Facebank
                    ) -> tuple[np.ndarray, list[str]]:
    """Score of every identity for every cast member from all its tracks (see module docstring).

    Args:
        track_identity: int [T], position (0..K-1) of each track's identity.
        track_vectors: float32 [T, D] unit track embeddings (zero rows for tracks with no face).
        track_weight: float [T] >= 0, weight of each track (its number of embedded faces).
        n_identities: K.
        facebank: the show's facebank.

    Returns:
        ``(float32 [K, C] scores, cast ids [C])``; an identity without any weighted track scores 0.

    Raises:
        ValueError: another embedding dimension than the facebank's.
    """
    per_track, cast = reference_similarity(track_vectors, facebank)
    scores = np.zeros((n_identities, len(cast)), np.float64)
    weights = np.zeros(n_identities, np.float64)
    w = np.asarray(track_weight, np.float64)
    np.add.at(scores, np.asarray(track_identity, np.int64), per_track * w[:, None])
    np.add.at(weights, np.asarray(track_identity, np.int64), w)
    scores = np.divide(scores, weights[:, None], out=np.zeros_like(scores),
                       where=weights[:, None] > 0)
    return scores.astype(np.float32), cast


def assign(scores: np.ndarray, thresh: float, conflicts: set[tuple[int, int]] = frozenset()
           ) -> list[tuple[int, int]]:
    """Many-to-one pairs (row, column) maximising the total score of pairs with score >= thresh.

    Each row (identity) takes at most one column (cast member); a column may take several rows,
    except two rows listed together in ``conflicts`` (identities that share a frame). Solved
    exactly as a 0-1 integer programme (``scipy.optimize.milp``, HiGHS branch and cut) over the
    pairs at or above the threshold only.

    Args:
        scores: float [K, C]. thresh: minimum score of a kept pair.
        conflicts: pairs ``(i, j)`` of rows that must not share a column.

    Returns:
        ``[(row, col), ...]`` sorted by row.
    """
    rows, cols = np.nonzero(np.asarray(scores) >= thresh)
    if len(rows) == 0:
        return []
    # imported here: SciPy's optimizer costs seconds at start-up, and planning a run needs none
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    gain = np.asarray(scores, np.float64)[rows, cols]
    var = {(int(r), int(c)): k for k, (r, c) in enumerate(zip(rows, cols))}
    # constraint rows: one per identity (sum over its cast members <= 1), then one per conflicting
    # identity pair and cast member both could take (x_ic + x_jc <= 1)
    a_row, a_col = [], []
    n_con = 0
    for r in np.unique(rows):
        for k in np.flatnonzero(rows == r):
            a_row.append(n_con)
            a_col.append(int(k))
        n_con += 1
    for i, j in sorted(conflicts):
        for c in np.unique(cols):
            if (i, int(c)) in var and (j, int(c)) in var:
                a_row += [n_con, n_con]
                a_col += [var[i, int(c)], var[j, int(c)]]
                n_con += 1
    a = coo_matrix((np.ones(len(a_row)), (a_row, a_col)), shape=(n_con, len(gain))).tocsr()
    res = milp(-gain, integrality=np.ones(len(gain)), bounds=Bounds(0, 1),
               constraints=LinearConstraint(a, -np.inf, 1))
    if res.x is None:  # cannot happen (all-zero is feasible); be safe rather than link wrongly
        return []
    chosen = np.flatnonzero(res.x > 0.5)
    return sorted((int(rows[k]), int(cols[k])) for k in chosen)


def identity_conflicts(identity_frames: list[np.ndarray]) -> set[tuple[int, int]]:
    """Pairs ``(i, j)``, i < j, of identities (positions in the list) that share a frame.

    Args:
        identity_frames: per identity, int [n] frame indices of all its tracks' detections.
    """
    by_frame: dict[int, set[int]] = {}
    for i, frames in enumerate(identity_frames):
        for f in np.unique(frames):
            by_frame.setdefault(int(f), set()).add(i)
    pairs = set()
    for idx in by_frame.values():
        s = sorted(idx)
        pairs.update((s[a], s[b]) for a in range(len(s)) for b in range(a + 1, len(s)))
    return pairs


@dataclass
class EpisodeEvidence:
    """The tracks of an episode's identities, to use linked identities as references.

    Attributes:
        track_identity: int [T], row (0..K-1) of each track's identity.
        track_vectors: float32 [T, D] unit track embeddings (zero rows for tracks with no face).
        track_weight: float [T] >= 0, faces of each track.
    """

    track_identity: np.ndarray
    track_vectors: np.ndarray
    track_weight: np.ndarray

    def reference_scores(self, linked: dict[int, int], n_cast: int, n_rows: int) -> np.ndarray:
        """float32 [K, C]: each identity's score (as :func:`identity_scores`) against the tracks
        of the identities ``linked`` (row -> column) to each cast member; -1 where a cast member
        has no linked identity. Rows in ``linked`` are scored too (against their own tracks)."""
        out = np.full((n_rows, n_cast), -1.0, np.float32)
        keep = np.isin(self.track_identity, list(linked)) & (self.track_weight > 0)
        if not keep.any():
            return out
        cols = [linked[int(r)] for r in self.track_identity[keep]]
        refs = Facebank("episode", "", sorted({str(c) for c in cols}), [str(c) for c in cols],
                        [f"track {k}" for k in np.flatnonzero(keep)],
                        self.track_vectors[keep].astype(np.float32))
        scores, ref_cols = identity_scores(self.track_identity, self.track_vectors,
                                           self.track_weight, n_rows, refs)
        out[:, [int(c) for c in ref_cols]] = scores
        return out


def _clear_pairs(scores: np.ndarray, rows: set[int], allowed: np.ndarray, thresh: float,
                 margin: float) -> np.ndarray:
    """float [K, C]: ``scores`` where a row of ``rows`` has its best allowed column at or above
    ``thresh`` and ahead of its runner-up (allowed or not) by ``margin``; -inf elsewhere."""
    out = np.full(scores.shape, -np.inf)
    if scores.shape[1] == 0:
        return out
    for r in rows:
        row = np.where(allowed[r], scores[r], -np.inf)
        best = int(np.argmax(row))
        runner_up = np.delete(scores[r], best).max(initial=-np.inf)
        if row[best] >= thresh and row[best] - runner_up >= margin:
            out[r, best] = scores[r, best]
    return out


def link_identities(identity_ids: list[int], scores: np.ndarray | None, cast: list[str],
                    thresh: float, conflicts: set[tuple[int, int]] = frozenset(),
                    margin: float = 0.0, evidence: EpisodeEvidence | None = None
                    ) -> list[IdentityLink]:
    """Automatic links, review flags and ranked suggestions for every identity.

    Rounds (see the module docstring): an unlinked identity's scores are the best of the
    facebank's and, with ``evidence``, of the identities linked so far as references of their
    cast member; it is linked to the facebank's best cast member for it when that one scores at
    least ``thresh`` against the facebank, no identity on screen with it holds that cast member,
    and its score (with the episode's references) beats the runner-up's by ``margin``. Each
    round's clear pairs are resolved by :func:`assign` (co-occurring identities never on one
    cast member); rounds stop when one links nothing.

    Args:
        identity_ids: [K] ids, in the row order of ``scores``.
        scores: float32 [K, C] from :func:`identity_scores`, or ``None`` without a facebank (then
            every identity is unknown). cast: [C] cast ids of the columns.
        thresh: minimum score of a link (setting ``cast_link_thresh``, per model pack).
        conflicts: pairs of rows that share a frame (:func:`identity_conflicts`).
        margin: minimum lead of the best cast member over the runner-up (setting
            ``cast_link_margin``, per model pack; 0 links every best score above ``thresh``).
        evidence: the identities' tracks, to link with the episode's own references; ``None``
            links from the facebank alone.

    Returns:
        One :class:`IdentityLink` per identity, in input order.
    """
    if scores is None:
        return [IdentityLink(int(i), None, None, []) for i in identity_ids]
    facebank_scores = np.asarray(scores, np.float64)
    n, c = facebank_scores.shape
    partners: dict[int, set[int]] = {r: set() for r in range(n)}
    for i, j in conflicts:
        partners[i].add(j)
        partners[j].add(i)
    linked: dict[int, int] = {}
    source: dict[int, str] = {}
    combined = facebank_scores.copy()
    fb_best = facebank_scores.max(axis=1, keepdims=True) if c else facebank_scores
    frozen: dict[int, np.ndarray] = {}  # a linked row's scores when it was linked
    while True:
        if evidence is not None and linked:
            combined = np.maximum(facebank_scores, evidence.reference_scores(linked, c, n))
        allowed = np.ones((n, c), bool)
        for r, col in linked.items():
            for other in partners[r]:
                allowed[other, col] = False
        free = {r for r in range(n) if r not in linked}
        # the episode's evidence settles the margin, never the choice: the cast member must be
        # the facebank's own best and score the threshold against it (measured with
        # scripts/measure_cast_links.py: looser rules named more people outside the cast)
        allowed &= (facebank_scores >= thresh) & (facebank_scores >= fb_best)
        clear = _clear_pairs(combined, free, allowed, thresh, margin)
        new = assign(clear, thresh, {p for p in conflicts if p[0] in free and p[1] in free})
        if not new:
            break
        alone = _clear_pairs(facebank_scores, free, allowed, thresh, margin)
        for r, col in new:
            linked[r] = col
            source[r] = "facebank" if np.isfinite(alone[r, col]) else "episode"
            frozen[r] = combined[r].copy()
    for r, row in frozen.items():
        combined[r] = row
    # a cast member an identity on screen with this one holds is not one it could be: it is no
    # reason to ask a reviewer (the suggestions still list every cast member)
    possible = np.ones((n, c), bool)
    for r, col in linked.items():
        for other in partners[r]:
            possible[other, col] = False
    out = []
    for r, ident in enumerate(identity_ids):
        order = np.argsort(-combined[r], kind="stable")
        suggestions = [{"cast_id": cast[j], "score": round(float(combined[r, j]), 4)}
                       for j in order]
        j = linked.get(r)
        out.append(IdentityLink(
            int(ident), cast[j] if j is not None else None,
            round(float(combined[r, j]), 4) if j is not None else None, suggestions,
            needs_review=j is None and bool((combined[r][possible[r]] >= thresh).any()),
            source=source.get(r)))
    return out


def link_quality(links: list[IdentityLink], n_tracks: dict[int, int]) -> dict:
    """Cluster-quality figures for the cast_links metadata.

    Args:
        links: the automatic links. n_tracks: identity id -> number of tracks.

    Returns:
        ``{"identities", "linked", "linked_from_facebank", "linked_from_episode",
        "needs_review", "unlinked" (neither linked nor in need of review), "tracks_per_identity"
        (mean), "identities_per_cast" (cast id -> identities linked), "margin_min",
        "margin_median"}``, margins being the best minus the second-best cast score of each
        linked identity.
    """
    per_cast: dict[str, int] = {}
    for link in links:
        if link.cast_id:
            per_cast[link.cast_id] = per_cast.get(link.cast_id, 0) + 1
    margins = [link.margin for link in links if link.cast_id and link.margin is not None]
    counts = [n_tracks.get(link.identity_id, 0) for link in links]
    n_linked = sum(1 for link in links if link.cast_id)
    n_review = sum(1 for link in links if link.needs_review)
    return {
        "identities": len(links),
        "linked": n_linked,
        "linked_from_facebank": sum(1 for link in links if link.source == "facebank"),
        "linked_from_episode": sum(1 for link in links if link.source == "episode"),
        "needs_review": n_review,
        "unlinked": len(links) - n_linked - n_review,
        "tracks_per_identity": round(float(np.mean(counts)), 2) if counts else 0.0,
        "identities_per_cast": dict(sorted(per_cast.items())),
        "margin_min": round(float(min(margins)), 4) if margins else None,
        "margin_median": round(float(np.median(margins)), 4) if margins else None,
    }


def link_episode(identities: list[tuple[int, list[int]]], tracks: list[Track],
                 face_track_ids: np.ndarray, face_vectors: np.ndarray,
                 facebank: Facebank | None, thresh: float, margin: float = 0.0,
                 transductive: bool = True) -> list[IdentityLink]:
    """Link an episode's identities to the cast from all their tracks' embeddings.

    Args:
        identities: ``(identity_id, track ids)`` per identity.
        tracks: the episode's tracks (their frames give the co-occurring identities).
        face_track_ids: int [F], track of each embedded face. face_vectors: float32 [F, D].
        facebank: the show's facebank, or ``None`` (every identity unknown).
        thresh: ``cast_link_thresh`` of the model pack. margin: ``cast_link_margin`` of the pack.
        transductive: use the linked identities as references (see the module docstring).

    Returns:
        The links, in identity order (their figures: :func:`link_quality`).

    Raises:
        ValueError: the embeddings and the facebank come from packs of different dimensions.
    """
    ids = [int(i) for i, _ in identities]
    if facebank is None or not identities:
        return link_identities(ids, None, [], thresh)
    by_id = {t.track_id: t for t in tracks}
    member_ids = np.array([t for _, ts in identities for t in ts], np.int64)
    member_identity = np.array([k for k, (_, ts) in enumerate(identities) for _ in ts], np.int64)
    vectors, n_faces = track_embeddings(face_track_ids, face_vectors, member_ids)
    if vectors.shape[1] == 0:
        vectors = np.zeros((len(member_ids), facebank.vectors.shape[1]), np.float32)
    vectors = vectors.astype(np.float32)
    scores, cast = identity_scores(member_identity, vectors, n_faces, len(identities), facebank)
    frames = [np.concatenate([by_id[t].frame_idx for t in ts]) if ts else np.zeros(0, np.int64)
              for _, ts in identities]
    evidence = EpisodeEvidence(member_identity, vectors, n_faces) if transductive else None
    return link_identities(ids, scores, cast, thresh, identity_conflicts(frames), margin,
                           evidence)
