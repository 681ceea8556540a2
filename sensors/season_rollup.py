"""Season roll-ups kept up to date by the daemon: ``season_rollup_sensor``.

The season roll-up (``season_screentime``, one partition per ``{show}-s{NN}``) reads the
``screentime`` of every registered episode of its season. This sensor runs it (the season job) in
two cases.

**After a season backfill.** A season backfill (``screenalytics backfill``,
``screenalytics_assets.backfill``) covers the episode assets of the season's episodes; Dagster's
public way to create a backfill cannot put the roll-up in the same backfill (it depends on every
episode through ``AllPartitionMapping``, so a backfill reaching it from the episodes would roll up
every season). So the backfill carries the tag ``screenalytics/rollup=<season>``, and once it has
completed with every run successful this sensor requests one roll-up run for that season:

* the cursor holds the backfills whose roll-up was requested, and ``run_key =
  "rollup-{backfill_id}"`` (Dagster's sensor daemon never launches a run key twice) makes sure of
  it: a backfill gets one roll-up, however many ticks see it;
* a backfill that ended with failures, was canceled, or is still running requests nothing here
  (the episodes are not all there); ``screenalytics backfill --failed-only`` submits the failed
  episodes again, with the roll-up;
* the roll-up run carries ``screenalytics/backfill=<backfill_id>``, so ``--wait`` and the UI
  (filter runs by tag) find it beside the backfill's own runs.

**Whenever an episode's screen time changed.** A season whose table is older than the newest
``screentime`` of its episodes (an episode uploaded through the upload sensor, re-run by the
automation sensor after a settings edit, edited in review, re-run from the CLI) is rolled up again:

* behind: the newest ``screentime`` materialization among the season's episodes has a higher
  storage id than the one the season's latest roll-up had read (recorded in its metadata,
  ``staleness.SCREENTIME_READ``); a season rolled up since (by a review's own season run, say) is
  not run twice;
* it waits while a run of the season or of one of its episodes is queued or in progress, while a
  season backfill with roll-up for it is not finished (that backfill's roll-up covers it), and for
  ``SETTLE_S`` seconds after the newest ``screentime`` (a review's season run, or the next episode
  of a batch, usually follows within them): several episodes finishing together give one roll-up;
* ``run_key = "rollup-{season}@{storage id}"``: one roll-up per state of the season's episodes,
  even if it fails (a new screen time gives it another try);
* cheap per tick: the cursor holds the last ``screentime`` storage id seen and the seasons still
  waiting; only their seasons are looked at (every season on the first tick).

Declarative automation (an ``AutomationCondition`` on ``season_screentime``) cannot say this: the
condition sees the roll-up's dependency through ``AllPartitionMapping``, so a new screen time in
one episode would mark every season of every show as updated, and any episode missing or in
progress anywhere would block them all. The decisions (:func:`rollup_requests`,
:func:`freshness_requests`) are pure; only the tick reads the instance.
"""

# No ``from __future__ import annotations``: Dagster reads the sensor's parameters from their
# annotations.

import json
import time
from dataclasses import dataclass

from dagster import (
    AssetRecordsFilter,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from screenalytics_assets.core.errors import InvalidEpIdError
from screenalytics_assets.partitions import SEASONS_PARTITION, season_episodes, season_of
from screenalytics_assets.staleness import (
    SCREENTIME,
    SEASON_SCREENTIME,
    newest_materialization,
    partitions_in_progress,
    season_read_up_to,
)

SENSOR_NAME = "season_rollup_sensor"
#: backfill tag naming the season whose roll-up follows the backfill
ROLLUP_TAG = "screenalytics/rollup"
#: roll-up run tag naming the season backfill it follows
FOLLOWS_TAG = "screenalytics/backfill"
#: roll-up run tag: the newest screentime storage id among the season's episodes it follows
UPDATE_TAG = "screenalytics/screentime_storage_id"
#: how many of the newest backfills each tick looks at
RECENT_BACKFILLS = 100
#: Backfill statuses (``BulkActionStatus`` values) after which the daemon does nothing more.
BACKFILL_DONE = frozenset({"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED",
                           "CANCELED"})
#: seconds a season's roll-up waits after the newest screentime of its episodes (see above)
SETTLE_S = 10.0


@dataclass(frozen=True)
class BackfillState:
    """What the sensor needs of a backfill: its id, Dagster status value
    (``BulkActionStatus``: ``REQUESTED``, ``COMPLETED_SUCCESS``...) and tags."""

    backfill_id: str
    status: str
    tags: dict[str, str]


def rollup_key(backfill_id: str) -> str:
    """The run key of the roll-up that follows backfill ``backfill_id``."""
    return f"rollup-{backfill_id}"


def rollup_requests(backfills: list[BackfillState], handled: set[str] = frozenset()
                    ) -> list[RunRequest]:
    """One season-job run request per backfill that asked for a roll-up (``ROLLUP_TAG``),
    completed with every run successful (status ``COMPLETED_SUCCESS``) and is not in
    ``handled`` (backfill ids whose roll-up was requested by an earlier tick)."""
    return [RunRequest(run_key=rollup_key(b.backfill_id), partition_key=b.tags[ROLLUP_TAG],
                       tags={FOLLOWS_TAG: b.backfill_id})
            for b in backfills
            if b.tags.get(ROLLUP_TAG) and b.status == "COMPLETED_SUCCESS"
            and b.backfill_id not in handled]


def handled_backfills(backfills: list[BackfillState], handled: set[str],
                      requests: list[RunRequest]) -> list[str]:
    """The handled backfill ids for the next cursor: those still among ``backfills`` (the recent
    ones), with those of this tick's ``requests``, sorted."""
    recent = {b.backfill_id for b in backfills}
    done = (handled & recent) | {r.tags[FOLLOWS_TAG] for r in requests if FOLLOWS_TAG in r.tags}
    return sorted(done)


@dataclass(frozen=True)
class SeasonState:
    """What the sensor needs of a season partition to judge its roll-up.

    Attributes:
        key: the season partition key (``show-s01``).
        newest: storage id of the newest ``screentime`` materialization among its episodes
            (None: none has one). newest_at: its time (seconds since the epoch).
        read_up_to: the newest ``screentime`` storage id its latest roll-up had read (None:
            never rolled up; see ``staleness.season_read_up_to``).
        busy: a run of the season or of one of its episodes is queued or in progress, or a
            season backfill with its roll-up is not finished.
    """

    key: str
    newest: int | None
    newest_at: float = 0.0
    read_up_to: int | None = None
    busy: bool = False


def freshness_requests(states: list[SeasonState], now: float,
                       skip: frozenset[str] | set[str] = frozenset()
                       ) -> tuple[list[RunRequest], list[str]]:
    """The roll-ups of the seasons whose table is behind their episodes' screen time, and the
    seasons that are behind but must wait (busy, or the newest screen time is less than
    ``SETTLE_S`` seconds older than ``now``). ``skip``: seasons whose roll-up is requested
    otherwise this tick (after their backfill)."""
    requests, waiting = [], []
    for state in states:
        if state.key in skip or state.newest is None:
            continue
        if state.read_up_to is not None and state.newest <= state.read_up_to:
            continue  # the table has read the newest screen time
        if state.busy or now - state.newest_at < SETTLE_S:
            waiting.append(state.key)
            continue
        requests.append(RunRequest(run_key=f"rollup-{state.key}@{state.newest}",
                                   partition_key=state.key,
                                   tags={UPDATE_TAG: str(state.newest)}))
    return requests, waiting


def load_cursor(cursor: str | None) -> dict:
    """The cursor as ``{"backfills": [ids], "after": storage id or None, "waiting": [seasons]}``;
    an empty, unreadable or older (a JSON list of backfill ids) cursor keeps what it can."""
    out = {"backfills": [], "after": None, "waiting": []}
    try:
        doc = json.loads(cursor) if cursor else None
    except ValueError:
        doc = None
    if isinstance(doc, list):
        out["backfills"] = [str(b) for b in doc]
    elif isinstance(doc, dict):
        out["backfills"] = [str(b) for b in doc.get("backfills") or []]
        out["after"] = doc["after"] if isinstance(doc.get("after"), int) else None
        out["waiting"] = [str(k) for k in doc.get("waiting") or []]
    return out


def skip_message(waiting: list[str]) -> str:
    """The tick history's reason for a tick that requested nothing."""
    msg = "no season backfill waiting for its roll-up, and no season roll-up behind its episodes"
    if waiting:
        msg += (f"; waiting to roll up {', '.join(sorted(waiting))} (runs of it in progress, or "
                f"screen time changed in the last {SETTLE_S:.0f} s)")
    return msg


def build_season_rollup_sensor(job_name: str, minimum_interval_seconds: int = 30
                               ) -> SensorDefinition:
    """``season_rollup_sensor``: runs ``job_name`` (the season job) for a season after its
    season backfill succeeded, and whenever the season's table is behind its episodes' screen
    time (see the module docstring). Running by default: it only rolls up seasons whose episodes
    changed, and without it a season backfill's roll-up never runs."""

    @sensor(name=SENSOR_NAME, job_name=job_name,
            minimum_interval_seconds=minimum_interval_seconds,
            default_status=DefaultSensorStatus.RUNNING,
            description="Runs a season's roll-up (season_screentime) once its season backfill "
                        "has completed successfully, and whenever an episode's screen time is "
                        "newer than the season's table.")
    def season_rollup_sensor(context: SensorEvaluationContext):
        instance = context.instance
        cursor = load_cursor(context.cursor)
        # status and tags are read by attribute: Dagster's backfill type is not public API
        states = [BackfillState(b.backfill_id, b.status.value, dict(b.tags))
                  for b in instance.get_backfills(limit=RECENT_BACKFILLS)]
        handled = set(cursor["backfills"])
        requests = rollup_requests(states, handled)
        after, candidates = _changed_seasons(instance, cursor["after"])
        seasons = _season_states(instance, candidates | set(cursor["waiting"]), states)
        fresh, waiting = freshness_requests(seasons, time.time(),
                                            {r.partition_key for r in requests})
        for r in requests:
            context.log.info(f"{r.partition_key}: backfill {r.tags[FOLLOWS_TAG]} completed; "
                             "requesting the season roll-up")
        for r in fresh:
            context.log.info(f"{r.partition_key}: an episode's screen time is newer than the "
                             "season table; requesting the season roll-up")
        requests += fresh
        next_cursor = json.dumps({"backfills": handled_backfills(states, handled, requests),
                                  "after": after, "waiting": sorted(waiting)})
        if not requests:
            return SensorResult(skip_reason=SkipReason(skip_message(waiting)),
                                cursor=next_cursor)
        return SensorResult(run_requests=requests, cursor=next_cursor)

    return season_rollup_sensor


def _changed_seasons(instance, after: int | None) -> tuple[int | None, set[str]]:
    """The newest ``screentime`` storage id, and the registered seasons with an episode whose
    screentime was materialized after storage id ``after`` (every season when None)."""
    seasons = set(instance.get_dynamic_partitions(SEASONS_PARTITION))
    newest = instance.fetch_materializations(AssetRecordsFilter(asset_key=SCREENTIME),
                                             limit=1).records
    last = newest[0].storage_id if newest else after
    if after is None:
        return last, seasons
    changed: set[str] = set()
    page = None
    while True:
        result = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=SCREENTIME, after_storage_id=after), limit=500,
            cursor=page)
        for record in result.records:
            try:
                changed.add(season_of(record.asset_materialization.partition or ""))
            except InvalidEpIdError:
                continue  # a partition key of another shape: no season
        if not result.has_more:
            break
        page = result.cursor
    return last, changed & seasons


def _season_states(instance, keys: set[str], backfills: list[BackfillState]
                   ) -> list[SeasonState]:
    """:class:`SeasonState` of each registered season among ``keys``."""
    registered = set(instance.get_dynamic_partitions(SEASONS_PARTITION))
    keys = sorted(keys & registered)
    if not keys:
        return []
    running = partitions_in_progress(instance)
    backfilling = {b.tags[ROLLUP_TAG] for b in backfills
                   if b.tags.get(ROLLUP_TAG) and b.status not in BACKFILL_DONE}
    out = []
    for key in keys:
        episodes = season_episodes(instance, key)
        newest = newest_materialization(instance, SCREENTIME, episodes)
        rolled = newest_materialization(instance, SEASON_SCREENTIME, [key])
        out.append(SeasonState(
            key, None if newest is None else newest.storage_id,
            0.0 if newest is None else newest.timestamp,
            None if rolled is None else season_read_up_to(rolled),
            busy=key in running or key in backfilling or bool(running & set(episodes))))
    return out
