"""Helpers shared by CLI subcommands: data root, the Dagster instance, running a selection."""

from __future__ import annotations

import errno
import fcntl
import gc
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, redirect_stderr
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ScreenalyticsError

if TYPE_CHECKING:  # Dagster is imported by the commands that run something (cli/__init__.py)
    from dagster import AssetKey, DagsterInstance


# The CLI shows its own progress and a failed step's error in one line, with the path of the
# run's full log (see :func:`execute`); Dagster's console logger prints nothing, unless
# ``--verbose`` asks for its warnings and errors (with their stack traces).
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
VERBOSE_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

#: Set by ``screenalytics ... --verbose``: print Dagster's log and stack traces as well.
VERBOSE = False

#: Set by the console script (:func:`screenalytics_assets.cli.console_main`): the process exits
#: when its command returns, so what it has loaded may be frozen (:func:`freeze_loaded_objects`).
#: Left False where :func:`~screenalytics_assets.cli.main` is called inside a longer-lived
#: process (tests, other programs), whose objects must stay collectable.
PROCESS_EXITS_AFTER_COMMAND = False

#: Folder under the data root holding the full log of every failed CLI run, ``{run_id}.log``.
RUN_LOGS = "logs"


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
    p.add_argument("--verbose", action="store_true",
                   help="print Dagster's log and the stack trace of a failure (by default one "
                        "line names the cause and where the full log is)")


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
    try:
        home.mkdir(parents=True, exist_ok=True)
        os.environ["DAGSTER_HOME"] = str(home)
        # Two first runs at once would both create the instance's SQLite schema and collide in
        # its migrations: the first process to take the lock creates it, the others open it.
        with open(home / ".instance.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (home / "dagster.yaml").exists():
                (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
            instance = DagsterInstance.get()
            # create every storage (runs, event log index, schedules) before letting others in
            instance.get_runs(limit=1)
            instance.get_dynamic_partitions("episodes")
            instance.all_instigator_state()
    except OSError as exc:
        clear = os_error(exc, f"the Dagster instance at {home}")
        if clear is None:
            raise
        raise clear from exc
    return instance


class StorageWriteError(ScreenalyticsError):
    """A folder the CLI writes to (the data root, ``$DAGSTER_HOME``) is read-only, not ours to
    write, or on a full disk."""


#: ``errno`` values of a folder that cannot be written to, and of a full disk.
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
_FULL = (errno.ENOSPC, errno.EDQUOT)
#: How a full disk reads in the error text of SQLite (the Dagster instance) and of a failed step
#: (its ``OSError`` arrives as text). SQLite reports a write cut short by a full disk either as
#: SQLITE_FULL or, when it fails while syncing its journal, as a plain "disk I/O error".
_FULL_TEXT = ("No space left on device", "Disk quota exceeded", "database or disk is full")
#: Below this many bytes free, a "disk I/O error" of the instance is taken to be a full disk.
_NEARLY_FULL = 4 << 20


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n < (1 << 30) else f"{n / (1 << 30):.2f} GiB"


def _usage(path: Path) -> tuple[Path, int, int]:
    """``(the nearest existing folder, bytes free, bytes in all)`` of the file system holding
    ``path`` (which need not exist yet)."""
    path = Path(path).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    usage = shutil.disk_usage(path)
    return path, usage.free, usage.total


def os_error(exc: BaseException, what: str | None = None) -> StorageWriteError | None:
    """The one-line error for an ``OSError`` of a folder that cannot be written to (read-only
    file system, no permission) or of a full disk, naming the file and the fix; ``None`` for any
    other exception. ``what``: the thing being written, for the message (default: the file)."""
    if not isinstance(exc, OSError) or exc.errno not in (*_READ_ONLY, *_FULL):
        return None
    name = str(exc.filename or what or "a file")
    about = f"{what} ({name})" if what and exc.filename and name not in what else what or name
    if exc.errno in _FULL:
        return disk_full_error(exc, Path(name), None)
    return StorageWriteError(
        f"cannot write {about}: {exc.strerror}. Make it writable, or point --data-root / "
        "SCREENALYTICS_DATA_ROOT (and DAGSTER_HOME) at a writable folder.")


def disk_full_error(exc: BaseException, path: Path, need: int | None,
                    command: str = "") -> StorageWriteError | None:
    """The error for a run that failed because the disk holding ``path`` (or ``$DAGSTER_HOME``)
    is full, saying how much is free and ``need`` (bytes the run needs, when known); ``None``
    when ``exc`` is not a full disk: an ``ENOSPC``/``EDQUOT`` ``OSError``, or an error whose
    text says so (a failed step; SQLite's "database or disk is full", or its "disk I/O error"
    with less than 4 MiB free)."""
    text = str(exc)
    places = [_usage(path)]
    if os.environ.get("DAGSTER_HOME"):
        places.append(_usage(Path(os.environ["DAGSTER_HOME"])))
    folder, free, total = min(places, key=lambda p: p[1])
    full = (isinstance(exc, OSError) and exc.errno in _FULL) \
        or any(t in text for t in _FULL_TEXT) or ("disk I/O error" in text and free < _NEARLY_FULL)
    if not full:
        return None
    needs = f"; the run needs about {_mib(need)} there" if need else ""
    again = f": `{command}`" if command else ""
    return StorageWriteError(
        f"the disk holding {folder} is full ({_mib(free)} free of {_mib(total)}){needs}. Free "
        f"space there, or move the data root (--data-root / SCREENALYTICS_DATA_ROOT, and "
        f"DAGSTER_HOME) to a larger disk, then run again{again}.")


def check_port(host: str, port: int) -> None:
    """Refuse a ``--port`` that another program already listens on, before anything starts
    (the webserver would otherwise fail only after the rest has started). Port 0 (pick a free
    one) always passes.

    Raises:
        ScreenalyticsError: the port is in use, or ``host`` is not an address of this machine.
    """
    import socket

    if not port:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ScreenalyticsError(f"--host {host}: not an address of this machine ({exc})") \
            from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # the same option uvicorn and the Dagster webserver bind with: a port left in TIME_WAIT
        # by a previous server is free to them, so it is free here too
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ScreenalyticsError(
                    f"port {port} on {host} is already in use by another program; choose "
                    f"another with --port (or --port 0 for a free one)") from None
            raise ScreenalyticsError(f"cannot listen on {host}:{port} ({exc.strerror}); choose "
                                     "another --host or --port") from None


def load_without_collections() -> None:
    """Turn CPython's cyclic garbage collector off while a command that runs assets in this
    process loads what the run needs (imports, the Dagster instance, the models, the
    definitions); :func:`freeze_loaded_objects` turns it back on before the run.

    Loading creates about 400,000 objects that live as long as the process, and the collector,
    triggered by the allocations, scans them again and again as they pile up (about 600
    collections, 5 of them full) while finding almost nothing to free: one ``gc.collect()``
    after loading with the collector off frees 4,000 objects, 1 %. Measured with
    ``gc.callbacks`` in ``screenalytics run`` on the 2.4-minute benchmark input (2 cores): the
    collector's time before the run 0.50 s -> 0.005 s; during the run 0.11 -> 0.15 s (one more
    full collection of what the run itself made); the benchmark's start, process start to the
    detection pass, 2.83 -> 2.43 s (medians of five alternated runs). The pattern the ``gc``
    module's documentation gives with :func:`gc.freeze` (disable early, freeze once loaded).
    Does nothing unless the process exits after its command
    (:data:`PROCESS_EXITS_AFTER_COMMAND`): a longer-lived process keeps its collector.
    """
    if PROCESS_EXITS_AFTER_COMMAND:
        gc.disable()


def freeze_loaded_objects() -> None:
    """Exempt every object alive now from later garbage collections (:func:`gc.freeze`), and
    turn the collector back on where :func:`load_without_collections` turned it off.

    A CLI process that runs assets holds about 390,000 long-lived objects once Dagster, ONNX
    Runtime, InsightFace, the models and the definitions are loaded; none of them becomes garbage,
    yet CPython's generational collector re-scans all of them at every full collection: 7-9 times
    during a run of the Hamilton clip, and again at interpreter exit. Frozen, they sit in the
    permanent generation, which collections skip; cyclic garbage made later is still collected.
    Measured on 2 cores: the exit after a run goes from 1.0 s to 0.1 s. This is the use
    the ``gc`` module's documentation gives for :func:`gc.freeze` (objects that live for the whole
    process); cyclic garbage among frozen objects is never freed, so this does nothing unless
    the process exits after its command (:data:`PROCESS_EXITS_AFTER_COMMAND`).
    """
    if PROCESS_EXITS_AFTER_COMMAND:
        gc.freeze()
        gc.enable()  # what the run itself leaves as garbage is collected as usual


def execute(job, instance: "DagsterInstance", ep_id: str, selection: list["AssetKey"] | None,
            run_config: dict | None = None):
    """Run ``job`` for one partition in this process; raise RunFailedError with the step error.

    What is loaded by then (Dagster, the models, the definitions) is frozen out of the garbage
    collector's scans first (:func:`freeze_loaded_objects`)."""
    from dagster import DagsterEventType

    from ..daemon import user_message

    freeze_loaded_objects()
    run_config = {**(run_config or {}), **(VERBOSE_LOGS if VERBOSE else QUIET_LOGS)}
    quiet = nullcontext() if VERBOSE else redirect_stderr(_DropEventLogWriteErrors(sys.stderr))
    try:
        with quiet:
            result = job.execute_in_process(instance=instance, partition_key=ep_id,
                                            asset_selection=selection, run_config=run_config,
                                            raise_on_error=False)
    except Exception as exc:
        raise _instance_error(exc, ep_id) or exc
    if not result.success:
        failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
        errors = [f"{e.step_key}: {user_message(e.step_failure_data.error)}" for e in failures]
        if VERBOSE:
            for e in failures:
                print(e.step_failure_data.error.to_string(), file=sys.stderr)
        done = [e.asset_key for e in result.all_events
                if e.event_type == DagsterEventType.ASSET_MATERIALIZATION]
        raise RunFailedError(
            f"run {result.run_id} for {ep_id} failed: " + ("; ".join(errors) or "see its log")
            + f" (full log: {write_run_log(instance, result.run_id)}; stack traces with "
            "--verbose)", done)
    return result


class _DropEventLogWriteErrors:
    """``sys.stderr`` while a run executes without ``--verbose``. When the instance cannot
    record an event (a full disk, the data root gone), Dagster writes that failure straight to
    stderr, SQL statement and parameters included (5-15 lines per event), before the run fails;
    the CLI reports the failure in its one line (:func:`_instance_error`, and
    :func:`disk_full_error` in ``run``), so those writes are dropped. Everything else passes."""

    PREFIX = "Exception while writing logger call to event log"

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if text.startswith(self.PREFIX):
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def write_run_log(instance: "DagsterInstance", run_id: str) -> str:
    """Write a run's whole event log (every event, with the stack trace of each failure) to
    ``<data root>/logs/{run_id}.log`` and return where the user finds it: that file, or, when
    it cannot be written (a full disk, a read-only data root), the run id to look up in the
    Dagster UI (``screenalytics serve``), which keeps the same log."""
    import logging
    from datetime import datetime, timezone

    lines = []
    for entry in instance.all_logs(run_id):
        when = datetime.fromtimestamp(entry.timestamp, timezone.utc).isoformat(timespec="seconds")
        event = entry.dagster_event
        kind = event.event_type_value if event is not None else "LOG"
        lines.append(f"{when} {logging.getLevelName(entry.level)} "
                     f"{entry.step_key or '-'} {kind}: {entry.user_message or entry.message}")
        if event is not None and event.is_step_failure:
            lines.append(event.step_failure_data.error.to_string())
    path = Path(os.environ.get("SCREENALYTICS_DATA_ROOT", ".")) / RUN_LOGS / f"{run_id}.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    except OSError:
        return f"run {run_id} in the Dagster UI (`screenalytics serve`)"
    return str(path)


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
