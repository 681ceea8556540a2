"""The IO manager that stores each episode asset as the files the design map names."""


from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext, ResourceDependency

from screenalytics_assets.core.artifacts import CODECS, SpoolFile
from screenalytics_assets.core.ep_id import validate_ep_id

from .dagster_storage import StorageResource


class ArtifactIOManager(ConfigurableIOManager):
    """Writes an asset's value as files through the storage resource; reads them back.

    The asset's name picks the codec (``core.artifacts.CODECS``); the partition key is the ep_id.
    Files are written atomically, images before manifests.
    """

    storage: ResourceDependency[StorageResource]

    def handle_output(self, context: OutputContext, obj) -> None:
        ep_id = validate_ep_id(context.asset_partition_key)
        name = context.asset_key.path[-1]
        files = CODECS[name].dump(obj)
        size = sum(v.path.stat().st_size if isinstance(v, SpoolFile) else len(v)
                   for v in files.values())
        store = self.storage.store()
        store.write_files(ep_id, files)
        manifests = [n for n in files if "/" not in n]
        context.add_output_metadata({
            "path": MetadataValue.path(store.file_uri(ep_id, CODECS[name].files[0])),
            "files": MetadataValue.json({n: store.file_uri(ep_id, n) for n in manifests}),
            "bytes": size,
            "image_files": len(files) - len(manifests),
        })

    def load_input(self, context: InputContext):
        ep_id = validate_ep_id(context.asset_partition_key)
        name = context.upstream_output.asset_key.path[-1]
        store = self.storage.store()

        def read(f: str) -> bytes:
            return store.read_file(ep_id, f)

        read.path = lambda f: store.local_file(ep_id, f)  # large arrays are read row by row
        return CODECS[name].load(read)
