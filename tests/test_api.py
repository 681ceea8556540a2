"""One registration for every entry point, and product code on public Dagster APIs only."""

from __future__ import annotations

import re
import shutil
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
