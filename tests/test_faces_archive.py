"""The aligned faces' archive (``faces_aligned.zip``): JPEG-coded rows written from the faces
stage's spool, read back row by row, counted and digested by the integrity manifest, and the
raw ``.npy`` of episodes written before still read."""

from __future__ import annotations

import io
import zipfile

import cv2
import numpy as np
import pytest

from screenalytics_assets.core.artifacts import (
    ALIGNED_FILE,
    LEGACY_ALIGNED_FILE,
    FaceSet,
    JpegRows,
    SpoolFile,
    dump_faces,
    load_faces,
    npy_bytes,
    spool_array,
    write_jpeg_rows,
)
from screenalytics_assets.core.errors import ArtifactError
from screenalytics_assets.core.integrity import count_rows, digest_bytes, digest_file
from screenalytics_assets.core.sampling import ALIGNED_SIZE
from tests.conftest import FACES
from tests.long_episode import load_face_boxes


def _faces(n: int = 12) -> np.ndarray:
    """Real faces, uint8 [n, 112, 112, 3]: the face boxes of shared/faces photos, squared and
    resized to the aligned size (as large a share of the crop as an aligned face)."""
    out = []
    for (person, photo), (x1, y1, x2, y2) in sorted(load_face_boxes().items())[:n]:
        image = cv2.imread(str(FACES / f"person{person[1:]}" / f"{photo}.jpg"))
        cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) / 2
        m = np.array([[ALIGNED_SIZE / (2 * half), 0, 0], [0, ALIGNED_SIZE / (2 * half), 0]])
        m[:, 2] = ALIGNED_SIZE / 2 - m[:, :2] @ np.array([cx, cy])
        out.append(cv2.warpAffine(image, m, (ALIGNED_SIZE, ALIGNED_SIZE),
                                  borderMode=cv2.BORDER_REPLICATE))
    return np.stack(out)


def _face_set(aligned) -> FaceSet:
    """A FaceSet of one track with one face per row of ``aligned`` (real samples, made by
    ``select_samples``)."""
    from screenalytics_assets.core.sampling import select_samples
    from screenalytics_assets.core.tracking import Track

    n = len(aligned)
    f = np.arange(n, dtype=np.int64)
    boxes = np.tile(np.array([[10, 10, 60, 70]], np.float32), (n, 1))
    lm = np.tile(np.array([[[25, 35], [45, 35], [35, 45], [28, 58], [42, 58]]], np.float32),
                 (n, 1, 1))
    track = Track.from_columns(0, 0, f, f, f / 25, f, boxes, np.full(n, 0.9, np.float32), lm,
                               np.full(n, 0.04))
    return FaceSet(select_samples([track], n), aligned)


def _reader(files: dict[str, bytes]):
    def read(name: str) -> bytes:
        if name not in files:
            raise ArtifactError(f"no {name}")
        return files[name]
    return read


def test_archive_round_trip_is_close_compact_and_deterministic(tmp_path):
    faces = _faces()
    spool = spool_array(tmp_path, faces.shape, np.uint8)
    for i, face in enumerate(faces):
        spool[i] = face
    files = dump_faces(_face_set(spool))
    assert set(files) == {"faces.jsonl", ALIGNED_FILE}
    archive = files[ALIGNED_FILE]
    assert isinstance(archive, SpoolFile) and archive.path.parent == tmp_path
    assert not spool.path.exists()  # the raw spool is gone once coded
    data = archive.path.read_bytes()
    # 37,632 bytes a face raw; about a sixth of it coded at quality 95
    assert len(data) / len(faces) < 10_000, len(data) / len(faces)
    # the same faces make the same bytes (the data version does not change on a re-run)
    again = io.BytesIO()
    write_jpeg_rows(faces, [f"face_{i:05d}.jpg" for i in range(len(faces))], again)
    assert again.getvalue() == data
    rows = JpegRows(archive.path)
    assert len(rows) == len(faces) and rows.shape == faces.shape and rows.dtype == np.uint8
    assert np.abs(rows[2:5].astype(int) - faces[2:5]).mean() < 3.0
    assert np.array_equal(rows[-1], rows[len(faces) - 1])
    assert np.array_equal(np.asarray(rows), rows[0:len(faces)])
    assert rows.jpeg(0)[:2] == b"\xff\xd8"  # the stored JPEG itself
    with pytest.raises(IndexError):
        rows[len(faces)]
    # the manifest counts one row per face, from the archive's index
    assert count_rows(ALIGNED_FILE, data) == len(faces)
    assert digest_file(ALIGNED_FILE, archive.path) == digest_bytes(ALIGNED_FILE, data)
    assert count_rows(ALIGNED_FILE, data[:len(data) // 2]) is None


def test_load_faces_reads_the_archive_or_a_legacy_array(tmp_path):
    faces = _faces(4)
    files = dump_faces(_face_set(faces))  # an in-memory array is coded to bytes
    loaded = load_faces(_reader(files))
    assert isinstance(loaded.aligned, JpegRows) and len(loaded.aligned) == 4
    assert loaded.samples.face_id.tolist() == [0, 1, 2, 3]
    # through a local copy, as the IO manager reads it
    (tmp_path / ALIGNED_FILE).write_bytes(files[ALIGNED_FILE])
    read = _reader(files)
    read.path = lambda name: tmp_path / name
    assert np.array_equal(np.asarray(load_faces(read).aligned), np.asarray(loaded.aligned))
    # an episode written before the archive: faces_aligned.npy, read as it is
    legacy = {"faces.jsonl": files["faces.jsonl"], LEGACY_ALIGNED_FILE: npy_bytes(faces)}
    assert np.array_equal(np.asarray(load_faces(_reader(legacy)).aligned), faces)
    # neither file: the archive is named as missing
    with pytest.raises(ArtifactError, match=ALIGNED_FILE):
        load_faces(_reader({"faces.jsonl": files["faces.jsonl"]}))
    # an archive that lost a face no longer matches faces.jsonl
    short = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(files[ALIGNED_FILE])) as z, \
            zipfile.ZipFile(short, "w") as out:
        for info in z.infolist()[:-1]:
            out.writestr(info, z.read(info))
    with pytest.raises(ValueError, match="3 aligned faces for 4 rows"):
        load_faces(_reader({**files, ALIGNED_FILE: short.getvalue()}))
    with pytest.raises(ValueError, match="not a ZIP archive"):
        load_faces(_reader({**files, ALIGNED_FILE: b"not a zip"}))


def test_review_app_serves_the_stored_jpeg_of_a_face(tmp_path):
    from resources.storage import LocalStore
    from screenalytics_assets.review_app.data import NotFoundError, face_jpeg

    faces = _faces(3)
    files = dump_faces(_face_set(faces))
    store = LocalStore(tmp_path / "new")
    store.write_files("show-s01e01", files)
    with zipfile.ZipFile(io.BytesIO(files[ALIGNED_FILE])) as z:
        assert face_jpeg(store, "show-s01e01", 2) == z.read("face_00002.jpg")
    with pytest.raises(NotFoundError, match="no face 7"):
        face_jpeg(store, "show-s01e01", 7)
    # an episode written before the archive: its row of the raw array, coded for the page
    old = LocalStore(tmp_path / "old")
    old.write_files("show-s01e01", {"faces.jsonl": files["faces.jsonl"],
                                    LEGACY_ALIGNED_FILE: npy_bytes(faces)})
    image = cv2.imdecode(np.frombuffer(face_jpeg(old, "show-s01e01", 1), np.uint8),
                         cv2.IMREAD_COLOR)
    assert np.abs(image.astype(int) - faces[1]).mean() < 4.0


def test_rewriting_faces_removes_the_legacy_array(tmp_path):
    """Re-materializing an episode written before the archive leaves no 37.6 KB-a-face array
    behind; the new files match their manifest."""
    from resources.integrity import load_artifact, problems, write_artifact
    from resources.storage import LocalStore

    faces = _faces(3)
    store = LocalStore(tmp_path)
    old = dump_faces(_face_set(faces))
    write_artifact(store, "show-s01e01", "faces", {"faces.jsonl": old["faces.jsonl"],
                                                   LEGACY_ALIGNED_FILE: npy_bytes(faces)})
    assert np.array_equal(np.asarray(load_artifact(store, "show-s01e01", "faces").aligned), faces)
    write_artifact(store, "show-s01e01", "faces", dump_faces(_face_set(faces)))
    folder = store.manifest_dir("show-s01e01")
    assert not (folder / LEGACY_ALIGNED_FILE).exists() and (folder / ALIGNED_FILE).is_file()
    assert problems(store, "show-s01e01", "faces") == {}
    assert isinstance(load_artifact(store, "show-s01e01", "faces").aligned, JpegRows)
