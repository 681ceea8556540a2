"""Season backfills: one Dagster asset backfill over a season's registered episode partitions.

The backfill targets every episode asset for each episode (the backfill daemon launches one run
per episode partition); the season's ``season_screentime`` partition runs after the backfill has
succeeded, launched by ``season_rollup_sensor`` (``sensors/season_rollup.py`` says why it is not
part of the backfill).

Dagster has no public Python API that creates an asset backfill (dagster-io/dagster#26731
proposed ``DagsterInstance.launch_backfill`` and was closed unmerged); its public route is the
GraphQL mutation ``launchPartitionBackfill``, the one the UI's "Materialize selected" dialog
sends. We send it (``dagster_cli.graphql``) either to a running ``dagster-webserver``
(``webserver_url``: the cluster's, or ``screenalytics serve``'s) or through Dagster's
``dagster-graphql`` program, which answers the same schema in a process of its own against the
instance's folder, so no webserver is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster import AssetKey, DagsterInstance, Definitions

from sensors.season_rollup import ROLLUP_TAG

from .core.errors import ScreenalyticsError
from .dagster_cli import GraphQLError, graphql
from .partitions import season_episodes, season_key, season_partitions
from .staleness import SEASON_SCREENTIME as SEASON_ASSET
from .staleness import episode_asset_keys

#: run tag that names the season on every run of a season backfill
SEASON_TAG = "screenalytics/season"
#: seconds ``dagster-graphql`` (which loads the code location) or the webserver gets to answer
GRAPHQL_TIMEOUT_S = 300.0

#: Dagster's GraphQL mutation that creates a backfill (schema type ``LaunchBackfillParams``)
LAUNCH_BACKFILL = """
mutation LaunchSeasonBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}
"""


class NoEpisodesError(ScreenalyticsError):
    """A season has no registered episode partitions to backfill."""


class BackfillSubmitError(ScreenalyticsError):
    """Dagster refused the backfill, or could not be reached to submit it."""


@dataclass(frozen=True)
class SeasonBackfill:
    """A submitted backfill: its id, the season key, its episodes and targeted asset keys.

    ``rollup_after``: the season key when ``season_rollup_sensor`` runs the roll-up after the
    backfill succeeds (a run tagged ``screenalytics/backfill=<backfill_id>``); None when the
    backfill holds the roll-up itself (no episodes) or no roll-up was asked for.
    """

    backfill_id: str
    season: str
    episodes: list[str]
    assets: list[AssetKey]
    rollup_after: str | None = None


def backfill_params(assets: list[AssetKey], partition_keys: list[str], title: str,
                    description: str, tags: dict[str, str]) -> dict:
    """The ``LaunchBackfillParams`` of an asset backfill of ``assets`` over ``partition_keys``.

    The assets at the root of the selection must share one partitions definition; Dagster
    selects their descendants in the selection through the partition mappings.
    """
    return {
        "assetSelection": [{"path": list(key.path)} for key in assets],
        "partitionNames": list(partition_keys),
        "tags": [{"key": k, "value": v} for k, v in tags.items()],
        "title": title,
        "description": description,
    }


def submit_season_backfill(instance: DagsterInstance, defs: Definitions, show: str, season: int,
                           include_rollup: bool = True, only: list[str] | None = None,
                           webserver_url: str | None = None) -> SeasonBackfill:
    """Add a backfill of every registered episode of ``show`` season ``season`` to ``instance``.

    The ``dagster-daemon`` launches its runs: the backfill daemon one per episode, then
    ``season_rollup_sensor`` the season roll-up. ``only``: back-fill just these registered
    episodes of the season (an empty list with ``include_rollup``: the roll-up alone).
    ``webserver_url``: submit through this running ``dagster-webserver`` (it must serve
    ``instance``); without it, through ``dagster-graphql`` on ``instance``'s folder.

    Raises:
        InvalidEpIdError: bad show slug or season number.
        NoEpisodesError: the season has no registered episodes, or ``only`` names an episode that
            is not one of them.
        BackfillSubmitError: Dagster refused the backfill or could not be reached.
    """
    key = season_key(show, season)
    episodes = season_episodes(instance, key)
    if not episodes:
        raise NoEpisodesError(
            f"season {key} has no registered episodes; register them first by uploading "
            f"videos/{key}eNN/episode.mp4 (sensor) or with `screenalytics run VIDEO --ep-id "
            f"{key}e01 --register-only`")
    if only is not None:
        unknown = sorted(set(only) - set(episodes))
        if unknown:
            raise NoEpisodesError(f"{', '.join(unknown)} not registered episodes of {key} "
                                  f"(registered: {', '.join(episodes)})")
        episodes = sorted(only)
        if not episodes and not include_rollup:
            raise NoEpisodesError(f"nothing to back-fill for {key}")
    if include_rollup and not instance.has_dynamic_partition(season_partitions.name, key):
        instance.add_dynamic_partitions(season_partitions.name, [key])
    tags = {SEASON_TAG: key}
    if episodes:
        assets, partition_keys = episode_asset_keys(defs), episodes
        description = f"Every asset of {len(episodes)} episodes of {key}"
        if include_rollup:
            tags[ROLLUP_TAG] = key
            description += ", then the season roll-up (season_rollup_sensor)"
    else:  # the roll-up alone
        assets, partition_keys = [SEASON_ASSET], [key]
        description = f"The season roll-up of {key}"
    params = backfill_params(assets, partition_keys, f"Season {key}", description, tags)
    backfill_id = launch_backfill(instance, params, webserver_url)
    rollup_after = key if episodes and include_rollup else None
    targeted = sorted({*assets, *([SEASON_ASSET] if rollup_after else [])})
    return SeasonBackfill(backfill_id, key, episodes, targeted, rollup_after)


def launch_backfill(instance: DagsterInstance, params: dict,
                    webserver_url: str | None = None) -> str:
    """Send ``launchPartitionBackfill`` with ``params`` (:func:`backfill_params`) to the
    webserver at ``webserver_url``, else through ``dagster-graphql`` on ``instance``'s folder;
    returns the backfill id. The one route from the CLI and the review app to the instance's
    run queue: the backfill daemon turns it into queued runs, within the queue's limits.

    Raises:
        BackfillSubmitError: Dagster refused the backfill or could not be reached.
    """
    try:
        answer = graphql(LAUNCH_BACKFILL, {"backfillParams": params},
                         instance_dir=instance.root_directory, webserver_url=webserver_url,
                         timeout_s=GRAPHQL_TIMEOUT_S)
    except GraphQLError as e:
        hint = (" (or leave --webserver out to submit it straight to the instance)"
                if webserver_url else "")
        raise BackfillSubmitError(f"could not submit the backfill: {e}{hint}") from None
    return _backfill_id(answer)


def submit_episode(instance: DagsterInstance, defs: Definitions, ep_id: str,
                   assets: list[AssetKey] | None = None, tags: dict[str, str] | None = None,
                   webserver_url: str | None = None) -> str:
    """Queue the materialization of ``assets`` (default: every episode asset) of registered
    episode ``ep_id`` on the instance's run queue, as a one-partition backfill (so no code
    location name is needed, and the UI lists it under Overview > Backfills); returns the
    backfill id. A running ``dagster-daemon`` launches its run; on the cluster its steps run
    on the Celery workers.

    Raises:
        NoEpisodesError: ``ep_id`` is not a registered episode partition.
        BackfillSubmitError: Dagster refused the backfill or could not be reached.
    """
    from .partitions import EPISODES_PARTITION

    if not instance.has_dynamic_partition(EPISODES_PARTITION, ep_id):
        raise NoEpisodesError(f"{ep_id} is not a registered episode; register it first with "
                              f"`screenalytics run VIDEO --ep-id {ep_id} --register-only`")
    assets = list(assets or episode_asset_keys(defs))
    names = ", ".join(k.to_user_string() for k in assets)
    params = backfill_params(assets, [ep_id], f"Episode {ep_id}", f"{names} of {ep_id}",
                             dict(tags or {}))
    return launch_backfill(instance, params, webserver_url)


def _backfill_id(answer: dict) -> str:
    """The backfill id from a ``launchPartitionBackfill`` answer; BackfillSubmitError else."""
    if answer.get("errors"):
        raise BackfillSubmitError("Dagster refused the season backfill: "
                                  + "; ".join(e.get("message", str(e)) for e in answer["errors"]))
    result = (answer.get("data") or {}).get("launchPartitionBackfill") or {}
    if result.get("__typename") != "LaunchBackfillSuccess":
        raise BackfillSubmitError(f"Dagster refused the season backfill "
                                  f"({result.get('__typename', 'no answer')}): "
                                  f"{result.get('message', answer)}")
    return result["backfillId"]
