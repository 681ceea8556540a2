"""Bad input and faults that used to give a wrong answer or a traceback: not-an-episode videos,
over-long and ambiguous ep_ids, season roll-ups across shows, bad cast photos, the data root or S3
going away mid-run, and two runs of one episode at once (see docs/reliability.md)."""

from __future__ import annotations

import contextlib
import io
import shutil
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from dagster import DagsterInstance

from resources.storage import LocalStore
from screenalytics_assets.cli.common import episode_lock
from screenalytics_assets.core.ep_id import MAX_EP_ID_LEN, MAX_SHOW_LEN, parse_ep_id
from screenalytics_assets.core.errors import InvalidEpIdError
from screenalytics_assets.partitions import EPISODES_PARTITION, season_episodes
from screenalytics_assets.progress import progress_sink
from tests.conftest import FACEBANK, FACES
from tests.faults import Cli, tiny_episode
from tests.s3_server import stoppable_server, use_s3_backend
from tests.test_bad_input import _assert_nothing_left

EP = "bad-s01e01"


def _run(cli_env, video, ep_id=EP) -> tuple[int, str]:
    from screenalytics_assets.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["run", str(video), "--ep-id", ep_id])
    return rc, err.getvalue()


def _write_video(path: Path, n_frames: int, fps: int = 25) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        if n_frames == 0:
            out.start_encoding()
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 10 % 255, np.uint8),
                                               format="bgr24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


# --------------------------------------------------------------------------- not an episode
def test_jpeg_renamed_mp4_is_not_an_episode(cli_env):
    fake = cli_env / "photo.mp4"
    shutil.copyfile(FACES / "person05" / "ref_01.jpg", fake)
    rc, err = _run(cli_env, fake)
    assert rc == 2
    assert "not an episode" in err and "still image" in err and str(fake) in err
    _assert_nothing_left(cli_env)


def test_a_stream_shorter_than_one_second_is_not_an_episode(cli_env):
    short = _write_video(cli_env / "short.mp4", 10, fps=25)
    rc, err = _run(cli_env, short)
    assert rc == 2
    assert "10 video frames" in err and "fewer than one second" in err and "(25 frames" in err
    _assert_nothing_left(cli_env)


def test_a_zero_frame_file_is_no_video_frames_not_audio_only(cli_env):
    empty = _write_video(cli_env / "zero.mp4", 0)
    assert empty.stat().st_size > 0
    rc, err = _run(cli_env, empty)
    assert rc == 2
    assert "no video frames" in err and "audio-only" not in err
    _assert_nothing_left(cli_env)


# --------------------------------------------------------------------------- ep_id grammar
def test_a_300_character_ep_id_is_a_clear_error(cli_env):
    ep_id = "a" * 293 + "-s01e01"
    with pytest.raises(InvalidEpIdError, match=f"at most {MAX_EP_ID_LEN} characters"):
        parse_ep_id(ep_id)
    rc, err = _run(cli_env, FACES / "person05" / "ref_01.jpg", ep_id)
    assert rc == 2 and "300 characters" in err and "OSError" not in err
    assert not (cli_env / "data").exists()
    longest = "b" * MAX_SHOW_LEN + "-s01e100"
    assert len(longest) == MAX_EP_ID_LEN and parse_ep_id(longest).episode == 100


@pytest.mark.parametrize("ep_id", ["x-s01e01-s01e02", "show-s01e01-s02e03"])
def test_a_show_slug_that_is_itself_an_ep_id_is_refused(ep_id):
    with pytest.raises(InvalidEpIdError, match="itself an episode id"):
        parse_ep_id(ep_id)


def test_season_roll_up_matches_the_parsed_show_not_a_text_prefix():
    with DagsterInstance.ephemeral() as inst:
        # added directly, as an older version (or a hand-made partition) could have
        inst.add_dynamic_partitions(EPISODES_PARTITION, [
            "x-s01e01", "x-s01e02", "x-s02e01", "x-s01e01-s01e01", "xx-s01e01", "x-s01e1"])
        assert season_episodes(inst, "x-s01") == ["x-s01e01", "x-s01e02"]
        assert season_episodes(inst, "xx-s01") == ["xx-s01e01"]


# --------------------------------------------------------------------------- facebank add
def _blank_photo(folder: Path) -> Path:
    path = folder / "blank.png"
    cv2.imwrite(str(path), np.full((400, 300, 3), 127, np.uint8))
    return path


def test_a_failed_facebank_add_stores_nothing(cli_env):
    from screenalytics_assets.cli import main

    blank = _blank_photo(cli_env)
    good = FACEBANK / "lin-manuel-miranda" / "01.png"
    store = LocalStore(cli_env / "data")
    for photos, cast_id, expected in [
        ([good, blank], "lin-manuel-miranda", "lin-manuel-miranda/blank.png: no face found"),
        ([FACES / "person04" / "ref_01.jpg"], "person04", "person04/ref_01.jpg: 3 faces"),
    ]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = main(["facebank", "add", "show", cast_id, *map(str, photos)])
        assert rc == 2 and expected in err.getvalue() and "Nothing was added" in err.getvalue()
        assert store.list_keys("facebank/") == []  # not even the good photo


def test_the_facebank_check_names_the_cast_member_and_photo(tmp_path):
    from tests.test_cast import _facebank_run

    blank = _blank_photo(tmp_path)
    _, result = _facebank_run(tmp_path, {"lin-manuel-miranda": [FACEBANK / "lin-manuel-miranda"
                                                                / "01.png"],
                                         "nobody": [blank]})
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed
    assert "cast member nobody" in check.description and "nobody/blank.png" in check.description


# --------------------------------------------------------------------------- faults mid-run
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return tiny_episode(tmp_path_factory.mktemp("tiny") / "tiny.mp4")


@pytest.mark.slow
def test_data_root_deleted_mid_run_is_a_clear_message(tiny, tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    data = tmp_path / "data"
    deleted = []

    def delete_data_root(stage: str, done: int, total: int) -> None:
        if stage == "detections" and done >= 5 and not deleted:
            shutil.rmtree(data)  # the instance (data/dagster_home) goes with it
            deleted.append(done)

    from screenalytics_assets.cli import main

    err = io.StringIO()
    monkeypatch.setenv("SCREENALYTICS_DATA_ROOT", str(data))
    with progress_sink(delete_data_root), contextlib.redirect_stderr(err):
        rc = main(["run", str(tiny), "--ep-id", "gone-s01e01", "--profile", "fast"])
    assert deleted and rc == 2
    message = err.getvalue()
    assert "was deleted or moved while the run was in progress" in message and str(data) in message
    assert "Traceback" not in message and "sqlalchemy" not in message.lower()
    assert " - dagster - " not in message  # no Dagster log lines before the error


@pytest.mark.slow
def test_s3_lost_mid_run_reports_the_first_error_and_leaves_no_local_copy(tiny, tmp_path,
                                                                           monkeypatch):
    server, endpoint = stoppable_server()
    stopped = []
    try:
        use_s3_backend(monkeypatch, endpoint, None, tmp_path / "data")
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))

        def stop_endpoint(stage: str, done: int, total: int) -> None:
            if stage == "detections" and done >= 5 and not stopped:
                server.stop()
                stopped.append(done)

        from screenalytics_assets.cli import main

        err = io.StringIO()
        with progress_sink(stop_endpoint), contextlib.redirect_stderr(err):
            rc = main(["run", str(tiny), "--ep-id", "lost-s01e01", "--profile", "fast"])
        assert stopped and rc == 2
        message = err.getvalue()
        assert "Traceback (most recent call last)" not in message
        assert " - dagster - " not in message  # Dagster's ERROR log only with --verbose
        assert "full log: " in message
        # the CLI's last word is the run's first error, then what cleanup could not undo
        last = message[message.rindex("\nerror: "):]
        assert "StorageUnavailableError" in last and "S3 endpoint unreachable" in last
        assert "botocore" not in last.split("); nothing was written")[1]
        assert "was left in place" in last
        cache = tmp_path / "data" / "cache" / "videos"
        assert not [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else True
    finally:
        server.stop()


# --------------------------------------------------------------------------- concurrent runs
def test_a_second_run_of_the_same_episode_is_refused_while_the_first_holds_it(cli_env,
                                                                             monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(cli_env / "dagster_home"))
    with episode_lock(EP):
        rc, err = _run(cli_env, tiny_episode(cli_env / "tiny.mp4"))
    assert rc == 2
    assert f"episode {EP} is already being run by pid" in err and "--wait" in err
    assert not (cli_env / "data" / "videos" / EP).exists()  # nothing written by the second


@pytest.mark.slow
def test_a_second_run_with_wait_starts_when_the_first_is_done(tiny, tmp_path, monkeypatch):
    cli = Cli(tmp_path)
    rc, _, err = cli("run", str(tiny), "--ep-id", "wait-s01e01", "--profile", "fast")
    assert rc == 0, err
    monkeypatch.setenv("DAGSTER_HOME", str(cli.home))
    held, release = threading.Event(), threading.Event()

    def first_run():
        with episode_lock("wait-s01e01"):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=first_run)
    holder.start()
    held.wait(10)
    threading.Timer(2.0, release.set).start()
    started = time.monotonic()
    rc, _, err = cli("run", "--ep-id", "wait-s01e01", "--stale-only", "--profile", "fast",
                     "--wait")
    holder.join()
    assert rc == 0, err
    assert time.monotonic() - started >= 1.5  # it waited for the first
    assert "nothing (every asset is up to date)" in " ".join(err.split())
