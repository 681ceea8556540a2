"""Unusual but valid input, and input that must be refused: audio-only files, videos without
faces, very large frames, variable frame rate, a corrupted model file."""

from __future__ import annotations

import math
import shutil
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from resources.models import load_face_models
from screenalytics_assets.cli import main
from screenalytics_assets.core.errors import ModelPackError
from tests.conftest import FACES, SHARED
from tests.helpers import run_episode

FACE_PHOTO = FACES / "person05" / "ref_02.jpg"


def _nothing_left(root: Path, ep_id: str) -> None:
    for sub in ("videos", "manifests", "frames"):
        assert not (root / "data" / sub / ep_id).exists(), sub


def _write_video(path: Path, frames, times_s, size, codec="libx264", pix_fmt="yuv420p"):
    """Encode BGR frames with explicit presentation times (s) in a 1/1000 s time base."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=30)
        stream.width, stream.height = size
        stream.pix_fmt = pix_fmt
        stream.codec_context.time_base = Fraction(1, 1000)
        for img, t in zip(frames, times_s):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
            vf.pts, vf.time_base = int(round(t * 1000)), Fraction(1, 1000)
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _face_frame(width: int, height: int) -> np.ndarray:
    photo = cv2.imread(str(FACE_PHOTO))
    scale = min(width / photo.shape[1], height / photo.shape[0])
    img = cv2.resize(photo, (int(photo.shape[1] * scale) // 2 * 2, int(photo.shape[0] * scale) // 2 * 2))
    frame = np.zeros((height, width, 3), np.uint8)
    y, x = (height - img.shape[0]) // 2, (width - img.shape[1]) // 2
    frame[y:y + img.shape[0], x:x + img.shape[1]] = img
    return frame


def test_audio_only_file_is_refused(cli_env, capsys):
    path = cli_env / "podcast.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        t = np.arange(16000) / 16000
        samples = (0.2 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)[None]
        frame_size = stream.codec_context.frame_size or 1024
        for i in range(0, samples.shape[1] - frame_size, frame_size):
            af = av.AudioFrame.from_ndarray(samples[:, i:i + frame_size], format="fltp",
                                            layout="mono")
            af.sample_rate, af.pts = 16000, i
            for packet in stream.encode(af):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    assert main(["run", str(path), "--ep-id", "audio-s01e01"]) == 2
    err = capsys.readouterr().err
    assert "no video stream" in err and str(path) in err
    _nothing_left(cli_env, "audio-s01e01")


@pytest.mark.slow
def test_video_without_faces_succeeds_with_empty_artifacts(tmp_path):
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (180, 320, 3), np.uint8), (0, 0), 3)
              for _ in range(20)]
    video = _write_video(tmp_path / "noface.mp4", frames, [i / 10 for i in range(20)], (320, 180))
    run = run_episode(tmp_path, video, "empty-s01e01")
    assert run.result.success
    assert len(run.load("detections").detections) == 0
    assert run.load("tracks").tracks == []
    assert len(run.load("faces").samples) == 0
    assert run.load("embeddings").vectors.shape == (0, 512)
    assert run.load("identities").identities == []
    report = run.load("screentime")
    assert report.people == [] and report.duration_s == pytest.approx(2.0, abs=0.05)
    assert all(e.passed for e in run.result.get_asset_check_evaluations())


@pytest.mark.slow
def test_variable_frame_rate_screen_time_follows_real_timestamps(tmp_path):
    # 10 frames of 0.1 s, then 30 frames of 1/30 s, all with a face (2.0 s); then 1.0 s blank
    face = _face_frame(640, 360)
    blank = np.zeros_like(face)
    times = [i * 0.1 for i in range(10)] + [1.0 + i / 30 for i in range(30)] + \
        [2.0 + i * 0.1 for i in range(10)]
    frames = [face] * 40 + [blank] * 10
    video = _write_video(tmp_path / "vfr.mp4", frames, times, (640, 360))
    run = run_episode(tmp_path, video, "vfr-s01e01")
    scan = run.load("detections")
    assert scan.video.n_frames == 50
    assert sorted(set(np.round(scan.detections.ts, 3))) == pytest.approx(times[:40], abs=1e-3)
    report = run.load("screentime")
    assert len(report.people) == 1
    assert report.people[0].seconds == pytest.approx(2.0, abs=0.05)
    assert report.people[0].last_ts == pytest.approx(2.0, abs=0.05)


@pytest.mark.slow
def test_very_large_frames_are_processed(tmp_path):
    # 4K UHD: the detector letterboxes to its input size; alignment uses full-size landmarks
    face = _face_frame(3840, 2160)
    video = _write_video(tmp_path / "uhd.mp4", [face] * 4, [i / 4 for i in range(4)],
                         (3840, 2160))
    run = run_episode(tmp_path, video, "uhd-s01e01")
    scan = run.load("detections")
    assert (scan.video.width, scan.video.height) == (3840, 2160)
    assert len(scan.detections) == 4
    assert run.load("screentime").people[0].seconds == pytest.approx(1.0, abs=0.05)


def test_absurd_frame_size_is_refused(cli_env, capsys):
    video = _write_video(cli_env / "huge.avi", [np.zeros((9000, 9000, 3), np.uint8)], [0.0],
                         (9000, 9000), codec="mjpeg", pix_fmt="yuvj420p")
    assert main(["run", str(video), "--ep-id", "huge-s01e01"]) == 2
    err = capsys.readouterr().err
    assert "9000x9000" in err and "downscale" in err
    _nothing_left(cli_env, "huge-s01e01")


def test_corrupted_model_file(cli_env, capsys, monkeypatch):
    root = cli_env / "models_root"
    pack = root / "models" / "ci_pack"
    shutil.copytree(SHARED / "models" / "ci_pack", pack)
    data = (pack / "fr_feature.onnx").read_bytes()
    (pack / "fr_feature.onnx").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelPackError, match="fr_feature.onnx"):
        load_face_models(str(root), "ci_pack", "cpu")
    monkeypatch.setenv("SCREENALYTICS_MODEL_ROOT", str(root))
    assert main(["run", str(SHARED / "media" / "short_hamilton_clip.mp4"),
                 "--ep-id", "model-s01e01"]) == 2
    err = capsys.readouterr().err
    assert "fr_feature.onnx" in err and "corrupted" in err
    _nothing_left(cli_env, "model-s01e01")
