"""The local-folder upload sensor of the embedded default: its ticks, and what it decides from
the instance's records of an episode the CLI materialized."""

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


def test_plan_upload_runs_only_what_the_records_do_not_already_hold():
    """The skip decision of the upload sensors, on what Dagster's records say of an episode."""
    from sensors.upload import EpisodeRecords, plan_upload

    assert plan_upload("v1", None).action == "run"  # not registered yet
    done = EpisodeRecords(frozenset({"v1"}), ())
    assert plan_upload("v1", done).action == "skip"
    assert "already materialized from this content" in plan_upload("v1", done).reason
    # new content, or an asset reading the video never materialized: everything runs
    new = plan_upload("v2", done)
    assert (new.action, new.assets, new.reason) == ("run", None, "new content")
    assert plan_upload("v1", EpisodeRecords(frozenset({"v1", None}), ())).assets is None
    # same content, the edits made two assets stale: those two only
    stale = EpisodeRecords(frozenset({"v1"}), ("cast_links", "screentime"))
    assert plan_upload("v1", stale).assets == ("cast_links", "screentime")
    # a run of the episode in progress: judged again after it, whatever the content
    assert plan_upload("v2", EpisodeRecords(frozenset({"v1"}), (), running=True)).action == "wait"


def test_the_sensor_skips_an_episode_materialized_from_the_same_content(cli_env, tmp_path):
    """``scripts/demo.sh`` then ``serve``: an episode the CLI materialized is not run again when
    the sensor first sees its video; an edit since then runs only what it made stale; new
    content runs everything."""
    from resources.integrity import load_artifact
    from screenalytics_assets.cli import main as cli_main
    from tests.clips import cut_clip

    ep, key = "show-s05e01", "videos/show-s05e01/episode.mp4"
    clip = cut_clip(tmp_path / "clip.mp4", start=82, frames=30)
    assert cli_main(["run", str(clip), "--ep-id", ep, "--profile", "fast"]) == 0
    root = cli_env / "data"
    instance = DagsterInstance.from_config(str(cli_env / "dagster_home"))
    defs = build_definitions(load_settings(profile="fast"), data_root=str(root))
    sensor = defs.resolve_sensor_def("local_video_sensor")
    video = root / "videos" / ep / "episode.mp4"

    def tick(cursor):
        os.utime(video, (time.time() - 10, time.time() - 10))  # the copy is long over
        with build_sensor_context(instance=instance, instance_ref=instance.get_ref(),
                                  cursor=cursor, definitions=defs,
                                  resources={"storage": defs.resources["storage"]}) as ctx:
            return sensor.evaluate_tick(ctx)

    first = tick(None)
    assert first.run_requests == []
    assert f"no run for '{key}': {ep}: every asset is already materialized from this content" \
        in first.skip_message
    # a review edit: cast_links and screentime are stale; the same video seen again (a new
    # stamp) runs those two only
    person = load_artifact(defs.resources["storage"].store(), ep, "screentime").people[0]
    assert cli_main(["review", ep, "rename", str(person.identity_id), "Someone"]) == 0
    edited = tick(None)
    (request,) = edited.run_requests
    assert request.run_key == f"{key}@{file_sha256(video)}"
    assert [k.to_user_string() for k in request.asset_selection] == ["cast_links", "screentime"]
    # new content under the same key: the whole episode
    shutil.copyfile(cut_clip(tmp_path / "other.mp4", start=120, frames=30), video)
    (request,) = tick(edited.cursor).run_requests
    assert request.asset_selection is None
    assert request.run_key == f"{key}@{file_sha256(video)}"
