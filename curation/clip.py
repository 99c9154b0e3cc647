"""Clip stage: cut a video into 60 s clips, each a re-encoded video with its music and a FLAC.

A clip is made in two cuts, so that the loudness stage can work on the music in between:

1. `cut_music(music_path, span, settings)`: the span of the music (the separated accompaniment, or any
   file ffmpeg decodes) as float samples, exactly `round(duration_s * 44100)` of them, 44.1 kHz
   stereo; music that ends before the span does is padded with silence. The clip step
   normalizes them and writes `music.flac` (see `loudness`).
2. `cut_video(video_path, span, music_path, out_path, settings, fps=...)`: `video.mp4`, exactly
   `round(duration_s * fps)` frames at a constant `fps`, starting at the frame nearest
   `start_s`, H.264 (x264 as `ClipConfig` says: by default preset superfast with mb-tree rate control,
   CRF 23, yuv420p) scaled down (area average: about half of bicubic's CPU from 720p) to at most
   `max_height` rows,
   with the clip's (normalized) music from its start as AAC 192 kb/s, 44.1 kHz stereo (FFmpeg's
   `fast` AAC coder: its default `twoloop` takes 2.5x the CPU and sounds no better at this
   bitrate), `+faststart`. The same input, settings and `threads` give the same bytes every run
   (x264's lookahead runs in step with its encoding: `_X264_IN_STEP`).
   The same decode also hands the clip's frames, scaled down to at most 256 px on the longer side,
   to `picture.read_y4m_analysis` through a pipe: `cut_video` returns the clip's `PictureAnalysis`
   (what the prescreen scores the picture with) without a second decode or an intermediate file.

`plan_clip_spans` says where the clips are; files go to `DataRoot.clip_dir(clip_id)`, each
written under a temporary name and renamed into place. Channels: libswresample's default
matrix down-mixes surround to stereo (ITU-R BS.775: L = FL + 0.707 FC + 0.707 BL/SL, LFE
dropped), scaled down as a whole when a row sums past 1 (`rematrix_maxval=1`) so a loud 5.1
mix never clips; mono becomes the same signal on both channels at 0.707 (-3 dB).
A failed cut raises `StageError(DECODE_ERROR)` with the tail of ffmpeg's stderr.
"""

from __future__ import annotations

import functools
import math
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from curation.picture import PictureAnalysis, read_y4m_analysis, small_frames_filter
from dvmset.config import ClipConfig
from dvmset.errors import ConfigError, ReasonCode
from dvmset.storage import atomic_path
from dvmset.tools import require_tool, run_tool, stream_tool

STAGE_VERSION = "clip/2"
CLIP_S = 60.0
MUSIC_SAMPLE_RATE_HZ = 44100

_READ_SLACK_S = 1.0
# x264's lookahead in the encoding thread, not a thread of its own (x264's default with frame threads): with
# MB-tree on, the threaded lookahead now and then has x264 code a stretch of frames differently with thread
# timing (a CPU shared by several cuts), so the same cut came out in other bytes; in step, the bytes depend on
# the input, the settings and the thread count alone, at the same CPU time (bench/README.md, compare_builds.py).
_X264_IN_STEP = "sync-lookahead=0"
_FRAME_TOLERANCE = 1e-6  # a duration this close under a whole frame (or clip) still counts as one


@dataclass(frozen=True)
class Span:
    """A stretch of the source, in seconds from its start."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def plan_clip_spans(duration_s: float, clip_s: float = CLIP_S, fps: float | None = None) -> list[Span]:
    """Consecutive clips of `clip_s` from 0; the remainder shorter than a clip is dropped.

    With `fps`, every clip is `round(clip_s * fps)` whole frames and starts on a frame, so
    `start_s * fps` and `duration_s * fps` are integers. A duration that is not a positive
    finite number gives no clips.
    """
    if not clip_s > 0 or (fps is not None and not fps > 0):
        raise ValueError(f"clip length ({clip_s} s) and frame rate ({fps}) must be positive")
    if not math.isfinite(duration_s) or duration_s <= 0:
        return []
    if fps is None:
        count = math.floor(duration_s / clip_s + _FRAME_TOLERANCE)
        return [Span(i * clip_s, (i + 1) * clip_s) for i in range(count)]
    frames_per_clip = max(1, round(clip_s * fps))
    count = math.floor(duration_s * fps + _FRAME_TOLERANCE) // frames_per_clip
    return [Span(i * frames_per_clip / fps, (i + 1) * frames_per_clip / fps) for i in range(count)]


def cut_music(music_path: Path, span: Span, settings: ClipConfig) -> np.ndarray:
    """The span of `music_path` (the separated accompaniment, or any file with sound) as float32
    `[round(duration_s * 44100), 2]` samples at 44.1 kHz, not rounded to any bit depth; ffmpeg gets
    `settings.timeout_s`."""
    sample_count = round(span.duration_s * MUSIC_SAMPLE_RATE_HZ)
    if sample_count < 1:
        raise ValueError(f"span {span} holds no sample")
    args = [
        require_tool("ffmpeg"),
        "-nostdin",
        "-v",
        "error",
        "-ss",
        f"{span.start_s:.6f}",
        "-t",
        f"{span.duration_s + _READ_SLACK_S:.6f}",
        "-i",
        f"file:{music_path}",
        "-map",
        "0:a:0",
        "-af",
        _music_filter(sample_count),
        "-c:a",
        "pcm_f32le",
        "-f",
        "f32le",
        "pipe:1",
    ]
    raw = run_tool(
        args,
        settings.timeout_s,
        ReasonCode.DECODE_ERROR,
        f"cutting the music of a clip from {music_path.name}",
        binary=True,
    )
    return np.frombuffer(raw, np.float32).reshape(sample_count, 2)


def cut_video(
    video_path: Path,
    span: Span,
    music_path: Path,
    out_path: Path,
    settings: ClipConfig,
    *,
    fps: float,
    threads: int = 0,
) -> PictureAnalysis:
    """Write the span of `video_path`'s picture, with `music_path` from its start as the sound,
    as `out_path` (see the module docstring), and return the `PictureAnalysis` of its frames (from the
    same decode, before compression); `settings` give the height cap, x264's preset, `x264_params`
    (`key=value:...`, on top of the preset; "" for none) and CRF, and ffmpeg's timeout; `threads` are
    those of the decoder, of the filters and of each encoder (0: ffmpeg's choice, about 1.5 per core)."""
    frame_count = round(span.duration_s * fps)
    if frame_count < 1:
        raise ValueError(f"span {span} at {fps} fps has no frame")
    # Seek half a frame early: ffmpeg keeps frames from the seek point on, so the first frame
    # kept is the one nearest start_s even where timestamps are rounded a hair below it.
    video_seek_s = max(0.0, span.start_s - 0.5 / fps)
    # trim, not -frames:v: reaching -frames:v closes the whole mp4, audio track included, early
    video_filter = (
        f"[0:v:0]setpts=PTS-STARTPTS,fps={_fps_fraction(fps)},trim=end_frame={frame_count},"
        f"scale=-2:'trunc(min(ih,{settings.max_height})/2)*2':flags=area,format=yuv420p,split[clip][full];"
        f"[full]{small_frames_filter()}[small]"
    )
    with atomic_path(out_path) as temp:
        args = [
            require_tool("ffmpeg"),
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-threads",
            str(threads),
            *(["-filter_complex_threads", str(threads)] if threads else []),
            "-ss",
            f"{video_seek_s:.6f}",
            "-t",
            f"{span.duration_s + _READ_SLACK_S:.6f}",
            "-i",
            f"file:{video_path}",
            "-i",
            f"file:{music_path}",
            "-filter_complex",
            video_filter,
            "-map",
            "[clip]",
            "-map",
            "1:a:0",
            "-af",
            _music_filter(round(span.duration_s * MUSIC_SAMPLE_RATE_HZ)),
            "-c:v",
            "libx264",
            "-preset",
            settings.x264_preset,
            "-crf",
            str(settings.crf),
            "-threads",
            str(threads),
            "-x264-params",
            ":".join(filter(None, (settings.x264_params, _X264_IN_STEP))),  # last: it wins over the settings'
            "-c:a",
            "aac",
            "-aac_coder",
            "fast",
            "-b:a",
            "192k",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            f"file:{temp}",
            "-map",
            "[small]",
            "-f",
            "yuv4mpegpipe",
            "pipe:1",
        ]
        picture = stream_tool(args, settings.timeout_s, ReasonCode.DECODE_ERROR, "cutting a clip", read_y4m_analysis)
    return picture


def check_x264_params(settings: ClipConfig) -> None:
    """ConfigError naming the options of `settings.x264_params` that x264 rejects (an unknown key, a bad
    value) with its preset: x264 itself only warns and encodes with the preset's own setting. One encode
    of a tiny frame, once per process and setting."""
    _check_x264_params(settings.x264_params, settings.x264_preset)


@functools.cache
def _check_x264_params(x264_params: str, preset: str) -> None:
    if not x264_params:
        return
    args = [
        require_tool("ffmpeg"),
        "-nostdin",
        "-v",
        "warning",
        "-f",
        "lavfi",
        "-i",
        "color=size=64x64:duration=0.04",
        "-frames:v",
        "1",
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-x264-params",
        x264_params,
        "-f",
        "null",
        "-",
    ]
    done = subprocess.run(args, capture_output=True, text=True, errors="replace", timeout=60)
    rejected = re.findall(r"Error parsing option '([^']*)'", done.stderr)
    if rejected or done.returncode != 0:
        detail = ", ".join(rejected) or done.stderr.strip()[-300:]
        raise ConfigError(f"clip.x264_params = {x264_params!r}: x264 rejects {detail}")


def _music_filter(sample_count: int) -> str:
    """44.1 kHz stereo (see the module docstring for the matrix), exactly `sample_count` samples."""
    return (
        f"aresample={MUSIC_SAMPLE_RATE_HZ}:ochl=stereo:rematrix_maxval=1,"
        f"apad=whole_len={sample_count},atrim=end_sample={sample_count}"
    )


def _fps_fraction(fps: float) -> str:
    """29.97002997 -> "30000/1001": the exact rate a probed float stands for."""
    fraction = Fraction(fps).limit_denominator(1001)
    return f"{fraction.numerator}/{fraction.denominator}"
