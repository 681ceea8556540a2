"""A generated episode with a known answer that exercises identity accuracy.

Built from the photos in ``shared/faces`` in about a second, deterministically (no model runs
while building): each shot shows one or two faces cut from photos, on a plain background that
changes at every cut, moving along fixed paths. It holds what makes screen time hard to get right:

- every person appears in two shots through two *different* photos, and person ``c`` through two
  photos that the recognizers place far apart (ci_pack cosine 0.38, ci_pack_mbf 0.44, under what
  clustering merges) while both still match the facebank photo (0.47-0.59): clustering may make
  two identities of one person, and both must link to that cast member;
- two people share shots (they must never be linked to one cast member);
- faces slide partly out of frame (up to 70 % of the face cut by the edge, where the detector's
  score falls below ``det_thresh`` or it misses the face) and come back within the shot;
- a cast member in the facebank (``f``) who never appears.

The answer is exact: a person is on screen for the whole of every shot they are in (a face is
never more than 70 % out of frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tests.render import face_sprite, paste, write_h264

WIDTH, HEIGHT, FPS = 640, 360, 10

#: Person key -> folder in shared/faces. Chosen with both ci packs (ci_pack, ci_pack_mbf) on the
#: photos themselves: the three photos of a, b, d, e, f match each other at cosine >= 0.55 and other
#: people at <= 0.49; c is the hard case described in the module docstring.
PEOPLE = {"a": "person04", "b": "person07", "c": "person16", "d": "person24", "e": "person25",
          "f": "person30"}

#: Face boxes (x1, y1, x2, y2 px) in the photos, as SCRFD-500M finds them at det_size 640 (the
#: largest face of the photo); constants so that building needs no model.
FACE_BOX = {
    ("a", "ref_02"): (154, 112, 338, 346), ("a", "ref_03"): (319, 83, 502, 322),
    ("b", "ref_02"): (212, 48, 280, 139), ("b", "ref_03"): (203, 108, 370, 352),
    ("c", "ref_02"): (135, 94, 445, 472), ("c", "ref_03"): (120, 94, 321, 357),
    ("d", "ref_02"): (200, 125, 380, 366), ("d", "ref_03"): (266, 80, 436, 314),
    ("e", "ref_02"): (170, 116, 387, 418), ("e", "ref_03"): (196, 118, 365, 339),
}

#: Face height on screen (px) and the sprite (face plus surroundings) around it.
FACE_PX = 110
SPRITE_SCALE = 2.0


@dataclass(frozen=True)
class Appearance:
    """One face in a shot: whose, from which photo, and its path.

    Attributes:
        person: person key. photo: ``ref_02`` or ``ref_03``.
        path: ``((t, x), ...)`` keyframes, t in [0, 1] of the shot, x the face centre as a
            fraction of the frame width (1.0 = the face cut in half by the right edge, 0.0 by the
            left edge); linear in between.
        y: face centre as a fraction of the frame height.
    """

    person: str
    photo: str
    path: tuple[tuple[float, float], ...]
    y: float = 0.5


#: (seconds, appearances) per shot.
SHOTS: list[tuple[float, list[Appearance]]] = [
    # c alone, slides right until most of the face is out of frame, and comes back
    (2.4, [Appearance("c", "ref_02", ((0, 0.6), (0.4, 1.04), (0.6, 1.04), (1, 0.75)))]),
    # a and d together
    (2.0, [Appearance("a", "ref_02", ((0, 0.25), (1, 0.3))),
           Appearance("d", "ref_02", ((0, 0.75), (1, 0.7)))]),
    # b enters half out of frame on the left
    (1.5, [Appearance("b", "ref_03", ((0, 0.02), (0.5, 0.3), (1, 0.4)))]),
    # c (the other photo) and e; c leaves halfway through the right edge and comes back
    (2.5, [Appearance("e", "ref_02", ((0, 0.3), (1, 0.25))),
           Appearance("c", "ref_03", ((0, 0.7), (0.35, 1.01), (0.6, 1.01), (1, 0.8)))]),
    # a (the other photo) and b (the other photo)
    (2.0, [Appearance("a", "ref_03", ((0, 0.3), (1, 0.25))),
           Appearance("b", "ref_02", ((0, 0.7), (1, 0.75)))]),
    # d (the other photo) leaves by the left edge, partly, and comes back
    (1.5, [Appearance("d", "ref_03", ((0, 0.4), (0.45, -0.03), (0.6, -0.03), (1, 0.3)))]),
    # e (the other photo) alone
    (1.5, [Appearance("e", "ref_03", ((0, 0.5), (1, 0.55)))]),
]

#: Background colour (BGR) per shot, so that every cut changes the whole frame.
BACKGROUNDS = [(60, 40, 30), (30, 70, 40), (40, 40, 90), (90, 80, 40), (50, 30, 80),
               (30, 90, 90), (80, 50, 60)]


@dataclass
class KnownAnswerEpisode:
    """A written episode and its answer.

    Attributes:
        path: the MP4 file. fps: frame rate. n_frames: frames written.
        seconds: person key -> exact seconds on screen.
        shot_starts: first frame of each shot.
    """

    path: Path
    fps: int
    n_frames: int
    seconds: dict[str, float]
    shot_starts: list[int]


def _x_at(path: tuple[tuple[float, float], ...], t: float) -> float:
    ts, xs = zip(*path)
    return float(np.interp(t, ts, xs))


def frames(faces_root: Path, shots=SHOTS, fps: int = FPS):
    """Yield ``(shot index, BGR uint8 [HEIGHT, WIDTH, 3])`` for every frame of the episode."""
    sprites = {}
    for k, (dur, apps) in enumerate(shots):
        n = int(round(dur * fps))
        for a in apps:
            if (a.person, a.photo) not in sprites:
                photo = cv2.imread(str(faces_root / PEOPLE[a.person] / f"{a.photo}.jpg"))
                if photo is None:
                    raise FileNotFoundError(faces_root / PEOPLE[a.person] / f"{a.photo}.jpg")
                sprites[a.person, a.photo] = face_sprite(photo, FACE_BOX[a.person, a.photo],
                                                         FACE_PX, SPRITE_SCALE)
        for i in range(n):
            frame = np.empty((HEIGHT, WIDTH, 3), np.uint8)
            frame[:] = BACKGROUNDS[k % len(BACKGROUNDS)]
            t = i / max(n - 1, 1)
            for a in apps:
                paste(frame, sprites[a.person, a.photo], _x_at(a.path, t) * WIDTH, a.y * HEIGHT)
            yield k, frame


def build_episode(faces_root: Path, out: Path, shots=SHOTS, fps: int = FPS) -> KnownAnswerEpisode:
    """Write the episode to ``out`` (H.264 MP4, WIDTH x HEIGHT at ``fps``) with its answer."""
    seconds: dict[str, float] = {}
    starts = []
    frame_idx = 0
    for dur, apps in shots:
        n = int(round(dur * fps))
        starts.append(frame_idx)
        frame_idx += n
        for a in apps:
            seconds[a.person] = seconds.get(a.person, 0.0) + n / fps
    write_h264(out, (frame for _, frame in frames(faces_root, shots, fps)), WIDTH, HEIGHT, fps,
               {"crf": "18"})
    return KnownAnswerEpisode(out, fps, frame_idx, seconds, starts)


def facebank_photos(faces_root: Path) -> dict[str, list[Path]]:
    """Cast id (the person key) -> the ``ref_01`` photo, which no shot uses; ``f`` never appears."""
    assert all(a.photo != "ref_01" for _, apps in SHOTS for a in apps)
    return {key: [faces_root / folder / "ref_01.jpg"] for key, folder in PEOPLE.items()}


def person_of_track(episode: KnownAnswerEpisode, track, shots=SHOTS) -> str:
    """Ground truth: the person a track shows, by majority over its frames of the appearance
    whose face centre (px) is nearest the box centre in that frame."""
    shot = int(np.searchsorted(episode.shot_starts, track.start_frame, side="right") - 1)
    dur, apps = shots[shot]
    n = int(round(dur * episode.fps))
    votes: dict[str, int] = {}
    for f, box in zip(track.frame_idx, track.bbox):
        t = (int(f) - episode.shot_starts[shot]) / max(n - 1, 1)
        cx = float(box[0] + box[2]) / 2
        near = min(apps, key=lambda a: abs(_x_at(a.path, t) * WIDTH - cx))
        votes[near.person] = votes.get(near.person, 0) + 1
    return max(votes, key=votes.get)
