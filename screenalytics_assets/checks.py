"""Asset checks: invariants that must hold before an artifact flows downstream.

Blocking checks stop the run (and so the downstream assets) when they fail. The invariants
themselves are plain functions in ``core.validation``.
"""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetIn,
    MetadataValue,
)

from resources.dagster_storage import StorageResource
from resources.facebank import read_facebank
from resources.integrity import problems as integrity_problems
from resources.models import FaceModelsResource

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
from .preview import partitioned_asset_check


def _result(problems: list[str], **metadata) -> AssetCheckResult:
    return AssetCheckResult(
        passed=not problems, severity=AssetCheckSeverity.ERROR,
        description="; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)"
                                               if len(problems) > 5 else "") or None,
        metadata={"problems": len(problems), **metadata})


@partitioned_asset_check(asset="embeddings", blocking=True, partitions_def=episode_partitions,
             description="Embeddings have the model's dimension, are finite and unit-norm.")
def embeddings_are_unit_vectors(embeddings: FaceEmbeddings,
                                models: FaceModelsResource) -> AssetCheckResult:
    dim = models.load().embedding_dim
    return _result(embedding_problems(embeddings.vectors, dim), dim=dim,
                   faces=len(embeddings.vectors))


@partitioned_asset_check(asset="tracks", blocking=True, partitions_def=episode_partitions,
             description="Every track's frames increase and stay inside one shot.")
def tracks_stay_in_one_shot(tracks: TrackSet) -> AssetCheckResult:
    return _result(track_problems(tracks.tracks, tracks.shots), tracks=len(tracks.tracks))


@partitioned_asset_check(asset="identities", blocking=True, partitions_def=episode_partitions,
             additional_ins={"tracks": AssetIn("tracks")},
             description="Every track belongs to exactly one identity.")
def every_track_in_one_identity(identities: IdentitySet, tracks: TrackSet) -> AssetCheckResult:
    members = {i.identity_id: i.track_ids for i in identities.identities}
    return _result(membership_problems([t.track_id for t in tracks.tracks], members),
                   identities=len(members))


@partitioned_asset_check(asset="screentime", blocking=True, partitions_def=episode_partitions,
             description="No one's screen time exceeds the episode's duration.")
def screentime_within_duration(screentime: ScreenTimeReport) -> AssetCheckResult:
    seconds = {p.identity_id: p.seconds for p in screentime.people}
    return _result(screentime_problems(seconds, screentime.duration_s),
                   duration_s=round(screentime.duration_s, 3))


@partitioned_asset_check(asset="facebank", blocking=True, partitions_def=show_partitions,
                         description="The facebank was built; a cast member without a usable "
                                     "face in any photo is a warning naming the photos (their "
                                     "screen time stays unknown).")
def facebank_has_a_face_per_cast_member(context: AssetCheckExecutionContext,
                                        storage: StorageResource) -> AssetCheckResult:
    fb = read_facebank(storage.store(), context.partition_key)
    if fb is None:
        return _result([f"no facebank built for show {context.partition_key!r}"])
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


def files_intact_check(asset: str) -> AssetChecksDefinition:
    """``{asset}_files_intact``: the asset's stored files still match the sha256 and row counts
    recorded in its integrity manifest when they were written (``resources.integrity``).

    It runs after every materialization (a failure names each file, what is wrong with it, and
    the command that rebuilds it); files damaged later are caught when they are loaded and by
    ``screenalytics run --stale-only`` (``resources.integrity``).
    """

    @partitioned_asset_check(asset=asset, name=f"{asset}_files_intact", blocking=True,
                             partitions_def=episode_partitions,
                             description=f"The stored files of {asset} match the sha256 and row "
                                         "counts recorded when they were written.")
    def _check(context: AssetCheckExecutionContext, storage: StorageResource) -> AssetCheckResult:
        ep_id = context.partition_key
        found = integrity_problems(storage.store(), ep_id, asset)
        return _result([f"{uri}: {why}; rebuild with `{rebuild_command(ep_id)}`"
                        for uri, why in found.items()], files=len(CODECS[asset].files))

    return _check


INTEGRITY_CHECKS: list[AssetChecksDefinition] = [files_intact_check(a) for a in CODECS]

ASSET_CHECKS: list[AssetChecksDefinition] = [
    embeddings_are_unit_vectors, tracks_stay_in_one_shot, every_track_in_one_identity,
    screentime_within_duration, facebank_has_a_face_per_cast_member, *INTEGRITY_CHECKS,
]
