"""Benchmark of the cluster deployment (docs/deploy.md) on the 6-episode test season.

    python benchmarks/cluster_bench.py                  # serial embedded, cluster with 1, 2, 3 workers
    python benchmarks/cluster_bench.py --workers 1 3    # only these cluster sizes

For each configuration it prints the wall time of the season (serial: six in-process episode
runs; cluster: from the backfill's submission to its completion, plus the span from the first
run's start to the last run's end, which leaves out the backfill daemon's 30 s ticks), episodes
per hour, the peak resident memory of each worker (its whole process group) and the Postgres
connections in use at peak. Needs the local services (Postgres, RabbitMQ, Redis) and creates its
own database, vhost and Redis key prefix per configuration, dropped afterwards; S3 is the moto
server on loopback. Real synthetic episodes from ../shared/faces and the real ci_pack models.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("SCREENALYTICS_SHARED", REPO.parent / "shared")).resolve()
FACES = SHARED / "faces"
SHOW = "bench"
BASE_ENV = {"SCREENALYTICS_MODEL_ROOT": str(SHARED), "SCREENALYTICS_MODEL_PACK": "ci_pack",
            "SCREENALYTICS_DEVICE": "cpu", "SCREENALYTICS_PROFILE": "fast"}


def child_serial(videos: list[str]) -> dict:
    """The season through the embedded default, one episode after the other, in this process."""
    import logging

    from tests.helpers import run_episode
    from tests.synthetic import facebank_photos

    logging.disable(logging.INFO)
    root = Path(tempfile.mkdtemp(prefix="bench-serial-"))
    t0 = time.perf_counter()
    first = None
    for i, video in enumerate(videos, 1):
        run = run_episode(root, Path(video), f"{SHOW}-s01e{i:02d}",
                          instance=first.instance if first else None,
                          facebank=None if first else facebank_photos(FACES))
        first = first or run
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


class Sampler(threading.Thread):
    """Samples every 0.5 s: resident memory of each named process and its descendants (e.g. a
    worker's process group, or ``screenalytics serve`` with its daemon and run workers), and,
    with ``pg_url``, the Postgres connections to database ``db``."""

    def __init__(self, pids: dict[str, int], pg_url: str | None = None,
                 db: str | None = None) -> None:
        super().__init__(daemon=True)
        self.pids, self.pg_url, self.db = pids, pg_url, db
        self.rss_mb = {name: 0.0 for name in pids}
        self.pg_peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        conn = None
        if self.pg_url:
            import psycopg2

            conn = psycopg2.connect(self.pg_url.replace("+psycopg2", "").rsplit("/", 1)[0]
                                    + "/postgres")
            conn.autocommit = True
        try:
            while not self.stop.is_set():
                for name, pid in self.pids.items():
                    try:
                        root = psutil.Process(pid)
                        procs = [root, *root.children(recursive=True)]
                        rss = sum(p.memory_info().rss for p in procs) / 2**20
                        self.rss_mb[name] = max(self.rss_mb[name], rss)
                    except psutil.Error:
                        pass
                if conn is not None:
                    with conn.cursor() as cur:
                        # the sampler's own connection is to another database
                        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                    (self.db,))
                        self.pg_peak = max(self.pg_peak, cur.fetchone()[0])
                self.stop.wait(0.5)
        finally:
            if conn is not None:
                conn.close()


@contextmanager
def local_cluster(workers: int, extra_env: dict[str, str] | None = None, keep: bool = False):
    """A local cluster (``LocalCluster``, docs/deploy.md) of ``workers`` Celery workers on its
    own Postgres database, RabbitMQ vhost, Redis key prefix and moto S3 bucket, in a fresh data
    root. While it runs, this process's environment is the cluster's (``cluster env``) plus
    ``extra_env`` (set before the processes start, so they see it too). Yields
    ``(ClusterState, Services, data root)``; afterwards every process is stopped, the services'
    database, vhost and keys dropped, the environment restored and the data root removed
    (unless ``keep``)."""
    from screenalytics_assets.cluster.local import LocalCluster
    from tests.cluster_support import cluster_services
    from tests.s3_server import FAKE_AWS_ENV, moto_server, new_bucket

    saved = dict(os.environ)
    root = Path(tempfile.mkdtemp(prefix=f"bench-cluster{workers}-"))
    try:
        with cluster_services("sabench") as services, moto_server() as endpoint:
            os.environ.update({**FAKE_AWS_ENV, **services.env(), "STORAGE_BACKEND": "s3",
                               "SCREENALYTICS_S3_ENDPOINT_URL": endpoint,
                               "SCREENALYTICS_DATA_ROOT": str(root / "data"),
                               **(extra_env or {})})
            os.environ["SCREENALYTICS_S3_BUCKET"] = new_bucket(endpoint)
            cluster = LocalCluster(root / "data")
            st = cluster.up(workers=workers, key_prefix=services.key_prefix)
            try:
                os.environ.update(cluster.environment())
                yield st, services, root / "data"
            finally:
                cluster.down()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def cluster_season(workers: int, videos: list[Path]) -> dict:
    """Start a cluster of ``workers`` workers, backfill the season on it, stop it."""
    from dagster import DagsterInstance, RunsFilter

    from resources.facebank import add_photos
    from screenalytics_assets.backfill import submit_season_backfill
    from screenalytics_assets.definitions import FACEBANK_JOB, build_definitions
    from screenalytics_assets.partitions import register_episode, register_show
    from tests.cluster_support import wait_backfill
    from tests.synthetic import facebank_photos

    with local_cluster(workers) as (st, services, _):
        instance = DagsterInstance.get()
        defs = build_definitions()
        store = defs.resources["storage"].store()
        for i, video in enumerate(videos, 1):
            store.put_video(f"{SHOW}-s01e{i:02d}", video)
            register_episode(instance, f"{SHOW}-s01e{i:02d}")
        for cast_id, photos in facebank_photos(FACES).items():
            add_photos(store, SHOW, cast_id, photos)
        register_show(instance, SHOW)
        defs.resolve_job_def(FACEBANK_JOB).execute_in_process(
            instance=instance, partition_key=SHOW)
        sampler = Sampler({n: st.pids[n] for n in st.pids if n.startswith("worker")},
                          services.pg_url, services.name)
        sampler.start()
        t0 = time.perf_counter()
        bf = submit_season_backfill(instance, defs, SHOW, 1, include_rollup=False)
        done = wait_backfill(instance, bf.backfill_id, timeout_s=3600)
        wall = time.perf_counter() - t0
        sampler.stop.set()
        sampler.join()
        records = instance.get_run_records(
            filters=RunsFilter(tags={"dagster/backfill": bf.backfill_id}))
        span = max(r.end_time for r in records) - min(r.start_time for r in records)
        return {"wall_s": wall, "span_s": span, "status": done.status.value,
                "runs": len(records), "worker_rss_mb": sampler.rss_mb,
                "pg_peak": sampler.pg_peak}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--episodes", type=int, default=6)
    ap.add_argument("--child-serial", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.update(BASE_ENV)
    if args.child_serial:
        print(json.dumps(child_serial(args.child_serial)))
        return 0

    from tests.cluster_support import build_season

    videos = build_season(FACES, Path(tempfile.mkdtemp(prefix="bench-season-")), args.episodes)
    n = len(videos)
    out = subprocess.run([sys.executable, __file__, "--child-serial", *map(str, videos)],
                         check=True, capture_output=True, text=True, cwd=REPO).stdout
    serial = json.loads(out.strip().splitlines()[-1])
    rows = [("serial embedded", serial["wall_s"], None, f"{serial['peak_rss_mb']:.0f} (process)",
             "-")]
    for k in args.workers:
        r = cluster_season(k, videos)
        assert r["status"] == "COMPLETED_SUCCESS", r
        rss = " / ".join(f"{v:.0f}" for v in r["worker_rss_mb"].values())
        rows.append((f"cluster, {k} worker{'s' if k > 1 else ''}", r["wall_s"], r["span_s"], rss,
                     str(r["pg_peak"])))
        print(f"  cluster {k}: {json.dumps(r)}", file=sys.stderr)
    print(f"\n{n} episodes (synthetic, fast profile, ci_pack), {os.cpu_count()} CPUs")
    print(f"{'configuration':22s} {'wall s':>8s} {'runs span s':>12s} {'episodes/h':>11s} "
          f"{'peak RSS per worker MB':>24s} {'PG conns peak':>14s}")
    for name, wall, span, rss, pg in rows:
        print(f"{name:22s} {wall:8.1f} {span if span is None else round(span, 1)!s:>12s} "
              f"{n * 3600 / wall:11.0f} {rss:>24s} {pg:>14s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
