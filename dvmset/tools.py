"""The external media tools (ffmpeg, ffprobe): where they are (one lookup, one clear error), and
running one (`run_tool`, or `stream_tool` to read its output while it runs) with its failure turned
into a `StageError`."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from dvmset.errors import ConfigError, ReasonCode, StageError

STDERR_TAIL_CHARS = 1500  # how much of a failed tool's stderr an error message keeps
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
    args: list[str], timeout_s: float, reason: ReasonCode, what: str, *,
    error: type[StageError] = StageError, binary: bool = False,
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
    args: list[str], timeout_s: float, reason: ReasonCode, what: str, consume: Callable[[BinaryIO], T], *,
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
