"""A local cluster on one machine: gRPC code server, daemon, optional webserver and K Celery
workers, each in its own process group, with pids and logs under ``<data root>/cluster/``.

Layout of ``<data root>/cluster/``::

    dagster_home/dagster.yaml   deploy/dagster.yaml with the limits set for K workers
    celery.yaml                 deploy/celery.yaml with the broker/backend URLs resolved
    workspace.yaml              the code server's advertised address, for the daemon and webserver
    cluster.env                 the environment of every process (``screenalytics cluster env``;
                                it holds the S3 credentials, so only its owner may read it)
    state.json                  ports, worker names and what ``up`` created (vhost, database,
                                bucket), which ``down`` removes again
    pids/<name>.pid, logs/<name>.log

The workers are children of a supervisor process (:mod:`.supervise`) that starts a worker
again when it dies (SIGKILL, OOM), so a lost worker comes back by itself; ``down`` stops the
supervisor first. Processes are started with the standard commands (``dagster code-server
start``, ``dagster-daemon run``, ``dagster-webserver``, ``dagster-celery worker start``), so the
same commands start the parts by hand or on other hosts (docs/deploy.md).
"""

from __future__ import annotations

import hashlib
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
              "SCREENALYTICS_AUTOMATION", "SCREENALYTICS_CACHE_DIR",
              # the bucket's credentials, so `cluster env` is all another host needs
              "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
#: the prefix of the cluster's result keys in Redis (the same on every host of a cluster)
KEY_PREFIX_ENV = "SCREENALYTICS_CELERY_KEY_PREFIX"
#: bind addresses that listen on every interface (the address to advertise is then the host's)
ANY_ADDRESS = ("0.0.0.0", "::", "")


class ClusterError(ScreenalyticsError):
    """The local cluster cannot start, is already running, or a process of it died."""


@dataclass
class ClusterState:
    """What ``up`` started: process name -> pid (the leader of its process group; the workers'
    pids are those of ``pids/<name>.pid``, which the supervisor rewrites when it restarts one),
    ports, the code server's bind and advertised host, the Celery worker names
    (``<name>@<host>``), the worker commands, and what ``up`` created (``created``: ``vhost``
    -> broker URL, ``database`` -> Postgres URL, ``bucket`` -> name), which ``down`` removes."""

    pids: dict[str, int] = field(default_factory=dict)
    code_server_port: int = 0
    webserver_port: int | None = None
    workers: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    bind_host: str = "127.0.0.1"
    advertise_host: str = "127.0.0.1"
    worker_commands: dict[str, list[str]] = field(default_factory=dict)
    created: dict[str, str] = field(default_factory=dict)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie child of this process is reaped, and any zombie counts
    as dead)."""
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
    try:  # /proc/<pid>/stat: "pid (comm) STATE ..."; Z = exited, not yet reaped by its parent
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def advertised_host(bind_host: str, advertise_host: str | None = None) -> str:
    """The address other processes use to reach a server bound to ``bind_host``:
    ``advertise_host`` when given, else the bind address, or this host's name when it binds
    every interface (``0.0.0.0``)."""
    if advertise_host:
        return advertise_host
    return socket.getfqdn() if bind_host in ANY_ADDRESS else bind_host


def default_vhost(data_root: Path) -> str:
    """The RabbitMQ vhost of the cluster of ``data_root`` when the broker URL names the
    default one: ``screenalytics-`` and 8 hex digits of the data root's path, so two clusters
    on one broker never share queues."""
    return "screenalytics-" + hashlib.sha1(str(Path(data_root).resolve()).encode()).hexdigest()[:8]


class LocalCluster:
    """The local cluster of one data root. ``up`` starts it, ``down`` stops it."""

    def __init__(self, data_root: Path) -> None:
        self.root = Path(data_root).resolve()
        self.dir = self.root / "cluster"
        self.home = self.dir / "dagster_home"
        self.pid_dir = self.dir / "pids"
        self.log_dir = self.dir / "logs"
        self.state_file = self.dir / "state.json"
        #: variables ``up`` settles for every process (absolute model root, the broker URL
        #: naming the cluster's vhost), on top of those read from the environment
        self.settled: dict[str, str] = {}

    # ------------------------------------------------------------------ state
    def state(self) -> ClusterState | None:
        """The running cluster's state, or None when none was started here."""
        if not self.state_file.exists():
            return None
        st = ClusterState(**json.loads(self.state_file.read_text()))
        for name in [*st.pids, *st.worker_commands]:
            pid_file = self.pid_dir / f"{name}.pid"
            try:
                st.pids[name] = int(pid_file.read_text())
            except (OSError, ValueError):
                pass
        return st

    def running(self) -> dict[str, bool]:
        """Process name -> whether it is alive."""
        st = self.state()
        return {name: alive(pid) for name, pid in st.pids.items()} if st else {}

    def restarts(self) -> dict[str, int]:
        """Worker name -> how many times the supervisor started it again."""
        st = self.state()
        out = {}
        for name in st.worker_commands if st else []:
            try:
                out[name] = int((self.pid_dir / f"{name}.restarts").read_text())
            except (OSError, ValueError):
                out[name] = 0
        return out

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
        env.update(self.settled)
        return env

    def settle(self, vhost: str | None = None, key_prefix: str | None = None
               ) -> dict[str, str]:
        """Fix what must not depend on the caller's folder or share the broker: the model root
        made absolute (a relative one is read against the current folder, where the user
        wrote it) and checked to hold the model pack, the broker URL naming the cluster's own
        vhost (``vhost``; default: the URL's own when it names one other than ``/``, else
        :func:`default_vhost`), and the prefix of the cluster's result keys in Redis
        (``key_prefix``, default ``SCREENALYTICS_CELERY_KEY_PREFIX``; every host of the
        cluster must use the same). Sets and returns :attr:`settled`.

        Raises:
            ModelPackError: the pack is not under the model root (naming the path searched).
            ClusterError: ``--vhost /`` (the broker's default vhost is shared with anything
                else on the broker).
        """
        from resources.models import DEFAULT_MODEL_ROOT, check_pack

        raw = os.environ.get("SCREENALYTICS_MODEL_ROOT", DEFAULT_MODEL_ROOT)
        model_root = os.path.abspath(os.path.expanduser(raw))
        check_pack(model_root, os.environ.get("SCREENALYTICS_MODEL_PACK", "buffalo_l"))
        broker = cfg.broker_url()
        if vhost == "/":
            raise ClusterError("--vhost /: the broker's default vhost is shared with anything "
                               "else on the broker; name one of this cluster's own")
        own = cfg.broker_vhost(broker)
        vhost = vhost or (own if own != "/" else default_vhost(self.root))
        self.settled = {"SCREENALYTICS_MODEL_ROOT": model_root,
                        "SCREENALYTICS_CELERY_BROKER": cfg.with_vhost(broker, vhost)}
        key_prefix = key_prefix or os.environ.get(KEY_PREFIX_ENV)
        if key_prefix:
            self.settled[KEY_PREFIX_ENV] = key_prefix
        return self.settled

    def write_config(self, workers: int, max_runs: int, code_server_port: int,
                     advertise_host: str = "127.0.0.1") -> None:
        """Write dagster.yaml, celery.yaml and workspace.yaml for ``workers`` workers; the
        workspace names the code server at ``advertise_host:code_server_port``."""
        self.home.mkdir(parents=True, exist_ok=True)
        instance = yaml.safe_load((cfg.DEPLOY_DIR / "dagster.yaml").read_text())
        runs = instance["concurrency"]["runs"]
        runs["max_concurrent_runs"] = max_runs
        for limit in runs["tag_concurrency_limits"]:
            if limit["key"] == "dagster/backfill":  # other limits (one run per partition) stay
                limit["limit"] = max_runs
        instance["concurrency"]["pools"]["default_limit"] = workers
        (self.home / "dagster.yaml").write_text(yaml.safe_dump(instance, sort_keys=False))

        # broker and backend stay {env: ...} references, so the same file serves every host
        # (each reads the URLs of its own `cluster env`, e.g. another address for the services)
        celery = yaml.safe_load((cfg.DEPLOY_DIR / "celery.yaml").read_text())["execution"]["config"]
        source = dict(celery.get("config_source") or {})
        key_prefix = self.environment().get(KEY_PREFIX_ENV)
        if key_prefix:
            # every result key of this cluster in Redis starts with the prefix
            source["result_backend_transport_options"] = {"global_keyprefix": key_prefix}
        celery["config_source"] = source
        (self.dir / "celery.yaml").write_text(
            yaml.safe_dump({"execution": {"config": celery}}, sort_keys=False))

        workspace = {"load_from": [{"grpc_server": {
            "host": advertise_host, "port": code_server_port, "location_name": CODE_LOCATION}}]}
        (self.dir / "workspace.yaml").write_text(yaml.safe_dump(workspace, sort_keys=False))

    def write_env_file(self) -> Path:
        """Write ``cluster.env`` (shell exports of :meth:`environment`), readable by its owner
        only: it holds the bucket's credentials."""
        path = self.dir / "cluster.env"
        text = "".join(f"export {k}={_quote(v)}\n" for k, v in sorted(self.environment().items()))
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        return path

    # ------------------------------------------------------------------ up / down
    def up(self, workers: int = 3, max_runs: int | None = None, webserver_port: int | None = None,
           key_prefix: str | None = None, timeout_s: float = 180.0, vhost: str | None = None,
           bind_host: str = "127.0.0.1", advertise_host: str | None = None,
           code_server_port: int | None = None, join: bool = False,
           worker_name: str = "worker") -> ClusterState:
        """Check the settings and services, create what is missing (the database, the
        cluster's RabbitMQ vhost, the S3 bucket), write the config and start the processes;
        return when the code server listens and every worker answers a ping.

        With ``join`` (``screenalytics cluster join``, another host of a cluster whose
        ``cluster env`` is in the environment) only the supervised workers start, and nothing
        is created: the database, vhost and bucket must already be there.

        Args:
            workers: Celery workers (each runs one step at a time), kept running by the
                supervisor.
            max_runs: runs in progress at once (default: ``workers``).
            webserver_port: also start the webserver on this port (None: no webserver).
            key_prefix: prefix of this cluster's result keys in Redis.
            timeout_s: seconds to wait for the processes to be ready.
            vhost: the cluster's RabbitMQ vhost (see :meth:`settle`).
            bind_host: address the code server and the webserver listen on (``0.0.0.0``: every
                interface, for a daemon or webserver on another host).
            advertise_host: address the others reach the code server at (default: see
                :func:`advertised_host`).
            code_server_port: the code server's port (default: a free one).
            join: start only workers, joining the cluster of the environment's URLs.
            worker_name: the workers' Celery names are ``{worker_name}{i}@{hostname}``.

        Raises:
            ModelPackError: the model pack is not under the model root.
            StorageConfigError: incomplete S3 settings.
            ServiceUnavailableError: Postgres, the broker, Redis or the bucket cannot be used
                (nothing is started).
            ClusterError: a cluster already runs under this data root, or a process exited or
                was not ready in time (everything started is stopped again, and what was
                created removed).
        """
        if workers < 1:
            raise ClusterError(f"--workers must be at least 1, got {workers}")
        if any(self.running().values()):
            raise ClusterError(f"a cluster already runs under {self.dir}; "
                               "stop it first with `screenalytics cluster down`")
        settled = self.settle(vhost, key_prefix)
        broker = settled["SCREENALYTICS_CELERY_BROKER"]
        created: dict[str, str] = {}
        try:
            if cfg.check_postgres(create=not join):
                created["database"] = cfg.pg_url()
            if not join and cfg.ensure_vhost(broker):
                created["vhost"] = broker
            cfg.check_broker(broker)
            cfg.check_result_backend(cfg.backend_url())
            bucket = cfg.ensure_bucket(create=not join)
            if bucket:
                created["bucket"] = bucket
        except BaseException:
            _remove_created(created)
            raise
        for d in (self.pid_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)
        for old in self.pid_dir.glob("*.restarts"):  # counts of an earlier cluster here
            old.unlink()
        port = code_server_port or free_port()
        advertise = advertised_host(bind_host, advertise_host)
        st = ClusterState(code_server_port=port, webserver_port=webserver_port,
                          env=self.environment(), bind_host=bind_host, advertise_host=advertise,
                          created=created)
        self.state_file.write_text(json.dumps(asdict(st)))
        try:
            self.write_config(workers, max_runs or workers, port, advertise)
            env = {**os.environ, **self.environment()}
            env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
            env.setdefault("PYTHONUNBUFFERED", "1")
            self._init_instance(env)
            self.write_env_file()
            if not join:
                st.pids["code_server"] = self._spawn("code_server", [
                    _bin("dagster"), "code-server", "start", "-m", CODE_MODULE,
                    "-h", bind_host, "-p", str(port)], env)
                self._save(st)
            for i in range(1, workers + 1):
                name = f"{worker_name}{i}"
                st.workers.append(name)
                st.worker_commands[name] = [
                    _bin("dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                    "-y", str(self.dir / "celery.yaml"), "-n", name, "--",
                    "--concurrency=1", "--without-gossip", "--without-mingle"]
            self._save(st)
            # the supervisor starts the workers and starts again any that dies
            st.pids["supervisor"] = self._spawn("supervisor", [
                sys.executable, "-m", "screenalytics_assets.cluster.supervise", str(self.dir)],
                env)
            self._save(st)
            if not join:
                self._start_head(st, env, timeout_s)
            st.workers = self._wait_workers(st, deadline=time.monotonic() + timeout_s)
            self._save(st)
        except BaseException:
            self.down()
            _remove_created({k: v for k, v in created.items() if k != "vhost"})
            raise
        return self.state()

    def _start_head(self, st: ClusterState, env: dict[str, str], timeout_s: float) -> None:
        """Once the code server listens: the daemon and, when asked for, the webserver."""
        bind_host, port, webserver_port = st.bind_host, st.code_server_port, st.webserver_port
        connect = "127.0.0.1" if bind_host in (*ANY_ADDRESS, "127.0.0.1") else bind_host
        self._wait_port(connect, port, "code_server", deadline=time.monotonic() + timeout_s)
        st.pids["daemon"] = self._spawn("daemon", [
            _bin("dagster-daemon"), "run", "-w", str(self.dir / "workspace.yaml")], env)
        self._save(st)
        if webserver_port:
                st.pids["webserver"] = self._spawn("webserver", [
                    _bin("dagster-webserver"), "-w", str(self.dir / "workspace.yaml"),
                    "-h", bind_host, "-p", str(webserver_port)], env)
                self._save(st)

    def down(self, timeout_s: float = 30.0, purge: bool = False) -> list[str]:
        """Stop every process (SIGTERM to its process group, SIGKILL after ``timeout_s``) and
        delete the RabbitMQ vhost ``up`` created; with ``purge`` also drop the Postgres
        database and the bucket (with every object in it) that ``up`` created, and remove
        ``<data root>/cluster/``. Returns the names stopped. Does nothing when no cluster was
        started here."""
        st = self.state()
        if st is None:
            return []
        # the supervisor first, so that it starts no worker again (it stops its workers)
        order = [n for n in ("supervisor", "webserver", "daemon") if n in st.pids] + \
            [n for n in st.worker_commands if n in st.pids] + \
            [n for n in st.pids if n == "code_server"]
        for name in order:
            _signal_group(st.pids[name], signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(alive(st.pids[n]) for n in order):
            time.sleep(0.2)
        st = self.state() or st  # a worker the supervisor started meanwhile is stopped too
        for name in order:
            _signal_group(st.pids[name], signal.SIGKILL)
            alive(st.pids[name])  # reap
        for name in order:
            (self.pid_dir / f"{name}.pid").unlink(missing_ok=True)
        kept = {k: v for k, v in st.created.items() if not purge and k != "vhost"}
        _remove_created({k: v for k, v in st.created.items() if k not in kept})
        self.state_file.unlink(missing_ok=True)
        if purge:
            shutil.rmtree(self.dir, ignore_errors=True)
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
        return spawn(cmd, env, self.log_dir / f"{name}.log", self.pid_dir / f"{name}.pid",
                     cwd=self.dir).pid

    def _save(self, st: ClusterState) -> None:
        text = json.dumps(asdict(st))
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.state_file)

    def _check_alive(self) -> None:
        st = self.state()
        for name, pid in st.pids.items():
            restarts = self.pid_dir / f"{name}.restarts"
            if not alive(pid) or restarts.exists():
                raise ClusterError(f"{name} exited while starting; see {self.log_dir / name}.log:"
                                   f"\n{_tail(self.log_dir / f'{name}.log')}")

    def _wait_port(self, host: str, port: int, name: str, deadline: float) -> None:
        while True:
            with socket.socket() as s:
                if s.connect_ex((host, port)) == 0:
                    return
            self._check_alive()
            if time.monotonic() > deadline:
                raise ClusterError(f"{name} did not listen on {host}:{port} in time; "
                                   f"see {self.log_dir / name}.log")
            time.sleep(0.5)

    def _wait_workers(self, st: ClusterState, deadline: float) -> list[str]:
        app = celery_app(self.dir / "celery.yaml", self.environment())
        wanted = set(st.worker_commands)
        while True:
            replies = app.control.ping(timeout=1.0) or []
            names = sorted(n for r in replies for n in r)
            if {n.split("@", 1)[0] for n in names} >= wanted:
                return names
            self._check_alive()
            if time.monotonic() > deadline:
                missing = sorted(wanted - {n.split("@", 1)[0] for n in names})
                raise ClusterError(f"workers {missing} did not answer in time; see their logs "
                                   f"in {self.log_dir}")
            time.sleep(0.5)


def celery_app(celery_yaml: Path, env: dict[str, str] | None = None):
    """The Celery app of a dagster-celery config file (to ping or inspect its workers), its
    ``{env: VAR}`` URLs read from ``env`` over the process environment."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app

    conf = cfg.load_celery_config(celery_yaml, env)
    return make_app(CeleryExecutor.for_cli(broker=conf["broker"], backend=conf["backend"],
                                           config_source=conf.get("config_source")).app_args())


def spawn(cmd: list[str], env: dict[str, str], log: Path, pid_file: Path, cwd: Path
          ) -> subprocess.Popen:
    """Start ``cmd`` as the leader of a new process group, its output appended to ``log`` and
    its pid written to ``pid_file`` (atomically)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(cwd))
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(f"{proc.pid}\n")
    os.replace(tmp, pid_file)
    return proc


def _remove_created(created: dict[str, str]) -> None:
    """Remove the vhost, database and bucket of ``created`` (:attr:`ClusterState.created`);
    each failure is printed, the others still removed."""
    steps = {"vhost": cfg.delete_vhost, "bucket": cfg.delete_bucket, "database": cfg.drop_database}
    for kind, value in created.items():
        try:
            steps[kind](value)
        except Exception as exc:  # noqa: BLE001 - teardown goes on; the user is told what is left
            print(f"warning: could not remove the {kind} {cfg.redact(value)}: {exc}",
                  file=sys.stderr)


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
