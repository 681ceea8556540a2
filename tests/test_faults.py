"""Faults: the S3 endpoint going away mid-run, a process killed mid-detections, two episodes at
once. Each must fail loudly, leave nothing half-written, and recover by re-running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from moto.server import ThreadedMotoServer

from screenalytics_assets.cli.common import QUIET_LOGS
from screenalytics_assets.definitions import EPISODE_JOB, build_definitions
from screenalytics_assets.partitions import register_episode
from screenalytics_assets.progress import progress_sink
from screenalytics_assets.settings import load_settings
from tests.conftest import HAMILTON, REPO
from tests.s3_server import (
    FAKE_AWS_ENV,
    new_bucket,
    s3_client,
    stoppable_server,
    use_s3_backend,
)

#: Every test here runs the pipeline on video.
pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------- S3 goes away
def test_s3_endpoint_going_away_mid_run_then_coming_back(tmp_path, monkeypatch):
    for k, v in FAKE_AWS_ENV.items():
        monkeypatch.setenv(k, v)
    server, endpoint = stoppable_server()
    port = int(endpoint.rsplit(":", 1)[1])
    try:
        bucket = new_bucket(endpoint)
        s3_client(endpoint).upload_file(str(HAMILTON), bucket, "videos/fault-s01e01/episode.mp4")
        use_s3_backend(monkeypatch, endpoint, bucket, tmp_path / "data")
        (tmp_path / "home").mkdir()
        instance = DagsterInstance.local_temp(str(tmp_path / "home"),
                                              overrides={"telemetry": {"enabled": False}})
        register_episode(instance, "fault-s01e01")
        job = build_definitions(load_settings(profile="fast")).resolve_job_def(EPISODE_JOB)

        stopped = []

        def stop_endpoint_midway(stage: str, done: int, total: int) -> None:
            if stage == "detections" and done >= 100 and not stopped:
                server.stop()  # the endpoint goes away while frames are being decoded
                stopped.append(done)

        started = time.monotonic()
        with progress_sink(stop_endpoint_midway):
            result = job.execute_in_process(instance=instance, partition_key="fault-s01e01",
                                            raise_on_error=False, run_config=QUIET_LOGS)
        assert stopped and not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert failure.step_key == "detections"
        message = str(failure.step_failure_data.error.to_string())
        assert "S3 endpoint unreachable" in message and "re-run" in message
        assert time.monotonic() - started < 120  # retries are bounded

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()  # the endpoint comes back (moto keeps its state in this process)
        keys = [o["Key"] for o in s3_client(endpoint).list_objects_v2(
            Bucket=bucket, Prefix="artifacts/").get("Contents", [])]
        assert keys == []  # nothing half-written for a reader to mistake for a result
        rerun = job.execute_in_process(instance=instance, partition_key="fault-s01e01",
                                       run_config=QUIET_LOGS)
        assert rerun.success
        report = json.loads(s3_client(endpoint).get_object(
            Bucket=bucket, Key="artifacts/manifests/fault/s01/e01/screentime.json")["Body"].read())
        assert report["people"]
    finally:
        server.stop()


# --------------------------------------------------------------------------- processes
def _cli(root: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "SCREENALYTICS_DATA_ROOT": str(root / "data"),
           "DAGSTER_HOME": str(root / "dagster_home"), "PYTHONPATH": str(REPO),
           "STORAGE_BACKEND": "local"}
    (root / "dagster_home").mkdir(parents=True, exist_ok=True)
    (root / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return subprocess.Popen([sys.executable, "-m", "screenalytics_assets.cli", "run", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-2000:]
    return out


def _manifest(root: Path, ep_id: str, name: str) -> bytes:
    return (root / "data" / "manifests" / ep_id / name).read_bytes()


COMPARED = ["detections.jsonl", "tracks.jsonl", "faces.jsonl", "faces_embeddings.npy",
            "identities.json", "track_reps.jsonl"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted CLI run of the Hamilton clip."""
    root = tmp_path_factory.mktemp("reference")
    _finish(_cli(root, str(HAMILTON), "--ep-id", "kill-s01e01"))
    return root


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # moved into place between the listing and now
        return 0


def test_killed_during_detections_rerun_gives_the_same_artifacts(reference, tmp_path):
    root = tmp_path
    (root / "dagster_home").mkdir()
    with DagsterInstance.from_config(str(root / "dagster_home")) as inst:
        inst.get_runs(limit=1)  # the instance exists before the test starts watching it
        inst.get_dynamic_partitions("episodes")
    proc = _cli(root, str(HAMILTON), "--ep-id", "kill-s01e01")
    # mid-pass: the detection pass has cut faces into its crop cache's temporary file, which it
    # moves into place only when the pass ends (the clip's pass lasts about a second on a fast
    # machine, so a fixed delay after the step starts may miss it)
    partial = root / "data" / ".spool" / "detection_crops"
    deadline = time.monotonic() + 120
    in_detections = False
    while time.monotonic() < deadline and proc.poll() is None and not in_detections:
        time.sleep(0.01)
        in_detections = any(_size(p) > 0 for p in partial.glob(".*.part"))
    if not in_detections:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the run never reached detections (exit {proc.returncode}): {err[-3000:]}")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    manifests = root / "data" / "manifests" / "kill-s01e01"
    assert not (manifests / "detections.jsonl").exists()  # killed before its output
    assert not [p for p in manifests.rglob("*") if p.is_file()] if manifests.exists() else True
    _finish(_cli(root, str(HAMILTON), "--ep-id", "kill-s01e01"))
    for name in COMPARED:
        assert _manifest(root, "kill-s01e01", name) == _manifest(reference, "kill-s01e01", name), \
            name
    assert not [p for p in manifests.iterdir() if p.name.startswith(".")]  # no temp files


def test_two_episodes_at_once_do_not_interfere(reference, tmp_path):
    a = _cli(tmp_path, str(HAMILTON), "--ep-id", "kill-s01e01")
    b = _cli(tmp_path, str(HAMILTON), "--ep-id", "kill-s01e02")
    _finish(a)
    _finish(b)
    for ep_id in ("kill-s01e01", "kill-s01e02"):
        for name in COMPARED:
            assert _manifest(tmp_path, ep_id, name) == _manifest(reference, "kill-s01e01", name)
        st = json.loads(_manifest(tmp_path, ep_id, "screentime.json"))
        assert st["ep_id"] == ep_id
    with DagsterInstance.from_config(str(tmp_path / "dagster_home")) as inst:
        runs = inst.get_runs()
        assert len(runs) == 2 and all(r.status == DagsterRunStatus.SUCCESS for r in runs)
        assert {r.tags.get("dagster/partition") for r in runs} == {"kill-s01e01", "kill-s01e02"}
