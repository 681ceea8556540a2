"""Smoke test of the whole asset graph (Dagster's ``assets_smoke_test`` pattern): every asset of
the code location materialized once on tiny real inputs, through the real definitions, IO manager
and instance. Cheap enough for the fast tier; the slow tier checks the answers on full clips."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from resources.dagster_storage import LocalStorageResource
from resources.facebank import add_photos
from resources.storage import LocalStore
from screenalytics_assets.assets.cast import build_cast_assets, ensure_edits_observed
from screenalytics_assets.assets.episode import build_episode_assets
from screenalytics_assets.definitions import (
    EPISODE_JOB,
    FACEBANK_JOB,
    SEASON_JOB,
    build_definitions,
)
from screenalytics_assets.partitions import register_episode, season_of
from screenalytics_assets.settings import load_settings
from tests.conftest import FACEBANK, HAMILTON

EP = "smoke-s01e01"


def tiny_clip(dest: Path, first: int = 190, last: int = 236) -> Path:
    """Frames ``first``..``last - 1`` of the Hamilton clip (1.5 s across its last shot cut,
    frame 211), re-encoded at a third of the size."""
    with av.open(str(HAMILTON)) as src, av.open(str(dest), "w") as out:
        stream = out.add_stream("libx264", rate=src.streams.video[0].average_rate)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        stream.codec_context.time_base = 1 / stream.codec_context.framerate
        for i, frame in enumerate(src.decode(video=0)):
            if i >= last:
                break
            if i >= first:
                img = frame.reformat(width=320, height=180, format="yuv420p")
                img.pts, img.time_base = i - first, 1 / stream.codec_context.framerate
                for packet in stream.encode(img):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dest


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    (root / "home").mkdir()
    instance = DagsterInstance.local_temp(str(root / "home"),
                                          overrides={"telemetry": {"enabled": False}})
    store = LocalStore(root / "data")
    store.put_video(EP, tiny_clip(root / "tiny.mp4"))
    add_photos(store, "smoke", "lin-manuel-miranda", [FACEBANK / "lin-manuel-miranda" / "01.png"])
    register_episode(instance, EP)
    ensure_edits_observed(instance, store, EP)
    settings = load_settings(profile="fast")
    return root, instance, store, settings, build_definitions(settings, data_root=str(store.root))


def test_every_asset_materializes_on_a_tiny_episode(smoke):
    _, instance, _, _, defs = smoke
    done: set[AssetKey] = set()
    checks = []
    for job, key in ((FACEBANK_JOB, "smoke"), (EPISODE_JOB, EP), (SEASON_JOB, season_of(EP))):
        result = defs.resolve_job_def(job).execute_in_process(instance=instance,
                                                              partition_key=key)
        assert result.success
        done |= {m.asset_key for m in result.get_asset_materialization_events()}
        checks += result.get_asset_check_evaluations()
    graph = defs.resolve_asset_graph()
    materializable = {k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable}
    assert done == materializable  # a new asset must join a job, and so this test
    assert checks and all(c.passed for c in checks)


def test_episode_assets_run_with_an_in_memory_io_manager(smoke):
    """The assets hand each other values, not files: with Dagster's in-memory IO manager every
    episode asset still runs (only the source observations and the facebank come from disk)."""
    from dagster import InMemoryIOManager

    root, instance, store, settings, defs = smoke
    _, cast_links = build_cast_assets(settings)
    episode = [*build_episode_assets(settings), cast_links]
    storage = LocalStorageResource(data_root=str(store.root))
    result = materialize(
        episode, partition_key=EP, instance=instance,
        resources={"artifact_io_manager": InMemoryIOManager(), "storage": storage,
                   "models": defs.resources["models"]})
    assert result.success
    report = result.output_for_node("screentime")
    assert report.ep_id == EP and 0 < report.duration_s < 2
    assert {m.asset_key.path[-1] for m in result.get_asset_materialization_events()} == {
        "detections", "tracks", "faces", "embeddings", "identities", "track_reps", "cast_links",
        "screentime"}
