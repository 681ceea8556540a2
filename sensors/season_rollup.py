"""The season roll-up after a season backfill: ``season_rollup_sensor``.

A season backfill (``screenalytics backfill``, ``screenalytics_assets.backfill``) covers the
episode assets of the season's episodes. Its season roll-up (``season_screentime``) must run
after them, and Dagster's public way to create a backfill cannot put both in one backfill (the
roll-up depends on every episode through ``AllPartitionMapping``, so a backfill reaching it from
the episodes would roll up every season). So the backfill carries the tag
``screenalytics/rollup=<season>``, and this sensor requests one run of the season job for that
season once the backfill has completed with every run successful:

* ``run_key = "rollup-{backfill_id}"``: Dagster's sensor daemon never launches a run key twice,
  so a backfill gets one roll-up, however many ticks see it;
* a backfill that ended with failures, was canceled, or is still running requests nothing (the
  episodes are not all there); ``screenalytics backfill --failed-only`` submits the failed
  episodes again, with the roll-up;
* the roll-up run carries ``screenalytics/backfill=<backfill_id>``, so ``--wait`` and the UI
  (filter runs by tag) find it beside the backfill's own runs.

The scan (:func:`rollup_requests`) is pure; only the tick reads the instance.
"""

# No ``from __future__ import annotations``: Dagster reads the sensor's parameters from their
# annotations.

from dataclasses import dataclass

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
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


def rollup_requests(backfills: list[BackfillState]) -> list[RunRequest]:
    """One season-job run request per backfill that asked for a roll-up (``ROLLUP_TAG``) and
    completed with every run successful (status ``COMPLETED_SUCCESS``)."""
    return [RunRequest(run_key=rollup_key(b.backfill_id), partition_key=b.tags[ROLLUP_TAG],
                       tags={FOLLOWS_TAG: b.backfill_id})
            for b in backfills
            if b.tags.get(ROLLUP_TAG) and b.status == "COMPLETED_SUCCESS"]


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
        requests = rollup_requests(states)
        if not requests:
            yield SkipReason("no season backfill waiting for its roll-up")
            return
        yield from requests

    return season_rollup_sensor
