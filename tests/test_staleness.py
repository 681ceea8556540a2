"""Changing a setting re-materializes only what is downstream of it; so does a new video."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
import yaml
from dagster import AssetKey, DagsterInstance

from screenalytics_assets.cli import main
from screenalytics_assets.settings import DEFAULT_SETTINGS_PATH
from tests.conftest import HAMILTON

EP = "stale-s01e01"
ALL = {"detections", "tracks", "faces", "embeddings", "identities", "track_reps", "cast_links",
       "screentime"}
RECLUSTERED = {"identities", "track_reps", "cast_links", "screentime"}


class Episode:
    """One episode driven through the CLI, counting materializations in the event log."""

    def __init__(self, root: Path, monkeypatch):
        """``root``: a folder prepared by the ``cli_env`` fixture."""
        self.root = root
        self.settings = root / "settings.yaml"
        self.settings.write_text(DEFAULT_SETTINGS_PATH.read_text())
        monkeypatch.setenv("SCREENALYTICS_SETTINGS", str(self.settings))
        self.counts = self._counts()

    def _counts(self) -> dict[str, int]:
        with DagsterInstance.from_config(str(self.root / "dagster_home")) as inst:
            return {a: len(inst.fetch_materializations(AssetKey(a), limit=1000).records)
                    for a in ALL}

    def run(self, *args: str) -> set[str]:
        """Run the CLI; return the assets materialized by it."""
        assert main(["run", *args, "--ep-id", EP]) == 0
        after = self._counts()
        ran = {a for a in ALL if after[a] > self.counts[a]}
        assert all(after[a] - self.counts[a] <= 1 for a in ALL)
        self.counts = after
        return ran

    def edit(self, section: str, key: str, value) -> None:
        doc = yaml.safe_load(self.settings.read_text())
        doc[section][key] = value
        self.settings.write_text(yaml.safe_dump(doc))


@pytest.fixture
def episode(cli_env, monkeypatch):
    ep = Episode(cli_env, monkeypatch)
    assert ep.run(str(HAMILTON)) == ALL
    return ep


def _remuxed(src: Path, dest: Path) -> Path:
    """Same frames, different bytes (the index moved to the front)."""
    with av.open(str(src)) as i, av.open(str(dest), "w", options={"movflags": "faststart"}) as o:
        out = o.add_stream_from_template(i.streams.video[0])
        for packet in i.demux(i.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                o.mux(packet)
    return dest


@pytest.mark.slow
def test_nothing_changed_reruns_nothing(episode):
    assert episode.run("--stale-only") == set()


@pytest.mark.slow
def test_cluster_thresh_reruns_identities_and_descendants_only(episode):
    doc = yaml.safe_load(episode.settings.read_text())
    episode.edit("model_packs", "ci_pack", {**doc["model_packs"]["ci_pack"], "cluster_thresh": 0.7})
    assert episode.run("--stale-only") == RECLUSTERED
    assert episode.run("--stale-only") == set()


@pytest.mark.slow
def test_det_thresh_reruns_everything(episode):
    doc = yaml.safe_load(episode.settings.read_text())
    episode.edit("profiles", "balanced", {**doc["profiles"]["balanced"], "det_thresh": 0.6})
    assert episode.run("--stale-only") == ALL


@pytest.mark.slow
def test_same_video_bytes_rerun_nothing(episode, tmp_path):
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(HAMILTON.read_bytes())
    assert episode.run(str(copy), "--stale-only") == set()


@pytest.mark.slow
def test_different_video_bytes_rerun_everything(episode, tmp_path):
    assert episode.run(str(_remuxed(HAMILTON, tmp_path / "remux.mp4")), "--stale-only") == ALL


@pytest.mark.slow
def test_run_override_reruns_readers_and_is_recorded(episode):
    assert episode.run("--stale-only", "--set", "min_track_faces=5") == RECLUSTERED
    with DagsterInstance.from_config(str(episode.root / "dagster_home")) as inst:
        mat = inst.get_latest_materialization_event(AssetKey("identities")).asset_materialization
        assert mat.metadata["run_overrides"].value == {"min_track_faces": 5}
        assert mat.metadata["settings_used"].value["min_track_faces"] == 5
    # overrides change no code version: the settings file still rules what is stale
    assert episode.run("--stale-only") == set()


@pytest.mark.slow
def test_unknown_override_is_rejected(episode, capsys):
    assert main(["run", "--ep-id", EP, "--set", "cluster_treshold=0.7"]) == 2
    assert "unknown setting 'cluster_treshold'" in capsys.readouterr().err


@pytest.mark.slow
def test_automation_conditions_follow_settings_not_uploads(tmp_path):
    """What a running daemon's automation sensor would request, tick by tick."""
    from dagster import evaluate_automation_conditions

    from screenalytics_assets.definitions import build_definitions
    from screenalytics_assets.staleness import observe_video
    from tests.helpers import run_episode

    run = run_episode(tmp_path, HAMILTON, "auto-s01e01")
    observe_video(run.instance, run.store, run.ep_id)

    def requested(result):
        return {r.key.to_user_string() for r in result.results if r.true_subset.size}

    defs = build_definitions(run.settings, data_root=str(run.store.root))
    tick = evaluate_automation_conditions(defs, run.instance)
    assert requested(tick) == set()
    # a settings edit: identities' code version changes
    edited = build_definitions(run.settings.with_overrides({"cluster_thresh": 0.7}),
                               data_root=str(run.store.root))
    tick = evaluate_automation_conditions(edited, run.instance, cursor=tick.cursor)
    assert requested(tick) == {"identities", "track_reps", "cast_links", "screentime"}
    tick = evaluate_automation_conditions(edited, run.instance, cursor=tick.cursor)
    assert requested(tick) == set()
    # a new upload with different content for the same episode: the upload sensor (or the CLI)
    # runs it; the automation sensor must not start a second run of the same partition
    run.store.put_video(run.ep_id, _remuxed(HAMILTON, tmp_path / "remux.mp4"))
    observe_video(run.instance, run.store, run.ep_id)
    tick = evaluate_automation_conditions(edited, run.instance, cursor=tick.cursor)
    assert requested(tick) == set()
