"""Soak: 20 tiny episodes materialized back to back on one instance, then 20 random faults
(corrupted artifact files and manifests, runs killed with SIGKILL mid-way); every corruption is
noticed, and after one ``run --stale-only`` per episode every screen time equals the clean run's."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from resources.storage import LocalStore
from screenalytics_assets.cli.run import damaged_files
from screenalytics_assets.core.artifacts import CODECS
from screenalytics_assets.core.integrity import manifest_name
from screenalytics_assets.definitions import build_definitions
from screenalytics_assets.settings import load_settings
from tests.conftest import REPO
from tests.faults import CORRUPTIONS, Cli, corrupt, people, tiny_episode

N_EPISODES = 20
N_FAULTS = 20
KILL_EVERY = 5  # every 5th fault is a kill -9 of a run in progress (4 kills)


def _kill_a_run(cli: Cli, ep_id: str, rng: random.Random) -> None:
    """Start ``screenalytics run --ep-id EP`` in a process and SIGKILL it while it works (once it
    holds the episode's run lock, after a random 0.3-3 s)."""
    lock = cli.home / "locks" / f"{ep_id}.lock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "screenalytics_assets.cli", "run", "--ep-id", ep_id,
         "--profile", "fast"],
        env={**os.environ, **cli.env(), "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        if lock.exists() and f"pid {proc.pid}" in lock.read_text():
            break
        time.sleep(0.1)
    time.sleep(rng.uniform(0.3, 3.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_soak_corruptions_and_kills_then_stale_only_gives_clean_answers(tmp_path):
    cli = Cli(tmp_path)
    video = tiny_episode(tmp_path / "tiny.mp4")
    episodes = [f"soak{i % 2}-s01e{i // 2 + 1:02d}" for i in range(N_EPISODES)]
    for ep_id in episodes:
        rc, _, err = cli("run", str(video), "--ep-id", ep_id, "--profile", "fast")
        assert rc == 0, err
    clean = people(cli.manifests(episodes[0]) / "screentime.json")
    assert clean and all(people(cli.manifests(e) / "screentime.json") == clean for e in episodes)

    store = LocalStore(cli.data)
    defs = build_definitions(load_settings(profile="fast"), data_root=str(cli.data))
    rng = random.Random(20261125)
    faults = []
    for i in range(N_FAULTS):
        ep_id = rng.choice(episodes)
        if i % KILL_EVERY == KILL_EVERY - 1:
            _kill_a_run(cli, ep_id, rng)
            faults.append((ep_id, "kill"))
            continue
        asset = rng.choice(sorted(CODECS))
        name = rng.choice([*CODECS[asset].files, manifest_name(asset)])
        kind = rng.choice([*CORRUPTIONS, "delete"])
        path = cli.manifests(ep_id) / name
        if not path.exists():  # already deleted by an earlier fault
            continue
        corrupt(path, kind, rng)
        faults.append((ep_id, f"{kind} {name}"))
        assert asset in damaged_files(store, defs, ep_id), (ep_id, kind, name)  # noticed
    assert len(faults) >= N_FAULTS - 3

    for ep_id in episodes:
        rc, _, err = cli("run", "--ep-id", ep_id, "--stale-only", "--profile", "fast")
        assert rc == 0, (ep_id, err[-3000:])
        assert damaged_files(store, defs, ep_id) == {}, ep_id
        assert people(cli.manifests(ep_id) / "screentime.json") == clean, (ep_id, faults)
