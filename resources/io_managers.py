"""The IO manager that stores each episode asset as the files the design map names."""


from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext, ResourceDependency

from screenalytics_assets.core.artifacts import CODECS
from screenalytics_assets.core.ep_id import validate_ep_id

from .dagster_storage import StorageResource
from .integrity import load_artifact, write_artifact
from .storage import IMAGE_PREFIXES


class ArtifactIOManager(ConfigurableIOManager):
    """Writes an asset's value as files through the storage resource; reads them back.

    The asset's name picks the codec (``core.artifacts.CODECS``); the partition key is the ep_id.
    Files are written atomically, images before manifests, and the integrity manifest (each
    file's sha256 and row count, ``resources.integrity``) last; the same digests go into the
    materialization's metadata. Loading verifies the files against the manifest first and raises
    ``ArtifactIntegrityError`` (naming the file and the command that rebuilds it) on a mismatch.
    """

    storage: ResourceDependency[StorageResource]

    def handle_output(self, context: OutputContext, obj) -> None:
        ep_id = validate_ep_id(context.asset_partition_key)
        name = context.asset_key.path[-1]
        files = CODECS[name].dump(obj)
        images = sum(len(v) for n, v in files.items() if n.startswith(IMAGE_PREFIXES))
        store = self.storage.store()
        digests, manifest = write_artifact(store, ep_id, name, files)
        size = sum(d.bytes for d in digests.values()) + images
        primary = digests[CODECS[name].files[0]]
        context.add_output_metadata({
            "path": MetadataValue.path(store.file_uri(ep_id, CODECS[name].files[0])),
            "files": MetadataValue.json({n: store.file_uri(ep_id, n) for n in digests}),
            "bytes": size,
            "image_files": len(files) - len(digests),
            **({"dagster/row_count": primary.rows} if primary.rows is not None else {}),
            "sha256": MetadataValue.json({n: d.sha256 for n, d in digests.items()}),
            "rows": MetadataValue.json({n: d.rows for n, d in digests.items()}),
            "integrity_manifest": MetadataValue.path(manifest),
        })

    def load_input(self, context: InputContext):
        ep_id = validate_ep_id(context.asset_partition_key)
        name = context.upstream_output.asset_key.path[-1]
        return load_artifact(self.storage.store(), ep_id, name)
