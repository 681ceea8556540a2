"""Run the real pipeline in tests: a temp data root, a real on-disk DagsterInstance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dagster import AssetKey, DagsterInstance

from resources.facebank import add_folder, add_photos
from resources.storage import LocalStore
from screenalytics_assets.assets.cast import ensure_edits_observed
from screenalytics_assets.core.artifacts import CODECS
from screenalytics_assets.core.ep_id import parse_ep_id
from screenalytics_assets.definitions import EPISODE_JOB, FACEBANK_JOB, build_definitions
from screenalytics_assets.partitions import register_episode, register_show
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

    def materialize(self, *assets: str):
        """Run only these assets of the episode job for this partition (in-process)."""
        defs = build_definitions(self.settings, data_root=str(self.store.root))
        return defs.resolve_job_def(EPISODE_JOB).execute_in_process(
            instance=self.instance, partition_key=self.ep_id,
            asset_selection=[AssetKey(a) for a in assets])


def build_facebank(store: LocalStore, instance: DagsterInstance, settings: Settings, show: str,
                   facebank: Path | dict[str, list[Path]], raise_on_error: bool = True):
    """Copy cast photos into the show's facebank (a folder of cast folders, or cast id -> photos)
    and materialize the facebank asset for the show."""
    if isinstance(facebank, dict):
        for cast_id, photos in facebank.items():
            add_photos(store, show, cast_id, photos)
    else:
        add_folder(store, show, facebank)
    register_show(instance, show)
    defs = build_definitions(settings, data_root=str(store.root))
    return defs.resolve_job_def(FACEBANK_JOB).execute_in_process(
        instance=instance, partition_key=show, raise_on_error=raise_on_error)


def run_episode(root: Path, video: Path, ep_id: str, settings: Settings | None = None,
                instance: DagsterInstance | None = None, raise_on_error: bool = True,
                facebank: Path | dict[str, list[Path]] | None = None) -> EpisodeRun:
    """Copy ``video`` into a data root under ``root`` and run the episode job for ``ep_id``;
    with ``facebank``, first build the show's facebank from it (see :func:`build_facebank`)."""
    settings = settings or load_settings()
    data_root = root / "data"
    store = LocalStore(data_root)
    store.put_video(ep_id, video)
    if instance is None:
        (root / "dagster_home").mkdir(parents=True, exist_ok=True)
        instance = DagsterInstance.local_temp(str(root / "dagster_home"),
                                              overrides={"telemetry": {"enabled": False}})
    register_episode(instance, ep_id)
    ensure_edits_observed(instance, store, ep_id)
    if facebank is not None:
        build_facebank(store, instance, settings, parse_ep_id(ep_id).show, facebank)
    defs = build_definitions(settings, data_root=str(data_root))
    result = defs.resolve_job_def(EPISODE_JOB).execute_in_process(
        instance=instance, partition_key=ep_id, raise_on_error=raise_on_error)
    return EpisodeRun(root, instance, store, ep_id, settings, result)
