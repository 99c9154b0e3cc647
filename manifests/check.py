"""Check a published manifest folder: in `manifests/<version>/` (and, optionally, a data root
overriding the manifests' recorded `media_root`), out a `CheckReport`.

Checks, each problem with a `ProblemCode`: both split files are there, have the schema and rows
(`missing_manifest`, `schema_mismatch`, `empty_split`) and say where their media live
(`no_media_root`); every row sits in the file of its split (`wrong_split`); no clip twice
(`duplicate_clip`); no video or group on both sides (`video_leak`, `group_leak`); every music and
video file is under the media root (`bad_path`, `missing_file`) with the size and SHA-256 the
manifest recorded at publish (`size_mismatch`, `checksum_mismatch`, `unreadable_file`): exact,
and as fast as the disk reads. With `decode`, every file is also decoded in full by ffmpeg and
must decode without an error (`decode_error`) to the recorded duration within a tolerance
(`duration_mismatch`). Every problem names the clip, the file and what differs.
"""

from __future__ import annotations

import io
import os
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pyarrow as pa
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dvmset.storage import DataRoot
from dvmset.tools import require_tool
from manifests.media_facts import decode as decode_media
from manifests.media_facts import file_digest
from manifests.schema import ManifestError, manifest_metadata, manifest_path, read_manifest, resolve_media_root
from manifests.split import Split

DURATION_TOLERANCE_S = 0.1


class ProblemCode(StrEnum):
    """What is wrong with a manifest folder."""

    MISSING_MANIFEST = "missing_manifest"
    NO_MEDIA_ROOT = "no_media_root"
    EMPTY_SPLIT = "empty_split"
    SCHEMA_MISMATCH = "schema_mismatch"
    WRONG_SPLIT = "wrong_split"
    DUPLICATE_CLIP = "duplicate_clip"
    VIDEO_LEAK = "video_leak"
    GROUP_LEAK = "group_leak"
    BAD_PATH = "bad_path"
    MISSING_FILE = "missing_file"
    UNREADABLE_FILE = "unreadable_file"
    SIZE_MISMATCH = "size_mismatch"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    DECODE_ERROR = "decode_error"
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
            cells = (problem.code.value, problem.split or "", problem.clip_id or "", problem.message)
            table.add_row(*(Text(cell) for cell in cells))  # plain text: no markup, no `:a:` emoji in ids
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
    data_root: Path | None = None,
    *,
    decode: bool = False,
    tolerance_s: float = DURATION_TOLERANCE_S,
    workers: int | None = None,
) -> CheckReport:
    """Check `manifest_dir`'s train and test manifests and the media they point to (see the
    module docstring). Media paths start at `data_root` when given, else at each manifest's
    recorded `media_root` (`resolve_media_root`). `workers` files are checked at once (default:
    the CPU count)."""
    manifest_dir = Path(manifest_dir)
    problems: list[Problem] = []
    tables: dict[Split, pa.Table] = {}
    roots: dict[Split, Path] = {}
    for split in Split:
        path = manifest_path(manifest_dir, split)
        if not path.exists():
            problems.append(Problem(ProblemCode.MISSING_MANIFEST, f"{path.name} is missing", split.value))
            continue
        try:
            table = read_manifest(path)
        except ManifestError as error:
            problems.append(Problem(ProblemCode.SCHEMA_MISMATCH, str(error), split.value))
            continue
        tables[split] = table
        try:
            roots[split] = resolve_media_root(path, manifest_metadata(table), data_root)
        except ManifestError as error:
            problems.append(Problem(ProblemCode.NO_MEDIA_ROOT, str(error), split.value))
        if table.num_rows == 0:
            problems.append(Problem(ProblemCode.EMPTY_SPLIT, f"{path.name} has no rows", split.value))
    for split, table in tables.items():
        problems += _wrong_split(split, table)
    problems += _duplicates(tables)
    problems += _leaks(tables, "video_id", ProblemCode.VIDEO_LEAK)
    problems += _leaks(tables, "group_id", ProblemCode.GROUP_LEAK)
    rooted = {split: table for split, table in tables.items() if split in roots}
    problems += _media_problems(rooted, roots, tolerance_s, decode, workers)
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
    size_bytes: int
    sha256: str
    duration_s: float  # as decoded at publish


def _media_problems(
    tables: dict[Split, pa.Table], roots: dict[Split, Path], tolerance_s: float, decode: bool, workers: int | None
) -> list[Problem]:
    items = [
        _MediaItem(split.value, *values)
        for split, table in tables.items()
        for kind in ("music", "video")
        for values in zip(
            table["clip_id"].to_pylist(),
            [kind] * table.num_rows,
            *(table[f"{kind}_{column}"].to_pylist() for column in ("path", "bytes", "sha256", "duration_s")),
        )
    ]
    data_roots = {split.value: DataRoot(root) for split, root in roots.items()}
    if decode and items:
        require_tool("ffmpeg")  # one clear error up front, not one per file

    def check(item: _MediaItem) -> Problem | None:
        return _media_problem(item, data_roots[item.split], tolerance_s, decode)

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:  # hashlib and ffmpeg free the GIL
        return [problem for problem in pool.map(check, items) if problem is not None]


def _media_problem(item: _MediaItem, root: DataRoot, tolerance_s: float, decode: bool) -> Problem | None:
    """The problem with one media file, or None: there, its size, its SHA-256, and with `decode`
    a clean full decode lasting the recorded duration."""
    where = f"{item.kind} {item.relative_path}"

    def problem(code: ProblemCode, what: str) -> Problem:
        return Problem(code, f"{where}: {what}", item.split, item.clip_id)

    try:
        path = root.resolve(item.relative_path)
    except ValueError as error:
        return problem(ProblemCode.BAD_PATH, str(error))
    if not path.is_file():
        return problem(ProblemCode.MISSING_FILE, f"missing (looked at {path})")
    try:
        size_bytes = path.stat().st_size
        if size_bytes != item.size_bytes:
            return problem(ProblemCode.SIZE_MISMATCH, f"{size_bytes:,} bytes, the manifest says {item.size_bytes:,}")
        _size, sha256 = file_digest(path)
    except OSError as error:
        return problem(ProblemCode.UNREADABLE_FILE, f"cannot be read: {error}")
    if sha256 != item.sha256:
        what = f"SHA-256 {sha256[:16]}..., the manifest says {item.sha256[:16]}..."
        return problem(ProblemCode.CHECKSUM_MISMATCH, what)
    if not decode:
        return None
    try:
        decoded = decode_media(path, item.kind)
    except (OSError, subprocess.SubprocessError) as error:
        return problem(ProblemCode.UNREADABLE_FILE, f"cannot be decoded: {error}")
    if decoded.error is not None:
        return problem(ProblemCode.DECODE_ERROR, f"decoding fails after {decoded.duration_s:.3f} s: {decoded.error}")
    if abs(decoded.duration_s - item.duration_s) > tolerance_s:
        return problem(
            ProblemCode.DURATION_MISMATCH,
            f"decodes to {decoded.duration_s:.3f} s, the manifest says {item.duration_s:.3f} s",
        )
    return None
