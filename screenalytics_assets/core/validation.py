"""Invariants of the pipeline's artifacts, as plain functions (used by the Dagster asset checks).

Each returns a list of problems, empty when the invariant holds.
"""

from __future__ import annotations

import numpy as np

from .shots import Shot
from .tracking import Track


def embedding_problems(vectors: np.ndarray, dim: int, atol: float = 1e-3) -> list[str]:
    """Embeddings must be float32 [F, dim], finite and unit-norm (L2 within ``atol``)."""
    problems = []
    if vectors.ndim != 2 or (len(vectors) and vectors.shape[1] != dim):
        problems.append(f"shape {vectors.shape}, expected [n_faces, {dim}]")
        return problems
    if vectors.dtype != np.float32:
        problems.append(f"dtype {vectors.dtype}, expected float32")
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        problems.append(f"{int(bad.sum())} embeddings with NaN/inf (rows {np.flatnonzero(bad)[:10].tolist()})")
    norms = np.linalg.norm(np.nan_to_num(vectors), axis=1)
    off = np.abs(norms - 1.0) > atol
    if off.any():
        problems.append(f"{int(off.sum())} embeddings not unit-norm (e.g. norm {norms[off][0]:.4f})")
    return problems


def track_problems(tracks: list[Track], shots: list[Shot]) -> list[str]:
    """Every track's frames strictly increase and lie inside the one shot it names."""
    problems = []
    for t in tracks:
        if len(t) == 0:
            problems.append(f"track {t.track_id} is empty")
            continue
        if (np.diff(t.frame_idx) <= 0).any():
            problems.append(f"track {t.track_id}: frames do not increase")
        if not 0 <= t.shot_id < len(shots):
            problems.append(f"track {t.track_id}: unknown shot {t.shot_id}")
            continue
        s = shots[t.shot_id]
        if t.start_frame < s.start_frame or t.end_frame > s.end_frame:
            problems.append(f"track {t.track_id} (frames {t.start_frame}-{t.end_frame}) leaves "
                            f"shot {s.shot_id} (frames {s.start_frame}-{s.end_frame})")
    return problems


def membership_problems(track_ids: list[int], identity_tracks: dict[int, list[int]]) -> list[str]:
    """Every track belongs to exactly one identity, and identities name only known tracks."""
    seen: dict[int, list[int]] = {}
    for ident, members in identity_tracks.items():
        for t in members:
            seen.setdefault(int(t), []).append(ident)
    problems = [f"track {t} is in identities {ids}" for t, ids in seen.items() if len(ids) > 1]
    known = set(int(t) for t in track_ids)
    problems += [f"track {t} is in no identity" for t in sorted(known - set(seen))]
    problems += [f"identity names unknown track {t}" for t in sorted(set(seen) - known)]
    return problems


def screentime_problems(seconds: dict[object, float], duration_s: float, tol: float = 1e-3
                        ) -> list[str]:
    """No one's screen time is negative or exceeds the episode's duration (s)."""
    return [f"{who}: {s:.3f} s on screen in a {duration_s:.3f} s episode"
            for who, s in seconds.items() if s < 0 or s > duration_s + tol]
