"""The daemon-facing commands without a daemon (fast): ``screenalytics backfill`` says there is
none instead of leaving a backfill that silently never runs; ``--failed-only`` picks the
partitions whose last run failed; ``serve`` refuses bad settings before starting anything."""

from __future__ import annotations

import json

from dagster import AssetKey, DagsterInstance, build_sensor_context

from screenalytics_assets.cli import main as cli_main
from screenalytics_assets.daemon import daemon_alive, failed_partitions
from screenalytics_assets.definitions import EPISODE_JOB, build_definitions
from screenalytics_assets.partitions import register_episode
from screenalytics_assets.settings import load_settings
from sensors.season_rollup import ROLLUP_TAG

EPS = ["show-s03e01", "show-s03e02", "show-s03e03"]


def targets(backfill, asset: str) -> set[str]:
    subset = backfill.asset_backfill_data.target_subset.get_partitions_subset(AssetKey(asset))
    return set(subset.get_partition_keys())


def test_backfill_without_a_daemon_says_how_to_start_one(cli_env, capsys):
    instance = DagsterInstance.from_config(str(cli_env / "dagster_home"))
    for ep in EPS[:2]:
        register_episode(instance, ep)
    assert not daemon_alive(instance)
    assert cli_main(["backfill", "--show", "show", "--season", "3"]) == 0
    out, err = capsys.readouterr()
    assert "2 episodes (show-s03e01, show-s03e02), then the season roll-up" in out
    assert "no dagster-daemon is running" in err and "screenalytics serve" in err
    # said before the submission, which loads the code location (seconds of silence otherwise)
    assert err.startswith("show-s03: submitting a backfill of 2 episodes and the season roll-up "
                          "through dagster-graphql")
    (backfill,) = instance.get_backfills()
    assert targets(backfill, "screentime") == set(EPS[:2])
    assert backfill.title == "Season show-s03"
    # the roll-up sensor waits for the backfill to complete
    defs = build_definitions(load_settings(profile="fast"), data_root=str(cli_env / "data"))
    with build_sensor_context(instance=instance, definitions=defs) as ctx:
        tick = defs.resolve_sensor_def("season_rollup_sensor").evaluate_tick(ctx)
    assert not tick.run_requests and "waiting for its roll-up" in tick.skip_message
    assert json.loads(tick.cursor) == {"backfills": [], "after": None, "waiting": []}


def test_failed_only_resubmits_the_partitions_whose_last_run_failed(cli_env, capsys):
    instance = DagsterInstance.from_config(str(cli_env / "dagster_home"))
    for ep in EPS:
        register_episode(instance, ep)
    # show-s03e02 is registered without a video: its run fails in detections
    defs = build_definitions(load_settings(profile="fast"), data_root=str(cli_env / "data"))
    result = defs.resolve_job_def(EPISODE_JOB).execute_in_process(
        instance=instance, partition_key=EPS[1], raise_on_error=False)
    assert not result.success
    assert failed_partitions(instance, EPS) == [EPS[1]]
    assert cli_main(["backfill", "--show", "show", "--season", "3", "--failed-only"]) == 0
    assert "1 episodes (show-s03e02), then the season roll-up" in capsys.readouterr().out
    (backfill,) = instance.get_backfills()
    assert targets(backfill, "detections") == targets(backfill, "screentime") == {EPS[1]}
    # the roll-up follows the backfill (season_rollup_sensor), for this season only
    assert backfill.tags[ROLLUP_TAG] == "show-s03"
    assert AssetKey("season_screentime") not in backfill.asset_selection
    # a season where nothing failed: nothing is submitted
    register_episode(instance, "show-s04e01")
    assert cli_main(["backfill", "--show", "show", "--season", "4", "--failed-only"]) == 0
    assert "nothing submitted" in capsys.readouterr().out
    assert len(instance.get_backfills()) == 1


def test_serve_refuses_a_bad_sensor_interval_before_starting_anything(cli_env, capsys):
    assert cli_main(["serve", "--sensor-interval", "2"]) == 2
    assert "SCREENALYTICS_SENSOR_INTERVAL_S='2'" in capsys.readouterr().err
    assert not (cli_env / "dagster_home" / "history").exists()  # the instance was not opened


def test_sensor_switches_and_interval_come_from_the_environment(cli_env, monkeypatch):
    """What ``serve`` (and ``serve --no-sensors``) hands the daemon's code location."""
    from dagster import DefaultSensorStatus

    def sensors():
        defs = build_definitions(load_settings(profile="fast"), data_root=str(cli_env / "data"))
        return {s.name: (s.default_status, s.minimum_interval_seconds) for s in defs.sensors}

    monkeypatch.delenv("SCREENALYTICS_SENSORS", raising=False)
    monkeypatch.delenv("SCREENALYTICS_AUTOMATION", raising=False)
    monkeypatch.delenv("SCREENALYTICS_SENSOR_INTERVAL_S", raising=False)
    stopped = DefaultSensorStatus.STOPPED
    running = DefaultSensorStatus.RUNNING
    # the roll-up sensor always runs: it acts only on season backfills a user submitted
    assert sensors() == {"local_video_sensor": (stopped, 30),
                         "screenalytics_automation": (stopped, 30),
                         "season_rollup_sensor": (running, 30)}
    monkeypatch.setenv("SCREENALYTICS_SENSORS", "on")
    monkeypatch.setenv("SCREENALYTICS_AUTOMATION", "on")
    monkeypatch.setenv("SCREENALYTICS_SENSOR_INTERVAL_S", "7")
    assert sensors() == {"local_video_sensor": (running, 7),
                         "screenalytics_automation": (running, 7),
                         "season_rollup_sensor": (running, 7)}


def test_rollup_follows_only_a_season_backfill_that_succeeded():
    from sensors.season_rollup import BackfillState, handled_backfills, rollup_requests

    states = [
        BackfillState("a", "COMPLETED_SUCCESS", {ROLLUP_TAG: "show-s01"}),
        BackfillState("b", "COMPLETED_FAILED", {ROLLUP_TAG: "show-s02"}),
        BackfillState("c", "REQUESTED", {ROLLUP_TAG: "show-s03"}),
        BackfillState("d", "COMPLETED_SUCCESS", {}),  # --no-rollup, or not a season backfill
        BackfillState("e", "CANCELED", {ROLLUP_TAG: "show-s05"}),
    ]
    (request,) = rollup_requests(states)
    assert request.partition_key == "show-s01"
    assert request.run_key == "rollup-a"  # the daemon never launches a run key twice
    assert request.tags == {"screenalytics/backfill": "a"}
    # the next tick's cursor remembers it; a handled backfill that is no longer recent is
    # forgotten
    handled = handled_backfills(states, {"gone"}, [request])
    assert handled == ["a"]
    assert rollup_requests(states, set(handled)) == []


def test_a_season_behind_its_episodes_screen_time_is_rolled_up_once():
    """The roll-up sensor's other rule: a season whose table has not read its episodes' newest
    screen time is rolled up, once per state, when nothing of it is running and the screen time
    has settled; a season rolled up since, or one whose backfill brings its own roll-up, is not
    run twice."""
    from sensors.season_rollup import (
        SETTLE_S,
        SeasonState,
        freshness_requests,
        load_cursor,
    )

    now = 1_000.0
    settled = now - SETTLE_S - 1
    states = [
        SeasonState("a-s01", newest=40, newest_at=settled, read_up_to=None),  # never rolled up
        SeasonState("b-s01", newest=41, newest_at=settled, read_up_to=30),    # an episode since
        SeasonState("c-s01", newest=42, newest_at=settled, read_up_to=42),    # up to date
        SeasonState("d-s01", newest=43, newest_at=settled, read_up_to=10, busy=True),
        SeasonState("e-s01", newest=44, newest_at=now - 1, read_up_to=10),  # just changed
        SeasonState("f-s01", newest=None),  # no episode has screen time yet
        SeasonState("g-s01", newest=45, newest_at=settled, read_up_to=10),  # its backfill's
    ]
    requests, waiting = freshness_requests(states, now, skip={"g-s01"})
    assert [(r.partition_key, r.run_key) for r in requests] == [
        ("a-s01", "rollup-a-s01@40"), ("b-s01", "rollup-b-s01@41")]
    assert waiting == ["d-s01", "e-s01"]
    # the cursor of the older sensor (a list of backfill ids) is read, not dropped
    assert load_cursor('["x"]') == {"backfills": ["x"], "after": None, "waiting": []}
    assert load_cursor("not json")["backfills"] == []


def test_backfill_through_an_unreachable_webserver_fails_clearly(cli_env, capsys):
    from screenalytics_assets.cluster.local import free_port

    instance = DagsterInstance.from_config(str(cli_env / "dagster_home"))
    register_episode(instance, EPS[0])
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert cli_main(["backfill", "--show", "show", "--season", "3", "--webserver", url]) == 2
    err = capsys.readouterr().err
    assert f"could not submit the backfill: the Dagster webserver at {url} did not answer" in err
    assert "Traceback" not in err
    assert instance.get_backfills() == []


def test_serve_prints_info_and_leaves_out_dagsters_debug_records():
    """``serve`` relays its processes' output at INFO: the DEBUG records of Dagster's console
    format (every event of every run) are left out, whatever the colours; the rest is kept."""
    from screenalytics_assets.cli.serve import keep_line

    run_event = ("2026-12-06 08:28:26 +0000 - dagster - DEBUG - episode_job - 13587dde - 7823 - "
                 "tracks - STEP_START - Started execution of step \"tracks\".\n")
    coloured = ("\x1b[32m2026-12-06 08:28:04 +0000\x1b[0m - dagster.daemon - \x1b[34mDEBUG"
                "\x1b[0m - tick\n")
    assert not keep_line(run_event) and not keep_line(coloured)
    for line in ("2026-12-06 08:37:03 +0000 - dagster - INFO - episode_job - e1ec - detections - "
                 "detections: 45/45 (57.1/s, ETA 0 s)\n",
                 "\x1b[32m2026-12-06 08:28:04 +0000\x1b[0m - dagster.code_server - \x1b[33m"
                 "WARNING\x1b[0m - something\n",
                 "Traceback (most recent call last):\n",
                 "  a DEBUG word inside a message line\n"):
        assert keep_line(line), line
