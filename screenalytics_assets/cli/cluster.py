"""``screenalytics cluster up|down|status|env``: a local cluster of K Celery workers on the
services of docs/deploy.md (Postgres, RabbitMQ, Redis), pids and logs under the data root."""

from __future__ import annotations

from .common import add_common_args, data_root


def register(sub) -> None:
    p = sub.add_parser(
        "cluster", help="start or stop a local cluster (Postgres + Celery workers)",
        description="Start or stop the cluster deployment on this machine: a gRPC code server, "
                    "the Dagster daemon, optionally the webserver, and K Celery workers, with "
                    "pids and logs under <data root>/cluster/. The services come from "
                    "SCREENALYTICS_PG_URL, SCREENALYTICS_CELERY_BROKER and "
                    "SCREENALYTICS_CELERY_BACKEND (see docs/deploy.md).")
    csub = p.add_subparsers(dest="cluster_command", required=True)
    up = csub.add_parser("up", help="check the services and start the processes")
    up.add_argument("--workers", type=int, default=3, help="Celery workers (default 3)")
    up.add_argument("--max-runs", type=int, default=None,
                    help="runs in progress at once (default: the number of workers)")
    up.add_argument("--webserver-port", type=int, default=None,
                    help="also start the Dagster webserver on this port")
    up.add_argument("--key-prefix", default=None,
                    help="prefix of this cluster's result keys in Redis")
    for name, help_ in (("down", "stop every process of the cluster"),
                        ("status", "which processes run"),
                        ("env", "print the cluster's environment as shell exports")):
        csub.add_parser(name, help=help_)
    for q in csub.choices.values():
        add_common_args(q)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..cluster.local import LocalCluster

    cluster = LocalCluster(data_root(args))
    if args.cluster_command == "up":
        st = cluster.up(workers=args.workers, max_runs=args.max_runs,
                        webserver_port=args.webserver_port, key_prefix=args.key_prefix)
        print(f"cluster up under {cluster.dir}: code server on 127.0.0.1:{st.code_server_port}, "
              f"daemon, {len(st.workers)} workers ({', '.join(st.workers)})"
              + (f", webserver on http://127.0.0.1:{st.webserver_port}"
                 if st.webserver_port else ""))
        print(f"logs in {cluster.log_dir}; for the CLI on this cluster: "
              f"eval \"$(screenalytics cluster env --data-root {cluster.root})\"")
    elif args.cluster_command == "down":
        stopped = cluster.down()
        print(f"stopped {', '.join(stopped)}" if stopped else f"no cluster runs under {cluster.dir}")
    elif args.cluster_command == "status":
        running = cluster.running()
        if not running:
            print(f"no cluster under {cluster.dir}")
            return 1
        for name, ok in running.items():
            print(f"{name:12s} {'running' if ok else 'stopped'}")
        return 0 if all(running.values()) else 1
    else:
        env_file = cluster.dir / "cluster.env"
        if not env_file.exists():
            print(f"no cluster under {cluster.dir}; start one with `screenalytics cluster up`")
            return 1
        print(env_file.read_text(), end="")
    return 0
