"""One per-face row type (detections, a track's frames, sampled faces) and its codec."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

from screenalytics_assets.core import tracking
from screenalytics_assets.core.artifacts import (
    CODECS,
    FaceSet,
    TrackSet,
    dump_faces,
    dump_tracks,
    jsonl_bytes,
)
from screenalytics_assets.core.detect import Detections, EpisodeScan
from screenalytics_assets.core.rows import FaceRows, FaceRowsError, decode_rows, encode_rows
from screenalytics_assets.core.sampling import FaceSamples, select_samples
from screenalytics_assets.core.shots import Shot
from screenalytics_assets.core.tracking import Track, track_detections
from screenalytics_assets.core.video import VideoInfo


def _rows(n: int, **extra) -> FaceRows:
    f = np.arange(n)
    box = np.stack([f * 2.0, f, f * 2.0 + 50.5, f + 60.25], 1)
    lm = np.tile(np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], float), (n, 1, 1))
    return FaceRows(f, f / 10, f * 100, box, np.full(n, 0.91234567), lm, **extra)


def test_columns_are_cast_to_their_dtype_and_shapes_checked():
    r = _rows(3, shot_id=[0, 0, 1], dur=[0.1, 0.1, 0.1])
    assert (r.frame_idx.dtype, r.bbox.dtype, r.shot_id.dtype, r.dur.dtype) == (
        np.int64, np.float32, np.int32, np.float64)
    assert r.landmarks.shape == (3, 5, 2) and len(r) == 3
    with pytest.raises(FaceRowsError, match="bbox has shape"):
        FaceRows(np.arange(2), np.zeros(2), np.zeros(2), np.zeros((2, 3)), np.zeros(2),
                 np.zeros((2, 5, 2)))
    with pytest.raises(FaceRowsError, match="score has 1 rows"):
        FaceRows(np.arange(2), np.zeros(2), np.zeros(2), np.zeros((2, 4)), np.zeros(1),
                 np.zeros((2, 5, 2)))
    with pytest.raises(FaceRowsError, match="quality"):
        _rows(2, quality=np.zeros(3))


def test_row_selection_keeps_every_column():
    r = _rows(5, dur=np.full(5, 0.1), det_index=np.arange(5) + 10)
    sub = r[np.array([1, 3])]
    assert sub.frame_idx.tolist() == [1, 3] and sub.det_index.tolist() == [11, 13]
    assert sub.quality is None and sub.bbox.shape == (2, 4)
    assert len(r[r.frame_idx > 2]) == 2
    assert len(FaceRows.empty()) == 0 and FaceRows.empty().landmarks.shape == (0, 5, 2)


@pytest.mark.parametrize("chunk", [4096, 3])
def test_one_codec_round_trips_and_rounds(chunk, monkeypatch):
    """Rows are converted a chunk at a time (so a long episode's table is never all Python
    objects at once); a chunk boundary inside the table changes nothing."""
    import screenalytics_assets.core.rows as rows_module

    monkeypatch.setattr(rows_module, "CHUNK_ROWS", chunk)
    r = _rows(4, dur=np.full(4, 1 / 3), det_index=np.arange(4))
    names = ("frame_idx", "ts", "pts", "det_index", "dur", "bbox", "score", "landmarks")
    recs = list(encode_rows(r, names, {"det_index": "det_id"}))
    assert len(recs) == 4 and recs[3]["det_id"] == 3
    assert list(recs[0]) == ["frame_idx", "ts", "pts", "det_id", "dur", "bbox", "score",
                             "landmarks"]
    assert recs[1]["score"] == 0.9123 and recs[1]["dur"] == 0.333333
    back = decode_rows(iter(json.loads(json.dumps(recs))), names, {"det_index": "det_id"})
    assert back.det_index.tolist() == [0, 1, 2, 3] and back.landmarks.shape == (4, 5, 2)
    np.testing.assert_allclose(back.bbox, r.bbox, atol=0.005)
    assert len(decode_rows([], names)) == 0


def test_detections_tracks_and_samples_are_the_same_type_through_their_files():
    assert Detections is FaceRows and FaceSamples is FaceRows
    n = 6
    dets = _rows(n, shot_id=np.zeros(n), dur=np.full(n, 0.1))
    video = VideoInfo(fps=10.0, n_frames=n, duration_s=0.6, width=320, height=180,
                      time_base="1/10", start_pts=0)
    scan = EpisodeScan(video, 1, n, [Shot(0, 0, n - 1, 0.0, 0.6)], dets)
    files = CODECS["detections"].dump(scan)
    loaded = CODECS["detections"].load(files.__getitem__).detections
    assert isinstance(loaded, FaceRows) and loaded.shot_id.dtype == np.int32
    tracks = track_detections(loaded, 10.0)
    assert len(tracks) == 1 and isinstance(tracks[0].rows, FaceRows)
    assert tracks[0].det_index.tolist() == list(range(n))
    ts = TrackSet(video, 1, scan.shots, tracks)
    again = CODECS["tracks"].load(dump_tracks(ts).__getitem__).tracks[0]
    assert again.frame_idx.tolist() == tracks[0].frame_idx.tolist()
    samples = select_samples([again], 2)
    assert isinstance(samples, FaceRows) and samples.face_id.tolist() == [0, 1]
    files = dump_faces(FaceSet(samples, np.zeros((2, 112, 112, 3), np.uint8)))
    assert CODECS["faces"].load(files.__getitem__).samples.quality.tolist() == pytest.approx(
        samples.quality.tolist(), abs=1e-4)
    assert jsonl_bytes([]) == b""


def test_tracking_uses_supervision_box_iou():
    src = inspect.getsource(tracking)
    assert "box_iou_batch" in src and "def _iou" not in src
    assert isinstance(Track(0, 0, _rows(1)), Track)
