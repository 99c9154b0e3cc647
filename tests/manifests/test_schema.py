"""The manifest: rows from records, Parquet round trip, plain readers (pandas, pyarrow, DuckDB,
`datasets`), schema versions, and the jsonl export (rows and media from `tests/support/manifest_rows.py`)."""

from __future__ import annotations

import json
import math
from dataclasses import fields, replace
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from dvmset.records import ClipStatus, Decision
from dvmset.storage import DataRoot
from manifests.export_jsonl import export_jsonl
from manifests.schema import (
    MANIFEST_SCHEMA,
    MANIFEST_SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
    ManifestError,
    ManifestRow,
    manifest_metadata,
    manifest_path,
    manifest_row,
    manifest_table,
    read_manifest,
    write_manifest,
)
from manifests.split import Split
from tests.support.manifest_rows import (
    ACCEPT,
    CITY,
    CITY1,
    FOOD,
    FOOD1,
    FOOD2,
    REJECT,
    SAMPLE_RATE_HZ,
    UNMEASURED_MUSIC,
    UNMEASURED_VIDEO,
    dataset_rows,
    make_clip,
    make_row,
    publish,
    rows_of,
)


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
        manifest_row(
            FOOD1,
            make_clip(FOOD1.video_id, 0.0),
            ACCEPT,
            "g",
            Split.TRAIN,
            1,
            video_facts=UNMEASURED_VIDEO,
            music_facts=UNMEASURED_VIDEO,
        )
    with pytest.raises(ValueError, match="tempo or beat count"):
        manifest_row(
            FOOD1,
            make_clip(FOOD1.video_id, 0.0),
            ACCEPT,
            "g",
            Split.TRAIN,
            1,
            video_facts=UNMEASURED_VIDEO,
            music_facts=replace(UNMEASURED_MUSIC, tempo_bpm=None),
        )


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
    from manifests.export_jsonl import MissingMediaError

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
