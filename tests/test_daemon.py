"""The automatic paths with a real daemon: ``screenalytics serve`` (webserver + dagster-daemon, the
embedded local instance) watches the data root's videos/ folder; nobody runs the pipeline by
hand but for one CLI run (which the sensor must not repeat) and one review edit. One serve process
tree for the whole module; tests build on each other in file order, and the last one stops it
with Ctrl-C and checks that no process is left and that serve's output stayed at INFO.

Clips are 1.5 s, 320 px cuts of the real Hamilton clip (tests/clips.py), run with the fast
profile.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
import yaml
from dagster import AssetKey

from resources.storage import LocalStore
from screenalytics_assets.daemon import daemon_alive
from screenalytics_assets.definitions import AUTOMATION_SENSOR
from screenalytics_assets.settings import DEFAULT_SETTINGS_PATH
from tests.clips import cut_clip
from tests.served import (
    SENSOR_INTERVAL_S,
    kill_tree,
    materialization_count,
    place_video,
    runs_in_progress,
    runs_of,
    sensor_ticks,
    start_serve,
    stop_serve,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.daemon]

EP1, EP2, SEASON = "show-s01e01", "show-s01e02", "show-s01"
BROKEN = "show-s02e01"
SENSOR = "local_video_sensor"
ROLLUP_SENSOR = "season_rollup_sensor"
RUN_TIMEOUT_S = 420
EPISODE_ASSETS = ["detections", "tracks", "faces", "embeddings", "identities", "track_reps",
                  "cast_links", "screentime"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {EP1: cut_clip(d / "a.mp4", start=82), EP2: cut_clip(d / "b.mp4", start=120)}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    settings = tmp / "settings.yaml"  # edited by the automation test
    settings.write_text(DEFAULT_SETTINGS_PATH.read_text())
    s = start_serve(tmp, {"STORAGE_BACKEND": "local", "SCREENALYTICS_SETTINGS": str(settings)})
    s.settings_file = settings
    try:
        yield s
    finally:
        if s.proc.poll() is None:
            kill_tree(s.proc)


def materialized(served, asset: str, partition: str) -> bool:
    return materialization_count(served.instance, asset, partition) > 0


def season_table(served) -> dict:
    """``season_screentime.json`` of the season, or {} before its first roll-up."""
    store = LocalStore(served.root)
    key = store.season_key("show", 1, "season_screentime.json")
    return json.loads(store.get(key)) if store.exists(key) else {}


def rolled_up(served, episodes: set[str]):
    """The season table once its latest roll-up holds ``episodes`` and nothing runs."""
    table = season_table(served)
    return table if set(table.get("episodes", [])) == episodes \
        and not runs_in_progress(served.instance) else None


def run_with_cli(served, clips, ep_id: str) -> None:
    """``screenalytics run CLIP --ep-id EP_ID`` on the served data root; it must succeed."""
    result = served.cli("run", str(clips[ep_id]), "--ep-id", ep_id)
    assert result.returncode == 0, result.stdout + result.stderr


def ensure_episodes(served, clips, episodes=(EP1, EP2)) -> None:
    """The state the tests above leave, for a test run alone or first: EP1 uploaded into the
    watched folder (run by the sensor), EP2 run by the CLI, and the season rolled up."""
    if EP1 in episodes and not materialized(served, "screentime", EP1):
        place_video(served.root, EP1, clips[EP1])
        wait_for(lambda: materialized(served, "screentime", EP1), RUN_TIMEOUT_S,
                 f"screentime of {EP1}", served)
    if EP2 in episodes and not materialized(served, "screentime", EP2):
        run_with_cli(served, clips, EP2)
    wait_for(lambda: rolled_up(served, set(episodes)), 180, "the season roll-up", served)


def screentime_report(served, ep_id: str) -> dict:
    return json.loads((served.root / "manifests" / ep_id / "screentime.json").read_text())


def test_serve_prints_the_ui_and_what_it_watches(served):
    out = served.output()
    assert f"watching:   {served.root / 'videos'}/{{ep_id}}/episode.mp4 ({SENSOR}, running, " \
           f"every {SENSOR_INTERVAL_S} s)" in out
    assert f"automation: {AUTOMATION_SENSOR} (running" in out
    assert f"instance:   {served.home}" in out
    with urllib.request.urlopen(f"{served.url}/server_info", timeout=10) as resp:
        assert resp.status == 200
    wait_for(lambda: daemon_alive(served.instance, "SENSOR"), 120, "a daemon heartbeat", served)


def test_a_video_copied_into_the_folder_is_run_by_the_daemon(served, clips):
    place_video(served.root, EP1, clips[EP1])
    wait_for(lambda: materialized(served, "screentime", EP1), RUN_TIMEOUT_S,
             f"screentime of {EP1}", served)
    (run,) = runs_of(served.instance, EP1)
    assert run.tags["dagster/sensor_name"] == SENSOR
    assert run.tags["dagster/run_key"].startswith(f"videos/{EP1}/episode.mp4@")
    for asset in EPISODE_ASSETS:
        assert materialization_count(served.instance, asset, EP1) == 1, asset
    # the season roll-up follows by itself (checked by the next test but one, while it runs)


def episode_runs(served) -> list:
    return [r for r in served.instance.get_runs() if r.job_name != "season_job"]


def test_a_badly_named_file_is_skipped_with_a_reason(served, clips):
    runs_before = len(episode_runs(served))
    bad = served.root / "videos" / "Bad Name" / "episode.mp4"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(clips[EP1].read_bytes())

    def skip_tick():
        return next((t for t in sensor_ticks(served.instance, SENSOR)
                     if t.skip_reason and "Bad Name" in t.skip_reason), None)

    tick = wait_for(skip_tick, 120, "a tick that skips 'Bad Name'", served)
    assert "videos/Bad Name/episode.mp4" in tick.skip_reason
    assert "invalid ep_id 'Bad Name'" in tick.skip_reason
    assert not tick.run_ids
    # the next ticks remember the key: still no run for it
    n = len(sensor_ticks(served.instance, SENSOR))
    wait_for(lambda: len(sensor_ticks(served.instance, SENSOR)) >= n + 2, 60, "two more ticks",
             served)
    assert len(episode_runs(served)) == runs_before
    bad.unlink()
    bad.parent.rmdir()


def test_an_episode_the_cli_ran_is_not_run_again_by_the_sensor(served, clips):
    """``screenalytics run`` copies the video into the watched folder and materializes the
    episode itself (as ``scripts/demo.sh`` does before ``serve``): the sensor then sees a video
    whose episode is already materialized from that content and runs nothing; the season
    roll-up takes the new episode in."""
    ensure_episodes(served, clips, (EP1,))
    # the first episode, uploaded through the sensor, was rolled up by itself: one run
    table = wait_for(lambda: rolled_up(served, {EP1}), 180, "the roll-up after the upload",
                     served)
    assert table["episodes"] == [EP1]
    (rollup,) = runs_of(served.instance, SEASON)
    assert rollup.tags["dagster/sensor_name"] == ROLLUP_SENSOR
    assert rollup.tags["dagster/run_key"].startswith(f"rollup-{SEASON}@")
    run_with_cli(served, clips, EP2)
    ended = time.time()
    key = f"videos/{EP2}/episode.mp4"

    def skip_tick():  # a tick during the CLI's run leaves the upload for later ("in progress")
        return next((t for t in sensor_ticks(served.instance, SENSOR) if t.timestamp > ended
                     and t.skip_reason and key in t.skip_reason), None)

    tick = wait_for(skip_tick, 120, f"a tick that sees {key} and runs nothing", served)
    assert f"{EP2}: every asset is already materialized from this content" in tick.skip_reason
    (run,) = runs_of(served.instance, EP2)  # the CLI's
    assert "dagster/sensor_name" not in run.tags
    for asset in EPISODE_ASSETS:
        assert materialization_count(served.instance, asset, EP2) == 1, asset
    wait_for(lambda: rolled_up(served, {EP1, EP2}), 180, "the roll-up of both episodes", served)


def test_backfill_wait_follows_the_daemon_to_the_end(served, clips):
    ensure_episodes(served, clips)
    wait_for(lambda: not runs_in_progress(served.instance), 120, "no run in progress", served)
    # submitted through the running webserver (the cluster's way)
    result = served.cli("backfill", "--show", "show", "--season", "1", "--wait",
                        "--webserver", served.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2/2 episodes done, 0 failed, roll-up done [completed_success]" in result.stdout
    (backfill,) = served.instance.get_backfills()
    assert backfill.status.value == "COMPLETED_SUCCESS"
    assert materialized(served, "season_screentime", SEASON)
    # the roll-up ran after the episodes, launched once by the roll-up sensor
    (rollup,) = [r for r in served.instance.get_runs()
                 if r.tags.get("screenalytics/backfill") == backfill.backfill_id]
    assert rollup.tags["dagster/sensor_name"] == "season_rollup_sensor"
    assert rollup.tags["dagster/partition"] == SEASON
    episode_ends = [served.instance.get_run_record_by_id(r.run_id).end_time
                    for r in served.instance.get_runs()
                    if r.tags.get("dagster/backfill") == backfill.backfill_id]
    assert min(episode_ends) and served.instance.get_run_record_by_id(
        rollup.run_id).start_time >= max(episode_ends)
    for ep in (EP1, EP2):
        assert any(r.tags.get("dagster/backfill") == backfill.backfill_id
                   for r in runs_of(served.instance, ep)), ep


def test_backfill_without_wait_sees_the_running_daemon(served):
    result = served.cli("backfill", "--show", "show", "--season", "1", "--failed-only")
    assert result.returncode == 0, result.stderr
    assert "no episode's last run failed; nothing submitted" in result.stdout
    assert "no dagster-daemon" not in result.stderr


def test_backfill_wait_names_the_partitions_that_failed(served, clips, tmp_path):
    """An upload cut short fails in detections; re-running only the failed partitions fails
    again, and --wait says which and why, with exit status 1."""
    data = clips[EP1].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    place_video(served.root, BROKEN, cut)
    runs = wait_for(lambda: [r for r in runs_of(served.instance, BROKEN) if r.is_finished],
                    RUN_TIMEOUT_S, f"the run of {BROKEN}", served)
    assert runs[0].status.value == "FAILURE"
    result = served.cli("backfill", "--show", "show", "--season", "2", "--failed-only",
                        "--wait")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"1 episodes ({BROKEN}), then the season roll-up" in result.stdout
    assert "0/1 episodes done, 1 failed" in result.stdout
    assert f"failed: {BROKEN}: detections: " in result.stderr
    assert "not run: show-s02" in result.stderr
    assert "--failed-only --wait" in result.stderr
    newest = served.instance.get_backfills()[0]
    assert newest.status.value == "COMPLETED_FAILED"
    assert not materialized(served, "detections", BROKEN)


def test_a_rename_in_review_reaches_the_season_table(served, clips):
    """A name given in review replaces the identity's ``{ep_id}:id_NN`` row of the season table:
    the edit re-runs screentime (``review --run``) and the roll-up sensor re-runs the roll-up."""
    ensure_episodes(served, clips)
    wait_for(lambda: not runs_in_progress(served.instance), 180, "no run in progress", served)
    person = screentime_report(served, EP1)["people"][0]
    anonymous = f"{EP1}:id_{person['identity_id']:02d}"
    assert anonymous in {p["person"] for p in season_table(served)["people"]}
    before = materialization_count(served.instance, "season_screentime", SEASON)
    result = served.cli("review", EP1, "--run", "rename", str(person["identity_id"]),
                        "Alice Example")
    assert result.returncode == 0, result.stdout + result.stderr

    def renamed():
        table = rolled_up(served, {EP1, EP2})
        return table if table and any(p["person"] == "Alice Example"
                                      for p in table["people"]) else None

    table = wait_for(renamed, 180, "the season table with the new name", served)
    row = next(p for p in table["people"] if p["person"] == "Alice Example")
    assert row["by_episode"][EP1] == pytest.approx(person["seconds"], abs=1e-3)
    assert anonymous not in {p["person"] for p in table["people"]}
    assert materialization_count(served.instance, "season_screentime", SEASON) == before + 1


def test_a_settings_edit_rematerializes_that_stage_and_below(served, clips):
    """cluster_thresh is read by identities only: the automation sensor re-runs identities and
    what is downstream of it (track_reps, cast_links, screentime), once per episode; the
    detections, tracks, faces and embeddings stay as they are; then the roll-up sensor rolls the
    season up once."""
    ensure_episodes(served, clips)
    wait_for(lambda: not runs_in_progress(served.instance), 180, "no run in progress", served)
    # the automation sensor has had its say about the current state: a few quiet ticks
    n = len(sensor_ticks(served.instance, AUTOMATION_SENSOR, limit=1000))
    wait_for(lambda: len(sensor_ticks(served.instance, AUTOMATION_SENSOR, limit=1000)) >= n + 3,
             120, "automation ticks", served)
    assert not runs_in_progress(served.instance)
    before = {(a, ep): materialization_count(served.instance, a, ep)
              for a in EPISODE_ASSETS for ep in (EP1, EP2)}
    season_before = materialization_count(served.instance, "season_screentime", SEASON)
    runs_before = {r.run_id for r in served.instance.get_runs()}
    doc = yaml.safe_load(served.settings_file.read_text())
    doc["model_packs"]["ci_pack"]["cluster_thresh"] = 0.45
    served.settings_file.write_text(yaml.safe_dump(doc, sort_keys=False))

    def redone():
        return all(materialization_count(served.instance, "screentime", ep)
                   > before[("screentime", ep)] for ep in (EP1, EP2)) \
            and materialization_count(served.instance, "season_screentime", SEASON) \
            > season_before and not runs_in_progress(served.instance)

    # the daemon reloads its code location every 60 s (Dagster's RELOAD_WORKSPACE_INTERVAL)
    wait_for(redone, 300, "the automation sensor's re-runs", served, poll_s=2)
    time.sleep(3 * SENSOR_INTERVAL_S)  # nothing else follows
    assert not runs_in_progress(served.instance)
    changed = {"identities", "track_reps", "cast_links", "screentime"}
    for (asset, ep), count in before.items():
        now = materialization_count(served.instance, asset, ep)
        assert now == count + (asset in changed), (asset, ep, count, now)
    new_runs = [r for r in served.instance.get_runs() if r.run_id not in runs_before]
    (rollup,) = [r for r in new_runs if r.job_name == "season_job"]
    assert rollup.tags.get("dagster/sensor_name") == ROLLUP_SENSOR, rollup.tags
    assert rollup.tags["dagster/partition"] == SEASON
    episode_runs = [r for r in new_runs if r is not rollup]
    assert episode_runs
    for run in episode_runs:
        assert run.tags.get("dagster/sensor_name") == AUTOMATION_SENSOR, run.tags
    assert materialization_count(served.instance, "season_screentime", SEASON) \
        == season_before + 1
    season = served.instance.get_latest_materialization_event(AssetKey("season_screentime"))
    assert season is not None


def test_ctrl_c_stops_every_process_it_started(served):
    tree = served.processes()
    assert len(tree) >= 3  # serve, the webserver, the daemon (+ their code servers)
    rc, alive = stop_serve(served)
    assert rc == 0, served.output()[-2000:]
    assert alive == []
    out = served.output()
    assert "stopping the webserver and the daemon" in out
    # INFO by default: none of Dagster's DEBUG run events, nor the replaced code servers'
    # "No heartbeat received" warning (one a minute over the module's minutes)
    assert " - DEBUG - " not in out
    assert "No heartbeat received" not in out
    assert "detections: " in out  # a run's own progress lines still show
