"""One settings schema (type and range of every setting) behind the settings file, ``--set`` and
the launchpad's typed run config; every bad value is refused before anything runs."""

from __future__ import annotations

import pytest
import yaml
from dagster import DagsterInstance, DagsterInvalidConfigError, validate_run_config
from pydantic import ValidationError

from screenalytics_assets.assets.common import stage_config
from screenalytics_assets.cli import main
from screenalytics_assets.definitions import EPISODE_JOB, build_definitions
from screenalytics_assets.settings import (
    ASSET_SETTINGS,
    DEFAULT_SETTINGS_PATH,
    SCHEMA,
    SettingsError,
    load_settings,
)
from tests.conftest import HAMILTON


def test_every_setting_an_asset_reads_is_declared():
    read = {k for keys in ASSET_SETTINGS.values() for k in keys}
    assert read <= set(SCHEMA)
    for profile in ("fast", "balanced", "accurate"):
        load_settings(profile=profile)  # every shipped value is in range


@pytest.mark.parametrize("item, key, expect", [
    ("det_size=0", "det_size", "int, 160 to 2048, a multiple of 32"),
    ("fps=-5", "fps", "float, 0 to 240"),
    ("stride=two", "stride", "int, 1 to 300"),
    ("det_thresh=0", "det_thresh", "float, above 0 and at most 1"),
    ("save_crops=maybe", "save_crops", "true or false"),
    ("jpeg_quality=101", "jpeg_quality", "int, 1 to 100"),
])
def test_bad_set_values_are_refused_before_anything_runs(cli_env, capsys, item, key, expect):
    assert main(["run", str(HAMILTON), "--ep-id", "set-s01e01", "--set", item]) == 2
    err = capsys.readouterr().err
    assert f"setting {key}=" in err and expect in err and f"use {key} = " in err
    assert "Traceback" not in err
    assert not (cli_env / "data" / "videos").exists()  # nothing copied, nothing registered
    with DagsterInstance.from_config(str(cli_env / "dagster_home")) as inst:
        assert not inst.get_dynamic_partitions("episodes")


def test_set_converts_to_the_declared_type():
    s = load_settings(profile="fast").with_overrides(
        {"fps": "29.97", "save_crops": "yes", "track_buffer": "45"})
    assert (s["fps"], s["save_crops"], s["track_buffer"]) == (29.97, True, 45)
    with pytest.raises(SettingsError, match="model_pack"):
        s.with_overrides({"model_pack": "buffalo_l"})


def test_settings_file_is_checked_against_the_schema(tmp_path):
    doc = yaml.safe_load(DEFAULT_SETTINGS_PATH.read_text())
    doc["profiles"]["fast"]["det_size"] = 0
    bad = tmp_path / "settings.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(SettingsError, match=r"profile 'fast'.*det_size=0 is out of range"):
        load_settings(profile="fast", path=bad)
    doc["profiles"]["fast"]["det_size"] = 480
    doc["profiles"]["fast"]["det_szie"] = 480
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(SettingsError, match="'det_szie'.*not a known setting"):
        load_settings(profile="fast", path=bad)


def test_launchpad_config_is_typed_with_profile_defaults_and_rejects_typos(tmp_path):
    settings = load_settings(profile="fast")
    defs = build_definitions(settings, data_root=str(tmp_path))
    fields = defs.resolve_assets_def("detections").op.config_schema.as_field().config_type.fields
    assert set(fields) == set(ASSET_SETTINGS["detections"]) - {"model_pack"}
    assert fields["det_size"].default_value == settings["det_size"] == 480
    assert "multiple of 32" in fields["det_size"].description
    job = defs.resolve_job_def(EPISODE_JOB)
    assert validate_run_config(job, {"ops": {"identities": {"config": {"cluster_thresh": 0.7}}}})
    with pytest.raises(DagsterInvalidConfigError, match="cluster_treshold"):
        validate_run_config(job, {"ops": {"identities": {"config": {"cluster_treshold": 0.7}}}})
    with pytest.raises(DagsterInvalidConfigError, match="stride"):
        validate_run_config(job, {"ops": {"detections": {"config": {"stride": "two"}}}})
    # a value of the right type but out of range is refused by the same schema as --set
    with pytest.raises(ValidationError, match=r"det_size=0 is out of range.*multiple of 32"):
        stage_config(settings, "detections")(det_size=0)
    assert stage_config(settings, "detections")(det_size=320).det_size == 320
