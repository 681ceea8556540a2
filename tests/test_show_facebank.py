"""cast_links depends on its own show's facebank only: rebuilding one show's facebank marks that
show's episodes stale and no other show's."""

from __future__ import annotations

import pytest
from dagster import AssetKey, DagsterInstance

from resources.facebank import add_photos
from resources.storage import LocalStore
from screenalytics_assets.assets.cast import ensure_edits_observed
from screenalytics_assets.definitions import EPISODE_JOB, FACEBANK_JOB, build_definitions
from screenalytics_assets.partitions import register_episode
from screenalytics_assets.settings import load_settings
from screenalytics_assets.staleness import stale_or_missing
from tests.conftest import FACEBANK
from tests.helpers import dagster_stale_status
from tests.test_smoke import tiny_clip

pytestmark = pytest.mark.slow  # runs the pipeline on two 1.5 s clips

EPS = {"showa": "showa-s01e01", "showb": "showb-s01e01"}
CAST_LINKS = AssetKey("cast_links")


def test_rebuilding_one_shows_facebank_marks_only_its_episodes_stale(tmp_path):
    (tmp_path / "home").mkdir()
    instance = DagsterInstance.local_temp(str(tmp_path / "home"),
                                          overrides={"telemetry": {"enabled": False}})
    store = LocalStore(tmp_path / "data")
    clip = tiny_clip(tmp_path / "tiny.mp4")
    settings = load_settings(profile="fast")
    defs = build_definitions(settings, data_root=str(store.root))
    for show, ep in EPS.items():
        store.put_video(ep, clip)
        register_episode(instance, ep)
        ensure_edits_observed(instance, store, ep)
        add_photos(store, show, "lin-manuel-miranda", [FACEBANK / "lin-manuel-miranda" / "01.png"])
        for job, key in ((FACEBANK_JOB, show), (EPISODE_JOB, ep)):
            assert defs.resolve_job_def(job).execute_in_process(
                instance=instance, partition_key=key).success

    def stale() -> dict[str, tuple[bool, bool]]:
        """ep -> (ours: staleness.stale_or_missing, Dagster's own status as the UI shows it)"""
        dagster = dagster_stale_status(instance, settings, store.root, ["cast_links"],
                                       list(EPS.values()))
        return {ep: (CAST_LINKS in stale_or_missing(defs, instance, ep, [CAST_LINKS]),
                     dagster[("cast_links", ep)] == "STALE") for ep in EPS.values()}

    assert stale() == {EPS["showa"]: (False, False), EPS["showb"]: (False, False)}
    # a second cast member for show a: its facebank changes, show b's does not
    add_photos(store, "showa", "barack-obama", [FACEBANK / "barack-obama" / "01.jpg"])
    assert defs.resolve_job_def(FACEBANK_JOB).execute_in_process(
        instance=instance, partition_key="showa").success
    assert stale() == {EPS["showa"]: (True, True), EPS["showb"]: (False, False)}
