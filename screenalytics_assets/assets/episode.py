"""The episode asset graph: detections -> tracks -> faces -> embeddings -> identities ->
track_reps, and screentime (from the reviewed, cast-linked identities of ``cast_links``). One
partition per ep_id.

One small builder per asset: each takes the settings in force (its code version hashes the ones
it reads, its run config defaults to them) and returns the asset, which reads its inputs, calls
one function of ``core`` and reports metadata, then yields the result, which the IO manager
writes, and its checks' results (``checks.checked``).
"""


import numpy as np
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    DataVersion,
    DataVersionsByPartition,
    MetadataValue,
    asset,
)

from resources.dagster_storage import StorageResource
from resources.models import FaceModelsResource

from ..checks import (
    Checked,
    checked,
    embeddings_are_unit_vectors,
    every_track_in_one_identity,
    screentime_within_duration,
    tracks_stay_in_one_shot,
)
from ..core.artifacts import (
    CastLinks,
    FaceEmbeddings,
    FaceSet,
    IdentitySet,
    ScreenTimeReport,
    TrackRepSet,
    TrackSet,
    spool_array,
)
from ..core.clustering import ClusteringParams
from ..core.detect import EpisodeScan, scan_episode, scan_options
from ..core.detection_crops import CropCache, CropWriter, crops_path
from ..core.embedding import embed_faces
from ..core.episode import identify, representatives, screentime_report
from ..core.sampling import ALIGNED_SIZE, extract_faces, select_samples
from ..core.tracking import TrackingParams, track_detections
from ..partitions import EPISODES_PARTITION, episode_partitions
from ..preview import observable_source
from ..progress import reporter
from ..settings import Settings
from .common import effective_settings, preview, stage_config, stage_kwargs, stage_metadata, timed
from .presentation import screentime_metadata


@observable_source(
    name="episode_video",
    partitions_def=episode_partitions,
    group_name="episode",
    description="The uploaded episode video (videos/{ep_id}/episode.mp4); its data version is the "
                "content hash (local) or ETag (S3).",
)
def episode_video(context, storage: StorageResource) -> DataVersionsByPartition:
    """Observe every registered episode's video and report its content version."""
    versions = storage.store().video_versions(
        context.instance.get_dynamic_partitions(EPISODES_PARTITION))
    return DataVersionsByPartition({ep: DataVersion(v) for ep, v in versions.items()})


def build_episode_assets(settings: Settings) -> list[AssetsDefinition]:
    """The seven episode assets, with code versions and run config defaults from ``settings``."""
    return [build(settings) for build in (
        detections_asset, tracks_asset, faces_asset, embeddings_asset, identities_asset,
        track_reps_asset, screentime_asset)]


def detections_asset(settings: Settings) -> AssetsDefinition:
    Config = stage_config(settings, "detections")

    @asset(**stage_kwargs(settings, "detections", "Faces (SCRFD, 5 landmarks) on every "
                          "stride-th frame, and shot cuts (PySceneDetect content detector)."),
           deps=[episode_video])
    def detections(context: AssetExecutionContext, config: Config,
                   models: FaceModelsResource, storage: StorageResource) -> Checked:
        s = effective_settings(settings, config, "detections")
        m = models.load()
        store = storage.store()
        path = store.video_path(context.partition_key)
        # the faces stage takes its crops from here instead of decoding the episode again
        crops = CropWriter(crops_path(store.spool_dir(), context.partition_key))
        with timed() as t:
            try:
                scan = scan_episode(
                    path, m.detector, **scan_options(s),
                    progress=reporter("detections", context.log.info), workers=m.parallel_calls,
                    crops=crops)
            except BaseException:
                crops.discard()
                raise
            crops.commit()
        d = scan.detections
        stage_metadata(
            context, settings, "detections", s, config, t["seconds"],
            frames_decoded=scan.video.n_frames, frames_processed=scan.frames_processed,
            stride_used=scan.stride,
            frames_per_second=round(scan.video.n_frames / max(t["seconds"], 1e-9), 1),
            video_seconds_per_second=round(scan.video.duration_s / max(t["seconds"], 1e-9), 2),
            detections=len(d), shots=len(scan.shots),
            duration_s=round(scan.video.duration_s, 3), fps=round(scan.video.fps, 3),
            model_pack=m.pack, execution_provider=m.provider,
            detector_input=f"{scan.det_input[0]}x{scan.det_input[1]}",
            onnxruntime_session=MetadataValue.json(m.session_options),
            shot_table=preview([sh.to_dict() for sh in scan.shots], 50),
            faces_per_shot=MetadataValue.json(
                {int(sh.shot_id): int((d.shot_id == sh.shot_id).sum()) for sh in scan.shots}))
        yield from checked(context, storage, scan)

    return detections


def tracks_asset(settings: Settings) -> AssetsDefinition:
    Config = stage_config(settings, "tracks")

    @asset(**stage_kwargs(settings, "tracks", "ByteTrack tracks over the detections, reset at "
                          "every shot cut."))
    def tracks(context: AssetExecutionContext, config: Config, storage: StorageResource,
               detections: EpisodeScan) -> Checked:
        s = effective_settings(settings, config, "tracks")
        with timed() as t:
            found = track_detections(detections.detections, detections.video.fps, TrackingParams(
                track_thresh=s["track_thresh"], match_thresh=s["match_thresh"],
                track_buffer=s["track_buffer"], low_score_track_s=s["low_score_track_s"]),
                stride=detections.stride)
        result = TrackSet(detections.video, detections.stride, detections.shots, found)
        lengths = [len(tr) for tr in found]
        stage_metadata(
            context, settings, "tracks", s, config, t["seconds"], tracks=len(found),
            detections_tracked=int(sum(lengths)), detections=len(detections.detections),
            mean_track_frames=round(float(np.mean(lengths)), 1) if lengths else 0.0,
            preview=preview([{"track_id": tr.track_id, "shot_id": tr.shot_id,
                              "start_frame": tr.start_frame, "end_frame": tr.end_frame,
                              "frames": len(tr)} for tr in found]))
        yield from checked(context, storage, result, tracks_stay_in_one_shot(result))

    return tracks


def faces_asset(settings: Settings) -> AssetsDefinition:
    Config = stage_config(settings, "faces")

    @asset(**stage_kwargs(settings, "faces", "Up to max_samples_per_track best faces per track, "
                          "ArcFace-aligned to 112x112: cut in the detection pass, or from the frames "
                          "it decodes when that pass ran elsewhere."))
    def faces(context: AssetExecutionContext, config: Config, storage: StorageResource,
              tracks: TrackSet) -> Checked:
        s = effective_settings(settings, config, "faces")
        store = storage.store()
        path = store.video_path(context.partition_key)
        cache = CropCache.open(crops_path(store.spool_dir(), context.partition_key))
        with timed() as t:
            samples = select_samples(tracks.tracks, s["max_samples_per_track"])
            cached = cache.matches(samples.det_index, samples.bbox) \
                if cache is not None and not s["save_crops"] else np.zeros(len(samples), bool)
            spool = spool_array(store.spool_dir(),
                                (len(samples), ALIGNED_SIZE, ALIGNED_SIZE, 3), np.uint8)
            try:
                aligned, images = extract_faces(path, samples, save_crops=s["save_crops"],
                                                thumb_size=s["thumb_size"],
                                                jpeg_quality=s["jpeg_quality"], out=spool,
                                                cache=cache)
            except BaseException:
                spool.path.unlink(missing_ok=True)  # no stray temporary file on failure
                raise
        if cache is not None:
            cache.remove()  # the next run of this stage decodes what it needs
        stage_metadata(
            context, settings, "faces", s, config, t["seconds"], faces=len(samples),
            tracks=len(tracks.tracks), frames_decoded=len(set(samples.pts[~cached].tolist())),
            faces_from_detection_pass=int(cached.sum()), crops_saved=len(images),
            mean_quality=round(float(samples.quality.mean()), 3) if len(samples) else 0.0)
        yield from checked(context, storage, FaceSet(samples, aligned, images))

    return faces


def embeddings_asset(settings: Settings) -> AssetsDefinition:
    Config = stage_config(settings, "embeddings")

    @asset(**stage_kwargs(settings, "embeddings", "L2-normalised ArcFace embeddings of the "
                          "sampled faces, float32 [n_faces, D]."))
    def embeddings(context: AssetExecutionContext, config: Config, models: FaceModelsResource,
                   storage: StorageResource, faces: FaceSet) -> Checked:
        s = effective_settings(settings, config, "embeddings")
        m = models.load()
        with timed() as t:
            vectors = embed_faces(m.recognizer, faces.aligned,
                                  progress=reporter("embeddings", context.log.info),
                                  workers=m.parallel_calls)
        if len(vectors) == 0:
            vectors = np.zeros((0, m.embedding_dim), np.float32)
        stage_metadata(
            context, settings, "embeddings", s, config, t["seconds"], faces=len(vectors),
            dim=int(vectors.shape[1]), model_pack=m.pack, execution_provider=m.provider,
            onnxruntime_session=MetadataValue.json(m.session_options),
            faces_per_second=round(len(vectors) / max(t["seconds"], 1e-9), 1))
        result = FaceEmbeddings(faces.samples.face_id, faces.samples.track_id, vectors, m.pack)
        yield from checked(context, storage, result,
                           embeddings_are_unit_vectors(result, m.embedding_dim))

    return embeddings


def identities_asset(settings: Settings) -> AssetsDefinition:
    Config = stage_config(settings, "identities")

    @asset(**stage_kwargs(settings, "identities", "Tracks clustered into identities "
                          "(agglomerative, cosine; co-occurring tracks never merged)."))
    def identities(context: AssetExecutionContext, config: Config, storage: StorageResource,
                   embeddings: FaceEmbeddings, tracks: TrackSet) -> Checked:
        s = effective_settings(settings, config, "identities")
        with timed() as t:
            out = identify(tracks, embeddings, ClusteringParams(
                s["cluster_thresh"], s["min_identity_sim"], s["min_track_faces"],
                s["stitch_gap_s"], s["stitch_min_sim"]), s)
        result = out.identities
        stage_metadata(
            context, settings, "identities", s, config, t["seconds"], identities=len(result),
            tracks=len(tracks.tracks),
            singletons=sum(1 for i in result if len(i.track_ids) == 1),
            tracks_per_identity=round(len(tracks.tracks) / max(len(result), 1), 2),
            attached_tracks=sum(len(i.attached_track_ids) for i in result),
            preview=preview([{"identity_id": i.identity_id, "tracks": len(i.track_ids),
                              "faces": i.n_faces, "seconds": round(i.seconds, 2)}
                             for i in result]))
        yield from checked(context, storage, out, every_track_in_one_identity(out, tracks))

    return identities


def track_reps_asset(settings: Settings) -> AssetsDefinition:
    Config = stage_config(settings, "track_reps")

    @asset(**stage_kwargs(settings, "track_reps", "Representative face and quality metrics of "
                          "every track."))
    def track_reps(context: AssetExecutionContext, config: Config, storage: StorageResource,
                   faces: FaceSet, embeddings: FaceEmbeddings, identities: IdentitySet,
                   tracks: TrackSet) -> Checked:
        with timed() as t:
            result = representatives(tracks, faces, embeddings, identities)
        stage_metadata(context, settings, "track_reps", {}, config, t["seconds"],
                       thumbnails=len(result.images), **{
                           k: (MetadataValue.json(v) if isinstance(v, list) else v)
                           for k, v in result.summary.items()})
        yield from checked(context, storage, result)

    return track_reps


def screentime_asset(settings: Settings) -> AssetsDefinition:
    Config = stage_config(settings, "screentime")

    @asset(**stage_kwargs(settings, "screentime", "Seconds on screen per person: the union of "
                          "their tracks' intervals (stride-aware), after review, with cast ids; "
                          "table (JSON, CSV) and chart (PNG)."),
           # The edits reach screentime through cast_links; the direct dependency makes an edit
           # mark screentime stale at once (Dagster compares direct dependencies only).
           deps=["identity_edits"])
    def screentime(context: AssetExecutionContext, config: Config, storage: StorageResource,
                   tracks: TrackSet, cast_links: CastLinks) -> Checked:
        s = effective_settings(settings, config, "screentime")
        with timed() as t:
            report = screentime_report(context.partition_key, tracks, cast_links,
                                       s["stitch_gap_s"])
        stage_metadata(context, settings, "screentime", s, config, t["seconds"],
                       people=len(report.people), segments=len(report.segments),
                       duration_s=round(tracks.video.duration_s, 3),
                       skipped_edits=MetadataValue.json(report.skipped_edits),
                       **screentime_metadata(report, report.extra_files["screentime.png"]))
        yield from checked(context, storage, report, screentime_within_duration(report))

    return screentime
