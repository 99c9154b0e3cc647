"""Where the external media tools (ffmpeg, ffprobe) are: one lookup with one clear error."""

from __future__ import annotations

import shutil

from dvmset.errors import ConfigError


class MissingToolError(ConfigError):
    """An external program (ffmpeg, ffprobe) is not installed: the machine's set-up, not a video's
    fault, so it stops a run instead of failing every video."""


def require_tool(name: str) -> str:
    """Path of `name` (ffmpeg, ffprobe) on PATH, or a `MissingToolError` that says how to install it."""
    path = shutil.which(name)
    if path is None:
        raise MissingToolError(f"{name} is not installed or not on PATH (Debian: apt-get install ffmpeg)")
    return path
