"""Bad input through the CLI: a clear error naming the input, and nothing left behind."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from dagster import DagsterInstance

from screenalytics_assets.cli import main
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


def _faststart_truncated(tmp_path: Path) -> Path:
    """The clip remuxed with its index first (as streaming uploads are), then cut in half: it
    opens fine and breaks off while decoding."""
    full = tmp_path / "faststart.mp4"
    with av.open(str(HAMILTON)) as src, av.open(str(full), "w",
                                                  options={"movflags": "faststart"}) as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    cut = tmp_path / "truncated_faststart.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    return cut


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


@pytest.mark.slow
def test_truncated_video_that_breaks_off_while_decoding(cli_env, capsys):
    cut = _faststart_truncated(cli_env)
    assert _run(cut) == 2
    err = capsys.readouterr().err
    assert "detections" in err and "truncated" in err
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
