"""The manifest: one Parquet file per split, one row per clip, under `manifests/<version>/`.

In: a `VideoRecord`, a `ClipRecord`, its settled `Decision`, its group and side -> `ManifestRow`
(`manifest_row`); rows -> `<split>.parquet` (`write_manifest`). Out: a pyarrow Table whose schema
has been checked against `MANIFEST_SCHEMA` (`read_manifest`).

`MANIFEST_SCHEMA` is the one schema; its version is stored in the file's key-value metadata under
`dvmset.schema_version`, and free JSON (manifest version, config, code version) under
`dvmset.metadata`. The files use plain Parquet types only (strings, doubles, ints, lists), so
pandas, pyarrow, DuckDB and Hugging Face `datasets` read them without this code. Paths are
relative to the data root; `loudness_before_lufs` is -inf for a silent clip.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dvmset.errors import DvmsetError
from dvmset.records import ClipRecord, ClipStatus, Decision, VideoRecord
from dvmset.split import Split
from dvmset.storage import atomic_path

MANIFEST_SCHEMA_VERSION = 2  # 2: voice_s -> speech_s (a speech detector), stand_in
SCHEMA_VERSION_KEY = b"dvmset.schema_version"
METADATA_KEY = b"dvmset.metadata"
ROW_GROUP_ROWS = 65_536  # 100k clips -> 2 row groups: few enough to be cheap, enough to read in parallel
MUSIC_CHANNELS = 2  # the clip stage writes stereo FLAC


class ManifestError(DvmsetError):
    """A manifest file is unreadable, has another schema, or a schema version this code does not know."""


def string_list() -> pa.DataType:
    return pa.list_(pa.field("element", pa.string(), nullable=False))


def schema_field(name: str, type_: pa.DataType, nullable: bool = False) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


MANIFEST_SCHEMA = pa.schema(
    [
        schema_field("clip_id", pa.string()),
        schema_field("video_id", pa.string()),
        schema_field("group_id", pa.string()),
        schema_field("split", pa.string()),
        schema_field("query", pa.string(), nullable=True),  # the video's first query; null if none
        schema_field("queries", string_list()),
        schema_field("platform", pa.string()),
        schema_field("source_url", pa.string()),
        schema_field("title", pa.string(), nullable=True),
        schema_field("channel", pa.string(), nullable=True),
        schema_field("license", pa.string(), nullable=True),
        schema_field("start_s", pa.float64()),
        schema_field("end_s", pa.float64()),
        schema_field("duration_s", pa.float64()),
        schema_field("video_path", pa.string()),
        schema_field("music_path", pa.string()),
        schema_field("sample_rate_hz", pa.int32()),
        schema_field("channels", pa.int32()),
        schema_field("fps", pa.float64()),
        schema_field("loudness_lufs", pa.float64()),
        schema_field("loudness_before_lufs", pa.float64()),
        schema_field("true_peak_dbtp", pa.float64()),
        schema_field("gain_db", pa.float64()),
        schema_field("silence_s", pa.float64()),
        schema_field("longest_silence_s", pa.float64()),
        schema_field("speech_s", pa.float64()),
        schema_field("non_music_s", pa.float64()),
        schema_field("static_share", pa.float64()),
        schema_field("noise_score", pa.float64()),
        schema_field("priority", pa.float64()),
        schema_field("flags", string_list()),
        schema_field("scene_cuts_s", pa.list_(pa.field("element", pa.float64(), nullable=False))),
        schema_field("decision", pa.string()),
        schema_field("reasons", string_list()),
        schema_field("annotators", string_list()),
        schema_field("separator_model_id", pa.string()),
        schema_field("stand_in", pa.bool_()),  # music made by a stand-in (random-weight) separator
    ],
    metadata={SCHEMA_VERSION_KEY: str(MANIFEST_SCHEMA_VERSION).encode()},
)


@dataclass(frozen=True)
class ManifestRow:
    """One clip of a manifest; the fields are `MANIFEST_SCHEMA`'s columns, in order."""

    clip_id: str
    video_id: str
    group_id: str
    split: str
    query: str | None
    queries: tuple[str, ...]
    platform: str
    source_url: str
    title: str | None
    channel: str | None
    license: str | None
    start_s: float
    end_s: float
    duration_s: float
    video_path: str
    music_path: str
    sample_rate_hz: int
    channels: int
    fps: float
    loudness_lufs: float
    loudness_before_lufs: float
    true_peak_dbtp: float
    gain_db: float
    silence_s: float
    longest_silence_s: float
    speech_s: float
    non_music_s: float
    static_share: float
    noise_score: float
    priority: float
    flags: tuple[str, ...]
    scene_cuts_s: tuple[float, ...]
    decision: str
    reasons: tuple[str, ...]
    annotators: tuple[str, ...]
    separator_model_id: str
    stand_in: bool


def manifest_row(
    video: VideoRecord,
    clip: ClipRecord,
    decision: Decision,
    group_id: str,
    split: Split,
    sample_rate_hz: int,
    *,
    channels: int = MUSIC_CHANNELS,
) -> ManifestRow:
    """The manifest row of `clip` (of `video`), decided by `decision`, on side `split`.
    `sample_rate_hz` and `channels` describe the clip's music file. ValueError if the records
    do not belong together or the decision is not settled."""
    if clip.video_id != video.video_id:
        raise ValueError(f"clip {clip.clip_id!r} belongs to {clip.video_id!r}, not to {video.video_id!r}")
    if decision.status not in (ClipStatus.ACCEPTED, ClipStatus.REJECTED):
        raise ValueError(f"clip {clip.clip_id!r}: decision {decision.status.value!r} is neither accepted nor rejected")
    meta, loud, scores = video.metadata, clip.loudness, clip.prescreen
    return ManifestRow(
        clip_id=clip.clip_id,
        video_id=video.video_id,
        group_id=group_id,
        split=Split(split).value,
        query=video.queries[0] if video.queries else None,
        queries=tuple(video.queries),
        platform=video.platform,
        source_url=meta.webpage_url or video.url,
        title=meta.title,
        channel=meta.channel,
        license=meta.license,
        start_s=clip.start_s,
        end_s=clip.end_s,
        duration_s=clip.duration_s,
        video_path=clip.video_path,
        music_path=clip.music_path,
        sample_rate_hz=sample_rate_hz,
        channels=channels,
        fps=clip.fps,
        loudness_lufs=loud.after_lufs,
        loudness_before_lufs=loud.before_lufs,
        true_peak_dbtp=loud.true_peak_dbtp,
        gain_db=loud.gain_db,
        silence_s=scores.silence_s,
        longest_silence_s=scores.longest_silence_s,
        speech_s=scores.speech_s,
        non_music_s=scores.non_music_s,
        static_share=scores.static_share,
        noise_score=scores.noise_score,
        priority=scores.priority,
        flags=tuple(flag.value for flag in scores.flags),
        scene_cuts_s=tuple(scores.scene_cuts_s),
        decision=decision.status.value,
        reasons=tuple(reason.value for reason in decision.reasons),
        annotators=tuple(decision.annotators),
        separator_model_id=clip.separator_model_id,
        stand_in=clip.stand_in,
    )


def manifest_path(manifest_dir: Path, split: Split) -> Path:
    """`<manifest_dir>/<split>.parquet`."""
    return Path(manifest_dir) / f"{Split(split).value}.parquet"


def manifest_table(
    rows: Iterable[Any], metadata: Mapping[str, Any] | None = None, *, schema: pa.Schema = MANIFEST_SCHEMA
) -> pa.Table:
    """Rows -> a Table of `schema` (default `MANIFEST_SCHEMA`; rows are dataclasses with its
    columns as fields, e.g. `ManifestRow`), sorted by clip_id, with `metadata` as JSON in the
    schema metadata. Columns are built straight from the rows (no pandas). ManifestError if a
    required column holds a null."""
    ordered = sorted(rows, key=operator.attrgetter("clip_id"))
    schema = schema.with_metadata(
        {**schema.metadata, METADATA_KEY: json.dumps(dict(metadata or {}), sort_keys=True).encode()}
    )
    if not ordered:
        return schema.empty_table()
    columns = zip(*map(operator.attrgetter(*schema.names), ordered))
    arrays = [pa.array(column, type=field.type) for column, field in zip(columns, schema)]
    for array, field in zip(arrays, schema):
        if not field.nullable and array.null_count:
            raise ManifestError(f"column {field.name!r} must not be null ({array.null_count} nulls)")
    return pa.Table.from_arrays(arrays, schema=schema)


def write_manifest(
    rows: Iterable[Any], path: Path, metadata: Mapping[str, Any] | None = None, *, schema: pa.Schema = MANIFEST_SCHEMA
) -> Path:
    """Write `rows` (in clip_id order, so the same rows give the same file) to the Parquet file
    `path`, atomically, with `metadata` (JSON-serialisable) stored beside the schema version."""
    table = manifest_table(rows, metadata, schema=schema)
    with atomic_path(Path(path)) as temp:
        pq.write_table(table, temp, row_group_size=ROW_GROUP_ROWS)
    return Path(path)


def read_manifest(path: Path, *, schema: pa.Schema = MANIFEST_SCHEMA) -> pa.Table:
    """The manifest (or other table of `schema`) at `path` as a Table; ManifestError if its
    schema version is missing, newer or older than this code's, or its columns differ from `schema`."""
    try:
        found = pq.read_schema(path)
    except (OSError, pa.ArrowException) as error:
        raise ManifestError(f"{path}: not a readable Parquet file ({error})") from error
    check_schema(found, str(path), expected=schema)
    return pq.read_table(path)


def check_schema(schema: pa.Schema, where: str, *, expected: pa.Schema = MANIFEST_SCHEMA) -> None:
    """ManifestError unless `schema` carries `expected`'s schema version and columns."""
    current = int(expected.metadata[SCHEMA_VERSION_KEY])
    raw = (schema.metadata or {}).get(SCHEMA_VERSION_KEY)
    if raw is None:
        raise ManifestError(f"{where}: no {SCHEMA_VERSION_KEY.decode()} in the file metadata; not a dvmset file")
    try:
        version = int(raw)
    except ValueError:
        raise ManifestError(f"{where}: schema version {raw!r} is not a number") from None
    if version > current:
        raise ManifestError(f"{where}: schema version {version} is newer than this code's ({current}); upgrade dvmset")
    if version < current:
        raise ManifestError(f"{where}: schema version {version} is older than {current}; publish it again")
    if not schema.equals(expected, check_metadata=False):
        wanted = {f.name: str(f) for f in expected}
        found = {f.name: str(f) for f in schema}
        differ = sorted(name for name in wanted.keys() | found.keys() if wanted.get(name) != found.get(name))
        raise ManifestError(f"{where}: columns differ from the schema ({', '.join(differ) or 'column order'})")


def manifest_metadata(table: pa.Table) -> dict[str, Any]:
    """The JSON metadata `write_manifest` stored with a table read by `read_manifest` ({} if none)."""
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}
