"""``screenalytics review-ui [--host H] [--port P]``: the review web app."""

from __future__ import annotations

from .common import add_common_args


def register(sub) -> None:
    p = sub.add_parser(
        "review-ui", help="open the review web app: identities as faces, edits, screen time",
        description="Serve the review app on http://HOST:PORT over the configured storage "
                    "(local data root or S3) and the local Dagster instance. Edits are the ones "
                    "`screenalytics review` makes; after each, cast_links, screentime and the "
                    "season roll-up are re-materialized as Dagster runs.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1); any other needs a token in "
                        "$SCREENALYTICS_REVIEW_TOKEN or $SCREENALYTICS_REVIEW_TOKEN_FILE "
                        "(docs/security.md)")
    p.add_argument("--port", type=int, default=8502, help="port (default 8502; 0 picks a free one)")
    add_common_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..review_app import serve  # imported here: `screenalytics --help` stays fast
    from ..review_app.access import check_bind, credential_from_env

    from .common import check_port, data_root

    token = credential_from_env()
    check_bind(args.host, token)  # before anything is printed or started
    check_port(args.host, args.port)
    root = data_root(args)
    login = "log in with the token" if token else "no login: loopback only"
    print(f"review app on http://{args.host}:{args.port} ({login}; data root {root}); Ctrl-C "
          "stops it", flush=True)
    serve(args.host, args.port, str(root))
    return 0
