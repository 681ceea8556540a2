"""Helpers shared by CLI subcommands: data root, the Dagster instance, running a selection."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from dagster import AssetKey, DagsterEventType, DagsterInstance

from resources.dagster_storage import data_root_from_env

from ..core.errors import ScreenalyticsError
from ..daemon import user_message


# The CLI shows its own progress; Dagster's console logger only reports warnings and errors.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class RunFailedError(ScreenalyticsError):
    """A Dagster run failed; the message carries the failing step's error.

    Attributes:
        materialized: asset keys the run materialized before it failed.
    """

    def __init__(self, message: str, materialized: list[AssetKey] | None = None) -> None:
        super().__init__(message)
        self.materialized = materialized or []


def add_common_args(p) -> None:
    p.add_argument("--data-root", help="data root (default: $SCREENALYTICS_DATA_ROOT or ./data)")


def data_root(args) -> Path:
    """The data root from ``--data-root`` or the environment; exported for the definitions."""
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


def instance_for(root: Path) -> DagsterInstance:
    """The local Dagster instance: ``$DAGSTER_HOME``, else ``<data root>/dagster_home``."""
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


def execute(job, instance: DagsterInstance, ep_id: str, selection: list[AssetKey] | None,
            run_config: dict | None = None):
    """Run ``job`` for one partition in this process; raise RunFailedError with the step error."""
    run_config = {**(run_config or {}), **QUIET_LOGS}
    result = job.execute_in_process(instance=instance, partition_key=ep_id,
                                    asset_selection=selection, run_config=run_config,
                                    raise_on_error=False)
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
