"""Shared fixtures: real inputs from ../shared, real models (ci_pack), real Dagster instances."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

# anyio is a pytest plugin, so pytest rewrites the asserts of each anyio module as it is imported,
# parsing its source (ast.parse), and anyio imports most of its modules on first use. The review
# app's tests serve it from a thread (uvicorn), where the first static file (anyio.open_file) parsed
# a module while another thread parsed one too; CPython 3.11 keeps the AST constructor's recursion
# depth per interpreter, not per thread, and the request failed halfway through its response with
# "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905). Importing them
# all here, in the main thread while the tests are collected, leaves no parsing to a thread.
for _name in dir(anyio):
    getattr(anyio, _name)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SCREENALYTICS_SHARED", REPO.parent / "shared")).resolve()
HAMILTON = SHARED / "media" / "short_hamilton_clip.mp4"
FACES = SHARED / "faces"
FACEBANK = SHARED / "media" / "facebank"
HAMILTON_EP = "hamilton-s01e01"

# Facts about the Hamilton clip, read off its frames (275 frames at 29.97 fps): four shots, cut at
# frames 20, 82 and 211 — performer and pianist on stage (0-19), the audience with the performer's
# profile close-up (20-81), the performer alone, frontal (82-210), the audience with the President
# (211-274). Every shot has faces.
HAMILTON_CUTS = [20, 82, 211]
HAMILTON_FRONTAL_SHOT = 2


@pytest.fixture(scope="session", autouse=True)
def ci_models_env():
    """Every test uses the real small ci_pack models from ../shared (read-only)."""
    if not (SHARED / "models" / "ci_pack").is_dir():
        pytest.exit(f"shared test data not found at {SHARED}; set SCREENALYTICS_SHARED", 2)
    old = {k: os.environ.get(k) for k in ("SCREENALYTICS_MODEL_ROOT", "SCREENALYTICS_MODEL_PACK",
                                          "SCREENALYTICS_DEVICE")}
    os.environ.update(SCREENALYTICS_MODEL_ROOT=str(SHARED), SCREENALYTICS_MODEL_PACK="ci_pack",
                      SCREENALYTICS_DEVICE="cpu")
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def hamilton_run(tmp_path_factory):
    """The Hamilton clip materialized once through the episode job on a temp instance, with the
    show's facebank built from shared/media/facebank first. Tests that record review edits use
    the ``review`` fixture (tests/test_cast.py), which puts it back as it was."""
    from tests.helpers import run_episode

    return run_episode(tmp_path_factory.mktemp("hamilton"), HAMILTON, HAMILTON_EP,
                       facebank=FACEBANK)


@pytest.fixture(scope="session")
def synthetic_episode(tmp_path_factory):
    from tests.synthetic import build_episode

    return build_episode(FACES, tmp_path_factory.mktemp("synthetic") / "episode.mp4")


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory, synthetic_episode):
    """The synthetic episode, with a facebank of each person's ref_01 photo (the episode is cut
    from their other photos; p30 is in the facebank but never on screen)."""
    from tests.helpers import run_episode
    from tests.synthetic import facebank_photos

    return run_episode(tmp_path_factory.mktemp("synth-run"), synthetic_episode.path,
                       "synth-s01e01", facebank=facebank_photos(FACES))


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    """A temp data root and Dagster home for CLI calls made in-process (``main([...])``)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("SCREENALYTICS_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return tmp_path


@pytest.fixture
def artifacts_dir():
    """A folder kept after the test (screenshots etc.): ``test-artifacts/`` in the repo."""
    path = REPO / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


#: Fixtures that run the pipeline on a full clip: a test using one belongs to the slow tier even
#: when its mark was forgotten (``-m "not slow"`` is the fast tier: see the README).
SLOW_FIXTURES = {"hamilton_run", "synthetic_run", "review", "episode", "first_upload",
                 "second_upload", "reference"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) and \
                not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
