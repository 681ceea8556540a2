"""Upload sensors: a new or changed ``videos/{ep_id}/episode.mp4`` starts a run of its episode.

Both sensors (``s3_upload_sensor`` for the S3 backend, ``local_video_sensor`` for the embedded
local data root) run the same tick logic over the storage resource's ``list_videos()``:

* the cursor maps every key seen to its change stamp (ETag, or size+mtime locally), so a restart
  neither rescans old uploads nor launches them again;
* a local file written to in the last ``SETTLE_S`` seconds is still being copied into the watch
  folder: it is left for a later tick instead of starting a run on half a video;
* a key that is not ``videos/{ep_id}/episode.mp4`` with a valid ep_id is skipped, with a log line
  saying why (once per key and version);
* a valid new or changed upload adds the episode, season and show partitions (the same
  registration as the CLI: ``partitions.missing_partitions``), records an
  ``AssetObservation`` of ``episode_video`` with the video's data version, and requests a run of
  the episode job with ``run_key = "{key}@{version}"``: the same upload never starts two runs,
  a re-upload with new content starts one;
* nothing is done twice: for an episode already registered, Dagster's own records decide
  (:func:`plan_upload`). When the newest materializations of the assets that read the video were
  computed from this very content (their provenance names the video's data version) and no
  episode asset is stale or missing, the upload is skipped, with the reason in the tick history
  (e.g. ``scripts/demo.sh`` ran the episode with ``screenalytics run``, then ``serve`` sees its
  video for the first time). Same content with some assets stale or missing (a run that failed
  half-way, a rebuilt facebank): a run of only those and what is downstream of them. While a run
  of the episode is queued or in progress, the upload is left for a later tick and judged again
  once that run has ended.
"""

# No ``from __future__ import annotations``: Dagster reads the sensors' resource parameters from
# their annotations.

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dagster import (
    AddDynamicPartitionsRequest,
    AssetKey,
    AssetObservation,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from resources.dagster_storage import StorageResource
from resources.edits import read_edits
from resources.facebank import read_facebank
from resources.storage import ArtifactStore
from screenalytics_assets.core.ep_id import parse_ep_id, validate_ep_id
from screenalytics_assets.core.facebank import facebank_version
from screenalytics_assets.core.errors import InvalidEpIdError
from screenalytics_assets.core.review import edits_version
from screenalytics_assets.partitions import EPISODES_PARTITION, missing_partitions
from screenalytics_assets.staleness import (
    consumed_video_versions,
    partitions_in_progress,
    stale_selection,
)

VIDEO_NAME = "episode.mp4"
#: A local file modified less than this many seconds ago is taken to be still being copied.
SETTLE_S = 3.0
DATA_VERSION_TAG = "dagster/data_version"


@dataclass
class UploadScan:
    """What one tick found. ``skipped``: key -> why it is not an episode upload;
    ``up_to_date``: key -> why its episode needs no run; ``waiting``: key -> why it is left for
    a later tick; ``cursor``: the next cursor (JSON ``{key: stamp}``)."""

    run_requests: list[RunRequest] = field(default_factory=list)
    new_episodes: list[str] = field(default_factory=list)
    observations: list[AssetObservation] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    up_to_date: dict[str, str] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)
    cursor: str = "{}"


@dataclass(frozen=True)
class EpisodeRecords:
    """What the Dagster instance says of a registered episode (read by the tick).

    Attributes:
        video_versions: the ``episode_video`` data versions that the newest materializations of
            the assets reading the video were computed from (``None`` for one never
            materialized); see ``staleness.consumed_video_versions``.
        stale: the episode assets (``AssetKey.to_user_string()``) to materialize to bring it up
            to date, in dependency order; empty when it is up to date
            (``staleness.stale_selection``).
        running: a run of the episode's partition is queued or in progress.
    """

    video_versions: frozenset[str | None]
    stale: tuple[str, ...]
    running: bool = False


@dataclass(frozen=True)
class UploadPlan:
    """What to do with an upload. ``action``: ``"run"``, ``"skip"`` or ``"wait"`` (look again
    at a later tick); ``assets``: for ``"run"``, the asset keys to materialize (None: the whole
    episode job); ``reason``: for the log and the tick history."""

    action: str
    assets: tuple[str, ...] | None = None
    reason: str = ""


def plan_upload(version: str, records: EpisodeRecords | None) -> UploadPlan:
    """Whether an upload of content ``version`` must run, given what the instance says of its
    episode (``records``; None for an episode not registered yet: it runs).

    * a run of the episode in progress: ``wait`` (judged again once it has ended);
    * the video-reading assets were computed from other content, or never: ``run`` everything;
    * computed from this content and nothing stale or missing: ``skip``;
    * computed from this content, some assets stale or missing: ``run`` those (and what is
      downstream of them, as ``records.stale`` lists).
    """
    if records is None:
        return UploadPlan("run", reason="a new episode")
    if records.running:
        return UploadPlan("wait", reason="a run of the episode is in progress; judged again "
                                         "once it has ended")
    if records.video_versions != {version}:
        return UploadPlan("run", reason="new content")
    if not records.stale:
        return UploadPlan("skip", reason="every asset is already materialized from this "
                                         f"content (version {version[:12]})")
    return UploadPlan("run", assets=records.stale,
                      reason="already materialized from this content but for "
                             + ", ".join(records.stale))


def parse_video_key(key: str) -> str:
    """The ep_id of an upload key ``videos/{ep_id}/episode.mp4``.

    Raises:
        InvalidEpIdError: the key has another shape (``videos/x/notes.txt``, nested folders) or
            its ep_id breaks the grammar (``videos/BAD ID/episode.mp4``, ``videos/../x/...``).
    """
    parts = key.split("/")
    if len(parts) != 3 or parts[0] != "videos" or parts[2] != VIDEO_NAME:
        raise InvalidEpIdError(
            f"{key!r} is not an episode upload: expected videos/{{ep_id}}/{VIDEO_NAME}")
    return validate_ep_id(parts[1])


def load_cursor(cursor: str | None) -> dict[str, str]:
    """The cursor's ``{key: stamp}``; an empty or unreadable cursor starts afresh."""
    if not cursor:
        return {}
    try:
        seen = json.loads(cursor)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in seen.items()} if isinstance(seen, dict) else {}


def scan_uploads(store: ArtifactStore, cursor: str | None, known_episodes: set[str],
                 log, now: float | None = None,
                 records: Callable[[str], EpisodeRecords] | None = None) -> UploadScan:
    """One tick over ``store.list_videos()`` (see the module docstring); Dagster-free of side
    effects: the caller applies the partition requests and run requests. ``now``: the time
    (seconds since the epoch) against which ``SETTLE_S`` is measured, default the clock.
    ``records``: what the instance says of a registered episode (:class:`EpisodeRecords`),
    asked only for the episodes of new or changed uploads; without it every such upload runs."""
    seen = load_cursor(cursor)
    out = UploadScan()
    present = {}
    now = time.time() if now is None else now
    for obj in store.list_videos():
        if obj.modified and now - obj.modified < SETTLE_S and seen.get(obj.key) != obj.stamp:
            # not in the next cursor: the next tick looks at it again
            log.info(f"{obj.key}: written {now - obj.modified:.1f} s ago, still being copied; "
                     "left for the next tick")
            continue
        present[obj.key] = obj.stamp
        if seen.get(obj.key) == obj.stamp:
            continue
        try:
            ep_id = parse_video_key(obj.key)
        except InvalidEpIdError as exc:
            log.warning(f"skipping {obj.key!r}: {exc}")
            out.skipped[obj.key] = str(exc)
            continue
        version = store.video_version(ep_id)
        if version is None:  # deleted between the listing and now; next tick will tell
            present.pop(obj.key)
            continue
        known = ep_id in known_episodes
        plan = plan_upload(version, records(ep_id) if known and records is not None else None)
        if plan.action == "wait":  # not in the next cursor: the next tick looks at it again
            present.pop(obj.key)
            out.waiting[obj.key] = f"{ep_id}: {plan.reason}"
            log.info(f"{obj.key}: {ep_id}: {plan.reason}")
            continue
        if plan.action == "skip":
            out.up_to_date[obj.key] = f"{ep_id}: {plan.reason}"
            log.info(f"{obj.key}: no run, {ep_id}: {plan.reason}")
            continue
        if not known and ep_id not in out.new_episodes:
            out.new_episodes.append(ep_id)
            # a new episode's edits file and show facebank are observed before its first run,
            # so that a later edit or facebank build makes cast_links stale (see
            # ensure_edits_observed)
            out.observations.append(AssetObservation(
                asset_key=AssetKey("identity_edits"), partition=ep_id,
                tags={DATA_VERSION_TAG: edits_version(read_edits(store, ep_id))}))
            out.observations.append(AssetObservation(
                asset_key=AssetKey("show_facebank"), partition=ep_id,
                tags={DATA_VERSION_TAG: facebank_version(
                    read_facebank(store, parse_ep_id(ep_id).show))}))
        out.observations.append(AssetObservation(
            asset_key=AssetKey("episode_video"), partition=ep_id,
            tags={DATA_VERSION_TAG: version},
            metadata={"key": obj.key, "bytes": obj.size}))
        out.run_requests.append(RunRequest(
            run_key=f"{obj.key}@{version}", partition_key=ep_id,
            asset_selection=None if plan.assets is None
            else [AssetKey.from_user_string(a) for a in plan.assets],
            tags={"screenalytics/upload": obj.key, "screenalytics/video_version": version}))
        log.info(f"{obj.key}: version {version}, {plan.reason}: requesting a run of {ep_id}"
                 + ("" if plan.assets is None else f" ({', '.join(plan.assets)})"))
    # keys that disappeared leave the cursor, so a later re-upload counts as new
    out.cursor = json.dumps(present, sort_keys=True, separators=(",", ":"))
    return out


def skip_message(skipped: dict[str, str], limit: int = 5,
                 up_to_date: dict[str, str] | None = None,
                 waiting: dict[str, str] | None = None) -> str:
    """The reason a tick launched nothing, naming up to ``limit`` keys of each kind and why:
    uploads whose episode is up to date, uploads left for a later tick, keys skipped (shown in
    the sensor's tick history)."""
    up_to_date, waiting = up_to_date or {}, waiting or {}
    msg = ("no upload needs a run" if up_to_date or waiting
           else "no new or changed uploads under videos/")
    for found, verb in ((up_to_date, "no run for"), (waiting, "later"), (skipped, "skipped")):
        if found:
            reasons = [f"{verb} {why}" if key in why else f"{verb} {key!r}: {why}"
                       for key, why in list(found.items())[:limit]]
            more = len(found) - limit
            msg += "; " + "; ".join(reasons) + (f"; and {more} more keys" if more > 0 else "")
    return msg


def _tick(context: SensorEvaluationContext, storage: StorageResource):
    instance = context.instance
    repository = context.repository_def
    running: set[str] | None = None

    def records(ep_id: str) -> EpisodeRecords:
        nonlocal running
        if running is None:  # one query per tick, and only when an upload needs it
            running = partitions_in_progress(instance)
        return EpisodeRecords(
            frozenset(consumed_video_versions(repository, instance, ep_id)),
            tuple(k.to_user_string() for k in stale_selection(repository, instance, ep_id)),
            ep_id in running)

    scan = scan_uploads(storage.store(), context.cursor,
                        set(instance.get_dynamic_partitions(EPISODES_PARTITION)), context.log,
                        records=records if repository is not None else None)
    # the episodes, seasons and shows to add: the same registration as every other entry point
    requests = [AddDynamicPartitionsRequest(name, keys) for name, keys in
                missing_partitions(instance, scan.new_episodes).items()]
    if not scan.run_requests and not requests:
        return SensorResult(skip_reason=SkipReason(skip_message(
            scan.skipped, up_to_date=scan.up_to_date, waiting=scan.waiting)),
            cursor=scan.cursor)
    return SensorResult(run_requests=scan.run_requests, dynamic_partitions_requests=requests,
                        asset_events=scan.observations, cursor=scan.cursor)


def build_upload_sensor(name: str, job_name: str, description: str,
                        minimum_interval_seconds: int = 30, running: bool = False
                        ) -> SensorDefinition:
    """An upload sensor named ``name`` that requests runs of ``job_name`` at most every
    ``minimum_interval_seconds`` seconds. Stopped by default (``running=False``): turn it on in
    the UI, or start it with ``screenalytics serve``; a running ``dagster-daemon`` evaluates it."""

    @sensor(name=name, job_name=job_name, description=description,
            minimum_interval_seconds=minimum_interval_seconds,
            default_status=DefaultSensorStatus.RUNNING if running
            else DefaultSensorStatus.STOPPED)
    def _sensor(context: SensorEvaluationContext, storage: StorageResource):
        return _tick(context, storage)

    return _sensor


def upload_sensor_for(backend: str, job_name: str, minimum_interval_seconds: int = 30,
                      running: bool = False) -> SensorDefinition:
    """The sensor matching the storage backend (``s3`` or ``local``); see
    :func:`build_upload_sensor` for the other arguments."""
    if backend == "s3":
        return build_upload_sensor(
            "s3_upload_sensor", job_name,
            "Polls the bucket's videos/ prefix; a new or changed videos/{ep_id}/episode.mp4 "
            "(by ETag) registers the episode and runs its assets.",
            minimum_interval_seconds, running)
    return build_upload_sensor(
        "local_video_sensor", job_name,
        "Polls <data root>/videos/; a new or changed videos/{ep_id}/episode.mp4 (by size and "
        "mtime; data version = sha256) registers the episode and runs its assets.",
        minimum_interval_seconds, running)
