"""Every CLI command on the configured storage: with ``STORAGE_BACKEND=s3`` (a moto server over
HTTP), run, facebank, review, crops, backfill and delete read and write the bucket, and nothing
lands in the local data root's artifact folders (only the Dagster home and caches)."""

from __future__ import annotations

import json
import urllib.request

import pytest
from dagster import DagsterInstance

from resources.backend import storage_from_env
from screenalytics_assets.cli import main
from screenalytics_assets.core.artifacts import CODECS
from tests.conftest import FACEBANK
from tests.s3_server import FAKE_AWS_ENV, moto_server, new_bucket
from tests.test_smoke import tiny_clip

pytestmark = pytest.mark.slow  # runs the pipeline on a 1.5 s clip

EP, SHOW = "clis3-s01e01", "clis3"
LIN = FACEBANK / "lin-manuel-miranda" / "01.png"


@pytest.fixture(scope="module")
def s3_cli(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-s3")
    (root / "home").mkdir()
    (root / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in FAKE_AWS_ENV.items():
            mp.setenv(k, v)
        with moto_server() as url:
            mp.setenv("STORAGE_BACKEND", "s3")
            mp.setenv("SCREENALYTICS_S3_BUCKET", new_bucket(url))
            mp.setenv("SCREENALYTICS_S3_ENDPOINT_URL", url)
            mp.setenv("SCREENALYTICS_DATA_ROOT", str(root / "data"))
            mp.setenv("SCREENALYTICS_PROFILE", "fast")
            mp.setenv("DAGSTER_HOME", str(root / "home"))
            yield root, storage_from_env().store(), tiny_clip(root / "tiny.mp4")


def _no_local_artifacts(root) -> None:
    for sub in ("videos", "manifests", "frames", "facebank"):
        assert not (root / "data" / sub).exists(), f"{sub}/ written to the local data root"


def test_every_command_uses_the_bucket(s3_cli, capsys):
    root, store, clip = s3_cli
    # facebank add + build: the photo goes to the bucket, and the build reads it from there
    assert main(["facebank", "add", SHOW, "lin-manuel-miranda", str(LIN)]) == 0
    assert [k for k in store.list_keys(store.facebank_prefix(SHOW)) if k.endswith(".png")]
    assert "lin-manuel-miranda (1 ref)" in capsys.readouterr().out
    # run (crops saved, for the crops command)
    assert main(["run", str(clip), "--ep-id", EP, "--set", "save_crops=true"]) == 0
    assert store.exists(store.video_key(EP))
    report = CODECS["screentime"].load(lambda f: store.read_file(EP, f))
    assert report.people
    # review: the edit is stored in the bucket and --run reads it back
    who = report.people[0].identity_id
    assert main(["review", EP, "--run", "rename", str(who), "Lin"]) == 0
    assert json.loads(store.read_file(EP, "identity_edits.json"))["edits"][0]["name"] == "Lin"
    renamed = CODECS["screentime"].load(lambda f: store.read_file(EP, f))
    assert {p.name for p in renamed.people if p.identity_id == who} == {"Lin"}
    # crops: presigned URLs of the bucket's objects
    capsys.readouterr()
    track = CODECS["tracks"].load(lambda f: store.read_file(EP, f)).tracks[0].track_id
    assert main(["crops", EP, str(track)]) == 0
    urls = capsys.readouterr().out.split()
    assert urls and all(u.startswith("http") for u in urls)
    with urllib.request.urlopen(urls[0]) as resp:
        assert resp.read(2) == b"\xff\xd8"
    # backfill of the season, over the bucket's episode
    assert main(["backfill", "--show", SHOW, "--season", "1"]) == 0
    with DagsterInstance.from_config(str(root / "home")) as inst:
        assert len(inst.get_backfills()) == 1
    _no_local_artifacts(root)
    # delete: the episode's artifacts leave the bucket
    assert main(["delete", EP, "--include-s3"]) == 0
    assert not [k for p in store.episode_prefixes(EP) for k in store.list_keys(p)]
    assert store.exists(store.video_key(EP))  # the upload stays
    _no_local_artifacts(root)
