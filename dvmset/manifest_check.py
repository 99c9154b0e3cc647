"""Check a published manifest folder: in `manifests/<version>/` and a data root, out a `CheckReport`.

Checks, each problem with a `ProblemCode`: both split files are there and have the schema
(`missing_manifest`, `schema_mismatch`); every row sits in the file of its split
(`wrong_split`); no clip twice (`duplicate_clip`); no video or group on both sides
(`video_leak`, `group_leak`); every music and video file exists under the data root
(`missing_file`, `bad_path`), opens (`unreadable_file`) and lasts the row's `duration_s` within
a tolerance (`duration_mismatch`). Music durations come from the FLAC header (soundfile);
video durations from ffprobe, run on a few threads. ffprobe costs tens of milliseconds a
clip, so `probe_videos=False` checks only that the videos exist, for a quick check of a
large release.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pyarrow as pa
import soundfile as sf
from rich.console import Console
from rich.table import Table

from dvmset.manifest import ManifestError, manifest_path, read_manifest
from dvmset.split import Split
from dvmset.storage import DataRoot
from dvmset.tools import require_tool

DURATION_TOLERANCE_S = 0.1
FFPROBE_TIMEOUT_S = 60.0


class ProblemCode(StrEnum):
    """What is wrong with a manifest folder."""

    MISSING_MANIFEST = "missing_manifest"
    SCHEMA_MISMATCH = "schema_mismatch"
    WRONG_SPLIT = "wrong_split"
    DUPLICATE_CLIP = "duplicate_clip"
    VIDEO_LEAK = "video_leak"
    GROUP_LEAK = "group_leak"
    BAD_PATH = "bad_path"
    MISSING_FILE = "missing_file"
    UNREADABLE_FILE = "unreadable_file"
    DURATION_MISMATCH = "duration_mismatch"


@dataclass(frozen=True)
class Problem:
    """One problem: its code, a readable message, and where (split file, clip) when known."""

    code: ProblemCode
    message: str
    split: str | None = None
    clip_id: str | None = None


@dataclass(frozen=True)
class CheckReport:
    """The problems found in `manifest_dir`, and how many clips were checked."""

    manifest_dir: Path
    clips_checked: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> Counter[ProblemCode]:
        return Counter(problem.code for problem in self.problems)

    def table(self, limit: int = 50) -> Table:
        """The first `limit` problems as a rich table, with the count of each code in the caption."""
        verdict = "ok" if self.ok else f"{len(self.problems)} problems"
        table = Table(title=f"{self.manifest_dir}: {self.clips_checked} clips, {verdict}")
        for name in ("code", "split", "clip", "problem"):
            table.add_column(name, overflow="fold")
        for problem in self.problems[:limit]:
            table.add_row(problem.code.value, problem.split or "", problem.clip_id or "", problem.message)
        hidden = len(self.problems) - limit
        counts = ", ".join(f"{code.value}: {count}" for code, count in sorted(self.counts().items()))
        table.caption = counts + (f" ({hidden} more not shown)" if hidden > 0 else "")
        return table

    def render(self, limit: int = 50, width: int = 120) -> str:
        """`table(limit)` as plain text."""
        console = Console(file=io.StringIO(), width=width, color_system=None)
        console.print(self.table(limit))
        return console.file.getvalue()


def check_manifests(
    manifest_dir: Path,
    data_root: Path,
    *,
    tolerance_s: float = DURATION_TOLERANCE_S,
    probe_videos: bool = True,
    workers: int | None = None,
) -> CheckReport:
    """Check `manifest_dir`'s train and test manifests and the media they point to under
    `data_root` (see the module docstring). `workers` ffprobe processes run at once (default:
    the CPU count)."""
    manifest_dir = Path(manifest_dir)
    problems: list[Problem] = []
    tables: dict[Split, pa.Table] = {}
    for split in Split:
        path = manifest_path(manifest_dir, split)
        if not path.exists():
            problems.append(Problem(ProblemCode.MISSING_MANIFEST, f"{path.name} is missing", split.value))
            continue
        try:
            tables[split] = read_manifest(path)
        except ManifestError as error:
            problems.append(Problem(ProblemCode.SCHEMA_MISMATCH, str(error), split.value))
    for split, table in tables.items():
        problems += _wrong_split(split, table)
    problems += _duplicates(tables)
    problems += _leaks(tables, "video_id", ProblemCode.VIDEO_LEAK)
    problems += _leaks(tables, "group_id", ProblemCode.GROUP_LEAK)
    problems += _media_problems(tables, DataRoot(Path(data_root)), tolerance_s, probe_videos, workers)
    return CheckReport(manifest_dir, sum(table.num_rows for table in tables.values()), tuple(problems))


def _wrong_split(split: Split, table: pa.Table) -> list[Problem]:
    return [
        Problem(ProblemCode.WRONG_SPLIT, f"row says split {side!r}, file is {split.value}.parquet", split.value, clip)
        for clip, side in zip(table["clip_id"].to_pylist(), table["split"].to_pylist())
        if side != split.value
    ]


def _duplicates(tables: dict[Split, pa.Table]) -> list[Problem]:
    where: dict[str, list[str]] = {}
    for split, table in tables.items():
        for clip_id in table["clip_id"].to_pylist():
            where.setdefault(clip_id, []).append(split.value)
    return [
        Problem(ProblemCode.DUPLICATE_CLIP, f"listed {len(sides)} times (in {', '.join(sides)})", None, clip_id)
        for clip_id, sides in sorted(where.items())
        if len(sides) > 1
    ]


def _leaks(tables: dict[Split, pa.Table], column: str, code: ProblemCode) -> list[Problem]:
    """One problem per value of `column` found in both the train and the test manifest."""
    if len(tables) < 2:
        return []
    train, test = (set(tables[split][column].to_pylist()) for split in (Split.TRAIN, Split.TEST))
    return [Problem(code, f"{column} {value!r} is in both train and test") for value in sorted(train & test)]


@dataclass(frozen=True)
class _MediaItem:
    split: str
    clip_id: str
    kind: str  # "music" or "video"
    relative_path: str
    duration_s: float


def _media_problems(
    tables: dict[Split, pa.Table], root: DataRoot, tolerance_s: float, probe_videos: bool, workers: int | None
) -> list[Problem]:
    items = [
        _MediaItem(split.value, clip_id, kind, relative_path, duration_s)
        for split, table in tables.items()
        for kind in ("music", "video")
        for clip_id, relative_path, duration_s in zip(
            table["clip_id"].to_pylist(), table[f"{kind}_path"].to_pylist(), table["duration_s"].to_pylist()
        )
    ]
    measure: dict[str, Callable[[Path], float] | None] = {
        "music": _music_duration_s,
        "video": _video_duration_s if probe_videos else None,
    }

    def check(item: _MediaItem) -> Problem | None:
        return _media_problem(item, root, measure[item.kind], tolerance_s)

    probed = [item for item in items if item.kind == "video" and probe_videos]
    found = [check(item) for item in items if not (item.kind == "video" and probe_videos)]  # header reads: fast
    if probed:
        require_tool("ffprobe")  # one clear error up front, not one per video
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            found += pool.map(check, probed)
    return [problem for problem in found if problem is not None]


def _media_problem(
    item: _MediaItem, root: DataRoot, measure: Callable[[Path], float] | None, tolerance_s: float
) -> Problem | None:
    """The problem with one media file, or None."""
    try:
        path = root.resolve(item.relative_path)
    except ValueError as error:
        return Problem(ProblemCode.BAD_PATH, f"{item.kind}: {error}", item.split, item.clip_id)
    if not path.is_file():
        message = f"{item.kind} {item.relative_path} is missing"
        return Problem(ProblemCode.MISSING_FILE, message, item.split, item.clip_id)
    if measure is None:
        return None
    try:
        duration_s = measure(path)
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as error:
        message = f"{item.kind} {item.relative_path} cannot be read: {error}"
        return Problem(ProblemCode.UNREADABLE_FILE, message, item.split, item.clip_id)
    if abs(duration_s - item.duration_s) > tolerance_s:
        message = f"{item.kind} lasts {duration_s:.3f} s, the row says {item.duration_s:.3f} s"
        return Problem(ProblemCode.DURATION_MISMATCH, message, item.split, item.clip_id)
    return None


def _music_duration_s(path: Path) -> float:
    """Seconds of audio in `path`, from its header (soundfile raises RuntimeError if unreadable)."""
    info = sf.info(str(path))
    return info.frames / info.samplerate


def _video_duration_s(path: Path) -> float:
    """Seconds of `path`'s first video stream (the container's duration if the stream has none)."""
    args = [require_tool("ffprobe"), "-v", "error", "-select_streams", "v:0", "-of", "json"]
    args += ["-show_entries", "stream=duration:format=duration", f"file:{path}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=FFPROBE_TIMEOUT_S)
    if done.returncode != 0:
        raise ValueError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "ffprobe failed")
    data = json.loads(done.stdout)
    streams = data.get("streams") or []
    if not streams:
        raise ValueError("no video stream")
    duration = streams[0].get("duration") or data.get("format", {}).get("duration")
    if duration in (None, "N/A"):
        raise ValueError("ffprobe gives no duration")
    return float(duration)

