"""Hand-made manifest rows for the manifest, card, check, release and model tests: video and clip records
(`make_video`, `make_clip`), rows of them (`make_row`), a good split of 4 videos (`dataset_rows`), and that
split published with tiny media (`publish`: a lavfi test pattern and a tone per clip, both manifests)."""

from __future__ import annotations

import math
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import soundfile as sf

from dvmset.ids import make_clip_id
from dvmset.records import (
    ClipLoudness,
    ClipRecord,
    ClipStatus,
    ClipVersions,
    Decision,
    PrescreenFlag,
    PrescreenScores,
    RejectReason,
    SourceKind,
    SourceMetadata,
    VideoRecord,
    VideoStatus,
)
from dvmset.storage import DataRoot
from dvmset.tools import require_tool
from manifests.media_facts import MediaFacts, music_facts, video_facts
from manifests.schema import MEDIA_ROOT_KEY, ManifestRow, manifest_path, manifest_row, media_root_of, write_manifest
from manifests.split import Split

FOOD, CITY = "food commercial", "city video guide"
CLIP_S = 3.0  # short clips keep the media small
FPS = 5.0
SAMPLE_RATE_HZ = 44100


def make_video(video_id: str, queries: tuple[str, ...], webpage_url: str | None = None) -> VideoRecord:
    platform = video_id.split(":")[0]
    return VideoRecord(
        video_id=video_id,
        url=f"https://{platform}.example/{video_id}",
        platform=platform,
        source=SourceKind.PLATFORM_SEARCH,
        status=VideoStatus.CLIPPED,
        queries=queries,
        metadata=SourceMetadata(
            title=f"title of {video_id}", channel="a channel", license="cc-by", webpage_url=webpage_url
        ),
    )


def make_clip(video_id: str, start_s: float, silent: bool = False) -> ClipRecord:
    clip_id = make_clip_id(video_id, start_s)
    folder = DataRoot(Path(".")).clip_dir(clip_id).as_posix()
    return ClipRecord(
        clip_id=clip_id,
        video_id=video_id,
        start_s=start_s,
        end_s=start_s + CLIP_S,
        status=ClipStatus.ACCEPTED,
        fps=FPS,
        video_path=f"{folder}/video.mp4",
        music_path=f"{folder}/music.flac",
        separator_model_id="htdemucs",
        loudness=ClipLoudness(
            before_lufs=-math.inf if silent else -21.5,
            after_lufs=-14.0,
            true_peak_dbtp=-1.2,
            gain_db=7.5,
            limited=False,
            silent=silent,
        ),
        prescreen=PrescreenScores(
            silence_s=0.5,
            longest_silence_s=0.5,
            speech_s=1.0,
            non_music_s=1.5,
            static_share=0.1,
            noise_score=0.2,
            scene_cuts_s=(0.8, 2.4),
            flags=(PrescreenFlag.NON_MUSIC,),
            priority=0.3,
        ),
        versions=ClipVersions(
            separate="separate/1+a", clip="clip/1+b", loudness="loudness/1+c", prescreen="prescreen/1+d"
        ),
    )


ACCEPT = Decision(ClipStatus.ACCEPTED, annotators=("ann",))
REJECT = Decision(ClipStatus.REJECTED, reasons=(RejectReason.NON_MUSIC,), annotators=("ann", "bob"))


# Stand-ins for measured media facts: rows made without media carry these; `publish` measures the real ones
UNMEASURED_VIDEO = MediaFacts(0, "0" * 64, CLIP_S)
UNMEASURED_MUSIC = MediaFacts(0, "0" * 64, CLIP_S, round(CLIP_S * SAMPLE_RATE_HZ), 120.0, 6)


def make_row(
    video: VideoRecord, start_s: float, group_id: str, split: Split, decision: Decision = ACCEPT, silent: bool = False
) -> ManifestRow:
    return manifest_row(
        video,
        make_clip(video.video_id, start_s, silent),
        decision,
        group_id,
        split,
        SAMPLE_RATE_HZ,
        video_facts=UNMEASURED_VIDEO,
        music_facts=UNMEASURED_MUSIC,
    )


def measured(row: ManifestRow, root: DataRoot) -> ManifestRow:
    """`row` with the facts of its media files as they are under `root` now."""
    video, music = video_facts(root.resolve(row.video_path)), music_facts(root.resolve(row.music_path))
    return replace(
        row,
        video_bytes=video.size_bytes,
        video_sha256=video.sha256,
        video_duration_s=video.duration_s,
        music_bytes=music.size_bytes,
        music_sha256=music.sha256,
        music_duration_s=music.duration_s,
        music_samples=music.samples,
        tempo_bpm=music.tempo_bpm,
        beat_count=music.beat_count,
    )


FOOD1 = make_video("youtube:food1", (FOOD,))
FOOD2 = make_video("youtube:food2", (FOOD,))
CITY1 = make_video("youtube:city1", (CITY, FOOD), webpage_url="https://www.youtube.com/watch?v=city1")
CITY2 = make_video("vimeo:city2", (CITY,))


def dataset_rows() -> dict[Split, list[ManifestRow]]:
    """A good split: 4 videos in 4 groups, both queries on both sides, one rejected clip, one silent."""
    return {
        Split.TRAIN: [
            make_row(FOOD1, 0.0, "g-food1", Split.TRAIN),
            make_row(FOOD1, 3.0, "g-food1", Split.TRAIN),
            make_row(FOOD1, 6.0, "g-food1", Split.TRAIN, decision=REJECT),
            make_row(CITY1, 0.0, "g-city1", Split.TRAIN),
        ],
        Split.TEST: [
            make_row(FOOD2, 0.0, "g-food2", Split.TEST, silent=True),
            make_row(CITY2, 0.0, "g-city2", Split.TEST),
        ],
    }


def make_test_video(path: Path, duration_s: float) -> Path:
    """A tiny H.264 test pattern of `duration_s` at `FPS`, made with ffmpeg's lavfi."""
    path.parent.mkdir(parents=True, exist_ok=True)
    args = [require_tool("ffmpeg"), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size=64x36:rate={FPS:g}"]
    subprocess.run([*args, "-t", f"{duration_s}", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def write_music(path: Path, duration_s: float) -> None:
    """A stereo 16-bit FLAC of a 440 Hz tone lasting `duration_s`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(duration_s * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    tone = 0.1 * np.sin(2 * np.pi * 440.0 * t)
    sf.write(path, np.stack([tone, tone], axis=1), SAMPLE_RATE_HZ, format="FLAC", subtype="PCM_16")


def publish(
    data_root: Path, manifest_dir: Path, rows: dict[Split, list[ManifestRow]], video_template: Path
) -> dict[Split, list[ManifestRow]]:
    """The media every row points to (the video a copy of `video_template`), and the two manifests,
    with the media measured and the media root recorded as publish does; returns the rows written."""
    root = DataRoot(data_root)
    for row in (row for split_rows in rows.values() for row in split_rows):
        write_music(root.resolve(row.music_path), row.duration_s)
        root.resolve(row.video_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(video_template, root.resolve(row.video_path))
    metadata = {"manifest_version": manifest_dir.name, MEDIA_ROOT_KEY: media_root_of(manifest_dir, data_root)}
    written = {split: [measured(row, root) for row in split_rows] for split, split_rows in rows.items()}
    for split, split_rows in written.items():
        write_manifest(split_rows, manifest_path(manifest_dir, split), metadata)
    return written


def rows_of(table: pa.Table) -> list[ManifestRow]:
    """A manifest table back as rows (lists as tuples)."""
    return [
        ManifestRow(**{key: tuple(value) if isinstance(value, list) else value for key, value in row.items()})
        for row in table.to_pylist()
    ]
