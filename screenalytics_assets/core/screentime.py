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


def fill_gaps(intervals: list[tuple[float, float]], max_gap_s: float
              ) -> list[tuple[float, float]]:
    """Close the gaps of at most ``max_gap_s`` seconds between sorted, disjoint intervals (s)."""
    out: list[list[float]] = []
    for a, b in intervals:
        if out and a - out[-1][1] <= max_gap_s + 1e-6:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def identity_intervals(tracks: list[Track], duration_s: float, max_gap_s: float = 0.0
                       ) -> list[tuple[float, float]]:
    """Time a group of tracks (one person) is on screen, as merged intervals (s).

    The union of the tracks' intervals, where a gap of at most ``max_gap_s`` seconds inside one
    shot (the face missed for a few frames: cut by the frame edge, briefly occluded, or between
    two stitched tracks) counts as on screen. Gaps are never closed across a shot cut.
    """
    by_shot: dict[int, list[tuple[float, float]]] = {}
    for t in tracks:
        by_shot.setdefault(int(t.shot_id), []).extend(track_intervals(t, duration_s))
    merged = [iv for ivs in by_shot.values()
              for iv in fill_gaps(union_intervals(ivs, duration_s), max_gap_s)]
    return union_intervals(merged, duration_s)


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
                names: dict[int, str | None] | None = None,
                max_gap_s: float = 0.0) -> list[PersonTime]:
    """Seconds on screen per identity: the union of its tracks' intervals.

    Args:
        tracks_by_identity: identity id -> its tracks.
        duration_s: episode duration (s); no interval passes it.
        cast_ids: identity id -> cast id, where linked.
        names: identity id -> display name, where a reviewer gave one.
        max_gap_s: gaps within a shot up to this long count as on screen
            (:func:`identity_intervals`; setting ``stitch_gap_s``).

    Returns:
        One :class:`PersonTime` per identity with at least one track, most seconds first.
    """
    people = []
    for ident, tracks in tracks_by_identity.items():
        if not tracks:
            continue
        iv = identity_intervals(tracks, duration_s, max_gap_s)
        if not iv:
            continue
        people.append(PersonTime(int(ident), (cast_ids or {}).get(ident), total_seconds(iv),
                                 len(tracks), iv[0][0], iv[-1][1], iv,
                                 (names or {}).get(ident)))
    people.sort(key=lambda p: (-p.seconds, p.first_ts, p.identity_id))
    return people


def identity_seconds(tracks: list[Track], duration_s: float, max_gap_s: float = 0.0) -> float:
    """Seconds on screen of a group of tracks (see :func:`identity_intervals`)."""
    return total_seconds(identity_intervals(tracks, duration_s, max_gap_s))


@dataclass
class Segment:
    """One continuous appearance of a person within one shot.

    The way video-analysis services report appearances (a person, a start and an end): the
    union of the person's track intervals inside one shot, split wherever nobody of theirs is on
    screen. Tracks never cross a shot cut, so a segment never does either.

    Attributes:
        person: the cast id when linked, else ``id_NN`` (the identity).
        identity_id: the reviewed identity. cast_id: linked cast member or ``None``.
        name: display name from review, or ``None``.
        start_s, end_s: seconds from the start of the episode (``end_s`` exclusive).
        shot_id: the shot it lies in. track_ids: the person's tracks on screen in it (sorted).
    """

    person: str
    identity_id: int
    cast_id: str | None
    name: str | None
    start_s: float
    end_s: float
    shot_id: int
    track_ids: list[int]

    def to_dict(self) -> dict:
        return {"person": self.person, "identity_id": self.identity_id, "cast_id": self.cast_id,
                "name": self.name, "start_s": round(self.start_s, 3),
                "end_s": round(self.end_s, 3), "shot_id": self.shot_id,
                "track_ids": self.track_ids}


def person_segments(people: list[PersonTime], tracks_by_identity: dict[int, list[Track]],
                    duration_s: float, max_gap_s: float = 0.0) -> list[Segment]:
    """Every person's appearances as time-sorted segments.

    Args:
        people: from :func:`screen_time` (gives the person's cast id and name).
        tracks_by_identity: identity id -> its tracks (as given to :func:`screen_time`).
        duration_s: episode duration (s); no segment passes it.
        max_gap_s: gaps within a shot up to this long count as on screen, as in
            :func:`screen_time` (a segment spans them).

    Returns:
        Segments sorted by ``start_s``, then person. The segments of one person add up to
        that person's ``seconds`` (the same union of intervals, cut at shot boundaries).
    """
    out: list[Segment] = []
    for p in people:
        by_shot: dict[int, list[tuple[float, float, int]]] = {}
        for t in tracks_by_identity.get(p.identity_id, []):
            for a, b in track_intervals(t, duration_s):
                by_shot.setdefault(int(t.shot_id), []).append((a, b, t.track_id))
        person = p.cast_id or f"id_{p.identity_id:02d}"
        for shot, parts in by_shot.items():
            for a, b in fill_gaps(union_intervals([(a, b) for a, b, _ in parts], duration_s),
                                  max_gap_s):
                ids = sorted({tid for x, y, tid in parts if x < b and y > a})
                out.append(Segment(person, p.identity_id, p.cast_id, p.name, a, b, shot, ids))
    out.sort(key=lambda s: (s.start_s, s.person, s.end_s))
    return out
