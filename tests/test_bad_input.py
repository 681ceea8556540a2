"""Bad input through the CLI: a clear error naming the input, and nothing left behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance

from screenalytics_assets.cli import main
from tests.clips import faststart_truncated
from tests.conftest import HAMILTON

EP = "bad-s01e01"


def _assert_nothing_left(root: Path, ep_id: str = EP) -> None:
    data = root / "data"
    for sub in ("videos", "manifests", "frames"):
        assert not (data / sub / ep_id).exists(), f"{sub}/{ep_id} was left behind"
    with DagsterInstance.from_config(str(root / "dagster_home")) as inst:
        assert not inst.has_dynamic_partition("episodes", ep_id)


def _run(video, ep_id=EP) -> int:
    return main(["run", str(video), "--ep-id", ep_id])


def test_missing_file(cli_env, capsys):
    assert _run(cli_env / "nope.mp4") == 2
    assert "video not found" in capsys.readouterr().err
    _assert_nothing_left(cli_env)


def test_empty_file(cli_env, capsys):
    empty = cli_env / "empty.mp4"
    empty.touch()
    assert _run(empty) == 2
    err = capsys.readouterr().err
    assert "empty (0 bytes)" in err and str(empty) in err
    _assert_nothing_left(cli_env)


def test_text_file_named_mp4(cli_env, capsys):
    fake = cli_env / "notes.mp4"
    fake.write_text("these are not frames\n" * 50)
    assert _run(fake) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "as a video" in err and str(fake) in err
    _assert_nothing_left(cli_env)


def test_truncated_video_without_index(cli_env, capsys):
    cut = cli_env / "truncated.mp4"
    cut.write_bytes(HAMILTON.read_bytes()[:300_000])  # the clip's index (moov) is at the end
    assert _run(cut) == 2
    assert "truncated or corrupted" in capsys.readouterr().err
    _assert_nothing_left(cli_env)


def test_truncated_video_that_breaks_off_while_decoding(cli_env, capsys):
    """Index first, then cut in half: it opens fine; read to its end before anything is
    written, it is refused (it used to be copied, then fail in detections)."""
    cut = faststart_truncated(HAMILTON, cli_env / "truncated_faststart.mp4")
    assert _run(cut) == 2
    err = capsys.readouterr().err
    assert f"{cut}: read 134 of the 275 frames" in err and "truncated" in err
    _assert_nothing_left(cli_env)


@pytest.mark.parametrize("ep_id", ["../x", "Bad-S01E01", "my show-s01e01", "x-s1e1"])
def test_invalid_ep_id(cli_env, capsys, ep_id):
    assert _run(HAMILTON, ep_id) == 2
    assert "invalid ep_id" in capsys.readouterr().err
    assert not (cli_env / "data").exists()
    assert not (cli_env / "x").exists() and not (cli_env.parent / "x").exists()


def test_missing_model_pack(cli_env, capsys, monkeypatch):
    monkeypatch.setenv("SCREENALYTICS_MODEL_PACK", "no_such_pack")
    assert _run(HAMILTON) == 2
    err = capsys.readouterr().err
    assert "model pack 'no_such_pack' not found" in err and "SCREENALYTICS_MODEL_ROOT" in err
    _assert_nothing_left(cli_env)
