"""``screenalytics delete EP_ID [--include-s3]``: remove an episode's artifacts and partition."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.ep_id import validate_ep_id
from ..core.errors import ScreenalyticsError
from .common import add_common_args, instance_for, storage_for


if TYPE_CHECKING:
    from resources.storage import ArtifactStore


def register(sub) -> None:
    p = sub.add_parser(
        "delete", help="remove an episode's artifacts, caches and partition",
        description="Remove the episode's local artifact folders and caches and its Dagster "
                    "partition; with --include-s3 also every artifact object in the bucket. "
                    "The uploaded video (videos/{ep_id}/episode.mp4) is kept.")
    p.add_argument("ep_id", help="episode id, e.g. rhobh-s05e14")
    p.add_argument("--include-s3", action="store_true",
                   help="also delete the episode's artifacts in the S3 bucket "
                        "(STORAGE_BACKEND=s3)")
    add_common_args(p)
    p.set_defaults(func=run)


def local_folders(ep_id: str, root: Path, store: "ArtifactStore") -> list[Path]:
    """Local folders of the episode: artifact folders under the data root and caches."""
    from resources.storage import LocalStore

    local = LocalStore(root)
    folders = [local.root / p for p in local.episode_prefixes(ep_id)]
    folders += local.cache_dirs(ep_id) + store.cache_dirs(ep_id)
    return list(dict.fromkeys(f.resolve() for f in folders))


def s3_artifact_keys(store: "ArtifactStore", ep_id: str) -> list[str]:
    """Every artifact key of the episode in the store (not its uploaded video)."""
    return sorted({k for p in store.episode_prefixes(ep_id) for k in store.list_keys(p)})


def run(args) -> int:
    from resources.storage import LocalStore

    from ..core.detection_crops import crops_path, remove_crops
    from ..partitions import EPISODES_PARTITION

    ep_id = validate_ep_id(args.ep_id)
    root, storage = storage_for(args)
    store = storage.store()
    if args.include_s3 and isinstance(store, LocalStore):
        raise ScreenalyticsError(
            "--include-s3 needs the S3 backend: set STORAGE_BACKEND=s3 and "
            "SCREENALYTICS_S3_BUCKET")
    removed_dirs = 0
    for folder in local_folders(ep_id, root, store):
        if folder.is_dir():
            shutil.rmtree(folder)
            removed_dirs += 1
    # the faces cut in a detection pass whose faces stage has not run (core.detection_crops)
    remove_crops(crops_path(store.spool_dir(), ep_id))
    removed_objects = store.delete_keys(s3_artifact_keys(store, ep_id)) if args.include_s3 else 0
    instance = instance_for(root)
    had_partition = instance.has_dynamic_partition(EPISODES_PARTITION, ep_id)
    if had_partition:
        instance.delete_dynamic_partition(EPISODES_PARTITION, ep_id)
    print(f"{ep_id}: removed {removed_dirs} local folders, {removed_objects} S3 objects, "
          + ("and its partition" if had_partition else "no partition was registered"))
    return 0
