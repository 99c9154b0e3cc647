"""What the manifest records about each media file, measured from its bytes: size, SHA-256, and
the duration a real decode gives (with the sample count, tempo and beat count for music).

In: a path. Out: a `MediaFacts` (`music_facts`: the FLAC read once into memory, hashed, then
decoded in full by soundfile, whose frame count is the sample count; the channel mean at 22,050 Hz
gives the tempo and beat count (`manifests.music_rhythm`, as the model's rhythm features); `video_facts`: the file
hashed, then every packet of its first video stream read by ffprobe, the duration running from
the first packet's start to the last one's end). `file_digest` hashes a file in one pass; `decode`
decodes a file in full with ffmpeg (`-f null`) and returns the decoded seconds and any decoder
errors, for `dvmset manifests check --decode`. `measure_clip_media` measures every file of a list
of clips on a thread pool, for publish.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from dvmset.errors import PublishError, StageError
from dvmset.records import ClipRecord
from dvmset.storage import DataRoot
from dvmset.tools import require_tool, video_packets_duration_s
from manifests.music_rhythm import ANALYSIS_RATE_HZ, beat_summary, resample_mono

CHUNK_BYTES = 8 * 1024 * 1024
TOOL_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class MediaFacts:
    """One media file: bytes, SHA-256 (hex), decoded seconds; music only: samples per channel, tempo, beats."""

    size_bytes: int
    sha256: str
    duration_s: float
    samples: int | None = None
    tempo_bpm: float | None = None
    beat_count: int | None = None


def file_digest(path: Path) -> tuple[int, str]:
    """(bytes, SHA-256 hex) of `path`, read once in large chunks into one reused buffer."""
    digest, size = hashlib.sha256(), 0
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
            size += count
    return size, digest.hexdigest()


def music_facts(path: Path) -> MediaFacts:
    """Facts of a music file: read once, hashed, decoded in full, its beats tracked (RuntimeError /
    ValueError when it does not decode)."""
    data = Path(path).read_bytes()
    audio, rate_hz = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)  # [S, C]
    frames = audio.shape[0]
    beats = beat_summary(resample_mono(audio.mean(axis=1), rate_hz, ANALYSIS_RATE_HZ))
    return MediaFacts(
        len(data), hashlib.sha256(data).hexdigest(), frames / rate_hz, frames, beats.tempo_bpm, beats.beat_count
    )


def video_facts(path: Path) -> MediaFacts:
    """Facts of a video file: hashed, then its first video stream's duration from every packet
    (`dvmset.tools.video_packets_duration_s`; StageError when ffprobe cannot read it or finds no
    video packet)."""
    size, sha256 = file_digest(path)
    return MediaFacts(size, sha256, video_packets_duration_s(path))


@dataclass(frozen=True)
class Decoded:
    """What a full decode gave: seconds decoded, and the decoder's first error line (None when clean)."""

    duration_s: float
    error: str | None


def decode(path: Path, kind: str) -> Decoded:
    """Decode the first `kind` ("video" or "music") stream of `path` in full with ffmpeg into
    nothing (`-f null`); any line ffmpeg prints at level error counts as an error."""
    stream = "0:v:0" if kind == "video" else "0:a:0"
    args = [require_tool("ffmpeg"), "-nostdin", "-v", "error", "-i", f"file:{path}", "-map", stream]
    args += ["-f", "null", "-", "-progress", "pipe:1", "-nostats"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    out_us = [line.partition("=")[2] for line in done.stdout.splitlines() if line.startswith("out_time_us=")]
    seconds = max((int(value) for value in out_us if value.lstrip("-").isdigit()), default=0) / 1e6
    error = done.stderr.strip().splitlines()[0] if done.stderr.strip() else None
    if done.returncode != 0 and error is None:
        error = f"ffmpeg exited with {done.returncode}"
    return Decoded(seconds, error)


def measure_clip_media(data: DataRoot, clips: list[ClipRecord], workers: int | None = None) -> dict[str, MediaFacts]:
    """Relative path -> `MediaFacts` of every video and music file of `clips`, measured on
    `workers` threads (default: the CPU count; hashing, soundfile and ffprobe free the GIL).
    Hard links to one file are measured once. PublishError naming the clip and file when one
    cannot be read or decoded."""
    jobs = {clip.video_path: (clip, "video") for clip in clips} | {clip.music_path: (clip, "music") for clip in clips}
    by_file: dict[tuple[int, int, int, int], Future[MediaFacts]] = {}
    measure = {"video": video_facts, "music": music_facts}

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        pending: dict[str, Future[MediaFacts]] = {}
        for relative, (clip, kind) in jobs.items():
            path = data.resolve(relative)
            try:
                stat = path.stat()
            except OSError as error:
                message = f"clip {clip.clip_id}: its {kind} file {relative} cannot be read: {error}"
                raise PublishError(message) from error
            key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if key not in by_file:
                by_file[key] = pool.submit(measure[kind], path)
            pending[relative] = by_file[key]
        facts = {}
        for relative, future in pending.items():
            try:
                facts[relative] = future.result()
            except (RuntimeError, OSError, ValueError, StageError, subprocess.SubprocessError) as error:
                clip, kind = jobs[relative]
                raise PublishError(
                    f"clip {clip.clip_id}: its {kind} file {relative} does not decode: {error}"
                ) from error
    return facts
