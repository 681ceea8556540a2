"""``screenalytics`` command line. Each subcommand lives in its own module with a ``register``."""

from __future__ import annotations

import argparse
import sys
import traceback

from ..core.errors import ScreenalyticsError
from ..settings import SettingsError
from . import backfill as backfill_cmd
from . import cluster as cluster_cmd
from . import common
from . import crops as crops_cmd
from . import delete as delete_cmd
from . import facebank as facebank_cmd
from . import review as review_cmd
from . import review_ui as review_ui_cmd
from . import run as run_cmd
from . import serve as serve_cmd

#: Modules that add subcommands: each has ``register(subparsers)``.
COMMANDS = [run_cmd, facebank_cmd, review_cmd, review_ui_cmd, backfill_cmd, crops_cmd,
            delete_cmd, serve_cmd, cluster_cmd]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="screenalytics",
        description="Screen time per person in TV episodes, computed by a Dagster asset graph.")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def console_main() -> int:
    """Entry point of the ``screenalytics`` console script (and ``python -m
    screenalytics_assets.cli``): :func:`main` in a process that exits when it returns, which
    lets the command freeze what it loaded (:func:`common.freeze_loaded_objects`)."""
    common.PROCESS_EXITS_AFTER_COMMAND = True
    return main()


def main(argv: list[str] | None = None) -> int:
    """Run one ``screenalytics`` command with ``argv`` (default: the process's arguments);
    returns the exit status."""
    args = build_parser().parse_args(argv)
    common.VERBOSE = bool(getattr(args, "verbose", False))
    try:
        try:
            return int(args.func(args) or 0)
        except OSError as exc:
            # a read-only or full data root / DAGSTER_HOME: one line naming the file and the fix
            clear = common.os_error(exc)
            if clear is None:
                raise
            raise clear from exc
    except (ScreenalyticsError, SettingsError) as exc:
        if common.VERBOSE:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        # the process exits next: its full collections need not scan what it loaded
        common.freeze_loaded_objects()


if __name__ == "__main__":
    sys.exit(main())
