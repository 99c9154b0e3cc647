"""The data root's files in an object store (`data_root = "s3://bucket/prefix"`), through fsspec.

In: the store's URL (anything fsspec speaks: `s3://` for AWS S3, MinIO, GCS's S3 interface; the
scheme's package must be installed) and, for an S3-compatible server, its endpoint URL. Credentials
never appear in the config: they come from the SDK's standard environment variables and profile
(`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, ...), so nothing secret reaches the catalog, logs, manifests or
cards. Out: files under final keys `<prefix>/<path relative to the data root>`, the same relative
paths the catalog stores.

Stages keep working on local files: this machine's scratch folder has the data root's layout
(`dvmset.storage.DataRoot`). `Storage.fetch` copies an object there when the local copy is missing
or older; `Storage.upload` puts finished files under their final keys (a PUT is atomic: an
object appears whole or not at all; a killed multipart upload leaves no object, only parts that
`clear_partial_uploads` aborts) and the caller records them in the catalog afterwards: the catalog
write is the commit point. With a local data root (no store) every method is a no-op or a plain
path, so the stages run the same code either way.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fsspec

from dvmset.errors import ConfigError, InfrastructureError
from dvmset.storage import DataRoot, atomic_path, is_temp_name

SCRATCH_ROOT = Path.home() / ".cache" / "dvmset" / "scratch"
TRIMMED_FOLDERS = ("raw", "stems", "clips", "features")  # copies of objects, and caches made again when missing
TRIM_MIN_IDLE_S = 3600.0  # a copy used more recently is never trimmed
TRIM_EVERY_S = 60.0  # `trim_if_due`: how often a process walks its scratch folder
_TRIM_LOCK = threading.Lock()
_LAST_TRIM: dict[Path, float] = {}  # scratch folder -> when this process last trimmed it (time.monotonic)


class StoreError(InfrastructureError):
    """The object store cannot be reached or refuses us: the machine's fault, not a video's."""


def is_store_url(value: str) -> bool:
    """True for `scheme://...` other than `file://` (a local path stays a path)."""
    scheme = urlsplit(value).scheme
    return "://" in value and len(scheme) > 1 and scheme != "file"


def check_store_url(url: str) -> str:
    """`url` without a trailing slash; ValueError when it names no bucket or carries credentials."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise ValueError(
            f"the data root URL {parts.scheme}://...@{parts.hostname} carries credentials: give them through the "
            "environment or profile of the store's SDK (e.g. AWS_ACCESS_KEY_ID / AWS_PROFILE), never in the config"
        )
    if not parts.netloc:
        raise ValueError(f"the data root URL {url!r} names no bucket: write it as {parts.scheme}://bucket/prefix")
    return url.rstrip("/")


def default_scratch_dir(url: str) -> Path:
    """This machine's scratch folder for the store at `url`: ~/.cache/dvmset/scratch/<bucket>/<prefix>-<hash>."""
    parts = urlsplit(url)
    name = "-".join(part for part in parts.path.strip("/").split("/") if part) or "root"
    digest = hashlib.sha1(url.encode()).hexdigest()[:6]
    return SCRATCH_ROOT / parts.netloc / f"{name}-{digest}"


@functools.cache
def _filesystem(protocol: str, endpoint_url: str | None) -> fsspec.AbstractFileSystem:
    # other machines write too: always ask the store; instances are cached by `_filesystem` alone
    options: dict[str, Any] = {"use_listings_cache": False, "skip_instance_cache": True}
    if endpoint_url:
        options["client_kwargs"] = {"endpoint_url": endpoint_url}
    try:
        return fsspec.filesystem(protocol, **options)
    except ImportError as exc:
        raise ConfigError(f"{protocol}:// data roots need a package that is not installed: {exc}") from exc


@dataclass(frozen=True)
class ObjectStore:
    """Objects under `url` (`scheme://bucket/prefix`), addressed by paths relative to the data root."""

    url: str
    endpoint_url: str | None = None

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return _filesystem(urlsplit(self.url).scheme, self.endpoint_url)

    @property
    def _base(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.netloc}{parts.path}".rstrip("/")

    def key(self, relative: str) -> str:
        """The object key (bucket included, as fsspec wants it) of a data-root-relative path."""
        return f"{self._base}/{relative}" if relative else self._base

    def info(self, relative: str) -> dict | None:
        """The object's size and modification time, or None when there is none."""
        try:
            return self._call(self.fs.info, self.key(relative))
        except FileNotFoundError:
            return None

    def listing(self, relative_folder: str, name_prefix: str = "") -> dict[str, dict]:
        """Every object under a data-root-relative folder (or the one object of that path) whose name below
        the folder starts with `name_prefix`: relative path -> info (size, modification time). One paged
        LIST, no request per object."""
        try:
            found = self._call(self.fs.find, self.key(relative_folder), detail=True, prefix=name_prefix)
        except FileNotFoundError:
            return {}
        start, wanted = len(self._base) + 1, f"{relative_folder}/{name_prefix}".lstrip("/")
        listed = {key[start:]: info for key, info in found.items()}
        return {
            relative: info
            for relative, info in sorted(listed.items())
            if relative.startswith(wanted) or relative == relative_folder
        }

    def files(self, relative_prefix: str) -> list[str]:
        """Every object under a data-root-relative folder, as relative paths."""
        return list(self.listing(relative_prefix))

    def download(self, relative: str, local: Path) -> None:
        with atomic_path(local) as temp:
            self._call(self.fs.get_file, self.key(relative), str(temp))

    def upload(self, local: Path, relative: str) -> None:
        self._call(self.fs.put_file, str(local), self.key(relative))

    def remove(self, relative_prefix: str) -> None:
        """Delete every object under a relative folder (or the one object)."""
        self.delete(self.files(relative_prefix))

    def delete(self, relatives: list[str]) -> None:
        """Delete the objects of these relative paths (one request per thousand)."""
        if relatives:
            self._call(self.fs.rm, [self.key(relative) for relative in relatives])

    def clear_partial_uploads(self, relative_prefix: str, owned: Callable[[str], bool] = lambda relative: True) -> int:
        """Abort the multipart uploads that a killed upload left whose keys start with a relative prefix (a
        folder's, ending in "/", or any string) and whose relative paths are `owned` (S3 only; the caller
        holds the work lease of what it owns, so none of them is alive); return how many."""
        if not hasattr(self.fs, "call_s3"):
            return 0
        bucket, _, prefix = self.key(relative_prefix).partition("/")
        listing = self._call(self.fs.call_s3, "list_multipart_uploads", Bucket=bucket, Prefix=prefix)
        start = len(self._base) - len(bucket)  # the key without "<prefix>/"
        uploads = [upload for upload in listing.get("Uploads", []) if owned(upload["Key"][start:])]
        for upload in uploads:
            self._call(
                self.fs.call_s3, "abort_multipart_upload", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        return len(uploads)

    def check(self) -> None:
        """ConfigError naming the fix when the store cannot be listed (no credentials, no bucket, no server)."""
        bucket = self._base.split("/")[0]
        try:
            self.fs.ls(bucket, refresh=True)
        except FileNotFoundError as exc:
            raise ConfigError(f"the data root {self.url}: bucket {bucket!r} does not exist; create it first") from exc
        except Exception as exc:  # noqa: BLE001 - each SDK has its own error types; the message names the fix
            raise ConfigError(f"the data root {self.url} cannot be reached: {_why(exc)}") from exc

    def _call(self, method, *args, **kwargs):  # noqa: ANN001, ANN202 - any fsspec method
        """`method(*args)`, with a lost or refusing store raised as StoreError (FileNotFoundError passes)."""
        try:
            return method(*args, **kwargs)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StoreError(f"the object store {self.url} failed: {_why(exc)}") from exc
        except Exception as exc:  # noqa: BLE001 - botocore's errors are not OSErrors
            if type(exc).__module__.split(".")[0] in {"botocore", "aiobotocore", "aiohttp"}:
                raise StoreError(f"the object store {self.url} failed: {_why(exc)}") from exc
            raise


def _why(exc: BaseException) -> str:
    """A one-line reason; credentials problems say where credentials come from."""
    name = type(exc).__name__
    if "Credential" in name or "credential" in str(exc).lower():
        return (
            f"no usable credentials ({name}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, "
            "for the worker (never in the config)"
        )
    return f"{name}: {exc}".splitlines()[0]


@dataclass(frozen=True)
class Storage:
    """The data root as the stages use it: a local folder (`data`), backed by an object store or not."""

    data: DataRoot
    store: ObjectStore | None = None

    def fetch(self, path: Path) -> Path:
        """`path` (under the local data root) made current from the store: downloaded when missing,
        of another size, or older than the object; its time set to now either way (`trim` removes the
        copies used longest ago). Without a store, `path` as it is."""
        if self.store is not None:
            info = self.store.info(self.data.relative(path))
            if info is not None:
                self._make_current(path, info)
        return path

    def fetch_folder(self, folder: Path) -> Path:
        """Every object under `folder` made current locally (see `fetch`), from one listing."""
        self.fetch_listed(self.listing(folder))
        return folder

    def listed(self, paths: list[Path]) -> dict[Path, dict]:
        """The objects of these local paths (those the store has): local path -> info, from one listing per
        top folder of the data root they are in (a manifest's thousands of clip files cost a LIST per
        thousand objects, not a request each). Empty without a store."""
        if self.store is None:
            return {}
        wanted = {Path(os.path.abspath(path)) for path in paths}
        found: dict[Path, dict] = {}
        for top in sorted({self.data.relative(path).split("/")[0] for path in wanted}):
            found |= {path: info for path, info in self.listing(self.data.root / top).items() if path in wanted}
        return found

    def fetch_listed(self, listed: dict[Path, dict], done: Callable[[], object] = lambda: None) -> None:
        """Make each local path current with its object, whose info (`listing`, `listed`) is given; `done`
        is called after each file (a progress bar's update)."""
        for path, info in listed.items():
            self._make_current(path, info)
            done()

    def listing(self, folder: Path, name_prefix: str = "") -> dict[Path, dict]:
        """The store's objects under `folder` whose name below it starts with `name_prefix`: local path ->
        info (see `ObjectStore.listing`). Empty without a store."""
        if self.store is None:
            return {}
        listed = self.store.listing(self.data.relative(folder), name_prefix)
        return {self.data.resolve(relative): info for relative, info in listed.items()}

    def _make_current(self, path: Path, info: dict) -> None:
        if _current(path, info):
            os.utime(path)
        else:
            self.store.download(self.data.relative(path), path)

    def upload(self, *paths: Path) -> None:
        """Put finished files (a folder: every file in it but temporary ones) under their final keys.
        The caller records them in the catalog after this returns."""
        for path in paths:
            self.upload_as(path, path)

    def upload_as(self, source: Path, final: Path) -> None:
        """Put the finished files of `source` (a file, or a folder's files but temporary ones) under the keys
        of `final` (a staging folder's files under the final folder's names: the local rename comes after
        the caller's catalog write). The local files' times are set to now: not older than their objects."""
        if self.store is None:
            return
        for file in sorted(source.rglob("*")) if source.is_dir() else [source]:
            if file.is_file() and not is_temp_name(file):
                self.store.upload(file, self.data.relative(final / file.relative_to(source)))
                os.utime(file)

    def remove(self, folder: Path) -> None:
        """Delete `folder`'s objects (the local copy is the caller's)."""
        if self.store is not None:
            self.store.remove(self.data.relative(folder))

    def delete(self, paths: list[Path]) -> None:
        """Delete the objects of these local paths (e.g. part of a `listing`)."""
        if self.store is not None:
            self.store.delete([self.data.relative(path) for path in paths])

    def clear_partial_uploads(
        self, folder: Path, name_prefix: str = "", owned: Callable[[Path], bool] = lambda path: True
    ) -> int:
        """Abort the killed multipart uploads under `folder` whose names below it start with `name_prefix` and
        whose local paths are `owned` (see `ObjectStore.clear_partial_uploads`)."""
        if self.store is None:
            return 0
        prefix = f"{self.data.relative(folder)}/{name_prefix}"
        return self.store.clear_partial_uploads(prefix, lambda relative: owned(self.data.resolve(relative)))

    def trim(self, max_bytes: int, min_idle_s: float = TRIM_MIN_IDLE_S) -> int:
        """Keep this machine's copies of the store's files (and the model's caches, which are made again
        when missing) under `max_bytes`: remove those used longest ago, never one used in the last
        `min_idle_s` (a stage may be reading it). Nothing without a store: the local root is the data.
        Returns the bytes removed."""
        if self.store is None:
            return 0
        files = [
            (stat.st_mtime, stat.st_size, path)
            for folder in TRIMMED_FOLDERS
            for path in (self.data.root / folder).rglob("*")
            if path.is_file() and not is_temp_name(path) and (stat := path.stat())
        ]
        over, removed, idle_before = sum(size for _, size, _ in files) - max_bytes, 0, time.time() - min_idle_s
        for used, size, path in sorted(files):
            if removed >= over or used > idle_before:
                break
            path.unlink(missing_ok=True)
            removed += size
        return removed

    def trim_if_due(self, max_bytes: int, every_s: float = TRIM_EVERY_S) -> int:
        """`trim`, at most once per `every_s` per scratch folder and process (a trim walks the whole folder)."""
        with _TRIM_LOCK:
            now, last = time.monotonic(), _LAST_TRIM.get(self.data.root)
            if self.store is None or (last is not None and now - last < every_s):
                return 0
            _LAST_TRIM[self.data.root] = now
        return self.trim(max_bytes)

    def check(self) -> None:
        """ConfigError naming the fix when the store is unreachable (see `ObjectStore.check`)."""
        if self.store is not None:
            self.store.check()


def modified_at(info: dict) -> datetime:
    """When the object of `info` (`ObjectStore.info`, `listing`) last changed: S3's `LastModified`, or
    another filesystem's `mtime` (a datetime or seconds since the epoch)."""
    modified = info.get("LastModified") or info.get("mtime") or 0
    return modified if isinstance(modified, datetime) else datetime.fromtimestamp(float(modified), UTC)


def _current(path: Path, info: dict) -> bool:
    """True when the local file has the object's size and is not older than it."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    return stat.st_size == info.get("size") and stat.st_mtime >= modified_at(info).timestamp()


def storage_for(data_root: Path, url: str | None, endpoint_url: str | None) -> Storage:
    """The Storage of a config's data root (its scratch folder when `url` names a store)."""
    return Storage(DataRoot(Path(data_root)), ObjectStore(url, endpoint_url) if url else None)
