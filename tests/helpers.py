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


#: Dagster's stale status of assets per partition, as the UI shows it (public GraphQL schema)
STALE_STATUS_QUERY = """
query StaleStatus($keys: [AssetKeyInput!], $partitions: [String!]!) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    staleStatusByPartition(partitions: $partitions)
  }
}
"""


def dagster_stale_status(instance: DagsterInstance, settings: Settings, data_root: Path,
                         assets: list[str], partitions: list[str]) -> dict[tuple[str, str], str]:
    """(asset name, partition) -> Dagster's own stale status (``FRESH``, ``STALE``,
    ``MISSING``), asked of Dagster's GraphQL API through ``dagster-graphql`` on the instance's
    folder: an oracle independent of ``staleness.py``, as the UI shows it. The code location is
    built from the same settings and data root (through the environment, as the daemon does).
    Takes seconds (it loads the code location in a process of its own)."""
    from screenalytics_assets.dagster_cli import graphql

    env = {"SCREENALYTICS_PROFILE": settings.profile, "SCREENALYTICS_MODEL_PACK":
           settings.model_pack, "SCREENALYTICS_SETTINGS": settings.path,
           "SCREENALYTICS_DATA_ROOT": str(data_root), "STORAGE_BACKEND": "local"}
    answer = graphql(STALE_STATUS_QUERY, {"keys": [{"path": [a]} for a in assets],
                                          "partitions": partitions},
                     instance_dir=instance.root_directory, env=env)
    assert not answer.get("errors"), answer["errors"]
    return {(node["assetKey"]["path"][-1], partition): status
            for node in answer["data"]["assetNodes"]
            for partition, status in zip(partitions, node["staleStatusByPartition"])}


def stale_assets(run: EpisodeRun) -> set[str]:
    """What ``screenalytics run --stale-only`` would re-run for the run's episode: the stale or
    missing episode assets (``staleness.stale_or_missing``) and the episode assets downstream."""
    from screenalytics_assets.staleness import (
        downstream_closure,
        episode_asset_keys,
        stale_or_missing,
    )

    defs = build_definitions(run.settings, data_root=str(run.store.root))
    keys = episode_asset_keys(defs)
    changed = stale_or_missing(defs, run.instance, run.ep_id, keys)
    return {key.path[-1] for key in downstream_closure(defs, changed) & set(keys)}


def named_recall(cast_seconds: dict[str, float], truth: dict[str, float]) -> float:
    """Named seconds / true seconds over the people of a known answer (a cast member's named
    seconds count up to their true seconds)."""
    return sum(min(cast_seconds.get(p, 0.0), s) for p, s in truth.items()) / sum(truth.values())
