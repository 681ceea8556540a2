"""One registration for every entry point, and product code on public Dagster APIs only."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
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
    old = time.time() - 3600  # an upload that has settled (the sensor waits for fresh ones)
    os.utime(video, (old, old))
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


def test_no_code_imports_a_private_dagster_module():
    private = re.compile(r"^\s*(from|import)\s+dagster\._", re.M)
    offenders = []
    for folder in ("screenalytics_assets", "resources", "sensors", "tests", "benchmarks",
                   "scripts"):
        for path in (REPO / folder).rglob("*.py"):
            if private.search(path.read_text()):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


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


def test_local_video_version_is_hashed_once_per_file_state(tmp_path, monkeypatch):
    import resources.storage as storage_mod
    from resources.storage import LocalStore, file_sha256

    store = LocalStore(tmp_path / "data")
    store.put_video("obs-s01e01", HAMILTON)
    first = store.video_versions(["obs-s01e01", "obs-s01e02"])
    assert first == {"obs-s01e01": file_sha256(HAMILTON)}  # no video, no version

    def no_hashing(path, *args):
        raise AssertionError(f"{path} hashed again")

    monkeypatch.setattr(storage_mod, "file_sha256", no_hashing)
    assert store.video_version("obs-s01e01") == first["obs-s01e01"]  # from the cache
    monkeypatch.undo()
    changed = tmp_path / "changed.mp4"
    changed.write_bytes(HAMILTON.read_bytes() + b"\0")
    store.put_video("obs-s01e01", changed)  # a new upload: new inode and mtime
    assert store.video_version("obs-s01e01") == file_sha256(changed) != first["obs-s01e01"]


def test_s3_video_versions_come_from_one_listing(tmp_path, monkeypatch):
    from resources.s3_storage import S3Store
    from tests.s3_server import FAKE_AWS_ENV, moto_server, new_bucket, s3_client

    for k, v in FAKE_AWS_ENV.items():
        monkeypatch.setenv(k, v)
    with moto_server() as url:
        client = s3_client(url)
        bucket = new_bucket(url)
        eps = [f"obs-s01e{i:02d}" for i in range(1, 6)]
        for ep in eps[:4]:
            client.put_object(Bucket=bucket, Key=f"videos/{ep}/episode.mp4", Body=ep.encode())
        store = S3Store(client, bucket, cache_dir=tmp_path)
        expected = {ep: store.video_version(ep) for ep in eps[:4]}
        calls = []
        client.meta.events.register("before-call.s3", lambda model, **kw: calls.append(model.name))
        assert store.video_versions(eps) == expected
        assert calls == ["ListObjectsV2"]
