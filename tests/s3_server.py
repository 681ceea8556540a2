"""A real S3 endpoint for tests: moto in server mode on 127.0.0.1, reached only over HTTP."""

from __future__ import annotations

import logging
import socket
import uuid
from contextlib import contextmanager

import boto3
from moto.server import ThreadedMotoServer

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def moto_server():
    """Yields the endpoint URL of a moto S3 server running in a thread."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log per request
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def stoppable_server() -> tuple[ThreadedMotoServer, str]:
    """A started moto server a test may stop (and start again on the same port) mid-run; the
    caller stops it. Returns ``(server, endpoint URL)``."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def use_s3_backend(monkeypatch, endpoint: str, bucket: str | None, data_root) -> str:
    """Point the CLI and the definitions at ``bucket`` on ``endpoint`` (fake credentials); a new
    bucket when ``bucket`` is None. Returns the bucket's name."""
    for k, v in FAKE_AWS_ENV.items():
        monkeypatch.setenv(k, v)
    bucket = bucket or new_bucket(endpoint)
    for k, v in {"STORAGE_BACKEND": "s3", "SCREENALYTICS_S3_BUCKET": bucket,
                 "SCREENALYTICS_S3_ENDPOINT_URL": endpoint,
                 "SCREENALYTICS_DATA_ROOT": str(data_root)}.items():
        monkeypatch.setenv(k, v)
    return bucket


def s3_client(endpoint: str):
    """A boto3 S3 client for the endpoint (credentials from the environment)."""
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def new_bucket(endpoint: str, stem: str = "screenalytics") -> str:
    """Create a bucket with a unique name; returns the name."""
    name = f"{stem}-{uuid.uuid4().hex[:8]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name
