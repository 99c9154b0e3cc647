"""The source's own audio for a clip, beside the processed music: what the original/processed
toggle (key `o`) plays, to judge whether the vocals are really gone.

In: a clip and its video record (the downloaded source, `raw/<video_id>/...`). Out: an MP4 audio
file of the source's audio over the clip's span, cut once by ffmpeg into the app's cache
(`<data root>/labeling-cache/original/<clip dir>.m4a`, written to a temporary name and renamed):
the source's own audio stream copied where the probe found one that browsers play in MP4 (AAC,
MP3, Opus: a few hundredths of a second of CPU, cut to the packet, about 20 ms), else encoded to
AAC (about 1 s of CPU for a 60 s clip),
served by Gradio's file route (the cache folder is one of the app's `allowed_paths`). A clip
whose source file is gone (not downloaded, or cleaned up) has no original audio: the toggle says so.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from dvmset.ids import id_to_dirname
from dvmset.records import ClipRecord, VideoRecord
from dvmset.storage import DataRoot, atomic_path
from dvmset.store import ObjectStore, Storage
from labeling_ui.media import FILE_ROUTE

log = logging.getLogger(__name__)

COPIED_CODECS = frozenset({"aac", "mp3", "opus"})  # ffprobe's names of the audio codecs browsers play in MP4


@dataclass(frozen=True)
class OriginalAudio:
    data_root: Path
    store: ObjectStore | None = None  # the object store behind the data root, if any

    @property
    def cache_dir(self) -> Path:
        return DataRoot(Path(os.path.realpath(self.data_root))).labeling_cache_dir("original")

    def path(self, clip_id: str) -> Path:
        return self.cache_dir / f"{id_to_dirname(clip_id)}.m4a"

    def source(self, video: VideoRecord | None) -> Path | None:
        """The downloaded source file of `video`, where it is still on disk (or in the store: fetched)."""
        if video is None or not video.media_path:
            return None
        try:
            path = DataRoot(self.data_root).resolve(video.media_path)
        except ValueError:
            return None
        Storage(DataRoot(self.data_root), self.store).fetch(path)
        return path if path.is_file() else None

    def url(self, clip: ClipRecord, video: VideoRecord | None) -> str | None:
        """The URL the toggle plays (the file may still be being cut: `ensure`), or None without a source."""
        if self.source(video) is None:
            return None
        return FILE_ROUTE + quote(str(self.path(clip.clip_id)))

    def ensure(self, clip: ClipRecord, video: VideoRecord | None) -> Path | None:
        """Cut the clip's span of the source's audio into the cache, unless it is there; None when it cannot be."""
        target = self.path(clip.clip_id)
        if target.is_file():
            return target
        source = self.source(video)
        if source is None:
            return None
        cut = [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-ss",
            f"{clip.start_s:.3f}",
            "-t",
            f"{clip.end_s - clip.start_s:.3f}",
            "-i",
            str(source),
            "-map",
            "0:a:0",
        ]
        encode = ["-ac", "2", "-c:a", "aac", "-b:a", "128k"]
        playable = video is not None and video.probe is not None and video.probe.audio_codec in COPIED_CODECS
        for codec in (["-c:a", "copy"], encode) if playable else (encode,):
            try:
                with atomic_path(target) as temp:
                    subprocess.run([*cut, *codec, "-f", "mp4", str(temp)], check=True, capture_output=True, timeout=120)
                return target
            except (OSError, subprocess.SubprocessError) as exc:
                failure = exc
        log.warning("cannot cut the original audio of %s from %s: %s", clip.clip_id, source, failure)
        return None
