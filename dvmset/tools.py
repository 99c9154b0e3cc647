"""The external media tools (ffmpeg, ffprobe): where they are (one lookup, one clear error), and
running one (`run_tool`, or `stream_tool` to read its output while it runs) with its failure turned
into a `StageError`. The facts read with ffprobe: `run_ffprobe` runs it on a file with the options
that say what to show; `video_duration_s` (the first video stream's declared length) and
`video_packets_duration_s` (first packet's start to last packet's end) read a video's duration."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from dvmset.errors import ConfigError, ReasonCode, StageError

STDERR_TAIL_CHARS = 1500  # how much of a failed tool's stderr an error message keeps
PROBE_TIMEOUT_S = 120.0  # ffprobe reading a file's streams
PACKETS_TIMEOUT_S = 600.0  # ffprobe reading every packet of a stream
T = TypeVar("T")


class MissingToolError(ConfigError):
    """An external program (ffmpeg, ffprobe) is not installed: the machine's set-up, not a video's
    fault, so it stops a run instead of failing every video."""


def require_tool(name: str) -> str:
    """Path of `name` (ffmpeg, ffprobe) on PATH, or a `MissingToolError` that says how to install it."""
    path = shutil.which(name)
    if path is None:
        raise MissingToolError(f"{name} is not installed or not on PATH (Debian: apt-get install ffmpeg)")
    return path


def run_tool(
    args: list[str],
    timeout_s: float,
    reason: ReasonCode,
    what: str,
    *,
    error: type[StageError] = StageError,
    binary: bool = False,
) -> str | bytes:
    """Run `args` (a tool and its arguments) and return its stdout (bytes when `binary`, else text); a
    timeout or a non-zero exit raises `error(reason)` saying `what` failed, with the tail of the
    tool's stderr."""
    tool = Path(args[0]).name
    try:
        done = subprocess.run(args, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise error(reason, f"{what}: {tool} did not finish in {timeout_s:g} s") from exc
    if done.returncode != 0:
        raise _exit_error(error, reason, what, tool, done.returncode, done.stderr)
    return done.stdout if binary else done.stdout.decode(errors="replace")


def stream_tool(
    args: list[str],
    timeout_s: float,
    reason: ReasonCode,
    what: str,
    consume: Callable[[BinaryIO], T],
    *,
    error: type[StageError] = StageError,
) -> T:
    """Run `args` with its stdout handed to `consume` as it comes (a pipe: the tool waits while `consume`
    works) and return what `consume` returns once the tool has ended; a timeout or a non-zero exit raises
    `error(reason)` as `run_tool` does. What `consume` leaves unread is read and dropped."""
    tool = Path(args[0]).name
    expired = threading.Event()
    with tempfile.TemporaryFile() as stderr:
        with subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr) as process:
            timer = threading.Timer(timeout_s, lambda: (expired.set(), process.kill()))
            timer.start()
            try:
                result = consume(process.stdout)
                while process.stdout.read(1 << 16):  # what consume left: the tool must not block on it
                    pass
                process.wait()  # under the timer too: a tool may hang after closing its output
            except BaseException:
                process.kill()
                raise
            finally:
                timer.cancel()
        if expired.is_set():
            raise error(reason, f"{what}: {tool} did not finish in {timeout_s:g} s")
        if process.returncode != 0:
            stderr.seek(0)
            raise _exit_error(error, reason, what, tool, process.returncode, stderr.read())
    return result


def _exit_error(
    error: type[StageError], reason: ReasonCode, what: str, tool: str, returncode: int, stderr: bytes
) -> StageError:
    """`error(reason)` saying that `tool` exited with `returncode` while doing `what`, with its stderr's tail."""
    tail = stderr.decode(errors="replace").strip()[-STDERR_TAIL_CHARS:] or "no message"
    return error(reason, f"{what}: {tool} exited with {returncode}: {tail}")


def run_ffprobe(
    path: Path,
    options: list[str],
    timeout_s: float,
    reason: ReasonCode,
    what: str,
    *,
    error: type[StageError] = StageError,
) -> str:
    """ffprobe's text output about the file `path`, `options` saying what to show and how
    (`-select_streams`, `-show_entries`, `-of`); a failure raises `error(reason)` as `run_tool` does."""
    args = [require_tool("ffprobe"), "-v", "error", *options, f"file:{path}"]
    return run_tool(args, timeout_s, reason, what, error=error)


def video_duration_s(path: Path, *, error: type[StageError] = StageError) -> float:
    """Seconds of `path`'s first video stream (the container's when the stream carries none, as in
    Matroska). `error` with SOURCE_NOT_FOUND when there is no file, NOT_MEDIA when ffprobe cannot read
    it, NO_VIDEO_STREAM without a video stream, EMPTY_FILE when its length is unknown."""
    if not Path(path).is_file():
        raise error(ReasonCode.SOURCE_NOT_FOUND, f"no video at {path}")
    options = ["-select_streams", "v:0", "-show_entries", "stream=duration:format=duration", "-of", "json"]
    listing = run_ffprobe(path, options, PROBE_TIMEOUT_S, ReasonCode.NOT_MEDIA, f"reading {path}", error=error)
    info = json.loads(listing or "{}")
    if not info.get("streams"):
        raise error(ReasonCode.NO_VIDEO_STREAM, f"{path} has no video stream")
    for value in (info["streams"][0].get("duration"), info.get("format", {}).get("duration")):
        if value is not None and float(value) > 0:
            return float(value)
    raise error(ReasonCode.EMPTY_FILE, f"{path} has a video stream of no known length")


def video_packets_duration_s(path: Path, *, error: type[StageError] = StageError) -> float:
    """Seconds from the first video packet's start to the last one's end (ffprobe reads every packet):
    what a player shows, whatever the header says. `error` with NOT_MEDIA when ffprobe cannot read
    `path`, NO_VIDEO_STREAM when it finds no video packet."""
    options = ["-select_streams", "v:0", "-of", "csv=p=0", "-show_entries", "packet=pts_time,duration_time"]
    listing = run_ffprobe(path, options, PACKETS_TIMEOUT_S, ReasonCode.NOT_MEDIA, f"reading {path}", error=error)
    starts, ends = [], []
    for line in listing.split():
        pts, _, duration = line.partition(",")
        if pts in ("", "N/A"):
            continue
        starts.append(float(pts))
        ends.append(float(pts) + (float(duration) if duration not in ("", "N/A") else 0.0))
    if not starts:
        raise error(ReasonCode.NO_VIDEO_STREAM, f"{path}: no video packet")
    return max(ends) - min(starts)
