"""Which files the labeling app may serve: clip files under `<data root>/clips/`, nothing else.

In: a path relative to the data root, as the catalog stores it. Out: the checked absolute
path (symlinks resolved) and the URL Gradio's file route serves it at. When the data root is an
object store, the data root here is this machine's scratch folder and a clip's file is fetched
into it from the store on first use (`dvmset.store.Storage.fetch`), then served as a local file,
with the same checks. Gradio itself is
launched with `allowed_paths=[MediaRoot.clips_dir]`, so a request for any other file (the
catalog, the users file, `/etc/passwd`) is refused by its file route too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from dvmset.errors import DvmsetError
from dvmset.storage import DataRoot
from dvmset.store import ObjectStore, Storage

FILE_ROUTE = "/gradio_api/file="


class MediaError(DvmsetError):
    """A clip's file is missing or lies outside the data root's clips folder."""


@dataclass(frozen=True)
class MediaRoot:
    data_root: Path
    store: ObjectStore | None = None  # the object store behind the data root, if any

    @property
    def clips_dir(self) -> Path:
        """The only folder served: `<data root>/clips`, symlinks resolved."""
        return Path(os.path.realpath(DataRoot(self.data_root).clips_dir))

    def path(self, relative_path: str) -> Path:
        """The real path of a catalog path; MediaError when it leaves `clips_dir` or is no file."""
        try:
            lexical = DataRoot(self.data_root).resolve(relative_path)
        except ValueError as exc:
            raise MediaError(str(exc)) from exc
        if self.clips_dir not in Path(os.path.realpath(lexical)).parents:
            raise MediaError(f"path {relative_path!r} is not under the data root's clips folder")
        Storage(DataRoot(self.data_root), self.store).fetch(lexical)
        real = Path(os.path.realpath(lexical))
        if self.clips_dir not in real.parents:  # a link the store's copy made is checked again
            raise MediaError(f"path {relative_path!r} is not under the data root's clips folder")
        if not real.is_file():
            raise MediaError(f"clip file {relative_path!r} is missing")
        return real

    def url(self, relative_path: str) -> str:
        """The URL of a checked catalog path on Gradio's file route."""
        return FILE_ROUTE + quote(str(self.path(relative_path)))
