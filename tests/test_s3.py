"""S3 storage, the upload sensor, season backfills, crops links and delete, against a real S3
endpoint (moto server over HTTP) and a real on-disk Dagster instance.

One module-scoped flow uploads the Hamilton clip, lets the sensor request its run and executes
it (fast profile, crops saved); later tests build on it in file order.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from dagster import (
    AddDynamicPartitionsRequest,
    AssetKey,
    DagsterInstance,
    build_sensor_context,
)
from dagster_aws.s3 import S3Resource

from resources.s3_dagster import S3StorageResource
from resources.s3_storage import S3Store
from screenalytics_assets.cli import main as cli_main
from screenalytics_assets.core.artifacts import CODECS
from screenalytics_assets.core.errors import ArtifactError, VideoError
from screenalytics_assets.definitions import EPISODE_JOB, SEASON_JOB, build_definitions
from screenalytics_assets.partitions import EPISODES_PARTITION, SEASONS_PARTITION, SHOWS_PARTITION
from screenalytics_assets.settings import load_settings
from sensors.upload import scan_uploads
from tests.conftest import HAMILTON
from tests.s3_server import FAKE_AWS_ENV, moto_server, new_bucket, s3_client

EP1, EP2, SEASON = "hamilton-s01e01", "hamilton-s01e02", "hamilton-s01"
SENSOR = "s3_upload_sensor"
MANIFESTS = "artifacts/manifests/hamilton/s01/e{ee}/"
DESIGN_FILES = ["detections.jsonl", "shots.json", "tracks.jsonl", "tracks_meta.json",
                "faces.jsonl", "faces_aligned.zip", "faces_embeddings.npy",
                "faces_embeddings.json", "identities.json", "cluster_centroids.json",
                "track_reps.jsonl", "track_metrics.json", "screentime.json", "screentime.csv"]
SAVE_CROPS = {"ops": {"faces": {"config": {"save_crops": True}}}}


@dataclass
class S3World:
    endpoint: str
    bucket: str
    root: Path
    instance: DagsterInstance
    defs: object
    store: S3Store


@pytest.fixture(scope="module")
def endpoint():
    with pytest.MonkeyPatch.context() as mp:
        for k, v in FAKE_AWS_ENV.items():
            mp.setenv(k, v)
        with moto_server() as url:
            yield url


@pytest.fixture(scope="module")
def world(endpoint, tmp_path_factory):
    """S3 backend chosen through the environment, as in production; a fresh bucket."""
    root = tmp_path_factory.mktemp("s3world")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    bucket = new_bucket(endpoint)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STORAGE_BACKEND", "s3")
        mp.setenv("SCREENALYTICS_S3_BUCKET", bucket)
        mp.setenv("SCREENALYTICS_S3_ENDPOINT_URL", endpoint)
        mp.setenv("SCREENALYTICS_DATA_ROOT", str(root / "data"))
        mp.setenv("SCREENALYTICS_PROFILE", "fast")
        mp.setenv("DAGSTER_HOME", str(home))
        instance = DagsterInstance.local_temp(str(home),
                                              overrides={"telemetry": {"enabled": False}})
        defs = build_definitions(load_settings(profile="fast"))
        store = defs.resources["storage"].store()
        yield S3World(endpoint, bucket, root, instance, defs, store)


def tick(world: S3World, cursor: str | None):
    # the sensor daemon hands the sensor the code location's top-level resources
    with build_sensor_context(instance=world.instance, instance_ref=world.instance.get_ref(),
                              cursor=cursor, definitions=world.defs,
                              resources={"storage": world.defs.resources["storage"]}) as ctx:
        return world.defs.resolve_sensor_def(SENSOR).evaluate_tick(ctx)


def apply_partitions(instance: DagsterInstance, data) -> None:
    """What the sensor daemon does with a tick's dynamic partition requests."""
    for req in data.dynamic_partitions_requests or []:
        assert isinstance(req, AddDynamicPartitionsRequest)
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))


def execute(world: S3World, request, run_config=None):
    result = world.defs.resolve_job_def(EPISODE_JOB).execute_in_process(
        instance=world.instance, partition_key=request.partition_key, tags=request.tags,
        run_config=run_config)
    assert result.success
    return result


def upload(world: S3World, ep_id: str, path: Path = HAMILTON) -> str:
    client = s3_client(world.endpoint)
    client.upload_file(str(path), world.bucket, f"videos/{ep_id}/episode.mp4")
    return client.head_object(Bucket=world.bucket,
                              Key=f"videos/{ep_id}/episode.mp4")["ETag"].strip('"')


@pytest.fixture(scope="module")
def first_upload(world):
    """Upload -> sensor tick -> the requested run, executed (crops saved)."""
    etag = upload(world, EP1)
    data = tick(world, None)
    apply_partitions(world.instance, data)
    assert data.run_requests and len(data.run_requests) == 1
    result = execute(world, data.run_requests[0], SAVE_CROPS)
    return etag, data, result


@pytest.fixture(scope="module")
def second_upload(world, first_upload):
    """A second episode of the same season, picked up by the next tick."""
    _, first, _ = first_upload
    upload(world, EP2)
    data = tick(world, first.cursor)
    apply_partitions(world.instance, data)
    assert [r.partition_key for r in data.run_requests] == [EP2]
    execute(world, data.run_requests[0])
    return data


# ------------------------------------------------------------------------------ the sensor
@pytest.mark.slow
def test_sensor_requests_a_run_for_the_upload(world, first_upload):
    etag, data, _ = first_upload
    (req,) = data.run_requests
    assert req.partition_key == EP1
    assert req.run_key == f"videos/{EP1}/episode.mp4@{etag}"
    added = {(r.partitions_def_name, k) for r in data.dynamic_partitions_requests
             for k in r.partition_keys}
    assert added == {(EPISODES_PARTITION, EP1), (SEASONS_PARTITION, SEASON),
                     (SHOWS_PARTITION, "hamilton")}
    obs = {e.asset_key.to_user_string(): e for e in data.asset_events}
    assert set(obs) == {"episode_video", "identity_edits", "show_facebank"}
    assert obs["episode_video"].partition == obs["identity_edits"].partition == EP1
    assert obs["episode_video"].tags["dagster/data_version"] == etag == \
        world.store.video_version(EP1)


@pytest.mark.slow
def test_same_tick_again_requests_nothing(world, first_upload):
    _, data, _ = first_upload
    again = tick(world, data.cursor)
    assert not again.run_requests and not again.dynamic_partitions_requests
    assert again.skip_message
    # a lost cursor rescans, but gives the same run_key, which Dagster never launches twice
    fresh = tick(world, None)
    assert [r.run_key for r in fresh.run_requests] == [data.run_requests[0].run_key]


def test_reupload_with_new_content_requests_a_new_run(endpoint, tmp_path):
    bucket = new_bucket(endpoint)
    storage = S3StorageResource(s3=S3Resource(endpoint_url=endpoint), bucket=bucket,
                                cache_dir=str(tmp_path / "cache"))
    defs = build_definitions(load_settings(profile="fast"), storage=storage)
    (tmp_path / "home").mkdir()
    w = S3World(endpoint, bucket, tmp_path, DagsterInstance.local_temp(
        str(tmp_path / "home"), overrides={"telemetry": {"enabled": False}}), defs,
        storage.store())
    first = upload(w, "show-s02e01")
    d1 = tick(w, None)
    assert [r.run_key for r in d1.run_requests] == [f"videos/show-s02e01/episode.mp4@{first}"]
    assert not tick(w, d1.cursor).run_requests  # same content: nothing
    changed = tmp_path / "changed.mp4"
    changed.write_bytes(HAMILTON.read_bytes() + b"\0")
    second = upload(w, "show-s02e01", changed)
    assert second != first
    d2 = tick(w, d1.cursor)
    assert [r.run_key for r in d2.run_requests] == [f"videos/show-s02e01/episode.mp4@{second}"]


def test_invalid_keys_are_skipped_with_a_reason(endpoint, tmp_path, caplog):
    bucket = new_bucket(endpoint)
    store = S3Store(s3_client(endpoint), bucket, cache_dir=tmp_path)
    bad = ["videos/../x/episode.mp4", "videos/BAD ID/episode.mp4",
           "videos/show-s01e01/notes.txt", "videos/show-s01e1/episode.mp4",
           "videos/show-s01e01/extra/episode.mp4"]
    client = s3_client(endpoint)
    for key in bad:  # uploaded by someone else, straight to the bucket
        client.put_object(Bucket=bucket, Key=key, Body=b"not an upload")
    store.put("videos/show-s01e02/episode.mp4", b"a video")
    listed = {v.key for v in store.list_videos()}
    assert set(bad) <= listed  # the server kept the odd keys as they are
    log = logging.getLogger("test-sensor")
    with caplog.at_level(logging.INFO, logger="test-sensor"):
        scan = scan_uploads(store, None, set(), log)
    assert [r.partition_key for r in scan.run_requests] == ["show-s01e02"]
    assert scan.new_episodes == ["show-s01e02"]
    assert set(scan.skipped) == set(bad)
    for key in bad:
        assert any(key in rec.getMessage() and "skipping" in rec.getMessage()
                   for rec in caplog.records), key
    # skipped keys are remembered: the next tick neither logs them again nor requests anything
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="test-sensor"):
        again = scan_uploads(store, scan.cursor, {"show-s01e02"}, log)
    assert not again.run_requests and not again.skipped and not caplog.records


# ------------------------------------------------------------------------------ artifacts
@pytest.mark.slow
def test_every_artifact_is_in_the_bucket_and_loads_back(world, first_upload):
    _, _, result = first_upload
    keys = set(world.store.list_keys("artifacts/"))
    prefix = MANIFESTS.format(ee="01")
    for name in DESIGN_FILES:
        assert prefix + name in keys, name
    crops = [k for k in keys if k.startswith("artifacts/crops/hamilton/s01/e01/tracks/track_")]
    assert any(k.endswith("/thumb.jpg") for k in crops)
    assert any("/face_" in k for k in crops)
    # nothing was written under the local data root's artifact folders
    assert not (world.root / "data" / "manifests").exists()
    for name, codec in CODECS.items():
        value = codec.load(lambda f: world.store.read_file(EP1, f))
        assert value is not None, name
    report = CODECS["screentime"].load(lambda f: world.store.read_file(EP1, f))
    assert report.ep_id == EP1 and report.people
    mat = world.instance.get_latest_materialization_event(AssetKey("tracks")).asset_materialization
    assert mat.metadata["path"].value == f"s3://{world.bucket}/{prefix}tracks.jsonl"
    assert result.success


@pytest.mark.slow
def test_video_is_cached_once_by_etag(world, first_upload):
    etag, _, _ = first_upload
    cached = world.store.video_path(EP1)
    assert cached.parent.name == etag
    assert cached.read_bytes() == HAMILTON.read_bytes()
    assert not [p for p in cached.parent.iterdir() if p.name.startswith(".")]
    with pytest.raises(VideoError, match="videos/nope-s01e01/episode.mp4"):
        world.store.video_path("nope-s01e01")


def test_missing_artifact_and_failed_write_are_clear_errors(world, endpoint, tmp_path):
    with pytest.raises(ArtifactError, match="materialize its asset"):
        world.store.read_file("hamilton-s09e09", "tracks.jsonl")
    gone = S3Store(s3_client(endpoint), "no-such-bucket-here", cache_dir=tmp_path)
    with pytest.raises(ArtifactError, match="cannot write s3://no-such-bucket-here/"):
        gone.put("artifacts/manifests/x/s01/e01/a.json", b"{}")


def test_prefix_puts_every_key_under_it(endpoint, tmp_path):
    bucket = new_bucket(endpoint)
    store = S3Store(s3_client(endpoint), bucket, prefix="prod/v1", cache_dir=tmp_path)
    store.write_files(EP1, {"tracks.jsonl": b"{}\n", "thumbs/track_0003.jpg": b"jpg"})
    raw = sorted(o["Key"] for o in s3_client(endpoint).list_objects_v2(
        Bucket=bucket)["Contents"])
    assert raw == ["prod/v1/artifacts/crops/hamilton/s01/e01/tracks/track_0003/thumb.jpg",
                   "prod/v1/artifacts/manifests/hamilton/s01/e01/tracks.jsonl"]
    assert store.list_keys("artifacts/") == [k[len("prod/v1/"):] for k in raw]
    assert store.track_image_keys(EP1, 3) == [raw[0][len("prod/v1/"):]]


@pytest.mark.slow
def test_crops_prints_presigned_urls_that_work(world, first_upload, capsys):
    track = next(k for k in world.store.list_keys("artifacts/crops/hamilton/s01/e01/tracks/")
                 if k.endswith("/thumb.jpg")).split("/")[-2]
    track_id = int(track.split("_")[1])
    capsys.readouterr()
    assert cli_main(["crops", EP1, str(track_id)]) == 0
    urls = capsys.readouterr().out.split()
    assert len(urls) == len(world.store.track_image_keys(EP1, track_id)) >= 2
    for url in urls:
        assert url.startswith(world.endpoint) and "Signature=" in url
        with urllib.request.urlopen(url) as resp:
            assert resp.read(2) == b"\xff\xd8"  # a JPEG
    assert cli_main(["crops", EP1, "9999"]) == 2


# ------------------------------------------------------------------------------ season backfill
@pytest.mark.slow
def test_season_backfill_and_rollup(world, second_upload, capsys):
    capsys.readouterr()
    assert cli_main(["backfill", "--show", "hamilton", "--season", "1"]) == 0
    assert "2 episodes" in capsys.readouterr().out
    (backfill,) = world.instance.get_backfills()
    target = backfill.asset_backfill_data.target_subset
    assert set(target.get_partitions_subset(AssetKey("detections")).get_partition_keys()) == \
        {EP1, EP2}
    assert set(target.get_partitions_subset(AssetKey("screentime")).get_partition_keys()) == \
        {EP1, EP2}
    # the roll-up follows the backfill (season_rollup_sensor), for this season only
    assert backfill.tags["screenalytics/rollup"] == SEASON
    # the daemon would launch the runs; both episodes are materialized, so run the roll-up
    result = world.defs.resolve_job_def(SEASON_JOB).execute_in_process(
        instance=world.instance, partition_key=SEASON)
    assert result.success
    base = "artifacts/manifests/hamilton/s01/season_screentime"
    for ext in ("csv", "json", "png"):
        assert world.store.exists(f"{base}.{ext}"), ext
    doc = json.loads(world.store.get(f"{base}.json"))
    assert doc["episodes"] == [EP1, EP2]
    table = pd.read_csv(__import__("io").BytesIO(world.store.get(f"{base}.csv")))
    for ep in (EP1, EP2):
        report = CODECS["screentime"].load(lambda f, ep=ep: world.store.read_file(ep, f))
        assert table[ep].sum() == pytest.approx(sum(p.seconds for p in report.people), abs=0.01)
    assert (table["total_s"] - table[EP1] - table[EP2]).abs().max() < 0.01
    assert world.store.get(f"{base}.png")[:4] == b"\x89PNG"
    md = world.instance.get_latest_materialization_event(
        AssetKey("season_screentime")).asset_materialization.metadata
    assert EP1 in md["table"].value and EP2 in md["table"].value


def test_backfill_of_a_season_without_episodes_fails_clearly(world, capsys):
    assert cli_main(["backfill", "--show", "hamilton", "--season", "7"]) == 2
    assert "no registered episodes" in capsys.readouterr().err


# ------------------------------------------------------------------------------ delete
@pytest.mark.slow
def test_delete_removes_the_episode_and_nothing_else(world, second_upload, capsys):
    e1_before = world.store.list_keys(MANIFESTS.format(ee="01"))
    e1_crops = world.store.list_keys("artifacts/crops/hamilton/s01/e01/")
    e2_keys = [k for p in world.store.episode_prefixes(EP2) for k in world.store.list_keys(p)]
    assert e2_keys
    cache2 = world.store.cache_dirs(EP2)[0]
    assert cache2.is_dir()
    capsys.readouterr()
    assert cli_main(["delete", EP2, "--include-s3"]) == 0
    out = capsys.readouterr().out
    assert f"removed 1 local folders, {len(e2_keys)} S3 objects" in out
    assert not cache2.exists()
    assert not [k for p in world.store.episode_prefixes(EP2) for k in world.store.list_keys(p)]
    assert not world.instance.has_dynamic_partition(EPISODES_PARTITION, EP2)
    # the other episode, the uploads and the season roll-up stay
    assert world.store.list_keys(MANIFESTS.format(ee="01")) == e1_before
    assert world.store.list_keys("artifacts/crops/hamilton/s01/e01/") == e1_crops
    assert world.instance.has_dynamic_partition(EPISODES_PARTITION, EP1)
    assert world.store.exists(f"videos/{EP2}/episode.mp4")
    assert world.store.exists(f"videos/{EP1}/episode.mp4")
    assert world.store.cache_dirs(EP1)[0].is_dir()
    # deleting again finds nothing
    assert cli_main(["delete", EP2, "--include-s3"]) == 0
    assert "removed 0 local folders, 0 S3 objects" in capsys.readouterr().out
