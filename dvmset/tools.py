"""The external media tools (ffmpeg, ffprobe): where they are (one lookup, one clear error), and
running one with its failure turned into a `StageError`."""

from __future__ import annotations

import shutil
import subprocess

from dvmset.errors import ConfigError, ReasonCode, StageError

STDERR_TAIL_CHARS = 1500  # how much of a failed tool's stderr an error message keeps


class MissingToolError(ConfigError):
    """An external program (ffmpeg, ffprobe) is not installed: the machine's set-up, not a video's
    fault, so it stops a run instead of failing every video."""


def require_tool(name: str) -> str:
    """Path of `name` (ffmpeg, ffprobe) on PATH, or a `MissingToolError` that says how to install it."""
    path = shutil.which(name)
    if path is None:
        raise MissingToolError(f"{name} is not installed or not on PATH (Debian: apt-get install ffmpeg)")
    return path


def run_tool(args: list[str], timeout_s: float, reason: ReasonCode, what: str) -> None:
    """Run `args` (a tool and its arguments); a timeout or a non-zero exit raises
    `StageError(reason)` saying `what` failed, with the tail of the tool's stderr."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, errors="replace", timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise StageError(reason, f"{what}: {args[0]} did not finish in {timeout_s:g} s") from exc
    if done.returncode != 0:
        tail = done.stderr.strip()[-STDERR_TAIL_CHARS:]
        raise StageError(reason, f"{what}: {args[0]} exited with {done.returncode}: {tail}")
