"""Which deployment runs the steps, from the environment: the embedded default or the cluster.

The embedded default keeps Dagster's SQLite instance under the data root and runs every step in
the calling process. The cluster (``SCREENALYTICS_EXECUTOR=celery``, docs/deploy.md) keeps the
same Definitions; its jobs get dagster-celery's ``celery_executor`` so each step becomes a Celery
task on a worker, and ``$DAGSTER_HOME/dagster.yaml`` (deploy/dagster.yaml) puts the instance on
Postgres.

Environment:
    SCREENALYTICS_EXECUTOR: ``in_process`` (default) or ``celery``.
    SCREENALYTICS_CELERY_CONFIG: the executor file in dagster-celery's format (the file the
        workers are started with); default ``deploy/celery.yaml``.
    SCREENALYTICS_CELERY_BROKER: broker URL (default ``pyamqp://guest:guest@127.0.0.1:5672//``).
    SCREENALYTICS_CELERY_BACKEND: result backend URL (default ``redis://127.0.0.1:6379/0``).
    SCREENALYTICS_PG_URL: Postgres database of the Dagster instance
        (default ``postgresql+psycopg2://postgres@127.0.0.1:5432/screenalytics``).
    SCREENALYTICS_MODEL_ROOT: must be an absolute path in every cluster process (they run in
        other folders, on other hosts); :func:`check_model_root` refuses a relative one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import yaml

from ..core.errors import ScreenalyticsError

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy"
EXECUTORS = ("in_process", "celery")
DEFAULT_PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/screenalytics"
DEFAULT_BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
DEFAULT_BACKEND = "redis://127.0.0.1:6379/0"
#: Seconds to wait for a service before calling it unreachable.
CONNECT_TIMEOUT_S = 5


class ClusterConfigError(ScreenalyticsError):
    """The cluster settings in the environment or in deploy/ are unknown or incomplete."""


class ServiceUnavailableError(ScreenalyticsError):
    """Postgres, the broker or the result backend cannot be reached; the message names the
    service, its URL (password hidden) and the setting that points at it."""


def executor_from_env() -> str:
    """``SCREENALYTICS_EXECUTOR`` (lower-cased), default ``in_process``.

    Raises:
        ClusterConfigError: an unknown executor name.
    """
    name = os.environ.get("SCREENALYTICS_EXECUTOR", "in_process").strip().lower() or "in_process"
    if name not in EXECUTORS:
        raise ClusterConfigError(
            f"SCREENALYTICS_EXECUTOR={name!r} is unknown; set it to 'in_process' (the embedded "
            "default) or 'celery' (the cluster, docs/deploy.md)")
    return name


def pg_url() -> str:
    """``SCREENALYTICS_PG_URL`` with the psycopg2 driver named (``postgresql+psycopg2://``):
    dagster-postgres installs psycopg2, and SQLAlchemy 2.1 otherwise picks psycopg 3."""
    url = os.environ.get("SCREENALYTICS_PG_URL") or DEFAULT_PG_URL
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url[len(scheme):]
    return url


def _libpq_url(url: str) -> str:
    """The URL as libpq (psycopg2.connect) reads it: no ``+driver`` in the scheme."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


def broker_url() -> str:
    return os.environ.get("SCREENALYTICS_CELERY_BROKER") or DEFAULT_BROKER


def backend_url() -> str:
    return os.environ.get("SCREENALYTICS_CELERY_BACKEND") or DEFAULT_BACKEND


def celery_config_path() -> Path:
    return Path(os.environ.get("SCREENALYTICS_CELERY_CONFIG") or DEPLOY_DIR / "celery.yaml")


def load_celery_config(path: Path | None = None, environ: dict[str, str] | None = None
                       ) -> dict:
    """The ``execution.config`` block of a dagster-celery config file, with ``broker`` and
    ``backend`` resolved (an ``{env: VAR}`` value reads VAR, falling back to the defaults above)
    from the process environment, overridden by ``environ``.

    Raises:
        ClusterConfigError: the file is missing or has no ``execution.config`` mapping.
    """
    path = Path(path or celery_config_path())
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ClusterConfigError(
            f"Celery config {path} cannot be read ({exc.strerror}); set "
            "SCREENALYTICS_CELERY_CONFIG to a dagster-celery config file such as "
            "deploy/celery.yaml") from None
    config = (doc.get("execution") or {}).get("config") if isinstance(doc, dict) else None
    if not isinstance(config, dict):
        raise ClusterConfigError(f"Celery config {path} has no `execution: config:` mapping")
    config = dict(config)
    env = {**os.environ, **(environ or {})}
    defaults = {"broker": env.get("SCREENALYTICS_CELERY_BROKER") or DEFAULT_BROKER,
                "backend": env.get("SCREENALYTICS_CELERY_BACKEND") or DEFAULT_BACKEND}
    for key, default in defaults.items():
        value = config.get(key)
        if value is None or isinstance(value, dict):
            config[key] = (env.get(value["env"]) if isinstance(value, dict)
                           and value.get("env") else None) or default
    return config


def celery_executor_from_env():
    """dagster-celery's ``celery_executor`` configured from :func:`load_celery_config`, or
    ``None`` for the embedded default (the Definitions' in-process executor).

    Raises:
        ClusterConfigError: unknown executor, missing config, or dagster-celery not installed.
    """
    if executor_from_env() != "celery":
        return None
    try:
        from dagster_celery import celery_executor
    except ImportError:
        raise ClusterConfigError(
            "SCREENALYTICS_EXECUTOR=celery needs the cluster extra: pip install -e '.[cluster]'"
        ) from None
    check_model_root()
    return celery_executor.configured(load_celery_config(), name="celery")


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_postgres(url: str | None = None, create: bool = False) -> bool:
    """Connect to the instance's Postgres database; with ``create``, create it when missing.
    Returns whether it was created.

    Raises:
        ServiceUnavailableError: the server is unreachable or the database is missing.
    """
    import psycopg2
    from psycopg2 import sql

    url = url or pg_url()
    try:
        psycopg2.connect(_libpq_url(url), connect_timeout=CONNECT_TIMEOUT_S).close()
        return False
    except psycopg2.OperationalError as exc:
        missing = "does not exist" in str(exc)
        if not (missing and create):
            raise ServiceUnavailableError(
                f"Postgres at {redact(url)} is unreachable: {_first_line(exc)}. Start "
                "PostgreSQL or point SCREENALYTICS_PG_URL at it") from None
    name = urlsplit(url).path.lstrip("/")
    admin = urlunsplit(urlsplit(_libpq_url(url))._replace(path="/postgres"))
    conn = psycopg2.connect(admin, connect_timeout=CONNECT_TIMEOUT_S)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()
    return True


def drop_database(url: str) -> None:
    """Drop the database of ``url`` (its open connections closed first); nothing when missing.

    Raises:
        ServiceUnavailableError: the server is unreachable.
    """
    import psycopg2
    from psycopg2 import sql

    name = urlsplit(url).path.lstrip("/")
    admin = urlunsplit(urlsplit(_libpq_url(url))._replace(path="/postgres"))
    try:
        conn = psycopg2.connect(admin, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg2.OperationalError as exc:
        raise ServiceUnavailableError(
            f"Postgres at {redact(url)} is unreachable: {_first_line(exc)}") from None
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
    finally:
        conn.close()


def broker_vhost(url: str) -> str:
    """The RabbitMQ virtual host an AMQP URL names: ``pyamqp://u:p@h:5672//`` and
    ``pyamqp://u:p@h:5672/`` -> ``/`` (the broker's default vhost), ``.../sa_1`` -> ``sa_1``
    (kombu's reading: the path after the first ``/``, percent-decoded)."""
    path = urlsplit(url).path
    vhost = unquote(path[1:]) if path.startswith("/") else unquote(path)
    return vhost or "/"


def with_vhost(url: str, vhost: str) -> str:
    """``url`` naming virtual host ``vhost`` instead of its own."""
    return urlunsplit(urlsplit(url)._replace(path="/" + quote(vhost, safe="")))


def vhost_commands(vhost: str, user: str) -> str:
    """The two ``rabbitmqctl`` commands that create ``vhost`` and let ``user`` use it."""
    return (f"rabbitmqctl add_vhost {vhost} && rabbitmqctl set_permissions -p {vhost} {user} "
            "'.*' '.*' '.*'")


def _rabbitmqctl(*args: str) -> str:
    done = subprocess.run([shutil.which("rabbitmqctl") or "rabbitmqctl", "-q", *args],
                          capture_output=True, text=True, timeout=60)
    if done.returncode:
        raise ServiceUnavailableError(
            f"rabbitmqctl {' '.join(args)} failed: {_first_line(Exception(done.stderr))}")
    return done.stdout


def ensure_vhost(url: str) -> bool:
    """Create the broker URL's virtual host and grant its user every permission on it, with
    ``rabbitmqctl`` (RabbitMQ's own admin tool, which reaches the node of this host); returns
    whether it was created. Does nothing for the default vhost ``/``, for a broker on another
    host, without ``rabbitmqctl`` or when its node does not answer (the vhost must then exist:
    :func:`check_broker` says how to create it).

    Raises:
        ServiceUnavailableError: the vhost was created but its permissions could not be set.
    """
    vhost = broker_vhost(url)
    if vhost == "/" or shutil.which("rabbitmqctl") is None or not _local(url):
        return False
    try:
        if vhost in _rabbitmqctl("list_vhosts", "name").split():
            return False
        _rabbitmqctl("add_vhost", vhost)
    except ServiceUnavailableError:
        return False  # the node is down: check_broker says so, naming the URL
    _rabbitmqctl("set_permissions", "-p", vhost, unquote(urlsplit(url).username or "guest"),
                 ".*", ".*", ".*")
    return True


def _local(url: str) -> bool:
    """Whether the URL's host is this host (where ``rabbitmqctl`` reaches the broker's node)."""
    import socket

    host = urlsplit(url).hostname or "localhost"
    return host in ("localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn())


def delete_vhost(url: str) -> None:
    """Delete the broker URL's virtual host (and its queues) with ``rabbitmqctl``.

    Raises:
        ServiceUnavailableError: ``rabbitmqctl`` is missing or failed.
    """
    if shutil.which("rabbitmqctl") is None:
        raise ServiceUnavailableError(
            f"rabbitmqctl is not installed here; delete the vhost {broker_vhost(url)!r} on the "
            "broker's host: rabbitmqctl delete_vhost NAME")
    _rabbitmqctl("delete_vhost", broker_vhost(url))


def check_broker(url: str | None = None) -> None:
    """Open (and close) a connection to the Celery broker.

    Raises:
        ServiceUnavailableError: the broker is unreachable or refuses the login or vhost.
    """
    from kombu import Connection

    url = url or broker_url()
    try:
        with Connection(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            conn.ensure_connection(max_retries=1, timeout=CONNECT_TIMEOUT_S)
    except Exception as exc:  # kombu raises the transport's own errors (socket, AMQP, ...)
        vhost = broker_vhost(url)
        hint = ("" if vhost == "/" else
                f"; if its vhost {vhost!r} does not exist, create it on the broker's host: "
                + vhost_commands(vhost, unquote(urlsplit(url).username or "guest")))
        raise ServiceUnavailableError(
            f"Celery broker (RabbitMQ) at {redact(url)} is unreachable: {_first_line(exc)}. "
            f"Start RabbitMQ or point SCREENALYTICS_CELERY_BROKER at it{hint}") from None


def check_result_backend(url: str | None = None) -> None:
    """Ping the Redis result backend (other backends are not checked).

    Raises:
        ServiceUnavailableError: Redis is unreachable.
    """
    url = url or backend_url()
    if not url.startswith(("redis://", "rediss://")):
        return
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_S).ping()
    except redis.RedisError as exc:
        raise ServiceUnavailableError(
            f"Celery result backend (Redis) at {redact(url)} is unreachable: "
            f"{_first_line(exc)}. Start Redis or point SCREENALYTICS_CELERY_BACKEND at it"
        ) from None


def check_model_root(root: str | None = None) -> str:
    """The model root of a cluster process (``SCREENALYTICS_MODEL_ROOT``), which must be
    absolute: cluster processes run in other folders (the code server, run workers and Celery
    workers start in ``<data root>/cluster/``, other hosts anywhere), where a relative root
    such as ``../shared`` names another folder or none. ``~`` is expanded.

    Raises:
        ClusterConfigError: the root is relative (naming it, and the absolute path it meant
            here).
    """
    from resources.models import DEFAULT_MODEL_ROOT

    raw = root if root is not None else os.environ.get("SCREENALYTICS_MODEL_ROOT",
                                                       DEFAULT_MODEL_ROOT)
    path = os.path.expanduser(raw)
    if not os.path.isabs(path):
        raise ClusterConfigError(
            f"SCREENALYTICS_MODEL_ROOT={raw!r} is a relative path; the cluster's processes run "
            f"in other folders and hosts, so it must be absolute, e.g. "
            f"SCREENALYTICS_MODEL_ROOT={os.path.abspath(path)} (the same path on every host)")
    return path


def ensure_bucket(create: bool = True) -> str | None:
    """With ``STORAGE_BACKEND=s3``, check that the bucket of ``SCREENALYTICS_S3_BUCKET`` can be
    reached with the credentials of the AWS chain, creating it when it does not exist (with
    ``create``; else that is an error); returns its name when it was created (None otherwise,
    and for local storage).

    Raises:
        StorageConfigError: incomplete S3 settings.
        ServiceUnavailableError: no credentials, the endpoint is unreachable, or the bucket
            exists but is not ours to use (403) or cannot be created.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from resources.backend import backend_from_env, storage_from_env

    if backend_from_env() != "s3":
        return None
    storage = storage_from_env()
    client, bucket = storage.s3.get_client(), storage.bucket
    where = f"S3 bucket {bucket!r}" + (f" at {storage.s3.endpoint_url}"
                                       if storage.s3.endpoint_url else "")
    try:
        client.head_bucket(Bucket=bucket)
        return None
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise ServiceUnavailableError(
                f"{where} cannot be used ({code}: {_first_line(exc)}); check AWS_ACCESS_KEY_ID "
                "/ AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and the bucket's policy") from None
    except BotoCoreError as exc:  # no credentials, endpoint unreachable
        raise ServiceUnavailableError(
            f"{where} is unreachable: {_first_line(exc)}. Set the credentials "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and the endpoint "
            "(SCREENALYTICS_S3_ENDPOINT_URL for MinIO and other S3-compatible stores)") from None
    if not create:
        raise ServiceUnavailableError(
            f"{where} does not exist; start the cluster's first host with `screenalytics "
            "cluster up` (it creates the bucket), or check SCREENALYTICS_S3_BUCKET")
    region = client.meta.region_name
    extra = ({"CreateBucketConfiguration": {"LocationConstraint": region}}
             if region and region != "us-east-1" and not storage.s3.endpoint_url else {})
    try:
        client.create_bucket(Bucket=bucket, **extra)
    except (ClientError, BotoCoreError) as exc:
        raise ServiceUnavailableError(
            f"{where} does not exist and cannot be created: {_first_line(exc)}; create it "
            f"(e.g. `aws s3 mb s3://{bucket}`) or point SCREENALYTICS_S3_BUCKET at one") from None
    return bucket


def delete_bucket(bucket: str) -> None:
    """Delete every object (every version) of ``bucket``, then the bucket, with the storage
    settings of the environment (endpoint, region, credentials)."""
    from resources.backend import storage_from_env

    client = storage_from_env().s3.get_client()
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        objs = [{"Key": o["Key"], "VersionId": o["VersionId"]}
                for o in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if objs:
            client.delete_objects(Bucket=bucket, Delete={"Objects": objs})
    client.delete_bucket(Bucket=bucket)


def check_services(create_database: bool = False) -> None:
    """Check Postgres, the broker and the result backend of the cluster, in that order.

    Raises:
        ServiceUnavailableError: naming the first service that cannot be reached.
    """
    check_postgres(create=create_database)
    config = load_celery_config()
    check_broker(config["broker"])
    check_result_backend(config["backend"])
