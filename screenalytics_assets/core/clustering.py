"""Clustering of tracks into identities (agglomerative, cosine distance, cannot-link constraints)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .embedding import l2_normalize
from .tracking import Track

# Distance given to two tracks that share a frame. With average linkage, the distance between two
# clusters is the mean of their pairwise distances, so one such pair keeps the mean above any
# cosine-distance threshold (<= 2) for clusters of up to 10^5 tracks: they are never merged.
_CANNOT_LINK = 1e10


@dataclass(frozen=True)
class ClusteringParams:
    """Settings of :func:`cluster_tracks`.

    Attributes:
        cluster_thresh: cosine-distance threshold (1 - cosine similarity) under which average-linkage
            clustering merges two clusters of strong tracks.
        min_identity_sim: minimum cosine similarity between a weak track's embedding and an
            identity centroid for the track to join that identity.
        min_track_faces: tracks with fewer sampled faces than this are weak: they do not shape
            the clusters, and are attached afterwards or left as singletons.
        stitch_gap_s: tracks of one shot separated by at most this many seconds without a
            detection are stitched (always one identity) when their boxes and embeddings agree
            (see :func:`stitch_pairs`); 0 stitches nothing.
        stitch_min_sim: minimum cosine similarity between the embeddings of two tracks to stitch
            them (per model pack: a face cut by the frame edge embeds poorly).
    """

    cluster_thresh: float = 0.5
    min_identity_sim: float = 0.4
    min_track_faces: int = 3
    stitch_gap_s: float = 0.0
    stitch_min_sim: float = 0.2


@dataclass
class Clustering:
    """Result of :func:`cluster_tracks`.

    Attributes:
        track_ids: int64 [T], the tracks clustered, in input order.
        labels: int64 [T], identity of each track, 0..K-1 in order of first appearance.
        track_embeddings: float32 [T, D], unit track embeddings.
        centroids: float32 [K, D], unit mean of each identity's track embeddings.
        attached: bool [T], weak tracks attached to an identity by ``min_identity_sim``.
    """

    track_ids: np.ndarray
    labels: np.ndarray
    track_embeddings: np.ndarray
    centroids: np.ndarray
    attached: np.ndarray

    def members(self, label: int) -> np.ndarray:
        return self.track_ids[self.labels == label]


def track_embeddings(face_track_ids: np.ndarray, embeddings: np.ndarray, track_ids: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Track embedding = L2-normalised mean of the track's face embeddings.

    Args:
        face_track_ids: int [F], track of each face. embeddings: float32 [F, D] unit vectors.
        track_ids: int [T], the tracks wanted.

    Returns:
        ``(float32 [T, D], n_faces int64 [T])``; a track with no face gets a zero vector.
    """
    dim = embeddings.shape[1] if embeddings.ndim == 2 else 0
    index = {int(t): i for i, t in enumerate(track_ids)}
    sums = np.zeros((len(track_ids), dim), np.float64)
    counts = np.zeros(len(track_ids), np.int64)
    for t, e in zip(face_track_ids, embeddings):
        i = index.get(int(t))
        if i is not None:
            sums[i] += e
            counts[i] += 1
    return l2_normalize(sums), counts


def cooccurring_pairs(tracks: list[Track]) -> set[tuple[int, int]]:
    """Pairs ``(i, j)``, i < j, of positions in ``tracks`` whose tracks share a frame."""
    by_frame: dict[int, list[int]] = {}
    for i, t in enumerate(tracks):
        for f in t.frame_idx:
            by_frame.setdefault(int(f), []).append(i)
    pairs = set()
    for idx in by_frame.values():
        for a in range(len(idx)):
            for b in range(a + 1, len(idx)):
                pairs.add((min(idx[a], idx[b]), max(idx[a], idx[b])))
    return pairs


#: Largest distance between the centres of a track's last box and the next track's first box, in
#: units of the larger box side, for the two to be stitched: the face may move during the gap.
STITCH_MAX_SHIFT = 1.0


def stitch_pairs(tracks: list[Track], emb: np.ndarray, n_faces: np.ndarray, max_gap_s: float,
                 min_sim: float) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` of positions in ``tracks`` where track j continues track i.

    ByteTrack keeps a lost track for ``track_buffer`` frames, but a face that leaves the frame
    partly or is briefly occluded often comes back as a new track, whose box the tracker's motion
    model no longer overlaps. Such tracks are stitched here, where their embeddings are known (the
    tracker has only boxes). Criteria (own code: ``trackers`` offers no offline stitching): same
    shot; j starts after i ends, with at most ``max_gap_s`` seconds without a detection between
    them; the centre of j's first box within ``STITCH_MAX_SHIFT`` box sides of the centre of i's
    last box, and box areas within a factor 4; track embeddings with cosine similarity >=
    ``min_sim``. Each track continues at most one and is continued by at most one, the smallest
    gap first.

    Args:
        tracks: the episode's tracks. emb: float32 [T, D] unit track embeddings. n_faces: int [T].
        max_gap_s: seconds. min_sim: cosine similarity.

    Returns:
        ``[(i, j), ...]`` with track i ending before track j starts.
    """
    if max_gap_s <= 0:
        return []
    cands = []
    by_shot: dict[int, list[int]] = {}
    for i, t in enumerate(tracks):
        by_shot.setdefault(int(t.shot_id), []).append(i)
    for i, a in enumerate(tracks):
        end = float(a.ts[-1] + a.dur[-1])
        for j in by_shot[int(a.shot_id)]:
            b = tracks[j]
            if b.start_frame <= a.end_frame:
                continue
            gap = float(b.ts[0]) - end
            if gap > max_gap_s + 1e-6 or n_faces[i] == 0 or n_faces[j] == 0:
                continue
            ba, bb = a.bbox[-1], b.bbox[0]
            side = float(max(ba[2] - ba[0], ba[3] - ba[1], bb[2] - bb[0], bb[3] - bb[1]))
            shift = float(np.hypot((ba[0] + ba[2] - bb[0] - bb[2]) / 2,
                                   (ba[1] + ba[3] - bb[1] - bb[3]) / 2))
            area_a = float((ba[2] - ba[0]) * (ba[3] - ba[1]))
            area_b = float((bb[2] - bb[0]) * (bb[3] - bb[1]))
            ratio = max(area_a, area_b) / max(min(area_a, area_b), 1e-9)
            if shift > STITCH_MAX_SHIFT * side or ratio > 4.0:
                continue
            if float(emb[i] @ emb[j]) < min_sim:
                continue
            cands.append((gap, i, j))
    pairs, has_next, has_prev = [], set(), set()
    for _, i, j in sorted(cands):
        if i not in has_next and j not in has_prev:
            pairs.append((i, j))
            has_next.add(i)
            has_prev.add(j)
    return sorted(pairs)


def cluster_tracks(tracks: list[Track], face_track_ids: np.ndarray, embeddings: np.ndarray,
                   params: ClusteringParams = ClusteringParams()) -> Clustering:
    """Group tracks into identities.

    1. Each track's embedding is the normalised mean of its face embeddings. Tracks that
       continue each other within a shot are stitched (:func:`stitch_pairs`): they always end up
       in one identity.
    2. Strong tracks (>= ``min_track_faces`` faces) are clustered by agglomerative clustering,
       average linkage (UPGMA, SciPy's ``linkage``), on cosine distance, stopping at
       ``cluster_thresh``. Two tracks that share a frame are two people: their distance is set to
       a huge value, so no cluster ever contains both.
    3. Weak tracks (too few faces to be trusted; at least one face), longest first, join the
       identity whose centroid is most similar if that cosine similarity is >= ``min_identity_sim``
       and the identity has no track in the same frames; otherwise each stays a singleton
       identity. Tracks with no face at all are singletons.

    Args:
        tracks: the episode's tracks.
        face_track_ids: int [F], track of each embedded face. embeddings: float32 [F, D].
        params: thresholds.

    Returns:
        :class:`Clustering`, identities numbered by first appearance.
    """
    n = len(tracks)
    track_ids = np.array([t.track_id for t in tracks], np.int64)
    emb, n_faces = track_embeddings(face_track_ids, embeddings, track_ids)
    labels = np.full(n, -1, np.int64)
    cannot = cooccurring_pairs(tracks)
    stitched = stitch_pairs(tracks, emb, n_faces, params.stitch_gap_s, params.stitch_min_sim)
    strong = np.flatnonzero(n_faces >= max(1, params.min_track_faces))
    if len(strong) == 1:
        labels[strong] = 0
    elif len(strong) > 1:
        dist = np.clip(1.0 - emb[strong] @ emb[strong].T, 0.0, 2.0).astype(np.float64)
        pos = {int(s): k for k, s in enumerate(strong)}
        for a, b in stitched:  # must-link: distance 0, merged before anything else
            if a in pos and b in pos:
                dist[pos[a], pos[b]] = dist[pos[b], pos[a]] = 0.0
        for a, b in cannot:
            if a in pos and b in pos:
                dist[pos[a], pos[b]] = dist[pos[b], pos[a]] = _CANNOT_LINK
        np.fill_diagonal(dist, 0.0)
        # SciPy's linkage, as scikit-learn's AgglomerativeClustering runs it for precomputed
        # distances without connectivity (sklearn.cluster._agglomerative.linkage_tree), without
        # importing scikit-learn (about a second per run on 2 cores, for a 10 ms clustering).
        # scikit-learn merges while the linkage distance is < cluster_thresh; fcluster keeps
        # clusters whose cophenetic distance is <= t, so t is the float just under the threshold.
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import squareform

        tree = linkage(squareform(dist, checks=False), method="average")
        labels[strong] = fcluster(tree, t=np.nextafter(params.cluster_thresh, -np.inf),
                                  criterion="distance") - 1
    attached = np.zeros(n, bool)
    k = int(labels.max()) + 1 if n else 0
    centroids = [l2_normalize(emb[labels == c].mean(0)) for c in range(k)]
    conflicts = {i: set() for i in range(n)}
    for a, b in cannot:
        conflicts[a].add(b)
        conflicts[b].add(a)
    partners = {i: set() for i in range(n)}
    for a, b in stitched:
        partners[a].add(b)
        partners[b].add(a)
    for i in sorted(np.flatnonzero(labels < 0), key=lambda i: (-len(tracks[i]), i)):
        for j in sorted(partners[i]):  # a weak track joins the track it was stitched to
            c = labels[j]
            if c >= 0 and not any(labels[m] == c for m in conflicts[i]):
                labels[i] = c
                attached[i] = True
                break
        if labels[i] < 0 and n_faces[i] > 0 and centroids:
            sims = np.array([float(emb[i] @ c) for c in centroids])
            for c in np.argsort(-sims):
                if sims[c] < params.min_identity_sim:
                    break
                if not any(labels[j] == c for j in conflicts[i]):
                    labels[i] = c
                    attached[i] = True
                    break
        if labels[i] < 0:
            labels[i] = k
            centroids.append(emb[i])
            k += 1
    return _renumber(tracks, track_ids, labels, emb, attached)


def _renumber(tracks, track_ids, labels, emb, attached) -> Clustering:
    first = {}
    for t, lab in zip(tracks, labels):
        first[int(lab)] = min(first.get(int(lab), (1 << 62, 0)), (t.start_frame, t.track_id))
    order = sorted(first, key=first.get)
    remap = {old: new for new, old in enumerate(order)}
    labels = np.array([remap[int(x)] for x in labels], np.int64)
    dim = emb.shape[1] if emb.ndim == 2 else 0
    centroids = np.stack([l2_normalize(emb[labels == c].mean(0)) for c in range(len(order))]) \
        if order else np.zeros((0, dim), np.float32)
    return Clustering(track_ids, labels, emb, centroids, attached)
