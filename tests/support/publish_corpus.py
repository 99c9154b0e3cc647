"""A synthetic catalog of decided clips for `bench/publish.py`: SQLite rows, fingerprint files and media.

In: a `CorpusSpec` (how many videos, clips, queries, copies, rejections) and a config's data root. Out,
under that root: the catalog (rows inserted in bulk with SQLAlchemy Core), one fake fingerprint file per
video (4 s "scenes" of one jittered picture hash, colour grid and band energies each; a share of the
videos are trimmed copies of another), every clip's music and video file as a hard link to a few short
FLACs and 60 s H.264 test patterns, and `PLANTED_FILE` beside the root: the [copy, original] video ids.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import soundfile as sf

from curation import dedup
from dvmset.catalog import Catalog, tables
from dvmset.config import Config
from dvmset.ids import make_clip_id
from dvmset.records import ClipStatus, VideoStatus
from dvmset.storage import FINGERPRINT_FILE, DataRoot
from tests.support.generated_media import make_cut_video

CLIP_S = 60.0
TAIL_S = 30.0  # each video runs this much past its last clip (the dropped remainder)
SCENE_S = 4.0
MUSIC_RATE_HZ = 48000
REASONS = ("non_music", "noise", "static", "mismatch")
MAX_TRIM_S = 4.0  # a copy starts up to this much later than its original
PLANTED_FILE = "planted.json"  # [copy, original] video ids, written beside the data root
BATCH_ROWS = 5000
LINKS_PER_FILE = 10_000
PROBE = {  # every video's, less its duration
    "size_bytes": 1,
    "container": "mp4",
    "video_codec": "h264",
    "width": 1280,
    "height": 720,
    "fps": 25.0,
    "audio_codec": "aac",
    "sample_rate_hz": 48000,
    "channels": 2,
}


@dataclass(frozen=True)
class CorpusSpec:
    """What `build_catalog` makes; `fingerprint_s` 0: fingerprints cover the whole video."""

    videos: int
    clips_per_video: int
    queries: int
    duplicate_share: float
    reject_share: float
    fingerprint_s: float = 0.0
    seed: int = 0

    @property
    def duration_s(self) -> float:
        return self.clips_per_video * CLIP_S + TAIL_S


def fake_fingerprint(rng: np.random.Generator, duration_s: float) -> dedup.Fingerprint:
    """A fingerprint shaped like a real one of `duration_s`: steady 4 s scenes."""
    frames = int(duration_s * dedup.FRAME_RATE_HZ)
    rows = int(duration_s * dedup.AUDIO_RATE_HZ)
    scenes = int(np.ceil(duration_s / SCENE_S))
    scene_of_frame = (np.arange(frames) / dedup.FRAME_RATE_HZ // SCENE_S).astype(int)
    scene_of_row = (np.arange(rows) / dedup.AUDIO_RATE_HZ // SCENE_S).astype(int)
    hashes = rng.integers(1, 2**63, scenes, dtype=np.int64).astype(np.uint64)
    chroma = rng.integers(0, 256, (scenes, 32), dtype=np.uint8)
    bands = rng.integers(-100, 0, (scenes, dedup.AUDIO_BANDS), dtype=np.int8)
    return dedup.Fingerprint(flip_bits(hashes[scene_of_frame], rng), chroma[scene_of_frame], bands[scene_of_row])


def flip_bits(hashes: np.ndarray, rng: np.random.Generator, bits: int = 2) -> np.ndarray:
    """`hashes` with `bits` random bits of each flipped (the same bit twice undoes itself):
    the sample-to-sample jitter of a real picture hash, or a copy's re-encoding."""
    flipped = hashes.copy()
    for _ in range(bits):
        flipped ^= np.left_shift(np.uint64(1), rng.integers(0, 64, len(hashes)).astype(np.uint64))
    return flipped


def copy_of(original: dedup.Fingerprint, rng: np.random.Generator) -> dedup.Fingerprint:
    """A near-duplicate: the same content starting up to `MAX_TRIM_S` later (its start cut off),
    with two more random bits of every hash flipped."""
    trim = int(rng.integers(0, round(MAX_TRIM_S * dedup.FRAME_RATE_HZ) + 1))
    rows = round(trim * dedup.AUDIO_RATE_HZ / dedup.FRAME_RATE_HZ)
    return dedup.Fingerprint(
        flip_bits(original.frame_hashes[trim:], rng), original.frame_chroma[trim:], original.band_db[rows:]
    )


def own_fingerprint(seed: int, n: int, duration_s: float) -> dedup.Fingerprint:
    """Video number `n`'s own fake fingerprint, the same each time (so a copy can remake it)."""
    return fake_fingerprint(np.random.default_rng([seed, n]), duration_s)


def video_id_of(n: int) -> str:
    return f"youtube:v{n:08d}"


def build_catalog(config: Config, spec: CorpusSpec) -> None:
    """The synthetic catalog and the files publish reads (see the module docstring)."""
    rng = np.random.default_rng(spec.seed)
    data = DataRoot(config.data_root).ensure()
    catalog = Catalog.open(config.resolved_catalog_url)
    now = datetime.now(UTC)
    fingerprint_s = min(spec.duration_s, spec.fingerprint_s or spec.duration_s)
    originals: list[int] = []  # the numbers of the videos that are no copy
    planted: list[tuple[str, str]] = []  # (copy, original)
    videos, links, clips, labels = [], [], [], []
    for n in range(spec.videos):
        video_id = video_id_of(n)
        videos.append(video_row(n, spec, now))
        query = f"query {n % spec.queries:02d}"
        links.append({"video_id": video_id, "query": query, "source": "platform_search", "found_at": now})
        if originals and rng.random() < spec.duplicate_share:
            original = originals[int(rng.integers(len(originals)))]
            fingerprint = copy_of(own_fingerprint(spec.seed, original, fingerprint_s), rng)
            planted.append((video_id, video_id_of(original)))
        else:
            fingerprint = own_fingerprint(spec.seed, n, fingerprint_s)
            originals.append(n)
        stems = data.stems_dir(video_id)
        stems.mkdir(parents=True, exist_ok=True)
        dedup.save_fingerprint(fingerprint, stems / FINGERPRINT_FILE)
        for k in range(spec.clips_per_video):
            start_s = k * CLIP_S
            clip_id = make_clip_id(video_id, start_s)
            data.clip_dir(clip_id).mkdir(parents=True, exist_ok=True)
            os.link(music_file(data, len(clips)), data.clip_music_path(clip_id))
            os.link(video_file(data, len(clips)), data.clip_video_path(clip_id))
            clips.append(clip_row(clip_id, video_id, start_s, data, rng, now))
            rejected = rng.random() < spec.reject_share
            labels.append(label_row(len(labels) + 1, clip_id, f"annotator{n % 7}", rejected, rng, now))
    with catalog.engine.begin() as conn:
        for table, rows in (
            (tables.videos, videos),
            (tables.video_queries, links),
            (tables.clips, clips),
            (tables.labels, labels),
        ):
            for start in range(0, len(rows), BATCH_ROWS):
                conn.execute(table.insert(), rows[start : start + BATCH_ROWS])
    catalog.close()
    (data.root.parent / PLANTED_FILE).write_text(json.dumps(planted))


def video_row(n: int, spec: CorpusSpec, now: datetime) -> dict:
    """Video number `n`'s row: clipped, its clips' count and the fingerprint version set."""
    video_id = video_id_of(n)
    return {
        "video_id": video_id,
        "url": f"https://www.youtube.com/watch?v=v{n:08d}",
        "platform": "youtube",
        "source": "platform_search",
        "status": VideoStatus.CLIPPED.value,
        "title": f"video {n}",
        "channel": f"channel {n % 997}",
        "duration_s": spec.duration_s,
        "license": "Standard YouTube License",
        "webpage_url": f"https://www.youtube.com/watch?v=v{n:08d}",
        "extractor": "youtube",
        "media_path": f"raw/{video_id}/source.mp4",
        "probe": {"duration_s": spec.duration_s, **PROBE},
        "separator_model_id": "htdemucs",
        "separate_version": "separate/1+x",
        "clip_count": spec.clips_per_video,
        "fingerprint_version": dedup.FINGERPRINT_VERSION,
        "created_at": now,
        "updated_at": now,
    }


def label_row(event_id: int, clip_id: str, annotator: str, rejected: bool, rng: np.random.Generator, now) -> dict:
    """A decision on `clip_id`: accepted, or rejected for one random reason."""
    return {
        "event_id": event_id,
        "clip_id": clip_id,
        "annotator": annotator,
        "decision": (ClipStatus.REJECTED if rejected else ClipStatus.ACCEPTED).value,
        "reasons": [REASONS[int(rng.integers(len(REASONS)))]] if rejected else [],
        "note": None,
        "ts": now,
    }


def music_file(data: DataRoot, clip_number: int) -> Path:
    """The FLAC the `clip_number`-th clip's music file links to: a new one every `LINKS_PER_FILE`
    clips (a file system allows only so many hard links to one file)."""
    path = data.root / f"music-{clip_number // LINKS_PER_FILE}.flac"
    if not path.exists():
        sf.write(path, np.zeros((MUSIC_RATE_HZ // 10, 2), np.float32), MUSIC_RATE_HZ)
    return path


def video_file(data: DataRoot, clip_number: int) -> Path:
    """The MP4 the `clip_number`-th clip's video file links to (a real 60 s H.264 test pattern,
    small: 160x90 at 25 fps), a new one every `LINKS_PER_FILE` clips."""
    path = data.root / f"video-{clip_number // LINKS_PER_FILE}.mp4"
    if not path.exists():
        make_cut_video(path, CLIP_S, fps=25, size="160x90", hue=f"h={clip_number // LINKS_PER_FILE * 7}")
    return path


def clip_row(clip_id: str, video_id: str, start_s: float, data: DataRoot, rng: np.random.Generator, now) -> dict:
    return {
        "clip_id": clip_id,
        "video_id": video_id,
        "start_s": start_s,
        "end_s": start_s + CLIP_S,
        "status": ClipStatus.PENDING_REVIEW.value,
        "stage_version": "prescreen/1+x",
        "updated_at": now,
        "fps": 25.0,
        "video_path": data.relative(data.clip_video_path(clip_id)),
        "music_path": data.relative(data.clip_music_path(clip_id)),
        "separator_model_id": "htdemucs",
        "separate_version": "separate/1+x",
        "clip_version": "clip/1+x",
        "loudness_version": "loudness/1+x",
        "prescreen_version": "prescreen/1+x",
        "loudness_before_lufs": float(rng.normal(-20, 4)),
        "loudness_lufs": float(rng.normal(-14, 0.2)),
        "true_peak_dbtp": -1.5,
        "gain_db": 6.0,
        "limited": False,
        "silent": False,
        "silence_s": 0.0,
        "longest_silence_s": 0.0,
        "speech_s": float(rng.uniform(0, 8)),
        "non_music_s": float(rng.uniform(0, 8)),
        "static_share": float(rng.uniform(0, 1)),
        "noise_score": float(rng.uniform(0, 0.5)),
        "scene_cuts_s": sorted(float(t) for t in rng.uniform(0, CLIP_S, 12)),
        "flags": [],
        "priority": float(rng.uniform(0, 1)),
    }
