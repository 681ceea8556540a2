"""The real services of the cluster tests and benchmark, one set per test module: a Postgres
database, a RabbitMQ vhost and a Redis key prefix with a unique name, dropped afterwards; and a
season of short, different synthetic episodes."""

from __future__ import annotations

import subprocess
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from screenalytics_assets.cluster.config import check_postgres
from tests.synthetic import SHOTS, build_episode

PG_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432"
AMQP_SERVER = "pyamqp://guest:guest@127.0.0.1:5672"
REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Services:
    """URLs of one test's own database, vhost and Redis key prefix."""

    name: str
    pg_url: str
    broker: str
    backend: str
    key_prefix: str

    def env(self) -> dict[str, str]:
        return {"SCREENALYTICS_PG_URL": self.pg_url, "SCREENALYTICS_CELERY_BROKER": self.broker,
                "SCREENALYTICS_CELERY_BACKEND": self.backend}


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextmanager
def cluster_services(stem: str = "satest"):
    """Yields :class:`Services` with a new database and vhost; drops both and deletes the
    Redis keys afterwards."""
    import psycopg2
    import redis

    name = f"{stem}_{uuid.uuid4().hex[:8]}"
    services = Services(name, f"{PG_SERVER}/{name}", f"{AMQP_SERVER}/{name}", REDIS_URL,
                        f"{name}:")
    check_postgres(services.pg_url, create=True)
    _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    try:
        yield services
    finally:
        try:
            _rabbitmqctl("delete_vhost", name)
        except subprocess.CalledProcessError:
            pass
        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(match=f"{services.key_prefix}*"))
        if keys:
            r.delete(*keys)
        conn = psycopg2.connect("postgresql://postgres@127.0.0.1:5432/postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


def build_season(faces_root: Path, out_dir: Path, n: int = 6) -> list[Path]:
    """``n`` different short episodes (3 shots of 1-1.5 s at 10 fps each, a different run of
    the synthetic shots and durations per episode); returns their paths, episode 1 first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        shots = [(1.0 + 0.25 * ((k + j) % 3), SHOTS[(k + j) % len(SHOTS)][1]) for j in range(3)]
        paths.append(build_episode(faces_root, out_dir / f"e{k + 1:02d}.mp4", shots=shots).path)
    return paths


def wait_backfill(instance, backfill_id: str, timeout_s: float = 600.0):
    """Poll until the backfill is no longer requested; returns it."""
    deadline = time.monotonic() + timeout_s
    while True:
        bf = instance.get_backfill(backfill_id)
        if bf.status.value != "REQUESTED":
            return bf
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfill {backfill_id} still {bf.status.value} after "
                               f"{timeout_s:.0f} s")
        time.sleep(1.0)
