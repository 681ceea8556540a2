"""Cast assets: a show's facebank, the reviewer's edits of an episode, and the episode's links of
identities to cast members."""

# No ``from __future__ import annotations``: Dagster reads the annotations of the asset functions
# (config and resource parameters) at definition time.

import hashlib

import pandas as pd
from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetSelection,
    AssetObservation,
    AssetsDefinition,
    DagsterInstance,
    DataVersion,
    DataVersionsByPartition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from resources.dagster_storage import StorageResource
from resources.edits import read_edits
from resources.facebank import read_facebank, read_photos, write_facebank
from resources.models import FaceModelsResource

from ..core.artifacts import CastLinks, FaceEmbeddings, IdentitySet, TrackSet
from ..core.cast_links import link_quality
from ..core.ep_id import parse_ep_id, validate_show
from ..core.episode import link_cast
from ..core.facebank import all_cast_ids, build_facebank, dump_facebank, photo_det_sizes
from ..core.review import EDITS_FILE, edits_version, parse_edits
from ..partitions import EPISODES_PARTITION, episode_partitions, show_partitions
from ..preview import observable_source
from ..settings import Settings
from .common import (
    EPISODE_AUTOMATION,
    MODEL_POOL,
    effective_settings,
    preview,
    stage_config,
    stage_kwargs,
    stage_metadata,
    timed,
)

GROUP = "cast"


@observable_source(
    name="identity_edits",
    partitions_def=episode_partitions,
    group_name=GROUP,
    description="The reviewer's edits of an episode's identities (manifests/{ep_id}/"
                f"{EDITS_FILE}); data version = hash of the file. `screenalytics review` "
                "records a new version after each edit.",
)
def identity_edits(context, storage: StorageResource) -> DataVersionsByPartition:
    """Observe every registered episode's edits file and report its hash."""
    store = storage.store()
    return DataVersionsByPartition({
        ep_id: DataVersion(edits_version(read_edits(store, ep_id)))
        for ep_id in context.instance.get_dynamic_partitions(EPISODES_PARTITION)})


def record_edits_version(instance: DagsterInstance, ep_id: str, data: bytes | None) -> str:
    """Record an observation of ``identity_edits`` for ``ep_id`` with the file's data version, so
    cast_links and screentime show as stale right after an edit. Returns the version."""
    version = edits_version(data)
    instance.report_runless_asset_event(AssetObservation(
        asset_key=identity_edits.key, partition=ep_id,
        tags={"dagster/data_version": version},
        metadata={"edits": len(parse_edits(data))}))
    return version


def ensure_edits_observed(instance: DagsterInstance, store, ep_id: str) -> None:
    """Record the edits file's version for ``ep_id`` if it was never observed.

    Run this before the episode's first materialization: Dagster compares a partitioned
    dependency's versions from the observation cast_links read onwards, so a cast_links made
    before any observation would never turn stale on a later edit.
    """
    if instance.get_latest_data_version_record(identity_edits.key, True, ep_id) is None:
        record_edits_version(instance, ep_id, read_edits(store, ep_id))


def build_cast_assets(settings: Settings) -> list[AssetsDefinition]:
    """The facebank (per show) and cast_links (per episode) assets."""

    @asset(name="facebank", partitions_def=show_partitions,
           code_version=settings.code_version("facebank"), group_name=GROUP, pool=MODEL_POOL,
           description="Reference embeddings of a show's cast from the photos in "
                       "facebank/{show}/{cast_id}/: largest face per photo, norm_crop-aligned, "
                       "embedded with the episodes' model pack.",
           metadata={"settings": MetadataValue.json(settings.for_asset("facebank")),
                     "profile": settings.profile})
    def facebank(context: AssetExecutionContext, models: FaceModelsResource,
                 storage: StorageResource) -> MaterializeResult:
        show = validate_show(context.partition_key)
        s = settings.for_asset("facebank")
        store = storage.store()
        m = models.load()
        with timed() as t:
            photos = read_photos(store, show)
            fb = build_facebank(show, photos, m.detector, m.recognizer, m.pack,
                                det_sizes=photo_det_sizes(s["facebank_det_size"]),
                                det_thresh=s["facebank_det_thresh"])
        uris = write_facebank(store, show, fb)
        if fb.no_face:
            context.log.warning(f"no face found in cast photos {', '.join(fb.no_face)}; they "
                                "are not used: replace them with clearer photos")
        without = sorted(set(all_cast_ids(fb)) - set(fb.cast_ids))
        blob = b"".join(dump_facebank(fb).values())
        return MaterializeResult(
            metadata={
                "runtime_s": round(t["seconds"], 3),
                "settings_used": MetadataValue.json(s),
                "path": MetadataValue.path(uris[0]),
                "cast_members": len(fb.cast_ids),
                "photos": len(photos),
                "references": len(fb.ref_photo),
                "photos_without_face": MetadataValue.json(fb.no_face),
                "cast_without_reference": MetadataValue.json(without),
                "model_pack": m.pack,
                "photo_table": MetadataValue.md(pd.DataFrame(fb.photos).to_markdown(index=False)),
            },
            data_version=DataVersion(hashlib.sha256(blob).hexdigest()[:16]))

    Config = stage_config(settings, "cast_links")

    # The facebank is partitioned by show, cast_links by episode. Dagster's built-in partition
    # mappings cannot map an episode key to its show key between two dynamic partition sets
    # (only identity, all, last, static, time-window and multi-dimension mappings are built in,
    # and custom mappings are not supported by the UI and daemon). So the dependency is declared
    # with AllPartitionMapping, which gives lineage and marks cast_links stale when a facebank is
    # rebuilt (any show's, which over-approximates), and the asset loads its own show's facebank
    # through the store (resources.facebank) rather than as an input.
    @asset(**{**stage_kwargs(settings, "cast_links", "Identities linked to the show's cast "
                             "(many-to-one: co-occurring identities never share a cast member; "
                             "optimal over all tracks' embeddings above cast_link_thresh) with ranked "
                             "suggestions, and the reviewer's edits applied."),
              "group_name": GROUP,
              # a show without a facebank (or another show's) must not hold automation back
              "automation_condition": EPISODE_AUTOMATION.ignore(AssetSelection.assets("facebank"))},
           deps=[AssetDep(facebank, partition_mapping=AllPartitionMapping()), identity_edits])
    def cast_links(context: AssetExecutionContext, config: Config, storage: StorageResource,
                   identities: IdentitySet, tracks: TrackSet,
                   embeddings: FaceEmbeddings) -> CastLinks:
        s = effective_settings(settings, config, "cast_links")
        ep_id = context.partition_key
        show = parse_ep_id(ep_id).show
        store = storage.store()
        with timed() as t:
            fb = read_facebank(store, show)
            if fb is None:
                context.log.warning(
                    f"show {show!r} has no facebank: every identity stays unknown. Add one with "
                    f"`screenalytics facebank add {show} CAST_ID PHOTO...`")
            result = link_cast(ep_id, show, identities, tracks, embeddings, fb,
                               settings.model_pack, s["cast_link_thresh"],
                               read_edits(store, ep_id), store.file_uri(ep_id, EDITS_FILE))
            quality = link_quality(result.auto, {i.identity_id: len(i.track_ids)
                                                 for i in identities.identities})
        review = result.review
        for skip in review.skipped:
            context.log.warning(f"review edit {skip['index']} ({skip['op']}) not applied: "
                                f"{skip['reason']}")
        linked = [i for i in review.identities if i.cast_id]
        stage_metadata(
            context, settings, "cast_links", s, config, t["seconds"], facebank=result.facebank,
            identities=len(review.identities), linked=len(linked),
            unknown=len(review.identities) - len(linked),
            cast_not_linked=MetadataValue.json(
                sorted(set(result.cast_ids) - {i.cast_id for i in linked})),
            edits=len(review.applied) + len(review.skipped), edits_applied=len(review.applied),
            edits_skipped=len(review.skipped),
            skipped_edits=MetadataValue.json(review.skipped),
            edits_version=result.edits_version,
            cluster_quality=MetadataValue.json(quality),
            preview=preview([{"identity_id": i.identity_id, "name": i.name, "cast_id": i.cast_id,
                              "source": i.link_source, "score": i.score,
                              "margin": (round(i.suggestions[0]["score"]
                                               - i.suggestions[1]["score"], 4)
                                         if len(i.suggestions) > 1 else None),
                              "best_suggestion": (f"{i.suggestions[0]['cast_id']} "
                                                  f"({i.suggestions[0]['score']:.2f})"
                                                  if i.suggestions else None),
                              "tracks": len(i.track_ids)} for i in review.identities], 50))
        return result

    return [facebank, cast_links]
