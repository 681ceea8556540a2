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
    DagsterRunStatus,
    DataProvenance,
    Definitions,
    RepositoryDefinition,
    RunsFilter,
)

from resources.storage import ArtifactStore

EPISODE_VIDEO = AssetKey("episode_video")
SCREENTIME = AssetKey("screentime")
SEASON_SCREENTIME = AssetKey("season_screentime")
#: Metadata entry of a ``season_screentime`` materialization: the storage id of the newest
#: ``screentime`` materialization among the season's episodes when the roll-up read them. A
#: newer one means the season table is behind (``sensors.season_rollup``). Dagster's own
#: provenance cannot say it: the roll-up reads every episode partition (``AllPartitionMapping``),
#: so its input version covers every show's episodes, not the season's.
SCREENTIME_READ = "screentime_storage_id"

#: The tag holding an event's data version (Dagster's documented ``dagster/data_version``).
DATA_VERSION_TAG = "dagster/data_version"
#: What the functions below read the asset graph from: the code location's ``Definitions``, or
#: the ``RepositoryDefinition`` a sensor's context holds (``context.repository_def``).
DefsLike = Definitions | RepositoryDefinition
#: The run tag naming a run's partition.
PARTITION_TAG = "dagster/partition"
#: Run statuses of a run that is queued or not finished yet.
RUN_IN_PROGRESS = frozenset({
    DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING})


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


def stale_or_missing(defs: DefsLike, instance: DagsterInstance, ep_id: str,
                     keys: list[AssetKey]) -> list[AssetKey]:
    """The assets among ``keys`` that are stale or missing for partition ``ep_id``.

    Missing: never materialized for ``ep_id``. Stale: materialized with another code version, or
    a parent (in the partition the asset read) has a newer event whose data version differs
    from the one recorded when the asset ran. Only what changed is flagged; callers add what is
    downstream (:func:`downstream_closure`).
    """
    graph = asset_graph(defs)
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


def asset_graph(defs: DefsLike):
    """The asset graph of a ``Definitions`` (``resolve_asset_graph()``) or of the
    ``RepositoryDefinition`` that Dagster hands a sensor (``context.repository_def``): the same
    graph, reached from either."""
    resolve = getattr(defs, "resolve_asset_graph", None)
    return resolve() if resolve is not None else defs.asset_graph


def stale_selection(defs: DefsLike, instance: DagsterInstance, ep_id: str) -> list[AssetKey]:
    """The episode assets to materialize to bring partition ``ep_id`` up to date: those stale or
    missing (:func:`stale_or_missing`) and every episode asset downstream of them, in dependency
    order; empty when the episode is up to date."""
    keys = episode_asset_keys(defs)
    closure = downstream_closure(defs, stale_or_missing(defs, instance, ep_id, keys))
    return [k for k in keys if k in closure]


def consumed_video_versions(defs: DefsLike, instance: DagsterInstance,
                            ep_id: str) -> set[str | None]:
    """The ``episode_video`` data versions that the newest materializations of the assets reading
    the video (its children in the graph: ``detections``) in partition ``ep_id`` were computed
    from, by Dagster's provenance; None stands for an asset never materialized there (or one
    whose provenance does not name the video)."""
    graph = asset_graph(defs)
    out: set[str | None] = set()
    for child in graph.get(EPISODE_VIDEO).child_keys:
        record = _latest(instance, child, ep_id, source=False)
        provenance = None if record is None else DataProvenance.from_tags(
            record.asset_materialization.tags or {})
        out.add(None if provenance is None
                else _consumed_version(instance, EPISODE_VIDEO, provenance, source=True))
    return out


def newest_materialization(instance: DagsterInstance, key: AssetKey, partitions: list[str]):
    """The newest materialization record (``EventLogRecord``: ``storage_id``, ``timestamp``) of
    asset ``key`` among ``partitions``, or None (also for no partitions)."""
    if not partitions:
        return None
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=list(partitions)), limit=1).records
    return records[0] if records else None


def season_read_up_to(record) -> int:
    """The newest ``screentime`` storage id a ``season_screentime`` materialization record had
    read (:data:`SCREENTIME_READ`); for a roll-up that did not record it, its own storage id
    (everything materialized before it)."""
    entry = (record.asset_materialization.metadata or {}).get(SCREENTIME_READ)
    return int(entry.value) if entry is not None else record.storage_id


def partitions_in_progress(instance: DagsterInstance) -> set[str]:
    """Partition keys (``dagster/partition`` run tag) of every run queued or in progress."""
    runs = instance.get_runs(filters=RunsFilter(statuses=list(RUN_IN_PROGRESS)))
    return {r.tags[PARTITION_TAG] for r in runs if PARTITION_TAG in r.tags}


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
    recorded = _consumed_version(instance, parent, provenance, source)
    return recorded is None or _data_version(latest, source) != recorded


def _consumed_version(instance: DagsterInstance, parent: AssetKey, provenance: DataProvenance,
                      source: bool) -> str | None:
    """The data version of ``parent`` that an asset's materialization (its ``provenance``) read:
    that of the event it points at (``input_storage_ids``), else the one recorded beside it.
    The pointer wins: for a partitioned observable source (``episode_video``) Dagster records
    as input data version a hash over the partitions' versions it found, not the observed
    version, while the pointer names the observation itself."""
    recorded = provenance.input_data_versions.get(parent)
    consumed = provenance.input_storage_ids.get(parent)
    if consumed is not None:
        used = _by_storage_id(instance, parent, consumed, source)
        if used is not None:
            return _data_version(used, source)
    return getattr(recorded, "value", recorded)


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


def episode_asset_keys(defs: DefsLike) -> list[AssetKey]:
    """Materializable assets partitioned by episode, in dependency order."""
    from .partitions import episode_partitions

    graph = asset_graph(defs)
    return [k for k in graph.toposorted_asset_keys
            if graph.get(k).is_materializable and graph.get(k).partitions_def == episode_partitions]


def downstream_closure(defs: DefsLike, keys: list[AssetKey]) -> set[AssetKey]:
    """``keys`` and every asset downstream of them (``AssetSelection.downstream``)."""
    if not keys:
        return set()
    return set(AssetSelection.assets(*keys).downstream().resolve(asset_graph(defs)))
