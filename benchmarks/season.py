"""Benchmark: a season of long known-answer episodes, end to end, as a user runs it.

    python benchmarks/season.py                                   # 4 x 20 minutes through serve
    python benchmarks/season.py --episodes 2 --minutes 2 --out season.json  # a quick one
    python benchmarks/season.py --cluster [--workers 3] [--no-serve]   # also / only the cluster

Builds ``--episodes`` long known-answer episodes of ``--minutes`` each (tests/long_episode.py, seed
= episode number, one show and one cast facebank) and processes the season

* through ``screenalytics serve`` (a real webserver and ``dagster-daemon`` on a fresh local data
  root, sensors running every 5 s): the cast photos are added and the facebank built (``facebank
  build``), then the videos are copied into ``videos/{ep_id}/episode.mp4`` one after another, and
  nothing else is done until the season roll-up (``season_screentime`` partition ``{show}-s01``)
  holds every episode;
* with ``--cluster``, on the local cluster (benchmarks/cluster_bench.py ``local_cluster``:
  Postgres, RabbitMQ, Redis, a moto S3 bucket, ``--workers`` Celery workers) with its daemon's S3
  upload sensor on: the same facebank, the videos uploaded to the bucket one after another, until
  the same season table.

For each path it prints (and writes with ``--out`` as JSON): the wall time from the first upload
to the season table and episodes per hour; per stage the runtime and the peak RSS its process
reported (``peak_rss_mb`` in the stage's materialization metadata: ``ru_maxrss`` at the end of
the stage; the steps of one run share a process under ``serve``, so a stage's figure is the peak
of the run up to it); the peak RSS of the whole process tree (serve: webserver, daemon, code
servers, run workers; cluster: each worker); the bytes of every file under each episode's
manifests; Dagster event-log rows (``all_logs`` of every run, by kind of run and event type, and
the asset observations); how often each episode's ``detections`` was materialized (1 = nothing
computed twice); and per person and episode the error of ``screentime.json`` and of the season
table against ``truth.json`` (cast members absent from an episode must get 0 s).

Every process it starts is stopped by pid / process group, also on Ctrl-C, SIGTERM, a failed run
or a timeout (``--timeout``); its temporary folder is removed unless ``--keep``. Needs
../shared (faces, models); ``--cluster`` also the local Postgres, RabbitMQ and Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("SCREENALYTICS_SHARED", REPO.parent / "shared")).resolve()
FACES = SHARED / "faces"

from benchmarks.bench import STAGES  # noqa: E402  (after the repository is on the path)

SHOW = "season"
SEASON = 1
#: seconds between two polls of the instance while waiting for the season table
POLL_S = 2.0
#: sensors evaluated every 5 s (Dagster's sensor loop period) instead of the default 30 s
SENSOR_INTERVAL_S = 5
#: Default bound on one path (s): start-up and facebank, then this many seconds per second of
#: video (a loaded 2-core machine runs ``balanced`` at about 0.3x real time).
FIXED_TIMEOUT_S, TIMEOUT_PER_VIDEO_S = 900.0, 6.0
#: an absent cast member's "0 s" (the screen-time report rounds to 1 ms)
ZERO_S = 1e-3


class SeasonError(RuntimeError):
    """A path did not reach the season table: a run failed, a process died, or it timed out."""


# --------------------------------------------------------------------------- the season
def ep_ids(n: int, show: str = SHOW) -> list[str]:
    return [f"{show}-s{SEASON:02d}e{i:02d}" for i in range(1, n + 1)]


def build_season(work: Path, n: int, minutes: float, show: str = SHOW) -> dict:
    """``n`` long known-answer episodes of ``minutes`` each under ``work`` (seed = episode
    number): ``{ep_id: LongEpisode}``, in episode order. They share the cast facebank (every
    episode's ``facebank/`` holds the same ``ref_01`` photos)."""
    from tests.long_episode import build_long_episode

    return {ep: build_long_episode(FACES, work / ep, minutes, seed=i)
            for i, ep in enumerate(ep_ids(n, show), 1)}


def cli(env: dict, *args: str, timeout: float = 900) -> None:
    """Run ``screenalytics ARGS`` as its own process with ``env``; SeasonError on failure."""
    proc = subprocess.run([sys.executable, "-m", "screenalytics_assets.cli", *args], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SeasonError(f"screenalytics {' '.join(args)} failed ({proc.returncode}):\n"
                          f"{(proc.stdout + proc.stderr)[-3000:]}")


def add_cast(env: dict, store, show: str, facebank_dir: Path) -> None:
    """Put each cast member's photos in the show's facebank (what ``facebank add --no-build``
    does, without starting a process per cast member) and build it with ``screenalytics
    facebank build SHOW``."""
    from resources.facebank import add_photos

    for person in sorted(p for p in facebank_dir.iterdir() if p.is_dir()):
        add_photos(store, show, person.name, sorted(person.iterdir()))
    cli(env, "facebank", "build", show)


def season_done(instance, season: str, episodes: list[str]):
    """The newest ``season_screentime`` materialization record of ``season`` when it holds
    every one of ``episodes`` and has read their newest screen time; else None."""
    from screenalytics_assets.staleness import (
        SCREENTIME,
        SEASON_SCREENTIME,
        newest_materialization,
        season_read_up_to,
    )

    rec = newest_materialization(instance, SEASON_SCREENTIME, [season])
    if rec is None:
        return None
    held = rec.asset_materialization.metadata.get("episodes")
    if held is None or sorted(held.value) != sorted(episodes):
        return None
    newest = newest_materialization(instance, SCREENTIME, episodes)
    return rec if newest is not None and season_read_up_to(rec) >= newest.storage_id else None


def failed_runs(instance) -> list:
    from dagster import DagsterRunStatus, RunsFilter

    return list(instance.get_runs(filters=RunsFilter(
        statuses=[DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED])))


def runs_in_progress(instance) -> list:
    from tests.served import runs_in_progress as in_progress

    return in_progress(instance)


def wait_season(instance, season: str, episodes: list[str], timeout_s: float,
                dead: Callable[[], str | None]):
    """Poll until :func:`season_done`; returns its record. Raises SeasonError as soon as a run
    failed, ``dead()`` names a process that died, or after ``timeout_s`` seconds."""
    from tests.served import materialization_count

    deadline = time.monotonic() + timeout_s
    while True:
        rec = season_done(instance, season, episodes)
        if rec is not None:
            return rec
        failed = failed_runs(instance)
        if failed:
            raise SeasonError("run(s) failed: " + ", ".join(
                f"{r.run_id} ({r.job_name}, partition {r.tags.get('dagster/partition')})"
                for r in failed))
        gone = dead()
        if gone:
            raise SeasonError(f"{gone} died")
        if time.monotonic() > deadline:
            done = [ep for ep in episodes if materialization_count(instance, "screentime", ep)]
            raise SeasonError(
                f"no season table with every episode after {timeout_s:.0f} s (screen time of "
                f"{len(done)}/{len(episodes)} episodes; {len(runs_in_progress(instance))} runs "
                "in progress); raise --timeout, or keep the logs with --keep")
        time.sleep(POLL_S)


def settle(instance, timeout_s: float = 120.0) -> None:
    """Wait (at most ``timeout_s``) until no run is queued or in progress, so that what is
    counted afterwards is final (a run started after the table would show up as work done
    twice)."""
    deadline = time.monotonic() + timeout_s
    while runs_in_progress(instance) and time.monotonic() < deadline:
        time.sleep(POLL_S)


def upload_all(episodes: dict, put: Callable[[str, Path], object]) -> tuple[float, list[float]]:
    """Upload every episode's video, one after another; returns the time (epoch s) of the first
    upload and each upload's duration (s)."""
    t0 = time.time()
    took = []
    for ep, long_ep in episodes.items():
        start = time.perf_counter()
        put(ep, long_ep.path)
        took.append(time.perf_counter() - start)
    return t0, took


# --------------------------------------------------------------------------- figures
def artifact_sizes(store, ep_id: str) -> dict[str, int]:
    """Bytes of every file under the episode's manifests (``manifests/{ep_id}/`` locally,
    ``artifacts/manifests/{show}/s{ss}/e{ee}/`` on S3), by file name."""
    prefix = store.episode_prefixes(ep_id)[0]
    return {key[len(prefix):]: len(store.get(key)) for key in store.list_keys(prefix)}


def person_errors(truth: dict, got: dict[str, float]) -> dict[str, dict]:
    """Per cast member: ``truth_s``, ``got_s``, ``error_s`` (got - truth), ``error_pct`` (of the
    truth; None for someone absent), ``small_s`` (seconds in shots where the face is under
    tests.long_episode.SMALL_FACE_PX) and ``absent``. ``truth``: the episode's ``truth.json``;
    ``got``: cast id -> seconds."""
    out = {}
    for cast_id in truth["cast"]:
        person = truth["people"][cast_id]
        t, g = person["seconds"], float(got.get(cast_id, 0.0))
        out[cast_id] = {"truth_s": t, "got_s": round(g, 3), "error_s": round(g - t, 3),
                        "error_pct": round(100 * (g - t) / t, 2) if t else None,
                        "small_s": person["small_seconds"], "absent": t == 0}
    return out


def error_summary(errors: dict[str, dict]) -> dict:
    """Largest errors over the present cast members, and what the absent ones got."""
    present = [e for e in errors.values() if not e["absent"]]
    absent = [e for e in errors.values() if e["absent"]]
    return {"max_abs_error_s": max((abs(e["error_s"]) for e in present), default=0.0),
            "max_abs_error_pct": max((abs(e["error_pct"]) for e in present), default=0.0),
            "within_2pct": sum(abs(e["error_pct"]) <= 2.0 for e in present),
            "present": len(present),
            "absent_max_s": max((e["got_s"] for e in absent), default=0.0),
            "absent_all_zero": all(e["got_s"] < ZERO_S for e in absent)}


def stage_figures(instance, ep_id: str) -> dict[str, dict]:
    """Per stage of one episode: materializations (count), and the newest one's runtime (s)
    and peak RSS (MiB) as its metadata recorded them."""
    from dagster import AssetKey, AssetRecordsFilter

    out = {}
    for stage in STAGES:
        records_filter = AssetRecordsFilter(asset_key=AssetKey(stage), asset_partitions=[ep_id])
        records = instance.fetch_materializations(records_filter, limit=1).records
        md = records[0].asset_materialization.metadata if records else {}
        out[stage] = {"materializations": count_records(instance.fetch_materializations,
                                                         records_filter),
                      "runtime_s": md["runtime_s"].value if "runtime_s" in md else None,
                      "peak_rss_mb": md["peak_rss_mb"].value if "peak_rss_mb" in md else None}
    return out


def count_records(fetch, records_filter, page: int = 10000) -> int:
    """How many records ``fetch`` (``instance.fetch_materializations`` or
    ``fetch_observations``) returns for ``records_filter``, a page of ``page`` at a time (Dagster
    refuses more than 10,000 at once)."""
    n, cursor = 0, None
    while True:
        result = fetch(records_filter, limit=page, cursor=cursor)
        n += len(result.records)
        if not result.has_more:
            return n
        cursor = result.cursor


def event_log_rows(instance) -> dict:
    """Event-log rows through Dagster's public API: ``all_logs`` of every run (total, by job
    and by event type) and the asset observations (recorded outside runs, by the sensors and
    the CLI)."""
    from dagster import AssetKey

    by_job: Counter = Counter()
    by_type: Counter = Counter()
    runs = instance.get_runs()
    for run in runs:
        entries = instance.all_logs(run.run_id)
        by_job[run.job_name] += len(entries)
        by_type.update(e.dagster_event.event_type_value if e.is_dagster_event
                       else "log message" for e in entries)
    observations = {key: count_records(instance.fetch_observations, AssetKey(key))
                    for key in ("episode_video", "identity_edits", "show_facebank")}
    return {"runs": len(runs), "runs_by_job": dict(Counter(r.job_name for r in runs)),
            "in_runs": sum(by_job.values()), "by_job": dict(by_job),
            "by_event_type": dict(by_type.most_common()), "observations": observations,
            "total": sum(by_job.values()) + sum(observations.values())}


def collect(instance, store, episodes: dict, season: str, t0: float, rec) -> dict:
    """Every figure of one path, once its season table is there (see the module docstring)."""
    from dagster import RunsFilter

    from resources.integrity import load_artifact
    from tests.long_episode import seconds_after_review

    show, _ = season.rsplit("-s", 1)
    season_doc = json.loads(store.get(store.season_key(show, SEASON, "season_screentime.json")))
    rows = {p["person"]: p for p in season_doc["people"]}
    per_episode = {}
    for ep, long_ep in episodes.items():
        truth = json.loads(long_ep.truth_path.read_text())
        report = load_artifact(store, ep, "screentime")
        in_table = {c: rows[c]["by_episode"].get(ep, 0.0) if c in rows else 0.0
                    for c in truth["cast"]}
        errors = person_errors(truth, report.cast_seconds())
        table_errors = person_errors(truth, in_table)
        # one click per item of the review queue: each needs_review identity linked to its
        # first suggestion
        reviewed = person_errors(truth, seconds_after_review(
            report, load_artifact(store, ep, "cast_links")))
        records = instance.get_run_records(filters=RunsFilter(tags={"dagster/partition": ep}))
        per_episode[ep] = {
            "video_s": truth["duration_s"], "runs": len(records),
            "stages": stage_figures(instance, ep),
            "artifact_bytes": artifact_sizes(store, ep),
            "errors": errors, "summary": error_summary(errors),
            "season_table_errors": table_errors, "season_table_summary":
                error_summary(table_errors),
            "errors_after_review": reviewed, "summary_after_review": error_summary(reviewed),
            "unknown_s": round(sum(p.seconds for p in report.people if not p.cast_id), 3)}
    twice = {ep: e["stages"]["detections"]["materializations"] for ep, e in per_episode.items()
             if e["stages"]["detections"]["materializations"] != 1}
    video_s = sum(e["video_s"] for e in per_episode.values())
    wall = rec.timestamp - t0
    return {"wall_s": round(wall, 1), "video_s": video_s,
            "episodes_per_hour": round(len(episodes) * 3600 / wall, 2),
            "real_time_factor": round(video_s / wall, 3),
            "season_table_episodes": season_doc["episodes"],
            "computed_twice": twice, "failed_runs": len(failed_runs(instance)),
            "event_log_rows": event_log_rows(instance), "episodes": per_episode}


# --------------------------------------------------------------------------- the paths
def serve_path(episodes: dict, work: Path, timeout_s: float) -> dict:
    """The season through ``screenalytics serve`` on a fresh data root under ``work``."""
    from benchmarks.cluster_bench import Sampler
    from resources.storage import LocalStore
    from tests.served import kill_tree, place_video, start_serve, stop_serve

    start = time.perf_counter()
    try:
        served = start_serve(work, {"STORAGE_BACKEND": "local", "SCREENALYTICS_PROFILE":
                                    os.environ["SCREENALYTICS_PROFILE"]}, timeout_s=600)
    except AssertionError as exc:  # start_serve stopped what it started
        raise SeasonError(str(exc)) from None
    sampler = Sampler({"serve": served.proc.pid})
    try:
        started_s = time.perf_counter() - start
        store = LocalStore(served.root)
        first = next(iter(episodes.values()))
        start = time.perf_counter()
        add_cast(served.env, store, SHOW, first.facebank_dir)
        facebank_s = time.perf_counter() - start
        sampler.start()
        t0, took = upload_all(episodes, lambda ep, path: place_video(served.root, ep, path))

        def dead() -> str | None:
            return None if served.proc.poll() is None else "screenalytics serve"

        rec = wait_season(served.instance, f"{SHOW}-s{SEASON:02d}", list(episodes), timeout_s,
                          dead)
        settle(served.instance)
        out = collect(served.instance, store, episodes, f"{SHOW}-s{SEASON:02d}", t0, rec)
        out["upload_s"] = [round(t, 2) for t in took]
        out["start_s"], out["facebank_s"] = round(started_s, 1), round(facebank_s, 1)
    finally:
        sampler.stop.set()
        start = time.perf_counter()
        rc, alive = stop_serve(served)
        if served.proc.poll() is None or alive:
            kill_tree(served.proc)
    out["process_peak_rss_mb"] = {k: round(v) for k, v in sampler.rss_mb.items()}
    out["stopped"] = {"serve_status": rc, "left_alive": alive,
                      "stop_s": round(time.perf_counter() - start, 1)}
    return out


def cluster_path(episodes: dict, workers: int, timeout_s: float, keep: bool) -> dict:
    """The season on the local cluster with ``workers`` workers, uploads to its bucket picked up
    by its daemon's S3 upload sensor."""
    from dagster import DagsterInstance

    from benchmarks.cluster_bench import Sampler, local_cluster
    from resources.backend import storage_from_env
    from screenalytics_assets.cluster.local import LocalCluster
    from screenalytics_assets.definitions import SENSOR_INTERVAL_ENV, SENSORS_ENV

    env = {SENSORS_ENV: "on", SENSOR_INTERVAL_ENV: str(SENSOR_INTERVAL_S)}
    with local_cluster(workers, env, keep=keep) as (st, services, root):
        instance = DagsterInstance.get()
        store = storage_from_env(str(root)).store()
        first = next(iter(episodes.values()))
        add_cast(dict(os.environ), store, SHOW, first.facebank_dir)
        names = [n for n in st.pids if n.startswith("worker")] + ["daemon"]
        sampler = Sampler({n: st.pids[n] for n in names}, services.pg_url, services.name)
        sampler.start()
        try:
            t0, took = upload_all(episodes, store.put_video)

            def dead() -> str | None:
                gone = [n for n, up in LocalCluster(root).running().items() if not up]
                return ", ".join(gone) or None

            rec = wait_season(instance, f"{SHOW}-s{SEASON:02d}", list(episodes), timeout_s,
                              dead)
            settle(instance)
            out = collect(instance, store, episodes, f"{SHOW}-s{SEASON:02d}", t0, rec)
        finally:
            sampler.stop.set()
            sampler.join()
        out["upload_s"] = [round(t, 2) for t in took]
        out["process_peak_rss_mb"] = {k: round(v) for k, v in sampler.rss_mb.items()}
        out["pg_connections_peak"] = sampler.pg_peak
        out["workers"] = workers
    return out


# --------------------------------------------------------------------------- report
def print_path(name: str, r: dict) -> None:
    eps = list(r["episodes"])
    short = {ep: ep.rsplit("-", 1)[1] for ep in eps}
    print(f"\n== {name}")
    print(f"  wall time, first upload -> season table: {r['wall_s']:.1f} s for "
          f"{r['video_s'] / 60:.1f} min of video ({r['real_time_factor']:.2f}x real time); "
          f"{r['episodes_per_hour']:.1f} episodes per hour")
    print(f"  season table holds: {', '.join(r['season_table_episodes'])}")
    twice = r["computed_twice"]
    print("  detections materialized per episode: " + ", ".join(
        f"{short[ep]} {r['episodes'][ep]['stages']['detections']['materializations']}"
        for ep in eps) + ("  (nothing computed twice)" if not twice
                          else f"  COMPUTED TWICE: {twice}"))
    ev = r["event_log_rows"]
    print(f"  Dagster event-log rows: {ev['total']} ({ev['in_runs']} in {ev['runs']} runs: "
          + ", ".join(f"{k} {v} in {ev['runs_by_job'][k]}" for k, v in ev["by_job"].items())
          + "; asset observations " + ", ".join(f"{k} {v}" for k, v in ev["observations"].items())
          + ")")
    print("    by event type: " + ", ".join(f"{k} {v}" for k, v in ev["by_event_type"].items()))
    print("  peak RSS of the processes (MiB): " + ", ".join(
        f"{k} {v}" for k, v in r["process_peak_rss_mb"].items())
          + (f"; Postgres connections at peak {r['pg_connections_peak']}"
             if "pg_connections_peak" in r else ""))
    print(f"\n  {'stage':<12}" + "".join(f"{short[ep] + ' s':>9}{'MiB':>6}" for ep in eps))
    for stage in STAGES:
        cells = []
        for ep in eps:
            st = r["episodes"][ep]["stages"][stage]
            cells.append(f"{st['runtime_s'] if st['runtime_s'] is not None else '-':>9}"
                         f"{round(st['peak_rss_mb']) if st['peak_rss_mb'] else '-':>6}")
        print(f"  {stage:<12}" + "".join(cells))
    print(f"\n  {'artifact bytes':<28}" + "".join(f"{short[ep]:>12}" for ep in eps))
    files = sorted({f for ep in eps for f in r["episodes"][ep]["artifact_bytes"]})
    for f in files:
        print(f"  {f:<28}" + "".join(
            f"{r['episodes'][ep]['artifact_bytes'].get(f, 0):>12,}" for ep in eps))
    print(f"  {'total':<28}" + "".join(
        f"{sum(r['episodes'][ep]['artifact_bytes'].values()):>12,}" for ep in eps))
    print("\n  per person: truth s / error s (screentime.json; the season table's error where it "
          "differs)")
    print(f"  {'person':<8}" + "".join(f"{short[ep]:>22}" for ep in eps) + f"{'season':>22}")
    cast = list(r["episodes"][eps[0]]["errors"])
    for c in cast:
        cells, t_sum, g_sum = [], 0.0, 0.0
        for ep in eps:
            e = r["episodes"][ep]["errors"][c]
            te = r["episodes"][ep]["season_table_errors"][c]
            t_sum += e["truth_s"]
            g_sum += te["got_s"]
            differs = "" if abs(te["error_s"] - e["error_s"]) < ZERO_S \
                else f" ({te['error_s']:+.2f})"
            cells.append(f"{e['truth_s']:8.2f} {e['error_s']:+6.2f}{differs:>7}")
        pct = f"{100 * (g_sum - t_sum) / t_sum:+5.1f}%" if t_sum else "     -"
        print(f"  {c:<8}" + "".join(f"{x:>22}" for x in cells)
              + f"{t_sum:9.2f} {g_sum - t_sum:+6.2f} {pct}")
    for ep in eps:
        s = r["episodes"][ep]["summary"]
        absent = "all 0 s" if s["absent_all_zero"] else f"up to {s['absent_max_s']:.2f} s"
        print(f"  {short[ep]}: largest error {s['max_abs_error_s']:.2f} s / "
              f"{s['max_abs_error_pct']:.1f} %; {s['within_2pct']}/{s['present']} present cast "
              f"members within 2 %; absent cast members {absent}; unlinked identities "
              f"{r['episodes'][ep]['unknown_s']:.1f} s")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=4, help="episodes in the season (default 4)")
    ap.add_argument("--minutes", type=float, default=20.0, help="minutes per episode (default 20)")
    ap.add_argument("--profile", default="balanced", help="settings profile (default balanced)")
    ap.add_argument("--pack", default="ci_pack", help="model pack under ../shared/models")
    ap.add_argument("--cluster", action="store_true", help="also run the season on the cluster")
    ap.add_argument("--workers", type=int, default=3, help="cluster workers (default 3)")
    ap.add_argument("--no-serve", action="store_true", help="skip the serve path")
    ap.add_argument("--timeout", type=float,
                    help=f"seconds each path may take (default {FIXED_TIMEOUT_S:.0f} + "
                         f"{TIMEOUT_PER_VIDEO_S:.0f} per second of video)")
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    ap.add_argument("--work", type=Path, help="folder for the temporary files (default: tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary files and logs")
    args = ap.parse_args(argv)
    if args.episodes < 1 or args.minutes <= 0:
        ap.error("--episodes and --minutes must be positive")
    if not FACES.is_dir():
        ap.error(f"{FACES} not found: put the shared folder beside the repository or set "
                 "SCREENALYTICS_SHARED")
    os.environ.update({
        "SCREENALYTICS_MODEL_ROOT": str(SHARED), "SCREENALYTICS_MODEL_PACK": args.pack,
        "SCREENALYTICS_DEVICE": "cpu", "SCREENALYTICS_PROFILE": args.profile,
        # the repository first in every process started (serve, its runs, the cluster)
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)})
    for name in ("SCREENALYTICS_DATA_ROOT", "DAGSTER_HOME", "SCREENALYTICS_SETTINGS"):
        os.environ.pop(name, None)
    # Ctrl-C (also when started with SIGINT ignored, as a script's background job is) and
    # SIGTERM raise KeyboardInterrupt: the finally blocks stop every process started
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="season-bench-", dir=args.work))
    load = os.getloadavg()
    figures: dict = {"episodes": args.episodes, "minutes": args.minutes,
                     "profile": args.profile, "model_pack": args.pack,
                     "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                     "load_average_start": [round(x, 1) for x in load]}
    try:
        start = time.perf_counter()
        episodes = build_season(work / "episodes", args.episodes, args.minutes)
        figures["build_s"] = round(time.perf_counter() - start, 1)
        video_s = sum(e.duration_s for e in episodes.values())
        timeout = args.timeout or FIXED_TIMEOUT_S + TIMEOUT_PER_VIDEO_S * video_s
        print(f"season {SHOW}-s{SEASON:02d}: {args.episodes} episodes x {args.minutes:g} min "
              f"(1280x720, 25 fps; built in {figures['build_s']} s), profile {args.profile}, "
              f"model pack {args.pack}; {figures['machine']}, load average "
              f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", flush=True)
        if not args.no_serve:
            figures["serve"] = serve_path(episodes, work / "serve", timeout)
            print_path("screenalytics serve", figures["serve"])
        if args.cluster:
            figures["cluster"] = cluster_path(episodes, args.workers, timeout, args.keep)
            print_path(f"cluster, {args.workers} workers", figures["cluster"])
        figures["load_average_end"] = [round(x, 1) for x in os.getloadavg()]
    except SeasonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        figures["error"] = str(exc)
        return 1
    except KeyboardInterrupt:
        print("interrupted; everything started is stopped", file=sys.stderr)
        return 130
    finally:
        if args.out:
            args.out.write_text(json.dumps(figures, indent=1) + "\n")
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
