"""``screenalytics serve``: the Dagster UI and daemon on the CLI's own instance, sensors running.

Two processes, each the leader of its own process group: ``dagster-webserver`` and
``dagster-daemon run``, both on the code location ``screenalytics_assets.definitions`` with the
environment of the CLI (data root, ``DAGSTER_HOME``, settings, model root, storage backend). Every
process they start (code servers, run workers) stays in their group, so stopping ``serve``
(Ctrl-C or SIGTERM) interrupts each group and, after a grace period, kills what is left of it:
nothing is orphaned.

Why not ``dagster dev``: it serves both processes from one shared code server that only reloads
when asked in the UI; ``dagster-daemon`` on its own reloads its code location every minute, so an
edit of the settings file reaches the automation sensor without anyone touching the UI.

Output is at INFO: what the sensors find and request, each run's own log lines (stage progress,
warnings), errors. ``--verbose`` adds DEBUG: every Dagster event of every run (step started,
input loaded, output handled...: most of the lines), the daemon's per-tick bookkeeping
(``dagster-daemon --log-level info``) and its code servers' warnings. Two of Dagster's own
defaults are why ``serve`` filters:

* a run launched by the daemon (sensor, automation, backfill) prints through Dagster's default
  console logger, whose level comes from the run's config or the instance's ``python_logs``
  setting (``dagster.yaml``, the user's file), else DEBUG: so ``serve`` relays the webserver's and
  the daemon's output (which carries their runs') and leaves out the DEBUG records
  (:func:`keep_line`);
* every minute the daemon replaces its code server by a fresh one (that reload is what brings a
  settings edit in); the old one stops being sent heartbeats and, after its 20 s heartbeat TTL
  (``DAEMON_GRPC_SERVER_HEARTBEAT_TTL`` in dagster's daemon controller), exits logging the
  WARNING "No heartbeat received in 20 seconds, shutting down" (Dagster's gRPC server): the
  normal end of a replaced code server, not a crash. It is the code server's only warning, so
  ``--code-server-log-level error`` avoids it; errors still show.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from ..dagster_cli import CODE_LOCATION, dagster_script
from ..review_app.access import is_loopback
from .common import add_common_args, check_port, data_root, instance_for

#: seconds each process group gets to shut down after SIGINT before it is killed
STOP_GRACE_S = 20.0
#: seconds the webserver gets to answer before ``serve`` gives up
START_TIMEOUT_S = 300.0
#: a record of Dagster's console log format at DEBUG: ``<date> <time> <tz> - <logger> - DEBUG -``
#: (the level may be wrapped in ANSI colour codes)
_DEBUG_RECORD = re.compile(r"^(?:\x1b\[[0-9;]*m)?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [^ ]+"
                           r"(?:\x1b\[[0-9;]*m)? - [^ ]+ - (?:\x1b\[[0-9;]*m)?DEBUG\b")


def register(sub) -> None:
    p = sub.add_parser(
        "serve", help="watch a folder (or bucket): the Dagster UI and daemon, sensors running",
        description="Start the Dagster webserver and dagster-daemon on the same Dagster "
                    "instance, data root, settings and model root as the other commands, with "
                    "the upload sensor (local videos/ folder, or the bucket when "
                    "STORAGE_BACKEND=s3) and the automation sensor running. Ctrl-C stops "
                    "everything it started.")
    p.add_argument("--host", default="127.0.0.1", help="webserver host (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=3000,
                   help="webserver port (default 3000; 0 picks a free one)")
    p.add_argument("--profile", help="settings profile: fast, balanced (default), accurate")
    p.add_argument("--no-sensors", action="store_true",
                   help="start with the upload and automation sensors stopped")
    # --verbose (add_common_args): DEBUG, every Dagster event of every run and the daemon's ticks
    p.add_argument("--sensor-interval", type=int, metavar="SECONDS",
                   help="least time between two evaluations of each sensor (default 30, or "
                        "$SCREENALYTICS_SENSOR_INTERVAL_S)")
    add_common_args(p)
    p.set_defaults(func=run)


def free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def run(args) -> int:
    from resources.backend import storage_from_env
    from resources.dagster_storage import LocalStorageResource
    from resources.models import FaceModelsResource, load_face_models

    from ..definitions import (
        AUTOMATION_ENV,
        AUTOMATION_SENSOR,
        SENSOR_INTERVAL_ENV,
        SENSORS_ENV,
        sensor_interval_s,
    )
    from ..settings import load_settings

    check_port(args.host, args.port)  # before the daemon or a sensor starts
    if not is_loopback(args.host):
        print(f"warning: the Dagster UI has no authentication: anyone who reaches {args.host} "
              "can launch, cancel and delete runs and switch sensors; keep --host 127.0.0.1 "
              "behind a reverse proxy that logs users in (docs/security.md)", flush=True)
    root = data_root(args)
    raw_interval = None if args.sensor_interval is None else str(args.sensor_interval)
    interval = sensor_interval_s(raw_interval)  # bad values fail here, not in the daemon
    settings = load_settings(profile=args.profile)
    storage = storage_from_env(str(root))
    store = storage.store()
    models = FaceModelsResource.from_env()  # a missing model pack fails here, not in every run
    load_face_models(models.model_root, settings.model_pack, models.device)
    instance = instance_for(root)  # creates the instance's storage before two processes open it
    on = "off" if args.no_sensors else "on"
    env = {**os.environ, SENSORS_ENV: on, AUTOMATION_ENV: on, SENSOR_INTERVAL_ENV: str(interval),
           "SCREENALYTICS_PROFILE": settings.profile}
    for name in ("SCREENALYTICS_MODEL_ROOT", "SCREENALYTICS_SETTINGS"):
        if env.get(name):  # the same files whatever folder a process starts in
            env[name] = str(Path(env[name]).expanduser().resolve())
    port = args.port or free_port(args.host)
    url = f"http://{args.host}:{port}"
    local = isinstance(storage, LocalStorageResource)
    upload_sensor = "local_video_sensor" if local else "s3_upload_sensor"
    state = "stopped (--no-sensors)" if args.no_sensors else f"running, every {interval} s"
    print(f"Dagster UI: {url}")
    print(f"instance:   {instance.root_directory}")
    print(f"settings:   profile {settings.profile}, model pack {settings.model_pack}")
    watched = store.uri("videos/").rstrip("/") + "/{ep_id}/episode.mp4"
    print(f"watching:   {watched} ({upload_sensor}, {state})")
    print(f"automation: {AUTOMATION_SENSOR} ({state})")
    sys.stdout.flush()
    procs: list[subprocess.Popen] = []
    # Ctrl-C raises KeyboardInterrupt here even when started with SIGINT ignored (as background
    # jobs of a script are); the children then start with SIGINT handled normally too
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # SIGTERM (e.g. from a service manager) stops everything just as Ctrl-C does
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    relays: list[threading.Thread] = []
    try:
        daemon_levels = (["--log-level", "info", "--code-server-log-level", "warning"]
                         if args.verbose else
                         ["--log-level", "warning", "--code-server-log-level", "error"])
        procs.append(_start([dagster_script("dagster-daemon"), "run", "-m", CODE_LOCATION,
                             *daemon_levels], env, relays, args.verbose))
        procs.append(_start([dagster_script("dagster-webserver"), "-m", CODE_LOCATION,
                             "-h", args.host, "-p", str(port),
                             "--dagster-log-level", "warning"], env, relays, args.verbose))
        if not _wait_until_up(url, procs):
            return 1
        reconcile_sensors(instance, [upload_sensor, AUTOMATION_SENSOR], not args.no_sensors, env)
        print(f"ready: open {url} (Ctrl-C stops the webserver and the daemon)", flush=True)
        while True:
            for proc in procs:
                if proc.poll() is not None:
                    print(f"error: {Path(proc.args[0]).name} exited with status "
                          f"{proc.returncode}; stopping", file=sys.stderr)
                    return 1
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("stopping the webserver and the daemon...", flush=True)
        return 0
    finally:
        # a second Ctrl-C must not cut the shutdown short and orphan a process group
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            stop(procs)
            for relay in relays:  # the last lines of the stopped processes
                relay.join(timeout=2.0)
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, previous)


def reconcile_sensors(instance, names: list[str], running: bool, env: dict) -> None:
    """Switch sensors that someone turned on or off by hand (in the UI or with ``dagster sensor``)
    to what ``serve`` was asked for: that choice is stored in the instance and wins over the
    default status the environment gives the code. Uses the ``dagster sensor start|stop``
    command; sensors on their default status are left alone."""
    want = "RUNNING" if running else "STOPPED"
    for state in instance.all_instigator_state():
        if state.name in names and state.status.value in ("RUNNING", "STOPPED") \
                and state.status.value != want:
            verb = "start" if running else "stop"
            print(f"{state.name} was {state.status.value.lower()} by hand; "
                  f"{'starting' if running else 'stopping'} it", flush=True)
            subprocess.run([dagster_script("dagster"), "sensor", verb, "-m", CODE_LOCATION,
                            state.name], env=env, check=False, stdout=subprocess.DEVNULL)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def keep_line(line: str) -> bool:
    """Whether ``serve`` prints a line of the webserver's or the daemon's output at its default
    level (INFO): every line but the DEBUG records of Dagster's console log format."""
    return not _DEBUG_RECORD.match(line)


def _relay(stream: IO[bytes], verbose: bool) -> None:
    """Copy a child's output to ours, line by line, without the DEBUG records unless
    ``verbose``; returns at end of file (every writer, run workers included, has exited)."""
    out = sys.stdout
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace")
        if verbose or keep_line(line):
            out.write(line)
            out.flush()
    stream.close()


def _start(cmd: list[str], env: dict, relays: list[threading.Thread],
           verbose: bool) -> subprocess.Popen:
    # its own session and process group (pgid = pid): a terminal's Ctrl-C reaches only `serve`,
    # which then stops each group as a whole. Its output (and that of the code servers and run
    # workers it starts, which inherit it) comes through a pipe that a thread relays.
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    relay = threading.Thread(target=_relay, args=(proc.stdout, verbose), daemon=True,
                             name=f"relay-{Path(cmd[0]).name}")
    relay.start()
    relays.append(relay)
    return proc


def _wait_until_up(url: str, procs: list[subprocess.Popen]) -> bool:
    import urllib.request

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                print(f"error: {Path(proc.args[0]).name} exited with status {proc.returncode} "
                      "while starting", file=sys.stderr)
                return False
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                return True
        except OSError:
            time.sleep(0.5)
    print(f"error: the webserver did not answer at {url} within {START_TIMEOUT_S:.0f} s",
          file=sys.stderr)
    return False


def stop(procs: list[subprocess.Popen], grace_s: float = STOP_GRACE_S) -> None:
    """Interrupt each process group (SIGINT: Dagster's processes shut down cleanly on it), wait
    up to ``grace_s`` seconds, then SIGKILL whatever is left in the groups."""
    for proc in procs:
        _signal_group(proc.pid, signal.SIGINT)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        # the leader may be gone while its children (code server, run workers) are not
        _signal_group(proc.pid, signal.SIGKILL)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
