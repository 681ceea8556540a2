"""``screenalytics crops EP_ID TRACK_ID``: links to a track's face crops and thumbnail."""

from __future__ import annotations

from ..core.ep_id import validate_ep_id
from ..core.errors import ArtifactError
from .common import add_common_args, storage_for


def register(sub) -> None:
    p = sub.add_parser(
        "crops", help="list a track's face crops and thumbnail",
        description="Print a presigned URL (S3 storage) or the file path (local storage) of "
                    "every JPEG face crop and the thumbnail of one track. Crops exist when the "
                    "faces asset ran with save_crops on (profile 'accurate', or the override "
                    "save_crops=true).")
    p.add_argument("ep_id", help="episode id, e.g. rhobh-s05e14")
    p.add_argument("track_id", type=int, help="track id (from tracks.jsonl)")
    p.add_argument("--expires", type=int, default=3600,
                   help="lifetime of presigned URLs in seconds (default 3600, at most 604800)")
    add_common_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    ep_id = validate_ep_id(args.ep_id)
    if not 1 <= args.expires <= 604800:
        raise ArtifactError(f"--expires {args.expires}: use 1 to 604800 seconds (7 days)")
    store = storage_for(args)[1].store()
    keys = store.track_image_keys(ep_id, args.track_id)
    if not keys:
        raise ArtifactError(
            f"no crops for track {args.track_id} of {ep_id}: the track does not exist or crops "
            "were not saved; materialize faces with save_crops on (profile 'accurate' or the "
            "run override save_crops=true)")
    for key in keys:
        print(store.share_url(key, args.expires))
    return 0
