"""The cluster's settings without the services (fast tier): the model root an absolute path,
the broker URL naming the cluster's own vhost, the code server's advertised address, the
environment file with the bucket's credentials, the supervisor starting a dead worker again,
and registering or queueing an episode instead of computing it in the CLI."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest
import yaml

from screenalytics_assets.cli import main as cli_main
from screenalytics_assets.cluster import config as cfg
from screenalytics_assets.cluster.local import (
    LocalCluster,
    advertised_host,
    alive,
    default_vhost,
)
from tests.conftest import HAMILTON, REPO, SHARED


def test_a_relative_model_root_is_refused_in_cluster_processes(monkeypatch):
    with pytest.raises(cfg.ClusterConfigError) as err:
        cfg.check_model_root("../shared")
    message = str(err.value)
    assert "SCREENALYTICS_MODEL_ROOT='../shared' is a relative path" in message
    assert os.path.abspath("../shared") in message  # the absolute path it meant here
    assert cfg.check_model_root(str(SHARED)) == str(SHARED)
    # every cluster process loads the Definitions with the celery executor: it refuses at start
    monkeypatch.setenv("SCREENALYTICS_EXECUTOR", "celery")
    monkeypatch.setenv("SCREENALYTICS_MODEL_ROOT", "../shared")
    with pytest.raises(cfg.ClusterConfigError, match="relative path"):
        cfg.celery_executor_from_env()


def test_cluster_up_makes_the_model_root_absolute_and_checks_the_pack(tmp_path, monkeypatch,
                                                                       capsys):
    monkeypatch.chdir(REPO)
    # relative, as the README writes it (../shared)
    monkeypatch.setenv("SCREENALYTICS_MODEL_ROOT", os.path.relpath(SHARED, REPO))
    monkeypatch.setenv("SCREENALYTICS_CELERY_BROKER", "pyamqp://guest:guest@127.0.0.1:5672//")
    cluster = LocalCluster(tmp_path / "data")
    settled = cluster.settle()
    assert settled["SCREENALYTICS_MODEL_ROOT"] == str(SHARED)
    assert cluster.environment()["SCREENALYTICS_MODEL_ROOT"] == str(SHARED)

    # a root without the pack: one line naming the path searched, before any service is asked
    monkeypatch.setenv("SCREENALYTICS_MODEL_ROOT", "no-such-models")
    monkeypatch.setenv("SCREENALYTICS_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:1/x")
    assert cli_main(["cluster", "up", "--workers", "1", "--data-root", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert str(REPO / "no-such-models" / "models" / "ci_pack") in err, err
    assert "Traceback" not in err and "Postgres" not in err
    assert not (tmp_path / "d" / "cluster" / "state.json").exists()


def test_the_cluster_gets_its_own_vhost(tmp_path, monkeypatch):
    assert cfg.broker_vhost("pyamqp://guest:guest@mq:5672//") == "/"
    assert cfg.broker_vhost("pyamqp://guest:guest@mq:5672/") == "/"
    assert cfg.broker_vhost("pyamqp://guest:guest@mq:5672/season_5") == "season_5"
    assert cfg.with_vhost("pyamqp://u:p@mq:5672//", "sa-1") == "pyamqp://u:p@mq:5672/sa-1"
    assert cfg.broker_vhost(cfg.with_vhost("pyamqp://u:p@mq:5672//", "a/b")) == "a/b"

    cluster = LocalCluster(tmp_path / "data")
    monkeypatch.setenv("SCREENALYTICS_CELERY_BROKER", "pyamqp://guest:guest@mq:5672//")
    broker = cluster.settle()["SCREENALYTICS_CELERY_BROKER"]
    assert broker == f"pyamqp://guest:guest@mq:5672/{default_vhost(tmp_path / 'data')}"
    assert default_vhost(tmp_path / "data") != default_vhost(tmp_path / "other")
    assert cluster.settle("season5")["SCREENALYTICS_CELERY_BROKER"].endswith(":5672/season5")
    # a URL naming its own vhost keeps it
    monkeypatch.setenv("SCREENALYTICS_CELERY_BROKER", "pyamqp://guest:guest@mq:5672/mine")
    assert cluster.settle()["SCREENALYTICS_CELERY_BROKER"].endswith(":5672/mine")
    with pytest.raises(Exception, match="default vhost is shared"):
        cluster.settle("/")
    # a missing vhost: the broker check says how to create it
    message = cfg.vhost_commands("season5", "guest")
    assert message == ("rabbitmqctl add_vhost season5 && rabbitmqctl set_permissions -p "
                       "season5 guest '.*' '.*' '.*'")


def test_the_code_server_is_advertised_at_the_address_given(tmp_path, monkeypatch):
    import socket

    assert advertised_host("127.0.0.1") == "127.0.0.1"
    assert advertised_host("0.0.0.0") == socket.getfqdn()
    assert advertised_host("0.0.0.0", "10.200.0.1") == "10.200.0.1"
    monkeypatch.setenv("SCREENALYTICS_MODEL_ROOT", str(SHARED))
    cluster = LocalCluster(tmp_path / "data")
    cluster.settle(key_prefix="season5:")
    cluster.write_config(workers=2, max_runs=4, code_server_port=4266,
                         advertise_host="head.example")
    workspace = yaml.safe_load((cluster.dir / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["grpc_server"] == {
        "host": "head.example", "port": 4266, "location_name": "screenalytics"}
    instance = yaml.safe_load((cluster.home / "dagster.yaml").read_text())
    assert instance["concurrency"]["runs"]["max_concurrent_runs"] == 4
    assert instance["concurrency"]["pools"]["default_limit"] == 2
    # the Celery file names no address: every host reads the URLs of its own environment
    celery = yaml.safe_load((cluster.dir / "celery.yaml").read_text())["execution"]["config"]
    assert celery["broker"] == {"env": "SCREENALYTICS_CELERY_BROKER"}
    assert celery["backend"] == {"env": "SCREENALYTICS_CELERY_BACKEND"}
    assert celery["config_source"]["result_backend_transport_options"] == {
        "global_keyprefix": "season5:"}
    assert cluster.environment()["SCREENALYTICS_CELERY_KEY_PREFIX"] == "season5:"


def test_cluster_env_holds_the_bucket_credentials_and_only_its_owner_reads_it(
        tmp_path, monkeypatch, capsys):
    env = {"STORAGE_BACKEND": "s3", "SCREENALYTICS_S3_BUCKET": "season-media",
           "SCREENALYTICS_S3_ENDPOINT_URL": "http://10.200.0.1:9000",
           "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t'quote",
           "AWS_REGION": "eu-west-1", "SCREENALYTICS_MODEL_ROOT": str(SHARED),
           "SCREENALYTICS_CELERY_BROKER": "pyamqp://guest:guest@mq:5672//"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cluster = LocalCluster(tmp_path / "data")
    cluster.settle()
    cluster.dir.mkdir(parents=True)
    path = cluster.write_env_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cli_main(["cluster", "env", "--data-root", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    # the exports, read back by a shell, give every process the same storage and broker
    shell = subprocess.run(["bash", "-c", out + "\nenv"], capture_output=True, text=True,
                           env={"PATH": os.environ["PATH"]}, check=True).stdout.splitlines()
    got = dict(line.split("=", 1) for line in shell if "=" in line)
    for k in ("STORAGE_BACKEND", "SCREENALYTICS_S3_BUCKET", "SCREENALYTICS_S3_ENDPOINT_URL",
              "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        assert got[k] == env[k], k
    assert got["SCREENALYTICS_MODEL_ROOT"] == str(SHARED)
    assert got["SCREENALYTICS_CELERY_BROKER"] == (
        f"pyamqp://guest:guest@mq:5672/{default_vhost(tmp_path / 'data')}")
    assert got["SCREENALYTICS_EXECUTOR"] == "celery"
    # the same lines without `export`, for systemd's EnvironmentFile
    assert cli_main(["cluster", "env", "--no-export", "--data-root", str(tmp_path / "data")]) == 0
    plain = capsys.readouterr().out
    assert plain.splitlines() == [line.removeprefix("export ") for line in out.splitlines()]
    assert "AWS_ACCESS_KEY_ID='AKIDEXAMPLE'" in plain.splitlines()


def _wait_for(what, predicate, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"{what} not seen in {timeout_s:.0f} s"
        time.sleep(0.1)
    return value


def test_the_supervisor_starts_a_dead_worker_again_and_stops_it(tmp_path):
    folder = tmp_path / "cluster"
    (folder / "pids").mkdir(parents=True)
    (folder / "logs").mkdir()
    # a long-lived process in place of the Celery worker: the supervisor treats any command
    # alike (the cluster tests kill a real worker)
    (folder / "state.json").write_text(json.dumps({"worker_commands": {
        "worker1": [sys.executable, "-c", "import time; time.sleep(120)"]}}))
    pid_file = folder / "pids" / "worker1.pid"
    sup = subprocess.Popen([sys.executable, "-m", "screenalytics_assets.cluster.supervise",
                            str(folder)], env={**os.environ, "PYTHONPATH": str(REPO)},
                           start_new_session=True)
    try:
        first = _wait_for("worker1 started", lambda: pid_file.exists() and
                          int(pid_file.read_text() or 0))
        os.killpg(first, signal.SIGKILL)
        second = _wait_for("worker1 started again", lambda: (
            (pid := int(pid_file.read_text() or 0)) != first and alive(pid) and pid))
        assert (folder / "pids" / "worker1.restarts").read_text().strip() == "1"
        log = (folder / "logs" / "worker1.log")
        assert log.exists()
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(timeout=30) == 0
        assert not alive(second)  # stopping the supervisor stops its workers
    finally:
        if sup.poll() is None:
            os.killpg(sup.pid, signal.SIGKILL)
            sup.wait()
        pid = int(pid_file.read_text() or 0) if pid_file.exists() else 0
        if pid and alive(pid):
            os.killpg(pid, signal.SIGKILL)


def test_register_only_uploads_and_registers_without_running(cli_env, capsys):
    from dagster import AssetKey, DagsterInstance

    from screenalytics_assets.partitions import season_episodes

    bad = cli_env / "not_a_video.mp4"
    bad.write_bytes(b"no video here")
    assert cli_main(["run", str(bad), "--ep-id", "regi-s01e01", "--register-only"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not (cli_env / "data" / "videos" / "regi-s01e01").exists()
    assert cli_main(["run", str(HAMILTON), "--ep-id", "regi-s01e01", "--submit",
                     "--set", "cluster_thresh=0.5"]) == 2
    assert "--set cannot be combined with --submit" in capsys.readouterr().err
    assert cli_main(["run", str(HAMILTON), "--ep-id", "regi-s01e01", "--submit",
                     "--profile", "fast"]) == 2
    assert "SCREENALYTICS_PROFILE" in capsys.readouterr().err
    assert cli_main(["run", str(HAMILTON), "--ep-id", "regi-s01e01", "--webserver",
                     "http://127.0.0.1:3000"]) == 2
    assert "--webserver goes with --submit" in capsys.readouterr().err

    assert cli_main(["run", str(HAMILTON), "--ep-id", "regi-s01e01", "--register-only"]) == 0
    assert "regi-s01e01: registered" in capsys.readouterr().out
    instance = DagsterInstance.get()
    assert season_episodes(instance, "regi-s01") == ["regi-s01e01"]
    assert (cli_env / "data" / "videos" / "regi-s01e01" / "episode.mp4").stat().st_size == \
        HAMILTON.stat().st_size
    observed = instance.fetch_observations(AssetKey("episode_video"), limit=5).records
    assert [r.partition_key for r in observed] == ["regi-s01e01"]
    assert instance.get_runs() == []  # nothing computed in this process


@pytest.mark.slow  # dagster-graphql loads the code location in a process of its own
def test_submit_queues_the_episode_on_the_embedded_instance(cli_env, capsys):
    from dagster import DagsterInstance

    assert cli_main(["run", str(HAMILTON), "--ep-id", "regi-s01e01", "--register-only"]) == 0
    instance = DagsterInstance.get()
    # --submit without a video: the uploaded one, queued through Dagster's GraphQL API as a
    # one-episode backfill; without a daemon nothing launches it yet, and the CLI says so
    assert cli_main(["run", "--ep-id", "regi-s01e01", "--submit"]) == 0
    out, err = capsys.readouterr()
    assert "regi-s01e01: queued as backfill" in out and "no dagster-daemon is running" in err
    [backfill] = instance.get_backfills()
    assert backfill.backfill_id in out and backfill.tags["screenalytics/source"] == "cli"
    assert instance.get_runs() == []
