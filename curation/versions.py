"""Manifest versions: their names, the next free one, the last published, and the code version stamped in them.

In: the config (its data root's `manifests/` folder), a version name, the rows a publish would write. Out:
whether a name is allowed (`VERSION_PATTERN`), the next free `vNNNN` (`next_version`), the folder published
last (`latest_version`), whether rows equal that folder's (`same_rows`), the code's version (`code_version`:
`git describe`, else the package's). The errors a publish raises for a version: `VersionExistsError` (never
overwritten), `NothingChangedError` (the rows equal the last version's).
"""

from __future__ import annotations

import re
import subprocess
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

from dvmset.config import Config
from dvmset.errors import PublishError
from dvmset.storage import is_temp_name
from manifests.schema import ManifestError, ManifestRow, manifest_path, manifest_table, read_manifest
from manifests.split import Split

VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class VersionExistsError(PublishError):
    """The manifest (or release) version asked for exists already; nothing was written."""


class NothingChangedError(PublishError):
    """The rows to publish equal the last version's; nothing was written (publish with `force`
    to write an identical version anyway). `last`: that version's folder."""

    def __init__(self, version: str, last: Path):
        self.version, self.last = version, Path(last)
        super().__init__(
            f"nothing changed since {self.last.name} (the same rows on the same sides); {version} was not written. "
            "Publish with --force to write it anyway"
        )

    def __reduce__(self):
        return type(self), (self.version, self.last)


def manifests_root(config: Config) -> Path:
    """The data root's `manifests/` folder, made current from the object store first when there is one."""
    storage = config.data_storage()
    return storage.fetch_folder(storage.data.manifests_dir)


def next_version(config: Config) -> str:
    """`v0001`, or one more than the highest `vNNNN` folder under the manifests root."""
    root = manifests_root(config)
    numbers = [int(p.name[1:]) for p in root.glob("v[0-9][0-9][0-9][0-9]*") if p.name[1:].isdigit()]
    return f"v{max(numbers, default=0) + 1:04d}"


def latest_version(config: Config) -> Path | None:
    """The manifest folder published last (by the time its train file was written), or None."""
    root = manifests_root(config)
    folders = [p for p in root.glob("*") if not is_temp_name(p) and manifest_path(p, Split.TRAIN).is_file()]
    return max(folders, key=lambda p: (manifest_path(p, Split.TRAIN).stat().st_mtime_ns, p.name), default=None)


def same_rows(rows: dict[Split, list[ManifestRow]], last: Path) -> bool:
    """True when `rows` are exactly the rows of the manifest folder `last` (metadata aside)."""
    for side in Split:
        try:
            old = read_manifest(manifest_path(last, side))
        except (ManifestError, OSError):
            return False  # another schema or unreadable: publishing again is a change
        if not manifest_table(rows[side]).equals(old):
            return False
    return True


def code_version() -> str:
    """`git describe --always --dirty` of the source tree when it is a git checkout, else the
    installed package version."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        try:
            return f"dvmset {package_version('dvmset')}"
        except PackageNotFoundError:
            return "unknown"
