"""Track representatives and per-track quality metrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .clustering import Clustering
from .sampling import FaceSamples
from .tracking import Track


@dataclass
class TrackRep:
    """Representative face and metrics of one track.

    Attributes:
        track_id, identity_id: the track and the identity it was put in.
        rep_face_id: the track's face most similar (cosine) to the track embedding, ties broken by
            quality; -1 when the track has no sampled face.
        rep_frame_idx, rep_ts: where that face is (frame, seconds).
        n_frames: detections in the track. n_faces: faces sampled and embedded.
        length_s: from the first detection's ts to the end of the last one's coverage (s).
        mean_sim, min_sim: mean and minimum cosine similarity of its faces to the track embedding.
        identity_sim: cosine similarity of the track embedding to its identity centroid.
        mean_score: mean detector score. best_quality: highest face quality (see sampling).
    """

    track_id: int
    identity_id: int
    rep_face_id: int
    rep_frame_idx: int
    rep_ts: float
    n_frames: int
    n_faces: int
    length_s: float
    mean_sim: float
    min_sim: float
    identity_sim: float
    mean_score: float
    best_quality: float

    def to_dict(self) -> dict:
        return asdict(self)


def track_representatives(tracks: list[Track], faces: FaceSamples, embeddings: np.ndarray,
                          clustering: Clustering) -> list[TrackRep]:
    """One :class:`TrackRep` per track, in track order.

    Args:
        tracks: the episode's tracks. faces: sampled faces. embeddings: float32 [F, D] unit vectors
            of ``faces``, same order. clustering: from ``cluster_tracks``.
    """
    pos = {int(t): i for i, t in enumerate(clustering.track_ids)}
    by_track: dict[int, list[int]] = {}
    for i, t in enumerate(faces.track_id):
        by_track.setdefault(int(t), []).append(i)
    reps = []
    for t in tracks:
        p = pos[t.track_id]
        label = int(clustering.labels[p])
        temb = clustering.track_embeddings[p]
        idx = np.asarray(by_track.get(t.track_id, []), np.int64)
        if len(idx):
            sims = embeddings[idx] @ temb
            best = idx[np.lexsort((-faces.quality[idx], -sims))[0]]
            rep = (int(faces.face_id[best]), int(faces.frame_idx[best]), float(faces.ts[best]))
            mean_sim, min_sim = float(sims.mean()), float(sims.min())
            best_q = float(faces.quality[idx].max())
        else:
            rep, mean_sim, min_sim, best_q = (-1, -1, -1.0), 0.0, 0.0, 0.0
        reps.append(TrackRep(
            track_id=t.track_id, identity_id=label, rep_face_id=rep[0], rep_frame_idx=rep[1],
            rep_ts=rep[2], n_frames=len(t), n_faces=len(idx),
            length_s=float(t.ts[-1] - t.ts[0] + t.dur[-1]), mean_sim=mean_sim, min_sim=min_sim,
            identity_sim=float(temb @ clustering.centroids[label]), mean_score=float(t.score.mean()),
            best_quality=best_q))
    return reps
