"""A show's facebank in storage: cast photos in, reference embeddings out, through ArtifactStore.

Keys, under ``store.facebank_prefix(show)`` (``facebank/{show}/`` locally)::

    {cast_id}/{photo}                  cast photos (.jpg, .jpeg, .png)
    facebank_embeddings.npy / .json    reference embeddings and their index (the facebank asset)

Everything goes through the store's ``put``/``get``/``list_keys``, so an S3 store works the same.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from screenalytics_assets.core.ep_id import validate_show
from screenalytics_assets.core.errors import ArtifactError
from screenalytics_assets.core.facebank import (
    EMBEDDINGS_FILE,
    INDEX_FILE,
    PHOTO_EXTENSIONS,
    Facebank,
    FacebankError,
    check_photo_faces,
    decode_photo,
    dump_facebank,
    load_facebank,
    photo_det_sizes,
    validate_cast_id,
    validate_photo_name,
)

from .storage import ArtifactStore


def photo_keys(store: ArtifactStore, show: str) -> dict[tuple[str, str], str]:
    """``(cast_id, photo) -> key`` of every cast photo of a show (other files are ignored)."""
    prefix = store.facebank_prefix(validate_show(show))
    out = {}
    for key in store.list_keys(prefix):
        parts = key[len(prefix):].split("/")
        if len(parts) == 2 and parts[1].lower().endswith(PHOTO_EXTENSIONS):
            out[(parts[0], parts[1])] = key
    return out


def read_photos(store: ArtifactStore, show: str) -> dict[tuple[str, str], bytes]:
    """``(cast_id, photo) -> image bytes`` of every cast photo of a show."""
    return {k: store.get(key) for k, key in photo_keys(store, show).items()}


PhotoCheck = Callable[[str, str, np.ndarray], object]
"""``check(cast_id, photo file name, BGR image)``: raises FacebankError on a photo to refuse."""


def face_check(detector, det_size: int = 640, det_thresh: float = 0.5) -> PhotoCheck:
    """A :data:`PhotoCheck` that requires exactly the face expected in each photo (see
    ``core.facebank.check_photo_faces``), with the facebank asset's detector settings
    (``facebank_det_size``: that size, then halved down to 160, are tried)."""
    sizes = photo_det_sizes(det_size)
    return lambda cast_id, photo, image: check_photo_faces(detector, cast_id, photo, image,
                                                           sizes, det_thresh)


def add_photos(store: ArtifactStore, show: str, cast_id: str,
               photos: list[str | os.PathLike], check: PhotoCheck | None = None) -> list[str]:
    """Copy photos of one cast member into the show's facebank; returns the keys written.

    Every photo is checked (name, readable image, and with ``check`` its faces, e.g.
    :func:`face_check`) before any is written, so a bad one leaves the facebank as it was. A photo
    with the same file name replaces the stored one.

    Raises:
        InvalidEpIdError: bad show slug. FacebankError: bad cast id, photo name or image, no photo,
            or a photo ``check`` refuses (naming the cast member and photo).
    """
    return _put(store, show, {cast_id: _checked(show, cast_id, photos, check)})[cast_id]


def add_track(store: ArtifactStore, ep_id: str, track_id: int, cast_id: str,
              n_faces: int = 3) -> list[str]:
    """Add faces of an episode's track to a cast member's facebank photos; returns the keys.

    For a track a reviewer confirmed as that cast member: its best faces become photos of the
    cast member (:func:`screenalytics_assets.core.facebank.track_photos`), so that the next build
    of the show's facebank, and the episodes linked after it, know how they look on screen.

    Raises:
        InvalidEpIdError: bad ep_id. FacebankError: bad cast id, or no such track.
        ArtifactError: the episode's tracks were never materialized.
    """
    from screenalytics_assets.core.artifacts import load_tracks
    from screenalytics_assets.core.ep_id import parse_ep_id
    from screenalytics_assets.core.facebank import track_photos

    show = parse_ep_id(ep_id).show
    validate_cast_id(cast_id)
    tracks = load_tracks(lambda name: store.read_file(ep_id, name))
    track = next((t for t in tracks.tracks if t.track_id == int(track_id)), None)
    if track is None:
        raise FacebankError(
            f"episode {ep_id!r} has no track {track_id} (tracks 0-{len(tracks.tracks) - 1}); see "
            f"`screenalytics review {ep_id} show`")
    photos = track_photos(store.video_path(ep_id), track, ep_id, n_faces)
    for name, blob in photos.items():
        decode_photo(name, blob)
    return _put(store, show, {cast_id: photos})[cast_id]


def add_folder(store: ArtifactStore, show: str, folder: str | os.PathLike,
               check: PhotoCheck | None = None) -> dict[str, int]:
    """Add a folder with one sub-folder of photos per cast member (named by cast id). Every
    photo of every cast member is checked (as in :func:`add_photos`) before any is written.

    Returns:
        cast id -> photos added.

    Raises:
        FacebankError: the folder is missing, has no cast sub-folder, or a bad name or photo.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FacebankError(f"facebank folder {root} does not exist")
    cast = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        photos = sorted(p for p in sub.iterdir()
                        if p.is_file() and p.suffix.lower() in PHOTO_EXTENSIONS)
        if photos:
            cast[sub.name] = _checked(show, sub.name, photos, check)
    if not cast:
        raise FacebankError(
            f"facebank folder {root} has no cast photos: expected one sub-folder per cast member "
            "(e.g. lin-manuel-miranda/01.jpg)")
    return {c: len(keys) for c, keys in _put(store, show, cast).items()}


def _checked(show: str, cast_id: str, photos: list[str | os.PathLike],
             check: PhotoCheck | None = None) -> dict[str, bytes]:
    """``{file name: bytes}`` of photos whose ids, names and images are valid."""
    validate_show(show)
    validate_cast_id(cast_id)
    if not photos:
        raise FacebankError(f"no photo given for cast member {cast_id!r}")
    data = {}
    for p in photos:
        path = Path(p)
        validate_photo_name(path.name)
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise FacebankError(f"cannot read cast photo {path}: {exc}") from exc
        image = decode_photo(str(path), blob)
        if check is not None:
            check(cast_id, path.name, image)
        data[path.name] = blob
    return data


def _put(store: ArtifactStore, show: str, cast: dict[str, dict[str, bytes]]
         ) -> dict[str, list[str]]:
    prefix = store.facebank_prefix(show)
    written: dict[str, list[str]] = {}
    for cast_id, files in cast.items():
        for name, blob in files.items():
            key = f"{prefix}{cast_id}/{name}"
            store.put(key, blob)
            written.setdefault(cast_id, []).append(key)
    return written


def write_facebank(store: ArtifactStore, show: str, fb: Facebank) -> list[str]:
    """Store the embeddings (``.npy`` first, then the index that names it); returns URIs."""
    prefix = store.facebank_prefix(validate_show(show))
    files = dump_facebank(fb)
    uris = []
    for name in (EMBEDDINGS_FILE, INDEX_FILE):
        store.put(prefix + name, files[name])
        uris.append(store.uri(prefix + name))
    return uris


def read_facebank(store: ArtifactStore, show: str) -> Facebank | None:
    """The show's built facebank, or ``None`` when it was never built."""
    prefix = store.facebank_prefix(validate_show(show))
    if not store.exists(prefix + INDEX_FILE):
        return None
    try:
        return load_facebank(lambda name: store.get(prefix + name))
    except ArtifactError as exc:
        raise ArtifactError(f"the facebank of show {show!r} is incomplete ({exc}); rebuild it "
                            f"(materialize facebank for partition {show!r})") from exc
