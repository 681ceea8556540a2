"""The Dagster code location: assets, resources, sensors and jobs.

Configuration comes from the environment (see the README): ``SCREENALYTICS_DATA_ROOT``,
``SCREENALYTICS_PROFILE``, ``SCREENALYTICS_SETTINGS``, ``SCREENALYTICS_MODEL_ROOT``,
``SCREENALYTICS_MODEL_PACK``, ``SCREENALYTICS_DEVICE``, and the storage backend:
``STORAGE_BACKEND=local|s3`` with ``SCREENALYTICS_S3_BUCKET``, ``SCREENALYTICS_S3_PREFIX``,
``AWS_ENDPOINT_URL`` / ``SCREENALYTICS_S3_ENDPOINT_URL`` and ``AWS_REGION`` (see
``resources.backend``). Sensors: ``SCREENALYTICS_SENSORS=on`` starts the upload sensor and
``SCREENALYTICS_AUTOMATION=on`` the automation sensor by default (``screenalytics serve`` sets
both); ``season_rollup_sensor`` (a season's roll-up after its season backfill) always runs.
``SCREENALYTICS_SENSOR_INTERVAL_S`` is the least time between two evaluations of each sensor
(seconds, default 30).
"""

from __future__ import annotations

import os

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
    define_asset_job,
    in_process_executor,
)

from resources.backend import storage_from_env
from resources.dagster_storage import LocalStorageResource, StorageResource
from resources.io_managers import ArtifactIOManager
from resources.models import FaceModelsResource
from sensors.season_rollup import build_season_rollup_sensor
from sensors.upload import upload_sensor_for

from .assets.cast import build_cast_assets, identity_edits, show_facebank
from .assets.episode import build_episode_assets, episode_video
from .assets.presentation import with_catalog_attributes
from .assets.season import build_season_assets
from .checks import ASSET_CHECKS
from .cluster.config import celery_executor_from_env
from .settings import Settings, SettingsError, load_settings

EPISODE_JOB = "episode_job"
SEASON_JOB = "season_job"
FACEBANK_JOB = "facebank_job"
AUTOMATION_SENSOR = "screenalytics_automation"
SENSORS_ENV = "SCREENALYTICS_SENSORS"
AUTOMATION_ENV = "SCREENALYTICS_AUTOMATION"
SENSOR_INTERVAL_ENV = "SCREENALYTICS_SENSOR_INTERVAL_S"
DEFAULT_SENSOR_INTERVAL_S = 30
#: The sensor daemon looks at its sensors every 5 s (Dagster's sensor loop), so a shorter
#: interval would not make them run more often.
MIN_SENSOR_INTERVAL_S = 5


def env_switch(name: str) -> bool:
    """True when the environment variable ``name`` is ``on``, ``1``, ``true`` or ``yes``."""
    return os.environ.get(name, "off").strip().lower() in ("1", "on", "true", "yes")


def sensor_interval_s(raw: str | None = None) -> int:
    """The least time between two evaluations of each sensor (seconds, default 30, at least 5):
    ``raw``, else ``SCREENALYTICS_SENSOR_INTERVAL_S``.

    Raises:
        SettingsError: not a whole number of seconds, or under 5.
    """
    raw = (os.environ.get(SENSOR_INTERVAL_ENV, "") if raw is None else raw).strip()
    if not raw:
        return DEFAULT_SENSOR_INTERVAL_S
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < MIN_SENSOR_INTERVAL_S:
        raise SettingsError(
            f"{SENSOR_INTERVAL_ENV}={raw!r} is not a whole number of seconds >= "
            f"{MIN_SENSOR_INTERVAL_S}; set it to e.g. 30 or unset it")
    return value


def automation_sensor(asset_keys, minimum_interval_seconds: int = DEFAULT_SENSOR_INTERVAL_S
                      ) -> AutomationConditionSensorDefinition:
    """Evaluates the assets' automation conditions on a running daemon. Stopped unless
    ``SCREENALYTICS_AUTOMATION=on``; start or stop it in the UI (Automation) or with
    ``dagster sensor start|stop screenalytics_automation``."""
    return AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR, target=AssetSelection.assets(*asset_keys),
        default_status=DefaultSensorStatus.RUNNING if env_switch(AUTOMATION_ENV)
        else DefaultSensorStatus.STOPPED,
        minimum_interval_seconds=minimum_interval_seconds,
        description="Keeps episode partitions fresh: new uploads and settings edits.")


def build_definitions(settings: Settings | None = None, data_root: str | None = None,
                      models: FaceModelsResource | None = None,
                      storage: StorageResource | None = None) -> Definitions:
    """Definitions for the given settings and storage (defaults: from the environment).

    The executor is the embedded default unless ``SCREENALYTICS_EXECUTOR=celery`` selects the
    cluster's Celery executor (``cluster.config``, docs/deploy.md).

    ``storage`` wins over ``data_root``; without either the backend comes from
    ``STORAGE_BACKEND`` (local data root by default). The upload sensor registered is the one
    matching the backend. The models resource uses the settings' model pack, so the code
    versions (which hash the pack name) and the models that run always agree.

    Raises:
        StorageConfigError: the storage settings in the environment are incomplete.
        SettingsError: a bad settings file or ``SCREENALYTICS_SENSOR_INTERVAL_S``.
        ClusterConfigError: the executor settings in the environment are unknown or incomplete.
    """
    settings = settings or load_settings()
    interval = sensor_interval_s()
    if storage is None:
        storage = storage_from_env(data_root)
    if models is None:
        env = FaceModelsResource.from_env()
        models = FaceModelsResource(model_root=env.model_root, model_pack=settings.model_pack,
                                    device=env.device, intra_op_threads=env.intra_op_threads)
    backend = "local" if isinstance(storage, LocalStorageResource) else "s3"
    facebank, cast_links = build_cast_assets(settings)
    episode_assets = [*build_episode_assets(settings), cast_links]
    season_assets = build_season_assets(episode_assets)
    episode_job = define_asset_job(
        EPISODE_JOB, selection=AssetSelection.assets(*episode_assets),
        description="Every asset of one episode partition.")
    season_job = define_asset_job(
        SEASON_JOB, selection=AssetSelection.assets(*season_assets),
        description="The season roll-up of one season partition ({show}-s{NN}).")
    facebank_job = define_asset_job(
        FACEBANK_JOB, selection=AssetSelection.assets(facebank),
        description="The facebank (cast reference embeddings) of one show partition.")
    return Definitions(
        assets=with_catalog_attributes(
            [episode_video, identity_edits, show_facebank, facebank, *episode_assets,
             *season_assets], backend),
        asset_checks=ASSET_CHECKS,
        jobs=[episode_job, season_job, facebank_job],
        sensors=[upload_sensor_for(backend, EPISODE_JOB, interval, env_switch(SENSORS_ENV)),
                 automation_sensor(episode_assets, interval),
                 build_season_rollup_sensor(SEASON_JOB, interval)],
        # Runs launched by the daemon (sensors, automation, backfills) execute every step in
        # the run's process, as the CLI does: one episode's steps form a chain anyway, and the
        # models load once per run instead of once per step subprocess. The cluster
        # (SCREENALYTICS_EXECUTOR=celery) sends each step to a Celery worker instead.
        executor=celery_executor_from_env() or in_process_executor,
        resources={
            "storage": storage,
            "models": models,
            "artifact_io_manager": ArtifactIOManager(storage=storage),
        },
    )


defs = build_definitions()
