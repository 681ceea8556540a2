"""A local cluster on one machine: gRPC code server, daemon, optional webserver and K Celery
workers, each in its own process group, with pids and logs under ``<data root>/cluster/``.

Layout of ``<data root>/cluster/``::

    dagster_home/dagster.yaml   deploy/dagster.yaml with the limits set for K workers
    celery.yaml                 deploy/celery.yaml with the broker/backend URLs resolved
    workspace.yaml              the code server's address, for the daemon and the webserver
    cluster.env                 the environment of every process (``screenalytics cluster env``)
    state.json                  pids, ports and worker names of the running cluster
    pids/<name>.pid, logs/<name>.log

Processes are started with the standard commands (``dagster code-server start``,
``dagster-daemon run``, ``dagster-webserver``, ``dagster-celery worker start``), so the same
commands start the parts by hand or on other hosts (docs/deploy.md).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from ..core.errors import ScreenalyticsError
from . import config as cfg

CODE_LOCATION = "screenalytics"
CODE_MODULE = "screenalytics_assets.definitions"
#: Variables copied into cluster.env when set: what the workers need to load the same
#: Definitions (storage, models, settings) as the process that started the cluster.
SHARED_ENV = ("STORAGE_BACKEND", "SCREENALYTICS_S3_BUCKET", "SCREENALYTICS_S3_PREFIX",
              "SCREENALYTICS_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_REGION",
              "AWS_DEFAULT_REGION", "SCREENALYTICS_PROFILE", "SCREENALYTICS_SETTINGS",
              "SCREENALYTICS_MODEL_ROOT", "SCREENALYTICS_MODEL_PACK", "SCREENALYTICS_DEVICE",
              "SCREENALYTICS_AUTOMATION", "SCREENALYTICS_CACHE_DIR")


class ClusterError(ScreenalyticsError):
    """The local cluster cannot start, is already running, or a process of it died."""


@dataclass
class ClusterState:
    """What ``up`` started: process name -> pid (the leader of its process group), ports and
    the Celery worker names (``<name>@<host>``)."""

    pids: dict[str, int] = field(default_factory=dict)
    code_server_port: int = 0
    webserver_port: int | None = None
    workers: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie child of this process is reaped and counts as dead)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalCluster:
    """The local cluster of one data root. ``up`` starts it, ``down`` stops it."""

    def __init__(self, data_root: Path) -> None:
        self.root = Path(data_root).resolve()
        self.dir = self.root / "cluster"
        self.home = self.dir / "dagster_home"
        self.pid_dir = self.dir / "pids"
        self.log_dir = self.dir / "logs"
        self.state_file = self.dir / "state.json"

    # ------------------------------------------------------------------ state
    def state(self) -> ClusterState | None:
        """The running cluster's state, or None when none was started here."""
        if not self.state_file.exists():
            return None
        return ClusterState(**json.loads(self.state_file.read_text()))

    def running(self) -> dict[str, bool]:
        """Process name -> whether it is alive."""
        st = self.state()
        return {name: alive(pid) for name, pid in st.pids.items()} if st else {}

    def worker_pid(self, hostname: str) -> int:
        """Pid (= process group) of the worker whose Celery hostname is ``hostname``."""
        st = self.state()
        name = hostname.split("@", 1)[0]
        if st is None or name not in st.pids:
            raise ClusterError(f"no worker {hostname!r} in the cluster under {self.dir}")
        return st.pids[name]

    # ------------------------------------------------------------------ config files
    def environment(self) -> dict[str, str]:
        """The variables every process of the cluster gets (on top of the caller's)."""
        env = {k: os.environ[k] for k in SHARED_ENV if os.environ.get(k)}
        env.update(
            DAGSTER_HOME=str(self.home),
            SCREENALYTICS_DATA_ROOT=str(self.root),
            SCREENALYTICS_EXECUTOR="celery",
            SCREENALYTICS_CELERY_CONFIG=str(self.dir / "celery.yaml"),
            SCREENALYTICS_PG_URL=cfg.pg_url(),
            SCREENALYTICS_CELERY_BROKER=cfg.broker_url(),
            SCREENALYTICS_CELERY_BACKEND=cfg.backend_url(),
        )
        return env

    def write_config(self, workers: int, max_runs: int, key_prefix: str | None,
                     code_server_port: int) -> None:
        """Write dagster.yaml, celery.yaml and workspace.yaml for ``workers`` workers."""
        self.home.mkdir(parents=True, exist_ok=True)
        instance = yaml.safe_load((cfg.DEPLOY_DIR / "dagster.yaml").read_text())
        runs = instance["concurrency"]["runs"]
        runs["max_concurrent_runs"] = max_runs
        for limit in runs["tag_concurrency_limits"]:
            if limit["key"] == "dagster/backfill":  # other limits (one run per partition) stay
                limit["limit"] = max_runs
        instance["concurrency"]["pools"]["default_limit"] = workers
        (self.home / "dagster.yaml").write_text(yaml.safe_dump(instance, sort_keys=False))

        celery = cfg.load_celery_config(cfg.DEPLOY_DIR / "celery.yaml")
        source = dict(celery.get("config_source") or {})
        if key_prefix:
            # every result key of this cluster in Redis starts with the prefix
            source["result_backend_transport_options"] = {"global_keyprefix": key_prefix}
        celery["config_source"] = source
        (self.dir / "celery.yaml").write_text(
            yaml.safe_dump({"execution": {"config": celery}}, sort_keys=False))

        workspace = {"load_from": [{"grpc_server": {
            "host": "127.0.0.1", "port": code_server_port, "location_name": CODE_LOCATION}}]}
        (self.dir / "workspace.yaml").write_text(yaml.safe_dump(workspace, sort_keys=False))

    # ------------------------------------------------------------------ up / down
    def up(self, workers: int = 3, max_runs: int | None = None, webserver_port: int | None = None,
           key_prefix: str | None = None, timeout_s: float = 180.0) -> ClusterState:
        """Check the services, write the config and start the processes; return when the code
        server listens and every worker answers a ping.

        Args:
            workers: Celery workers (each runs one step at a time).
            max_runs: runs in progress at once (default: ``workers``).
            webserver_port: also start the webserver on this port (None: no webserver).
            key_prefix: prefix of this cluster's result keys in Redis.
            timeout_s: seconds to wait for the processes to be ready.

        Raises:
            ServiceUnavailableError: Postgres, the broker or Redis is unreachable (nothing is
                started).
            ClusterError: a cluster already runs under this data root, or a process exited or
                was not ready in time (everything started is stopped again).
        """
        if workers < 1:
            raise ClusterError(f"--workers must be at least 1, got {workers}")
        if any(self.running().values()):
            raise ClusterError(f"a cluster already runs under {self.dir}; "
                               "stop it first with `screenalytics cluster down`")
        cfg.check_services(create_database=True)
        for d in (self.pid_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.write_config(workers, max_runs or workers, key_prefix, port)
        env = {**os.environ, **self.environment()}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._init_instance(env)
        (self.dir / "cluster.env").write_text(
            "".join(f"export {k}={_quote(v)}\n" for k, v in sorted(self.environment().items())))

        st = ClusterState(code_server_port=port, webserver_port=webserver_port,
                          env=self.environment())
        self.state_file.write_text(json.dumps(asdict(st)))
        try:
            st.pids["code_server"] = self._spawn("code_server", [
                _bin("dagster"), "code-server", "start", "-m", CODE_MODULE,
                "-h", "127.0.0.1", "-p", str(port)], env)
            self._save(st)
            for i in range(1, workers + 1):
                name = f"worker{i}"
                st.pids[name] = self._spawn(name, [
                    _bin("dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                    "-y", str(self.dir / "celery.yaml"), "-n", name, "--",
                    "--concurrency=1", "--without-gossip", "--without-mingle"], env)
                st.workers.append(name)
                self._save(st)
            self._wait_port(port, "code_server", deadline=time.monotonic() + timeout_s)
            st.pids["daemon"] = self._spawn("daemon", [
                _bin("dagster-daemon"), "run", "-w", str(self.dir / "workspace.yaml")], env)
            self._save(st)
            if webserver_port:
                st.pids["webserver"] = self._spawn("webserver", [
                    _bin("dagster-webserver"), "-w", str(self.dir / "workspace.yaml"),
                    "-h", "127.0.0.1", "-p", str(webserver_port)], env)
                self._save(st)
            st.workers = self._wait_workers(st, deadline=time.monotonic() + timeout_s)
            self._save(st)
        except BaseException:
            self.down()
            raise
        return st

    def down(self, timeout_s: float = 30.0) -> list[str]:
        """Stop every process (SIGTERM to its process group, SIGKILL after ``timeout_s``);
        returns the names stopped. Does nothing when no cluster runs here."""
        st = self.state()
        if st is None:
            return []
        order = [n for n in ("webserver", "daemon") if n in st.pids] + \
            [n for n in st.pids if n.startswith("worker")] + \
            [n for n in st.pids if n == "code_server"]
        for name in order:
            _signal_group(st.pids[name], signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(alive(st.pids[n]) for n in order):
            time.sleep(0.2)
        for name in order:
            _signal_group(st.pids[name], signal.SIGKILL)
            alive(st.pids[name])  # reap
        for name in order:
            (self.pid_dir / f"{name}.pid").unlink(missing_ok=True)
        self.state_file.unlink(missing_ok=True)
        return order

    # ------------------------------------------------------------------ helpers
    def _init_instance(self, env: dict[str, str]) -> None:
        """Create the instance's tables once, before several processes race to do it."""
        done = subprocess.run(
            [sys.executable, "-c", "from dagster import DagsterInstance\n"
             "i = DagsterInstance.get(); i.get_runs(limit=1); i.all_instigator_state()"],
            env=env, capture_output=True, text=True, timeout=300)
        if done.returncode:
            raise ClusterError(f"the Dagster instance in {self.home} cannot be opened:\n"
                               + "\n".join(done.stderr.strip().splitlines()[-5:]))

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> int:
        log = open(self.log_dir / f"{name}.log", "ab")
        try:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    cwd=str(self.dir))
        finally:
            log.close()
        (self.pid_dir / f"{name}.pid").write_text(f"{proc.pid}\n")
        return proc.pid

    def _save(self, st: ClusterState) -> None:
        self.state_file.write_text(json.dumps(asdict(st)))

    def _check_alive(self, st: ClusterState) -> None:
        for name, pid in st.pids.items():
            if not alive(pid):
                raise ClusterError(f"{name} exited while starting; see {self.log_dir / name}.log:"
                                   f"\n{_tail(self.log_dir / f'{name}.log')}")

    def _wait_port(self, port: int, name: str, deadline: float) -> None:
        st = self.state()
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            self._check_alive(st)
            if time.monotonic() > deadline:
                raise ClusterError(f"{name} did not listen on port {port} in time; "
                                   f"see {self.log_dir / name}.log")
            time.sleep(0.5)

    def _wait_workers(self, st: ClusterState, deadline: float) -> list[str]:
        from dagster_celery.executor import CeleryExecutor
        from dagster_celery.make_app import make_app

        conf = cfg.load_celery_config(self.dir / "celery.yaml")
        app = make_app(CeleryExecutor.for_cli(broker=conf["broker"], backend=conf["backend"],
                                              config_source=conf.get("config_source"))
                       .app_args())
        wanted = {w for w in st.workers}
        while True:
            replies = app.control.ping(timeout=1.0) or []
            names = sorted(n for r in replies for n in r)
            if {n.split("@", 1)[0] for n in names} >= wanted:
                return names
            self._check_alive(st)
            if time.monotonic() > deadline:
                missing = sorted(wanted - {n.split("@", 1)[0] for n in names})
                raise ClusterError(f"workers {missing} did not answer in time; see their logs "
                                   f"in {self.log_dir}")
            time.sleep(0.5)


def _bin(name: str) -> str:
    """A console script of this Python environment."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else (shutil.which(name) or name)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
