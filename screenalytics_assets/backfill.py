"""Season backfills: one Dagster asset backfill over a season's registered episode partitions.

The backfill targets every episode asset for each episode (the backfill daemon launches one run
per episode partition) and the season's ``season_screentime`` partition, which runs after its
episodes' ``screentime``.
"""

from __future__ import annotations

from dataclasses import dataclass

import time

from dagster import AssetKey, DagsterInstance, Definitions

# Dagster 1.13 has no public API that creates an asset backfill from Python (the UI and GraphQL
# do it; a public ``DagsterInstance.launch_backfill`` was proposed in dagster-io/dagster#26731 and
# closed unmerged), so this module alone uses the three internal names it takes; every other
# module uses public APIs only (tests/test_api.py checks it).
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.utils import make_new_backfill_id

from .core.errors import ScreenalyticsError
from .partitions import episode_partitions, season_episodes, season_key, season_partitions
from .staleness import episode_asset_keys

SEASON_ASSET = AssetKey("season_screentime")


class NoEpisodesError(ScreenalyticsError):
    """A season has no registered episode partitions to backfill."""


@dataclass(frozen=True)
class SeasonBackfill:
    """A submitted backfill: its id, the season key, its episodes and targeted asset keys."""

    backfill_id: str
    season: str
    episodes: list[str]
    assets: list[AssetKey]


def submit_season_backfill(instance: DagsterInstance, defs: Definitions, show: str, season: int,
                           include_rollup: bool = True, only: list[str] | None = None
                           ) -> SeasonBackfill:
    """Add a backfill of every registered episode of ``show`` season ``season`` to ``instance``.

    The ``dagster-daemon`` (backfill daemon) launches its runs: one per episode, then the season
    roll-up. ``only``: back-fill just these registered episodes of the season (an empty list with
    ``include_rollup``: the roll-up alone).

    Raises:
        InvalidEpIdError: bad show slug or season number.
        NoEpisodesError: the season has no registered episodes, or ``only`` names an episode that
            is not one of them.
    """
    key = season_key(show, season)
    episodes = season_episodes(instance, key)
    if not episodes:
        raise NoEpisodesError(
            f"season {key} has no registered episodes; register them first by uploading "
            f"videos/{key}eNN/episode.mp4 (sensor) or `screenalytics run VIDEO --ep-id {key}e01`")
    if only is not None:
        unknown = sorted(set(only) - set(episodes))
        if unknown:
            raise NoEpisodesError(f"{', '.join(unknown)} not registered episodes of {key} "
                                  f"(registered: {', '.join(episodes)})")
        episodes = sorted(only)
        if not episodes and not include_rollup:
            raise NoEpisodesError(f"nothing to back-fill for {key}")
    subsets = {k: episode_partitions.subset_with_partition_keys(episodes)
               for k in episode_asset_keys(defs)} if episodes else {}
    if include_rollup:
        if not instance.has_dynamic_partition(season_partitions.name, key):
            instance.add_dynamic_partitions(season_partitions.name, [key])
        subsets[SEASON_ASSET] = season_partitions.subset_with_partition_keys([key])
    backfill = PartitionBackfill.from_asset_graph_subset(
        backfill_id=make_new_backfill_id(),
        backfill_timestamp=time.time(),
        tags={"screenalytics/season": key},
        dynamic_partitions_store=instance,
        asset_graph_subset=AssetGraphSubset(partitions_subsets_by_asset_key=subsets),
        title=f"Season {key}",
        description=f"Every asset of {len(episodes)} episodes of {key}"
                    + (" and the season roll-up" if include_rollup else ""),
        run_config=None,
    )
    instance.add_backfill(backfill)
    return SeasonBackfill(backfill.backfill_id, key, episodes, sorted(subsets))
