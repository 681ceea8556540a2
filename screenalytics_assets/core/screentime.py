"""Screen-time math: unions of on-screen intervals, in seconds."""

from __future__ import annotations

from dataclasses import dataclass


from .tracking import Track


def track_intervals(track: Track, duration_s: float | None = None) -> list[tuple[float, float]]:
    """Time a track is on screen, as merged ``[start, end)`` intervals in seconds.

    Each detection at time ``ts`` covers ``[ts, ts + dur)`` where ``dur`` is the time of the
    frames it stands for: with stride k, a face seen on a processed frame is counted for the k
    frames it represents (their real durations, so variable frame rate is handled). Intervals
    are clipped to ``[0, duration_s]`` when a duration is given.
    """
    return union_intervals([(float(t), float(t + d)) for t, d in zip(track.ts, track.dur)],
                           duration_s)


def union_intervals(intervals: list[tuple[float, float]], duration_s: float | None = None
                    ) -> list[tuple[float, float]]:
    """Merge overlapping or touching ``(start, end)`` intervals (s); optional clip to a duration."""
    out: list[list[float]] = []
    eps = 1e-6
    for a, b in sorted(intervals):
        if duration_s is not None:
            a, b = max(0.0, a), min(b, duration_s)
        if b <= a:
            continue
        if out and a <= out[-1][1] + eps:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def total_seconds(intervals: list[tuple[float, float]]) -> float:
    """Sum of interval lengths (s); intervals must not overlap (see :func:`union_intervals`)."""
    return float(sum(b - a for a, b in intervals))


@dataclass
class PersonTime:
    """Screen time of one identity.

    Attributes:
        identity_id: identity from clustering. cast_id: linked cast member or ``None``.
        seconds: length of the union of its tracks' intervals (s).
        n_tracks: tracks in the identity. first_ts, last_ts: first and last second on screen.
        intervals: merged ``(start, end)`` intervals (s).
        name: display name given by a reviewer, or ``None``.
    """

    identity_id: int
    cast_id: str | None
    seconds: float
    n_tracks: int
    first_ts: float
    last_ts: float
    intervals: list[tuple[float, float]]
    name: str | None = None

    @property
    def label(self) -> str:
        """What to call the person: the display name, else the cast id, else ``id_NN``."""
        return self.name or self.cast_id or f"id_{self.identity_id:02d}"


def screen_time(tracks_by_identity: dict[int, list[Track]], duration_s: float,
                cast_ids: dict[int, str | None] | None = None,
                names: dict[int, str | None] | None = None) -> list[PersonTime]:
    """Seconds on screen per identity: the union of its tracks' intervals.

    Args:
        tracks_by_identity: identity id -> its tracks.
        duration_s: episode duration (s); no interval passes it.
        cast_ids: identity id -> cast id, where linked.
        names: identity id -> display name, where a reviewer gave one.

    Returns:
        One :class:`PersonTime` per identity with at least one track, most seconds first.
    """
    people = []
    for ident, tracks in tracks_by_identity.items():
        if not tracks:
            continue
        iv = union_intervals(
            [i for t in tracks for i in track_intervals(t, duration_s)], duration_s)
        if not iv:
            continue
        people.append(PersonTime(int(ident), (cast_ids or {}).get(ident), total_seconds(iv),
                                 len(tracks), iv[0][0], iv[-1][1], iv,
                                 (names or {}).get(ident)))
    people.sort(key=lambda p: (-p.seconds, p.first_ts, p.identity_id))
    return people


def identity_seconds(tracks: list[Track], duration_s: float) -> float:
    """Seconds on screen of a group of tracks (the union of their intervals)."""
    return total_seconds(union_intervals(
        [i for t in tracks for i in track_intervals(t, duration_s)], duration_s))
