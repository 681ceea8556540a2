"""One registration for every entry point, and product code on public Dagster APIs only."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from dagster import DagsterInstance, build_sensor_context

from screenalytics_assets.definitions import build_definitions
from screenalytics_assets.partitions import (
    EPISODES_PARTITION,
    SEASONS_PARTITION,
    SHOWS_PARTITION,
    episode_partition_keys,
    register_episode,
)
from screenalytics_assets.settings import load_settings
from tests.conftest import HAMILTON, REPO


def _instance(tmp_path: Path) -> DagsterInstance:
    (tmp_path / "home").mkdir(parents=True, exist_ok=True)
    return DagsterInstance.local_temp(str(tmp_path / "home"),
                                      overrides={"telemetry": {"enabled": False}})


def _registered(instance: DagsterInstance) -> dict[str, list[str]]:
    return {name: instance.get_dynamic_partitions(name)
            for name in (EPISODES_PARTITION, SEASONS_PARTITION, SHOWS_PARTITION)}


def test_sensor_registers_episode_season_and_show_like_the_cli(tmp_path, monkeypatch):
    monkeypatch.delenv("STORAGE_BACKEND", raising=False)
    root = tmp_path / "data"
    video = root / "videos" / "newshow-s02e03" / "episode.mp4"
    video.parent.mkdir(parents=True)
    shutil.copyfile(HAMILTON, video)
    instance = _instance(tmp_path)
    defs = build_definitions(load_settings(profile="fast"), data_root=str(root))
    with build_sensor_context(instance=instance, instance_ref=instance.get_ref(),
                              definitions=defs,
                              resources={"storage": defs.resources["storage"]}) as ctx:
        tick = defs.resolve_sensor_def("local_video_sensor").evaluate_tick(ctx)
    for req in tick.dynamic_partitions_requests:  # what the sensor daemon does with them
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    expected = {EPISODES_PARTITION: ["newshow-s02e03"], SEASONS_PARTITION: ["newshow-s02"],
                SHOWS_PARTITION: ["newshow"]}
    assert _registered(instance) == expected
    # the CLI's registration gives the same partitions, and adds nothing twice
    other = _instance(tmp_path / "cli")
    assert register_episode(other, "newshow-s02e03") is True
    assert register_episode(other, "newshow-s02e03") is False
    assert _registered(other) == expected
    assert episode_partition_keys("newshow-s02e03") == {
        SHOWS_PARTITION: "newshow", SEASONS_PARTITION: "newshow-s02",
        EPISODES_PARTITION: "newshow-s02e03"}


def test_product_code_imports_no_private_dagster_module():
    private = re.compile(r"^\s*(from|import)\s+dagster\._", re.M)
    offenders = []
    for folder in ("screenalytics_assets", "resources", "sensors"):
        for path in (REPO / folder).rglob("*.py"):
            if private.search(path.read_text()):
                offenders.append(str(path.relative_to(REPO)))
    # Dagster 1.13 has no public way to create an asset backfill (see backfill.py)
    assert offenders == ["screenalytics_assets/backfill.py"]


def test_loading_the_code_location_raises_no_beta_preview_or_own_deprecation_warning():
    code = (
        "import warnings\n"
        "from dagster import BetaWarning, PreviewWarning\n"
        "warnings.simplefilter('error', BetaWarning)\n"
        "warnings.simplefilter('error', PreviewWarning)\n"
        "for cat in (DeprecationWarning, FutureWarning):\n"
        "    warnings.filterwarnings('error', category=cat,"
        " module=r'(screenalytics_assets|resources|sensors)(\\.|$)')\n"
        "import screenalytics_assets.cli\n"
        "from screenalytics_assets.definitions import build_definitions\n"
        "defs = build_definitions()\n"
        "for job in ('episode_job', 'season_job', 'facebank_job'):\n"
        "    assert defs.resolve_job_def(job).partitions_def is not None\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_warnings_are_filtered_only_around_the_call_that_needs_it():
    doc = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "filterwarnings" not in doc["tool"]["pytest"]["ini_options"]
    for folder in ("screenalytics_assets", "resources", "sensors"):
        for path in (REPO / folder).rglob("*.py"):
            lines = path.read_text().splitlines()
            for i, line in enumerate(lines):
                if re.search(r"warnings\.(filterwarnings|simplefilter)\(", line):
                    assert any("catch_warnings()" in above for above in lines[max(0, i - 4):i]), \
                        f"{path.relative_to(REPO)}:{i + 1} filters warnings globally"
