"""Artifact integrity: every artifact's sha256 and row count are recorded when it is written, and
every way of damaging a file afterwards is noticed (loading, the asset checks, ``--stale-only``,
``review show``); a damaged episode is rebuilt to the clean answer."""

from __future__ import annotations

import json
import random
import shutil

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance

from resources.integrity import damaged_assets, load_artifact, problems, read_manifest
from resources.storage import LocalStore
from screenalytics_assets.cli.run import damaged_files, plan_selection
from screenalytics_assets.core.artifacts import CODECS
from screenalytics_assets.core.detection_crops import crops_path
from screenalytics_assets.core.errors import ArtifactIntegrityError
from screenalytics_assets.core.integrity import manifest_name, rebuild_command
from screenalytics_assets.definitions import build_definitions
from screenalytics_assets.settings import load_settings
from tests.faults import CORRUPTIONS, Cli, corrupt, people, tiny_episode

EP = "tiny-s01e01"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny episode materialized once through the CLI (fast profile); tests that damage a
    file put it back."""
    root = tmp_path_factory.mktemp("integrity")
    cli = Cli(root)
    video = tiny_episode(root / "tiny.mp4")
    rc, out, err = cli("run", str(video), "--ep-id", EP, "--profile", "fast")
    assert rc == 0, err
    clean = {p.name: p.read_bytes() for p in cli.manifests(EP).iterdir() if p.is_file()}
    return cli, video, clean


@pytest.fixture
def restore(world):
    """Put every artifact file of the episode back as the clean run wrote it."""
    cli, _, clean = world
    yield
    for name, data in clean.items():
        (cli.manifests(EP) / name).write_bytes(data)


def _recorded_files():
    return [(asset, name) for asset in CODECS for name in CODECS[asset].files]


def test_each_artifact_has_a_manifest_and_materialization_metadata(world):
    cli, _, _ = world
    store = LocalStore(cli.data)
    for asset in CODECS:
        recorded = read_manifest(store, EP, asset)
        assert set(CODECS[asset].files) <= set(recorded), asset
        assert problems(store, EP, asset) == {}
    tracks = read_manifest(store, EP, "tracks")["tracks.jsonl"]
    lines = (cli.manifests(EP) / "tracks.jsonl").read_bytes().splitlines()
    assert tracks.rows == len(lines) >= 2
    with DagsterInstance.from_config(str(cli.home)) as inst:
        mat = inst.get_latest_materialization_event(AssetKey("tracks")).asset_materialization
        assert mat.metadata["sha256"].value["tracks.jsonl"] == tracks.sha256
        assert mat.metadata["dagster/row_count"].value == len(lines)


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_every_corruption_of_every_artifact_file_is_noticed(world, restore, kind):
    """Fault injection: each artifact file in turn is truncated, loses a row, or has bytes
    flipped; loading, the integrity check and --stale-only's planning all notice, every time."""
    cli, _, clean = world
    store = LocalStore(cli.data)
    defs = build_definitions(load_settings(profile="fast"), data_root=str(cli.data))
    rng = random.Random(kind)
    with DagsterInstance.from_config(str(cli.home)) as inst:
        for asset, name in _recorded_files():
            path = cli.manifests(EP) / name
            corrupt(path, kind, rng)
            found = problems(store, EP, asset)
            assert list(found) == [str(path)], (asset, name, found)
            with pytest.raises(ArtifactIntegrityError) as err:
                load_artifact(store, EP, asset)
            assert str(path) in str(err.value) and rebuild_command(EP) in str(err.value)
            damaged = damaged_files(store, defs, EP)
            assert list(damaged) == [asset]
            plan = plan_selection(defs, inst, EP, {}, True, list(damaged))
            assert plan[0] == AssetKey(asset)
            assert AssetKey("screentime") in plan or asset == "track_reps"  # its only leaf
            path.write_bytes(clean[name])
            assert problems(store, EP, asset) == {}


def test_a_damaged_manifest_or_a_deleted_file_is_noticed(world, restore):
    cli, _, _ = world
    store = LocalStore(cli.data)
    corrupt(cli.manifests(EP) / manifest_name("identities"), "truncate")
    (cli.manifests(EP) / "faces_embeddings.npy").unlink()
    found = damaged_assets(store, EP, list(CODECS))
    assert set(found) == {"identities", "embeddings"}
    assert "damaged" in next(iter(found["identities"].values()))
    assert found["embeddings"] == {str(cli.manifests(EP) / "faces_embeddings.npy"): "missing"}


@pytest.mark.parametrize("kind", ["drop_rows", "truncate"])
def test_stale_only_rebuilds_damaged_tracks_to_the_clean_answer(world, restore, kind):
    """The reported case: lines dropped from tracks.jsonl (or the file cut mid-line); --stale-only
    used to say every asset is up to date and a re-run produced a wrong table with exit 0."""
    cli, _, clean = world
    corrupt(cli.manifests(EP) / "tracks.jsonl", kind)
    rc, out, err = cli("run", "--ep-id", EP, "--stale-only", "--profile", "fast")
    assert rc == 0, err
    flat = "".join(err.split())  # the console wraps long lines
    assert "damagedtracks:" in flat and "tracks.jsonl:" in flat
    planned = " ".join(err.split()).split("materializing: ")[1]
    assert planned.startswith("tracks, faces")
    assert (cli.manifests(EP) / "tracks.jsonl").read_bytes() == clean["tracks.jsonl"]
    assert people(cli.manifests(EP) / "screentime.json") == people_of(clean)
    rc, _, err = cli("run", "--ep-id", EP, "--stale-only", "--profile", "fast")
    assert rc == 0 and "nothing (every asset is up to date)" in " ".join(err.split())


def people_of(clean: dict[str, bytes]) -> list[tuple]:
    doc = json.loads(clean["screentime.json"])
    return sorted((p["identity_id"], p["cast_id"], p["seconds"], p["n_tracks"])
                  for p in doc["people"])


def test_a_downstream_asset_refuses_a_damaged_input(world, restore):
    """Re-materializing only screentime over a damaged cast_links.json fails loudly, naming the
    file, instead of producing a wrong table."""
    cli, _, _ = world
    corrupt(cli.manifests(EP) / "cast_links.json", "flip_bytes")
    defs = build_definitions(load_settings(profile="fast"), data_root=str(cli.data))
    with DagsterInstance.from_config(str(cli.home)) as inst:
        result = defs.resolve_job_def("episode_job").execute_in_process(
            instance=inst, partition_key=EP, asset_selection=[AssetKey("screentime")],
            raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    message = failure.step_failure_data.error.to_string()
    assert "ArtifactIntegrityError" in message and "cast_links.json" in message


@pytest.mark.parametrize("name", ["identities.json", "tracks.jsonl"])
def test_review_show_on_a_damaged_file_is_a_clear_message(world, restore, name):
    cli, _, _ = world
    corrupt(cli.manifests(EP) / name, "truncate")
    rc, out, err = cli("review", EP, "show")
    assert rc == 2
    assert name in err and "damaged" in err and rebuild_command(EP) in " ".join(err.split())
    assert "JSONDecodeError" not in err and "Traceback" not in err


def test_season_roll_up_refuses_a_damaged_screentime(world, restore):
    cli, _, _ = world
    corrupt(cli.manifests(EP) / "screentime.json", "drop_rows")
    defs = build_definitions(load_settings(profile="fast"), data_root=str(cli.data))
    with DagsterInstance.from_config(str(cli.home)) as inst:
        result = defs.resolve_job_def("season_job").execute_in_process(
            instance=inst, partition_key="tiny-s01", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    assert "screentime.json" in failure.step_failure_data.error.to_string()


def test_delete_removes_the_manifests_too(world, tmp_path):
    cli, video, _ = world
    copy = Cli(tmp_path)
    shutil.copytree(cli.data / "manifests" / EP, copy.data / "manifests" / EP)
    # faces cut by a detection pass whose faces stage never ran (core.detection_crops)
    crops = crops_path(LocalStore(copy.data).spool_dir(), EP)
    crops.parent.mkdir(parents=True)
    crops.write_bytes(b"")
    rc, _, err = copy("delete", EP)
    assert rc == 0, err
    assert not (copy.data / "manifests" / EP).exists() and not crops.exists()


def test_loading_fetches_each_verified_file_once(world):
    """The bytes that were verified are the bytes decoded: each file is fetched once (one GET
    on S3), not once to hash and again to load."""
    cli, _, _ = world

    class Counting(LocalStore):
        def __init__(self, root):
            super().__init__(root)
            self.gets: list[str] = []

        def get(self, key: str) -> bytes:
            self.gets.append(key)
            return super().get(key)

    store = Counting(cli.data)
    assert load_artifact(store, EP, "tracks").tracks
    fetched = [k for k in store.gets if not k.endswith(manifest_name("tracks"))]
    assert fetched and len(fetched) == len(set(fetched)), fetched
