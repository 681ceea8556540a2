"""Artifact integrity in storage: write each asset's manifest, verify files against it.

The digests and the manifest format are in ``core.integrity``; this module reads and writes them
through an :class:`ArtifactStore`, so the local data root and the S3 bucket work the same (the
manifest lies beside the asset's files: ``manifests/{ep_id}/tracks.manifest.json`` locally,
``artifacts/manifests/{show}/s{ss}/e{ee}/tracks.manifest.json`` on S3).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from screenalytics_assets.core.artifacts import CODECS, Reader, SpoolFile
from screenalytics_assets.core.errors import ArtifactError, ArtifactIntegrityError
from screenalytics_assets.core.integrity import (
    FileDigest,
    compare,
    digest_bytes,
    digest_file,
    is_large,
    manifest_bytes,
    manifest_name,
    parse_manifest,
    rebuild_command,
)

from .storage import IMAGE_PREFIXES, ArtifactStore

NOT_MATERIALIZED = "missing (not materialized)"


def digest_files(files: Mapping[str, "bytes | SpoolFile"]) -> dict[str, FileDigest]:
    """Digests of an asset's files as the codec produced them (image files left out)."""
    return {n: digest_file(n, v.path) if isinstance(v, SpoolFile) else digest_bytes(n, v)
            for n, v in files.items() if not n.startswith(IMAGE_PREFIXES)}


def write_manifest(store: ArtifactStore, ep_id: str, asset: str,
                   digests: Mapping[str, FileDigest], image_files: int = 0) -> str:
    """Store the asset's manifest (after its files); returns its URI."""
    key = store.artifact_key(ep_id, manifest_name(asset))
    store.put(key, manifest_bytes(asset, ep_id, digests, image_files))
    return store.uri(key)


def write_artifact(store: ArtifactStore, ep_id: str, asset: str,
                   files: Mapping[str, "bytes | SpoolFile"]) -> tuple[dict[str, FileDigest], str]:
    """Store an asset's files as its codec produced them (``CODECS[asset].dump``), then their
    manifest, then delete the files an older revision of the codec wrote instead
    (``Codec.replaces``). Returns ``(digests of the non-image files, URI of the manifest)``."""
    digests = digest_files(files)  # before the spooled arrays are moved into place
    store.write_files(ep_id, dict(files))
    manifest = write_manifest(store, ep_id, asset, digests, len(files) - len(digests))
    obsolete = [n for n in CODECS[asset].replaces if n not in files]
    if obsolete:
        store.delete_keys([store.artifact_key(ep_id, n) for n in obsolete])
    return digests, manifest


def read_manifest(store: ArtifactStore, ep_id: str, asset: str) -> dict[str, FileDigest] | None:
    """What was recorded about the asset's files, or ``None`` when it has no manifest.

    Raises:
        ArtifactIntegrityError: the manifest is damaged.
    """
    key = store.artifact_key(ep_id, manifest_name(asset))
    try:
        data = store.get(key)
    except ArtifactError:
        if store.exists(key):
            raise
        return None
    return parse_manifest(data, store.uri(key))


def measure(store: ArtifactStore, ep_id: str, name: str,
            keep: dict[str, bytes] | None = None) -> FileDigest | None:
    """Digest of one stored artifact file as it is now; ``None`` when it is missing. Large
    files (arrays, archives) are hashed from a local copy in chunks; the bytes of any other
    file are put in ``keep`` (when given), so that a reader need not fetch them again."""
    key = store.artifact_key(ep_id, name)
    try:
        if is_large(name):
            return digest_file(name, store.local_file(ep_id, name))
        data = store.get(key)
        if keep is not None:
            keep[name] = data
        return digest_bytes(name, data)
    except ArtifactError:
        if store.exists(key):
            raise
        return None


def problems(store: ArtifactStore, ep_id: str, asset: str,
             keep: dict[str, bytes] | None = None) -> dict[str, str]:
    """``{file URI: what is wrong}`` for one asset of an episode; empty when every file matches
    its manifest. A missing manifest is a problem too (the files cannot be trusted). ``keep``:
    see :func:`measure`."""
    try:
        recorded = read_manifest(store, ep_id, asset)
    except ArtifactIntegrityError as exc:
        return {store.file_uri(ep_id, manifest_name(asset)): str(exc)}
    if recorded is None:
        present = [n for n in CODECS[asset].files if store.exists(store.artifact_key(ep_id, n))]
        what = ("no integrity manifest (written by an older version, or the write was cut "
                "short)") if present else NOT_MATERIALIZED
        return {store.file_uri(ep_id, manifest_name(asset)): what}
    out = {}
    for name, digest in recorded.items():
        why = compare(digest, measure(store, ep_id, name, keep))
        if why:
            out[store.file_uri(ep_id, name)] = why
    return out


def describe(asset: str, ep_id: str, found: Mapping[str, str]) -> str:
    """One message naming the damaged files and the command that rebuilds them."""
    files = "; ".join(f"{uri}: {why}" for uri, why in found.items())
    return (f"artifact of asset {asset!r} for partition {ep_id!r} is damaged ({files}); rebuild "
            f"it with `{rebuild_command(ep_id)}`")


def verify(store: ArtifactStore, ep_id: str, asset: str,
           keep: dict[str, bytes] | None = None) -> None:
    """Check an asset's files against its manifest (``keep``: see :func:`measure`).

    Raises:
        ArtifactError: the asset was never materialized (no files, no manifest).
        ArtifactIntegrityError: a file is missing, truncated or changed, or there is no manifest;
            the message names each file and the command that rebuilds it.
    """
    found = problems(store, ep_id, asset, keep)
    if list(found.values()) == [NOT_MATERIALIZED]:
        raise ArtifactError(f"artifact {next(iter(found))} is missing; materialize asset "
                            f"{asset!r} for partition {ep_id!r} first (`{rebuild_command(ep_id)}`)")
    if found:
        raise ArtifactIntegrityError(describe(asset, ep_id, found))


def damaged_assets(store: ArtifactStore, ep_id: str, assets: Iterable[str]
                   ) -> dict[str, dict[str, str]]:
    """``{asset: {file URI: what is wrong}}`` for the assets among ``assets`` whose files are
    missing or do not match their manifests."""
    out = {}
    for asset in assets:
        found = problems(store, ep_id, asset)
        if found:
            out[asset] = found
    return out


def verified_reader(store: ArtifactStore, ep_id: str, asset: str) -> Reader:
    """A reader of the asset's files (``read(name) -> bytes``, ``read.path(name)``) after
    :func:`verify` passed. It hands out the very bytes that were verified (each file is fetched
    once, and what is decoded is what was checked); large arrays come from the local copy that
    was hashed."""
    verified: dict[str, bytes] = {}
    verify(store, ep_id, asset, keep=verified)
    plain = store.reader(ep_id)

    def read(name: str) -> bytes:
        data = verified.get(name)
        return data if data is not None else plain(name)

    read.path = plain.path  # large files are read row by row
    return read


def load_artifact(store: ArtifactStore, ep_id: str, asset: str):
    """An asset's value, loaded from its files after they were verified.

    Raises:
        ArtifactIntegrityError: the files are damaged, or do not decode (the message names the
            asset and the command that rebuilds it, never a bare JSON/NumPy error).
        ArtifactError: the files are missing.
    """
    read = verified_reader(store, ep_id, asset)
    try:
        return CODECS[asset].load(read)
    except ArtifactError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, OSError) as exc:
        raise ArtifactIntegrityError(
            f"artifact of asset {asset!r} for partition {ep_id!r} cannot be read "
            f"({type(exc).__name__}: {exc}); rebuild it with `{rebuild_command(ep_id)}`"
        ) from exc
