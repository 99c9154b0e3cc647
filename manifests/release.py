"""The media-free release: one Parquet file, `clips.parquet`, one row per decided clip, that
anyone can share and rebuild from (the paper publishes the videos' URLs, not the videos).

In: the rows of a published manifest (`MANIFEST_SCHEMA`), and optionally other decided clips of
the same videos -> `ReleaseRow`s (`release_row`); rows -> `<release dir>/clips.parquet`
(`write_release`). Out: a pyarrow Table checked against `RELEASE_SCHEMA` (`read_release`).

`RELEASE_SCHEMA` carries its own version in the file metadata (the key `dvmset.schema_version`,
as manifests do) and free JSON under `dvmset.metadata` (release and manifest version, config,
code version). It holds no local path and no annotator name: sources as URLs, clip times,
near-duplicate group, split, decision and reasons. Plain Parquet types, so pandas, pyarrow and
DuckDB read it without this code. The writer, reader and schema check are `manifests.schema`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from dvmset.ids import split_video_id
from manifests.schema import (
    SCHEMA_VERSION_KEY,
    manifest_metadata,
    read_manifest,
    schema_field,
    string_list,
    write_manifest,
)

RELEASE_SCHEMA_VERSION = 1
RELEASE_FILE = "clips.parquet"

RELEASE_SCHEMA = pa.schema(
    [
        schema_field("clip_id", pa.string()),
        schema_field("video_id", pa.string()),
        schema_field("platform", pa.string()),
        schema_field("platform_id", pa.string()),
        schema_field("source_url", pa.string()),
        schema_field("query", pa.string(), nullable=True),  # the video's first query; null if none
        schema_field("queries", string_list()),
        schema_field("title", pa.string(), nullable=True),
        schema_field("channel", pa.string(), nullable=True),
        schema_field("license", pa.string(), nullable=True),
        schema_field("start_s", pa.float64()),
        schema_field("end_s", pa.float64()),
        schema_field("duration_s", pa.float64()),
        schema_field("fps", pa.float64()),  # of the source video: a rebuilt clip may differ by one frame
        schema_field("group_id", pa.string()),
        schema_field("split", pa.string()),
        schema_field("decision", pa.string()),  # accepted / rejected
        schema_field("reasons", string_list()),  # why it was rejected (empty when accepted)
    ],
    metadata={SCHEMA_VERSION_KEY: str(RELEASE_SCHEMA_VERSION).encode()},
)


@dataclass(frozen=True)
class ReleaseRow:
    """One clip of a release; the fields are `RELEASE_SCHEMA`'s columns, in order."""

    clip_id: str
    video_id: str
    platform: str
    platform_id: str
    source_url: str
    query: str | None
    queries: tuple[str, ...]
    title: str | None
    channel: str | None
    license: str | None
    start_s: float
    end_s: float
    duration_s: float
    fps: float
    group_id: str
    split: str
    decision: str
    reasons: tuple[str, ...]


def is_shareable_url(source: str) -> bool:
    """True for a web URL; False for a local path (a `local:` video), which a release never holds."""
    return "://" in source


def release_row(manifest_record: Mapping[str, Any], **changes: Any) -> ReleaseRow:
    """The release row of one manifest row (a dict of `MANIFEST_SCHEMA` columns, e.g. from
    `Table.to_pylist()`); `changes` override fields (another clip of the same video: its id,
    times, decision, reasons). ValueError for a local source."""
    fields = {name: manifest_record[name] for name in RELEASE_SCHEMA.names if name in manifest_record}
    fields["platform_id"] = split_video_id(manifest_record["video_id"])[1]
    fields.update(changes)
    if not is_shareable_url(fields["source_url"]):
        raise ValueError(f"clip {fields['clip_id']!r}: source {fields['source_url']!r} is a local path, not a URL")
    for name in ("queries", "reasons"):
        fields[name] = tuple(fields[name])
    return ReleaseRow(**fields)


def release_path(release_dir: Path) -> Path:
    """`<release_dir>/clips.parquet`."""
    return Path(release_dir) / RELEASE_FILE


def write_release(rows: Iterable[ReleaseRow], release_dir: Path, metadata: Mapping[str, Any]) -> Path:
    """Write `rows` (in clip_id order) to `<release_dir>/clips.parquet`, atomically, with
    `metadata` (JSON-serialisable) beside the schema version; return the file's path."""
    return write_manifest(rows, release_path(release_dir), metadata, schema=RELEASE_SCHEMA)


def read_release(release_dir: Path) -> tuple[pa.Table, dict[str, Any]]:
    """(the release's table, its JSON metadata); ManifestError if the file is missing,
    unreadable, or not of this code's `RELEASE_SCHEMA`."""
    table = read_manifest(release_path(release_dir), schema=RELEASE_SCHEMA)
    return table, manifest_metadata(table)
