"""The real services of the cluster tests and benchmark, one set per test module: a Postgres
database, a RabbitMQ vhost and a Redis key prefix with a unique name, dropped afterwards; and a
season of short, different synthetic episodes."""

from __future__ import annotations

import os
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


def vhosts() -> list[str]:
    """The broker's virtual hosts."""
    return subprocess.run(["rabbitmqctl", "-q", "list_vhosts", "name"], check=True,
                          capture_output=True, text=True, timeout=60).stdout.split()


@contextmanager
def cluster_services(stem: str = "satest", create: bool = True):
    """Yields :class:`Services` with a new database and vhost (``create=False``: only their
    names, for ``cluster up`` to create); drops both and deletes the Redis keys afterwards."""
    import psycopg2
    import redis

    name = f"{stem}_{uuid.uuid4().hex[:8]}"
    services = Services(name, f"{PG_SERVER}/{name}", f"{AMQP_SERVER}/{name}", REDIS_URL,
                        f"{name}:")
    if create:
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


@dataclass
class OtherHost:
    """A network namespace joined to this host by a veth pair: ``address`` is this host's side
    (where the services are forwarded), ``namespace`` the name for ``ip netns exec``."""

    namespace: str
    address: str
    peer_address: str


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _free_subnet() -> int:
    """A third octet x with no address of 10.200.x.0/24 on this host."""
    import random

    used = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True,
                          check=True).stdout
    for _ in range(100):
        x = random.randint(1, 254)
        if f"10.200.{x}." not in used:
            return x
    raise RuntimeError("no free 10.200.x.0/24 subnet")


@contextmanager
def other_host(ports: list[int]):
    """A second host for real, on this machine: a new network namespace (its own interfaces,
    routes and loopback, so nothing of this host's loopback is reachable from it) joined by a
    veth pair, 10.200.x.1 on this side and 10.200.x.2 inside; each of ``ports`` on this host's
    loopback is forwarded from 10.200.x.1 by ``socat``. Yields :class:`OtherHost`; removes the
    forwarders, the namespace and the veth pair (by name) afterwards. Needs root."""
    import signal

    tag = uuid.uuid4().hex[:6]
    ns, here, there = f"sa{tag}", f"sah{tag}", f"san{tag}"
    x = _free_subnet()
    host = OtherHost(ns, f"10.200.{x}.1", f"10.200.{x}.2")
    forwarders = []
    try:
        _ip("netns", "add", ns)
        _ip("link", "add", here, "type", "veth", "peer", "name", there)
        _ip("link", "set", there, "netns", ns)
        _ip("addr", "add", f"{host.address}/30", "dev", here)
        _ip("link", "set", here, "up")
        _ip("netns", "exec", ns, "ip", "addr", "add", f"{host.peer_address}/30", "dev", there)
        _ip("netns", "exec", ns, "ip", "link", "set", there, "up")
        _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        for port in ports:
            forwarders.append(subprocess.Popen(
                ["socat", f"TCP-LISTEN:{port},bind={host.address},reuseaddr,fork",
                 f"TCP:127.0.0.1:{port}"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True))
        yield host
    finally:
        for proc in forwarders:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", here], capture_output=True, timeout=30)
