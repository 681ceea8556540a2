"""``screenalytics serve`` as a real process tree for tests: the Dagster webserver and a real
``dagster-daemon`` (with their code servers and run workers), started in their own session and
stopped by pid / process group; plus polling helpers over the instance the daemon writes to."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DagsterRunStatus, RunsFilter

from tests.conftest import REPO

#: sensors evaluated every 5 s (the sensor daemon's own loop period) instead of every 30 s
SENSOR_INTERVAL_S = 5
IN_PROGRESS = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
               DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


@dataclass
class Served:
    proc: subprocess.Popen
    log: Path
    root: Path
    home: Path
    url: str
    instance: DagsterInstance
    env: dict

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def processes(self) -> list[psutil.Process]:
        """``serve`` and every process below it."""
        try:
            me = psutil.Process(self.proc.pid)
            return [me, *me.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run ``screenalytics ARGS`` as a separate process with serve's environment."""
        return subprocess.run([sys.executable, "-m", "screenalytics_assets.cli", *args],
                              env=self.env, cwd=REPO, capture_output=True, text=True,
                              timeout=timeout)


def start_serve(tmp: Path, extra_env: dict[str, str] | None = None,
                timeout_s: float = 300, stopped_by_hand: tuple[str, ...] = ()) -> Served:
    """Start ``screenalytics serve --port 0`` on a fresh data root under ``tmp`` (fast profile,
    sensors every 5 s) and wait until it says it is ready. ``stopped_by_hand``: sensors first
    stopped with ``dagster sensor stop``, as a user would in the UI."""
    root = tmp / "data"
    home = root / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "SCREENALYTICS_DATA_ROOT": str(root), "DAGSTER_HOME": str(home),
           "SCREENALYTICS_PROFILE": "fast", "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    env.pop("SCREENALYTICS_SENSORS", None)
    env.pop("SCREENALYTICS_AUTOMATION", None)
    for name in stopped_by_hand:
        subprocess.run([str(Path(sys.executable).parent / "dagster"), "sensor", "stop", "-m",
                        "screenalytics_assets.definitions", name],
                       env={**env, "SCREENALYTICS_SENSORS": "on", "SCREENALYTICS_AUTOMATION": "on"},
                       cwd=REPO, check=True, capture_output=True, timeout=300)
    log = tmp / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "screenalytics_assets.cli", "serve", "--port", "0",
             "--sensor-interval", str(SENSOR_INTERVAL_S)],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while "ready: open" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            text = log.read_text(errors="replace")
            kill_tree(proc)
            raise AssertionError(f"serve did not start (status {proc.poll()}):\n{text[-4000:]}")
        time.sleep(0.5)
    url = re.search(r"Dagster UI: (http://\S+)", log.read_text()).group(1)
    return Served(proc, log, root, home, url, DagsterInstance.from_config(str(home)), env)


def stop_serve(served: Served, timeout_s: float = 90) -> tuple[int | None, list[int]]:
    """Ctrl-C (SIGINT) to ``serve``; returns its exit status and the pids of its process tree
    that are still alive afterwards."""
    tree = served.processes()
    served.proc.send_signal(signal.SIGINT)
    try:
        rc = served.proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        rc = None
    time.sleep(1.0)
    alive = [p.pid for p in tree if _alive(p)]
    return rc, alive


def kill_tree(proc: subprocess.Popen) -> None:
    """Last resort for a fixture: SIGKILL serve's tree by pid and process group."""
    try:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    groups = {os.getpgid(p.pid) for p in tree if _alive(p)} - {os.getpgid(0)}
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for p in tree:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for(cond: Callable[[], object], timeout_s: float, what: str, served: Served | None = None,
             poll_s: float = 1.0):
    """Poll ``cond`` until it returns something truthy; fail naming ``what`` (with the end of
    serve's log) after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = served.output()[-3000:] if served else ""
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{tail}")
        time.sleep(poll_s)


def place_video(root: Path, ep_id: str, clip: Path) -> Path:
    """Copy ``clip`` into the watch folder as ``videos/{ep_id}/episode.mp4`` the way an upload
    tool does (written elsewhere on the same disk, then renamed), so a tick never sees half a
    file."""
    dest = root / "videos" / ep_id / "episode.mp4"
    dest.parent.mkdir(parents=True, exist_ok=True)
    (root / ".incoming").mkdir(exist_ok=True)
    part = root / ".incoming" / f"{ep_id}.mp4"
    part.write_bytes(clip.read_bytes())
    part.rename(dest)
    return dest


def materialization_count(instance: DagsterInstance, asset: str, partition: str) -> int:
    return len(instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]),
        limit=1000).records)


def runs_of(instance: DagsterInstance, partition: str) -> list:
    return list(instance.get_runs(filters=RunsFilter(tags={"dagster/partition": partition})))


def runs_in_progress(instance: DagsterInstance) -> list:
    return list(instance.get_runs(filters=RunsFilter(statuses=IN_PROGRESS)))


def sensor_ticks(instance: DagsterInstance, name: str, limit: int = 50) -> list:
    """The newest ticks of sensor ``name`` (newest first), from the instance's tick history."""
    for state in instance.all_instigator_state():
        if state.name == name:
            return list(instance.get_ticks(state.instigator_origin_id, state.selector_id,
                                           limit=limit))
    return []
