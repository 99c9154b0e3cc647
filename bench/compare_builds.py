"""Are two builds the same? Compares two data roots (e.g. the demo before and after a refactor):
their SQLite catalogs row by row and their files byte by byte.

In: two data roots (each with `catalog.sqlite`). Out: a printed report and exit code 0 when they
are the same, 1 when not. Catalog rows are compared on every column but the times (`DateTime`
columns), the work owners (`owner`: host and process) and `event_id` (the work log's counter);
absolute paths are made relative to each build's folder (the data root's parent: a demo's workdir)
first; rows are sorted, so the order of runs does not matter. Files: every file under the data
root but the catalog (and its lock and WAL files) must exist in both with the same SHA-256. A
`video.mp4` whose bytes differ is decoded and its frames and audio compared (ffmpeg's framemd5):
"same pictures and sound, other bytes" is reported but passes; decoded pictures that differ are a
difference, printed with the PSNR between the two (x264 decides differently with another thread
count, so a clip encoded with other threads differs a little).

    python bench/compare_builds.py /work/baseline/demo/data demo/data
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from dvmset.catalog.tables import metadata
from dvmset.storage import VIDEO_FILE, DataRoot

VOLATILE_COLUMNS = {"owner", "event_id"}  # who ran the work and the log's counter, not what it made
CATALOG_FILES = ("catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm", "catalog.sqlite.schema-lock")


def catalog_rows(data_root: Path) -> dict[str, list[tuple]]:
    """Table name -> its sorted rows, without time and volatile columns, paths relative to the build's folder."""
    prefix = str(data_root.resolve().parent) + "/"
    tables: dict[str, list[tuple]] = {}
    with sqlite3.connect(f"file:{DataRoot(data_root).catalog_path}?mode=ro", uri=True) as conn:
        for table in metadata.sorted_tables:
            names = [
                column.name
                for column in table.columns
                if not isinstance(column.type, sa.DateTime) and column.name not in VOLATILE_COLUMNS
            ]
            rows = conn.execute(f"SELECT {', '.join(names)} FROM {table.name}").fetchall()
            relative = (tuple(v.replace(prefix, "") if isinstance(v, str) else v for v in row) for row in rows)
            tables[table.name] = sorted(relative, key=repr)
    return tables


def file_digests(data_root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under `data_root` but the catalog's own files."""
    digests = {}
    for path in sorted(data_root.rglob("*")):
        if path.is_file() and path.name not in CATALOG_FILES:
            digests[str(path.relative_to(data_root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def decoded_digest(path: Path) -> str:
    """A hash of every decoded video frame and audio packet of `path` (ffmpeg's framemd5)."""
    framemd5 = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", f"file:{path}", "-map", "0", "-f", "framemd5", "-"],
        capture_output=True,
        check=True,
    ).stdout
    kept = [line for line in framemd5.splitlines() if line and not line.startswith(b"#")]
    return hashlib.sha256(b"\n".join(kept)).hexdigest()


def picture_psnr_db(first: Path, second: Path) -> str:
    """ffmpeg's PSNR line (per plane, average, min) between the pictures of two videos of one length."""
    result = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-i",
            f"file:{first}",
            "-i",
            f"file:{second}",
            "-lavfi",
            "[0:v][1:v]psnr",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line for line in result.stderr.splitlines() if "PSNR" in line]
    return lines[-1].split("PSNR", 1)[1].strip() if lines else "no PSNR"


def compare(before: Path, after: Path) -> list[str]:
    """The differences between two data roots, one line each (none: the same build)."""
    problems: list[str] = []
    rows_before, rows_after = catalog_rows(before), catalog_rows(after)
    for table in rows_before:
        gone = set(rows_before[table]) - set(rows_after[table])
        new = set(rows_after[table]) - set(rows_before[table])
        problems += [f"catalog {table}: only before: {row}" for row in sorted(gone, key=repr)]
        problems += [f"catalog {table}: only after: {row}" for row in sorted(new, key=repr)]
    files_before, files_after = file_digests(before), file_digests(after)
    problems += [f"file only before: {name}" for name in sorted(files_before.keys() - files_after.keys())]
    problems += [f"file only after: {name}" for name in sorted(files_after.keys() - files_before.keys())]
    for name in sorted(files_before.keys() & files_after.keys()):
        if files_before[name] == files_after[name]:
            continue
        if Path(name).name == VIDEO_FILE and decoded_digest(before / name) == decoded_digest(after / name):
            print(f"same pictures and sound, other bytes: {name}")
            continue
        if Path(name).name == VIDEO_FILE:
            problems.append(f"file differs: {name} (pictures: PSNR {picture_psnr_db(before / name, after / name)})")
            continue
        problems.append(f"file differs: {name}")
    counts = {table: len(rows) for table, rows in rows_after.items()}
    print(f"catalog rows compared: {counts}; files compared: {len(files_before.keys() & files_after.keys())}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="data root of the first build")
    parser.add_argument("after", type=Path, help="data root of the second build")
    args = parser.parse_args()
    problems = compare(args.before, args.after)
    for line in problems:
        print(line)
    print("SAME BUILD" if not problems else f"DIFFERENT: {len(problems)} differences")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
