"""Re-materializations the review app starts after an edit, and their progress.

Each edit starts :mod:`.rematerialize` in a child process (a *request*, with a random id); the
runs it launches on the Dagster instance carry the request id as a tag, which is how the page
finds them and shows their progress.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from .rematerialize import REQUEST_TAG, STALE_BY_EDITS

_DONE = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@dataclass
class Request:
    """A re-materialization in flight: its process and where its output goes."""

    request_id: str
    ep_id: str
    proc: subprocess.Popen
    log: Path


@dataclass
class Progress:
    """What a request has done so far.

    Attributes:
        state: ``starting`` (no run yet), ``running``, ``succeeded`` or ``failed``.
        runs: ``{"run_id", "job", "status"}`` per run launched, oldest first.
        materialized: asset names materialized so far (in order). expected: asset names the
            request materializes. error: the process's last output line when it failed.
    """

    state: str
    runs: list[dict] = field(default_factory=list)
    materialized: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=lambda: [*STALE_BY_EDITS,
                                                         "season_screentime"])
    error: str | None = None


class Runner:
    """Starts and tracks the app's re-materialization requests.

    Args:
        log_dir: where each request's output goes (``{request_id}.log``).
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.requests: dict[str, Request] = {}
        self._lock = threading.Lock()

    def start(self, ep_id: str) -> str:
        """Start re-materializing ``ep_id``'s screen time; returns the request id."""
        request_id = uuid.uuid4().hex[:12]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{request_id}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "screenalytics_assets.review_app.rematerialize", ep_id,
                 request_id], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=os.environ.copy(), start_new_session=True)
        with self._lock:
            self.requests[request_id] = Request(request_id, ep_id, proc, log)
        return request_id

    def running_episodes(self) -> set[str]:
        """Episodes with a request whose process has not exited."""
        with self._lock:
            return {r.ep_id for r in self.requests.values() if r.proc.poll() is None}

    def progress(self, instance: DagsterInstance, request_id: str) -> Progress | None:
        """Progress of a request of this app (``None``: unknown request id)."""
        with self._lock:
            req = self.requests.get(request_id)
        if req is None:
            return None
        # get_runs lists the newest first
        runs = list(reversed(instance.get_runs(RunsFilter(tags={REQUEST_TAG: request_id}))))
        infos, done = [], []
        for run in runs:
            infos.append({"run_id": run.run_id, "job": run.job_name,
                          "status": run.status.value})
            for rec in instance.all_logs(run.run_id,
                                         of_type=DagsterEventType.ASSET_MATERIALIZATION):
                done.append(rec.dagster_event.asset_key.path[-1])
        code = req.proc.poll()
        if code is None:
            state = "running" if runs else "starting"
        elif code == 0 and runs and all(r.status in _DONE for r in runs):
            state = "succeeded"
        else:
            state = "failed" if code != 0 else "running"
        error = None
        if state == "failed":
            lines = [x for x in req.log.read_text(errors="replace").splitlines() if x.strip()]
            error = lines[-1] if lines else f"exit status {code}"
        return Progress(state, infos, done, error=error)

    def stop_all(self) -> None:
        """Wait for the requests still running (they finish their runs), up to 10 s each."""
        with self._lock:
            reqs = list(self.requests.values())
        for r in reqs:
            try:
                r.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                r.proc.terminate()
