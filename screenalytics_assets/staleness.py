"""Dagster staleness for one episode partition, and the video's data version, on public Dagster
APIs only (``DagsterInstance`` record queries, ``DataProvenance``, ``AssetSelection`` and the
``Definitions``' asset graph).

An asset is stale when its code version (revision + hash of the settings it reads) changed since
it was materialized, or when a parent it read has a newer event with another data version than
the one it read (Dagster's provenance: every materialization records, per parent, the data
version and the event it consumed). The video is the observable source asset ``episode_video``;
recording an observation with the video's content version after an upload makes every asset of
the episode stale when, and only when, the content changed.
"""

from __future__ import annotations

from dagster import (
    AssetKey,
    AssetObservation,
    AssetRecordsFilter,
    AssetSelection,
    DagsterInstance,
    DataProvenance,
    Definitions,
)

from resources.storage import ArtifactStore

EPISODE_VIDEO = AssetKey("episode_video")

#: The tag holding an event's data version (Dagster's documented ``dagster/data_version``).
DATA_VERSION_TAG = "dagster/data_version"


def observe_video(instance: DagsterInstance, store: ArtifactStore, ep_id: str) -> str | None:
    """Record the uploaded video's content version as an observation of ``episode_video``.

    Returns the version (sha256 locally, ETag on S3), or None when there is no video.
    """
    version = store.video_version(ep_id)
    if version is not None:
        instance.report_runless_asset_event(AssetObservation(
            EPISODE_VIDEO, partition=ep_id, tags={DATA_VERSION_TAG: version},
            metadata={"key": store.video_key(ep_id)}))
    return version


def stale_or_missing(defs: Definitions, instance: DagsterInstance, ep_id: str,
                     keys: list[AssetKey]) -> list[AssetKey]:
    """The assets among ``keys`` that are stale or missing for partition ``ep_id``.

    Missing: never materialized for ``ep_id``. Stale: materialized with another code version, or
    a parent (in the partition the asset read) has a newer event whose data version differs
    from the one recorded when the asset ran. Only what changed is flagged; callers add what is
    downstream (:func:`downstream_closure`).
    """
    graph = defs.resolve_asset_graph()
    out = []
    for key in keys:
        record = _latest(instance, key, ep_id, source=False)
        if record is None:
            out.append(key)
            continue
        tags = record.asset_materialization.tags or {}
        provenance = DataProvenance.from_tags(tags)
        node = graph.get(key)
        if provenance is None or provenance.code_version != node.code_version:
            out.append(key)
            continue
        if any(_parent_changed(instance, graph, parent, ep_id, provenance)
               for parent in provenance.input_data_versions):
            out.append(key)
    return out


def _parent_changed(instance: DagsterInstance, graph, parent: AssetKey, ep_id: str,
                    provenance: DataProvenance) -> bool:
    """Whether ``parent``'s latest event (in the partition ``ep_id`` reads) has another data
    version than the event the asset consumed."""
    if not graph.has(parent):
        return False
    node = graph.get(parent)
    source = not node.is_materializable
    partition = _parent_partition(node, ep_id)
    latest = _latest(instance, parent, partition, source)
    if latest is None:
        return False
    consumed = provenance.input_storage_ids.get(parent)
    if consumed is not None and latest.storage_id == consumed:
        return False
    recorded = provenance.input_data_versions.get(parent)
    if consumed is not None:
        used = _by_storage_id(instance, parent, consumed, source)
        if used is not None:
            recorded = _data_version(used, source)
    return recorded is None or _data_version(latest, source) != getattr(recorded, "value",
                                                                         recorded)


def _parent_partition(node, ep_id: str) -> str | None:
    """The partition of a parent that the episode ``ep_id`` reads: its own for an episode
    asset, the episode's show for a show-partitioned one (the facebank)."""
    from .core.ep_id import parse_ep_id
    from .partitions import SHOWS_PARTITION

    pdef = node.partitions_def
    if pdef is None:
        return None
    if getattr(pdef, "name", None) == SHOWS_PARTITION:
        return parse_ep_id(ep_id).show
    return ep_id


def _latest(instance: DagsterInstance, key: AssetKey, partition: str | None, source: bool):
    fetch = instance.fetch_observations if source else instance.fetch_materializations
    records = fetch(AssetRecordsFilter(asset_key=key, asset_partitions=[partition]
                                       if partition is not None else None), limit=1).records
    return records[0] if records else None


def _by_storage_id(instance: DagsterInstance, key: AssetKey, storage_id: int, source: bool):
    fetch = instance.fetch_observations if source else instance.fetch_materializations
    records = fetch(AssetRecordsFilter(asset_key=key, storage_ids=[storage_id]), limit=1).records
    return records[0] if records else None


def _data_version(record, source: bool) -> str | None:
    event = record.asset_observation if source else record.asset_materialization
    return (event.tags or {}).get(DATA_VERSION_TAG)


def episode_asset_keys(defs: Definitions) -> list[AssetKey]:
    """Materializable assets partitioned by episode, in dependency order."""
    from .partitions import episode_partitions

    graph = defs.resolve_asset_graph()
    return [k for k in graph.toposorted_asset_keys
            if graph.get(k).is_materializable and graph.get(k).partitions_def == episode_partitions]


def downstream_closure(defs: Definitions, keys: list[AssetKey]) -> set[AssetKey]:
    """``keys`` and every asset downstream of them (``AssetSelection.downstream``)."""
    if not keys:
        return set()
    return set(AssetSelection.assets(*keys).downstream().resolve(defs.resolve_asset_graph()))
