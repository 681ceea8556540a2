"""The season roll-up asset: one partition per ``{show}-s{NN}``, over its episodes' screentime."""

# No ``from __future__ import annotations``: Dagster reads the resource parameter annotations.

from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from resources.dagster_storage import StorageResource
from resources.integrity import load_artifact

from ..core.errors import ArtifactError, ArtifactIntegrityError
from ..core.season import TOTAL, season_files, season_table
from ..partitions import parse_season_key, season_episodes, season_partitions
from ..staleness import SCREENTIME, SCREENTIME_READ, newest_materialization
from .presentation import season_metadata


def build_season_assets(episode_assets: list[AssetsDefinition]) -> list[AssetsDefinition]:
    """``season_screentime``, depending on the ``screentime`` asset among ``episode_assets``."""
    screentime = next(a for a in episode_assets if a.key.path[-1] == "screentime")

    @asset(
        name="season_screentime",
        partitions_def=season_partitions,
        group_name="season",
        code_version="1",
        # every episode partition may feed a season: the asset picks its season's episodes
        deps=[AssetDep(screentime, partition_mapping=AllPartitionMapping())],
        description="Seconds on screen per person per episode of a season "
                    "(season_screentime.csv/.json and a chart), from each registered episode's "
                    "screentime.json.",
    )
    def season_screentime(context: AssetExecutionContext,
                          storage: StorageResource) -> MaterializeResult:
        key = context.partition_key
        show, season = parse_season_key(key)
        store = storage.store()
        episodes = season_episodes(context.instance, key)
        # before the files are read: a screentime materialized after this is newer than the
        # table, and the roll-up sensor brings the season up to date again
        newest = newest_materialization(context.instance, SCREENTIME, episodes)
        reports, missing, damaged = {}, [], []
        for ep in episodes:
            try:
                reports[ep] = load_artifact(store, ep, "screentime")
            except ArtifactIntegrityError as exc:
                damaged.append(str(exc))  # a damaged file must not drop out silently
            except ArtifactError:
                missing.append(ep)
        if damaged:
            raise ArtifactIntegrityError(f"season {key}: " + " | ".join(damaged))
        if not reports:
            raise ArtifactError(
                f"season {key}: none of its registered episodes ({', '.join(episodes) or 'none'})"
                " has a screentime.json; materialize the episodes first (e.g. `screenalytics "
                f"backfill --show {show} --season {season}`)")
        if missing:
            context.log.warning(f"season {key}: no screentime yet for {', '.join(missing)}")
        table = season_table(reports)
        files = season_files(key, table)
        # the table files last: a reader that finds the CSV finds the chart too
        for name in sorted(files, key=lambda n: not n.endswith(".png")):
            store.put(store.season_key(show, season, name), files[name])
        return MaterializeResult(metadata={
            "episodes": MetadataValue.json(sorted(reports)),
            "missing_episodes": MetadataValue.json(missing),
            "people": len(table),
            SCREENTIME_READ: newest.storage_id if newest is not None else 0,
            "total_seconds": round(float(table[TOTAL].sum()), 3),
            "table": MetadataValue.md(table.reset_index().to_markdown(index=False,
                                                                      floatfmt=".2f")),
            "path": MetadataValue.path(
                store.uri(store.season_key(show, season, "season_screentime.csv"))),
            "chart": MetadataValue.path(
                store.uri(store.season_key(show, season, "season_screentime.png"))),
            **season_metadata(table, files["season_screentime.png"]),
        })

    return [season_screentime]
