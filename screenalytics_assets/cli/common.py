"""Helpers shared by CLI subcommands: data root, the Dagster instance, running a selection."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ScreenalyticsError

if TYPE_CHECKING:  # Dagster is imported by the commands that run something (cli/__init__.py)
    from dagster import AssetKey, DagsterInstance


# The CLI shows its own progress; Dagster's console logger only reports warnings and errors.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class RunFailedError(ScreenalyticsError):
    """A Dagster run failed; the message carries the failing step's error.

    Attributes:
        materialized: asset keys the run materialized before it failed.
    """

    def __init__(self, message: str, materialized: list["AssetKey"] | None = None) -> None:
        super().__init__(message)
        self.materialized = materialized or []


class EpisodeBusyError(ScreenalyticsError):
    """Another process is already running the same episode on this Dagster instance."""


@contextmanager
def episode_lock(ep_id: str, wait: bool = False) -> Iterator[None]:
    """Hold the episode's run lock while a run of ``ep_id`` writes its video and artifacts.

    Two runs of the same ep_id on one Dagster instance would otherwise both do the whole work and
    overwrite each other's files: the second one sees the first and either refuses
    (:class:`EpisodeBusyError`, naming the process that holds it) or, with ``wait``, waits for it
    to finish and then runs (typically finding nothing stale). The lock is an OS file lock
    (``flock``) on ``$DAGSTER_HOME/locks/{ep_id}.lock``, so a killed process never leaves it
    taken. Runs launched by a daemon are limited per partition by the run queue instead
    (``tag_concurrency_limits`` on ``dagster/partition``; see docs/reliability.md).

    Raises:
        EpisodeBusyError: the lock is held and ``wait`` is false.
    """
    folder = Path(os.environ["DAGSTER_HOME"]) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{ep_id}.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            if not wait:
                raise EpisodeBusyError(
                    f"episode {ep_id} is already being run by {holder}; wait for that run to "
                    "finish, or add --wait to start when it does") from None
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} (since {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)
            fcntl.flock(f, fcntl.LOCK_UN)


def add_common_args(p) -> None:
    p.add_argument("--data-root", help="data root (default: $SCREENALYTICS_DATA_ROOT or ./data)")


def data_root(args) -> Path:
    """The data root from ``--data-root`` or the environment; exported for the definitions."""
    from resources.dagster_storage import data_root_from_env

    root = Path(args.data_root).resolve() if getattr(args, "data_root", None) \
        else Path(data_root_from_env())
    os.environ["SCREENALYTICS_DATA_ROOT"] = str(root)
    return root


def storage_for(args):
    """``(data root, storage resource)``: the storage the environment configures
    (``STORAGE_BACKEND``: the local data root, or the S3 bucket), as every command uses it.

    Raises:
        StorageConfigError: the S3 settings are incomplete.
    """
    from resources.backend import storage_from_env

    root = data_root(args)
    return root, storage_from_env(str(root))


def instance_for(root: Path) -> "DagsterInstance":
    """The local Dagster instance: ``$DAGSTER_HOME``, else ``<data root>/dagster_home``."""
    from dagster import DagsterInstance

    home = Path(os.environ.get("DAGSTER_HOME") or root / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    # Two first runs at once would both create the instance's SQLite schema and collide in its
    # migrations: the first process to take the lock creates it, the others open it.
    with open(home / ".instance.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / "dagster.yaml").exists():
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        instance = DagsterInstance.get()
        # create every storage (runs, event log index, schedules) before letting others in
        instance.get_runs(limit=1)
        instance.get_dynamic_partitions("episodes")
        instance.all_instigator_state()
    return instance


def execute(job, instance: "DagsterInstance", ep_id: str, selection: list["AssetKey"] | None,
            run_config: dict | None = None):
    """Run ``job`` for one partition in this process; raise RunFailedError with the step error."""
    from dagster import DagsterEventType

    from ..daemon import user_message

    run_config = {**(run_config or {}), **QUIET_LOGS}
    try:
        result = job.execute_in_process(instance=instance, partition_key=ep_id,
                                        asset_selection=selection, run_config=run_config,
                                        raise_on_error=False)
    except Exception as exc:
        raise _instance_error(exc, ep_id) or exc
    if not result.success:
        errors = [
            f"{e.step_key}: {user_message(e.step_failure_data.error)}"
            for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE
        ]
        done = [e.asset_key for e in result.all_events
                if e.event_type == DagsterEventType.ASSET_MATERIALIZATION]
        raise RunFailedError(
            f"run {result.run_id} for {ep_id} failed: " + ("; ".join(errors) or "see the run log"),
            done)
    return result


class InstanceGoneError(ScreenalyticsError):
    """The Dagster instance (or the data root holding it) went away while a run was going on."""


def _instance_error(exc: Exception, ep_id: str) -> InstanceGoneError | None:
    """A clear error for a run that broke because its instance's storage failed (the data root
    or ``$DAGSTER_HOME`` deleted or moved mid-run, a full disk...), in place of the database
    driver's traceback; ``None`` for any other exception."""
    driver = type(exc).__module__.split(".")[0] in ("sqlalchemy", "sqlite3", "psycopg2")
    if not driver and not isinstance(exc, OSError):
        return None
    home = Path(os.environ.get("DAGSTER_HOME", "."))
    root = Path(os.environ.get("SCREENALYTICS_DATA_ROOT", "."))
    gone = [str(p) for p in (root, home, home / "history" / "runs.db")
            if p.is_absolute() and not p.exists()]
    why = (f"{gone[0]} was deleted or moved while the run was in progress" if gone
           else f"its storage failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
    return InstanceGoneError(
        f"run for {ep_id} stopped: the Dagster instance at {home} is unusable, {why}. Restore "
        f"the data root (or point SCREENALYTICS_DATA_ROOT / DAGSTER_HOME at the right one) and "
        f"run again: `screenalytics run VIDEO --ep-id {ep_id}`")
