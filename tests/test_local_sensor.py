"""The local-folder upload sensor of the embedded default (no run executed: the tick only)."""

from __future__ import annotations

import os
import shutil
import time

from dagster import DagsterInstance, build_sensor_context

from resources.storage import file_sha256
from screenalytics_assets.definitions import build_definitions
from screenalytics_assets.settings import load_settings
from tests.conftest import HAMILTON


def test_local_sensor_ticks(tmp_path, monkeypatch):
    monkeypatch.delenv("STORAGE_BACKEND", raising=False)
    root = tmp_path / "data"
    (tmp_path / "home").mkdir()
    instance = DagsterInstance.local_temp(str(tmp_path / "home"),
                                          overrides={"telemetry": {"enabled": False}})
    defs = build_definitions(load_settings(profile="fast"), data_root=str(root))
    assert {s.name for s in defs.sensors} == {"local_video_sensor", "screenalytics_automation",
                                            "season_rollup_sensor"}
    sensor = defs.resolve_sensor_def("local_video_sensor")

    def tick(cursor):
        with build_sensor_context(instance=instance, instance_ref=instance.get_ref(),
                                  cursor=cursor, definitions=defs,
                                  resources={"storage": defs.resources["storage"]}) as ctx:
            return sensor.evaluate_tick(ctx)

    def settled(*paths):  # last written 10 s ago: the copy is over
        for path in paths:
            os.utime(path, (time.time() - 10, time.time() - 10))

    video = root / "videos" / "show-s03e04" / "episode.mp4"
    video.parent.mkdir(parents=True)
    shutil.copyfile(HAMILTON, video)
    (root / "videos" / "Bad Name").mkdir()
    shutil.copyfile(HAMILTON, root / "videos" / "Bad Name" / "episode.mp4")
    settled(video, root / "videos" / "Bad Name" / "episode.mp4")
    first = tick(None)
    sha = file_sha256(HAMILTON)
    assert [(r.partition_key, r.run_key) for r in first.run_requests] == [
        ("show-s03e04", f"videos/show-s03e04/episode.mp4@{sha}")]
    video_obs = [e for e in first.asset_events if e.asset_key.to_user_string() == "episode_video"]
    assert [e.tags["dagster/data_version"] for e in video_obs] == [sha]
    assert not tick(first.cursor).run_requests
    # touched but same bytes: a new stamp, the same run_key (Dagster never launches it twice)
    st = video.stat()
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    touched = tick(first.cursor)
    assert [r.run_key for r in touched.run_requests] == [first.run_requests[0].run_key]
    # new content, still being written: left for the next tick; then a new run_key
    with open(video, "ab") as f:
        f.write(b"\0")
    copying = tick(touched.cursor)
    assert not copying.run_requests
    settled(video)
    changed = tick(copying.cursor)
    assert [r.run_key for r in changed.run_requests] == [
        f"videos/show-s03e04/episode.mp4@{file_sha256(video)}"]
