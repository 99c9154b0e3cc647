"""Which files the labeling app may serve: clip files under `<data root>/clips/`, nothing else.

In: a path relative to the data root, as the catalog stores it. Out: the checked absolute
path (symlinks resolved) and the URL Gradio's file route serves it at. Gradio itself is
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

FILE_ROUTE = "/gradio_api/file="


class MediaError(DvmsetError):
    """A clip's file is missing or lies outside the data root's clips folder."""


@dataclass(frozen=True)
class MediaRoot:
    data_root: Path

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
        real = Path(os.path.realpath(lexical))
        if self.clips_dir not in real.parents:
            raise MediaError(f"path {relative_path!r} is not under the data root's clips folder")
        if not real.is_file():
            raise MediaError(f"clip file {relative_path!r} is missing")
        return real

    def url(self, relative_path: str) -> str:
        """The URL of a checked catalog path on Gradio's file route."""
        return FILE_ROUTE + quote(str(self.path(relative_path)))
