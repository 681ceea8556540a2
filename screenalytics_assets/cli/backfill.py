"""``screenalytics backfill --show SHOW --season N``: one Dagster backfill over a season."""

from __future__ import annotations

from ..backfill import submit_season_backfill
from ..definitions import build_definitions
from .common import add_common_args, data_root, instance_for


def register(sub) -> None:
    p = sub.add_parser(
        "backfill", help="reprocess every registered episode of a season",
        description="Submit one Dagster backfill over the season's registered episode "
                    "partitions ({show}-s{NN}eNN), one run per episode, then the season "
                    "roll-up. The dagster-daemon launches the runs; follow them in the UI "
                    "under Overview > Backfills.")
    p.add_argument("--show", required=True, help="show slug, e.g. rhobh")
    p.add_argument("--season", required=True, type=int, help="season number, e.g. 5")
    p.add_argument("--no-rollup", action="store_true",
                   help="do not include the season_screentime roll-up")
    add_common_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    root = data_root(args)
    instance = instance_for(root)
    defs = build_definitions(data_root=str(root))
    bf = submit_season_backfill(instance, defs, args.show, args.season,
                                include_rollup=not args.no_rollup)
    print(f"backfill {bf.backfill_id}: {bf.season}, {len(bf.episodes)} episodes "
          f"({', '.join(bf.episodes)}), {len(bf.assets)} assets")
    print("the dagster-daemon launches one run per episode; follow it in the UI under "
          "Overview > Backfills")
    return 0
