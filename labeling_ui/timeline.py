"""The review screen's timeline picture: the music's level over the clip, with its silent runs,
scene cuts and prescreen flags marked, as an inline SVG built from numbers only.

In: a clip's music file (FLAC, any rate and channel count), its scene-cut times and flags.
Out: `Timeline` (levels per frame, silent runs) and its SVG text. `Timelines` measures each file
once (decoding a 60 s clip costs about 0.1 s of CPU): in the background ahead of time, kept in
memory and in a cache folder (so a restart does not measure again).
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from dvmset.storage import atomic_write_text

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
    mono = samples @ np.full(samples.shape[1], 1.0 / samples.shape[1], dtype=np.float32)  # 10x mean(axis=1)
    hop = max(1, round(frame_s * rate_hz))
    frames = len(mono) // hop
    if frames == 0:
        return Timeline(len(mono) / rate_hz, frame_s, (), ())
    framed = mono[: frames * hop].reshape(frames, hop)
    rms = np.sqrt(np.einsum("ij,ij->i", framed, framed) / hop)
    levels = 20.0 * np.log10(np.maximum(rms, 1e-10))
    return Timeline(len(mono) / rate_hz, frame_s, tuple(levels.tolist()), _runs(levels < silence_dbfs, frame_s))


class Timelines:
    """The timelines of music files, each measured once: `ahead` starts one on `workers`, `get`
    returns it (waiting for one under way, or measuring on the caller's thread one that has not
    started). Each is kept in memory (the latest `keep`) and written under `cache_dir` (JSON,
    named by a hash of the file's real path, size, mtime and the silence threshold)."""

    def __init__(self, cache_dir: Path, silence_dbfs: float, workers: Executor, keep: int = 256):
        self.cache_dir = cache_dir
        self.silence_dbfs = silence_dbfs
        self._workers = workers
        self._keep = keep
        self._made: OrderedDict[str, Future[Timeline]] = OrderedDict()
        self._lock = threading.Lock()

    def ahead(self, music_path: Path) -> None:
        """Start measuring `music_path` in the background, unless it is done or under way."""
        key = self._key(music_path)
        with self._lock:
            if key not in self._made or self._failed(self._made[key]):
                self._remember(key, self._workers.submit(self._load_or_measure, music_path, key))

    def ready(self, music_path: Path) -> bool:
        """Whether `get` would answer at once (measured, in memory or in the cache folder)."""
        key = self._key(music_path)
        with self._lock:
            made = self._made.get(key)
        return (made is not None and made.done() and not self._failed(made)) or self._path(key).is_file()

    def get(self, music_path: Path) -> Timeline:
        key = self._key(music_path)
        with self._lock:
            made = self._made.get(key)
            mine = made is None or made.cancel() or self._failed(made)  # not started yet: measure it here
            if mine:
                made = Future()
                made.set_running_or_notify_cancel()
                self._remember(key, made)
        if mine:
            try:
                made.set_result(self._load_or_measure(music_path, key))
            except BaseException as exc:
                made.set_exception(exc)
        return made.result()

    def _load_or_measure(self, music_path: Path, key: str) -> Timeline:
        path = self._path(key)
        try:
            saved = json.loads(path.read_text())
            return Timeline(
                saved["duration_s"],
                saved["frame_s"],
                tuple(saved["levels_dbfs"]),
                tuple(tuple(run) for run in saved["silent_runs_s"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            pass  # not measured yet (or an unreadable file: measured again)
        timeline = measure(music_path, self.silence_dbfs)
        atomic_write_text(path, json.dumps(asdict(timeline)))
        return timeline

    def _key(self, music_path: Path) -> str:
        stat = music_path.stat()
        made_of = f"{os.path.realpath(music_path)}|{stat.st_size}|{stat.st_mtime_ns}|{self.silence_dbfs}"
        return hashlib.sha1(made_of.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.cache_dir / f"{key}.json"

    def _remember(self, key: str, made: Future) -> None:
        self._made[key] = made
        self._made.move_to_end(key)
        while len(self._made) > self._keep:
            self._made.popitem(last=False)

    @staticmethod
    def _failed(made: Future) -> bool:
        return made.done() and (made.cancelled() or made.exception() is not None)


def _runs(mask: np.ndarray, frame_s: float) -> tuple[tuple[float, float], ...]:
    """(start_s, end_s) of each run of True frames."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return tuple((round(s * frame_s, 3), round(e * frame_s, 3)) for s, e in zip(starts, ends, strict=True))


def timeline_svg(timeline: Timeline, scene_cuts_s: Sequence[float], flags: Sequence[str], clip_id: str = "") -> str:
    """An SVG: the level curve, silent runs shaded red, scene cuts as ticks, flags as a caption
    (its `data-clip`: `clip_id`, which the page checks against the clip on screen)."""
    duration_s = max(timeline.duration_s, 1e-3)

    def x(t_s: float) -> float:
        return min(max(t_s / duration_s, 0.0), 1.0) * _WIDTH

    levels = np.asarray(timeline.levels_dbfs, dtype=float)
    parts = [
        f'<svg id="dv-timeline-svg" viewBox="0 0 {_WIDTH} {_HEIGHT + 20}" width="100%" preserveAspectRatio="none" '
        f'xmlns="http://www.w3.org/2000/svg" data-duration-s="{duration_s:.3f}" data-clip="{html.escape(clip_id)}">',
        f'<rect width="{_WIDTH}" height="{_HEIGHT}" fill="#111827"/>',
    ]
    for start_s, end_s in timeline.silent_runs_s:
        parts.append(
            f'<rect class="dv-silent" x="{x(start_s):.1f}" width="{max(x(end_s) - x(start_s), 1.0):.1f}" '
            f'height="{_HEIGHT}" fill="#dc2626" fill-opacity="0.45"/>'
        )
    if len(levels):
        step = -(-len(levels) // _MAX_POINTS)  # frames per drawn point: the loudest of them
        peaks = np.pad(levels, (0, -len(levels) % step), constant_values=_FLOOR_DBFS).reshape(-1, step).max(axis=1)
        half = np.clip((peaks - _FLOOR_DBFS) / -_FLOOR_DBFS, 0.0, 1.0) * (_HEIGHT / 2 - 2)
        xs = np.clip((np.arange(len(peaks)) + 0.5) * step * timeline.frame_s / duration_s, 0.0, 1.0) * _WIDTH
        outline = np.concatenate([np.stack([xs, _HEIGHT / 2 - half], 1), np.stack([xs, _HEIGHT / 2 + half], 1)[::-1]])
        points = " ".join(f"{px:.1f},{py:.1f}" for px, py in outline.tolist())
        parts.append(f'<polygon points="{points}" fill="#60a5fa"/>')
    for cut_s in scene_cuts_s:
        parts.append(
            f'<line class="dv-cut" x1="{x(cut_s):.1f}" x2="{x(cut_s):.1f}" y1="0" y2="{_HEIGHT}" '
            f'stroke="#fbbf24" stroke-width="2"/>'
        )
    parts.append(f'<line id="dv-playhead" x1="0" x2="0" y1="0" y2="{_HEIGHT}" stroke="#ffffff" stroke-width="2"/>')
    caption = "flags: " + (", ".join(flags) if flags else "none") + " | red: silent | yellow: scene cuts"
    parts.append(f'<text x="4" y="{_HEIGHT + 15}" font-size="13" fill="currentColor">{html.escape(caption)}</text>')
    parts.append("</svg>")
    return "".join(parts)
