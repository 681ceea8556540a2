"""What the CLI says when things go wrong: a bad re-upload never replaces a good episode (locally,
on S3, through the upload sensor), and every failure is one ``error:`` line naming the file and
the fix, with no Python traceback: an unknown codec, a read-only data root or ``DAGSTER_HOME``, a
failed step (its full log goes to a file), a port in use, a full disk (see docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from resources.s3_storage import S3Store
from resources.storage import LocalStore, file_sha256
from screenalytics_assets.partitions import register_episode
from screenalytics_assets.progress import progress_sink
from screenalytics_assets.staleness import observe_video
from sensors.upload import scan_uploads
from tests.clips import cut_clip, faststart_truncated, unknown_codec
from tests.s3_server import moto_server, new_bucket, s3_client, use_s3_backend

EP = "reup-s01e01"


def _cli(*args: str) -> tuple[int, str, str]:
    """``screenalytics ARGS`` in this process: (exit status, stdout, stderr)."""
    from screenalytics_assets.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


def _one_error_line(err: str) -> str:
    """The CLI's whole stderr is one ``error:`` line (no traceback, no Dagster log)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def _run_error_line(err: str) -> str:
    """A run that started prints its plan, then one ``error:`` line, last: no traceback, no
    Dagster log, no SQL."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and sum(x.startswith("error: ") for x in lines) == 1
    assert "Traceback" not in err and " - dagster - " not in err and "sqlite" not in err.lower()
    return lines[-1]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("reupload-clips")
    good = cut_clip(d / "good.mp4", start=82, frames=45)
    return {"good": good, "truncated": faststart_truncated(good, d / "truncated.mp4"),
            "unknown": unknown_codec(good, d / "unknown_codec.mp4")}


def _video_version_seen(instance: DagsterInstance, ep_id: str) -> str | None:
    """The data version of the newest ``episode_video`` observation of ``ep_id``."""
    records = instance.fetch_observations(
        AssetRecordsFilter(asset_key=AssetKey("episode_video"), asset_partitions=[ep_id]),
        limit=1).records
    return records[0].asset_observation.tags["dagster/data_version"] if records else None


# --------------------------------------------------------------------------- 1. re-uploads
def _good_episode(cli_env, store, video: Path) -> DagsterInstance:
    """An episode whose good video was uploaded and observed (as a run records it)."""
    store.put_video(EP, video)
    instance = DagsterInstance.get()
    register_episode(instance, EP)
    observe_video(instance, store, EP)
    return instance


def test_a_truncated_reupload_keeps_the_good_video_and_its_data_version(cli_env, clips):
    store = LocalStore(cli_env / "data")
    instance = _good_episode(cli_env, store, clips["good"])
    before = _video_version_seen(instance, EP)
    assert before == file_sha256(clips["good"])
    rc, _, err = _cli("run", str(clips["truncated"]), "--ep-id", EP)
    assert rc == 2
    assert "truncated" in _one_error_line(err) and str(clips["truncated"]) in err
    assert store.path(store.video_key(EP)).read_bytes() == clips["good"].read_bytes()
    assert _video_version_seen(instance, EP) == before
    assert instance.has_dynamic_partition("episodes", EP)


def test_a_truncated_reupload_to_s3_keeps_the_good_video(cli_env, clips, monkeypatch):
    with moto_server() as endpoint:
        bucket = use_s3_backend(monkeypatch, endpoint, None, cli_env / "data")
        store = S3Store(s3_client(endpoint), bucket, cache_dir=cli_env / "cache")
        instance = _good_episode(cli_env, store, clips["good"])
        etag = store.video_version(EP)
        rc, _, err = _cli("run", str(clips["truncated"]), "--ep-id", EP)
        assert rc == 2 and "truncated" in _one_error_line(err)
        assert store.video_version(EP) == etag
        assert _video_version_seen(instance, EP) == etag


def test_the_sensor_skips_a_truncated_reupload_of_a_known_episode(tmp_path, clips, monkeypatch,
                                                                  caplog):
    """The upload lands in the bucket (nothing can stop that), but the tick records no new
    data version and requests no run: the episode's last good run stays as it was."""
    with moto_server() as endpoint:
        use_s3_backend(monkeypatch, endpoint, "unused", tmp_path)
        client, bucket = s3_client(endpoint), new_bucket(endpoint)
        store = S3Store(client, bucket, cache_dir=tmp_path / "cache")
        key = f"videos/{EP}/episode.mp4"
        log = logging.getLogger("test-reupload-sensor")
        client.upload_file(str(clips["good"]), bucket, key)
        first = scan_uploads(store, None, set(), log)
        assert [r.partition_key for r in first.run_requests] == [EP]
        client.upload_file(str(clips["truncated"]), bucket, key)
        with caplog.at_level(logging.WARNING, logger=log.name):
            second = scan_uploads(store, first.cursor, {EP}, log)
        assert not second.run_requests and not second.observations
        assert "truncated" in second.skipped[key]
        assert any(key in r.getMessage() and "keeps its last good run" in r.getMessage()
                   for r in caplog.records)
        # reported once per version: the next tick is quiet; a good re-upload runs again
        assert not scan_uploads(store, second.cursor, {EP}, log).skipped
        client.upload_file(str(clips["good"]), bucket, key)
        third = scan_uploads(store, second.cursor, {EP}, log)
        assert [r.partition_key for r in third.run_requests] == [EP]


# --------------------------------------------------------------------------- 2. tracebacks
def test_a_video_with_an_unknown_codec_is_one_error_line(cli_env, clips):
    rc, _, err = _cli("run", str(clips["unknown"]), "--ep-id", EP)
    assert rc == 2
    line = _one_error_line(err)
    assert str(clips["unknown"]) in line and "codec" in line and "ffmpeg" in line
    assert not (cli_env / "data" / "videos").exists()


@contextlib.contextmanager
def _tmpfs(path: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A small tmpfs mounted at ``path`` (read-only, or ``size`` bytes big: a full disk is
    real, not faked); skips the test where mounting is not allowed (not root)."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size},mode=0755" + (",ro" if read_only else "")
    device = f"screenalytics-{uuid.uuid4().hex[:6]}"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, device, str(path)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_a_read_only_data_root_is_one_error_line(tmp_path, clips, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with _tmpfs(tmp_path / "ro", "1m", read_only=True) as root:
        monkeypatch.setenv("SCREENALYTICS_DATA_ROOT", str(root))
        rc, _, err = _cli("run", str(clips["good"]), "--ep-id", EP)
    assert rc == 2
    line = _one_error_line(err)
    assert f"cannot write the Dagster instance at {root / 'dagster_home'}" in line
    assert "Read-only file system" in line and "writable" in line


def test_a_read_only_data_root_with_a_writable_dagster_home_is_one_error_line(
        tmp_path, clips, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    with _tmpfs(tmp_path / "ro", "1m", read_only=True) as root:
        monkeypatch.setenv("SCREENALYTICS_DATA_ROOT", str(root))
        rc, _, err = _cli("run", str(clips["good"]), "--ep-id", EP)
    assert rc == 2
    line = _one_error_line(err)
    assert f"cannot write {root / 'videos'}" in line and "Read-only file system" in line


def test_a_read_only_dagster_home_is_one_error_line(tmp_path, clips, monkeypatch):
    with _tmpfs(tmp_path / "home", "1m", read_only=True) as home:
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        monkeypatch.setenv("SCREENALYTICS_DATA_ROOT", str(tmp_path / "data"))
        rc, _, err = _cli("run", str(clips["good"]), "--ep-id", EP)
    assert rc == 2
    line = _one_error_line(err)
    assert f"cannot write the Dagster instance at {home}" in line and "DAGSTER_HOME" in line
    assert not (tmp_path / "data" / "videos").exists()


# --------------------------------------------------------------------------- 3. step failures
def test_a_failed_step_is_one_line_with_the_log_file_and_the_stack_with_verbose(cli_env):
    """An empty facebank build used to print 71 lines of Dagster's log and stack traces."""
    rc, _, err = _cli("facebank", "build", "emptyshow")
    assert rc == 2
    line = _one_error_line(err)
    assert "the facebank of show 'emptyshow' is empty" in line
    assert "FacebankError: screenalytics_assets" not in line  # the class named once
    log = Path(line.split("full log: ")[1].split(";")[0])
    run_id = log.stem
    assert log.parent == cli_env / "data" / "logs" and f"run {run_id} " in line
    text = log.read_text()
    assert "STEP_FAILURE" in text and "Stack Trace:" in text and "FacebankError" in text
    rc, _, err = _cli("facebank", "build", "emptyshow", "--verbose")
    assert rc == 2 and "Stack Trace:" in err and err.rstrip().splitlines()[-1].startswith("error:")


# --------------------------------------------------------------------------- 4. ports in use
@pytest.mark.parametrize("command", ["serve", "review-ui"])
def test_a_port_in_use_is_refused_before_anything_starts(cli_env, command):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rc, out, err = _cli(command, "--port", str(port))
    assert rc == 2 and out == ""  # nothing started, no URL printed
    line = _one_error_line(err)
    assert f"port {port} on 127.0.0.1 is already in use" in line and "--port" in line
    assert not (cli_env / "dagster_home" / "history").exists()  # no instance storage touched


# --------------------------------------------------------------------------- 5. full disk
def test_a_full_disk_says_so_and_how_much_the_run_needs(tmp_path, clips, monkeypatch):
    """The data root (and the Dagster instance in it) on a 24 MiB tmpfs that fills up while
    detections runs: the run used to end in "disk I/O error ... Restore the data root"."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with _tmpfs(tmp_path / "small", "24m") as root:
        filled = []

        def fill_the_disk(stage: str, done: int, total: int) -> None:
            if stage == "detections" and not filled:
                filled.append(done)
                with open(root / "filler", "wb") as f:
                    with contextlib.suppress(OSError):
                        while True:
                            f.write(b"\0" * (1 << 16))
                            f.flush()

        monkeypatch.setenv("SCREENALYTICS_DATA_ROOT", str(root))
        with progress_sink(fill_the_disk):
            rc, _, err = _cli("run", str(clips["good"]), "--ep-id", EP, "--profile", "fast")
    assert filled and rc == 2
    line = _run_error_line(err)
    assert f"the disk holding {root}" in line and "is full" in line and "of 24.0 MiB" in line
    assert "the run needs about" in line and "MiB there" in line
    assert "disk I/O error" not in line and "Restore the data root" not in line
