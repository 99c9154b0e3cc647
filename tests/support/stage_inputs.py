"""Inputs of `bench/stages.py`: a generated test video with music, an excerpt of its audio, and
music-only tracks, made once under a work folder and reused. Only the standard library at module
level: the bench's parent process must stay small (see `bench/stages.py`'s `run_child`)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def make_inputs(
    work: Path, duration_s: float, excerpt_s: float, tracks_s: tuple[float, ...], picture: tuple[int, int, int]
) -> dict[str, Path]:
    """Under `work/inputs`: "video", a `duration_s` H.264/AAC video of `picture` (width, height, fps);
    "excerpt", its first `excerpt_s` of audio (the video itself when 0 or not shorter); "track_<s>",
    an audio-only track for each of `tracks_s`. Files already there are reused."""
    from curation.samples import VideoSpec, make_video

    width, height, fps = picture
    inputs = work / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    paths = {"video": inputs / f"video_{duration_s:g}s_{width}x{height}_{fps}fps.mp4"}
    if not paths["video"].exists():
        start = time.perf_counter()
        make_video(paths["video"], VideoSpec(duration_s, width=width, height=height, fps=fps))
        print(f"  generated {paths['video'].name} in {time.perf_counter() - start:.0f} s", flush=True)
    paths["excerpt"] = paths["video"]
    if 0 < excerpt_s < duration_s:
        paths["excerpt"] = inputs / f"excerpt_{excerpt_s:g}s.m4a"
        if not paths["excerpt"].exists():
            args = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(paths["video"]), "-t", f"{excerpt_s:g}"]
            subprocess.run([*args, "-map", "0:a:0", "-c:a", "copy", str(paths["excerpt"])], check=True)
    for track_s in tracks_s:
        paths[f"track_{track_s:g}"] = inputs / f"track_{track_s:g}s.m4a"
        if not paths[f"track_{track_s:g}"].exists():
            make_video(paths[f"track_{track_s:g}"], VideoSpec(track_s, video=False))
    return paths
