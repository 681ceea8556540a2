"""``screenalytics facebank add SHOW CAST_ID PHOTO...``, ``facebank build SHOW``, ``facebank show
SHOW`` and the reviewed references (``add-reviewed``, ``remove-reviewed``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.ep_id import parse_ep_id, validate_ep_id, validate_show
from .common import (
    add_common_args,
    execute,
    instance_for,
    load_without_collections,
    storage_for,
)


if TYPE_CHECKING:
    from resources.storage import ArtifactStore


def register(sub) -> None:
    p = sub.add_parser("facebank", help="manage a show's cast photos and reference embeddings")
    fsub = p.add_subparsers(dest="facebank_command", required=True)
    add = fsub.add_parser(
        "add", help="copy photos of a cast member into a show's facebank and rebuild it",
        description="Copy PHOTO files (JPEG/PNG) into facebank/SHOW/CAST_ID/ in the data root, "
                    "register the show and rebuild its facebank (the largest face of each photo "
                    "becomes a reference embedding).")
    add.add_argument("show", help="show slug, e.g. rhobh (the ep_id's show part)")
    add.add_argument("cast_id", help="cast member id, a lower-case slug, e.g. kyle-richards")
    add.add_argument("photos", nargs="+", help="photos of the cast member (.jpg, .jpeg, .png)")
    add.add_argument("--no-build", action="store_true",
                     help="only copy the photos; build later with `facebank build SHOW`")
    add.add_argument("--profile", help="settings profile (default: balanced)")
    add_common_args(add)
    add.set_defaults(func=run_add)
    track = fsub.add_parser(
        "add-track", help="add the faces of an episode's track to a cast member's photos",
        description="Cut the best faces of TRACK of EP_ID (a track you confirmed shows CAST_ID, "
                    "e.g. a profile the facebank misses) from the episode's video, add them to "
                    "the cast member's photos in the show's facebank and rebuild it, so the next "
                    "episodes link better.")
    track.add_argument("ep_id", help="episode id, e.g. rhobh-s05e14")
    track.add_argument("track", type=int, help="track id (tracks.jsonl, `review EP_ID show`)")
    track.add_argument("cast_id", help="cast member id, a lower-case slug")
    track.add_argument("--faces", type=int, default=3, help="photos to cut (default 3)")
    track.add_argument("--no-build", action="store_true",
                       help="only add the photos; build later with `facebank build SHOW`")
    track.add_argument("--profile", help="settings profile (default: balanced)")
    add_common_args(track)
    track.set_defaults(func=run_add_track)
    build = fsub.add_parser("build", help="(re)build a show's facebank from its photos")
    build.add_argument("show", help="show slug")
    build.add_argument("--profile", help="settings profile (default: balanced)")
    add_common_args(build)
    build.set_defaults(func=run_build)
    # the reviewed references: (name, function, help, description, positional and optional
    # arguments with their keywords)
    for name, func, text, description, arguments in (
        ("show", run_show, "list a show's cast references and reviewed references", None,
         [("show", {"help": "show slug"})]),
        ("add-reviewed", run_add_reviewed,
         "add an identity you confirmed to the show's reviewed references",
         "Store the faces of identity IDENTITY of EP_ID (numbers of the screen-time table after "
         "review) as reviewed references of CAST_ID (default: the cast member it is linked "
         "to), apart from the cast photos. The show's episodes link against them: their "
         "cast_links turn stale, nothing else.",
         [("ep_id", {"help": "episode id, e.g. rhobh-s05e14"}),
          ("identity", {"type": int, "help": "identity id (`review EP_ID show`)"}),
          ("cast_id", {"nargs": "?", "help": "cast member (default: the identity's link)"})]),
        ("remove-reviewed", run_remove_reviewed, "remove reviewed references of a show",
         "Remove the reviewed references NAME (as `facebank show` lists them), or all of a "
         "cast member (--cast) or of an episode (--ep-id).",
         [("show", {"help": "show slug"}),
          ("name", {"nargs": "?", "help": "reference name, e.g. rhobh-s05e14-identity0003"}),
          ("--cast", {"dest": "cast_id", "help": "every reviewed reference of this cast member"}),
          ("--ep-id", {"dest": "from_ep",
                       "help": "every reviewed reference from this episode"})]),
    ):
        cmd = fsub.add_parser(name, help=text, description=description)
        for arg, kw in arguments:
            cmd.add_argument(arg, **kw)
        add_common_args(cmd)
        cmd.set_defaults(func=func)


def run_add(args) -> int:
    load_without_collections()  # until the job runs (common.freeze_loaded_objects)
    from resources.facebank import add_photos, photo_keys

    from ..core.facebank import validate_cast_id
    from ..partitions import register_show

    show = validate_show(args.show)
    cast_id = validate_cast_id(args.cast_id)
    root, storage = storage_for(args)
    store = storage.store()
    keys = add_photos(store, show, cast_id, args.photos, photo_check(args.profile))
    print(f"{show}/{cast_id}: {len(keys)} photo(s) added "
          f"({len(photo_keys(store, show))} in the facebank of {show})")
    if args.no_build:
        register_show(instance_for(root), show)
        return 0
    return run_build(args)


def photo_check(profile: str | None):
    """The face check a cast photo must pass before it is stored: exactly the face expected,
    found with the model pack and detector settings the facebank is built with."""
    from resources.facebank import face_check
    from resources.models import FaceModelsResource

    from ..settings import load_settings

    settings = load_settings(profile=profile)
    s = settings.for_asset("facebank")
    env = FaceModelsResource.from_env()
    models = FaceModelsResource(model_root=env.model_root, model_pack=s["model_pack"],
                                device=env.device, intra_op_threads=env.intra_op_threads).load()
    return face_check(models.detector, s["facebank_det_size"], s["facebank_det_thresh"])


def run_add_track(args) -> int:
    load_without_collections()  # until the job runs (common.freeze_loaded_objects)
    from resources.facebank import add_track

    from ..core.facebank import FacebankError, validate_cast_id
    from ..partitions import register_show

    ep_id = validate_ep_id(args.ep_id)
    cast_id = validate_cast_id(args.cast_id)
    if args.faces < 1:
        raise FacebankError(f"--faces {args.faces}: give at least 1")
    root, storage = storage_for(args)
    keys = add_track(storage.store(), ep_id, args.track, cast_id, args.faces)
    show = parse_ep_id(ep_id).show
    print(f"{show}/{cast_id}: {len(keys)} photo(s) from track {args.track} of {ep_id} added: "
          + ", ".join(k.rsplit("/", 1)[-1] for k in keys))
    args.show = show
    if args.no_build:
        register_show(instance_for(root), show)
        return 0
    return run_build(args)


def run_build(args) -> int:
    load_without_collections()  # until the job runs (common.freeze_loaded_objects)
    from ..definitions import FACEBANK_JOB, build_definitions
    from ..partitions import register_show
    from ..settings import load_settings

    show = validate_show(args.show)
    root, storage = storage_for(args)
    settings = load_settings(profile=args.profile)
    instance = instance_for(root)
    register_show(instance, show)
    job = build_definitions(settings, storage=storage).resolve_job_def(FACEBANK_JOB)
    execute(job, instance, show, None)
    print_facebank(storage.store(), show)
    return 0


def print_facebank(store: "ArtifactStore", show: str) -> None:
    """Print the facebank's cast members and reference counts, then the reviewed references
    with their provenance; warn about photos with no face."""
    from rich.console import Console

    from resources.facebank import read_facebank, read_reviewed

    fb = read_facebank(store, show)
    console = Console()
    if fb is None:
        console.print(f"{show}: no facebank built")
    else:
        counts = {c: fb.ref_cast_id.count(c) for c in fb.cast_ids}
        console.print(f"facebank {show} ({fb.model_pack}): " + ", ".join(
            f"{c} ({n} ref{'s' if n != 1 else ''})" for c, n in counts.items()))
        if fb.no_face:
            console.print(f"[yellow]no face found in: {', '.join(fb.no_face)}[/] (not used)")
    reviewed = read_reviewed(store, show)
    console.print(f"reviewed references of {show}: {len(reviewed) or 'none'}")
    for ref in reviewed:
        unused = "" if fb is None or ref.model_pack == fb.model_pack else \
            f" [yellow](model pack {ref.model_pack}: not used)[/]"
        console.print(f"  {ref.cast_id}/{ref.name}: identity {ref.identity_id} of {ref.ep_id}, "
                      f"tracks {', '.join(map(str, ref.track_ids))}{unused}", highlight=False)


def run_show(args) -> int:
    show = validate_show(args.show)
    _, storage = storage_for(args)
    print_facebank(storage.store(), show)
    return 0


def run_add_reviewed(args) -> int:
    from resources.facebank import add_reviewed

    from ..assets.cast import record_reviewed_change
    from ..core.facebank import validate_cast_id

    ep_id = validate_ep_id(args.ep_id)
    cast_id = validate_cast_id(args.cast_id) if args.cast_id else None
    root, storage = storage_for(args)
    store = storage.store()
    _, ref = add_reviewed(store, ep_id, args.identity, cast_id)
    show = parse_ep_id(ep_id).show
    episodes = record_reviewed_change(instance_for(root), store, show)
    print(f"{show}/{ref.cast_id}: reviewed reference {ref.name} added ({len(ref.track_ids)} "
          f"track(s): {', '.join(map(str, ref.track_ids))}); cast_links of {len(episodes)} "
          f"episode(s) of {show} are now stale")
    return 0


def run_remove_reviewed(args) -> int:
    from resources.facebank import remove_reviewed

    from ..assets.cast import record_reviewed_change

    show = validate_show(args.show)
    root, storage = storage_for(args)
    store = storage.store()
    keys = remove_reviewed(store, show, args.cast_id,
                           validate_ep_id(args.from_ep) if args.from_ep else None, args.name)
    episodes = record_reviewed_change(instance_for(root), store, show)
    print(f"{show}: {len(keys)} reviewed reference(s) removed; cast_links of {len(episodes)} "
          f"episode(s) of {show} are now stale")
    return 0
