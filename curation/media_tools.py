"""Where the external media tools (ffmpeg, ffprobe) are: one lookup with one clear error."""

from __future__ import annotations

import shutil


def require_tool(name: str) -> str:
    """Path of `name` (ffmpeg or ffprobe) on PATH, or a RuntimeError that says how to install it."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed (Debian: apt-get install ffmpeg)")
    return path
