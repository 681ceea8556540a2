"""A long, TV-like episode with a known answer, built from the photos in ``shared/faces``.

``build_long_episode(faces_dir, out_dir, minutes=20.0, seed=0)`` writes, deterministically for a
seed and without running any model (the face boxes in the photos are stored in
``tests/face_boxes.json``)::

    out_dir/episode.mp4       1280x720, 25 fps, H.264 (yuv420p)
    out_dir/truth.json        the exact answer (see :func:`truth_doc`)
    out_dir/facebank/{key}/ref_01.jpg
                              the cast photos, laid out as ``screenalytics facebank`` and
                              ``screenalytics run --facebank DIR`` read them

or ``python -m tests.long_episode --minutes 20 --out DIR [--seed N]``.

What it holds:

- shots of 1-8 s (the last one takes what is left, at least 1 s), each on a background (a vertical
  two-colour gradient) that changes at every cut by far more than the shot-cut detector's
  threshold, so every cut is found;
- 1-4 faces per shot, one per vertical band of the frame (their sprites never overlap), each
  moving and changing size along a straight path; face heights 24-300 px, one face in twenty
  far away (24-48 px);
- faces in the outer bands sliding partly out of frame and back within the shot (at most
  :data:`MAX_OUT` of the face box's width outside the frame);
- people recurring across the episode, alternating between their ``ref_02`` and ``ref_03``
  photos (``ref_01`` is kept for the facebank), so identities must be found across photos;
- cast members in the facebank who never appear (:data:`ABSENT`), and a guest who appears but is
  not in the facebank (:data:`GUESTS`: his time belongs to no cast member).

The answer is exact: a face is never more than :data:`MAX_OUT` out of frame, so a person is on
screen for the whole of every shot they are in; a person's seconds are the frames of their shots
divided by the frame rate.

Who is who (keys ``pNN`` = folder ``personNN``), chosen with ci_pack and ci_pack_mbf on the photos
themselves (ArcFace-aligned faces, cosine similarity):

- :data:`ON_SCREEN_CAST` (21 people): each of their ``ref_02``/``ref_03`` photos matches their own
  ``ref_01`` better than anyone else's (ci_pack: by a margin of 0.06 or more);
- :data:`ABSENT` (p08, p15, p21): in the facebank, never on screen; their ``ref_01`` matches no
  face of the episode better than that face's own ``ref_01`` does;
- :data:`GUESTS` (p13): on screen, not in the facebank; his photos match every cast photo under
  ci_pack's ``cast_link_thresh`` (0.26 at most, against 0.30);
- not used (p02, p12, p16, p28, p29): one of their episode photos matches another person's
  ``ref_01`` as well as or better than their own, which would make the answer a test of the
  recognizer rather than of the pipeline.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from tests.render import face_sprite, paste, write_h264

WIDTH, HEIGHT, FPS = 1280, 720, 25

#: Shot length (s); the last shot of the episode takes what is left (at least MIN_SHOT_S).
MIN_SHOT_S, MAX_SHOT_S = 1, 8
#: Faces per shot and how often each count is drawn.
FACES_PER_SHOT, FACES_PER_SHOT_P = (1, 2, 3, 4), (0.35, 0.3, 0.2, 0.15)
#: Face box height on screen (px): every face stays within these; FAR_SHARE of the faces are
#: far away (at most FAR_FACE_PX), the others between FAR_FACE_PX and MAX_FACE_PX (log-uniform).
MIN_FACE_PX, FAR_FACE_PX, MAX_FACE_PX = 24, 48, 300
FAR_SHARE = 0.05
#: Faces smaller than this (px, at their smallest in a shot) are under what the pipeline can
#: find at its default ``det_size`` 640: a 720p frame is halved for the detector, and 16 px is
#: SCRFD's smallest anchor. Measured on the 1-minute episode (ci_pack, balanced): faces of 24-28
#: px are missed for whole shots, faces of 41 px and more are found. ``truth.json`` gives each
#: person's seconds in shots where their face is this small (``small_seconds``), so that an error
#: can be read against them.
SMALL_FACE_PX = 32
#: Largest ratio between a face's largest and smallest height within a shot (zoom in or out).
MAX_ZOOM = 1.5
#: Sprite (face and surroundings) side as a multiple of the face box's longer side.
SPRITE_SCALE = 1.6
#: At most this share of a face box's width is ever outside the frame (the exact-answer rule, as
#: in tests/known_answer.py); OUT_SHARE of the faces in the outer bands slide out that far.
MAX_OUT = 0.6
OUT_SHARE = 0.25
#: Longest time (s) a face stays at its farthest out of frame.
MAX_OUT_S = 0.5
#: Least change of the background at a cut: PySceneDetect's content score (mean absolute
#: difference of the H, S and V channels) between consecutive backgrounds, three times the
#: pipeline's ``scene_threshold`` (27), so that a cut stays a cut with faces covering a part of
#: the frame.
MIN_CUT_SCORE = 80.0
#: libx264 settings: ``ultrafast`` builds a 20-minute episode in a few minutes on 2 cores; at
#: crf 20 the faces keep their detail.
ENCODER_OPTIONS = {"preset": "ultrafast", "crf": "20"}

ON_SCREEN_CAST = ("p01", "p03", "p04", "p05", "p06", "p07", "p09", "p10", "p11", "p14", "p17",
                  "p18", "p19", "p20", "p22", "p23", "p24", "p25", "p26", "p27", "p30")
ABSENT = ("p08", "p15", "p21")
GUESTS = ("p13",)
#: Cast ids of the facebank: everyone in it has their ``ref_01`` photo there.
CAST = tuple(sorted(ON_SCREEN_CAST + ABSENT))
EPISODE_PHOTOS = ("ref_02", "ref_03")
FACEBANK_PHOTO = "ref_01"

BOXES_FILE = Path(__file__).with_name("face_boxes.json")
VIDEO_FILE, TRUTH_FILE, FACEBANK_DIR = "episode.mp4", "truth.json", "facebank"
TRUTH_FORMAT = 1


def folder_of(key: str) -> str:
    """Folder in shared/faces of a person key: ``p05`` -> ``person05``."""
    return f"person{key[1:]}"


# ---------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Face:
    """One face in a shot.

    Attributes:
        person: person key. photo: ``ref_02`` or ``ref_03``.
        path: ``((t, x), ...)``: t in [0, 1] of the shot, x the face centre (px); linear between.
        y: face centre at the shot's start and end (px). height: face box height at the start and
            end (px). max_out: largest share of the face box's width outside the frame.
    """

    person: str
    photo: str
    path: tuple[tuple[float, float], ...]
    y: tuple[float, float]
    height: tuple[float, float]
    max_out: float = 0.0

    def at(self, t: float) -> tuple[float, float, float]:
        """Face centre x, y and face height (px) at t in [0, 1] of the shot."""
        ts, xs = zip(*self.path)
        return (float(np.interp(t, ts, xs)), self.y[0] + (self.y[1] - self.y[0]) * t,
                self.height[0] + (self.height[1] - self.height[0]) * t)

    def to_dict(self) -> dict:
        return {"person": self.person, "photo": self.photo,
                "x": [[round(t, 4), round(x, 1)] for t, x in self.path],
                "y": [round(v, 1) for v in self.y], "face_px": [round(v, 1) for v in self.height],
                "max_out": round(self.max_out, 3)}

    @classmethod
    def from_dict(cls, d: dict) -> "Face":
        return cls(d["person"], d["photo"], tuple((t, x) for t, x in d["x"]), tuple(d["y"]),
                   tuple(d["face_px"]), d["max_out"])


@dataclass(frozen=True)
class Shot:
    """A shot: frames ``start_frame`` to ``end_frame`` (inclusive), its background's top and
    bottom colours (BGR) and its faces."""

    start_frame: int
    end_frame: int
    background: tuple[tuple[int, int, int], tuple[int, int, int]]
    faces: tuple[Face, ...]

    @property
    def n_frames(self) -> int:
        return self.end_frame - self.start_frame + 1

    def to_dict(self, index: int, fps: int) -> dict:
        return {"shot": index, "start_frame": self.start_frame, "end_frame": self.end_frame,
                "n_frames": self.n_frames, "start_s": self.start_frame / fps,
                "end_s": (self.end_frame + 1) / fps,
                "background": [list(c) for c in self.background],
                "faces": [f.to_dict() for f in self.faces]}

    @classmethod
    def from_dict(cls, d: dict) -> "Shot":
        return cls(d["start_frame"], d["end_frame"],
                   tuple(tuple(c) for c in d["background"]),
                   tuple(Face.from_dict(f) for f in d["faces"]))


def load_face_boxes(path: Path = BOXES_FILE) -> dict[tuple[str, str], tuple[float, ...]]:
    """``(person key, photo) -> (x1, y1, x2, y2)`` px of the face in every photo, as stored by
    :func:`measure_face_boxes`."""
    doc = json.loads(Path(path).read_text())
    return {(f"p{name[6:8]}", photo): tuple(box) for name, photos in doc["boxes"].items()
            for photo, box in photos.items()}


def shot_lengths(n_frames: int, fps: int, rng: np.random.Generator) -> list[int]:
    """Frames per shot, each MIN_SHOT_S to MAX_SHOT_S long, adding up to ``n_frames``.

    Raises:
        ValueError: ``n_frames`` is shorter than one shot.
    """
    lo, hi = MIN_SHOT_S * fps, MAX_SHOT_S * fps
    if n_frames < lo:
        raise ValueError(f"an episode of {n_frames} frames is shorter than one shot "
                         f"({MIN_SHOT_S} s = {lo} frames)")
    out, left = [], n_frames
    while left > hi:
        # never leave less than one shot's length behind
        n = int(rng.integers(lo, min(hi, left - lo) + 1))
        out.append(n)
        left -= n
    return out + [left]


def gradient(top, bottom, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A background: BGR uint8 [height, width, 3] going from colour ``top`` to ``bottom``."""
    w = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    col = (1 - w) * np.array(top, np.float32) + w * np.array(bottom, np.float32)
    return np.ascontiguousarray(np.broadcast_to(np.rint(col).astype(np.uint8),
                                                (height, width, 3)))


def cut_score(a: np.ndarray, b: np.ndarray) -> float:
    """PySceneDetect's content score between two BGR frames: the mean absolute difference of
    their H, S and V channels, averaged over the three (``ContentDetector``'s default weights)."""
    ha = cv2.cvtColor(a, cv2.COLOR_BGR2HSV).astype(np.int16)
    hb = cv2.cvtColor(b, cv2.COLOR_BGR2HSV).astype(np.int16)
    return float(np.abs(ha - hb).mean())


def _background(rng: np.random.Generator, previous) -> tuple:
    """Two BGR colours whose gradient differs from ``previous`` by at least MIN_CUT_SCORE."""
    before = None if previous is None else gradient(*previous, 36, 4)
    while True:
        hsv = np.stack([rng.integers(0, 180, 2), rng.integers(60, 256, 2),
                        rng.integers(40, 256, 2)], axis=1).astype(np.uint8)[None]
        bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]
        colours = tuple(tuple(int(v) for v in c) for c in bgr)
        if before is None or cut_score(before, gradient(*colours, 36, 4)) >= MIN_CUT_SCORE:
            return colours


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi)))) if hi > lo else float(lo)


def _face(rng: np.random.Generator, person: str, photo: str, box, band: int, bands: int,
          shot_s: float) -> Face:
    """A face in band ``band`` of ``bands`` (vertical strips of the frame) for a shot of
    ``shot_s`` seconds: a size, a straight path inside its band and, in an outer band,
    sometimes a slide partly out of frame and back."""
    bw, bh = box[2] - box[0], box[3] - box[1]
    side_per_px = SPRITE_SCALE * max(1.0, bw / bh)  # sprite side per px of face height
    x0, x1 = band * WIDTH / bands, (band + 1) * WIDTH / bands
    cap = min(MAX_FACE_PX, (x1 - x0) / side_per_px, HEIGHT / side_per_px)
    if rng.random() < FAR_SHARE:
        big = rng.uniform(MIN_FACE_PX, min(FAR_FACE_PX, cap))
    else:
        big = _loguniform(rng, FAR_FACE_PX, cap)
    small = max(MIN_FACE_PX, big / rng.uniform(1.0, MAX_ZOOM))
    height = (big, small) if rng.random() < 0.5 else (small, big)
    half = side_per_px * big / 2  # the sprite at its largest stays in its band and the frame
    xa, xb = rng.uniform(x0 + half, x1 - half, 2)
    y = tuple(float(v) for v in rng.uniform(half, HEIGHT - half, 2))
    path = ((0.0, float(xa)), (1.0, float(xb)))
    outer = band == 0 or band == bands - 1
    if outer and rng.random() < OUT_SHARE:
        # slide towards the edge until `share` of the face is out, stay, come back
        left = band == 0 and (bands > 1 or rng.random() < 0.5)
        ta = rng.uniform(0.2, 0.45)
        tb = ta + rng.uniform(0.3, 1.0) * min(0.3, MAX_OUT_S / shot_s)
        share = rng.uniform(0.3, MAX_OUT)
        widths = [(height[0] + (height[1] - height[0]) * t) * bw / bh for t in (ta, tb)]
        # the share out of frame, 1/2 - x/w, is largest at the widest face when the centre is
        # inside the frame, at the narrowest when it is outside
        w = max(widths) if share <= 0.5 else min(widths)
        inset = w * (0.5 - share)  # face centre's distance from the edge (< 0: outside)
        x_out = inset if left else WIDTH - inset
        path = ((0.0, float(xa)), (float(ta), x_out), (float(tb), x_out), (1.0, float(xb)))
        out = max(0.5 - inset / wt for wt in widths)
        return Face(person, photo, path, y, height, float(out))
    return Face(person, photo, path, y, height)


def plan(minutes: float, seed: int, boxes, fps: int = FPS) -> list[Shot]:
    """The episode's shots, deterministic for ``(minutes, seed)``: who is in each, from which
    photo, where and how large.

    People are drawn for each shot with weight ``1 / (1 + shots so far)**2``, so that everyone
    comes back regularly; each person alternates between ``ref_02`` and ``ref_03`` (which one
    comes first is drawn).

    Raises:
        ValueError: the episode is shorter than one shot.
    """
    rng = np.random.default_rng(seed)
    people = sorted(ON_SCREEN_CAST + GUESTS)
    first_photo = {p: int(rng.integers(0, 2)) for p in people}
    count = dict.fromkeys(people, 0)
    shots, start, background = [], 0, None
    for n in shot_lengths(int(round(minutes * 60 * fps)), fps, rng):
        k = int(rng.choice(FACES_PER_SHOT, p=FACES_PER_SHOT_P))
        w = np.array([1.0 / (1 + count[p]) ** 2 for p in people])
        who = [people[i] for i in rng.choice(len(people), size=k, replace=False, p=w / w.sum())]
        bands = rng.permutation(k)
        faces = []
        for person, band in zip(who, bands):
            photo = EPISODE_PHOTOS[(first_photo[person] + count[person]) % 2]
            faces.append(_face(rng, person, photo, boxes[person, photo], int(band), k, n / fps))
            count[person] += 1
        background = _background(rng, background)
        shots.append(Shot(start, start + n - 1, background, tuple(faces)))
        start += n
    return shots


# ---------------------------------------------------------------------------- the pixels
def frames(faces_dir: Path, shots: list[Shot], boxes):
    """Yield every frame of the episode, BGR uint8 [HEIGHT, WIDTH, 3]: the same array each time,
    drawn over (a new 2.7 MB array per frame costs more than drawing it); copy it to keep it.

    Raises:
        FileNotFoundError: a photo is missing from ``faces_dir``.
    """
    photos: dict[tuple[str, str], np.ndarray] = {}
    frame = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    for shot in shots:
        background = gradient(*shot.background)
        sprites = []
        for f in shot.faces:
            if (f.person, f.photo) not in photos:
                path = Path(faces_dir) / folder_of(f.person) / f"{f.photo}.jpg"
                image = cv2.imread(str(path))
                if image is None:
                    raise FileNotFoundError(f"face photo {path} is missing or unreadable")
                photos[f.person, f.photo] = image
            # drawn once per shot at the face's largest height, shrunk frame by frame
            box = boxes[f.person, f.photo]
            big = max(f.height)
            sprites.append((face_sprite(photos[f.person, f.photo], box, big, SPRITE_SCALE), big))
        n = shot.n_frames
        for i in range(n):
            np.copyto(frame, background)
            t = i / max(n - 1, 1)
            for f, (sprite, big) in zip(shot.faces, sprites):
                x, y, h = f.at(t)
                side = max(1, int(round(sprite.shape[0] * h / big)))
                if side != sprite.shape[0]:
                    sprite_t = cv2.resize(sprite, (side, side), interpolation=cv2.INTER_AREA)
                else:
                    sprite_t = sprite
                paste(frame, sprite_t, x, y)
            yield frame


# ---------------------------------------------------------------------------- the answer
def person_frames(shots: list[Shot], under_px: float | None = None) -> dict[str, int]:
    """Person key -> frames on screen (the frames of every shot they are in); with
    ``under_px``, only the shots where their face is smaller than that at its smallest."""
    out: dict[str, int] = {}
    for s in shots:
        for f in s.faces:
            if under_px is None or min(f.height) < under_px:
                out[f.person] = out.get(f.person, 0) + s.n_frames
    return out


def truth_doc(shots: list[Shot], minutes: float, seed: int, fps: int = FPS) -> dict:
    """The answer as written to ``truth.json``::

        {"format": 1, "seed", "minutes", "video": "episode.mp4", "width", "height", "fps",
         "n_frames", "duration_s", "facebank": "facebank",
         "people": {key: {"folder", "role" ("cast" | "absent" | "guest"), "in_facebank",
                          "seconds", "frames", "shots": [shot index, ...],
                          "small_seconds": seconds in shots where the face is under
                                           SMALL_FACE_PX}},
         "cast": [facebank cast ids], "absent": [cast ids with 0 s], "guests": [keys],
         "shots": [{"shot", "start_frame", "end_frame" (inclusive), "n_frames", "start_s",
                    "end_s", "background", "faces": [Face.to_dict()]}]}
    """
    on = person_frames(shots)
    small = person_frames(shots, SMALL_FACE_PX)
    people = {}
    for key in sorted(set(CAST) | set(GUESTS)):
        role = "absent" if key in ABSENT else "guest" if key in GUESTS else "cast"
        people[key] = {"folder": folder_of(key), "role": role, "in_facebank": key in CAST,
                       "seconds": on.get(key, 0) / fps, "frames": on.get(key, 0),
                       "shots": [i for i, s in enumerate(shots)
                                 if any(f.person == key for f in s.faces)],
                       "small_seconds": small.get(key, 0) / fps}
    n_frames = shots[-1].end_frame + 1
    return {"format": TRUTH_FORMAT, "seed": seed, "minutes": minutes, "video": VIDEO_FILE,
            "width": WIDTH, "height": HEIGHT, "fps": fps, "n_frames": n_frames,
            "duration_s": n_frames / fps, "facebank": FACEBANK_DIR, "people": people,
            "cast": list(CAST), "absent": [k for k in CAST if not on.get(k)],
            "guests": list(GUESTS), "shots": [s.to_dict(i, fps) for i, s in enumerate(shots)]}


@dataclass
class LongEpisode:
    """A written long episode and its answer.

    Attributes:
        path: the MP4 file. truth_path: ``truth.json`` beside it. fps: frame rate.
        n_frames: frames written. seconds: person key -> exact seconds on screen (every cast
            member, 0 for the absent ones, and the guests). cast: the facebank's cast ids.
        absent: cast ids never on screen. guests: on screen, not in the facebank.
        facebank_dir: the cast photos, one folder per cast id. shots: the shots.
        people_dirs: person key -> folder of that person's photos.
    """

    path: Path
    truth_path: Path
    fps: int
    n_frames: int
    seconds: dict[str, float]
    cast: list[str]
    absent: list[str]
    guests: list[str]
    facebank_dir: Path
    shots: list[Shot] = field(repr=False)
    people_dirs: dict[str, Path] = field(default_factory=dict, repr=False)

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    @property
    def shot_starts(self) -> list[int]:
        """First frame of each shot."""
        return [s.start_frame for s in self.shots]

    def cast_seconds(self) -> dict[str, float]:
        """Cast id -> exact seconds, for every cast member (what the screen-time report's
        ``cast_seconds()`` should say)."""
        return {k: self.seconds[k] for k in self.cast}

    @classmethod
    def load(cls, out_dir: Path, faces_dir: Path | None = None) -> "LongEpisode":
        """The episode written to ``out_dir`` by :func:`build_long_episode`, from its
        ``truth.json``."""
        out_dir = Path(out_dir)
        doc = json.loads((out_dir / TRUTH_FILE).read_text())
        return cls(out_dir / doc["video"], out_dir / TRUTH_FILE, doc["fps"], doc["n_frames"],
                   {k: p["seconds"] for k, p in doc["people"].items()}, doc["cast"],
                   doc["absent"], doc["guests"], out_dir / doc["facebank"],
                   [Shot.from_dict(s) for s in doc["shots"]],
                   {k: Path(faces_dir) / p["folder"] for k, p in doc["people"].items()}
                   if faces_dir else {})


def write_facebank(faces_dir: Path, out: Path) -> Path:
    """Copy each cast member's ``ref_01`` photo to ``out/{cast id}/ref_01.jpg``."""
    for key in CAST:
        (out / key).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(faces_dir) / folder_of(key) / f"{FACEBANK_PHOTO}.jpg",
                        out / key / f"{FACEBANK_PHOTO}.jpg")
    return out


def build_long_episode(faces_dir: Path, out_dir: Path, minutes: float = 20.0,
                       seed: int = 0) -> LongEpisode:
    """Write the episode, its answer and its facebank to ``out_dir`` (see the module docstring).

    Args:
        faces_dir: ``shared/faces`` (folders ``person01``..``person30``).
        out_dir: created if needed; ``episode.mp4``, ``truth.json`` and ``facebank/`` in it are
            replaced. minutes: length (fractions allowed, at least one second).
        seed: the same seed and length give the same episode (same truth, same frames).

    Raises:
        ValueError: ``minutes`` is shorter than one shot. FileNotFoundError: a photo is missing.
    """
    faces_dir, out_dir = Path(faces_dir), Path(out_dir)
    if not faces_dir.is_dir():
        raise FileNotFoundError(f"faces folder {faces_dir} does not exist (shared/faces)")
    boxes = load_face_boxes()
    shots = plan(minutes, seed, boxes)
    out_dir.mkdir(parents=True, exist_ok=True)
    video = out_dir / VIDEO_FILE
    tmp = out_dir / f".{VIDEO_FILE}.part.mp4"
    i420 = (cv2.cvtColor(f, cv2.COLOR_BGR2YUV_I420) for f in frames(faces_dir, shots, boxes))
    n = write_h264(tmp, i420, WIDTH, HEIGHT, FPS, ENCODER_OPTIONS)
    tmp.replace(video)
    doc = truth_doc(shots, minutes, seed)
    assert n == doc["n_frames"], (n, doc["n_frames"])
    facebank = out_dir / FACEBANK_DIR
    shutil.rmtree(facebank, ignore_errors=True)
    write_facebank(faces_dir, facebank)
    part = out_dir / f".{TRUTH_FILE}.part"
    part.write_text(json.dumps(doc, indent=1) + "\n")
    part.replace(out_dir / TRUTH_FILE)  # last: a truth.json means the episode is complete
    return LongEpisode.load(out_dir, faces_dir)


def first_suggestions(links) -> dict[int, str]:
    """Identity id -> the cast id of its first suggestion, for every identity of ``links``
    (``CastLinks``) that cast linking left ``needs_review`` and unlinked."""
    return {i.identity_id: i.suggestions[0]["cast_id"] for i in links.reviewed()
            if i.needs_review and not i.cast_id and i.suggestions}


def seconds_after_review(report, links) -> dict[str, float]:
    """Seconds per cast member once every identity that cast linking left ``needs_review`` is
    linked to its first suggestion (one click per item of the review queue): the automatic
    names of ``report`` (a ``ScreenTimeReport``) plus, per identity of ``links`` (``CastLinks``)
    marked ``needs_review``, its seconds under its first suggestion. Identities of one person are
    never on screen together, so their seconds add up."""
    pending = first_suggestions(links)
    out = dict(report.cast_seconds())
    for person in report.people:
        if person.identity_id in pending:
            cast_id = pending[person.identity_id]
            out[cast_id] = out.get(cast_id, 0.0) + person.seconds
    return out


#: Where a second on screen ends up (:func:`seconds_by_outcome`), in the order they are printed.
OUTCOMES = ("named", "review right", "review wrong", "unnamed", "named wrong", "no identity",
            "missed", "missed small")


def seconds_by_outcome(ep: LongEpisode, tracks, label_of: dict[int, int], links,
                       report) -> dict[str, dict[str, float]]:
    """Where each person's seconds on screen end up, frame by frame: person key -> outcome ->
    seconds, the outcomes of every person adding up to their true seconds.

    Each track is matched to the face of its shot whose centre is nearest its own at the
    track's middle detection (the faces of a shot lie in separate vertical bands), and each
    frame a track covers (a detection's frame and the frames its ``dur`` stands for) takes the
    track's outcome: ``named`` (its identity is linked to that person), ``named wrong`` (to
    someone else), ``review right`` / ``review wrong`` (left ``needs_review`` with that person
    first among its suggestions, or someone else), ``unnamed`` (no link, no review), ``no
    identity`` (a track clustering dropped); a frame two tracks cover takes the better outcome
    (the earlier in :data:`OUTCOMES`). A frame of the person's shots that no track covers is
    ``missed``, or ``missed small`` in a shot where the face is under :data:`SMALL_FACE_PX` at
    its smallest.

    Args:
        ep: the episode and its answer. tracks: its ``TrackSet``. label_of: track id ->
            identity id (``IdentitySet.label_of()``). links: ``CastLinks``. report:
            ``ScreenTimeReport``.
    """
    starts = np.array([s.start_frame for s in ep.shots], np.int64)
    named = {p.identity_id: p.cast_id for p in report.people}
    review = first_suggestions(links)
    rank = {o: i for i, o in enumerate(OUTCOMES)}
    covered: dict[tuple[int, str], dict[int, str]] = {}
    for track in tracks.tracks:
        mid = len(track.frame_idx) // 2
        frame = int(track.frame_idx[mid])
        index = int(np.searchsorted(starts, frame, side="right") - 1)
        shot = ep.shots[index]
        if not shot.faces:
            continue
        t = (frame - shot.start_frame) / max(shot.n_frames - 1, 1)
        x = float(track.bbox[mid][0] + track.bbox[mid][2]) / 2
        face = min(shot.faces, key=lambda f: abs(f.at(t)[0] - x))
        identity = label_of.get(track.track_id)
        if identity is None:
            outcome = "no identity"
        elif named.get(identity) is not None:
            outcome = "named" if named[identity] == face.person else "named wrong"
        elif identity in review:
            outcome = "review right" if review[identity] == face.person else "review wrong"
        else:
            outcome = "unnamed"
        frames = covered.setdefault((index, face.person), {})
        for first, dur in zip(track.frame_idx, track.dur):
            for k in range(int(first), min(int(first) + max(1, round(dur * ep.fps)),
                                           shot.end_frame + 1)):
                if k not in frames or rank[outcome] < rank[frames[k]]:
                    frames[k] = outcome
    out: dict[str, dict[str, float]] = {}
    for index, shot in enumerate(ep.shots):
        for face in shot.faces:
            frames = covered.get((index, face.person), {})
            miss = "missed small" if min(face.height) < SMALL_FACE_PX else "missed"
            person = out.setdefault(face.person, dict.fromkeys(OUTCOMES, 0.0))
            for k in range(shot.start_frame, shot.end_frame + 1):
                person[frames.get(k, miss)] += 1 / ep.fps
    return out


# ---------------------------------------------------------------------------- face boxes
def measure_face_boxes(faces_dir: Path, model_root: Path, pack: str = "ci_pack") -> dict:
    """Find the face in every ``ref_*`` photo as the facebank does (``core.facebank.photo_face``:
    SCRFD at 640, 320 and 160 px, the largest face kept) and return the document stored in
    :data:`BOXES_FILE`: ``{"detector": ..., "boxes": {"personNN": {"ref_01": [x1, y1, x2, y2]}}}``.
    Runs the model; building an episode only reads the stored result."""
    from resources.models import load_face_models
    from screenalytics_assets.core.facebank import photo_face

    models = load_face_models(str(model_root), pack, "cpu")
    boxes: dict[str, dict[str, list[float]]] = {}
    for folder in sorted(p for p in Path(faces_dir).iterdir() if p.name.startswith("person")):
        for photo in (FACEBANK_PHOTO, *EPISODE_PHOTOS):
            image = cv2.imread(str(folder / f"{photo}.jpg"))
            found = photo_face(models.detector, models.recognizer, folder.name, photo, image)
            if found.bbox is None:
                raise ValueError(f"no face found in {folder / photo}.jpg")
            boxes.setdefault(folder.name, {})[photo] = [round(float(v), 1) for v in found.bbox]
    return {"detector": f"{pack} SCRFD (core.facebank.photo_face: det sizes 640/320/160, "
                        "score >= 0.5, largest face)", "boxes": boxes}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.long_episode", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--minutes", type=float, default=20.0, help="length (default 20)")
    p.add_argument("--out", type=Path, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--faces", type=Path, help="the shared/faces folder (default: the tests'"
                   " ../shared/faces, or $SCREENALYTICS_SHARED/faces)")
    p.add_argument("--measure-boxes", metavar="MODEL_ROOT", type=Path,
                   help=f"measure the face boxes with ci_pack under MODEL_ROOT and rewrite "
                        f"{BOXES_FILE.name} instead of building")
    args = p.parse_args(argv)
    if args.faces is None:
        from tests.conftest import FACES

        args.faces = FACES
    if args.measure_boxes:
        doc = measure_face_boxes(args.faces, args.measure_boxes)
        rows = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in doc["boxes"].items()]
        BOXES_FILE.write_text(f'{{\n "detector": {json.dumps(doc["detector"])},\n "boxes": {{\n'
                              + ",\n".join(rows) + "\n }\n}\n")
        print(f"wrote {BOXES_FILE}")
        return 0
    if args.out is None:
        p.error("--out is required")
    start = time.perf_counter()
    try:
        ep = build_long_episode(args.faces, args.out, args.minutes, args.seed)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    on = sum(1 for k in ep.seconds if ep.seconds[k] > 0)
    print(f"{ep.path}: {ep.n_frames} frames ({ep.duration_s:.1f} s), {len(ep.shots)} shot(s), "
          f"{on} people on screen, absent cast: {', '.join(ep.absent) or 'none'}; truth "
          f"{ep.truth_path}; facebank {ep.facebank_dir}; built in "
          f"{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
