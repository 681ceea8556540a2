"""A show's facebank: reference embeddings of its cast members, computed from their photos.

Each photo is run through the same detector and recognizer as the episodes: the largest detected
face is aligned with InsightFace's 5-point ``norm_crop`` (112x112) and embedded with
:func:`.embedding.embed_faces`, so a cast member's references live in the same embedding space as
the episode's identity centroids.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field

import cv2
import numpy as np

from .detect import detect_faces
from .embedding import embed_faces
from .errors import ScreenalyticsError
from .sampling import align_face, crop_with_margin, face_quality
from .tracking import Track
from .video import read_frames_at

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png")
"""File extensions (lower-case) read as cast photos."""

EMBEDDINGS_FILE = "facebank_embeddings.npy"
INDEX_FILE = "facebank_embeddings.json"

_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_PHOTO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class FacebankError(ScreenalyticsError):
    """A facebank is empty, a cast id or photo name is invalid, or a photo cannot be read."""


def validate_cast_id(cast_id: object) -> str:
    """Return ``cast_id`` when it is a lower-case slug (``lin-manuel-miranda``).

    Raises:
        FacebankError: anything else (it becomes part of storage keys).
    """
    if not isinstance(cast_id, str) or not _SLUG_RE.match(cast_id):
        raise FacebankError(
            f"invalid cast id {cast_id!r}: use lower-case letters, digits and single hyphens, "
            "e.g. 'lin-manuel-miranda'")
    return cast_id


def validate_photo_name(name: object) -> str:
    """Return ``name`` when it is a plain file name with a photo extension (``01.jpg``).

    Raises:
        FacebankError: a path, a hidden file or another extension.
    """
    if (not isinstance(name, str) or not _PHOTO_RE.match(name)
            or not name.lower().endswith(PHOTO_EXTENSIONS)):
        raise FacebankError(
            f"invalid photo name {name!r}: use a plain file name ending in "
            f"{', '.join(PHOTO_EXTENSIONS)} (letters, digits, '.', '_', '-')")
    return name


@dataclass
class PhotoFace:
    """The face found in one cast photo.

    Attributes:
        cast_id, photo: whose photo, and its file name. n_faces: faces the detector found.
        bbox: float [4] px (x1, y1, x2, y2) of the face kept (the largest). score: its detector
            score. embedding: float32 [D] unit vector, or ``None`` when no face was found.
    """

    cast_id: str
    photo: str
    n_faces: int
    bbox: list[float] | None = None
    score: float | None = None
    embedding: np.ndarray | None = None


@dataclass
class Facebank:
    """Reference embeddings of a show's cast.

    Attributes:
        show: the show slug. model_pack: pack the embeddings were made with.
        cast_ids: cast members with at least one reference, sorted.
        ref_cast_id, ref_photo: per reference row, whose photo it is ([R] lists).
        vectors: float32 [R, D] unit embeddings, one per photo with a face.
        no_face: ``cast_id/photo`` of photos where no face was found (not used).
        photos: per photo (with or without a face) what was found, for reports.
    """

    show: str
    model_pack: str
    cast_ids: list[str]
    ref_cast_id: list[str]
    ref_photo: list[str]
    vectors: np.ndarray
    no_face: list[str] = field(default_factory=list)
    photos: list[dict] = field(default_factory=list)

    def references(self, cast_id: str) -> np.ndarray:
        """float32 [r, D]: the reference embeddings of one cast member."""
        rows = [i for i, c in enumerate(self.ref_cast_id) if c == cast_id]
        return self.vectors[rows]


def decode_photo(name: str, data: bytes) -> np.ndarray:
    """Decode JPEG/PNG bytes to BGR uint8 [H, W, 3].

    Raises:
        FacebankError: the bytes are not a readable image (names the photo).
    """
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise FacebankError(
            f"cast photo {name} is not a readable JPEG/PNG image; replace or remove it")
    return image


#: Largest detector input side (px) tried on a cast photo, and its minimum score (defaults of the
#: settings ``facebank_det_size`` and ``facebank_det_thresh``).
PHOTO_DET_SIZE = 640
PHOTO_DET_THRESH = 0.5


def photo_det_sizes(largest: int = PHOTO_DET_SIZE) -> tuple[int, ...]:
    """Detector input sides (px) tried on a cast photo: ``largest``, then halved (to a multiple
    of 32) down to 160, e.g. 640 -> (640, 320, 160).

    A photo is not a video frame: a close-up portrait's face is as large as the picture, which
    SCRFD misses at a large input size (its anchors stop at about a third of the input side) but
    finds once the photo is shrunk, while a group photo's small faces need a large input.
    """
    sizes = [int(largest)]
    while (nxt := sizes[-1] // 2 // 32 * 32) >= 160:
        sizes.append(nxt)
    return tuple(sizes)


SUBJECT_AREA_RATIO = 2.0
"""A cast photo may show bystanders only when the subject's face is at least this many times the
area of any other face: the facebank keeps the largest face (:func:`photo_face`), so with faces of
similar size it could keep the wrong person."""


def check_photo_faces(detector, cast_id: str, photo: str, image: np.ndarray,
                      det_sizes: tuple[int, ...] = photo_det_sizes(),
                      det_thresh: float = PHOTO_DET_THRESH) -> int:
    """Check that a cast photo shows exactly the face expected: one face, or one face clearly the
    largest (:data:`SUBJECT_AREA_RATIO`), found with the detector and settings the facebank is
    built with.

    Args:
        detector: InsightFace detection model. image: BGR uint8 [H, W, 3].
        det_sizes: detector input sides (px) tried, as :func:`photo_face` does; the faces of
            the size that finds the largest face are checked. det_thresh: min detector score.

    Returns:
        The number of faces found.

    Raises:
        FacebankError: no face, or several faces of similar size; names the cast member and photo.
    """
    bbox, score = np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    for size in det_sizes:
        b, sc, _ = detect_faces(detector, image, int(size), det_thresh)
        if len(sc) and (len(score) == 0 or _largest_area(b) > _largest_area(bbox)):
            bbox, score = b, sc
    if len(score) == 0:
        raise FacebankError(
            f"cast photo {cast_id}/{photo}: no face found (detector score >= {det_thresh}); use a "
            f"clear, frontal photo of {cast_id}'s face. Nothing was added.")
    area = np.sort((bbox[:, 2] - bbox[:, 0]) * (bbox[:, 3] - bbox[:, 1]))[::-1]
    if len(area) > 1 and area[0] < SUBJECT_AREA_RATIO * area[1]:
        raise FacebankError(
            f"cast photo {cast_id}/{photo}: {len(area)} faces of similar size, so which one is "
            f"{cast_id} is ambiguous; crop the photo to {cast_id}'s face. Nothing was added.")
    return len(score)


def _largest_area(bbox: np.ndarray) -> float:
    return float(((bbox[:, 2] - bbox[:, 0]) * (bbox[:, 3] - bbox[:, 1])).max())


def photo_face(detector, recognizer, cast_id: str, photo: str, image: np.ndarray,
               det_sizes: tuple[int, ...] = photo_det_sizes(),
               det_thresh: float = PHOTO_DET_THRESH) -> PhotoFace:
    """Detect the face in a cast photo and embed it.

    The detector runs at every size in ``det_sizes``; of all the faces found at any size, the
    largest (by box area, then score) is kept: a cast photo is a portrait of its subject, and
    bystanders are smaller.

    Args:
        detector, recognizer: InsightFace models of the pack the episodes use.
        image: BGR uint8 [H, W, 3]. det_sizes: detector input sides (px). det_thresh: min score.

    Returns:
        :class:`PhotoFace`; ``embedding`` is ``None`` when no face was found at any size.
    """
    best = None
    n_faces = 0
    for size in det_sizes:
        bbox, score, kps = detect_faces(detector, image, int(size), det_thresh)
        n_faces = max(n_faces, len(score))
        for k in range(len(score)):
            area = float((bbox[k, 2] - bbox[k, 0]) * (bbox[k, 3] - bbox[k, 1]))
            if best is None or (area, float(score[k])) > best[0]:
                best = ((area, float(score[k])), bbox[k], float(score[k]), kps[k])
    if best is None:
        return PhotoFace(cast_id, photo, 0)
    _, box, score, kps = best
    aligned = align_face(image, kps)[None]
    emb = embed_faces(recognizer, aligned)[0]
    return PhotoFace(cast_id, photo, n_faces, [round(float(v), 2) for v in box],
                     round(score, 4), emb)


def build_facebank(show: str, photos: dict[tuple[str, str], bytes], detector, recognizer,
                   model_pack: str, det_sizes: tuple[int, ...] = photo_det_sizes(),
                   det_thresh: float = PHOTO_DET_THRESH) -> Facebank:
    """Embed every cast photo of a show.

    Args:
        show: show slug. photos: ``(cast_id, photo file name) -> image bytes``.
        detector, recognizer, model_pack: the models (same pack as the episodes).
        det_sizes, det_thresh: detector settings for photos (see :func:`photo_face`).

    Returns:
        The :class:`Facebank`; photos with no face are listed in ``no_face``.

    Raises:
        FacebankError: no photo at all, an unreadable photo, or no face in any photo (a cast
            member with no face in their photos is only listed in ``no_face``).
    """
    if not photos:
        raise FacebankError(
            f"the facebank of show {show!r} is empty: add cast photos with "
            f"`screenalytics facebank add {show} CAST_ID PHOTO...`")
    found = []
    for (cast_id, photo), data in sorted(photos.items()):
        image = decode_photo(f"{cast_id}/{photo}", data)
        found.append(photo_face(detector, recognizer, cast_id, photo, image,
                                tuple(det_sizes), det_thresh))
    refs = [f for f in found if f.embedding is not None]
    no_face = [f"{f.cast_id}/{f.photo}" for f in found if f.embedding is None]
    if not refs:
        raise FacebankError(
            f"no face was found in any cast photo of show {show!r} ({', '.join(no_face)}); add "
            "photos that show the cast member's face clearly")
    dim = len(refs[0].embedding)
    return Facebank(
        show, model_pack, sorted({f.cast_id for f in refs}), [f.cast_id for f in refs],
        [f.photo for f in refs], np.stack([f.embedding for f in refs]).astype(np.float32)
        .reshape(-1, dim), no_face,
        [{"cast_id": f.cast_id, "photo": f.photo, "faces_in_photo": f.n_faces, "bbox": f.bbox,
          "det_score": f.score} for f in found])


def track_photos(video_path, track: Track, ep_id: str, n_faces: int = 3,
                 margin: float = 0.8, jpeg_quality: int = 95) -> dict[str, bytes]:
    """Cast photos cut from a track of an episode ("add this track to the cast member's photos").

    A confirmed track shows the cast member as the episodes do (pose, lighting, the recognizer's
    view of them), so its faces make good facebank references, profiles included. The
    ``n_faces`` best faces by :func:`.sampling.face_quality` (spread over the track: at most one
    per tenth of it) are cut from their frames with ``margin`` of the box size around the face,
    like a portrait photo, so the facebank's own detector finds them again.

    Args:
        video_path: the episode's video. track: a track of that episode. ep_id: names the photos.
        n_faces: photos wanted (>= 1). margin: fraction of the box size added on every side.
        jpeg_quality: 1-100.

    Returns:
        ``{"{ep_id}-track{tid:04d}-f{frame:06d}.jpg": JPEG bytes}``, at most ``n_faces``.

    Raises:
        ValueError: ``n_faces < 1``. VideoError: the video no longer holds the track's frames.
    """
    if n_faces < 1:
        raise ValueError(f"n_faces must be >= 1, got {n_faces}")
    q = face_quality(track.bbox, track.score, track.landmarks)
    bucket = np.minimum((np.arange(len(track)) * 10) // max(len(track), 1), 9)
    chosen: list[int] = []
    used: set[int] = set()
    for k in np.argsort(-q, kind="stable"):
        if int(bucket[k]) not in used:
            chosen.append(int(k))
            used.add(int(bucket[k]))
        if len(chosen) == n_faces:
            break
    by_pts = {int(track.pts[k]): k for k in chosen}
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    out = {}
    for pts, image in read_frames_at(video_path, by_pts):
        k = by_pts[pts]
        ok, buf = cv2.imencode(".jpg", crop_with_margin(image, track.bbox[k], margin), params)
        if ok:
            out[f"{ep_id}-track{track.track_id:04d}-f{int(track.frame_idx[k]):06d}.jpg"] = \
                buf.tobytes()
    return dict(sorted(out.items()))


def all_cast_ids(fb: Facebank) -> list[str]:
    """Every cast member with a photo, including those whose photos had no face."""
    return sorted({p["cast_id"] for p in fb.photos} | set(fb.cast_ids))


def dump_facebank(fb: Facebank) -> dict[str, bytes]:
    """``{facebank_embeddings.npy: float32 [R, D], facebank_embeddings.json: index}``."""
    buf = io.BytesIO()
    np.save(buf, fb.vectors.astype(np.float32), allow_pickle=False)
    index = {"show": fb.show, "model_pack": fb.model_pack, "dim": int(fb.vectors.shape[1]),
             "cast_ids": fb.cast_ids,
             "references": [{"row": i, "cast_id": c, "photo": p}
                            for i, (c, p) in enumerate(zip(fb.ref_cast_id, fb.ref_photo))],
             "no_face": fb.no_face, "photos": fb.photos}
    return {EMBEDDINGS_FILE: buf.getvalue(),
            INDEX_FILE: (json.dumps(index, indent=2) + "\n").encode()}


def load_facebank(read) -> Facebank:
    """Inverse of :func:`dump_facebank`; ``read(name) -> bytes``."""
    index = json.loads(read(INDEX_FILE))
    vectors = np.load(io.BytesIO(read(EMBEDDINGS_FILE)), allow_pickle=False)
    refs = index["references"]
    return Facebank(index["show"], index["model_pack"], index["cast_ids"],
                    [r["cast_id"] for r in refs], [r["photo"] for r in refs],
                    vectors.reshape(len(refs), index["dim"]).astype(np.float32),
                    index.get("no_face", []), index.get("photos", []))


#: Data version of a show without a facebank.
NO_FACEBANK_VERSION = "no-facebank"


def facebank_version(fb: Facebank | None) -> str:
    """Data version of a facebank: sha256 (16 hex) of its files, or ``no-facebank``."""
    if fb is None:
        return NO_FACEBANK_VERSION
    return hashlib.sha256(b"".join(dump_facebank(fb).values())).hexdigest()[:16]


# ---------------------------------------------------------------------------- reviewed references
#: Folder, under a show's facebank, of the references reviewers confirmed in episodes.
REVIEWED_DIR = "reviewed"


@dataclass
class ReviewedReference:
    """Faces of an episode's identity that a reviewer confirmed as a cast member.

    Stored apart from the cast photos (``facebank/{show}/reviewed/{cast_id}/{name}.json``) with
    their provenance, and used as references of the cast member beside the photos' (see
    :func:`with_reviewed`), so that the show's next episodes link against how the cast member
    looks on screen.

    Attributes:
        cast_id: the cast member. ep_id, identity_id, track_ids: where the faces come from.
        model_pack: the pack that embedded them. vectors: float32 [n, D] unit embeddings, one per
            track (the normalised mean of its face embeddings), the tracks with most faces first.
    """

    cast_id: str
    ep_id: str
    identity_id: int
    track_ids: list[int]
    model_pack: str
    vectors: np.ndarray

    @property
    def name(self) -> str:
        """File stem: ``{ep_id}-identity{NNNN}``."""
        return f"{self.ep_id}-identity{self.identity_id:04d}"


def dump_reviewed(ref: ReviewedReference) -> bytes:
    """The JSON file of a reviewed reference (vectors as float lists, exact round trip)."""
    doc = {"cast_id": ref.cast_id, "ep_id": ref.ep_id, "identity_id": ref.identity_id,
           "track_ids": [int(t) for t in ref.track_ids], "model_pack": ref.model_pack,
           "dim": int(ref.vectors.shape[1]),
           "vectors": [[float(x) for x in v] for v in ref.vectors.astype(np.float32)]}
    return (json.dumps(doc) + "\n").encode()


def load_reviewed(data: bytes, source: str) -> ReviewedReference:
    """Inverse of :func:`dump_reviewed`.

    Raises:
        FacebankError: not a reviewed reference file (names ``source`` and the fix).
    """
    try:
        doc = json.loads(data)
        vectors = np.asarray(doc["vectors"], np.float32).reshape(-1, int(doc["dim"]))
        return ReviewedReference(validate_cast_id(doc["cast_id"]), str(doc["ep_id"]),
                                 int(doc["identity_id"]), [int(t) for t in doc["track_ids"]],
                                 str(doc["model_pack"]), vectors)
    except (ValueError, KeyError, TypeError) as exc:
        raise FacebankError(f"reviewed reference {source} is damaged ({exc}); remove it with "
                            "`screenalytics facebank remove-reviewed`") from exc


def reviewed_reference(cast_id: str, ep_id: str, identity_id: int, track_ids: list[int],
                       track_vectors: np.ndarray, track_faces: np.ndarray, model_pack: str,
                       max_tracks: int = 5) -> ReviewedReference:
    """The reviewed reference of an identity: its ``max_tracks`` tracks with most faces.

    Args:
        track_ids: [T] the identity's tracks. track_vectors: float32 [T, D] their unit
            embeddings (``clustering.track_embeddings``). track_faces: int [T] faces per track.

    Raises:
        FacebankError: no track of the identity has an embedded face.
    """
    order = [k for k in np.argsort(-np.asarray(track_faces), kind="stable")
             if track_faces[k] > 0][:max_tracks]
    if not order:
        raise FacebankError(f"identity {identity_id} of {ep_id} has no embedded face to add")
    return ReviewedReference(validate_cast_id(cast_id), ep_id, int(identity_id),
                             [int(track_ids[k]) for k in order], model_pack,
                             np.asarray(track_vectors, np.float32)[order])


def with_reviewed(fb: Facebank | None, refs: list[ReviewedReference]
                  ) -> tuple[Facebank | None, list[str]]:
    """The facebank with the reviewed references appended as extra rows of their cast members.

    A reviewed row's ``ref_photo`` is ``reviewed/{name}/track{T}``. References made with
    another model pack or dimension than the facebank's are left out.

    Returns:
        ``(facebank, names of the references left out)``; ``(None, [])`` without a facebank.
    """
    if fb is None:
        return None, []
    dim = fb.vectors.shape[1]
    fits = [r.model_pack == fb.model_pack and r.vectors.shape[1] == dim for r in refs]
    used = [r for r, ok in zip(refs, fits) if ok]
    left_out = [r.name for r, ok in zip(refs, fits) if not ok]
    if not used:
        return fb, left_out
    rows = [(r.cast_id, f"{REVIEWED_DIR}/{r.name}/track{t}", v)
            for r in used for t, v in zip(r.track_ids, r.vectors)]
    return Facebank(
        fb.show, fb.model_pack, sorted(set(fb.cast_ids) | {r.cast_id for r in used}),
        fb.ref_cast_id + [c for c, _, _ in rows], fb.ref_photo + [p for _, p, _ in rows],
        np.concatenate([fb.vectors, np.stack([v for _, _, v in rows])]).astype(np.float32),
        fb.no_face, fb.photos), left_out
