"""Objects in the object store that the catalog does not know (orphans), and their removal.

A task uploads under final keys before its catalog write (the commit point), so a task killed in between
leaves objects the catalog never recorded. The video's next lease holder removes or overwrites them; what
no later run takes over stays: a video dropped from the catalog, a raw file under another name, a clip
of an older plan, a stage reset by hand. This scan finds those.

In: the run's `Storage` (with a store) and catalog, and `min_age_s`. Out: `find_orphans` -> the orphan
objects under raw/, stems/ and clips/ (one listing per folder), judged by the catalog:
- `raw/<video>/...` is known while the video's downloaded file (`media_path`) is in that folder;
- `stems/<video>/...` while the video has been separated (`separate_version`);
- `clips/<clip>/...` while the clip is in the catalog and not retired.
An object of a video whose work lease is live, or modified in the last `min_age_s` (default: a work
lease's length), is never an orphan: its owner may be about to record it. manifests/ and releases/ are not
judged (the catalog does not list versions). `remove_orphans` deletes the ones found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from curation import leases
from dvmset.catalog import Catalog
from dvmset.catalog.work import WORK_LEASE_S
from dvmset.ids import dirname_to_id, id_to_dirname, split_clip_id
from dvmset.records import ClipStatus
from dvmset.store import Storage, modified_at

JUDGED_FOLDERS = ("raw", "stems", "clips")


@dataclass(frozen=True)
class Orphan:
    """An object the catalog does not know: its path relative to the data root, size and last change."""

    relative: str
    size_bytes: int
    modified_at: datetime

    @property
    def folder(self) -> str:
        """The data root's folder it is in: raw, stems or clips."""
        return self.relative.split("/")[0]


def find_orphans(storage: Storage, catalog: Catalog, min_age_s: float = WORK_LEASE_S) -> list[Orphan]:
    """The orphans under raw/, stems/ and clips/ of the store (see the module docstring), by path; none
    without a store."""
    known = _known_folders(catalog)
    newest = datetime.now(UTC) - timedelta(seconds=min_age_s)
    unknown: list[Orphan] = []
    for folder in JUDGED_FOLDERS:
        for path, info in storage.listing(storage.data.root / folder).items():
            relative = storage.data.relative(path)
            item = "/".join(relative.split("/")[:2])
            orphan = Orphan(relative, int(info.get("size") or 0), modified_at(info))
            if item not in known and orphan.modified_at < newest:
                unknown.append(orphan)
    leased = _leased_videos(catalog, {_video_of(orphan.relative) for orphan in unknown} - {None})
    return sorted((orphan for orphan in unknown if _video_of(orphan.relative) not in leased), key=lambda o: o.relative)


def remove_orphans(storage: Storage, orphans: list[Orphan]) -> None:
    """Delete the orphans' objects (a request per thousand)."""
    storage.delete([storage.data.resolve(orphan.relative) for orphan in orphans])


def _known_folders(catalog: Catalog) -> set[str]:
    """The folders (`raw/<video>`, `stems/<video>`, `clips/<clip>`) whose objects the catalog knows."""
    known: set[str] = set()
    for video in catalog.videos():
        if video.media_path:
            known.add("/".join(video.media_path.split("/")[:2]))
        if video.separate_version is not None:
            known.add(f"stems/{id_to_dirname(video.video_id)}")
    known |= {
        f"clips/{id_to_dirname(clip.clip_id)}" for clip in catalog.clips() if clip.status is not ClipStatus.RETIRED
    }
    return known


def _video_of(relative: str) -> str | None:
    """The video id an object belongs to by its folder's name, or None for a name that is no id."""
    parts = relative.split("/")
    if len(parts) < 3:
        return None
    name = dirname_to_id(parts[1])
    if parts[0] != "clips":
        return name
    try:
        return split_clip_id(name)[0]
    except ValueError:
        return None


def _leased_videos(catalog: Catalog, video_ids: set[str]) -> set[str]:
    """Those of `video_ids` under a live work lease."""
    return {video_id for video_id in video_ids if leases.live(catalog.work_lease(video_id))}
