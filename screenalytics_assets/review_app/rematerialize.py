"""``python -m screenalytics_assets.review_app.rematerialize EP_ID REQUEST_ID``: bring an
episode's screen time up to date with its review edits, as Dagster runs on the instance.

Started by the review app after an edit, in its own process, so the app never computes an asset
itself. It launches two runs on the instance at ``$DAGSTER_HOME`` (both visible in the Dagster
UI, tagged ``screenalytics/review_request=REQUEST_ID``):

1. ``episode_job`` for partition EP_ID, assets ``cast_links`` and ``screentime`` (the assets an
   edit makes stale);
2. ``season_job`` for the episode's season partition (the season roll-up).

Where the instance has a run queue that something dequeues (a ``dagster-daemon`` of the
cluster or of ``screenalytics serve``), both go through it instead of running in this process:
one backfill of the two assets for EP_ID on the queue (``backfill.submit_episode``, the route of
``screenalytics run --submit``; through the webserver at ``SCREENALYTICS_WEBSERVER_URL`` when
set), followed by the season roll-up that ``season_rollup_sensor`` launches after it; this
process waits for both.

Runs of one episode are serialized by a lock file, so a later edit's run always reads the later
edits file and finishes last. Exit status: 0 when both runs succeed, 1 otherwise (the error is
printed).
"""

from __future__ import annotations

import fcntl
import os
import sys

REQUEST_TAG = "screenalytics/review_request"
SOURCE_TAG = "screenalytics/source"
STALE_BY_EDITS = ("cast_links", "screentime")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m screenalytics_assets.review_app.rematerialize EP_ID REQUEST_ID",
              file=sys.stderr)
        return 2
    from dagster import AssetKey, DagsterInstance

    from resources.backend import storage_from_env

    from ..core.ep_id import validate_ep_id
    from ..core.errors import ScreenalyticsError
    from ..definitions import EPISODE_JOB, SEASON_JOB, build_definitions
    from ..partitions import season_of
    from ..settings import load_settings

    ep_id, request = validate_ep_id(argv[0]), argv[1]
    try:
        storage = storage_from_env()
        store = storage.store()
        defs = build_definitions(load_settings(), storage=storage)
        instance = DagsterInstance.get()
        tags = {REQUEST_TAG: request, SOURCE_TAG: "review-ui"}
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        lock_dir = store.spool_dir() / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / f"runs-{ep_id}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if has_run_queue(instance):
                return through_queue(instance, defs, ep_id, tags)
            episode = defs.resolve_job_def(EPISODE_JOB).execute_in_process(
                instance=instance, partition_key=ep_id, tags=tags, run_config=quiet,
                asset_selection=[AssetKey(a) for a in STALE_BY_EDITS], raise_on_error=False)
            if not episode.success:
                print(f"run {episode.run_id} for {ep_id} failed; see it in the Dagster UI",
                      file=sys.stderr)
                return 1
            season = defs.resolve_job_def(SEASON_JOB).execute_in_process(
                instance=instance, partition_key=season_of(ep_id), tags=tags, run_config=quiet,
                raise_on_error=False)
            if not season.success:
                print(f"season run {season.run_id} for {season_of(ep_id)} failed; see it in "
                      "the Dagster UI", file=sys.stderr)
                return 1
    except ScreenalyticsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def has_run_queue(instance) -> bool:
    """Whether runs submitted to ``instance`` are queued and a live ``dagster-daemon`` launches
    them (its queued-run and backfill daemons post heartbeats)."""
    from dagster import QueuedRunCoordinator

    from ..daemon import daemon_alive

    return (isinstance(instance.run_coordinator, QueuedRunCoordinator)
            and daemon_alive(instance, "QUEUED_RUN_COORDINATOR") and daemon_alive(instance))


def through_queue(instance, defs, ep_id: str, tags: dict[str, str]) -> int:
    """Submit the edit's assets of ``ep_id`` to the run queue with the season roll-up after
    them, and wait for both; 0 when both succeeded."""
    from dagster import AssetKey

    from sensors.season_rollup import ROLLUP_TAG

    from ..backfill import submit_episode
    from ..daemon import wait_for_backfill
    from ..partitions import season_of

    season = season_of(ep_id)
    backfill_id = submit_episode(instance, defs, ep_id, [AssetKey(a) for a in STALE_BY_EDITS],
                                 {**tags, ROLLUP_TAG: season},
                                 os.environ.get("SCREENALYTICS_WEBSERVER_URL") or None)
    result = wait_for_backfill(instance, backfill_id, [ep_id, season], rollup=season)
    for key in result.failed:
        print(f"{key} failed: {result.errors.get(key, '')}; see it in the Dagster UI",
              file=sys.stderr)
    return 0 if result.succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
