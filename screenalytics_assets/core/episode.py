"""Episode-level steps that combine the core computations into the artifact types: identities
from clustered tracks, representative faces, cast links after review, and the screen-time report.

The assets in ``assets/`` only read their inputs, call one of these, write the result and attach
metadata; everything here runs (and is tested) without Dagster.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from .artifacts import (
    CastLinks,
    FaceEmbeddings,
    FaceSet,
    Identity,
    IdentitySet,
    ScreenTimeReport,
    TrackRepSet,
    TrackSet,
)
from .cast_links import link_episode
from .clustering import ClusteringParams, cluster_tracks, track_embeddings
from .facebank import Facebank, FacebankError, all_cast_ids
from .plots import screentime_chart
from .reps import rep_thumbnails, track_representatives
from .review import apply_edits, edits_version, parse_edits
from .screentime import identity_seconds, person_segments, screen_time

#: A track whose faces' lowest similarity to their mean is under this is listed as inconsistent
#: in the track_reps summary (cosine similarity; a face of someone else in the track).
LOW_CONSISTENCY_SIM = 0.3


def identify(tracks: TrackSet, embeddings: FaceEmbeddings, params: ClusteringParams,
             settings_used: dict[str, Any]) -> IdentitySet:
    """Cluster an episode's tracks into identities (see ``clustering.cluster_tracks``).

    Args:
        tracks: the episode's tracks. embeddings: unit face embeddings float32 [F, D] with their
            track ids int64 [F]. params: clustering thresholds. settings_used: recorded with the
            result (``identities.json``'s ``params``).

    Returns:
        Identities numbered by first appearance, each with its tracks, face count, screen time
        (s) and the weak tracks attached by ``min_identity_sim``; centroids float32 [K, D].
    """
    c = cluster_tracks(tracks.tracks, embeddings.track_id, embeddings.vectors, params)
    by_id = {tr.track_id: tr for tr in tracks.tracks}
    n_faces = Counter(embeddings.track_id.tolist())
    result = []
    for k in range(len(c.centroids)):
        members = [int(x) for x in c.members(k)]
        result.append(Identity(
            k, members, int(sum(n_faces[m] for m in members)),
            identity_seconds([by_id[m] for m in members], tracks.video.duration_s,
                             params.stitch_gap_s),
            [int(x) for x in c.track_ids[(c.labels == k) & c.attached]]))
    return IdentitySet(result, c.centroids, settings_used)


def representatives(tracks: TrackSet, faces: FaceSet, embeddings: FaceEmbeddings,
                    identities: IdentitySet) -> TrackRepSet:
    """Representative face and quality metrics of every track, with an episode summary
    (tracks, mean similarity, tracks whose faces disagree: ``LOW_CONSISTENCY_SIM``) and each
    track's representative thumbnail (``reps.rep_thumbnails``)."""
    ids = np.array([tr.track_id for tr in tracks.tracks], np.int64)
    emb, _ = track_embeddings(embeddings.track_id, embeddings.vectors, ids)
    c = identities.to_clustering(emb, ids)
    reps = track_representatives(tracks.tracks, faces.samples, embeddings.vectors, c)
    thumbs = rep_thumbnails(reps, faces.samples.face_id, faces.aligned)
    summary = {
        "tracks": len(reps),
        "mean_sim": round(float(np.mean([r.mean_sim for r in reps])), 4) if reps else 0,
        "low_consistency_tracks": [r.track_id for r in reps
                                   if r.n_faces > 1 and r.min_sim < LOW_CONSISTENCY_SIM],
    }
    return TrackRepSet(reps, summary, thumbs)


def link_cast(ep_id: str, show: str, identities: IdentitySet, tracks: TrackSet,
              embeddings: FaceEmbeddings, facebank: Facebank | None, model_pack: str,
              thresh: float, edits: bytes | None, edits_source: str,
              margin: float = 0.0) -> CastLinks:
    """Link an episode's identities to its show's cast (many-to-one, from every track's
    embedding: ``cast_links.link_episode``), then apply the reviewer's edits.

    Args:
        embeddings: the episode's face embeddings float32 [F, D] with their track ids.
        facebank: the show's facebank, or None when it was never built (every identity stays
            unknown). model_pack: the pack the episode's embeddings come from.
        thresh: ``cast_link_thresh`` (cosine similarity). edits: the raw edits file (None: no
            edits); edits_source: its name or URI for error messages.
        margin: ``cast_link_margin`` (cosine similarity over the runner-up).

    Raises:
        FacebankError: the facebank was built with another model pack than the episode's.
        ReviewError: the edits file is malformed.
    """
    if facebank is not None and facebank.model_pack != model_pack:
        raise FacebankError(
            f"the facebank of show {show!r} was built with model pack {facebank.model_pack!r} "
            f"but episodes use {model_pack!r}; re-materialize facebank for partition {show!r}")
    cast_ids = all_cast_ids(facebank) if facebank else []
    auto = link_episode([(i.identity_id, i.track_ids) for i in identities.identities],
                        tracks.tracks, embeddings.track_id, embeddings.vectors, facebank, thresh,
                        margin)
    spans = {tr.track_id: (tr.start_frame, tr.end_frame) for tr in tracks.tracks}
    review = apply_edits([(i.identity_id, i.track_ids) for i in identities.identities],
                         auto, parse_edits(edits, edits_source), spans,
                         cast_ids if facebank else None)
    return CastLinks(ep_id, show, "ok" if facebank else "missing", cast_ids, thresh, auto,
                     review, edits_version(edits))


def screentime_report(ep_id: str, tracks: TrackSet, cast_links: CastLinks,
                      max_gap_s: float = 0.0) -> ScreenTimeReport:
    """Seconds on screen per reviewed identity (union of its tracks' intervals, a gap of at most
    ``max_gap_s`` seconds within a shot counting as on screen), with cast ids and names, each
    person's segments, and the chart (PNG) as an extra file."""
    by_id = {tr.track_id: tr for tr in tracks.tracks}
    reviewed = cast_links.reviewed()
    members = {i.identity_id: [by_id[x] for x in i.track_ids] for i in reviewed}
    people = screen_time(
        members, tracks.video.duration_s,
        cast_ids={i.identity_id: i.cast_id for i in reviewed},
        names={i.identity_id: i.name for i in reviewed}, max_gap_s=max_gap_s)
    png = screentime_chart(ep_id, tracks.video.duration_s, people)
    return ScreenTimeReport(ep_id, tracks.video.fps, tracks.video.duration_s, people,
                            cast_links.cast_ids, cast_links.review.skipped,
                            {"screentime.png": png},
                            person_segments(people, members, tracks.video.duration_s, max_gap_s))
