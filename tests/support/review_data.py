"""A small review catalog with real clip files: for the labeling app's tests and `bench/labeling.py`."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from dvmset.catalog import Catalog
from dvmset.records import (
    Candidate,
    ClipRecord,
    Download,
    ModelStamp,
    PrescreenFlag,
    ProbeInfo,
    SourceKind,
    SourceMetadata,
)
from dvmset.storage import MEDIA_STEM, DataRoot
from tests.support.catalogs import KEYS, make_clip

EVIL_TITLE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold</b>'
PROBE = ProbeInfo(
    duration_s=240.0,
    size_bytes=1,
    container="mp4",
    video_codec="h264",
    width=160,
    height=120,
    fps=25.0,
    audio_codec="aac",
    sample_rate_hz=44100,
    channels=2,
)
REVIEW_SCORES = {  # `review_clip`'s prescreen scores, over `make_clip`'s
    "silence_s": 1.0,
    "longest_silence_s": 1.0,
    "non_music_s": 1.0,
    "scene_cuts_s": (1.0, 2.0),
    "flags": (PrescreenFlag.NON_MUSIC,),
}
STAND_IN = ModelStamp("tiny-random-demo", "5e" * 32, stand_in=True)  # as the demo's stand-in separator records


@dataclass(frozen=True)
class ReviewData:
    data_root: Path
    catalog_url: str
    clip_ids: list[str]  # in queue order (priority, highest first)


def make_review_data(
    root: Path, clip_media: tuple[Path, Path], videos: int = 3, clips_per_video: int = 4
) -> ReviewData:
    """A catalog with `videos` x `clips_per_video` pending clips (distinct priorities), the first video
    titled with HTML and script, and their files under `<root>/data/clips/`."""
    data_root = DataRoot(root / "data").ensure()
    url = f"sqlite:///{data_root.catalog_path}"
    catalog = Catalog.open(url)
    clips = []
    for v in range(videos):
        video_id = f"youtube:vid{v}"
        title = EVIL_TITLE if v == 0 else f"video {v}"
        catalog.add_candidates(
            [Candidate(video_id, f"https://example.invalid/{v}", SourceKind.PLATFORM_SEARCH, "food commercial", title)]
        )
        meta = SourceMetadata(title=title, channel=f"channel & co {v}")
        source = data_root.relative(data_root.raw_dir(video_id) / f"{MEDIA_STEM}.mp4")
        catalog.mark_downloaded(Download(video_id, source, meta), "download/1")
        catalog.mark_probed(video_id, PROBE, "probe/1")
        catalog.mark_separated(video_id, "htdemucs", KEYS.separate)
        for c in range(clips_per_video):
            clip = review_clip(data_root, video_id, 60.0 * c, priority=float(videos * clips_per_video - len(clips)))
            _link(clip_media[0], data_root.root / clip.video_path)
            _link(clip_media[1], data_root.root / clip.music_path)
            catalog.save_clip(clip)
            clips.append(clip.clip_id)
        catalog.mark_clipped(video_id, clips_per_video, KEYS.clip)
    catalog.close()
    return ReviewData(data_root.root, url, clips)


def mark_stand_in(catalog_url: str, video_id: str) -> list[str]:
    """Record a video of `make_review_data` as separated by the stand-in `STAND_IN` (random
    weights), as the demo records it: the video's models and every clip marked. Returns its clip ids."""
    catalog = Catalog.open(catalog_url)
    catalog.mark_separated(video_id, STAND_IN.model_id, KEYS.separate, stand_in=True, models=[STAND_IN])
    clips = catalog.clips(video_id)
    for clip in clips:
        catalog.save_clip(replace(clip, separator_model_id=STAND_IN.model_id, stand_in=True))
    catalog.mark_clipped(video_id, len(clips), KEYS.clip)
    catalog.close()
    return [clip.clip_id for clip in clips]


def review_clip(data_root: DataRoot, video_id: str, start_s: float, priority: float) -> ClipRecord:
    """A pending clip as the review queue shows it: a second of silence, flagged non-music, its files
    under `data_root`."""
    return make_clip(video_id, start_s, data_root=data_root, limited=False, priority=priority, **REVIEW_SCORES)


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
