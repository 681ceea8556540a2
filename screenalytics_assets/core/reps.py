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


#: JPEG quality of the representative thumbnails: small files (about 3-5 KB at 112x112).
REP_THUMB_QUALITY = 85


def rep_thumb_name(track_id: int) -> str:
    """Artifact file name of a track's representative thumbnail:
    ``thumbs/reps/track_{track_id:04d}.jpg``."""
    return f"thumbs/reps/track_{int(track_id):04d}.jpg"


def rep_thumbnails(reps: list[TrackRep], face_ids: np.ndarray, aligned,
                   quality: int = REP_THUMB_QUALITY) -> dict[str, bytes]:
    """The representative face of every track as a small JPEG, for review pages.

    The image is the face's ArcFace-aligned crop (already in hand, so no frame is decoded
    again), written whatever ``save_crops`` says.

    Args:
        reps: from :func:`track_representatives`. face_ids: int64 [F], face id of each row of
            ``aligned``. aligned: uint8 [F, 112, 112, 3] BGR (array or ``NpyRows``).
        quality: JPEG quality 1-100.

    Returns:
        ``{rep_thumb_name(track_id): JPEG bytes}`` for every track with a sampled face.
    """
    import cv2

    row = {int(f): i for i, f in enumerate(np.asarray(face_ids).tolist())}
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    out = {}
    for r in reps:
        if r.rep_face_id < 0 or r.rep_face_id not in row:
            continue
        ok, buf = cv2.imencode(".jpg", np.asarray(aligned[row[r.rep_face_id]], np.uint8), params)
        if not ok:
            raise ValueError(f"JPEG encoding of track {r.track_id}'s thumbnail failed")
        out[rep_thumb_name(r.track_id)] = buf.tobytes()
    return out
