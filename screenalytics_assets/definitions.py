"""The Dagster code location: assets, resources, sensors and jobs.

Configuration comes from the environment (see the README): ``SCREENALYTICS_DATA_ROOT``,
``SCREENALYTICS_PROFILE``, ``SCREENALYTICS_SETTINGS``, ``SCREENALYTICS_MODEL_ROOT``,
``SCREENALYTICS_MODEL_PACK``, ``SCREENALYTICS_DEVICE``.
"""

from __future__ import annotations

import os

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
    define_asset_job,
)

from resources.dagster_storage import LocalStorageResource, data_root_from_env
from resources.io_managers import ArtifactIOManager
from resources.models import FaceModelsResource

from .assets.episode import build_episode_assets, episode_video
from .checks import EPISODE_CHECKS
from .partitions import episode_partitions
from .settings import Settings, load_settings

EPISODE_JOB = "episode_job"
AUTOMATION_SENSOR = "screenalytics_automation"


def automation_sensor(asset_keys) -> AutomationConditionSensorDefinition:
    """Evaluates the assets' automation conditions on a running daemon. Stopped unless
    ``SCREENALYTICS_AUTOMATION=on``; start or stop it in the UI (Automation) or with
    ``dagster sensor start|stop screenalytics_automation``."""
    on = os.environ.get("SCREENALYTICS_AUTOMATION", "off").lower() in ("1", "on", "true", "yes")
    return AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR, target=AssetSelection.assets(*asset_keys),
        default_status=DefaultSensorStatus.RUNNING if on else DefaultSensorStatus.STOPPED,
        description="Keeps episode partitions fresh: new uploads and settings edits.")


def build_definitions(settings: Settings | None = None, data_root: str | None = None,
                      models: FaceModelsResource | None = None) -> Definitions:
    """Definitions for the given settings and storage (defaults: from the environment).

    The models resource uses the settings' model pack, so the code versions (which hash the
    pack name) and the models that run always agree.
    """
    settings = settings or load_settings()
    storage = LocalStorageResource(data_root=data_root or data_root_from_env())
    if models is None:
        env = FaceModelsResource.from_env()
        models = FaceModelsResource(model_root=env.model_root, model_pack=settings.model_pack,
                                    device=env.device)
    episode_assets = build_episode_assets(settings)
    episode_job = define_asset_job(
        EPISODE_JOB, selection=AssetSelection.assets(*episode_assets),
        partitions_def=episode_partitions,
        description="Every asset of one episode partition.")
    return Definitions(
        assets=[episode_video, *episode_assets],
        asset_checks=EPISODE_CHECKS,
        jobs=[episode_job],
        sensors=[automation_sensor(episode_assets)],
        resources={
            "storage": storage,
            "models": models,
            "artifact_io_manager": ArtifactIOManager(storage=storage),
        },
    )


defs = build_definitions()
