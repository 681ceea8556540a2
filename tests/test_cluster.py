"""The cluster deployment on the real services (deploy/, docs/deploy.md): Postgres instance,
queued runs, steps on 3 Celery workers over RabbitMQ with Redis results, artifacts on S3 (moto
server on loopback). Each module run gets its own database, vhost, Redis key prefix and bucket.

`cluster up` creates the database, the vhost and the bucket, and `cluster down --purge`
removes them. Tests run in file order on one cluster: the season backfill, then a worker killed
mid-step (and started again by the supervisor), then a worker on a second network host
running submitted episodes, then the services unreachable.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, RunsFilter

from resources.facebank import add_photos
from screenalytics_assets.cli import main as cli_main
from screenalytics_assets.cluster.local import LocalCluster, celery_app
from screenalytics_assets.core.artifacts import CODECS
from screenalytics_assets.definitions import FACEBANK_JOB, build_definitions
from screenalytics_assets.partitions import register_episode, register_show
from screenalytics_assets.settings import load_settings
from tests.cluster_support import (
    AMQP_SERVER,
    build_season,
    cluster_services,
    other_host,
    vhosts,
    wait_backfill,
)
from tests.conftest import FACES, HAMILTON
from tests.s3_server import FAKE_AWS_ENV, moto_server, s3_client
from tests.synthetic import facebank_photos

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

# the cluster extra (scripts/install.sh test installs it)
pytest.importorskip("dagster_celery", reason="needs the cluster extra: pip install -e '.[cluster]'")
psycopg2 = pytest.importorskip("psycopg2")

SHOW = "clus"
WORKERS = 3
EPISODE_ASSETS = ["detections", "tracks", "faces", "embeddings", "identities", "track_reps",
                  "cast_links", "screentime"]


@dataclass
class World:
    root: Path
    cluster: LocalCluster
    instance: DagsterInstance
    store: object
    bucket: str
    pg_url: str
    season: dict[str, Path]
    endpoint: str


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    season = build_season(FACES, root / "videos")
    with pytest.MonkeyPatch.context() as mp, cluster_services(create=False) as services, \
            moto_server() as endpoint:
        for k, v in {**FAKE_AWS_ENV, **services.env()}.items():
            mp.setenv(k, v)
        # the broker's default vhost and a bucket that does not exist yet: `up` creates the
        # cluster's own vhost, the database and the bucket
        mp.setenv("SCREENALYTICS_CELERY_BROKER", f"{AMQP_SERVER}//")
        bucket = services.name.replace("_", "-")
        mp.setenv("STORAGE_BACKEND", "s3")
        mp.setenv("SCREENALYTICS_S3_BUCKET", bucket)
        mp.setenv("SCREENALYTICS_S3_ENDPOINT_URL", endpoint)
        mp.setenv("SCREENALYTICS_DATA_ROOT", str(root / "data"))
        mp.setenv("SCREENALYTICS_PROFILE", "fast")
        cluster = LocalCluster(root / "data")
        st = cluster.up(workers=WORKERS, key_prefix=services.key_prefix, vhost=services.name)
        purged = False
        try:
            assert st.created == {"database": services.pg_url,
                                  "vhost": f"{AMQP_SERVER}/{services.name}", "bucket": bucket}
            assert services.name in vhosts()
            for k, v in cluster.environment().items():
                mp.setenv(k, v)
            instance = DagsterInstance.get()
            defs = build_definitions()
            store = defs.resources["storage"].store()
            episodes = {f"{SHOW}-s01e{i:02d}": p for i, p in enumerate(season, 1)}
            for ep_id, path in episodes.items():
                store.put_video(ep_id, path)
                register_episode(instance, ep_id)
            for cast_id, photos in facebank_photos(FACES).items():
                add_photos(store, SHOW, cast_id, photos)
            register_show(instance, SHOW)
            defs.resolve_job_def(FACEBANK_JOB).execute_in_process(instance=instance,
                                                                  partition_key=SHOW)
            yield World(root, cluster, instance, store, bucket, services.pg_url, episodes,
                        endpoint)
            # teardown removes what `up` made: the vhost, the database, the bucket
            cluster.down(purge=True)
            purged = True
            assert services.name not in vhosts()
            assert bucket not in [b["Name"] for b in s3_client(endpoint).list_buckets()["Buckets"]]
            with psycopg2.connect("postgresql://postgres@127.0.0.1:5432/postgres") as conn, \
                    conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_database WHERE datname = %s",
                            (services.name,))
                assert cur.fetchone() == (0,)
            assert not cluster.dir.exists()
        finally:
            if not purged:
                cluster.down(purge=True)
    assert not any(LocalCluster(root / "data").running().values())


@pytest.fixture(scope="module")
def serial(world, tmp_path_factory):
    """The same episodes through the embedded default (local storage, SQLite, in-process)."""
    from tests.helpers import run_episode

    root = tmp_path_factory.mktemp("serial")
    with pytest.MonkeyPatch.context() as mp:
        for k in ("DAGSTER_HOME", "SCREENALYTICS_EXECUTOR", "SCREENALYTICS_CELERY_CONFIG",
                  "STORAGE_BACKEND"):
            mp.delenv(k, raising=False)
        settings = load_settings()
        first = None
        rows = {}
        for ep_id, path in world.season.items():
            run = run_episode(root, path, ep_id, settings=settings,
                              instance=first.instance if first else None,
                              facebank=None if first else facebank_photos(FACES))
            first = first or run
            rows[ep_id] = run.load("screentime").rows()
    return rows


def _runs(instance, backfill_id):
    return instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))


def _backfill(capsys, season: int) -> str:
    assert cli_main(["backfill", "--show", SHOW, "--season", str(season)]) == 0
    out = capsys.readouterr().out
    return out.split()[1].rstrip(":")


def _workers_of(instance, run_id) -> dict[str, list[str]]:
    """step key -> Celery worker hostnames that started it, in order (from the engine events)."""
    seen: dict[str, list[str]] = {}
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.event_specific_data
        worker = (data.metadata or {}).get("Celery worker") if data else None
        if worker is not None and entry.step_key:
            seen.setdefault(entry.step_key, []).append(worker.value)
    return seen


def test_season_backfill_runs_on_the_workers(world, serial, capsys):
    # the local cluster keeps its pids and logs under the data root
    names = ["code_server", "daemon", *(f"worker{i}" for i in range(1, WORKERS + 1))]
    for name in names:
        pid = int((world.cluster.pid_dir / f"{name}.pid").read_text())
        assert world.cluster.running()[name] and pid == world.cluster.state().pids[name]
        assert (world.cluster.log_dir / f"{name}.log").stat().st_size > 0
    assert cli_main(["cluster", "status", "--data-root", str(world.cluster.root)]) == 0
    capsys.readouterr()

    backfill_id = _backfill(capsys, 1)
    bf = wait_backfill(world.instance, backfill_id)
    assert bf.status.value == "COMPLETED_SUCCESS", bf.status

    runs = _runs(world.instance, backfill_id)
    assert runs and all(r.status.value == "SUCCESS" for r in runs)
    # queued first, then at most max_concurrent_runs (= WORKERS) in progress at once
    for r in runs:
        assert world.instance.all_logs(r.run_id, of_type=DagsterEventType.RUN_ENQUEUED), r.run_id
    records = world.instance.get_run_records(
        filters=RunsFilter(tags={"dagster/backfill": backfill_id}))
    spans = [(rec.start_time, rec.end_time) for rec in records]
    assert max(sum(s <= t < e for s, e in spans) for t, _ in spans) <= WORKERS
    # every partition of every episode asset materialized
    for asset in EPISODE_ASSETS:
        done = world.instance.get_materialized_partitions(AssetKey(asset))
        assert set(world.season) <= done, (asset, set(world.season) - done)
    # the steps ran on the Celery workers, spread over more than one
    hosts = {w for r in runs for ws in _workers_of(world.instance, r.run_id).values() for w in ws}
    assert {h.split("@")[0] for h in hosts} <= {f"worker{i}" for i in range(1, WORKERS + 1)}
    assert len(hosts) >= 2, hosts
    # per-person screen time identical to the serial embedded run
    for ep_id in world.season:
        report = CODECS["screentime"].load(lambda f, e=ep_id: world.store.read_file(e, f))
        assert report.rows() == serial[ep_id], ep_id
    # run and event history in Postgres
    with psycopg2.connect(world.pg_url.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM runs WHERE run_id = ANY(%s) GROUP BY status",
                    ([r.run_id for r in runs],))
        assert dict(cur.fetchall()) == {"SUCCESS": len(runs)}
        cur.execute("SELECT count(DISTINCT partition) FROM event_logs WHERE "
                    "dagster_event_type = 'ASSET_MATERIALIZATION' AND asset_key = %s",
                    (AssetKey("screentime").to_string(),))
        assert cur.fetchone()[0] == len(world.season)
        cur.execute("SELECT count(*) FROM bulk_actions WHERE key = %s", (backfill_id,))
        assert cur.fetchone()[0] == 1


def _artifact_names(world, ep_id: str) -> list[str]:
    prefix = world.store.artifact_key(ep_id, "screentime.json")[:-len("screentime.json")]
    return [k[len(prefix):] for k in world.store.list_keys(prefix)]


def test_killed_worker_step_is_redelivered_to_another(world, capsys):
    ep_id = f"{SHOW}-s02e01"  # the real clip: long enough to be killed inside detections
    world.store.put_video(ep_id, HAMILTON)
    register_episode(world.instance, ep_id)
    assert cli_main(["backfill", "--show", SHOW, "--season", "2", "--no-rollup"]) == 0
    backfill_id = capsys.readouterr().out.split()[1].rstrip(":")

    killed = killed_at = None
    deadline = time.monotonic() + 300
    while killed is None:
        assert time.monotonic() < deadline, "detections never started on a worker"
        for run in _runs(world.instance, backfill_id):
            started = _workers_of(world.instance, run.run_id).get("detections")
            if started:
                killed, run_id = started[0], run.run_id
                killed_pid = world.cluster.worker_pid(killed)
                os.killpg(killed_pid, signal.SIGKILL)
                killed_at = time.time()
                break
        time.sleep(0.1)

    bf = wait_backfill(world.instance, backfill_id)
    assert bf.status.value == "COMPLETED_SUCCESS", bf.status
    # the supervisor started the killed worker again
    name = killed.split("@")[0]
    assert world.cluster.restarts()[name] == 1
    assert world.cluster.running()[name] and world.cluster.state().pids[name] != killed_pid
    assert cli_main(["cluster", "status", "--data-root", str(world.cluster.root)]) == 0
    assert f"{name:12s} running (started again 1 times)" in capsys.readouterr().out
    # the step was still running when its worker died, and re-ran on another worker
    succeeded = [e.timestamp for e in world.instance.all_logs(
        run_id, of_type=DagsterEventType.STEP_SUCCESS) if e.step_key == "detections"]
    assert succeeded and min(succeeded) > killed_at
    workers = _workers_of(world.instance, run_id)["detections"]
    assert workers[0] == killed and workers[-1] != killed, workers
    assert world.instance.get_run_by_id(run_id).status.value == "SUCCESS"
    # every artifact of the episode once, complete, nothing left over from the killed attempt
    names = _artifact_names(world, ep_id)
    assert len(names) == len(set(names))
    expected = {f for asset in EPISODE_ASSETS for f in CODECS[asset].files}
    assert expected <= set(names), expected - set(names)
    assert all(n.endswith((".json", ".jsonl", ".npy", ".zip", ".csv", ".png", ".jpg")) for n in names), names
    for asset in EPISODE_ASSETS:
        CODECS[asset].load(lambda f: world.store.read_file(ep_id, f))


def test_a_worker_on_a_second_host_runs_a_submitted_episode(world, serial, capsys, tmp_path):
    """A second host for real: a network namespace of its own (its own loopback; the services
    reached only at this host's veth address), where `cluster join` starts a supervised
    worker the documented way, from the first host's `cluster env` with the services'
    addresses as that host sees them. An episode queued with `run --submit` runs there, with
    the same screen time as the serial run; then a review re-materialization of it goes
    through the run queue too."""
    if os.geteuid() != 0 or not (shutil.which("ip") and shutil.which("socat")):
        pytest.skip("needs root, iproute2 and socat to make a network namespace")
    t0 = time.monotonic()
    moto_port = int(world.endpoint.rsplit(":", 1)[1])
    other = LocalCluster(tmp_path / "otherhost")
    with other_host([5432, 5672, 6379, moto_port]) as host:
        env = {**os.environ, **world.cluster.environment()}
        for k in ("SCREENALYTICS_PG_URL", "SCREENALYTICS_CELERY_BROKER",
                  "SCREENALYTICS_CELERY_BACKEND", "SCREENALYTICS_S3_ENDPOINT_URL"):
            env[k] = env[k].replace("127.0.0.1", host.address)
        try:
            joined = subprocess.run(
                ["ip", "netns", "exec", host.namespace, sys.executable, "-m",
                 "screenalytics_assets.cli", "cluster", "join", "--workers", "1",
                 "--worker-name", "otherhost", "--data-root", str(other.root)],
                env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=240)
            assert joined.returncode == 0, joined.stdout + joined.stderr
            assert "joined the cluster" in joined.stdout
            # that host's own copies: its instance file, and the URLs it reaches the services at
            assert (other.home / "dagster.yaml").exists()
            assert host.address in (other.dir / "cluster.env").read_text()
            # the head's own workers stop taking steps for a while (Celery's cancel_consumer),
            # so the episode queued from the CLI runs wholly on the second host
            app = celery_app(world.cluster.dir / "celery.yaml", world.cluster.environment())
            head = world.cluster.state().workers
            app.control.cancel_consumer("dagster", destination=head, reply=True)
            try:
                ep_id, serial_ep = f"{SHOW}-s03e01", next(iter(world.season))
                assert cli_main(["run", str(world.season[serial_ep]), "--ep-id", ep_id,
                                 "--submit"]) == 0
                out = capsys.readouterr().out
                assert f"{ep_id}: registered" in out and "queued as backfill" in out, out
                backfill_id = out.split("queued as backfill ")[1].split()[0]
                bf = wait_backfill(world.instance, backfill_id)
                assert bf.status.value == "COMPLETED_SUCCESS", bf.status
            finally:
                app.control.add_consumer("dagster", destination=head, reply=True)
            [run] = _runs(world.instance, backfill_id)
            steps = _workers_of(world.instance, run.run_id)
            assert {"detections", "faces", "embeddings", "screentime"} <= set(steps), steps
            hosts = {w for ws in steps.values() for w in ws}
            assert {h.split("@")[0] for h in hosts} == {"otherhost1"}, hosts
            report = CODECS["screentime"].load(lambda f: world.store.read_file(ep_id, f))
            assert report.rows() == serial[serial_ep]
            print(f"second host: joined, an episode submitted and run on it in "
                  f"{time.monotonic() - t0:.0f} s")
            _review_rematerialization_is_queued(world, ep_id)
        finally:
            other.down()
    print(f"second-host test with the review re-materialization: "
          f"{time.monotonic() - t0:.0f} s")


def _review_rematerialization_is_queued(world, ep_id: str) -> None:
    """The review app's re-materialization on the cluster: queued (not computed in the app's
    process), its steps on the workers, then the season roll-up."""
    from screenalytics_assets.review_app import rematerialize
    from screenalytics_assets.partitions import season_of
    from sensors.season_rollup import FOLLOWS_TAG

    assert rematerialize.has_run_queue(world.instance)
    assert rematerialize.main([ep_id, "req-cluster"]) == 0
    runs = world.instance.get_runs(RunsFilter(tags={rematerialize.REQUEST_TAG: "req-cluster"}))
    assert len(runs) == 1 and runs[0].status.value == "SUCCESS"
    backfill_id = runs[0].tags["dagster/backfill"]
    steps = _workers_of(world.instance, runs[0].run_id)
    assert {"cast_links", "screentime"} <= set(steps), steps  # run on Celery workers
    rollup = world.instance.get_runs(RunsFilter(tags={FOLLOWS_TAG: backfill_id}))
    assert [r.status.value for r in rollup] == ["SUCCESS"]
    assert rollup[0].tags["dagster/partition"] == season_of(ep_id)


def _closed_port() -> int:
    from screenalytics_assets.cluster.local import free_port

    return free_port()  # nothing listens on it once the probe socket is closed


def test_unreachable_services_are_named_and_nothing_starts(world, tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    pg = f"postgresql+psycopg2://postgres@127.0.0.1:{_closed_port()}/nowhere"
    monkeypatch.setenv("SCREENALYTICS_PG_URL", pg)
    assert cli_main(["cluster", "up", "--workers", "1", "--data-root", str(root)]) == 2
    err = capsys.readouterr().err
    assert f"Postgres at {pg} is unreachable" in err and "Traceback" not in err
    assert not (root / "cluster" / "state.json").exists()
    # the CLI on the cluster's instance says the same instead of a driver traceback
    monkeypatch.setenv("SCREENALYTICS_EXECUTOR", "celery")
    assert cli_main(["backfill", "--show", SHOW, "--season", "1"]) == 2
    assert f"Postgres at {pg} is unreachable" in capsys.readouterr().err

    monkeypatch.setenv("SCREENALYTICS_PG_URL", world.pg_url)
    monkeypatch.setenv("SCREENALYTICS_CELERY_CONFIG", str(Path("deploy/celery.yaml").resolve()))
    port = _closed_port()
    monkeypatch.setenv("SCREENALYTICS_CELERY_BROKER", f"pyamqp://guest:guest@127.0.0.1:{port}//")
    before = vhosts()
    assert cli_main(["cluster", "up", "--workers", "1", "--data-root", str(root)]) == 2
    err = capsys.readouterr().err
    assert f"Celery broker (RabbitMQ) at pyamqp://guest:***@127.0.0.1:{port}/screenalytics-" \
        in err, err
    assert "Traceback" not in err and not (root / "cluster" / "state.json").exists()
    assert vhosts() == before  # the vhost made for it is removed again


def episode_job():
    """The episode job as the cluster loads it (a module-level function for reconstructable)."""
    return build_definitions().resolve_job_def("episode_job")


def test_run_launched_while_the_broker_is_down_fails_and_is_kept(world, monkeypatch):
    from dagster import execute_job, reconstructable

    monkeypatch.setenv("SCREENALYTICS_CELERY_CONFIG", str(Path("deploy/celery.yaml").resolve()))
    monkeypatch.setenv("SCREENALYTICS_CELERY_BROKER",
                       f"pyamqp://guest:guest@127.0.0.1:{_closed_port()}//")
    ep_id = next(iter(world.season))
    with execute_job(reconstructable(episode_job), instance=world.instance,
                     tags={"dagster/partition": ep_id},
                     asset_selection=[AssetKey("detections")]) as result:
        assert not result.success
        run_id = result.run_id
    run = world.instance.get_run_by_id(run_id)
    assert run is not None and run.status.value == "FAILURE"
    errors = [e for e in world.instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT)
              if "celery task submission" in (e.message or "")]
    assert errors, "the failed submission is not in the run's event log"
    with psycopg2.connect(world.pg_url.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cur.fetchone() == ("FAILURE",)
