"""The review screen's timeline picture: the music's level over the clip, with its silent runs,
scene cuts and prescreen flags marked, as an inline SVG built from numbers only.

In: a clip's music file (FLAC, any rate and channel count), its scene-cut times and flags.
Out: `Timeline` (levels per frame, silent runs) and its SVG text (`render`: both, cached).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

FRAME_S = 0.1
_WIDTH, _HEIGHT, _FLOOR_DBFS = 1000, 120, -60.0
_MAX_POINTS = 250  # points of the level curve's upper edge (a 60 s clip: one per 0.3 s)


@dataclass(frozen=True)
class Timeline:
    """Levels of the music in `frame_s` frames (dBFS, RMS of the mono mix) and its silent runs."""

    duration_s: float
    frame_s: float
    levels_dbfs: tuple[float, ...]
    silent_runs_s: tuple[tuple[float, float], ...]  # (start_s, end_s) where the level stays under the threshold


def measure(music_path: Path, silence_dbfs: float, frame_s: float = FRAME_S) -> Timeline:
    """Frame levels and silent runs of a music file."""
    samples, rate_hz = sf.read(str(music_path), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    hop = max(1, round(frame_s * rate_hz))
    frames = len(mono) // hop
    if frames == 0:
        return Timeline(len(mono) / rate_hz, frame_s, (), ())
    rms = np.sqrt(np.mean(mono[: frames * hop].reshape(frames, hop) ** 2, axis=1))
    levels = 20.0 * np.log10(np.maximum(rms, 1e-10))
    return Timeline(len(mono) / rate_hz, frame_s, tuple(levels.tolist()), _runs(levels < silence_dbfs, frame_s))


def render(music_path: Path, silence_dbfs: float, scene_cuts_s: Sequence[float], flags: Sequence[str]) -> str:
    """`timeline_svg(measure(...))`, cached by file and arguments (so a clip rendered ahead, while
    the one before it is on screen, shows without waiting)."""
    return _render(str(music_path), music_path.stat().st_mtime_ns, silence_dbfs, tuple(scene_cuts_s), tuple(flags))


@lru_cache(maxsize=32)
def _render(path: str, _mtime_ns: int, silence_dbfs: float, scene_cuts_s: tuple, flags: tuple) -> str:
    return timeline_svg(measure(Path(path), silence_dbfs), scene_cuts_s, flags)


def _runs(mask: np.ndarray, frame_s: float) -> tuple[tuple[float, float], ...]:
    """(start_s, end_s) of each run of True frames."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return tuple((round(s * frame_s, 3), round(e * frame_s, 3)) for s, e in zip(starts, ends, strict=True))


def timeline_svg(timeline: Timeline, scene_cuts_s: Sequence[float], flags: Sequence[str]) -> str:
    """An SVG: the level curve, silent runs shaded red, scene cuts as ticks, flags as a caption."""
    duration_s = max(timeline.duration_s, 1e-3)

    def x(t_s: float) -> float:
        return min(max(t_s / duration_s, 0.0), 1.0) * _WIDTH

    levels = np.asarray(timeline.levels_dbfs, dtype=float)
    parts = [
        f'<svg id="dv-timeline-svg" viewBox="0 0 {_WIDTH} {_HEIGHT + 20}" width="100%" preserveAspectRatio="none" '
        f'xmlns="http://www.w3.org/2000/svg" data-duration-s="{duration_s:.3f}">',
        f'<rect width="{_WIDTH}" height="{_HEIGHT}" fill="#111827"/>',
    ]
    for start_s, end_s in timeline.silent_runs_s:
        parts.append(f'<rect class="dv-silent" x="{x(start_s):.1f}" width="{max(x(end_s) - x(start_s), 1.0):.1f}" '
                     f'height="{_HEIGHT}" fill="#dc2626" fill-opacity="0.45"/>')  # fmt: skip
    if len(levels):
        step = -(-len(levels) // _MAX_POINTS)  # frames per drawn point: the loudest of them
        peaks = np.pad(levels, (0, -len(levels) % step), constant_values=_FLOOR_DBFS).reshape(-1, step).max(axis=1)
        half = np.clip((peaks - _FLOOR_DBFS) / -_FLOOR_DBFS, 0.0, 1.0) * (_HEIGHT / 2 - 2)
        xs = np.clip((np.arange(len(peaks)) + 0.5) * step * timeline.frame_s / duration_s, 0.0, 1.0) * _WIDTH
        outline = np.concatenate([np.stack([xs, _HEIGHT / 2 - half], 1), np.stack([xs, _HEIGHT / 2 + half], 1)[::-1]])
        points = " ".join(f"{px:.1f},{py:.1f}" for px, py in outline.tolist())
        parts.append(f'<polygon points="{points}" fill="#60a5fa"/>')
    for cut_s in scene_cuts_s:
        parts.append(f'<line class="dv-cut" x1="{x(cut_s):.1f}" x2="{x(cut_s):.1f}" y1="0" y2="{_HEIGHT}" '
                     f'stroke="#fbbf24" stroke-width="2"/>')  # fmt: skip
    parts.append(f'<line id="dv-playhead" x1="0" x2="0" y1="0" y2="{_HEIGHT}" stroke="#ffffff" stroke-width="2"/>')
    caption = "flags: " + (", ".join(flags) if flags else "none") + " | red: silent | yellow: scene cuts"
    parts.append(f'<text x="4" y="{_HEIGHT + 15}" font-size="13" fill="currentColor">{html.escape(caption)}</text>')
    parts.append("</svg>")
    return "".join(parts)
