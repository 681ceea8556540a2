"""The Dagster code location: assets, resources, sensors and jobs.

Configuration comes from the environment (see the README): ``SCREENALYTICS_DATA_ROOT``,
``SCREENALYTICS_PROFILE``, ``SCREENALYTICS_SETTINGS``, ``SCREENALYTICS_MODEL_ROOT``,
``SCREENALYTICS_MODEL_PACK``, ``SCREENALYTICS_DEVICE``.
"""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job

from resources.dagster_storage import LocalStorageResource, data_root_from_env
from resources.io_managers import ArtifactIOManager
from resources.models import FaceModelsResource

from .assets.cast import build_cast_assets, identity_edits
from .assets.episode import build_episode_assets, episode_video
from .partitions import episode_partitions, show_partitions
from .settings import Settings, load_settings

EPISODE_JOB = "episode_job"
FACEBANK_JOB = "facebank_job"


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
    facebank, cast_links = build_cast_assets(settings)
    episode_assets = [*build_episode_assets(settings), cast_links]
    episode_job = define_asset_job(
        EPISODE_JOB, selection=AssetSelection.assets(*episode_assets),
        partitions_def=episode_partitions,
        description="Every asset of one episode partition.")
    facebank_job = define_asset_job(
        FACEBANK_JOB, selection=AssetSelection.assets(facebank), partitions_def=show_partitions,
        description="The facebank (cast reference embeddings) of one show partition.")
    return Definitions(
        assets=[episode_video, identity_edits, facebank, *episode_assets],
        jobs=[episode_job, facebank_job],
        resources={
            "storage": storage,
            "models": models,
            "artifact_io_manager": ArtifactIOManager(storage=storage),
        },
    )


defs = build_definitions()
