"""Review-app episodes of any length without running the pipeline: the artifacts the review app
reads (tracks, identities, cast links, screen time and segments, track thumbnails, sampled
faces, optionally a video), written through the real codecs and the real pure functions
(``core.review.apply_edits``, ``core.episode.screentime_report``), with faces from
``../shared/faces``. For page-speed and browser tests of long episodes; the known-answer long
episode of the pipeline itself is a separate generator."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from resources.integrity import write_artifact
from screenalytics_assets.core.artifacts import CODECS, CastLinks, Identity, IdentitySet, TrackSet
from screenalytics_assets.core.cast_links import IdentityLink
from screenalytics_assets.core.episode import screentime_report
from screenalytics_assets.core.reps import rep_thumb_name
from screenalytics_assets.core.review import NO_EDITS_VERSION, apply_edits
from screenalytics_assets.core.shots import Shot
from screenalytics_assets.core.tracking import Track
from screenalytics_assets.core.video import VideoInfo
from screenalytics_assets.review_app.runs import Progress, Runner
from tests.conftest import FACES
FPS = 2.0  # frames per second of the generated tracks (one frame every 0.5 s)
CAST_LINK_THRESH = 0.35


class RecordingRunner(Runner):
    """The review app's runner for these episodes: it records each re-materialization the app
    asks for (the episode) and says it succeeded, without starting it. These artifacts were
    written without the pipeline, so a run could not recompute them; the runs themselves are
    tested on real footage in tests/test_review_app.py."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__(log_dir)
        self.started: list[str] = []

    def start(self, ep_id: str) -> str:
        self.started.append(ep_id)
        return uuid.uuid4().hex[:12]

    def running_episodes(self) -> set[str]:
        return set()

    def progress(self, instance, request_id: str) -> Progress:
        return Progress("succeeded")


@dataclass
class ReviewEpisode:
    """What was written: ``identity_person`` maps identity id -> person (``personNN``);
    ``weak``: identities left unlinked whose best suggestion is under the threshold."""

    ep_id: str
    duration_s: float
    n_tracks: int
    identity_person: dict[int, str]
    weak: list[int]
    shots: list[Shot]


def face_crop(person: str, photo: int = 1, size: int = 112) -> np.ndarray:
    """A square centre crop of ``../shared/faces/{person}/ref_0{photo}.jpg``, uint8 BGR
    [size, size, 3]."""
    img = cv2.imread(str(FACES / person / f"ref_{photo:02d}.jpg"))
    h, w = img.shape[:2]
    side = min(h, w)
    y, x = (h - side) // 3, (w - side) // 2  # faces sit above the middle of a portrait
    return cv2.resize(img[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)


def _track(track_id: int, shot_id: int, start: int, end: int) -> Track:
    f = np.arange(start, end + 1, dtype=np.int64)
    n = len(f)
    box = np.tile(np.array([[40, 30, 140, 150]], np.float32), (n, 1))
    lm = np.tile(np.array([[[70, 80], [110, 80], [90, 100], [75, 125], [105, 125]]],
                          np.float32), (n, 1, 1))
    return Track.from_columns(track_id, shot_id, f, f, f / FPS, f, box,
                              np.full(n, 0.9, np.float32), lm, np.full(n, 1 / FPS))


def write_review_episode(store, ep_id: str, minutes: float = 20.0, people: int = 30,
                         cast: int = 20, seed: int = 0, video: Path | None = None,
                         display_names: dict[int, str] | None = None) -> ReviewEpisode:
    """Write the review artifacts of an episode of ``minutes`` into ``store``.

    Shots of 4-9 s, each with 1-3 of ``people`` people (``person01``...), one track each;
    person k is one identity, and every fifth person is split into two identities (as
    clustering does with profile and frontal shots). The first ``cast`` people are the show's
    cast: their identities are linked automatically (similarity 0.4-0.7), except a few left
    unlinked with a weak best suggestion (under ``CAST_LINK_THRESH``, some negative). With
    ``video``, also an H.264 video (1 frame/s, 256x144, the shot's first person's face) at
    that path and as the episode's video. ``display_names``: identity id -> display name, as if a
    reviewer had renamed them and screen time had been re-materialized since.
    """
    rng = random.Random(seed)
    duration = minutes * 60.0
    n_frames = int(duration * FPS)
    shots, t = [], 0
    while t < n_frames:
        end = min(n_frames - 1, t + rng.randint(int(4 * FPS), int(9 * FPS)))
        shots.append(Shot(len(shots), t, end, t / FPS, (end + 1) / FPS))
        t = end + 1
    names = [f"person{k + 1:02d}" for k in range(people)]
    tracks, owner, firsts = [], [], []
    for shot in shots:
        who = rng.sample(range(people), rng.randint(1, 3))
        firsts.append(who[0])
        for k in who:
            a = rng.randint(shot.start_frame, (shot.start_frame + shot.end_frame) // 2)
            b = rng.randint(a, shot.end_frame)
            tracks.append(_track(len(tracks), shot.shot_id, a, b))
            owner.append(k)
    # identities: person k -> identity; every fifth person's second half of tracks is another
    groups: dict[tuple[int, int], list[int]] = {}
    for tid, k in enumerate(owner):
        part = 1 if k % 5 == 4 and sum(1 for o in owner[:tid] if o == k) % 2 else 0
        groups.setdefault((k, part), []).append(tid)
    order = sorted(groups, key=lambda g: groups[g][0])
    identities = [Identity(i, groups[g], len(groups[g]), 0.0) for i, g in enumerate(order)]
    person_of = {i: names[g[0]] for i, g in enumerate(order)}
    cast_ids = names[:cast]
    auto, weak = [], []
    for i, g in enumerate(order):
        k = g[0]
        others = rng.sample([c for c in cast_ids if c != names[k]], 3)
        if k < cast and i % 7 != 3:
            score = round(rng.uniform(0.4, 0.7), 3)
            sugg = [{"cast_id": names[k], "score": score}] + [
                {"cast_id": c, "score": round(rng.uniform(-0.1, 0.2), 3)} for c in others]
            sugg.sort(key=lambda x: -x["score"])
            auto.append(IdentityLink(i, names[k], score, sugg))
        else:  # unknown, or a cast member clustering could not tell: weak suggestions only
            best = round(rng.uniform(-0.08, 0.3), 3)
            sugg = [{"cast_id": names[k] if k < cast else others[0], "score": best}] + [
                {"cast_id": c, "score": round(best - rng.uniform(0.02, 0.2), 3)}
                for c in others[1:]]
            auto.append(IdentityLink(i, None, None, sugg))
            weak.append(i)
    info = VideoInfo(FPS, n_frames, duration, 256, 144, "1/1000", 0)
    trackset = TrackSet(info, 1, shots, tracks)
    write_artifact(store, ep_id, "tracks", CODECS["tracks"].dump(trackset))
    write_artifact(store, ep_id, "identities", CODECS["identities"].dump(IdentitySet(
        identities, np.eye(len(identities), 8, dtype=np.float32), {})))
    spans = {t.track_id: (t.start_frame, t.end_frame) for t in tracks}
    review = apply_edits([(i.identity_id, i.track_ids) for i in identities], auto, [], spans,
                         cast_ids)
    for ident in review.identities:
        ident.name = (display_names or {}).get(ident.identity_id)
    links = CastLinks(ep_id, ep_id.rsplit("-s", 1)[0], "ok", cast_ids, CAST_LINK_THRESH, auto,
                      review, NO_EDITS_VERSION)
    write_artifact(store, ep_id, "cast_links", CODECS["cast_links"].dump(links))
    write_artifact(store, ep_id, "screentime", CODECS["screentime"].dump(
        screentime_report(ep_id, trackset, links)))
    crops = {name: face_crop(name) for name in names}
    for tid, k in enumerate(owner):
        ok, buf = cv2.imencode(".jpg", crops[names[k]], [cv2.IMWRITE_JPEG_QUALITY, 80])
        store.put(store.artifact_key(ep_id, rep_thumb_name(tid)), buf.tobytes())
    # sampled faces: only what the app reads (face_id, track_id; the aligned crops)
    store.put(store.artifact_key(ep_id, "faces.jsonl"), b"".join(
        json.dumps({"face_id": tid, "track_id": tid}).encode() + b"\n"
        for tid in range(len(tracks))))
    aligned = np.stack([crops[names[k]][:, :, ::-1] for k in owner])
    npy = store.path(store.artifact_key(ep_id, "faces_aligned.npy"))
    npy.parent.mkdir(parents=True, exist_ok=True)
    np.save(npy, aligned)
    if video is not None:
        write_video(video, [(s, names[firsts[s.shot_id]]) for s in shots], duration, crops)
        dest = store.path(store.video_key(ep_id))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(Path(video).read_bytes())
    return ReviewEpisode(ep_id, duration, len(tracks), person_of, weak, shots)


def write_video(path: Path, shots: list[tuple[Shot, str]], duration_s: float,
                crops: dict[str, np.ndarray]) -> Path:
    """An H.264 MP4 at 1 frame/s, 256x144: each second shows the face of its shot's first
    person (centred, 112 px)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=1)
        stream.width, stream.height, stream.pix_fmt = 256, 144, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "10"}
        k = 0
        for sec in range(int(duration_s)):
            while k + 1 < len(shots) and shots[k + 1][0].start_ts <= sec:
                k += 1
            frame = np.full((144, 256, 3), 40, np.uint8)
            frame[16:128, 72:184] = crops[shots[k][1]]
            vf = av.VideoFrame.from_ndarray(frame, format="bgr24")
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_season(store, key: str, ep_ids: list[str]) -> dict:
    """The season roll-up of ``ep_ids`` (``season_screentime.{json,csv,png}``), from their
    stored ``screentime`` by the asset's own functions (``core.season``); returns its JSON."""
    from resources.integrity import load_artifact
    from screenalytics_assets.core.season import season_files, season_table
    from screenalytics_assets.partitions import parse_season_key

    show, season = parse_season_key(key)
    files = season_files(key, season_table({ep: load_artifact(store, ep, "screentime")
                                            for ep in ep_ids}))
    for name, data in files.items():
        store.put(store.season_key(show, season, name), data)
    return json.loads(files["season_screentime.json"])
