"""Right and wrong automatic cast links per ``cast_link_margin``, on the 30 people of shared/faces.

    .venv/bin/python scripts/measure_cast_links.py [--packs ci_pack,ci_pack_mbf] [--splits 20]

Every photo is embedded as a cast photo is (``core.facebank.photo_face``, the real models from
../shared). For each random split, 20 of the 30 people are the cast (facebank: their ``ref_01``
photo) and 16 are in the "episode" (some cast members absent, some people outside the cast); each
person present is two identities, their ``ref_02`` and ``ref_03`` photos, never on screen
together. The identities are linked with ``core.cast_links.link_identities`` at each margin, with
and without the episode's own evidence, and the links are counted against the answer. A wrong link
is any link to someone else, including a person outside the cast linked to a cast member. The
figures behind ``cast_link_margin`` in settings.yaml.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("SCREENALYTICS_SHARED", REPO.parent / "shared")).resolve()

MARGINS = (0.0, 0.05, 0.08, 0.10, 0.12, 0.15)


def embed_photos(pack: str) -> dict[tuple[str, str], np.ndarray]:
    """``(person folder, photo stem) -> float32 [D]`` for every photo of shared/faces."""
    from resources.models import load_face_models
    from screenalytics_assets.core.facebank import photo_face

    m = load_face_models(str(SHARED), pack, "cpu")
    out = {}
    for folder in sorted(p for p in (SHARED / "faces").iterdir() if p.is_dir()):
        for photo in sorted(folder.glob("ref_*.jpg")):
            face = photo_face(m.detector, m.recognizer, folder.name, photo.name,
                              cv2.imread(str(photo)))
            if face.embedding is not None:
                out[folder.name, photo.stem] = face.embedding
    return out


def count_links(emb: dict[tuple[str, str], np.ndarray], thresh: float, splits: int,
                seed: int = 0) -> dict[tuple[float, bool], dict[str, int]]:
    """``(margin, transductive) -> {"right", "wrong", "needs_review", "answer"}`` over the
    splits (``answer``: identities of cast members present, the most that can be right)."""
    from screenalytics_assets.core.cast_links import (
        EpisodeEvidence,
        identity_scores,
        link_identities,
    )
    from screenalytics_assets.core.facebank import Facebank

    people = sorted({p for p, _ in emb})
    rng = np.random.default_rng(seed)
    out = {(m, t): dict(right=0, wrong=0, needs_review=0, answer=0)
           for m in MARGINS for t in (False, True)}
    for _ in range(splits):
        cast = sorted(rng.choice(people, 20, replace=False))
        present = sorted(rng.choice(people, 16, replace=False))
        fb = Facebank("study", "", cast, cast, ["ref_01"] * len(cast),
                      np.stack([emb[p, "ref_01"] for p in cast]).astype(np.float32))
        ids = [(p, r) for p in present for r in ("ref_02", "ref_03")]
        vectors = np.stack([emb[k] for k in ids]).astype(np.float32)
        rows = np.arange(len(ids))
        scores, cols = identity_scores(rows, vectors, np.ones(len(ids)), len(ids), fb)
        evidence = EpisodeEvidence(rows, vectors, np.ones(len(ids)))
        for (margin, transductive), n in out.items():
            links = link_identities(list(rows), scores, cols, thresh, set(), margin,
                                    evidence if transductive else None)
            for (person, _), link in zip(ids, links):
                n["answer"] += person in cast
                n["needs_review"] += link.needs_review
                if link.cast_id:
                    n["right" if link.cast_id == person else "wrong"] += 1
    return out


def main() -> int:
    from screenalytics_assets.settings import load_settings

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packs", default="ci_pack,ci_pack_mbf")
    ap.add_argument("--splits", type=int, default=20)
    args = ap.parse_args()
    for pack in args.packs.split(","):
        thresh = load_settings(model_pack=pack)["cast_link_thresh"]
        counts = count_links(embed_photos(pack), thresh, args.splits)
        for (margin, transductive), n in sorted(counts.items()):
            evidence = "yes" if transductive else "no "
            print(f"{pack:12s} margin {margin:.2f} episode evidence {evidence}  right "
                  f"{n['right']:4d}  wrong {n['wrong']:4d}  needs_review "
                  f"{n['needs_review']:4d}  of {n['answer']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
