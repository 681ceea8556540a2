"""What the review pages show, read from storage and the Dagster instance (no web framework here).

Everything is read from the materialized artifacts and the edits file: identities after the
reviewer's edits (``resources.edits.current_review``, the same code the CLI uses), screen time and
segments from ``screentime``, representative thumbnails from ``track_reps``. Nothing is computed
that an asset computes: when edits are newer than ``cast_links``/``screentime`` the page says so
and a Dagster run brings them up to date.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from resources.edits import current_review, read_edits
from resources.storage import ArtifactStore, LocalStore

from ..core.artifacts import load_segments
from ..core.ep_id import validate_ep_id
from ..core.errors import ScreenalyticsError
from ..core.reps import rep_thumb_name
from ..core.review import edits_version, on_screen_together
from ..core.screentime import Segment
from ..partitions import (
    EPISODES_PARTITION,
    parse_season_key,
    season_episodes,
    season_of,
)

#: Track thumbnails per page of an identity card.
PAGE_SIZE = 24


def mmss(seconds: float) -> str:
    """A time in seconds as ``m:ss`` (``h:mm:ss`` from an hour), e.g. ``754.2`` -> ``12:34``;
    the timeline's axis (static/app.js ``mmss``) writes times the same way."""
    s = int(max(0.0, seconds))
    h, m, sec = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class NotFoundError(ScreenalyticsError):
    """An episode, identity or track the URL names does not exist (HTTP 404)."""


class NotMaterializedError(ScreenalyticsError):
    """The episode is registered but its assets were not materialized yet (HTTP 409)."""


@dataclass
class Card:
    """One identity as the page shows it.

    Attributes:
        identity_id, name, cast_id, link_source, score: as after review (``ReviewedIdentity``).
        label: the name, else the cast id, else ``id_NN``.
        suggestions: the best five, ranked ``{"cast_id", "score"}``. seconds: screen time from
            the last materialized ``screentime`` (``None`` when this identity is not in it yet).
        track_ids: every track, sorted. scores: cast id -> cosine similarity, every cast member
            ``cast_links`` scored.
    """

    identity_id: int
    label: str
    name: str | None
    cast_id: str | None
    link_source: str | None
    score: float | None
    suggestions: list[dict]
    seconds: float | None
    track_ids: list[int]
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def source(self) -> str | None:
        """How the link was made, as the page says it: ``automatic`` (cast linking) or
        ``reviewed`` (a reviewer's link edit); ``None`` when not linked."""
        if not self.cast_id:
            return None
        return "reviewed" if self.link_source == "manual" else "automatic"

    def page(self, n: int) -> list[int]:
        """Track ids of page ``n`` (1-based)."""
        return self.track_ids[(n - 1) * PAGE_SIZE:n * PAGE_SIZE]

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.track_ids) // PAGE_SIZE))


@dataclass
class EpisodeView:
    """An episode's review page.

    Attributes:
        version: data version of the edits file the page was built from (sent back with every
            edit, so an edit made on a stale page is refused).
        applied_version: edits version ``cast_links`` was last materialized with (``None``:
            not materialized); ``stale`` when it differs from ``version``.
        duration_s: episode length (s). segments: time-sorted appearances (may be empty).
        cast_ids: the show's facebank (``[]`` when it has none). edits: the edits, in order.
        skipped: edits that no longer apply, with the reason. shot_starts: start (s) of every
        shot but the first (the shot cuts). thresh: ``cast_link_thresh`` of the last
        ``cast_links`` (``None``: not materialized); a link under it is weak.
    """

    ep_id: str
    cards: list[Card]
    version: str
    applied_version: str | None
    duration_s: float
    segments: list[Segment]
    cast_ids: list[str]
    edits: list[dict]
    skipped: list[dict] = field(default_factory=list)
    shot_starts: list[float] = field(default_factory=list)
    thresh: float | None = None

    @property
    def stale(self) -> bool:
        return self.applied_version != self.version

    def card(self, identity_id: int) -> Card:
        """The card of an identity.

        Raises:
            NotFoundError: no such identity now (merged away, or never existed).
        """
        card = next((c for c in self.cards if c.identity_id == identity_id), None)
        if card is None:
            raise NotFoundError(f"episode {self.ep_id} has no identity {identity_id} now")
        return card

    def weak(self, score: float | None) -> bool:
        """Whether a link at this cosine similarity is weak: under ``cast_link_thresh``, or of
        unknown similarity (a cast member ``cast_links`` did not score)."""
        return score is None or (self.thresh is not None and score < self.thresh)

    def weak_links(self, identity_ids: list[int], cast_id: str) -> list[tuple[Card, float | None]]:
        """The identities among ``identity_ids`` whose link to ``cast_id`` would be weak, with
        their similarity (``None``: unknown)."""
        cards = [self.card(i) for i in identity_ids]
        return [(c, c.scores.get(cast_id)) for c in cards if self.weak(c.scores.get(cast_id))]

    def timeline(self) -> list[dict]:
        """Per person (page order): ``{"person", "identity_id", "segments"}`` (``person``: the
        card's label, so a rename shows before screentime is re-materialized), each segment with
        ``left``/``width`` in percent of the episode for drawing."""
        d = max(self.duration_s, 1e-6)
        rows: dict[int, dict] = {}
        order = {c.identity_id: i for i, c in enumerate(self.cards)}
        labels = {c.identity_id: c.label for c in self.cards}
        for s in self.segments:
            row = rows.setdefault(s.identity_id, {"person": labels.get(s.identity_id, s.person),
                                                  "identity_id": s.identity_id, "segments": []})
            # at least 0.05 % wide (a pixel at the widest zoom), so a short one can be clicked
            row["segments"].append({"start_s": s.start_s, "end_s": s.end_s, "shot_id": s.shot_id,
                                    "track_ids": s.track_ids, "left": 100 * s.start_s / d,
                                    "width": max(0.05, 100 * (s.end_s - s.start_s) / d)})
        return sorted(rows.values(), key=lambda r: order.get(r["identity_id"], 1 << 30))


# Parsed summaries of large manifest files, per store and key, kept while the file is unchanged
# (same size and mtime locally, same ETag on S3): a page of an episode with thousands of tracks
# must not re-read tracks.jsonl (every detection of every track) on each request.
_CACHE: dict[tuple[int, str], tuple[str, object]] = {}


def stamp(store: ArtifactStore, key: str) -> str:
    """What changes when the stored file changes: size and mtime locally, the ETag on S3."""
    if isinstance(store, LocalStore):
        st = store.path(key).stat()
        return f"{st.st_size}-{st.st_mtime_ns}"
    head = store.head(key)  # S3Store
    return head["ETag"] if head else ""


def _cached(store: ArtifactStore, ep_id: str, name: str, parse):
    key = store.artifact_key(ep_id, name)
    current = stamp(store, key)
    hit = _CACHE.get((id(store), key))
    if hit is not None and hit[0] == current:
        return hit[1]
    value = parse(store.read_file(ep_id, name))
    _CACHE[(id(store), key)] = (current, value)
    return value


def _lines(data: bytes):
    return (json.loads(line) for line in data.decode().splitlines() if line.strip())


def track_summaries(store: ArtifactStore, ep_id: str) -> dict[int, dict]:
    """track id -> ``{shot_id, start_frame, end_frame, start_ts, end_ts}`` from tracks.jsonl
    (cached while the file is unchanged)."""
    keep = ("shot_id", "start_frame", "end_frame", "start_ts", "end_ts")
    return _cached(store, ep_id, "tracks.jsonl", lambda data: {
        r["track_id"]: {k: r[k] for k in keep} for r in _lines(data)})


def track_faces(store: ArtifactStore, ep_id: str) -> tuple[list[int], dict[int, list[int]]]:
    """``(face id of each row of the aligned faces, track id -> its face ids)`` from
    faces.jsonl (cached while the file is unchanged)."""
    def parse(data: bytes):
        rows = [(r["face_id"], r["track_id"]) for r in _lines(data)]
        by_track: dict[int, list[int]] = {}
        for face, track in rows:
            by_track.setdefault(track, []).append(face)
        return [f for f, _ in rows], by_track
    return _cached(store, ep_id, "faces.jsonl", parse)


def warm_caches(store: ArtifactStore, instance: DagsterInstance) -> int:
    """Parse every registered episode's track and face summaries once (what the first visit of
    an episode page would otherwise wait for: ``tracks.jsonl`` holds every detection of every
    track); returns how many episodes were read. Episodes not materialized, or whose files
    cannot be read, are left to their page to report."""
    n = 0
    for ep in sorted(instance.get_dynamic_partitions(EPISODES_PARTITION)):
        try:
            validate_ep_id(ep)
            if store.exists(store.artifact_key(ep, "tracks.jsonl")):
                track_summaries(store, ep)
                if store.exists(store.artifact_key(ep, "faces.jsonl")):
                    track_faces(store, ep)
                n += 1
        except Exception:  # noqa: BLE001  (a warm-up: the page itself says what is wrong)
            continue
    return n


def check_episode(instance: DagsterInstance, ep_id: str) -> str:
    """A valid, registered ep_id.

    Raises:
        InvalidEpIdError: bad grammar. NotFoundError: not a registered episode partition.
    """
    ep_id = validate_ep_id(ep_id)
    if not instance.has_dynamic_partition(EPISODES_PARTITION, ep_id):
        raise NotFoundError(
            f"episode {ep_id!r} is not registered; process it first with `screenalytics run "
            f"VIDEO --ep-id {ep_id}` (or upload videos/{ep_id}/episode.mp4 for the sensor)")
    return ep_id


def _read_json(store: ArtifactStore, ep_id: str, name: str) -> dict | list | None:
    key = store.artifact_key(ep_id, name)
    return json.loads(store.get(key)) if store.exists(key) else None


def episode_view(store: ArtifactStore, instance: DagsterInstance, ep_id: str) -> EpisodeView:
    """The review page of a registered episode.

    Raises:
        InvalidEpIdError, NotFoundError: see :func:`check_episode`.
        NotMaterializedError: identities (or tracks) were not materialized yet.
        ReviewError: the edits file is malformed.
    """
    ep_id = check_episode(instance, ep_id)
    for name in ("identities.json", "tracks_meta.json"):
        if not store.exists(store.artifact_key(ep_id, name)):
            raise NotMaterializedError(
                f"episode {ep_id} has not been materialized yet ({name} is missing): run "
                f"`screenalytics run --ep-id {ep_id}` or materialize it in the Dagster UI, then "
                "reload this page")
    spans = {t: (r["start_frame"], r["end_frame"])
             for t, r in track_summaries(store, ep_id).items()}
    review, _, cast_ids = current_review(store, ep_id, spans)
    raw = read_edits(store, ep_id)
    links = _read_json(store, ep_id, "cast_links.json")
    report = _read_json(store, ep_id, "screentime.json")
    seconds = {p["identity_id"]: p["seconds"] for p in (report or {}).get("people", [])}
    meta = json.loads(store.read_file(ep_id, "tracks_meta.json"))
    segments = (load_segments(lambda n: store.read_file(ep_id, n))
                if store.exists(store.artifact_key(ep_id, "segments.json")) else [])
    cards = [Card(i.identity_id, i.name or i.cast_id or f"id_{i.identity_id:02d}", i.name,
                  i.cast_id, i.link_source, i.score, i.suggestions[:5],
                  seconds.get(i.identity_id), i.track_ids,
                  {s["cast_id"]: s["score"] for s in i.suggestions}) for i in review.identities]
    cards.sort(key=lambda c: (-(c.seconds or 0.0), c.identity_id))
    edits = json.loads(raw).get("edits", []) if raw else []
    return EpisodeView(ep_id, cards, edits_version(raw),
                       links.get("edits_version") if links else None,
                       # the facebank's cast, else the cast cast_links was linked against
                       float(meta["video"]["duration_s"]), segments,
                       cast_ids or (links or {}).get("cast_ids", []), edits,
                       review.skipped, [float(s["start_ts"]) for s in meta.get("shots", [])[1:]],
                       links.get("cast_link_thresh") if links else None)


@dataclass
class TrackView:
    """One track: its span, its sampled faces and the identity it is in now."""

    ep_id: str
    track_id: int
    shot_id: int
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    face_ids: list[int]
    identity_id: int
    identity_label: str
    identities: list[tuple[int, str]]
    version: str


def track_view(store: ArtifactStore, instance: DagsterInstance, ep_id: str,
               track_id: int) -> TrackView:
    """A track's page.

    Raises:
        NotFoundError: no such track, or it was deleted by an edit (names the fix).
        NotMaterializedError: see :func:`episode_view`.
    """
    view = episode_view(store, instance, ep_id)
    tracks = track_summaries(store, view.ep_id)
    if track_id not in tracks:
        raise NotFoundError(f"episode {view.ep_id} has no track {track_id} (it has tracks "
                            f"0-{len(tracks) - 1})")
    owner = next((c for c in view.cards if track_id in c.track_ids), None)
    if owner is None:
        raise NotFoundError(
            f"track {track_id} of {view.ep_id} was deleted by a review edit; undo that edit on "
            "the episode page to bring it back")
    t = tracks[track_id]
    return TrackView(view.ep_id, track_id, t["shot_id"], t["start_frame"], t["end_frame"],
                     t["start_ts"], t["end_ts"],
                     track_faces(store, view.ep_id)[1].get(track_id, []),
                     owner.identity_id, owner.label,
                     [(c.identity_id, c.label) for c in view.cards], view.version)


def on_screen_together_pairs(store: ArtifactStore, view: EpisodeView,
                             identity_ids: list[int]) -> list[tuple[Card, Card]]:
    """Pairs of these identities that are on screen at the same time (a track of each in one
    frame span; ``core.review.on_screen_together``): they cannot be one cast member.

    Raises:
        NotFoundError: an identity that does not exist now.
    """
    spans = {t: (r["start_frame"], r["end_frame"])
             for t, r in track_summaries(store, view.ep_id).items()}
    cards = [view.card(i) for i in dict.fromkeys(identity_ids)]
    return [(a, b) for n, a in enumerate(cards) for b in cards[n + 1:]
            if on_screen_together(a.track_ids, b.track_ids, spans)]


def thumb_key(store: ArtifactStore, ep_id: str, track_id: int) -> str:
    """Storage key of a track's representative thumbnail (see ``core.reps.rep_thumb_name``)."""
    return store.artifact_key(ep_id, rep_thumb_name(track_id))


def face_jpeg(store: ArtifactStore, ep_id: str, face_id: int) -> bytes:
    """A sampled face's aligned 112x112 crop as JPEG: its bytes as stored in
    ``faces_aligned.zip`` (only that member is read), or, for an episode materialized before the
    archive, its row of ``faces_aligned.npy`` coded at quality 85.

    Raises:
        NotFoundError: no such face.
        ArtifactError: the faces were not materialized.
    """
    import cv2
    import numpy as np

    from ..core.artifacts import JpegRows, open_aligned

    row = {f: i for i, f in enumerate(track_faces(store, ep_id)[0])}.get(face_id)
    if row is None:
        raise NotFoundError(f"episode {ep_id} has no face {face_id}")
    rows = open_aligned(store.reader(ep_id))
    if isinstance(rows, JpegRows):
        try:
            return rows.jpeg(row)
        finally:
            rows.close()
    _, buf = cv2.imencode(".jpg", np.asarray(rows[row]), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes()


@dataclass
class EpisodeRow:
    """A row of the episode list: ``status`` is ``materialized``, ``stale`` (edits not yet in
    screen time), ``running`` or ``not materialized``."""

    ep_id: str
    status: str
    people: int | None


def episodes_in_flight(instance: DagsterInstance) -> set[str]:
    """Partitions (ep_ids) with a run queued or in progress on the instance, whoever started
    it (the app, the CLI, the sensor, the Dagster UI)."""
    runs = instance.get_runs(RunsFilter(statuses=[
        DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED]))
    return {r.tags["dagster/partition"] for r in runs if "dagster/partition" in r.tags}


def episode_rows(store: ArtifactStore, instance: DagsterInstance,
                 running: set[str]) -> list[EpisodeRow]:
    """Every registered episode with its status; ``running``: episodes with a run in flight."""
    rows = []
    for ep in sorted(instance.get_dynamic_partitions(EPISODES_PARTITION)):
        try:
            validate_ep_id(ep)
        except ScreenalyticsError:
            continue
        report = _read_json(store, ep, "screentime.json")
        links = _read_json(store, ep, "cast_links.json")
        if ep in running:
            status = "running"
        elif report is None or links is None:
            status = "not materialized"
        elif links.get("edits_version") != edits_version(read_edits(store, ep)):
            status = "stale"
        else:
            status = "materialized"
        rows.append(EpisodeRow(ep, status, len(report["people"]) if report else None))
    return rows


def season_keys(instance: DagsterInstance) -> list[str]:
    """Every season with a registered episode (``{show}-s{NN}``), sorted."""
    keys = set()
    for ep in instance.get_dynamic_partitions(EPISODES_PARTITION):
        try:
            keys.add(season_of(validate_ep_id(ep)))
        except ScreenalyticsError:
            continue
    return sorted(keys)


@dataclass
class SeasonRow:
    """One person of a season roll-up, named.

    Attributes:
        label: the name to show: a reviewer's display name, else the cast id, else ``unnamed
            ({ep_id} id_NN)`` (an identity is only known within its episode). person: the
            roll-up's key (cast id, or ``{ep_id}:id_NN`` for an identity linked to no cast
            member). cast_id: the cast member (``None``: not linked).
            episode: the one episode of an identity not linked to the cast (``None`` for a
            cast member). by_episode: ep_id -> seconds. total_s: seconds in the season.
    """

    label: str
    person: str
    cast_id: str | None
    episode: str | None
    by_episode: dict[str, float]
    total_s: float


@dataclass
class SeasonView:
    """A season page: the roll-up's people with names (``rows``, most seconds first), its
    episodes, and the season's registered episodes (``registered``; some may not be in the
    roll-up yet). ``rows`` is empty when no roll-up is materialized."""

    key: str
    show: str
    season: int
    episodes: list[str]
    registered: list[str]
    rows: list[SeasonRow]

    @property
    def materialized(self) -> bool:
        return bool(self.episodes)

    @property
    def missing(self) -> list[str]:
        """Registered episodes that are not in the roll-up."""
        return [e for e in self.registered if e not in self.episodes]

    @property
    def max_total(self) -> float:
        return max((r.total_s for r in self.rows), default=0.0)

    def csv(self) -> str:
        """The table as CSV: ``person`` (the name), ``cast_id``, one column of seconds per
        episode, ``total_s``."""
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["person", "cast_id", *self.episodes, "total_s"])
        for r in self.rows:
            w.writerow([r.label, r.cast_id or "", *(f"{r.by_episode.get(e, 0.0):.3f}"
                                                    for e in self.episodes), f"{r.total_s:.3f}"])
        return buf.getvalue()


def season_view(store: ArtifactStore, instance: DagsterInstance, key: str) -> SeasonView:
    """The season page of ``key``: the materialized roll-up with each person's name from the
    episodes' current ``screentime.json`` (so a rename shows once the episode's screen time is
    re-materialized, even before the roll-up is).

    Raises:
        ScreenalyticsError: ``key`` is not ``{show}-s{NN}``. NotFoundError: no episode of that
            season is registered.
    """
    show, season = parse_season_key(key)
    registered = season_episodes(instance, key)
    if not registered:
        raise NotFoundError(f"no episode of season {key} is registered; process one with "
                            f"`screenalytics run VIDEO --ep-id {show}-s{season:02d}e01`")
    skey = store.season_key(show, season, "season_screentime.json")
    rollup = json.loads(store.get(skey)) if store.exists(skey) else {"episodes": [],
                                                                      "people": []}
    names: dict[tuple[str, int], str] = {}   # (ep_id, identity id) -> reviewer's name
    cast_names: dict[str, str] = {}          # cast id -> a reviewer's name for it
    for ep in rollup["episodes"]:
        for p in (_read_json(store, ep, "screentime.json") or {}).get("people", []):
            if p.get("name"):
                names[(ep, p["identity_id"])] = p["name"]
                if p.get("cast_id"):
                    cast_names.setdefault(p["cast_id"], p["name"])
    rows = []
    for p in rollup["people"]:
        person = p["person"]
        ep, _, ident = person.rpartition(":id_")
        if ep and ident.isdigit():  # an identity linked to no cast member
            name = names.get((ep, int(ident)))
            label = f"{name} ({ep})" if name else f"unnamed ({ep} id_{int(ident):02d})"
            rows.append(SeasonRow(label, person, None, ep, p["by_episode"], p["total_s"]))
        else:
            rows.append(SeasonRow(cast_names.get(person, person), person, person, None,
                                  p["by_episode"], p["total_s"]))
    return SeasonView(key, show, season, list(rollup["episodes"]), registered, rows)


def season_summaries(store: ArtifactStore, instance: DagsterInstance) -> list[dict]:
    """Per season with a registered episode: ``{"key", "registered", "rolled_up"}`` (episodes
    registered; episodes in the materialized roll-up, ``[]`` when none)."""
    out = []
    for key in season_keys(instance):
        show, season = parse_season_key(key)
        skey = store.season_key(show, season, "season_screentime.json")
        rolled = json.loads(store.get(skey))["episodes"] if store.exists(skey) else []
        out.append({"key": key, "registered": season_episodes(instance, key),
                    "rolled_up": rolled})
    return out
