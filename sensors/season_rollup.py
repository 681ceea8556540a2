"""The season roll-up after a season backfill: ``season_rollup_sensor``.

A season backfill (``screenalytics backfill``, ``screenalytics_assets.backfill``) covers the
episode assets of the season's episodes. Its season roll-up (``season_screentime``) must run
after them, and Dagster's public way to create a backfill cannot put both in one backfill (the
roll-up depends on every episode through ``AllPartitionMapping``, so a backfill reaching it from
the episodes would roll up every season). So the backfill carries the tag
``screenalytics/rollup=<season>``, and this sensor requests one run of the season job for that
season once the backfill has completed with every run successful:

* the cursor holds the backfills whose roll-up was requested, and ``run_key =
  "rollup-{backfill_id}"`` (Dagster's sensor daemon never launches a run key twice) makes sure of
  it: a backfill gets one roll-up, however many ticks see it;
* a backfill that ended with failures, was canceled, or is still running requests nothing (the
  episodes are not all there); ``screenalytics backfill --failed-only`` submits the failed
  episodes again, with the roll-up;
* the roll-up run carries ``screenalytics/backfill=<backfill_id>``, so ``--wait`` and the UI
  (filter runs by tag) find it beside the backfill's own runs.

The scan (:func:`rollup_requests`) is pure; only the tick reads the instance.
"""

# No ``from __future__ import annotations``: Dagster reads the sensor's parameters from their
# annotations.

import json
from dataclasses import dataclass

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

SENSOR_NAME = "season_rollup_sensor"
#: backfill tag naming the season whose roll-up follows the backfill
ROLLUP_TAG = "screenalytics/rollup"
#: roll-up run tag naming the season backfill it follows
FOLLOWS_TAG = "screenalytics/backfill"
#: how many of the newest backfills each tick looks at
RECENT_BACKFILLS = 100


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


def next_cursor(backfills: list[BackfillState], handled: set[str],
                requests: list[RunRequest]) -> str:
    """The cursor after a tick: JSON list of the handled backfill ids still among
    ``backfills`` (the recent ones), with those of this tick's ``requests``."""
    recent = {b.backfill_id for b in backfills}
    done = (handled & recent) | {r.tags[FOLLOWS_TAG] for r in requests}
    return json.dumps(sorted(done))


def build_season_rollup_sensor(job_name: str, minimum_interval_seconds: int = 30
                               ) -> SensorDefinition:
    """``season_rollup_sensor``: runs ``job_name`` (the season job) for a season after its
    season backfill succeeded. Running by default: it only acts on backfills a user submitted,
    and without it a season backfill's roll-up never runs."""

    @sensor(name=SENSOR_NAME, job_name=job_name,
            minimum_interval_seconds=minimum_interval_seconds,
            default_status=DefaultSensorStatus.RUNNING,
            description="Runs a season's roll-up (season_screentime) once its season backfill "
                        "has completed successfully.")
    def season_rollup_sensor(context: SensorEvaluationContext):
        # status and tags are read by attribute: Dagster's backfill type is not public API
        states = [BackfillState(b.backfill_id, b.status.value, dict(b.tags))
                  for b in context.instance.get_backfills(limit=RECENT_BACKFILLS)]
        handled = set(json.loads(context.cursor)) if context.cursor else set()
        requests = rollup_requests(states, handled)
        cursor = next_cursor(states, handled, requests)
        if not requests:
            return SensorResult(skip_reason=SkipReason(
                "no season backfill waiting for its roll-up"), cursor=cursor)
        return SensorResult(run_requests=requests, cursor=cursor)

    return season_rollup_sensor
