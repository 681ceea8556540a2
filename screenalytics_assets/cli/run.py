"""``screenalytics run VIDEO --ep-id EP_ID``: register an episode and materialize its assets."""

from __future__ import annotations

import importlib
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.ep_id import parse_ep_id, validate_ep_id
from ..core.errors import ScreenalyticsError
from ..settings import ASSET_SETTINGS, SettingsError, check_value, load_settings
from .common import (
    RunFailedError,
    add_common_args,
    disk_full_error,
    episode_lock,
    execute,
    instance_for,
    load_without_collections,
    storage_for,
)
from .facebank import photo_check

if TYPE_CHECKING:
    from dagster import AssetKey
    from rich.console import Console

#: Assets that run the face models: with ``--stale-only`` the models are loaded (and checked)
#: only when one of them is to run.
MODEL_ASSETS = ("detections", "embeddings")


def register(sub) -> None:
    p = sub.add_parser("run", help="materialize every asset of one episode",
                       description="Copy VIDEO into the storage (data root, or the bucket when "
                                   "STORAGE_BACKEND=s3) as the episode's video, "
                                   "register the partition and materialize its assets.")
    p.add_argument("video", nargs="?", help="episode video; omit to reuse the uploaded one")
    p.add_argument("--ep-id", required=True, help="episode id, e.g. rhobh-s05e14")
    p.add_argument("--profile", help="settings profile: fast, balanced (default), accurate")
    p.add_argument("--stale-only", action="store_true",
                   help="materialize only the assets that are stale or missing")
    p.add_argument("--wait", action="store_true",
                   help="when another run of the same ep_id is in progress, wait for it to "
                        "finish instead of refusing")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting for this run only (repeatable); the assets that read "
                        "it and their descendants are re-materialized")
    p.add_argument("--facebank", metavar="DIR",
                   help="cast photos, one sub-folder per cast member (DIR/<cast-id>/*.jpg): "
                        "added to the facebank of the ep_id's show, which is rebuilt first")
    queue = p.add_mutually_exclusive_group()
    queue.add_argument("--submit", action="store_true",
                       help="register the episode, then queue its run on the instance's run "
                            "queue (a dagster-daemon launches it; on the cluster its steps run "
                            "on the workers) instead of computing here")
    queue.add_argument("--register-only", action="store_true",
                       help="upload and register the episode, run nothing: "
                            "`screenalytics backfill` then runs the registered season")
    p.add_argument("--webserver", metavar="URL",
                   help="with --submit: submit through this running Dagster webserver "
                        "(default: straight to the instance)")
    add_common_args(p)
    p.set_defaults(func=run)


#: What a run imports before its first step (Dagster through the models resource, InsightFace
#: and ONNX Runtime, the asset definitions): about a second and a half of start-up, spent while
#: the video is checked.
RUN_IMPORTS = ("resources.models", "insightface.model_zoo", "screenalytics_assets.definitions")


def run(args) -> int:
    load_without_collections()  # until the run starts (common.freeze_loaded_objects)
    from ..core.video import validate_video

    ep_id = validate_ep_id(args.ep_id)
    settings = load_settings(profile=args.profile)
    overrides = parse_overrides(args.overrides)  # unknown keys and bad values fail here
    if args.submit or args.register_only:
        return register_and_submit(args, ep_id, settings, overrides)
    if args.webserver:
        raise ScreenalyticsError("--webserver goes with --submit (the run is then queued "
                                 "through that webserver)")
    root, storage = storage_for(args)  # STORAGE_BACKEND: local data root or the S3 bucket
    store = storage.store()
    # Fail on bad input before anything is written: the video, then the model pack. A new video
    # is read to its end before it replaces the episode's video (and its data version): a
    # truncated re-upload never costs the episode its good video. The check runs in a thread
    # while this one imports what the run needs: PyAV demuxes and decodes without holding the
    # GIL, so on 2 cores the check (0.2 s for 2.4 minutes of 720p, about 1.5 s for 20 minutes)
    # is hidden behind the imports.
    with ThreadPoolExecutor(1, thread_name_prefix="validate-video") as pool:
        checked = pool.submit(validate_video, args.video) if args.video else None
        for module in RUN_IMPORTS:
            importlib.import_module(module)
        info = checked.result() if checked else None
    from resources.models import FaceModelsResource, check_pack, load_face_models

    if info is not None:
        need = run_needs_bytes(info.n_frames, Path(args.video).stat().st_size)
    else:
        store.video_path(ep_id)
        need = None
    models = FaceModelsResource.from_env()

    def load_models() -> None:
        load_face_models(models.model_root, settings.model_pack, models.device,
                         models.intra_op_threads)

    lazy_models = args.stale_only and not args.video and not args.facebank
    if lazy_models:
        # An episode already uploaded: nothing but records is written before the plan, and an
        # up-to-date episode needs no model; the pack is still checked to be there.
        check_pack(models.model_root, settings.model_pack)
    else:
        load_models()
    try:
        instance = instance_for(root)
        # One run of an episode at a time: a second one refuses (or, with --wait, waits).
        with episode_lock(ep_id, wait=args.wait):
            return _materialize(args, ep_id, settings, overrides, storage, instance,
                                load_models if lazy_models else None)
    except (ScreenalyticsError, OSError) as exc:
        command = f"screenalytics run {args.video or ''} --ep-id {ep_id}".replace("  ", " ")
        full = disk_full_error(exc, root, need, command)
        if full is None:
            raise
        raise full from exc


#: Bytes a run writes per frame of video, on top of the video copy: the artifacts and the
#: Dagster instance's records. Measured on the Hamilton clip (275 frames, default profile):
#: 8.1 MB of artifacts (7.2 MB of them aligned face crops) and 1.3 MB of instance records,
#: 34 KB a frame; rounded up.
BYTES_PER_FRAME = 40_000


def run_needs_bytes(n_frames: int, video_bytes: int) -> int:
    """About how many bytes a run of a new video of ``n_frames`` frames and ``video_bytes``
    bytes writes under the data root (the video copy + :data:`BYTES_PER_FRAME` a frame)."""
    return video_bytes + n_frames * BYTES_PER_FRAME


def register_and_submit(args, ep_id: str, settings, overrides: dict[str, Any]) -> int:
    """``run --register-only`` / ``run --submit``: validate the video, upload it, register the
    episode's partitions and observe its video, then (``--submit``) queue its run on the
    instance's run queue (:func:`~screenalytics_assets.backfill.submit_episode`); nothing is
    computed in this process, so no model is loaded here (the workers check the model pack).

    Raises:
        ScreenalyticsError: an option that needs this process (``--facebank``, ``--set``), an
            unreadable video, a missing upload, an unreachable Postgres or Dagster refusing.
    """
    from ..backfill import submit_episode
    from ..cluster.config import check_postgres, executor_from_env
    from ..core.video import probe_video
    from ..daemon import daemon_alive
    from ..definitions import build_definitions
    from ..partitions import register_episode
    from ..staleness import observe_video

    flag = "--submit" if args.submit else "--register-only"
    for given, option, how in ((args.facebank, "--facebank", "add the photos first with "
                                "`screenalytics facebank`"),
                               (overrides, "--set", "put the setting in a profile of the "
                                "settings file (SCREENALYTICS_SETTINGS)"),
                               (args.profile and args.submit, "--profile", "the run uses the "
                                "profile of the instance's processes: SCREENALYTICS_PROFILE "
                                "of `screenalytics cluster env` or `serve --profile`")):
        if given:
            raise ScreenalyticsError(f"{option} cannot be combined with {flag}: it applies to "
                                     f"a run in this process; {how}")
    root, storage = storage_for(args)
    store = storage.store()
    if args.video:
        probe_video(args.video)  # a bad video fails here, before anything is written
    elif not store.exists(store.video_key(ep_id)):
        raise ScreenalyticsError(f"no video uploaded for {ep_id} at "
                                 f"{store.uri(store.video_key(ep_id))}; give the VIDEO to upload")
    if executor_from_env() == "celery":
        check_postgres()  # the cluster's instance: a clear error rather than a driver traceback
    instance = instance_for(root)
    if args.video:
        store.put_video(ep_id, args.video)
    register_episode(instance, ep_id)
    version = observe_video(instance, store, ep_id)
    print(f"{ep_id}: registered, video {store.uri(store.video_key(ep_id))} (version {version})")
    if args.register_only:
        return 0
    defs = build_definitions(settings, storage=storage)
    keys = plan_selection(defs, instance, ep_id, {}, args.stale_only) if args.stale_only \
        else None
    if keys == []:
        print(f"{ep_id}: every asset is up to date; nothing submitted")
        return 0
    backfill_id = submit_episode(instance, defs, ep_id, keys, {"screenalytics/source": "cli"},
                                 args.webserver)
    print(f"{ep_id}: queued as backfill {backfill_id}"
          + (f" ({len(keys)} assets)" if keys else " (every asset)")
          + "; follow it in the UI under Overview > Backfills")
    if not args.webserver and not daemon_alive(instance):
        print(f"warning: no dagster-daemon is running for the Dagster instance in "
              f"{instance.root_directory}, so nothing launches the run yet; start one "
              "(`screenalytics serve`, or `screenalytics cluster up`)", file=sys.stderr)
    return 0


def _materialize(args, ep_id, settings, overrides, storage, instance,
                 load_models: Callable[[], None] | None = None) -> int:
    """Write the video, register the partition, run the selection and print the report (with
    the episode's run lock held). ``load_models``: called before the run when it includes an
    asset that runs the face models (the models were not loaded yet)."""
    from rich.console import Console

    from resources.facebank import add_folder
    from resources.integrity import load_artifact

    from ..assets.cast import ensure_edits_observed
    from ..definitions import EPISODE_JOB, FACEBANK_JOB, build_definitions
    from ..partitions import register_episode, register_show
    from ..staleness import observe_video

    store = storage.store()
    show = parse_ep_id(ep_id).show
    if args.facebank:
        # every photo is validated (readable, exactly the face expected) before any is written
        added = add_folder(store, show, args.facebank, photo_check(args.profile))
    had_video = store.exists(store.video_key(ep_id))
    defs = build_definitions(settings, storage=storage)
    console = Console(stderr=True)
    if args.facebank:
        register_show(instance, show)
        console.print(f"facebank {show}: " + ", ".join(f"{c} ({n})" for c, n in added.items()))
        execute(defs.resolve_job_def(FACEBANK_JOB), instance, show, None)
    # The video goes in place last, just before the run starts: an upload sensor watching the
    # same folder (`screenalytics serve`) leaves a file alone for its first seconds and then
    # waits while the episode's run is in progress, so it does not run the episode a second time.
    if args.video:
        store.put_video(ep_id, args.video)  # a read-only or full data root fails here, first
    console.print(f"[bold]{ep_id}[/]: profile {settings.profile}, model pack "
                  f"{settings.model_pack}, video {store.uri(store.video_key(ep_id))}")
    new_partition = register_episode(instance, ep_id)
    observe_video(instance, store, ep_id)
    ensure_edits_observed(instance, store, ep_id)
    job = defs.resolve_job_def(EPISODE_JOB)
    damaged = damaged_files(store, defs, ep_id) if args.stale_only else {}
    for asset, found in damaged.items():
        for uri, why in found.items():
            console.print(f"[yellow]damaged[/] {asset}: {uri}: {why}; re-materializing it",
                          soft_wrap=True)  # file paths stay whole, to copy
    keys = plan_selection(defs, instance, ep_id, overrides, args.stale_only, list(damaged))
    console.print("materializing: " + (", ".join(k.to_user_string() for k in keys) or
                                       "nothing (every asset is up to date)"))
    run_config = override_config(overrides, keys)
    try:
        if load_models is not None and any(k.path[-1] in MODEL_ASSETS for k in keys):
            try:
                load_models()
            except ScreenalyticsError as exc:
                raise RunFailedError(str(exc)) from exc
        with _live_progress(console):
            if keys:
                execute(job, instance, ep_id, keys, run_config)
    except RunFailedError as exc:
        # Cleanup never hides the run's error: what it cannot undo (e.g. S3 is gone) is added
        # to the message, with the command that finishes it.
        notes = _clean_up_failed_run(store, instance, ep_id, new_partition and not exc.materialized,
                                     bool(args.video) and not had_video)
        if notes:
            raise RunFailedError(f"{exc}\n" + "\n".join(notes), exc.materialized) from exc
        raise
    report = load_artifact(store, ep_id, "screentime")
    print_report(report)
    return 0


def _clean_up_failed_run(store, instance, ep_id: str, nothing_done: bool, uploaded: bool
                         ) -> list[str]:
    """After a failed run: remove the local cache copy of the video (always), and when nothing
    was computed from a new upload (e.g. the video turned out truncated while decoding), take the
    new episode back out so nothing looks half-processed. Returns notes on what could not be
    undone; never raises, so the run's own error stays the one reported."""
    from ..partitions import EPISODES_PARTITION

    notes = []
    for folder in store.cache_dirs(ep_id):
        shutil.rmtree(folder, ignore_errors=True)
    if not nothing_done:
        return notes
    try:
        instance.delete_dynamic_partition(EPISODES_PARTITION, ep_id)
    except Exception as exc:  # noqa: BLE001 - reported, the run's error comes first
        notes.append(f"note: could not unregister partition {ep_id} ({type(exc).__name__})")
    if uploaded:
        key = store.video_key(ep_id)
        try:
            store.delete_keys([key])
        except Exception as exc:  # noqa: BLE001 - e.g. S3 unreachable: reported, not raised
            notes.append(f"note: the uploaded video {store.uri(key)} was left in place "
                         f"({type(exc).__name__}); remove it once storage is back (e.g. "
                         f"`aws s3 rm {store.uri(key)}`)")
    return notes


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["cluster_thresh=0.7"]`` -> ``{"cluster_thresh": 0.7}``, each value checked against the
    settings schema (type and range) before anything runs.

    Raises:
        SettingsError: not KEY=VALUE, an unknown key, a wrong type or a value out of range.
    """
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"--set {item!r}: write it as KEY=VALUE, e.g. cluster_thresh=0.7")
        key = key.strip()
        if key == "model_pack":
            raise SettingsError("--set model_pack: choose the pack with SCREENALYTICS_MODEL_PACK")
        out[key] = check_value(key, value.strip())
    return out


def override_config(overrides: dict[str, Any], keys: list["AssetKey"]) -> dict:
    """Run config giving each selected asset the overridden settings it reads (its typed
    ``StageConfig`` fields)."""
    ops = {}
    for key in keys:
        name = key.path[-1]
        mine = {k: v for k, v in overrides.items() if k in ASSET_SETTINGS.get(name, ())}
        if mine:
            ops[name] = {"config": mine}
    return {"ops": ops}


def damaged_files(store, defs, ep_id: str) -> dict[str, dict[str, str]]:
    """``{asset: {file: what is wrong}}`` for the episode's materialized assets whose files no
    longer match their integrity manifests (truncated, rows dropped, bytes changed, deleted)."""
    from resources.integrity import NOT_MATERIALIZED, damaged_assets

    from ..staleness import episode_asset_keys

    found = damaged_assets(store, ep_id, [k.path[-1] for k in episode_asset_keys(defs)])
    return {a: f for a, f in found.items() if list(f.values()) != [NOT_MATERIALIZED]}


def plan_selection(defs, instance, ep_id: str, overrides: dict[str, Any], stale_only: bool,
                   damaged: list[str] = ()) -> list["AssetKey"]:
    """The episode assets to run, in graph order.

    Everything, or with ``stale_only`` the stale and missing ones, the ``damaged`` ones (files
    that fail their integrity manifest: Dagster's staleness only knows code and data versions,
    not what happened to the files since) and their descendants; plus, with overrides, every
    asset that reads an overridden setting and its descendants (an override changes no code
    version, so Dagster alone would not see them as stale).
    """
    from dagster import AssetKey

    from ..staleness import downstream_closure, episode_asset_keys, stale_or_missing

    keys = episode_asset_keys(defs)
    roots = stale_or_missing(defs, instance, ep_id, keys) if stale_only else keys
    roots = [*roots, *(AssetKey(a) for a in damaged)]
    roots = [*roots, *(AssetKey(a) for a, reads in ASSET_SETTINGS.items()
                       if set(reads) & set(overrides))]
    # Dagster flags only the asset whose code version or inputs changed; what is downstream of it
    # gets new inputs once it re-runs, so it runs too.
    chosen = downstream_closure(defs, roots) & set(keys)
    return [k for k in keys if k in chosen]


class _live_progress:
    """A rich progress bar per stage (frames done, frames per second, ETA) fed by assets."""

    def __init__(self, console: "Console") -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description:<11}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(), console=console, transient=False,
            disable=not console.is_terminal and not sys.stderr.isatty())
        self.tasks: dict[str, int] = {}
        self.updated: dict[str, float] = {}

    #: Seconds between two updates of a stage's bar (rich redraws 10 times a second). Assets
    #: report every frame; rich keeps a sample per update and sums the last 30 s of samples for
    #: each speed, which per frame costs the run's main thread 0.1 ms a frame (3 s of a
    #: 20-minute episode) by the end of a long stage.
    UPDATE_EVERY_S = 0.1

    def sink(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total or None, rate="")
        elif now - self.updated[stage] < self.UPDATE_EVERY_S and not (total and done >= total):
            return
        self.updated[stage] = now
        task = self.tasks[stage]
        speed = self.progress.tasks[task].speed
        self.progress.update(task, completed=done, total=total or None,
                             rate=f"{speed:6.1f}/s" if speed else "")

    def __enter__(self):
        from ..progress import progress_sink

        self.progress.__enter__()
        self._ctx = progress_sink(self.sink)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        return self.progress.__exit__(*exc)


def print_report(report) -> None:
    """Print the screen-time table (with display names and cast members) to stdout, then the
    cast members who are not on screen and any review edit that no longer applies."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Screen time — {report.ep_id} ({report.duration_s:.1f} s)")
    for col in ("identity", "name", "cast", "seconds", "share", "tracks", "first", "last"):
        table.add_column(col, justify="left" if col in ("identity", "name", "cast") else "right")
    for row in report.rows():
        table.add_row(f"id_{row['identity_id']:02d}", row["name"] or "—", row["cast_id"] or "—",
                      f"{row['seconds']:.2f}", f"{100 * row['seconds'] / report.duration_s:.0f}%",
                      str(row["n_tracks"]), f"{row['first_ts']:.2f}", f"{row['last_ts']:.2f}")
    console = Console(width=110)
    console.print(table)
    # a cast member may hold several identities (split rather than mixed): the totals per person
    identities: dict[str, int] = {}
    for row in report.rows():
        if row["cast_id"]:
            identities[row["cast_id"]] = identities.get(row["cast_id"], 0) + 1
    on_screen = sorted(((c, sec) for c, sec in report.cast_seconds().items() if sec > 0),
                       key=lambda kv: (-kv[1], kv[0]))
    if on_screen:
        console.print("cast on screen: " + ", ".join(
            f"{c} {sec:.2f} s" + (f" ({identities[c]} identities)" if identities.get(c, 1) > 1
                                  else "") for c, sec in on_screen))
    absent = [c for c, sec in report.cast_seconds().items() if sec == 0]
    if absent:
        console.print(f"cast not on screen: {', '.join(absent)}")
    for s in report.skipped_edits:
        console.print(f"[yellow]review edit {s['index']} ({s['op']}) not applied:[/] {s['reason']}")
