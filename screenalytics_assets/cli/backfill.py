"""``screenalytics backfill --show SHOW --season N [--wait] [--failed-only]``: one Dagster backfill
over a season, optionally followed to the end."""

from __future__ import annotations

import sys
import time

from .common import add_common_args, instance_for, storage_for


def register(sub) -> None:
    p = sub.add_parser(
        "backfill", help="reprocess every registered episode of a season",
        description="Submit one Dagster backfill over the season's registered episode "
                    "partitions ({show}-s{NN}eNN), one run per episode, then the season "
                    "roll-up. A running dagster-daemon (`screenalytics serve`) launches the "
                    "runs; follow them with --wait or in the UI under Overview > Backfills.")
    p.add_argument("--show", required=True, help="show slug, e.g. rhobh")
    p.add_argument("--season", required=True, type=int, help="season number, e.g. 5")
    p.add_argument("--no-rollup", action="store_true",
                   help="do not include the season_screentime roll-up")
    p.add_argument("--wait", action="store_true",
                   help="follow the backfill to the end (episodes done / total, failures); "
                        "exit 1 naming the failed partitions if any failed")
    p.add_argument("--failed-only", action="store_true",
                   help="submit only the partitions whose last run failed (and the roll-up "
                        "when any episode is re-run)")
    p.add_argument("--webserver", metavar="URL",
                   help="submit through this running Dagster webserver (e.g. the cluster's "
                        "http://host:3000); default: straight to the instance")
    add_common_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..backfill import submit_season_backfill
    from ..cluster.config import check_postgres, executor_from_env
    from ..daemon import daemon_alive, failed_partitions, no_daemon_message
    from ..definitions import build_definitions
    from ..partitions import season_episodes, season_key

    key = season_key(args.show, args.season)  # validates before the instance is touched
    root, storage = storage_for(args)
    if executor_from_env() == "celery":
        # the cluster's instance is on Postgres: a clear error rather than a driver traceback
        check_postgres()
    instance = instance_for(root)
    defs = build_definitions(storage=storage)
    rollup = not args.no_rollup
    only = None
    if args.failed_only:
        only = failed_partitions(instance, season_episodes(instance, key))
        rollup_failed = rollup and bool(failed_partitions(instance, [key]))
        rollup = rollup and (bool(only) or rollup_failed)
        if not only and not rollup:
            print(f"{key}: no episode's last run failed; nothing submitted")
            return 0
    count = len(season_episodes(instance, key) if only is None else only)
    via = f"the webserver at {args.webserver}" if args.webserver else \
        "dagster-graphql (it loads the code location first: some seconds)"
    # on stderr: stdout's first line stays "backfill <id>: ..." for scripts
    print(f"{key}: submitting a backfill of {count} episodes"
          + (" and the season roll-up" if rollup else "") + f" through {via}...",
          file=sys.stderr, flush=True)
    bf = submit_season_backfill(instance, defs, args.show, args.season, include_rollup=rollup,
                                only=only, webserver_url=args.webserver)
    what = f"{len(bf.episodes)} episodes ({', '.join(bf.episodes)})" if bf.episodes \
        else "no episodes"
    print(f"backfill {bf.backfill_id}: {bf.season}, {what}"
          + (", then the season roll-up" if rollup else "") + f", {len(bf.assets)} assets")
    alive = daemon_alive(instance)
    if not args.wait:
        if not alive:
            print(f"warning: {no_daemon_message(instance)}", file=sys.stderr)
            return 0
        print("the dagster-daemon launches one run per episode; follow it with --wait or in the "
              "UI under Overview > Backfills")
        return 0
    if not alive:
        print("waiting for a dagster-daemon: none is running for this instance yet; start one "
              "with `screenalytics serve` (Ctrl-C here leaves the backfill queued)",
              file=sys.stderr)
    return follow(instance, bf, rollup)


def follow(instance, bf, rollup: bool) -> int:
    """Print a progress line until the daemon has finished backfill ``bf``; 0 when every
    partition succeeded, 1 otherwise (naming the failed partitions and why)."""
    from ..daemon import wait_for_backfill
    from ..partitions import parse_season_key

    partitions = [*bf.episodes, *([bf.season] if rollup else [])]
    tty = sys.stdout.isatty()
    start = time.monotonic()

    def show(p) -> None:
        eps = set(bf.episodes)
        done = len(eps & set(p.done))
        failed = len(eps & set(p.failed))
        running = len(eps & set(p.running))
        line = f"{bf.season}: {done}/{len(eps)} episodes done, {failed} failed"
        if rollup:
            state = ("done" if bf.season in p.done else "failed" if bf.season in p.failed
                     else "running" if bf.season in p.running else "waiting")
            line += f", roll-up {state}"
        line += f" [{p.status.lower()}]"
        elapsed = int(time.monotonic() - start)
        # the state, then how long and how many runs are going (not part of the state: a
        # terminal line is redrawn at every poll, a log gets a line per change of state)
        line += f" {elapsed // 60}:{elapsed % 60:02d}, {running} running"
        print(f"\r{line:<78}" if tty else line, end="" if tty else "\n", flush=True)

    try:
        result = wait_for_backfill(instance, bf.backfill_id, partitions, show,
                                   rollup=bf.rollup_after, every_poll=tty)
    except KeyboardInterrupt:
        print(f"\nstopped following; backfill {bf.backfill_id} goes on in the daemon")
        return 130
    if tty:
        print()
    if result.succeeded:
        print(f"backfill {bf.backfill_id} completed: {len(result.done)} partitions materialized")
        return 0
    print(f"backfill {bf.backfill_id} ended {result.status}", file=sys.stderr)
    for key in result.failed:
        print(f"  failed: {key}: {result.errors.get(key, '')}", file=sys.stderr)
    left = [k for k in partitions if k not in result.done and k not in result.failed]
    if left:
        print(f"  not run: {', '.join(left)}", file=sys.stderr)
    if result.failed:
        show, season = parse_season_key(bf.season)
        print(f"re-run them with: screenalytics backfill --show {show} --season {season} "
              "--failed-only --wait", file=sys.stderr)
    return 1
