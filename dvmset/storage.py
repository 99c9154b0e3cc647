"""The data-root layout (every folder and fixed file name under the root, named here once) and
atomic file writes.

Layout under one data root: `raw/<video_id>/` (the download and its `metadata.json`),
`stems/<video_id>/` (`accompaniment.flac`, `vocals_energy.npz`, `fingerprint.npz`),
`clips/<clip_id>/` (`video.mp4`, `music.flac`, `picture.npz`), `features/<clip_id>/` (the model's
caches), `manifests/<version>/`, `releases/<version>/`, `labeling-cache/<kind>/` (the labeling
app's), `state/` (tool state such as the yt-dlp download archive), and `catalog.sqlite` (the
default catalog). Every write goes to a temporary name in the final folder and is renamed into
place, so a killed run never leaves a half file under a final name.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dvmset.ids import id_to_dirname

TEMP_MARKER = ".tmp-"
CATALOG_FILE = "catalog.sqlite"  # the default SQLite catalog, in the root
ARCHIVE_FILE = "yt-dlp-archive.txt"  # in `state/`
# a video's raw folder: the download as `source.<its extension>`, and the platform's metadata
MEDIA_STEM = "source"
METADATA_FILE = "metadata.json"
# a video's stems folder
ACCOMPANIMENT_FILE = "accompaniment.flac"
ENERGY_FILE = "vocals_energy.npz"
FINGERPRINT_FILE = "fingerprint.npz"
# a clip's folder: written by the clip stage, read by the prescreen, publish and the model
VIDEO_FILE = "video.mp4"
MUSIC_FILE = "music.flac"
PICTURE_FILE = "picture.npz"
OLD_ANALYSIS_FILE = "analysis.mp4"  # the small frames clips had before picture.npz: deleted on sight


@dataclass(frozen=True)
class DataRoot:
    """Paths of the data root; pure path arithmetic, no I/O except `ensure`."""

    root: Path

    def ensure(self) -> DataRoot:
        self.root.mkdir(parents=True, exist_ok=True)
        return self

    def raw_dir(self, video_id: str) -> Path:
        return self.root / "raw" / id_to_dirname(video_id)

    def stems_dir(self, video_id: str) -> Path:
        return self.root / "stems" / id_to_dirname(video_id)

    def clip_dir(self, clip_id: str) -> Path:
        return self.clips_dir / id_to_dirname(clip_id)

    def features_dir(self, clip_id: str) -> Path:
        return self.root / "features" / id_to_dirname(clip_id)

    def clip_video_path(self, clip_id: str) -> Path:
        return self.clip_dir(clip_id) / VIDEO_FILE

    def clip_music_path(self, clip_id: str) -> Path:
        return self.clip_dir(clip_id) / MUSIC_FILE

    @property
    def clips_dir(self) -> Path:
        """The folder of every clip's folder."""
        return self.root / "clips"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def catalog_path(self) -> Path:
        return self.root / CATALOG_FILE

    @property
    def manifests_dir(self) -> Path:
        """Where publish writes `<version>/` manifest folders."""
        return self.root / "manifests"

    @property
    def releases_dir(self) -> Path:
        """Where a release writes `<version>/` folders."""
        return self.root / "releases"

    def labeling_cache_dir(self, kind: str) -> Path:
        """The labeling app's cache of one `kind` ("original", "timeline")."""
        return self.root / "labeling-cache" / kind

    def relative(self, path: Path) -> str:
        """A path under the root, as the POSIX string stored in the catalog."""
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(self.root)).as_posix()

    def resolve(self, relative_path: str) -> Path:
        """Inverse of `relative`; refuses anything that would leave the root."""
        root = Path(os.path.abspath(self.root))
        candidate = Path(os.path.abspath(root / relative_path))
        if candidate != root and root not in candidate.parents:
            raise ValueError(f"path {relative_path!r} leaves the data root")
        return candidate


def temp_name_for(final: Path) -> Path:
    """A unique temporary sibling of `final` that `is_temp_name` recognizes."""
    return final.with_name(f".{final.name}{TEMP_MARKER}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def is_temp_name(path: Path) -> bool:
    return path.name.startswith(".") and TEMP_MARKER in path.name


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it to `final` on success, delete it on error.

    The caller writes the whole file (or folder) at the yielded path.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_name_for(final)
    try:
        yield temp
        os.replace(temp, final)
    except BaseException:
        _remove(temp)
        raise


def atomic_write_bytes(final: Path, data: bytes) -> None:
    with atomic_path(final) as temp:
        temp.write_bytes(data)


def atomic_write_text(final: Path, text: str) -> None:
    atomic_write_bytes(final, text.encode("utf-8"))


def remove_stale_temps(folder: Path) -> int:
    """Delete every temporary file in `folder` (recursively); return how many. Only for the holder of
    the work lease of the video the folder belongs to (`curation.leases`): no other live process
    writes there, so what it finds is a dead owner's."""
    if not folder.exists():
        return 0
    stale = [path for path in folder.rglob(f"*{TEMP_MARKER}*") if is_temp_name(path)]
    for path in stale:
        _remove(path)
    return len(stale)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        for child in sorted(path.rglob("*"), reverse=True):
            child.rmdir() if child.is_dir() and not child.is_symlink() else child.unlink()
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()
