"""Media out of generation: the music as a file, the music muxed under the video.

In: a video file (any container ffmpeg reads), a mono waveform `[S]` float at its sampling rate.
Out:
- `write_music`: the waveform as WAV (16-bit PCM) or FLAC (16-bit), chosen by the file's suffix;
- `mux_music`: a copy of the video whose first video stream is copied packet for packet (the picture is
  bit-exact) and whose only audio stream is the music as AAC; the video's other streams are dropped.
Every file is written under a temporary name and renamed into place (`dvmset.storage.atomic_path`), so a
failed or killed run never leaves a half file under the final name. Failures of ffmpeg raise a
`StageError` with the tail of its stderr; an unsupported output suffix raises a `ValueError` (check it
early with `check_output_suffixes`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from dvmset.errors import ReasonCode
from dvmset.storage import atomic_path
from dvmset.tools import require_tool, run_tool

AAC_BITRATE = "192k"
VIDEO_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}  # suffix -> ffmpeg muxer
MUSIC_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16")}  # suffix -> soundfile format, subtype
_FASTSTART_MUXERS = {"mp4", "mov"}
_TIMEOUT_S = 3600.0


def check_output_suffixes(video_out: Path, music_out: Path | None = None) -> None:
    """ValueError unless `video_out` ends in a container `mux_music` writes and `music_out` (if any) in
    a format `write_music` writes."""
    if video_out.suffix.lower() not in VIDEO_MUXERS:
        raise ValueError(f"cannot write video to {video_out}: use one of {', '.join(VIDEO_MUXERS)}")
    if music_out is not None and music_out.suffix.lower() not in MUSIC_FORMATS:
        raise ValueError(f"cannot write music to {music_out}: use one of {', '.join(MUSIC_FORMATS)}")


def write_music(path: Path, waveform: np.ndarray, sampling_rate_hz: int) -> Path:
    """Write a mono waveform `[S]` (float, within [-1, 1]) to `path` (.wav or .flac), atomically."""
    path = Path(path)
    check_output_suffixes(Path("x.mp4"), path)
    file_format, subtype = MUSIC_FORMATS[path.suffix.lower()]
    with atomic_path(path) as temp:
        sf.write(temp, np.clip(waveform, -1.0, 1.0), sampling_rate_hz, format=file_format, subtype=subtype)
    return path


def mux_music(video_path: Path, waveform: np.ndarray, sampling_rate_hz: int, out_path: Path) -> Path:
    """Write `out_path`: `video_path`'s first video stream copied, the waveform `[S]` as its AAC audio."""
    out_path = Path(out_path)
    check_output_suffixes(out_path)
    muxer = VIDEO_MUXERS[out_path.suffix.lower()]
    with tempfile.TemporaryDirectory(prefix="dvmset-mux-") as folder:
        music = write_music(Path(folder) / "music.wav", waveform, sampling_rate_hz)
        with atomic_path(out_path) as temp:
            command = [
                require_tool("ffmpeg"),
                "-nostdin",
                "-v",
                "error",
                "-y",
                "-i",
                str(video_path),
                "-i",
                str(music),
                "-map",
                "0:v:0",
                "-map",
                "1:a:0",
                "-c:v",
                "copy",
                "-c:a",
                "aac",
                "-b:a",
                AAC_BITRATE,
                "-f",
                muxer,
            ]
            if muxer in _FASTSTART_MUXERS:
                command += ["-movflags", "+faststart"]
            run_tool([*command, str(temp)], _TIMEOUT_S, ReasonCode.INTERNAL_ERROR, "muxing the music")
    return out_path
