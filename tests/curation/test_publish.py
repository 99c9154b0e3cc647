"""Publish end to end, through the `dvmset` commands: a small catalog of generated videos (one a
re-encoded, resized copy of another) with clip files and label events written directly ->
`dvmset publish` -> manifests that pandas and DuckDB read, leak-free, and that `manifests check`
passes; a planted leak fails it; a second publish keeps the old sides; a new video that bridges both
sides is withheld; every media file is recorded as published; check and export resolve paths from any
folder. Refusals: test_publish_refusals.py; versions: test_publish_versions.py.

The catalog rows stand for what the stages would record (`tests.support.publish_catalog`); the
fingerprints are made by the real fingerprint step from the generated media (the source's sound stands
in for the accompaniment).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from curation.publish import publish
from dvmset.catalog import Catalog
from dvmset.config import load_config
from dvmset.storage import DataRoot
from dvmset.tools import require_tool
from manifests.media_facts import music_facts
from tests.support.publish_catalog import (
    CLIP_S,
    COPY,
    FIRST,
    LATER,
    MUSIC_RATE_HZ,
    add_video,
    expected_accepted,
    run_cli,
)


@pytest.mark.slow
def test_the_manifests_hold_the_decided_accepted_clips_without_leaks(published):
    folder = published / "data" / "manifests" / "v0001"
    frames = [pd.read_parquet(folder / f"{side}.parquet") for side in ("train", "test")]
    both = pd.concat(frames)
    assert set(both.clip_id) == expected_accepted([name for name, *_ in FIRST] + [COPY])
    assert set(both.decision) == {"accepted"} and len(frames[1]) > 0 and len(frames[0]) > len(frames[1])
    assert set(both.sample_rate_hz) == {MUSIC_RATE_HZ}
    groups = both.groupby("video_id").group_id.first()
    assert groups["local:a_copy"] == groups["local:a"]  # the copy joins its original...
    assert groups.drop("local:a_copy").nunique() == len(FIRST)  # ...and no other two videos group
    leaks = duckdb.sql(f"""
        SELECT count(*) FROM read_parquet('{folder}/train.parquet') AS tr
        JOIN read_parquet('{folder}/test.parquet') AS te ON tr.video_id = te.video_id OR tr.group_id = te.group_id
    """).fetchall()[0][0]
    assert leaks == 0
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "non_music" in card and "noise" in card and "test_share = 0.07" in card and "seed = 3" in card
    meta = json.loads(pq.read_schema(folder / "train.parquet").metadata[b"dvmset.metadata"])
    assert meta["manifest_version"] == "v0001" and meta["code_version"]
    code, output = run_cli("manifests", "check", folder, "--config", published / "dvmset.toml")
    assert code == 0, output
    code, output = run_cli("manifests", "export-jsonl", folder, published / "jsonl", "--data-root", published / "data")
    assert code == 0, output
    lines = (published / "jsonl" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(frames[0]) and Path(json.loads(lines[0])["path"]).is_file()


@pytest.mark.slow
def test_a_planted_leak_fails_the_check(published, tmp_path):
    folder = shutil.copytree(published / "data" / "manifests" / "v0001", tmp_path / "leaky")
    train = pq.read_table(folder / "train.parquet")
    test = pq.read_table(folder / "test.parquet")
    moved = train.slice(0, 1)
    index = moved.schema.get_field_index("split")
    moved = moved.set_column(index, moved.schema.field(index), pa.array(["test"]))
    pq.write_table(pa.concat_tables([test, moved]), folder / "test.parquet")
    code, output = run_cli("manifests", "check", folder, "--data-root", published / "data")
    assert code == 1
    assert "video_leak" in output and "group_leak" in output and "duplicate_clip" in output


@pytest.mark.slow
def test_a_second_publish_keeps_every_old_side(published, publish_media, tmp_path):
    shutil.copytree(published, tmp_path / "work")
    config = load_config(tmp_path / "work" / "dvmset.toml", environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    before = {v.video_id: v.split for v in catalog.videos()}
    for name, query, _bpm, _cut in LATER:
        add_video(catalog, config, publish_media, name, query)
    code, output = run_cli("publish", "--config", tmp_path / "work" / "dvmset.toml")  # the next version: v0002
    assert code == 0, output
    after = {v.video_id: v.split for v in catalog.videos()}
    assert {video_id: after[video_id] for video_id in before} == before
    assert all(after[f"local:{name}"] in ("train", "test") for name, *_ in LATER)
    folder = tmp_path / "work" / "data" / "manifests"
    sides = duckdb.sql(f"SELECT DISTINCT video_id, split FROM read_parquet('{folder}/v0002/*.parquet')").fetchall()
    assert dict(sides) == {video_id: side for video_id, side in after.items() if side is not None}
    assert len(dict(sides)) == len(FIRST) + len(LATER) + 1
    catalog.close()


@pytest.mark.slow
def test_a_new_video_that_bridges_groups_published_on_both_sides_is_withheld(published, publish_media, tmp_path):
    """A new upload that holds one train video and one test video back to back matches both:
    it cannot join either side without a leak, so it is left out (and not grouped), while
    everything else publishes and every old video keeps its group and side."""
    shutil.copytree(published, tmp_path / "work")
    config = load_config(tmp_path / "work" / "dvmset.toml", environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    before = {v.video_id: (v.group_id, v.split) for v in catalog.videos()}
    train = next(name for name, *_ in FIRST if before[f"local:{name}"][1] == "train")
    test = next(name for name, *_ in FIRST if before[f"local:{name}"][1] == "test")
    subprocess.run(
        [
            require_tool("ffmpeg"),
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            publish_media / f"{train}.mp4",
            "-i",
            publish_media / f"{test}.mp4",
            "-filter_complex",
            "[0:v][0:a][1:v][1:a]concat=n=2:v=1:a=1[v][a]",
            "-map",
            "[v]",
            "-map",
            "[a]",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            tmp_path / "bridge.mp4",
        ],
        check=True,
    )
    shutil.copy(tmp_path / "bridge.mp4", publish_media / "bridge.mp4")  # add_video reads the media folder
    try:
        add_video(catalog, config, publish_media, "bridge", "food")
        add_video(catalog, config, publish_media, LATER[0][0], LATER[0][1])
    finally:
        (publish_media / "bridge.mp4").unlink()
    result = publish(catalog, config, "v0002")
    assert result.withheld_video_ids == ("local:bridge",)
    after = {v.video_id: (v.group_id, v.split) for v in catalog.videos()}
    assert {video_id: after[video_id] for video_id in before} == before
    assert after["local:bridge"] == (None, None)
    assert after[f"local:{LATER[0][0]}"][1] in ("train", "test")
    both = pd.concat(pd.read_parquet(result.manifest_dir / f"{side}.parquet") for side in ("train", "test"))
    assert "local:bridge" not in set(both.video_id) and f"local:{LATER[0][0]}" in set(both.video_id)
    code, output = run_cli("manifests", "check", result.manifest_dir, "--data-root", config.data_root)
    assert code == 0, output
    catalog.close()


# --- checksummed media, paths from any folder (issue 18) -----------------------------------------


@pytest.mark.slow
def test_every_media_file_is_recorded_as_published(published):
    import hashlib

    folder = published / "data" / "manifests" / "v0001"
    both = pd.concat(pd.read_parquet(folder / f"{side}.parquet") for side in ("train", "test"))
    data = DataRoot(published / "data")
    for row in both.itertuples():
        for kind in ("video", "music"):
            path = data.resolve(getattr(row, f"{kind}_path"))
            assert getattr(row, f"{kind}_bytes") == path.stat().st_size
            assert getattr(row, f"{kind}_sha256") == hashlib.sha256(path.read_bytes()).hexdigest()
            assert getattr(row, f"{kind}_duration_s") == pytest.approx(CLIP_S, abs=0.05)
        assert row.music_samples == sf.info(str(data.resolve(row.music_path))).frames == CLIP_S * MUSIC_RATE_HZ
        music = music_facts(data.resolve(row.music_path))
        assert (row.tempo_bpm, row.beat_count) == (music.tempo_bpm, music.beat_count)
    meta = json.loads(pq.read_schema(folder / "train.parquet").metadata[b"dvmset.metadata"])
    assert meta["media_root"] == "../.."


@pytest.mark.slow
def test_check_and_export_resolve_paths_from_any_folder_without_a_config(published, tmp_path, monkeypatch):
    work = shutil.copytree(published, tmp_path / "work")
    folder = work / "data" / "manifests" / "v0001"
    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)  # no dvmset.toml here, and the data root is not below this folder
    relative = Path("..") / ".." / "work" / "data" / "manifests" / "v0001"
    for given in (folder, relative):
        code, output = run_cli("manifests", "check", given)
        assert code == 0, output
        assert "0 problems" not in output and "ok" in output
    code, output = run_cli("manifests", "export-jsonl", relative, "jsonl")
    assert code == 0, output
    entries = [json.loads(line) for line in (elsewhere / "jsonl" / "train.jsonl").read_text().splitlines()]
    assert entries and all(Path(e["path"]).is_file() and Path(e["video_path"]).is_file() for e in entries)
    assert all(Path(e["path"]).is_relative_to(work / "data") for e in entries)

    train = pd.read_parquet(folder / "train.parquet")
    gone = DataRoot(work / "data").resolve(train.music_path.iloc[0])
    gone.unlink()
    code, output = run_cli("manifests", "export-jsonl", relative, "jsonl2")
    said = " ".join(output.split())
    assert code == 1 and "1 media files do not exist" in said and gone.name in output and str(gone.parent) in said
    assert not (elsewhere / "jsonl2").exists()  # nothing written
    code, output = run_cli("manifests", "check", relative)
    assert code == 1 and "missing_file" in output and "1 problems" in output  # the clip named: test_check.py
