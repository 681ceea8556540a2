"""Per-person screen-time accuracy on the real clip and on a generated episode with a known answer.

    .venv/bin/python scripts/accuracy_report.py hamilton [--profile balanced] [--pack ci_pack]
    .venv/bin/python scripts/accuracy_report.py synthetic [--pack ci_pack_mbf] [--set KEY=VALUE]
    .venv/bin/python scripts/accuracy_report.py long [--minutes 20] [--seed 1] [--episode-dir DIR]

Runs the real pipeline (real models from ../shared, a temp Dagster instance) and prints a JSON
report: seconds per cast member (and, for the generated episodes, the true seconds and the error),
the identities and their links, and for the real clip the track(s) and identity holding the
profile close-up of shot 1 (frames 20-81). ``long`` is the TV-like known-answer episode of
``tests/long_episode.py`` (built in ``--episode-dir``, or reused from there when it holds one of
that length and seed); its report adds, per person, the seconds after review (each identity left
``needs_review`` taking its first suggestion) and where every second on screen ended up
(``tests.long_episode.seconds_by_outcome``: named, waiting for review behind the right or a wrong
first suggestion, unnamed, named wrong, on a track no identity kept, or on no track).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("SCREENALYTICS_SHARED", REPO.parent / "shared")).resolve()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("episode", choices=("hamilton", "synthetic", "long"))
    p.add_argument("--minutes", type=float, default=20.0, help="long: length (default 20)")
    p.add_argument("--seed", type=int, default=1, help="long: seed (default 1)")
    p.add_argument("--episode-dir", type=Path, help="long: where the episode is built or reused "
                                                    "(default: a temporary folder)")
    p.add_argument("--profile", default="balanced")
    p.add_argument("--pack", default="ci_pack")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting (repeatable)")
    args = p.parse_args()
    os.environ.update(SCREENALYTICS_MODEL_ROOT=str(SHARED), SCREENALYTICS_MODEL_PACK=args.pack,
                      SCREENALYTICS_DEVICE="cpu")
    from screenalytics_assets.settings import load_settings
    from tests.helpers import run_episode

    settings = load_settings(profile=args.profile, model_pack=args.pack).with_overrides(
        dict(item.split("=", 1) for item in args.overrides))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.episode == "hamilton":
            run = run_episode(tmp, SHARED / "media" / "short_hamilton_clip.mp4",
                              "hamilton-s01e01", settings, facebank=SHARED / "media" / "facebank")
            truth = None
        elif args.episode == "long":
            from tests.long_episode import LongEpisode, build_long_episode

            out_dir = args.episode_dir or tmp / "long"
            built = json.loads((out_dir / "truth.json").read_text()) \
                if (out_dir / "truth.json").exists() else {}
            if (built.get("minutes"), built.get("seed")) == (args.minutes, args.seed):
                ep = LongEpisode.load(out_dir)
            else:
                ep = build_long_episode(SHARED / "faces", out_dir, minutes=args.minutes,
                                        seed=args.seed)
            run = run_episode(tmp, ep.path, "long-s01e01", settings, facebank=ep.facebank_dir)
            truth = ep.cast_seconds()
        else:
            from tests import known_answer
            ep = known_answer.build_episode(SHARED / "faces", tmp / "episode.mp4")
            run = run_episode(tmp, ep.path, "synth-s01e01", settings,
                              facebank=known_answer.facebank_photos(SHARED / "faces"))
            truth = ep.seconds
        report = run.load("screentime")
        links = run.load("cast_links")
        tracks = run.load("tracks")
        out = {"episode": args.episode, "profile": args.profile, "pack": args.pack,
               "cast_seconds": {k: round(v, 3) for k, v in report.cast_seconds().items()},
               "people": [{"identity": r["identity_id"], "cast_id": r["cast_id"],
                           "seconds": round(r["seconds"], 3), "tracks": r["n_tracks"]}
                          for r in report.rows()],
               "identities": [{"identity": i.identity_id, "cast_id": i.cast_id,
                               "tracks": i.track_ids,
                               "best": i.suggestions[:2] if i.suggestions else None}
                              for i in links.reviewed()]}
        if truth is not None:
            got = report.cast_seconds()
            out["truth"] = truth
            out["error_pct"] = {k: round(100 * (got.get(k, 0.0) - v) / v, 1)
                                for k, v in truth.items() if v}
            out["absent_cast_seconds"] = {k: round(v, 3) for k, v in got.items()
                                          if not truth.get(k)}
            if args.episode == "long":
                from tests.long_episode import OUTCOMES, seconds_after_review, seconds_by_outcome

                reviewed = seconds_after_review(report, links)
                outcomes = seconds_by_outcome(ep, tracks, run.load("identities").label_of(),
                                              links, report)
                out["after_review"] = {k: round(reviewed.get(k, 0.0), 2) for k in truth}
                out["outcomes"] = {k: {o: round(v, 2) for o, v in by.items()}
                                   for k, by in sorted(outcomes.items())}
                out["outcome_totals"] = {o: round(sum(by[o] for by in outcomes.values()), 2)
                                         for o in OUTCOMES}
        else:
            # the profile close-up of shot 1: tracks that lie in frames 20-81 at the right side
            close = [t for t in tracks.tracks if t.shot_id == 1
                     and float((t.bbox[:, 2] - t.bbox[:, 0]).mean()) > 80]
            out["closeup_tracks"] = [
                {"track": t.track_id, "frames": [t.start_frame, t.end_frame], "n": len(t),
                 "identity": next((i.identity_id for i in links.reviewed()
                                   if t.track_id in i.track_ids), None),
                 "cast_id": next((i.cast_id for i in links.reviewed()
                                  if t.track_id in i.track_ids), None)} for t in close]
        print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
