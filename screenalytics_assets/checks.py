"""Asset checks: invariants that must hold before an artifact flows downstream.

Every episode asset evaluates its checks in its own step (``check_specs`` from
:func:`episode_check_specs` on the asset, results from :func:`checked`): first the invariants on
the value it computed (plain functions in ``core.validation``), then ``{asset}_files_intact`` on
the files the IO manager has just written. All are blocking: a failure stops the run before the
downstream assets. They run in the asset's step rather than as ``@asset_check`` steps of their
own because each step is paid for in Dagster events, and on the cluster in a Celery task with its
own process: the 12 check steps were 60 of a run's 155 event-log rows (about 25 ms each with the
embedded SQLite storage on a 2-core machine) and 12 of its 20 steps, and several loaded their
asset's value again from storage to look at it.

The facebank's check (a warning, on the show partition) stays an ``@asset_check`` of its own.
"""

from collections.abc import Iterator

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MetadataValue,
    Output,
)

from resources.dagster_storage import StorageResource
from resources.facebank import read_facebank
from resources.integrity import problems as integrity_problems

from .core.artifacts import CODECS, FaceEmbeddings, IdentitySet, ScreenTimeReport, TrackSet
from .core.facebank import all_cast_ids
from .core.integrity import rebuild_command
from .core.validation import (
    embedding_problems,
    membership_problems,
    screentime_problems,
    track_problems,
)
from .partitions import episode_partitions, show_partitions
from .preview import partitioned_asset_check, partitioned_check_spec

#: Per episode asset, its invariant checks (name -> description); every asset in ``CODECS`` also
#: has ``{asset}_files_intact``.
INVARIANTS: dict[str, dict[str, str]] = {
    "tracks": {"tracks_stay_in_one_shot":
               "Every track's frames increase and stay inside one shot."},
    "embeddings": {"embeddings_are_unit_vectors":
                   "Embeddings have the model's dimension, are finite and unit-norm."},
    "identities": {"every_track_in_one_identity":
                   "Every track belongs to exactly one identity."},
    "screentime": {"screentime_within_duration":
                   "No one's screen time exceeds the episode's duration."},
}


def episode_check_specs(asset: str) -> list[AssetCheckSpec]:
    """The blocking checks the episode asset ``asset`` evaluates in its step: its invariants
    (:data:`INVARIANTS`) and, for an asset with stored files, ``{asset}_files_intact``."""
    checks = dict(INVARIANTS.get(asset, {}))
    if asset in CODECS:
        checks[f"{asset}_files_intact"] = (f"The stored files of {asset} match the sha256 and "
                                           "row counts recorded when they were written.")
    return [partitioned_check_spec(name, asset=asset, blocking=True, description=text,
                                   partitions_def=episode_partitions)
            for name, text in checks.items()]


#: What an episode asset yields (its return annotation): its output, then its checks' results.
Checked = Iterator[Output | AssetCheckResult]


def checked(context: AssetExecutionContext, storage: StorageResource, value,
            *invariants: AssetCheckResult) -> Checked:
    """What an episode asset yields at its end: ``value`` as its output, then the results of its
    checks, ``invariants`` (computed on ``value``) and :func:`files_intact`.

    Dagster hands a yielded output to the IO manager before the asset's body goes on, so
    ``files_intact`` reads the files as they were stored."""
    yield Output(value)
    yield from invariants
    yield files_intact(storage, context.partition_key, context.asset_key.path[-1])


def _result(name: str, problems: list[str], **metadata) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=name, passed=not problems, severity=AssetCheckSeverity.ERROR,
        description="; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)"
                                               if len(problems) > 5 else "") or None,
        metadata={"problems": len(problems), **metadata})


def files_intact(storage: StorageResource, ep_id: str, asset: str) -> AssetCheckResult:
    """``{asset}_files_intact``: the asset's stored files match the sha256 and row counts
    recorded in its integrity manifest when they were written (``resources.integrity``).

    A failure names each file, what is wrong with it, and the command that rebuilds it; files
    damaged later are caught when they are loaded and by ``screenalytics run --stale-only``."""
    found = integrity_problems(storage.store(), ep_id, asset)
    return _result(f"{asset}_files_intact",
                   [f"{uri}: {why}; rebuild with `{rebuild_command(ep_id)}`"
                    for uri, why in found.items()], files=len(CODECS[asset].files))


def embeddings_are_unit_vectors(embeddings: FaceEmbeddings, dim: int) -> AssetCheckResult:
    """``embeddings_are_unit_vectors``: ``embeddings.vectors`` is float [n_faces, ``dim``],
    finite and unit-norm."""
    return _result("embeddings_are_unit_vectors", embedding_problems(embeddings.vectors, dim),
                   dim=dim, faces=len(embeddings.vectors))


def tracks_stay_in_one_shot(tracks: TrackSet) -> AssetCheckResult:
    """``tracks_stay_in_one_shot``: every track's frames increase and stay inside its shot."""
    return _result("tracks_stay_in_one_shot", track_problems(tracks.tracks, tracks.shots),
                   tracks=len(tracks.tracks))


def every_track_in_one_identity(identities: IdentitySet, tracks: TrackSet) -> AssetCheckResult:
    """``every_track_in_one_identity``: every track of ``tracks`` is in exactly one identity."""
    members = {i.identity_id: i.track_ids for i in identities.identities}
    return _result("every_track_in_one_identity",
                   membership_problems([t.track_id for t in tracks.tracks], members),
                   identities=len(members))


def screentime_within_duration(screentime: ScreenTimeReport) -> AssetCheckResult:
    """``screentime_within_duration``: no one's seconds exceed the episode's duration."""
    seconds = {p.identity_id: p.seconds for p in screentime.people}
    return _result("screentime_within_duration",
                   screentime_problems(seconds, screentime.duration_s),
                   duration_s=round(screentime.duration_s, 3))


@partitioned_asset_check(asset="facebank", blocking=True, partitions_def=show_partitions,
                         description="The facebank was built; a cast member without a usable "
                                     "face in any photo is a warning naming the photos (their "
                                     "screen time stays unknown).")
def facebank_has_a_face_per_cast_member(context: AssetCheckExecutionContext,
                                        storage: StorageResource) -> AssetCheckResult:
    fb = read_facebank(storage.store(), context.partition_key)
    if fb is None:
        return _result("facebank_has_a_face_per_cast_member",
                       [f"no facebank built for show {context.partition_key!r}"])
    missing = sorted(set(all_cast_ids(fb)) - set(fb.cast_ids))
    photos = {c: [p.split("/", 1)[1] for p in fb.no_face if p.split("/", 1)[0] == c]
              for c in missing}
    problems = [f"cast member {c}: no photo with a detectable face "
                f"({', '.join(f'{c}/{p}' for p in photos[c]) or 'no photo'}); replace "
                f"{'it' if len(photos[c]) == 1 else 'them'} with a clear frontal photo "
                f"(`screenalytics facebank add {fb.show} {c} PHOTO`)" for c in missing]
    # A warning, not an error: the other cast members still link, so episodes must not fail.
    return AssetCheckResult(
        passed=not problems, severity=AssetCheckSeverity.WARN,
        description="; ".join(problems) or None,
        metadata={"problems": len(problems), "cast_members": len(fb.cast_ids),
                  "photos_without_face": len(fb.no_face),
                  "without_face": MetadataValue.json(fb.no_face)})


#: The checks that are steps of their own (the episode assets' checks run in their steps).
ASSET_CHECKS: list[AssetChecksDefinition] = [facebank_has_a_face_per_cast_member]
