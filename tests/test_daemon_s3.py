"""The S3 upload sensor with a real daemon: ``screenalytics serve`` with ``STORAGE_BACKEND=s3``
against a moto S3 server on loopback (tests/s3_server.py). Uploads go straight to the bucket with
boto3, as an uploader would; the daemon's sensor launches the runs.
"""

from __future__ import annotations

import pytest

from tests.clips import cut_clip
from tests.s3_server import FAKE_AWS_ENV, moto_server, new_bucket, s3_client
from tests.served import (
    kill_tree,
    materialization_count,
    runs_in_progress,
    runs_of,
    sensor_ticks,
    start_serve,
    stop_serve,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.daemon]

EP = "show-s02e01"
KEY = f"videos/{EP}/episode.mp4"
SENSOR = "s3_upload_sensor"
RUN_TIMEOUT_S = 420
MANIFESTS = "artifacts/manifests/show/s02/e01/"
SEASON = "show-s02"
SEASON_TABLE = "artifacts/manifests/show/s02/season_screentime.json"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        for k, v in FAKE_AWS_ENV.items():
            mp.setenv(k, v)
        with moto_server() as endpoint:
            bucket = new_bucket(endpoint)
            tmp = tmp_path_factory.mktemp("serve-s3")
            # someone switched the upload sensor off in the UI earlier: serve switches it back on
            served = start_serve(tmp, {
                **FAKE_AWS_ENV, "STORAGE_BACKEND": "s3", "SCREENALYTICS_S3_BUCKET": bucket,
                "SCREENALYTICS_S3_ENDPOINT_URL": endpoint}, stopped_by_hand=(SENSOR,))
            try:
                yield served, s3_client(endpoint), bucket
            finally:
                if served.proc.poll() is None:
                    kill_tree(served.proc)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return cut_clip(d / "a.mp4", start=82), cut_clip(d / "b.mp4", start=120)


def finished_runs(served):
    return [r for r in runs_of(served.instance, EP) if r.is_finished]


def test_serve_watches_the_bucket(s3):
    served, _, bucket = s3
    assert f"watching:   s3://{bucket}/videos/{{ep_id}}/episode.mp4 ({SENSOR}, running" \
        in served.output()
    assert f"{SENSOR} was stopped by hand; starting it" in served.output()
    states = {s.name: s.status.value for s in served.instance.all_instigator_state()}
    assert states[SENSOR] == "RUNNING"


def test_an_upload_starts_one_run_and_its_artifacts_land_in_the_bucket(s3, clips):
    served, client, bucket = s3
    client.upload_file(str(clips[0]), bucket, KEY)
    etag = client.head_object(Bucket=bucket, Key=KEY)["ETag"].strip('"')
    (run,) = wait_for(lambda: finished_runs(served), RUN_TIMEOUT_S, f"the run of {EP}", served)
    assert run.is_success, served.output()[-3000:]
    assert run.tags["dagster/sensor_name"] == SENSOR
    assert run.tags["dagster/run_key"] == f"{KEY}@{etag}"
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket,
                                                     Prefix=MANIFESTS)["Contents"]}
    for name in ("detections.jsonl", "tracks.jsonl", "faces_embeddings.npy", "identities.json",
                 "cast_links.json", "screentime.json", "screentime.csv"):
        assert MANIFESTS + name in keys, name
    assert materialization_count(served.instance, "screentime", EP) == 1
    # the season roll-up follows by itself, into the bucket
    wait_for(lambda: materialization_count(served.instance, "season_screentime", SEASON)
             and not runs_in_progress(served.instance), 180, "the season roll-up", served)
    assert SEASON_TABLE in {o["Key"] for o in client.list_objects_v2(
        Bucket=bucket, Prefix="artifacts/manifests/show/s02/")["Contents"]}


def test_the_same_object_again_starts_no_run(s3, clips):
    served, client, bucket = s3
    client.upload_file(str(clips[0]), bucket, KEY)  # same bytes: same ETag, new LastModified
    n = len(sensor_ticks(served.instance, SENSOR))
    wait_for(lambda: len(sensor_ticks(served.instance, SENSOR)) >= n + 3, 120,
             "three more sensor ticks", served)
    assert len(runs_of(served.instance, EP)) == 1
    assert not runs_in_progress(served.instance)


def test_new_content_under_the_same_key_starts_a_new_run(s3, clips):
    served, client, bucket = s3
    client.upload_file(str(clips[1]), bucket, KEY)
    etag = client.head_object(Bucket=bucket, Key=KEY)["ETag"].strip('"')
    runs = wait_for(lambda: len(finished_runs(served)) == 2 and finished_runs(served),
                    RUN_TIMEOUT_S, "a second run", served)
    newest = runs[0]
    assert newest.is_success, served.output()[-3000:]
    assert newest.tags["dagster/run_key"] == f"{KEY}@{etag}"
    assert materialization_count(served.instance, "screentime", EP) == 2


def test_ctrl_c_stops_every_process(s3):
    served, _, _ = s3
    rc, alive = stop_serve(served)
    assert rc == 0 and alive == []
