"""Identifiers: `video_id` = `<platform>:<platform id>`, `clip_id` = `<video_id>:<start_ms 8 digits>`.

Ids are the unit of resume and of splitting. They are plain strings; these helpers build,
parse and validate them and turn them into directory names that are safe on any filesystem.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import quote, unquote

_PLATFORM_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_CLIP_SUFFIX_RE = re.compile(r":(\d{8})$")
_SHA1_CHUNK_BYTES = 1 << 20


def make_video_id(platform: str, platform_id: str) -> str:
    """`("youtube", "dQw4w9WgXcQ")` -> `"youtube:dQw4w9WgXcQ"`. Platform is lower-case."""
    platform = platform.lower()
    if not _PLATFORM_RE.match(platform):
        raise ValueError(f"invalid platform name {platform!r}")
    if not platform_id or any(c.isspace() for c in platform_id):
        raise ValueError(f"invalid platform id {platform_id!r}")
    return f"{platform}:{platform_id}"


def split_video_id(video_id: str) -> tuple[str, str]:
    """`"youtube:abc"` -> `("youtube", "abc")`; raises ValueError on a malformed id."""
    platform, sep, platform_id = video_id.partition(":")
    if not sep:
        raise ValueError(f"video id {video_id!r} has no '<platform>:' prefix")
    make_video_id(platform, platform_id)
    return platform, platform_id


def sha1_of_file(path: Path) -> str:
    """Hex SHA-1 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        while chunk := handle.read(_SHA1_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def local_video_id(path: Path) -> str:
    """`local:<sha1 of content>`: the same bytes under two names are one video."""
    return make_video_id("local", sha1_of_file(path))


def make_clip_id(video_id: str, start_s: float) -> str:
    """`("youtube:abc", 60.0)` -> `"youtube:abc:00060000"` (start in whole milliseconds)."""
    start_ms = round(start_s * 1000)
    if not 0 <= start_ms < 10**8:
        raise ValueError(f"clip start {start_s} s is outside 0..99999.999 s")
    return f"{video_id}:{start_ms:08d}"


def split_clip_id(clip_id: str) -> tuple[str, float]:
    """`"youtube:abc:00060000"` -> `("youtube:abc", 60.0)`."""
    match = _CLIP_SUFFIX_RE.search(clip_id)
    if not match:
        raise ValueError(f"clip id {clip_id!r} does not end in ':<8-digit start_ms>'")
    video_id = clip_id[: match.start()]
    split_video_id(video_id)
    return video_id, int(match.group(1)) / 1000.0


def id_to_dirname(any_id: str) -> str:
    """A reversible, filesystem-safe directory name for an id (`:` kept, `/` and the like escaped)."""
    return quote(any_id, safe=":-_.@+=")


def dirname_to_id(dirname: str) -> str:
    """Inverse of `id_to_dirname`."""
    return unquote(dirname)
