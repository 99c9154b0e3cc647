"""The manifest: one Parquet file per split, one row per clip, under `manifests/<version>/`.

In: a `VideoRecord`, a `ClipRecord`, its settled `Decision`, its group and side -> `ManifestRow`
(`manifest_row`); rows -> `<split>.parquet` (`write_manifest`). Out: a pyarrow Table whose schema
has been checked against `MANIFEST_SCHEMA` (`read_manifest`).

`MANIFEST_SCHEMA` is the one schema; its version is stored in the file's key-value metadata under
`dvmset.schema_version`, and free JSON (manifest version, config, code version) under
`dvmset.metadata`. The files use plain Parquet types only (strings, doubles, ints, lists), so
pandas, pyarrow, DuckDB and Hugging Face `datasets` read them without this code. Media paths are
relative to the media root: the metadata's `media_root`, itself relative to the manifest's folder
(`../..` for `<data_root>/manifests/<version>/`); `resolve_media_root` is the one resolver that
`manifests check`, `export-jsonl` and the trainer use. Each media file's size, SHA-256 and decoded
duration (music: and samples, and the tempo and beat count) are columns. `loudness_before_lufs` is -inf for a
silent clip.
"""

from __future__ import annotations

import json
import operator
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dvmset.errors import DvmsetError
from dvmset.records import ClipRecord, ClipStatus, Decision, VideoRecord
from dvmset.storage import atomic_path
from manifests.media_facts import MediaFacts
from manifests.split import Split

MANIFEST_SCHEMA_VERSION = 3  # 2: voice_s -> speech_s (a speech detector), stand_in; media sizes, SHA-256s, durations
# 3: the music's tempo_bpm and beat_count (`manifests.music_rhythm`)
MEDIA_ROOT_KEY = "media_root"  # in the JSON metadata: where media paths start, relative to the manifest's folder
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
        schema_field("video_bytes", pa.int64()),  # the media files as published: size, SHA-256 (hex),
        schema_field("video_sha256", pa.string()),  # decoded seconds (music: and samples per channel)
        schema_field("video_duration_s", pa.float64()),
        schema_field("music_bytes", pa.int64()),
        schema_field("music_sha256", pa.string()),
        schema_field("music_duration_s", pa.float64()),
        schema_field("music_samples", pa.int64()),
        schema_field("sample_rate_hz", pa.int32()),
        schema_field("channels", pa.int32()),
        schema_field("tempo_bpm", pa.float64()),  # the music's rhythm summary, measured at publish
        schema_field("beat_count", pa.int32()),
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

# What each column of `MANIFEST_SCHEMA` holds: the dataset card's column dictionary is generated
# from the schema and this dict (a test checks that every column has a description).
COLUMN_DOCS: dict[str, str] = {
    "clip_id": "`<video_id>:<start_ms, 8 digits>`: the clip's id, unique over both splits",
    "video_id": "`<platform>:<platform id>` (`local:<sha1>` for a local file): the source video",
    "group_id": (
        "near-duplicate group of the source video (re-uploads, re-encodes, same music); a group is on one side only"
    ),
    "split": "`train` or `test` (the file's own split)",
    "query": "the source video's first search query; null when it came from a URL list or folder",
    "queries": "every search query that found the source video",
    "platform": "where the source video comes from (`youtube`, `vimeo`, `local`, ...)",
    "source_url": "the source video's page URL",
    "title": "the source video's title, as the platform gives it",
    "channel": "the source video's channel or uploader",
    "license": "the source video's licence, as the platform gives it; null when it says none",
    "start_s": "start of the clip in the source video, seconds",
    "end_s": "end of the clip in the source video, seconds",
    "duration_s": "length of the clip, seconds (60 by default)",
    "video_path": "the clip's video file (no audio track), relative to the media root (metadata `media_root`, "
    "relative to the manifest's folder)",
    "music_path": "the clip's music file (FLAC, vocals removed, loudness-normalized), relative to the media root",
    "video_bytes": "size of the video file as published, bytes",
    "video_sha256": "SHA-256 of the video file as published (hex); `dvmset manifests check` verifies it",
    "video_duration_s": "seconds of the video file's picture stream, from every packet, measured at publish",
    "music_bytes": "size of the music file as published, bytes",
    "music_sha256": "SHA-256 of the music file as published (hex); `dvmset manifests check` verifies it",
    "music_duration_s": "seconds of the music file, decoded in full at publish",
    "music_samples": "samples per channel of the music file, decoded in full at publish",
    "sample_rate_hz": "sample rate of the music file, Hz",
    "channels": "channels of the music file",
    "tempo_bpm": "global tempo of the music, BPM (librosa's beat tracker on the onset strength of the channel mean at "
    "22,050 Hz, as the model's rhythm features); 0 when no beat is found",
    "beat_count": "beats librosa's beat tracker finds in the music (the same run as tempo_bpm)",
    "fps": "frame rate of the video file, frames per second",
    "loudness_lufs": "integrated loudness of the music after normalization (ITU-R BS.1770), LUFS",
    "loudness_before_lufs": "integrated loudness of the music before normalization, LUFS; -inf for a silent clip",
    "true_peak_dbtp": "true peak of the normalized music, dBTP",
    "gain_db": "gain applied by the loudness normalization, dB",
    "silence_s": "seconds of silence in the music",
    "longest_silence_s": "the longest stretch of silence in the music, seconds",
    "speech_s": "seconds of speech (the speech detector on the vocals stem)",
    "non_music_s": "seconds that are not music (silence or speech, counted once)",
    "static_share": "share of the clip where the picture stands still (0 to 1)",
    "noise_score": "how noise-like the music is (0 to 1)",
    "priority": "review-queue priority the prescreen gave the clip (higher: reviewed earlier)",
    "flags": "what the prescreen flagged (`non_music`, `noise`, `static`)",
    "scene_cuts_s": "scene-cut times in the clip, seconds from its start",
    "decision": "the reviewers' settled decision (`accepted` in a published split)",
    "reasons": "the reviewers' reject reasons (empty for an accepted clip)",
    "annotators": "the annotators whose votes settled the decision",
    "separator_model_id": "the model that removed the vocals (`htdemucs` by default)",
    "stand_in": "true when a stand-in separator with random weights made the music: not data",
}


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
    video_bytes: int
    video_sha256: str
    video_duration_s: float
    music_bytes: int
    music_sha256: str
    music_duration_s: float
    music_samples: int
    sample_rate_hz: int
    channels: int
    tempo_bpm: float
    beat_count: int
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
    video_facts: MediaFacts,
    music_facts: MediaFacts,
    channels: int = MUSIC_CHANNELS,
) -> ManifestRow:
    """The manifest row of `clip` (of `video`), decided by `decision`, on side `split`.
    `sample_rate_hz` and `channels` describe the clip's music file, `video_facts` and
    `music_facts` its two files as measured (`manifests.media_facts`). ValueError if the records
    do not belong together, the decision is not settled, or the music facts lack samples, tempo or beats."""
    if music_facts.samples is None or music_facts.tempo_bpm is None or music_facts.beat_count is None:
        raise ValueError(f"clip {clip.clip_id!r}: the music facts carry no sample count, tempo or beat count")
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
        video_bytes=video_facts.size_bytes,
        video_sha256=video_facts.sha256,
        video_duration_s=video_facts.duration_s,
        music_bytes=music_facts.size_bytes,
        music_sha256=music_facts.sha256,
        music_duration_s=music_facts.duration_s,
        music_samples=music_facts.samples,
        sample_rate_hz=sample_rate_hz,
        channels=channels,
        tempo_bpm=music_facts.tempo_bpm,
        beat_count=music_facts.beat_count,
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


def media_root_of(manifest_dir: Path, data_root: Path) -> str:
    """What publish writes as `media_root`: `data_root` relative to `manifest_dir` (POSIX, e.g. `../..`)."""
    return Path(os.path.relpath(os.path.abspath(data_root), os.path.abspath(manifest_dir))).as_posix()


def resolve_media_root(
    manifest_file: Path, metadata: Mapping[str, Any], data_root: Path | None = None, *, default: Path | None = None
) -> Path:
    """The absolute folder where the media paths of the manifest `manifest_file` (with its JSON
    `metadata`) start: `data_root` when given (an explicit override), else the manifest's own
    `media_root` taken from the folder the file is in, so the answer is the same from any
    working folder, else `default` (for manifests published before `media_root` was recorded).
    ManifestError when none says."""
    if data_root is not None:
        return Path(os.path.abspath(data_root))
    relative = metadata.get(MEDIA_ROOT_KEY)
    if not isinstance(relative, str) or not relative:
        if default is not None:
            return Path(os.path.abspath(default))
        raise ManifestError(
            f"{manifest_file}: the manifest records no {MEDIA_ROOT_KEY} (published before it was recorded); "
            "give the data root (--data-root or --config)"
        )
    return Path(os.path.abspath(Path(os.path.abspath(manifest_file)).parent / relative))


def file_metadata(path: Path) -> dict[str, Any]:
    """The JSON metadata of the Parquet file `path`, read from its footer alone ({} if none);
    ManifestError when it is not a readable Parquet file."""
    try:
        raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    except (OSError, pa.ArrowException) as error:
        raise ManifestError(f"{path}: not a readable Parquet file ({error})") from error
    return json.loads(raw) if raw else {}
