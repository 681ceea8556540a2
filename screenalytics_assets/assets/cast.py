"""Cast assets: a show's facebank, the reviewer's edits of an episode, the version of the
episode's show's facebank, and the episode's links of identities to cast members."""

# No ``from __future__ import annotations``: Dagster reads the annotations of the asset functions
# (config and resource parameters) at definition time.

from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetObservation,
    AssetRecordsFilter,
    AssetSelection,
    AssetSpec,
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
from resources.facebank import (
    read_facebank,
    read_photos,
    read_reviewed,
    show_facebank_version,
    write_facebank,
)
from resources.models import FaceModelsResource

from ..checks import Checked, checked
from ..core.artifacts import CastLinks, FaceEmbeddings, IdentitySet, TrackSet
from ..core.cast_links import link_quality
from ..core.ep_id import parse_ep_id, validate_show
from ..core.episode import link_cast
from ..core.facebank import (
    all_cast_ids,
    build_facebank,
    facebank_version,
    photo_det_sizes,
    with_reviewed,
)
from ..core.review import EDITS_FILE, edits_version, parse_edits
from ..partitions import EPISODES_PARTITION, episode_partitions, show_episodes, show_partitions
from ..preview import observable_source
from ..settings import Settings
from ..staleness import DATA_VERSION_TAG
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
        tags={DATA_VERSION_TAG: version},
        metadata={"edits": len(parse_edits(data))}))
    return version


#: The facebank of each episode's show, one partition per episode. The facebank is partitioned by
#: show and cast_links by episode; Dagster's built-in partition mappings cannot map an episode to
#: its show between two dynamic partition sets, and a custom PartitionMapping is not public API
#: (deprecated, ignored by the UI and daemon). So cast_links depends on this external asset
#: (identity mapping), whose version per episode is its show's facebank version (the photos'
#: references and the reviewed ones, ``resources.facebank.show_facebank_version``), recorded when
#: that facebank is built and when a reviewed reference is added or removed: either marks only
#: that show's episodes stale.
#: Its own dependency on every facebank partition is lineage only (an external asset is never
#: stale).
show_facebank = AssetSpec(
    "show_facebank", partitions_def=episode_partitions, group_name=GROUP,
    deps=[AssetDep("facebank", partition_mapping=AllPartitionMapping())],
    description="The version of the facebank of the episode's show: observed per episode when "
                "that show's facebank is built, so only its episodes' cast_links turn stale.")


def record_facebank_version(instance: DagsterInstance, ep_ids: list[str], version: str) -> None:
    """Record ``version`` (:func:`~..core.facebank.facebank_version`) as the ``show_facebank``
    of each episode of ``ep_ids``."""
    for ep_id in ep_ids:
        instance.report_runless_asset_event(AssetObservation(
            asset_key=show_facebank.key, partition=ep_id, tags={DATA_VERSION_TAG: version}))


def record_reviewed_change(instance: DagsterInstance, store, show: str) -> list[str]:
    """After a reviewed reference of ``show`` was added or removed: record the show's new
    facebank version for its episodes, so their cast_links (and screentime) turn stale and
    nothing else. Returns the episodes."""
    episodes = show_episodes(instance, show)
    record_facebank_version(instance, episodes, show_facebank_version(store, show))
    return episodes


def _observed(instance: DagsterInstance, key, ep_id: str) -> bool:
    return bool(instance.fetch_observations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[ep_id]), limit=1).records)


def ensure_edits_observed(instance: DagsterInstance, store, ep_id: str) -> None:
    """Record the versions of the edits file and of the show's facebank for ``ep_id`` where
    they were never observed.

    Run this before the episode's first materialization: Dagster compares a partitioned
    dependency's versions from the observation cast_links read onwards, so a cast_links made
    before any observation would never turn stale on a later edit or facebank build.
    """
    if not _observed(instance, identity_edits.key, ep_id):
        record_edits_version(instance, ep_id, read_edits(store, ep_id))
    if not _observed(instance, show_facebank.key, ep_id):
        record_facebank_version(
            instance, [ep_id], show_facebank_version(store, parse_ep_id(ep_id).show))


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
        import pandas as pd  # imported when the facebank is built, not at planning

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
        # what the episodes link against: these references and the reviewed ones
        version = facebank_version(with_reviewed(fb, read_reviewed(store, show))[0])
        episodes = show_episodes(context.instance, show)
        record_facebank_version(context.instance, episodes, version)
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
            data_version=DataVersion(version))

    Config = stage_config(settings, "cast_links")

    # cast_links reads its own show's facebank through the store (resources.facebank); the
    # dependency on it goes through show_facebank (see above).
    @asset(**{**stage_kwargs(settings, "cast_links", "Identities linked to the show's cast "
                             "(many-to-one: co-occurring identities never share a cast member; "
                             "only clear links: above cast_link_thresh and ahead of the runner-up "
                             "by cast_link_margin, with the episode's linked identities as extra "
                             "references; the rest needs_review) with ranked suggestions, and the "
                             "reviewer's edits applied."),
              "group_name": GROUP,
              # a show without a facebank (or another show's) must not hold automation back
              "automation_condition": EPISODE_AUTOMATION.ignore(
                  AssetSelection.assets(show_facebank.key))},
           deps=[show_facebank, identity_edits])
    def cast_links(context: AssetExecutionContext, config: Config, storage: StorageResource,
                   identities: IdentitySet, tracks: TrackSet,
                   embeddings: FaceEmbeddings) -> Checked:
        s = effective_settings(settings, config, "cast_links")
        ep_id = context.partition_key
        show = parse_ep_id(ep_id).show
        store = storage.store()
        with timed() as t:
            fb, left_out = with_reviewed(read_facebank(store, show), read_reviewed(store, show))
            if left_out:
                context.log.warning(
                    f"reviewed references {', '.join(left_out)} were made with another model "
                    f"pack than the facebank's and are not used; remove them with "
                    f"`screenalytics facebank remove-reviewed {show} NAME`")
            if fb is None:
                context.log.warning(
                    f"show {show!r} has no facebank: every identity stays unknown. Add one with "
                    f"`screenalytics facebank add {show} CAST_ID PHOTO...`")
            result = link_cast(ep_id, show, identities, tracks, embeddings, fb,
                               settings.model_pack, s["cast_link_thresh"],
                               read_edits(store, ep_id), store.file_uri(ep_id, EDITS_FILE),
                               s["cast_link_margin"])
            quality = link_quality(result.auto, {i.identity_id: len(i.track_ids)
                                                 for i in identities.identities})
        review = result.review
        for skip in review.skipped:
            context.log.warning(f"review edit {skip['index']} ({skip['op']}) not applied: "
                                f"{skip['reason']}")
        linked = [i for i in review.identities if i.cast_id]
        stage_metadata(
            context, settings, "cast_links", s, config, t["seconds"], facebank=result.facebank,
            reviewed_references=sum(p.startswith("reviewed/") for p in fb.ref_photo) if fb else 0,
            identities=len(review.identities), linked=len(linked),
            unknown=len(review.identities) - len(linked),
            needs_review=sum(1 for i in review.identities if i.needs_review),
            auto_linked=quality["linked"], auto_linked_from_episode=quality["linked_from_episode"],
            auto_needs_review=quality["needs_review"], auto_unlinked=quality["unlinked"],
            cast_not_linked=MetadataValue.json(
                sorted(set(result.cast_ids) - {i.cast_id for i in linked})),
            edits=len(review.applied) + len(review.skipped), edits_applied=len(review.applied),
            edits_skipped=len(review.skipped),
            skipped_edits=MetadataValue.json(review.skipped),
            edits_version=result.edits_version,
            cluster_quality=MetadataValue.json(quality),
            preview=preview([{"identity_id": i.identity_id, "name": i.name, "cast_id": i.cast_id,
                              "source": i.link_source, "score": i.score,
                              "needs_review": i.needs_review,
                              "margin": (round(i.suggestions[0]["score"]
                                               - i.suggestions[1]["score"], 4)
                                         if len(i.suggestions) > 1 else None),
                              "best_suggestion": (f"{i.suggestions[0]['cast_id']} "
                                                  f"({i.suggestions[0]['score']:.2f})"
                                                  if i.suggestions else None),
                              "tracks": len(i.track_ids)} for i in review.identities], 50))
        yield from checked(context, storage, result)

    return [facebank, cast_links]
