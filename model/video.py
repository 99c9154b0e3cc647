"""Decode a clip's video into RGB frames at a fixed frame rate, in batches, with one ffmpeg run.

In: a video file (any frame rate ffmpeg reads), the frame rate wanted (25 fps for VidMusician), the
short edge in pixels the frames are scaled down to (the image processor's resize target, so that
720p frames are not piped and resized at full size), and a batch size.
Out: an iterator of uint8 arrays `[B, H, W, 3]`, the last batch possibly shorter; frame `i` is the
picture shown at `i / fps` seconds (ffmpeg's `fps` filter). Frames are never scaled up. The video is
decoded as stored (`-noautorotate`): clips from the clip stage are re-encoded and carry no rotation.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dvmset.errors import ReasonCode
from dvmset.tools import PROBE_TIMEOUT_S, STDERR_TAIL_CHARS, require_tool, run_ffprobe
from model.errors import FeatureError

_RGB_CHANNELS = 3


def probe_video_size(video_path: Path) -> tuple[int, int]:
    """`(width, height)` in pixels of the first video stream, as stored."""
    options = ["-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0:s=x"]
    what = f"reading {video_path}"
    listing = run_ffprobe(video_path, options, PROBE_TIMEOUT_S, ReasonCode.DECODE_ERROR, what, error=FeatureError)
    fields = listing.strip().split("x")
    if len(fields) != 2 or not all(field.isdigit() for field in fields):
        raise FeatureError(ReasonCode.NO_VIDEO_STREAM, f"{video_path} has no video stream")
    return int(fields[0]), int(fields[1])


def scaled_size(width: int, height: int, short_edge_px: int) -> tuple[int, int]:
    """`(width, height)` with the short edge at `short_edge_px` and the long edge at
    `int(short_edge_px * long / short)` (transformers' shortest-edge rule); unchanged when the
    short edge is already that small or smaller."""
    short, long = min(width, height), max(width, height)
    if short <= short_edge_px:
        return width, height
    new_long = int(short_edge_px * long / short)
    return (short_edge_px, new_long) if width <= height else (new_long, short_edge_px)


def iter_frame_batches(video_path: Path, fps: int, short_edge_px: int, batch_size: int) -> Iterator[np.ndarray]:
    """Frames `[B, H, W, 3]` uint8 at `fps`, `batch_size` at a time (see the module docstring)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    width, height = scaled_size(*probe_video_size(video_path), short_edge_px)
    frame_bytes = width * height * _RGB_CHANNELS
    command = [
        require_tool("ffmpeg"),
        "-v",
        "error",
        "-nostdin",
        "-noautorotate",
        "-i",
        str(video_path),
        "-map",
        "0:v:0",
        "-vf",
        f"fps={fps},scale={width}:{height}:flags=bicubic",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "pipe:1",
    ]
    num_frames = 0
    with (
        tempfile.TemporaryFile() as stderr,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr) as process,
    ):
        try:
            while chunk := process.stdout.read(frame_bytes * batch_size):
                if len(chunk) % frame_bytes:
                    raise FeatureError(ReasonCode.DECODE_ERROR, f"ffmpeg stopped inside a frame of {video_path}")
                num_frames += len(chunk) // frame_bytes
                yield np.frombuffer(chunk, dtype=np.uint8).reshape(-1, height, width, _RGB_CHANNELS)
        except BaseException:  # the consumer stopped early, or a truncated frame: stop ffmpeg
            process.kill()
            raise
        return_code = process.wait()
        if return_code != 0 or num_frames == 0:
            stderr.seek(0)
            message = stderr.read().decode("utf-8", "replace")[-STDERR_TAIL_CHARS:].strip()
            raise FeatureError(
                ReasonCode.DECODE_ERROR,
                f"ffmpeg decoded {num_frames} frames from {video_path} (exit status {return_code}): {message}",
            )
