"""The manifest: rows from records, Parquet round trip, plain readers (pandas, pyarrow, DuckDB,
`datasets`), schema versions, and the jsonl export.

The helpers at the top (hand-made records, a small published dataset with its media) are shared
with test_manifest_check.py and test_dataset_card.py.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from dvmset.export_jsonl import export_jsonl
from dvmset.ids import make_clip_id
from dvmset.manifest import (
    MANIFEST_SCHEMA,
    MEDIA_ROOT_KEY,
    MANIFEST_SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
    ManifestError,
    ManifestRow,
    manifest_metadata,
    manifest_path,
    manifest_row,
    manifest_table,
    media_root_of,
    read_manifest,
    write_manifest,
)
from dvmset.media_facts import MediaFacts, music_facts, video_facts
from dvmset.records import (
    ClipLoudness,
    ClipRecord,
    ClipStatus,
    ClipVersions,
    Decision,
    PrescreenFlag,
    PrescreenScores,
    RejectReason,
    SourceKind,
    SourceMetadata,
    VideoRecord,
    VideoStatus,
)
from dvmset.split import Split
from dvmset.storage import DataRoot
from dvmset.tools import require_tool

FOOD, CITY = "food commercial", "city video guide"
CLIP_S = 3.0  # short clips keep the media small
FPS = 5.0
SAMPLE_RATE_HZ = 44100

# --- shared helpers: records, rows, media ---------------------------------------------------


def make_video(video_id: str, queries: tuple[str, ...], webpage_url: str | None = None) -> VideoRecord:
    platform = video_id.split(":")[0]
    return VideoRecord(
        video_id=video_id,
        url=f"https://{platform}.example/{video_id}",
        platform=platform,
        source=SourceKind.PLATFORM_SEARCH,
        status=VideoStatus.CLIPPED,
        queries=queries,
        metadata=SourceMetadata(
            title=f"title of {video_id}", channel="a channel", license="cc-by", webpage_url=webpage_url
        ),
    )


def make_clip(video_id: str, start_s: float, silent: bool = False) -> ClipRecord:
    clip_id = make_clip_id(video_id, start_s)
    folder = DataRoot(Path(".")).clip_dir(clip_id).as_posix()
    return ClipRecord(
        clip_id=clip_id,
        video_id=video_id,
        start_s=start_s,
        end_s=start_s + CLIP_S,
        status=ClipStatus.ACCEPTED,
        fps=FPS,
        video_path=f"{folder}/video.mp4",
        music_path=f"{folder}/music.flac",
        separator_model_id="htdemucs",
        loudness=ClipLoudness(
            before_lufs=-math.inf if silent else -21.5, after_lufs=-14.0, true_peak_dbtp=-1.2, gain_db=7.5,
            limited=False, silent=silent,
        ),  # fmt: skip
        prescreen=PrescreenScores(
            silence_s=0.5, longest_silence_s=0.5, speech_s=1.0, non_music_s=1.5, static_share=0.1, noise_score=0.2,
            scene_cuts_s=(0.8, 2.4), flags=(PrescreenFlag.NON_MUSIC,), priority=0.3,
        ),  # fmt: skip
        versions=ClipVersions(
            separate="separate/1+a", clip="clip/1+b", loudness="loudness/1+c", prescreen="prescreen/1+d"
        ),
    )


ACCEPT = Decision(ClipStatus.ACCEPTED, annotators=("ann",))
REJECT = Decision(ClipStatus.REJECTED, reasons=(RejectReason.NON_MUSIC,), annotators=("ann", "bob"))


# Stand-ins for measured media facts: rows made without media carry these; `publish` measures the real ones
UNMEASURED_VIDEO = MediaFacts(0, "0" * 64, CLIP_S)
UNMEASURED_MUSIC = MediaFacts(0, "0" * 64, CLIP_S, round(CLIP_S * SAMPLE_RATE_HZ), 120.0, 6)


def make_row(
    video: VideoRecord, start_s: float, group_id: str, split: Split, decision: Decision = ACCEPT, silent: bool = False
) -> ManifestRow:
    return manifest_row(
        video, make_clip(video.video_id, start_s, silent), decision, group_id, split, SAMPLE_RATE_HZ,
        video_facts=UNMEASURED_VIDEO, music_facts=UNMEASURED_MUSIC,
    )  # fmt: skip


def measured(row: ManifestRow, root: DataRoot) -> ManifestRow:
    """`row` with the facts of its media files as they are under `root` now."""
    video, music = video_facts(root.resolve(row.video_path)), music_facts(root.resolve(row.music_path))
    return replace(
        row, video_bytes=video.size_bytes, video_sha256=video.sha256, video_duration_s=video.duration_s,
        music_bytes=music.size_bytes, music_sha256=music.sha256, music_duration_s=music.duration_s,
        music_samples=music.samples, tempo_bpm=music.tempo_bpm, beat_count=music.beat_count,
    )  # fmt: skip


FOOD1 = make_video("youtube:food1", (FOOD,))
FOOD2 = make_video("youtube:food2", (FOOD,))
CITY1 = make_video("youtube:city1", (CITY, FOOD), webpage_url="https://www.youtube.com/watch?v=city1")
CITY2 = make_video("vimeo:city2", (CITY,))


def dataset_rows() -> dict[Split, list[ManifestRow]]:
    """A good split: 4 videos in 4 groups, both queries on both sides, one rejected clip, one silent."""
    return {
        Split.TRAIN: [
            make_row(FOOD1, 0.0, "g-food1", Split.TRAIN),
            make_row(FOOD1, 3.0, "g-food1", Split.TRAIN),
            make_row(FOOD1, 6.0, "g-food1", Split.TRAIN, decision=REJECT),
            make_row(CITY1, 0.0, "g-city1", Split.TRAIN),
        ],
        Split.TEST: [
            make_row(FOOD2, 0.0, "g-food2", Split.TEST, silent=True),
            make_row(CITY2, 0.0, "g-city2", Split.TEST),
        ],
    }


def make_test_video(path: Path, duration_s: float) -> Path:
    """A tiny H.264 test pattern of `duration_s` at `FPS`, made with ffmpeg's lavfi."""
    path.parent.mkdir(parents=True, exist_ok=True)
    args = [require_tool("ffmpeg"), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size=64x36:rate={FPS:g}"]
    subprocess.run([*args, "-t", f"{duration_s}", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def write_music(path: Path, duration_s: float) -> None:
    """A stereo 16-bit FLAC of a 440 Hz tone lasting `duration_s`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(duration_s * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    tone = 0.1 * np.sin(2 * np.pi * 440.0 * t)
    sf.write(path, np.stack([tone, tone], axis=1), SAMPLE_RATE_HZ, format="FLAC", subtype="PCM_16")


def publish(
    data_root: Path, manifest_dir: Path, rows: dict[Split, list[ManifestRow]], video_template: Path
) -> dict[Split, list[ManifestRow]]:
    """The media every row points to (the video a copy of `video_template`), and the two manifests,
    with the media measured and the media root recorded as publish does; returns the rows written."""
    root = DataRoot(data_root)
    for row in (row for split_rows in rows.values() for row in split_rows):
        write_music(root.resolve(row.music_path), row.duration_s)
        root.resolve(row.video_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(video_template, root.resolve(row.video_path))
    metadata = {"manifest_version": manifest_dir.name, MEDIA_ROOT_KEY: media_root_of(manifest_dir, data_root)}
    written = {split: [measured(row, root) for row in split_rows] for split, split_rows in rows.items()}
    for split, split_rows in written.items():
        write_manifest(split_rows, manifest_path(manifest_dir, split), metadata)
    return written


def rows_of(table: pa.Table) -> list[ManifestRow]:
    """A manifest table back as rows (lists as tuples)."""
    return [
        ManifestRow(**{key: tuple(value) if isinstance(value, list) else value for key, value in row.items()})
        for row in table.to_pylist()
    ]


# --- tests ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def video_template(tmp_path_factory) -> Path:
    return make_test_video(tmp_path_factory.mktemp("template") / "video.mp4", CLIP_S)


@pytest.fixture
def published(tmp_path, video_template) -> tuple[Path, Path]:
    """(data root, manifest folder) of `dataset_rows()`, media included."""
    data_root, manifest_dir = tmp_path / "data", tmp_path / "manifests" / "v1"
    publish(data_root, manifest_dir, dataset_rows(), video_template)
    return data_root, manifest_dir


def test_the_row_has_the_schema_columns_in_order():
    assert [field.name for field in fields(ManifestRow)] == MANIFEST_SCHEMA.names


def test_a_row_is_built_from_the_records():
    row = make_row(CITY1, 3.0, "g-city1", Split.TEST, decision=REJECT)
    assert row.clip_id == "youtube:city1:00003000"
    assert (row.split, row.query, row.queries) == ("test", CITY, (CITY, FOOD))
    assert row.source_url == "https://www.youtube.com/watch?v=city1"  # the page URL wins over the fetched one
    assert make_row(FOOD1, 0.0, "g", Split.TRAIN).source_url == FOOD1.url
    assert (row.start_s, row.end_s, row.duration_s) == (3.0, 6.0, 3.0)
    assert (row.loudness_lufs, row.loudness_before_lufs, row.gain_db) == (-14.0, -21.5, 7.5)
    assert (row.flags, row.scene_cuts_s, row.non_music_s) == (("non_music",), (0.8, 2.4), 1.5)
    assert (row.decision, row.reasons, row.annotators) == ("rejected", ("non_music",), ("ann", "bob"))
    assert (row.sample_rate_hz, row.channels, row.separator_model_id) == (SAMPLE_RATE_HZ, 2, "htdemucs")
    assert (row.tempo_bpm, row.beat_count) == (120.0, 6)


def test_a_row_refuses_records_that_do_not_belong_together():
    facts = {"video_facts": UNMEASURED_VIDEO, "music_facts": UNMEASURED_MUSIC}
    with pytest.raises(ValueError, match="belongs to"):
        manifest_row(FOOD2, make_clip(FOOD1.video_id, 0.0), ACCEPT, "g", Split.TRAIN, SAMPLE_RATE_HZ, **facts)
    with pytest.raises(ValueError, match="neither accepted nor rejected"):
        clip = make_clip(FOOD1.video_id, 0.0)
        manifest_row(FOOD1, clip, Decision(ClipStatus.PENDING_REVIEW), "g", Split.TRAIN, 1, **facts)
    with pytest.raises(ValueError, match="no sample count"):
        manifest_row(FOOD1, make_clip(FOOD1.video_id, 0.0), ACCEPT, "g", Split.TRAIN, 1,
                     video_facts=UNMEASURED_VIDEO, music_facts=UNMEASURED_VIDEO)  # fmt: skip
    with pytest.raises(ValueError, match="tempo or beat count"):
        manifest_row(FOOD1, make_clip(FOOD1.video_id, 0.0), ACCEPT, "g", Split.TRAIN, 1, video_facts=UNMEASURED_VIDEO,
                     music_facts=replace(UNMEASURED_MUSIC, tempo_bpm=None))  # fmt: skip


def test_write_then_read_gives_the_same_rows_and_metadata(tmp_path):
    rows = dataset_rows()[Split.TRAIN]
    path = write_manifest(reversed(rows), tmp_path / "train.parquet", {"config": "a = 1", "code_version": "abc"})
    table = read_manifest(path)
    assert table.schema.equals(MANIFEST_SCHEMA, check_metadata=False)
    assert rows_of(table) == sorted(rows, key=lambda row: row.clip_id)
    assert manifest_metadata(table) == {"config": "a = 1", "code_version": "abc"}
    assert table.schema.metadata[SCHEMA_VERSION_KEY] == str(MANIFEST_SCHEMA_VERSION).encode()
    assert [p.name for p in tmp_path.iterdir()] == ["train.parquet"]  # no temporary file left


def test_an_empty_manifest_round_trips(tmp_path):
    assert read_manifest(write_manifest([], tmp_path / "test.parquet")).num_rows == 0


def test_a_null_in_a_required_column_is_refused():
    with pytest.raises(ManifestError, match="'group_id' must not be null"):
        manifest_table([replace(dataset_rows()[Split.TRAIN][0], group_id=None)])


def test_plain_pandas_pyarrow_and_duckdb_open_the_files(published):
    duckdb = pytest.importorskip("duckdb")
    _, manifest_dir = published
    train, test = manifest_path(manifest_dir, Split.TRAIN), manifest_path(manifest_dir, Split.TEST)
    frame = pd.read_parquet(test)
    assert list(frame.columns) == MANIFEST_SCHEMA.names
    silent = frame.set_index("clip_id").loc["youtube:food2:00000000"]
    assert silent["loudness_before_lufs"] == -math.inf
    assert list(silent["scene_cuts_s"]) == [0.8, 2.4]
    assert pq.read_table(train).num_rows == 4
    both = f"read_parquet(['{train}', '{test}'])"
    rows = duckdb.sql(f"SELECT split, count(*), sum(duration_s) FROM {both} GROUP BY 1 ORDER BY 1")
    assert rows.fetchall() == [("test", 2, 6.0), ("train", 4, 12.0)]
    flags = duckdb.sql(f"SELECT list_contains(flags, 'non_music') FROM '{train}' LIMIT 1").fetchall()
    assert flags == [(True,)]


LEAK_SQL = """
WITH train AS (SELECT * FROM read_parquet($train)), test AS (SELECT * FROM read_parquet($test))
SELECT 'video' AS kind, video_id AS id FROM train WHERE video_id IN (SELECT video_id FROM test)
UNION
SELECT 'group', group_id FROM train WHERE group_id IN (SELECT group_id FROM test)
ORDER BY kind, id
"""


def test_duckdb_sql_alone_finds_no_leak_then_the_planted_one(published, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    _, manifest_dir = published
    paths = {split.value: str(manifest_path(manifest_dir, split)) for split in Split}
    assert duckdb.execute(LEAK_SQL, paths).fetchall() == []
    leaky = dataset_rows()[Split.TEST] + [make_row(FOOD1, 9.0, "g-food1", Split.TEST)]
    write_manifest(leaky, Path(paths["test"]))
    assert duckdb.execute(LEAK_SQL, paths).fetchall() == [("group", "g-food1"), ("video", "youtube:food1")]


def test_hugging_face_datasets_loads_the_files(published):
    datasets = pytest.importorskip("datasets")
    _, manifest_dir = published
    files = {split.value: str(manifest_path(manifest_dir, split)) for split in Split}
    loaded = datasets.load_dataset("parquet", data_files=files, cache_dir=str(manifest_dir.parent / "hf-cache"))
    assert (loaded["train"].num_rows, loaded["test"].num_rows) == (4, 2)
    assert loaded["train"][0]["scene_cuts_s"] == [0.8, 2.4]


def _rewrite_with_schema_metadata(path: Path, metadata: dict[bytes, bytes]) -> None:
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata(metadata), path)


def test_a_newer_or_missing_schema_version_is_refused(tmp_path):
    path = write_manifest(dataset_rows()[Split.TEST], tmp_path / "test.parquet")
    newer = MANIFEST_SCHEMA_VERSION + 1
    _rewrite_with_schema_metadata(path, {SCHEMA_VERSION_KEY: str(newer).encode()})
    with pytest.raises(ManifestError, match=f"schema version {newer} is newer than this code's"):
        read_manifest(path)
    _rewrite_with_schema_metadata(path, {})
    with pytest.raises(ManifestError, match="no dvmset.schema_version"):
        read_manifest(path)


def test_other_columns_are_refused(tmp_path):
    path = tmp_path / "test.parquet"
    table = manifest_table(dataset_rows()[Split.TEST])
    pq.write_table(table.drop_columns(["gain_db"]).replace_schema_metadata(table.schema.metadata), path)
    with pytest.raises(ManifestError, match="columns differ from the schema \\(gain_db\\)"):
        read_manifest(path)
    path.write_bytes(b"not parquet")
    with pytest.raises(ManifestError, match="not a readable Parquet file"):
        read_manifest(path)


def test_the_jsonl_export_lists_accepted_clips_with_existing_files(published, tmp_path):
    data_root, manifest_dir = published
    written = export_jsonl(manifest_dir, data_root, tmp_path / "jsonl")
    assert set(written) == set(Split)
    entries = {split: [json.loads(line) for line in path.read_text().splitlines()] for split, path in written.items()}
    assert len(entries[Split.TRAIN]) == 3 and len(entries[Split.TEST]) == 2  # the rejected clip is left out
    for entry in entries[Split.TRAIN] + entries[Split.TEST]:
        info = sf.info(entry["path"])
        assert Path(entry["path"]).is_absolute() and Path(entry["video_path"]).is_file()
        assert (entry["sample_rate"], entry["channels"]) == (info.samplerate, info.channels)
        assert entry["duration"] == pytest.approx(info.duration)
        assert entry["source_end_s"] - entry["source_start_s"] == entry["duration"]
    assert entries[Split.TRAIN][0]["clip_id"] == "youtube:city1:00000000"


def test_the_jsonl_export_starts_at_the_recorded_media_root_from_any_folder(published, tmp_path, monkeypatch):
    from dvmset.export_jsonl import MissingMediaError

    data_root, manifest_dir = published
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    relative = Path("..") / manifest_dir.relative_to(tmp_path)
    written = export_jsonl(relative, None, Path("out"))
    entries = [json.loads(line) for path in written.values() for line in path.read_text().splitlines()]
    assert len(entries) == 5 and all(Path(e["path"]).is_file() and Path(e["video_path"]).is_file() for e in entries)
    gone = DataRoot(data_root).resolve(dataset_rows()[Split.TEST][1].video_path)
    gone.unlink()
    with pytest.raises(MissingMediaError) as missing:
        export_jsonl(relative, None, Path("out2"))
    assert missing.value.missing == [str(gone)]
    assert not (elsewhere / "out2").exists()
    table = read_manifest(manifest_path(manifest_dir, Split.TRAIN))
    write_manifest(rows_of(table), manifest_path(manifest_dir, Split.TRAIN), {})  # records no media root
    with pytest.raises(ManifestError, match="records no media_root"):
        export_jsonl(relative, None, Path("out3"))
