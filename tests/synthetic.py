"""Synthetic episodes with a known answer, cut from the photos in ``shared/faces``.

Each shot shows one or two photos side by side (a slow zoom makes consecutive frames differ, as in
real footage), and every person appears in two shots cut from two *different* photos, so identity
clustering has to work across photos. The ground truth is exact: a person is on screen for the
whole duration of each shot they are in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tests.render import write_h264

# Persons whose three photos the ci_pack recognizer matches well with each other (pairwise cosine
# 0.71-0.90) and poorly with the others (<= 0.54 against all 30 people), measured with
# ci_pack on shared/faces; person 30 appears only in the facebank, never in the episode.
PEOPLE = {"p05": "person05", "p20": "person20", "p24": "person24", "p25": "person25",
          "p30": "person30"}

# (seconds, [(person key, photo)]) per shot. Photos ref_02/ref_03 make the episode; ref_01 is left
# for a facebank.
SHOTS: list[tuple[float, list[tuple[str, str]]]] = [
    (2.0, [("p05", "ref_02")]),
    (1.5, [("p20", "ref_02")]),
    (2.5, [("p05", "ref_03"), ("p24", "ref_02")]),
    (1.0, [("p25", "ref_02")]),
    (2.0, [("p20", "ref_03"), ("p25", "ref_03")]),
    (3.0, [("p24", "ref_03")]),
]

WIDTH, HEIGHT, FPS = 640, 360, 10


@dataclass
class SyntheticEpisode:
    """A written synthetic episode.

    Attributes:
        path: the MP4 file. fps: frame rate. n_frames: frames written.
        seconds: person key -> exact seconds on screen.
        shot_starts: frame index where each shot starts.
        people_dirs: person key -> folder of that person's photos.
    """

    path: Path
    fps: int
    n_frames: int
    seconds: dict[str, float]
    shot_starts: list[int]
    people_dirs: dict[str, Path]


def _panel(photo: np.ndarray, width: int, height: int, zoom: float) -> np.ndarray:
    h, w = photo.shape[:2]
    scale = min(width / w, height / h) * zoom
    img = cv2.resize(photo, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
    out = np.zeros((height, width, 3), np.uint8)
    ih, iw = img.shape[:2]
    # center the (possibly zoomed) photo in the panel, cropping what overflows
    sy, sx = max(0, (ih - height) // 2), max(0, (iw - width) // 2)
    crop = img[sy:sy + height, sx:sx + width]
    oy, ox = (height - crop.shape[0]) // 2, (width - crop.shape[1]) // 2
    out[oy:oy + crop.shape[0], ox:ox + crop.shape[1]] = crop
    return out


def build_episode(faces_root: Path, out: Path, shots=SHOTS, fps: int = FPS,
                  people: dict[str, str] = PEOPLE) -> SyntheticEpisode:
    """Write the episode to ``out`` (H.264 MP4) and return it with its ground truth.

    ``shots`` name people by key and ``people`` maps a key to its folder in ``faces_root``."""
    photos = {}
    seconds: dict[str, float] = {}
    starts = []
    frame_idx = 0
    shot_frames = []
    for dur, members in shots:
        n = int(round(dur * fps))
        starts.append(frame_idx)
        panel_w = WIDTH // len(members)
        imgs = []
        for key, photo in members:
            path = faces_root / people[key] / f"{photo}.jpg"
            if path not in photos:
                photos[path] = cv2.imread(str(path))
            imgs.append(photos[path])
            seconds[key] = seconds.get(key, 0.0) + n / fps
        shot_frames.append((n, panel_w, imgs))
        frame_idx += n
    write_h264(out, (np.hstack([_panel(im, panel_w, HEIGHT, 1.0 + 0.06 * i / max(n - 1, 1))
                                for im in imgs])
                     for n, panel_w, imgs in shot_frames for i in range(n)), WIDTH, HEIGHT, fps)
    return SyntheticEpisode(out, fps, frame_idx, seconds, starts,
                            {k: faces_root / v for k, v in people.items()})


def facebank_photos(faces_root: Path) -> dict[str, list[Path]]:
    """Cast id (the person key) -> the ``ref_01`` photo, which no shot uses."""
    assert all(photo != "ref_01" for _, members in SHOTS for _, photo in members)
    return {key: [faces_root / folder / "ref_01.jpg"] for key, folder in PEOPLE.items()}


def person_of_track(episode: SyntheticEpisode, track, width: int = WIDTH, shots=SHOTS) -> str:
    """Ground truth: the person a track shows, from its shot and the panel its boxes are in."""
    shot = int(np.searchsorted(episode.shot_starts, track.start_frame, side="right") - 1)
    members = shots[shot][1]
    cx = float((track.bbox[:, 0] + track.bbox[:, 2]).mean() / 2)
    return members[min(int(cx // (width / len(members))), len(members) - 1)][0]


#: A season of two episodes with the same cast and other photos (ref_02 in the first, ref_03 in
#: the second; the facebank has ref_01), for reviews that teach the show's facebank. Chosen with
#: ci_pack on the photos: t's ref_03 photo is only 0.06 closer to his facebank photo than to u's
#: (0.52 against 0.46), too close to link on the facebank alone, while his ref_02 photo, which a
#: reviewer confirms in episode 1, is 0.73 from it.
SEASON_PEOPLE = {"t": "person10", "u": "person02", "e": "person25", "d": "person24"}


def season_shots(photo: str) -> list[tuple[float, list[tuple[str, str]]]]:
    """The shots of one episode of the season, every face cut from ``photo``."""
    return [(2.0, [("t", photo)]), (1.5, [("u", photo), ("e", photo)]),
            (1.5, [("d", photo)]), (2.0, [("t", photo), ("d", photo)])]


def season_facebank(faces_root: Path) -> dict[str, list[Path]]:
    """Cast id (the person key) -> the ``ref_01`` photo, which no episode of the season uses."""
    return {key: [faces_root / folder / "ref_01.jpg"] for key, folder in SEASON_PEOPLE.items()}
