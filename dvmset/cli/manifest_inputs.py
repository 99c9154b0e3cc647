"""The manifest a modeler command reads (`train`, `train-rhythm`, `evaluate`), on this machine.

In: the `--manifest` value as typed (a folder or file path, or, with an object-store data root, the
store's URL of a manifest version, `s3://bucket/prefix/manifests/v0001`, or its path under the data root,
`manifests/v0001`) and the config. Out: a local path. With an object-store data root the manifest folder
and every clip file its rows name are first fetched into this machine's scratch folder (files already
there and current are not fetched again), so the model code reads local files, as with a local root.
"""

from __future__ import annotations

from pathlib import Path

from dvmset.cli.common import ExitCode, fail, progress_bar
from dvmset.config import Config
from dvmset.store import Storage, is_store_url
from manifests.schema import ManifestError, manifest_metadata, read_manifest, resolve_media_root

MEDIA_COLUMNS = ("video_path", "music_path")


def local_manifest(manifest: str, config: Config) -> Path:
    """The local path of `manifest` (see the module docstring); exits with a usage error for a URL of
    another store, an item error for a manifest that cannot be read."""
    storage = config.data_storage()
    if storage.store is None:
        return Path(manifest)
    relative = _relative_to_store(manifest, storage)
    if relative is None:
        return Path(manifest)
    local = storage.data.resolve(relative)
    folder = storage.fetch_folder(local if not local.suffix else local.parent)
    try:
        _fetch_media(storage, sorted(folder.glob("*.parquet")))
    except ManifestError as exc:
        raise fail(ExitCode.ITEMS_FAILED, str(exc)) from exc
    return local


def _relative_to_store(manifest: str, storage: Storage) -> str | None:
    """`manifest` as a path relative to the data root, or None for a local path outside it."""
    if is_store_url(manifest):
        prefix = storage.store.url + "/"
        if not manifest.startswith(prefix):
            raise fail(ExitCode.USAGE, f"--manifest {manifest} is not under the data root {storage.store.url}")
        return manifest[len(prefix) :].rstrip("/")
    path = Path(manifest)
    if path.exists() and not path.resolve().is_relative_to(storage.data.root.resolve()):
        return None  # a manifest copied elsewhere: read as it is
    if path.is_absolute():
        return storage.data.relative(path) if path.resolve().is_relative_to(storage.data.root.resolve()) else None
    return path.as_posix()


def _fetch_media(storage: Storage, manifest_files: list[Path]) -> None:
    """Fetch every clip file the rows of `manifest_files` name (those not here or not current), with a progress
    bar: one listing of the store's clips, then a download for each file that needs one."""
    wanted: list[Path] = []
    for file in manifest_files:
        table = read_manifest(file)
        media_root = resolve_media_root(file, manifest_metadata(table), default=storage.data.root)
        for column in MEDIA_COLUMNS:
            wanted += [media_root / relative for relative in table.column(column).to_pylist()]
    listed = storage.listed(wanted)
    with progress_bar(len(listed), "fetch", unit="file") as bar:
        storage.fetch_listed(listed, done=bar.update)
