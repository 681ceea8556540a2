"""Run the real pipeline in tests: a temp data root, a real on-disk DagsterInstance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterInstance

from resources.storage import LocalStore
from screenalytics_assets.core.artifacts import CODECS
from screenalytics_assets.definitions import EPISODE_JOB, build_definitions
from screenalytics_assets.partitions import register_episode
from screenalytics_assets.settings import Settings, load_settings


@dataclass
class EpisodeRun:
    root: Path
    instance: DagsterInstance
    store: LocalStore
    ep_id: str
    settings: Settings
    result: object

    def load(self, asset: str):
        """Load an asset's value back from its files, as a downstream asset would."""
        return CODECS[asset].load(lambda f: self.store.read_file(self.ep_id, f))


def run_episode(root: Path, video: Path, ep_id: str, settings: Settings | None = None,
                instance: DagsterInstance | None = None, raise_on_error: bool = True) -> EpisodeRun:
    """Copy ``video`` into a data root under ``root`` and run the episode job for ``ep_id``."""
    settings = settings or load_settings()
    data_root = root / "data"
    store = LocalStore(data_root)
    store.put_video(ep_id, video)
    if instance is None:
        (root / "dagster_home").mkdir(parents=True, exist_ok=True)
        instance = DagsterInstance.local_temp(str(root / "dagster_home"),
                                              overrides={"telemetry": {"enabled": False}})
    register_episode(instance, ep_id)
    defs = build_definitions(settings, data_root=str(data_root))
    result = defs.resolve_job_def(EPISODE_JOB).execute_in_process(
        instance=instance, partition_key=ep_id, raise_on_error=raise_on_error)
    return EpisodeRun(root, instance, store, ep_id, settings, result)
