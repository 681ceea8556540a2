"""Dagster staleness for one episode partition, and the video's data version.

An asset is stale when its code version (revision + hash of the settings it reads) or the data
version of an upstream asset changed since it was materialized. The video is the observable
source asset ``episode_video``; recording an observation with the video's content hash after an
upload makes every asset of the episode stale when, and only when, the content changed.
"""

from __future__ import annotations

from dagster import AssetKey, AssetObservation, DagsterInstance, Definitions

from resources.storage import ArtifactStore

EPISODE_VIDEO = AssetKey("episode_video")


def observe_video(instance: DagsterInstance, store: ArtifactStore, ep_id: str) -> str | None:
    """Record the uploaded video's content version as an observation of ``episode_video``.

    Returns the version (sha256 locally, ETag on S3), or None when there is no video.
    """
    from dagster._core.definitions.data_version import DATA_VERSION_TAG

    version = store.video_version(ep_id)
    if version is not None:
        instance.report_runless_asset_event(AssetObservation(
            EPISODE_VIDEO, partition=ep_id, tags={DATA_VERSION_TAG: version},
            metadata={"key": store.video_key(ep_id)}))
    return version


def stale_or_missing(defs: Definitions, instance: DagsterInstance, ep_id: str,
                     keys: list[AssetKey]) -> list[AssetKey]:
    """The assets among ``keys`` that are stale or missing for partition ``ep_id``.

    Uses the resolver behind Dagster's own "Materialize stale and missing" and
    ``RunRequest(stale_assets_only=True)``.
    """
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._time import get_current_datetime

    graph = defs.resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance, asset_graph=graph)
    resolver = CachingStaleStatusResolver(instance, graph, view)
    wanted = (StaleStatus.STALE, StaleStatus.MISSING)
    return [k for k in keys if resolver.get_status(k, ep_id) in wanted]


def episode_asset_keys(defs: Definitions) -> list[AssetKey]:
    """Materializable assets partitioned by episode, in dependency order."""
    from .partitions import episode_partitions

    graph = defs.resolve_asset_graph()
    return [k for k in graph.toposorted_asset_keys
            if graph.get(k).is_materializable and graph.get(k).partitions_def == episode_partitions]


def downstream_closure(defs: Definitions, keys: list[AssetKey]) -> set[AssetKey]:
    """``keys`` and every asset downstream of them."""
    graph = defs.resolve_asset_graph()
    out: set[AssetKey] = set()
    todo = list(keys)
    while todo:
        key = todo.pop()
        if key in out:
            continue
        out.add(key)
        todo.extend(graph.get(key).child_keys)
    return out
