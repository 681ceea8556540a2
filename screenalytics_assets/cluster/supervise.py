"""``python -m screenalytics_assets.cluster.supervise CLUSTER_DIR``: keep the local cluster's
Celery workers running.

Started by ``screenalytics cluster up`` (:mod:`.local`) in its own process group. It starts each
worker of ``state.json`` (``worker_commands``) as its child, in a process group of its own, and
when one exits for any reason (SIGKILL, OOM, a crash) it starts the same command again, after a
pause that doubles while the worker keeps dying young (1 s up to 60 s), so a worker that cannot
start does not spin. Each start rewrites ``pids/<name>.pid``; each restart adds one to
``pids/<name>.restarts`` and logs a line. The step the dead worker held is not lost: the broker
hands it to another worker (``task_acks_late``, docs/deploy.md).

SIGTERM (``cluster down``) stops it: no restart any more, SIGTERM to every worker's group (a
worker finishes its step), SIGKILL to those left after ``STOP_TIMEOUT_S``.

Started the same way by ``screenalytics cluster join`` on the other hosts of a cluster.

Why our own loop and not supervisord or systemd: a cluster must start without root or a system
service manager (tests, a laptop); where systemd is there,
deploy/screenalytics-worker.service starts ``cluster join`` at boot and starts it again if the
supervisor itself dies (docs/deploy.md).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from .local import _signal_group, spawn

#: a worker that ran less than this many seconds died young: the next pause doubles
YOUNG_S = 10.0
FIRST_PAUSE_S = 1.0
MAX_PAUSE_S = 60.0
STOP_TIMEOUT_S = 25.0
POLL_S = 0.5


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} supervisor: {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m screenalytics_assets.cluster.supervise CLUSTER_DIR",
              file=sys.stderr)
        return 2
    folder = Path(argv[0])
    commands: dict[str, list[str]] = json.loads(
        (folder / "state.json").read_text())["worker_commands"]
    pid_dir, log_dir = folder / "pids", folder / "logs"
    stopping = False

    def stop(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    procs = {}
    started: dict[str, float] = {}
    pause = {name: FIRST_PAUSE_S for name in commands}
    due: dict[str, float] = {name: 0.0 for name in commands}  # when to start it (monotonic)
    restarts = {name: 0 for name in commands}
    while not stopping:
        now = time.monotonic()
        for name, cmd in commands.items():
            proc = procs.get(name)
            if proc is not None and proc.poll() is not None:
                ran = now - started[name]
                pause[name] = min(2 * pause[name], MAX_PAUSE_S) if ran < YOUNG_S \
                    else FIRST_PAUSE_S
                due[name] = now + pause[name]
                _log(f"{name} (pid {proc.pid}) exited with status {proc.returncode} after "
                     f"{ran:.0f} s; starting it again in {pause[name]:.0f} s")
                procs[name] = None
            if procs.get(name) is None and now >= due[name] and not stopping:
                if name in started:
                    restarts[name] += 1
                    (pid_dir / f"{name}.restarts").write_text(f"{restarts[name]}\n")
                procs[name] = spawn(cmd, dict(os.environ), log_dir / f"{name}.log",
                                    pid_dir / f"{name}.pid", cwd=folder)
                started[name] = time.monotonic()
                _log(f"started {name} (pid {procs[name].pid})")
        time.sleep(POLL_S)

    running = [p for p in procs.values() if p is not None and p.poll() is None]
    _log(f"stopping {len(running)} workers")
    for proc in running:
        _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and any(p.poll() is None for p in running):
        time.sleep(0.2)
    for proc in running:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
