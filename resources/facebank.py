"""A show's facebank in storage: cast photos in, reference embeddings out, through ArtifactStore.

Keys, under ``store.facebank_prefix(show)`` (``facebank/{show}/`` locally)::

    {cast_id}/{photo}                  cast photos (.jpg, .jpeg, .png)
    facebank_embeddings.npy / .json    reference embeddings and their index (the facebank asset)
    reviewed/{cast_id}/{name}.json     references a reviewer confirmed in an episode, with their
                                       provenance (``core.facebank.ReviewedReference``)

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
    REVIEWED_DIR,
    Facebank,
    FacebankError,
    ReviewedReference,
    check_photo_faces,
    decode_photo,
    dump_facebank,
    dump_reviewed,
    facebank_version,
    load_facebank,
    load_reviewed,
    photo_det_sizes,
    reviewed_reference,
    validate_cast_id,
    validate_photo_name,
    with_reviewed,
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


# ---------------------------------------------------------------------------- reviewed references
def reviewed_keys(store: ArtifactStore, show: str) -> dict[tuple[str, str], str]:
    """``(cast_id, name) -> key`` of every reviewed reference of a show
    (``facebank/{show}/reviewed/{cast_id}/{name}.json``)."""
    prefix = store.facebank_prefix(validate_show(show)) + REVIEWED_DIR + "/"
    out = {}
    for key in store.list_keys(prefix):
        parts = key[len(prefix):].split("/")
        if len(parts) == 2 and parts[1].endswith(".json"):
            out[(parts[0], parts[1][:-len(".json")])] = key
    return out


def read_reviewed(store: ArtifactStore, show: str) -> list[ReviewedReference]:
    """Every reviewed reference of a show, by cast id and name.

    Raises:
        FacebankError: a damaged file (names it and how to remove it).
    """
    return [load_reviewed(store.get(key), store.uri(key))
            for _, key in sorted(reviewed_keys(store, show).items())]


def read_show_facebank(store: ArtifactStore, show: str) -> Facebank | None:
    """What an episode of the show links against: the built facebank with the show's reviewed
    references (of its model pack) added, or ``None`` when the facebank was never built."""
    return with_reviewed(read_facebank(store, show), read_reviewed(store, show))[0]


def show_facebank_version(store: ArtifactStore, show: str) -> str:
    """Data version of :func:`read_show_facebank` (``core.facebank.facebank_version``): it
    changes when the facebank is rebuilt and when a reviewed reference is added or removed."""
    return facebank_version(read_show_facebank(store, show))


def add_reviewed(store: ArtifactStore, ep_id: str, identity_id: int,
                 cast_id: str | None = None, max_tracks: int = 5) -> tuple[str, ReviewedReference]:
    """Add an identity a reviewer confirmed as a cast member to the show's reviewed references.

    The identity is the one of the screen-time table after the episode's edits
    (``resources.edits.current_review``); its embeddings come from the episode's embeddings
    artifact (:func:`~screenalytics_assets.core.facebank.reviewed_reference`). Adding the same
    identity again replaces its file.

    Args:
        cast_id: the cast member; ``None`` takes the identity's current link (confirming it).

    Returns:
        ``(key written, the reference)``.

    Raises:
        FacebankError: unknown identity, no cast member given and none linked, a cast member not
            in the show's facebank, or no embedded face. ArtifactError: the episode's
            identities, tracks or embeddings were never materialized.
    """
    from screenalytics_assets.core.clustering import track_embeddings
    from screenalytics_assets.core.ep_id import parse_ep_id

    from .edits import current_review
    from .integrity import load_artifact

    show = parse_ep_id(ep_id).show
    current, _, cast_ids = current_review(store, ep_id)
    ident = next((i for i in current.identities if i.identity_id == int(identity_id)), None)
    if ident is None:
        raise FacebankError(
            f"{ep_id} has no identity {identity_id}; its identities are "
            f"{', '.join(str(i.identity_id) for i in current.identities) or '(none)'}")
    cast_id = cast_id or ident.cast_id
    if cast_id is None:
        raise FacebankError(f"identity {identity_id} of {ep_id} is linked to no cast member: "
                            "give the cast member it shows")
    validate_cast_id(cast_id)
    if cast_ids is not None and cast_id not in cast_ids:
        raise FacebankError(f"cast member {cast_id!r} is not in the facebank of {show} "
                            f"({', '.join(cast_ids)})")
    fb = read_facebank(store, show)
    emb = load_artifact(store, ep_id, "embeddings")
    tracks = np.asarray(ident.track_ids, np.int64)
    vectors, faces = track_embeddings(emb.track_id, emb.vectors, tracks)
    ref = reviewed_reference(cast_id, ep_id, ident.identity_id, ident.track_ids, vectors, faces,
                             fb.model_pack if fb else "", max_tracks)
    key = f"{store.facebank_prefix(show)}{REVIEWED_DIR}/{cast_id}/{ref.name}.json"
    store.put(key, dump_reviewed(ref))
    return key, ref


def remove_reviewed(store: ArtifactStore, show: str, cast_id: str | None = None,
                    ep_id: str | None = None, name: str | None = None) -> list[str]:
    """Remove the show's reviewed references matching every filter given; returns the keys.

    Raises:
        FacebankError: no filter given (removing all takes ``cast_id`` or ``ep_id``), or
            nothing matches (lists what there is).
    """
    if cast_id is None and ep_id is None and name is None:
        raise FacebankError("say which reviewed references to remove: a name, a cast member "
                            "or an episode")
    refs = reviewed_keys(store, show)
    keys = [key for (c, n), key in sorted(refs.items())
            if (cast_id is None or c == cast_id) and (name is None or n == name)
            and (ep_id is None or n.startswith(f"{ep_id}-identity"))]
    if not keys:
        raise FacebankError(
            f"no reviewed reference of {show} matches; there are "
            f"{', '.join(f'{c}/{n}' for c, n in sorted(refs)) or 'none'}")
    store.delete_keys(keys)
    return keys
