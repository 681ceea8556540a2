"""What a running ``dagster-daemon`` does for us, read back from the Dagster instance.

* :func:`daemon_alive`: is a daemon posting heartbeats to this instance (the backfill and sensor
  daemons only run inside ``dagster-daemon``, so without one a backfill never starts);
* :func:`backfill_progress` / :func:`wait_for_backfill`: a season backfill's partitions done,
  failed and still to go, from the runs the backfill daemon launched (run tag
  ``dagster/backfill``);
* :func:`failed_partitions`: the partitions whose last run failed, to submit them again.

Only the public ``DagsterInstance`` API is used (daemon heartbeats, backfills, runs filtered by
tag, run event logs); Dagster's backfill and heartbeat types are read by attribute, never
imported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from sensors.season_rollup import BACKFILL_DONE, FOLLOWS_TAG

from .staleness import PARTITION_TAG

BACKFILL_TAG = "dagster/backfill"
#: Dagster posts a heartbeat from each daemon every 30 s (the default heartbeat interval of
#: its daemon controller); four missed beats on a busy machine still count as alive.
HEARTBEAT_TOLERANCE_S = 120.0
FAILED_RUN = {DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
RUN_DONE = FAILED_RUN | {DagsterRunStatus.SUCCESS}


def daemon_alive(instance: DagsterInstance, daemon_type: str = "BACKFILL",
                 tolerance_s: float = HEARTBEAT_TOLERANCE_S, now: float | None = None) -> bool:
    """True when a ``dagster-daemon`` posted a ``daemon_type`` heartbeat (``BACKFILL``,
    ``SENSOR``, ``ASSET``...) to ``instance`` in the last ``tolerance_s`` seconds."""
    beat = instance.get_daemon_heartbeats().get(daemon_type)
    return beat is not None and (now or time.time()) - beat.timestamp <= tolerance_s


def no_daemon_message(instance: DagsterInstance) -> str:
    """What to tell a user whose instance has no live daemon: how to start one."""
    return (f"no dagster-daemon is running for the Dagster instance in {instance.root_directory}, "
            "so nothing will launch this backfill's runs. Start one with `screenalytics serve` "
            "(the UI and the daemon, same data root and settings) and the backfill starts by "
            "itself; add --wait to follow it to the end.")


@dataclass
class BackfillProgress:
    """A backfill's state. ``status``: Dagster's ``BulkActionStatus`` value (``REQUESTED``,
    ``COMPLETED_SUCCESS``, ``COMPLETED_FAILED``...); ``done``/``failed``/``running``: partition
    keys whose latest run of the backfill succeeded / failed or was canceled / has not ended;
    ``errors``: partition key -> the failed step and its message. ``rollup``: the season key
    whose roll-up run ``season_rollup_sensor`` launches after the backfill succeeded (it is
    one of ``partitions``), or None."""

    backfill_id: str
    status: str
    partitions: list[str]
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    rollup: str | None = None

    @property
    def finished(self) -> bool:
        """The daemon has nothing more to do for this backfill (nor for its roll-up)."""
        if self.status not in BACKFILL_DONE:
            return False
        if self.rollup and self.status == "COMPLETED_SUCCESS":
            return self.rollup in self.done or self.rollup in self.failed
        return True

    @property
    def succeeded(self) -> bool:
        return (self.status == "COMPLETED_SUCCESS" and not self.failed
                and (self.rollup is None or self.rollup in self.done))

    def line(self, label: str = "episodes") -> str:
        """``backfill ab12cd: 1/2 episodes done, 1 running, 0 failed (REQUESTED)``."""
        return (f"backfill {self.backfill_id}: {len(self.done)}/{len(self.partitions)} {label} "
                f"done, {len(self.running)} running, {len(self.failed)} failed ({self.status})")


def user_message(error) -> str:
    """``ErrorClass: last line of its message`` of a step failure's error
    (``SerializableErrorInfo``), looking through Dagster's wrapper errors to the user's."""
    while error is not None and error.cause is not None and "dagster" in error.cls_name.lower():
        error = error.cause
    if error is None:
        return "unknown error"
    return f"{error.cls_name}: {error.message.strip().splitlines()[-1] if error.message else ''}"


def run_failure(instance: DagsterInstance, run_id: str) -> str:
    """``step: ErrorClass: message`` of a failed run's first failed step, or a pointer to its
    log."""
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        event = entry.dagster_event
        if event is not None and event.step_failure_data is not None:
            return f"{event.step_key}: {user_message(event.step_failure_data.error)}"
    status = instance.get_run_by_id(run_id).status.value.lower()
    return f"run {run_id} {status}; see its log in the UI"


def latest_runs(instance: DagsterInstance, partitions: Iterable[str],
                tags: dict[str, str] | None = None) -> dict[str, object]:
    """Partition key -> its newest run (``DagsterRun``), among runs carrying ``tags``; partitions
    without a run are left out."""
    latest: dict[str, object] = {}
    wanted = set(partitions)
    for run in instance.get_runs(filters=RunsFilter(tags=tags or {})):  # newest first
        key = run.tags.get(PARTITION_TAG)
        if key in wanted and key not in latest:
            latest[key] = run
    return latest


def backfill_progress(instance: DagsterInstance, backfill_id: str, partitions: list[str],
                      rollup: str | None = None) -> BackfillProgress:
    """The state of backfill ``backfill_id`` over ``partitions`` (partition keys), from its runs;
    ``rollup``: the season key among ``partitions`` whose roll-up run follows the backfill (found
    by its ``screenalytics/backfill`` tag, see ``sensors.season_rollup``).

    Raises:
        KeyError: no backfill with this id in ``instance``.
    """
    backfill = instance.get_backfill(backfill_id)
    if backfill is None:
        raise KeyError(f"no backfill {backfill_id!r} in {instance.root_directory}")
    out = BackfillProgress(backfill_id, backfill.status.value, list(partitions), rollup=rollup)
    runs = latest_runs(instance, [k for k in partitions if k != rollup],
                       {BACKFILL_TAG: backfill_id})
    if rollup:
        runs.update(latest_runs(instance, [rollup], {FOLLOWS_TAG: backfill_id}))
    for key in partitions:
        run = runs.get(key)
        if run is None:
            continue
        if run.status == DagsterRunStatus.SUCCESS:
            out.done.append(key)
        elif run.status in FAILED_RUN:
            out.failed.append(key)
            out.errors[key] = run_failure(instance, run.run_id)
        else:
            out.running.append(key)
    return out


def wait_for_backfill(instance: DagsterInstance, backfill_id: str, partitions: list[str],
                      on_progress: Callable[[BackfillProgress], None] | None = None,
                      poll_s: float = 2.0, timeout_s: float | None = None,
                      rollup: str | None = None, every_poll: bool = False) -> BackfillProgress:
    """Poll until the backfill (and its roll-up run, ``rollup``: see :func:`backfill_progress`)
    is finished (see :attr:`BackfillProgress.finished`); call ``on_progress`` with the first
    state and every state that differs from the one before (``every_poll``: with every state,
    e.g. to redraw a clock).

    Raises:
        TimeoutError: still not finished after ``timeout_s`` seconds (None: wait for ever).
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    last = None
    while True:
        progress = backfill_progress(instance, backfill_id, partitions, rollup)
        state = (progress.status, progress.done, progress.failed, progress.running)
        if on_progress is not None and (every_poll or state != last):
            on_progress(progress)
        last = state
        if progress.finished:
            return progress
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{progress.line()} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def failed_partitions(instance: DagsterInstance, partitions: Iterable[str]) -> list[str]:
    """The partition keys whose newest run (of any kind: CLI, sensor, backfill) failed or was
    canceled, in the order given."""
    failed = []
    for key in partitions:
        newest = instance.get_runs(filters=RunsFilter(tags={PARTITION_TAG: key}), limit=1)
        if newest and newest[0].status in FAILED_RUN:
            failed.append(key)
    return failed
