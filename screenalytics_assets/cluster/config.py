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
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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


def load_celery_config(path: Path | None = None) -> dict:
    """The ``execution.config`` block of a dagster-celery config file, with ``broker`` and
    ``backend`` resolved (an ``{env: VAR}`` value reads VAR, falling back to the defaults above).

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
    for key, default in (("broker", broker_url()), ("backend", backend_url())):
        value = config.get(key)
        if value is None or isinstance(value, dict):
            config[key] = (os.environ.get(value["env"]) if isinstance(value, dict)
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


def check_postgres(url: str | None = None, create: bool = False) -> None:
    """Connect to the instance's Postgres database; with ``create``, create it when missing.

    Raises:
        ServiceUnavailableError: the server is unreachable or the database is missing.
    """
    import psycopg2
    from psycopg2 import sql

    url = url or pg_url()
    try:
        psycopg2.connect(_libpq_url(url), connect_timeout=CONNECT_TIMEOUT_S).close()
        return
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
        raise ServiceUnavailableError(
            f"Celery broker (RabbitMQ) at {redact(url)} is unreachable: {_first_line(exc)}. "
            "Start RabbitMQ or point SCREENALYTICS_CELERY_BROKER at it") from None


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


def check_services(create_database: bool = False) -> None:
    """Check Postgres, the broker and the result backend of the cluster, in that order.

    Raises:
        ServiceUnavailableError: naming the first service that cannot be reached.
    """
    check_postgres(create=create_database)
    config = load_celery_config()
    check_broker(config["broker"])
    check_result_backend(config["backend"])
