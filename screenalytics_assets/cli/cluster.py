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
    up.add_argument("--vhost", default=None,
                    help="the cluster's own RabbitMQ vhost, created if missing (with "
                         "rabbitmqctl) and deleted by `down` (default: the broker URL's vhost "
                         "when it names one, else screenalytics-<hash of the data root>)")
    up.add_argument("--bind", default="127.0.0.1", metavar="HOST",
                    help="address the code server and the webserver listen on (default "
                         "127.0.0.1; 0.0.0.0 for a daemon or webserver on another host)")
    up.add_argument("--advertise-host", default=None, metavar="HOST",
                    help="address other hosts reach the code server at, written in "
                         "workspace.yaml (default: --bind, or this host's name with 0.0.0.0)")
    up.add_argument("--code-server-port", type=int, default=None,
                    help="the code server's port (default: a free one)")
    join = csub.add_parser(
        "join", help="on another host: start supervised workers of the cluster whose "
                     "`cluster env` is in the environment",
        description="Start K supervised Celery workers on this host for an existing cluster: "
                    "load the first host's `screenalytics cluster env` output first (with the "
                    "services' addresses as this host reaches them). Writes this host's copy of "
                    "the instance and Celery files under <data root>/cluster/; creates nothing.")
    join.add_argument("--workers", type=int, default=1, help="Celery workers (default 1)")
    join.add_argument("--worker-name", default="worker",
                      help="Celery name stem: {name}{i}@{hostname} (default worker)")
    down = csub.add_parser("down", help="stop every process of the cluster and delete the "
                                        "vhost that `up` created")
    down.add_argument("--purge", action="store_true",
                      help="also drop the Postgres database and the S3 bucket (every object "
                           "in it) that `up` created, and remove <data root>/cluster/")
    csub.add_parser("status", help="which processes run")
    env = csub.add_parser("env", help="print the cluster's environment as shell exports (with "
                                      "the S3 credentials)")
    env.add_argument("--no-export", action="store_true",
                     help="KEY='VALUE' lines without `export`, for systemd's EnvironmentFile "
                          "(deploy/screenalytics-worker.service)")
    for q in csub.choices.values():
        add_common_args(q)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..cluster.config import redact
    from ..cluster.local import LocalCluster

    cluster = LocalCluster(data_root(args))
    if args.cluster_command == "up":
        st = cluster.up(workers=args.workers, max_runs=args.max_runs,
                        webserver_port=args.webserver_port, key_prefix=args.key_prefix,
                        vhost=args.vhost, bind_host=args.bind,
                        advertise_host=args.advertise_host,
                        code_server_port=args.code_server_port)
        env = cluster.environment()
        print(f"cluster up under {cluster.dir}: code server on {st.bind_host}:"
              f"{st.code_server_port} (advertised as {st.advertise_host}), daemon, "
              f"{len(st.workers)} supervised workers ({', '.join(st.workers)})"
              + (f", webserver on http://{st.advertise_host}:{st.webserver_port}"
                 if st.webserver_port else ""))
        print(f"broker {redact(env['SCREENALYTICS_CELERY_BROKER'])}, model root "
              f"{env['SCREENALYTICS_MODEL_ROOT']}"
              + (f", S3 bucket {env['SCREENALYTICS_S3_BUCKET']}"
                 if env.get("STORAGE_BACKEND") == "s3" else ""))
        if st.created:
            print("created: " + ", ".join(f"{k} {redact(v)}" for k, v in st.created.items()))
        print(f"logs in {cluster.log_dir}; for the CLI on this cluster: "
              f"eval \"$(screenalytics cluster env --data-root {cluster.root})\"")
    elif args.cluster_command == "join":
        st = cluster.up(workers=args.workers, join=True, worker_name=args.worker_name)
        env = cluster.environment()
        print(f"joined the cluster of {redact(env['SCREENALYTICS_PG_URL'])} with "
              f"{len(st.workers)} supervised workers ({', '.join(st.workers)}); logs in "
              f"{cluster.log_dir}; stop them with `screenalytics cluster down --data-root "
              f"{cluster.root}`")
    elif args.cluster_command == "down":
        created = (cluster.state().created if cluster.state() else {})
        stopped = cluster.down(purge=args.purge)
        if not stopped:
            print(f"no cluster runs under {cluster.dir}")
            return 0
        removed = [f"{k} {redact(v)}" for k, v in created.items() if args.purge or k == "vhost"]
        print(f"stopped {', '.join(stopped)}"
              + (f"; removed {', '.join(removed)}" if removed else ""))
    elif args.cluster_command == "status":
        running = cluster.running()
        if not running:
            print(f"no cluster under {cluster.dir}")
            return 1
        restarts = cluster.restarts()
        for name, ok in running.items():
            again = restarts.get(name)
            print(f"{name:12s} {'running' if ok else 'stopped'}"
                  + (f" (started again {again} times)" if again else ""))
        return 0 if all(running.values()) else 1
    else:
        env_file = cluster.dir / "cluster.env"
        if not env_file.exists():
            print(f"no cluster under {cluster.dir}; start one with `screenalytics cluster up`")
            return 1
        text = env_file.read_text()
        if args.no_export:
            text = "".join(line.removeprefix("export ") + "\n" for line in text.splitlines())
        print(text, end="")
    return 0
