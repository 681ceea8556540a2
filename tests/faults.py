"""Fault injection for the integrity tests: tiny episodes, artifact corruptions, CLI calls."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from screenalytics_assets.core.integrity import JSON_ROWS
from tests.conftest import FACES
from tests.synthetic import build_episode

# Two shots of 1.5 s (at 10 fps): two people side by side, then one; three tracks in all.
TINY_SHOTS = [(1.5, [("p05", "ref_02"), ("p24", "ref_02")]), (1.5, [("p20", "ref_02")])]

CORRUPTIONS = ("truncate", "drop_rows", "flip_bytes")
"""Ways an artifact file gets damaged: cut short (mid-line), a record removed, bytes changed."""


def tiny_episode(path: Path) -> Path:
    """A 3-second synthetic episode (30 frames, 640x360) with a known cast, written to ``path``."""
    return build_episode(FACES, path, shots=TINY_SHOTS).path


def _drop_row(name: str, data: bytes) -> bytes:
    if name.endswith((".jsonl", ".csv")):
        lines = data.splitlines(keepends=True)
        if len(lines) > (2 if name.endswith(".csv") else 1):
            del lines[len(lines) // 2 + (1 if name.endswith(".csv") else 0)]
            return b"".join(lines)
    elif name.endswith(".npy"):
        arr = np.load(io.BytesIO(data), allow_pickle=False)
        if len(arr) > 1:
            buf = io.BytesIO()
            np.save(buf, arr[:-1], allow_pickle=False)
            return buf.getvalue()
    elif name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = z.infolist()
            if len(members) > 1:
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as out:
                    for info in members[:-1]:
                        out.writestr(info, z.read(info))
                return buf.getvalue()
    elif name in JSON_ROWS:
        doc = json.loads(data)
        rows = doc[JSON_ROWS[name]]
        if len(rows) > 1:
            if isinstance(rows, list):
                rows.pop()
            else:
                rows.pop(sorted(rows)[-1])
            return json.dumps(doc, indent=2).encode() + b"\n"
    third = len(data) // 3  # a file with no rows to drop: lose a third of it
    return data[:third] + data[2 * third:]


def corrupt(path: Path, kind: str, rng: random.Random | None = None) -> None:
    """Damage an artifact file in place: ``truncate`` (cut at a random point, mid-line),
    ``drop_rows`` (remove one record), ``flip_bytes`` (invert a few bytes), ``delete``."""
    rng = rng or random.Random(0)
    if kind == "delete":
        path.unlink()
        return
    data = path.read_bytes()
    if kind == "truncate":
        new = data[:rng.randint(1, max(1, len(data) - 2))]
    elif kind == "drop_rows":
        new = _drop_row(path.name, data)
    elif kind == "flip_bytes":
        buf = bytearray(data)
        for i in rng.sample(range(len(buf)), min(3, len(buf))):
            buf[i] ^= 0xFF
        new = bytes(buf)
    else:
        raise ValueError(kind)
    assert new != data, f"{kind} left {path.name} unchanged"
    path.write_bytes(new)


@dataclass
class Cli:
    """Calls ``screenalytics`` in-process against one data root and Dagster home."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    def env(self) -> dict[str, str]:
        return {"SCREENALYTICS_DATA_ROOT": str(self.data), "DAGSTER_HOME": str(self.home),
                "STORAGE_BACKEND": "local"}

    def __call__(self, *args: str) -> tuple[int, str, str]:
        """Run ``screenalytics ARGS``; returns (exit status, stdout, stderr)."""
        from screenalytics_assets.cli import main

        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        out, err = io.StringIO(), io.StringIO()
        old = {k: os.environ.get(k) for k in self.env()}
        os.environ.update(self.env())
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = main(list(args))
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return rc, out.getvalue(), err.getvalue()

    def manifests(self, ep_id: str) -> Path:
        return self.data / "manifests" / ep_id


def people(screentime_json: Path) -> list[tuple]:
    """The screen-time answer of an episode, without its ep_id: (identity, cast, seconds) rows."""
    doc = json.loads(screentime_json.read_text())
    return sorted((p["identity_id"], p["cast_id"], p["seconds"], p["n_tracks"])
                  for p in doc["people"])
