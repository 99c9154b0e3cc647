"""Publish end to end, through the `dvmset` commands: a small catalog of generated videos (one a
re-encoded, resized copy of another) with clip files and label events written directly ->
`dvmset publish` -> manifests that pandas and DuckDB read, leak-free, and that `manifests check`
passes; a planted leak fails it; a second publish keeps the old sides; a version never
overwrites another; clips made by a stand-in separator are refused unless allowed, and then the
card says so at the top.

The catalog rows stand for what the stages would record; the fingerprints are made by the real
fingerprint step from the generated media (the source's sound stands in for the accompaniment).
"""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from typer.testing import CliRunner

from curation import steps
from curation.publish import StandInError, publish
from curation.samples import VideoSpec, make_video
from dvmset.catalog import Catalog, tables
from dvmset.cli.main import app
from dvmset.config import Config, load_config
from dvmset.errors import PublishError
from dvmset.ids import make_clip_id
from dvmset.records import (
    Candidate,
    ClipLoudness,
    ClipRecord,
    ClipStatus,
    ClipVersions,
    Download,
    ModelStamp,
    PrescreenScores,
    ProbeInfo,
    SourceKind,
    SourceMetadata,
    VideoStatus,
)
from dvmset.storage import ACCOMPANIMENT_FILE, DataRoot
from dvmset.tools import require_tool
from manifests.media_facts import music_facts

CLIP_S = 2.0
CLIPS_PER_VIDEO = 3
SOURCE_S = 8.0
MUSIC_RATE_HZ = 8000
VERSIONS = ClipVersions("separate/1+t", "clip/1+t", "loudness/1+t", "prescreen/1+t")
# (name, query, bpm, hue cut every s): every video differs from every other in picture and sound
FIRST = [
    ("a", "food", 80, 1.5),
    ("b", "food", 100, 2.5),
    ("c", "food", 125, 3.5),
    ("d", "city", 150, 2.0),
    ("e", "city", 175, 3.0),
    ("f", "city", 95, None),
]
LATER = [("g", "food", 140, 1.0), ("h", "city", 115, 4.5)]
COPY = "a_copy"  # a re-encoded, resized copy of "a", found by the other query
REJECTED = {"b": ["noise"], "e": ["non_music", "static"]}  # the first clip of these is rejected
UNDECIDED = {"c", "d"}  # the last clip of these has no label


def run_cli(*args: str | Path):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """Source videos, the copy, and one clip's files (every clip's files are copies of them)."""
    folder = tmp_path_factory.mktemp("publish_media")
    for seed, (name, _query, bpm, cut_s) in enumerate(FIRST + LATER, start=1):  # a picture of its own each
        spec = VideoSpec(SOURCE_S, width=160, height=120, bpm=bpm, cut_every_s=cut_s, pattern_seed=seed)
        make_video(folder / f"{name}.mp4", spec)
    subprocess.run(
        [
            require_tool("ffmpeg"),
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            folder / "a.mp4",
            "-vf",
            "scale=112:84",
            "-af",
            "volume=-3dB",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            "35",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            folder / f"{COPY}.mp4",
        ],
        check=True,
    )
    make_video(folder / "clip.mp4", VideoSpec(CLIP_S, width=64, height=48, audio="none"))
    tone = 0.1 * np.sin(2 * np.pi * 440 * np.arange(int(CLIP_S * MUSIC_RATE_HZ)) / MUSIC_RATE_HZ)
    sf.write(folder / "music.flac", np.stack([tone, tone], axis=1), MUSIC_RATE_HZ)
    return folder


def add_video(
    catalog: Catalog,
    config: Config,
    media: Path,
    name: str,
    query: str,
    rejected=(),
    undecided=False,
    models: tuple[ModelStamp, ...] = (),
) -> None:
    """A clipped video with CLIPS_PER_VIDEO clips on disk, fingerprinted by the real step, and
    label events: every clip accepted, but the first rejected for `rejected` and the last unlabelled
    when `undecided`. `models`: the separator (first) and speech detector recorded for its stems;
    a stand-in separator marks the video and its clips as stand-in output."""
    data, video_id = DataRoot(config.data_root), f"local:{name}"
    raw = data.raw_dir(video_id)
    raw.mkdir(parents=True)
    shutil.copy(media / f"{name}.mp4", raw / "source.mp4")
    stems = data.stems_dir(video_id)
    stems.mkdir(parents=True)
    subprocess.run(
        [
            require_tool("ffmpeg"),
            "-nostdin",
            "-v",
            "error",
            "-i",
            raw / "source.mp4",
            "-vn",
            stems / ACCOMPANIMENT_FILE,
        ],
        check=True,
    )
    catalog.add_candidates([Candidate(video_id, str(raw / "source.mp4"), SourceKind.LOCAL_FOLDER, query, title=name)])
    catalog.mark_downloaded(
        Download(video_id, data.relative(raw / "source.mp4"), SourceMetadata(title=name)), "download/1"
    )
    catalog.mark_probed(video_id, ProbeInfo(SOURCE_S, 1, "mp4", "h264", 160, 120, 25.0, "aac", 44100, 2), "probe/1")
    separator = models[0].model_id if models else "tiny"
    stand_in = bool(models) and models[0].stand_in
    catalog.mark_separated(video_id, separator, VERSIONS.separate, stand_in=stand_in, models=models)
    for n in range(CLIPS_PER_VIDEO):
        clip_id = make_clip_id(video_id, n * CLIP_S)
        folder = data.clip_dir(clip_id)
        folder.mkdir(parents=True)
        shutil.copy(media / "clip.mp4", folder / "video.mp4")
        shutil.copy(media / "music.flac", folder / "music.flac")
        catalog.save_clip(
            ClipRecord(
                clip_id=clip_id,
                video_id=video_id,
                start_s=n * CLIP_S,
                end_s=(n + 1) * CLIP_S,
                status=ClipStatus.PENDING_REVIEW,
                fps=25.0,
                video_path=data.relative(folder / "video.mp4"),
                music_path=data.relative(folder / "music.flac"),
                separator_model_id=separator,
                stand_in=stand_in,
                loudness=ClipLoudness(-20.0 - n, -14.0, -1.5, 6.0, False, False),
                prescreen=PrescreenScores(0.0, 0.0, 0.0, 0.0, 0.1, 0.1, (1.0,), (), 0.5),
                versions=VERSIONS,
            )
        )
        if n == CLIPS_PER_VIDEO - 1 and undecided:
            continue
        decision, reasons = ("rejected", list(rejected)) if n == 0 and rejected else ("accepted", [])
        with catalog.engine.begin() as conn:
            conn.execute(
                tables.labels.insert().values(
                    clip_id=clip_id,
                    annotator="ann",
                    decision=decision,
                    reasons=reasons,
                    note=None,
                    ts=datetime.now(UTC),
                )
            )
    catalog.mark_clipped(video_id, CLIPS_PER_VIDEO, VERSIONS.clip)
    outcome = steps.fingerprint_step(catalog, config, catalog.get_video(video_id))
    assert outcome.status is VideoStatus.CLIPPED and outcome.reason is None


def expected_accepted(names) -> set[str]:
    ids = set()
    for name in names:
        first = 1 if name in REJECTED else 0
        last = CLIPS_PER_VIDEO - 1 if name in UNDECIDED else CLIPS_PER_VIDEO
        ids |= {make_clip_id(f"local:{name}", n * CLIP_S) for n in range(first, last)}
    return ids


@pytest.fixture(scope="module")
def published(tmp_path_factory, media) -> Path:
    """A workdir (dvmset.toml + data/) after `dvmset publish --version v0001` of FIRST and COPY."""
    workdir = tmp_path_factory.mktemp("published")
    (workdir / "dvmset.toml").write_text('data_root = "data"\n[publish]\nseed = 3\n', encoding="utf-8")
    config = load_config(workdir / "dvmset.toml", environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    for name, query, _bpm, _cut in FIRST:
        add_video(catalog, config, media, name, query, REJECTED.get(name, ()), name in UNDECIDED)
    add_video(catalog, config, media, COPY, "city")
    catalog.close()
    code, output = run_cli("publish", "--config", workdir / "dvmset.toml", "--version", "v0001")
    assert code == 0, output
    assert "v0001" in output
    return workdir


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
def test_a_version_is_never_overwritten(published):
    config = load_config(published / "dvmset.toml", environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    with pytest.raises(PublishError, match="v0001.*exists"):
        publish(catalog, config, "v0001")
    catalog.close()
    code, output = run_cli("publish", "--config", published / "dvmset.toml", "--version", "v0001")
    assert code == 2 and "exists" in output and "v0002" in output  # a usage error: the next free version


@pytest.mark.slow
def test_a_second_publish_keeps_every_old_side(published, media, tmp_path):
    shutil.copytree(published, tmp_path / "work")
    config = load_config(tmp_path / "work" / "dvmset.toml", environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    before = {v.video_id: v.split for v in catalog.videos()}
    for name, query, _bpm, _cut in LATER:
        add_video(catalog, config, media, name, query)
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
def test_a_video_without_a_current_fingerprint_stops_the_publish(published, tmp_path):
    shutil.copytree(published, tmp_path / "work")
    config = load_config(tmp_path / "work" / "dvmset.toml", environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    catalog.mark_fingerprinted("local:b", 0)  # an older fingerprint version
    with pytest.raises(PublishError, match=r"local:b.*dvmset clip"):
        publish(catalog, config, "v0002")
    assert not (tmp_path / "work" / "data" / "manifests" / "v0002").exists()
    catalog.close()


@pytest.mark.slow
def test_a_new_video_that_bridges_groups_published_on_both_sides_is_withheld(published, media, tmp_path):
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
            media / f"{train}.mp4",
            "-i",
            media / f"{test}.mp4",
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
    shutil.copy(tmp_path / "bridge.mp4", media / "bridge.mp4")  # add_video reads the media folder
    try:
        add_video(catalog, config, media, "bridge", "food")
        add_video(catalog, config, media, LATER[0][0], LATER[0][1])
    finally:
        (media / "bridge.mp4").unlink()
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


@pytest.mark.slow
def test_stand_in_clips_are_refused_unless_allowed_and_then_the_card_warns_first(published, media, tmp_path):
    card = (published / "data" / "manifests" / "v0001" / "README.md").read_text(encoding="utf-8")
    assert "\nstand_in: false\n" in card and "WARNING" not in card
    assert "| separator | `tiny` | unknown | no |" in card  # the fixture's videos recorded no stamps
    shutil.copytree(published, tmp_path / "work")
    config_path = tmp_path / "work" / "dvmset.toml"
    config = load_config(config_path, environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    stand_in, speech = ModelStamp("tiny-random", "5e" * 32, stand_in=True), ModelStamp("silero_vad", "cd" * 32)
    real = ModelStamp("htdemucs", "ab" * 32)
    (g, g_query, *_), (h, h_query, *_) = LATER
    add_video(catalog, config, media, g, g_query, rejected=["noise"], models=(stand_in, speech))  # 1 rejected
    add_video(catalog, config, media, h, h_query, models=(real, speech))
    catalog.close()
    manifests = tmp_path / "work" / "data" / "manifests"

    code, output = run_cli("publish", "--config", config_path, "--version", "v0002")
    said = " ".join(output.split())
    assert code == 2, output  # a usage error: the flag is missing
    assert "3 clips" in said and "'tiny-random'" in said and "--allow-stand-in" in said and "random weights" in said
    assert not (manifests / "v0002").exists()
    catalog = Catalog.open(config.resolved_catalog_url)
    with pytest.raises(StandInError) as refused:
        publish(catalog, config, "v0002")
    assert (refused.value.reason, refused.value.clips, refused.value.models) == ("stand_in", 3, ("tiny-random",))
    assert isinstance(refused.value, PublishError)
    assert str(pickle.loads(pickle.dumps(refused.value))) == str(refused.value)  # Prefect keeps it in a state
    catalog.close()

    code, output = run_cli("publish", "--config", config_path, "--version", "v0002", "--allow-stand-in")
    assert code == 0, output
    assert "STAND-IN OUTPUT PUBLISHED" in output and "3 clips" in " ".join(output.split())
    both = pd.concat(pd.read_parquet(manifests / "v0002" / f"{side}.parquet") for side in ("train", "test"))
    marked = both[both.stand_in]
    assert set(marked.video_id) == {f"local:{g}"} and set(marked.separator_model_id) == {"tiny-random"}
    card = (manifests / "v0002" / "README.md").read_text(encoding="utf-8")
    front, body = card.split("\n---\n", 1)
    assert "\nstand_in: true" in front
    warning = body.lstrip("\n").split("\n\n", 1)[0]  # the first thing under the front matter, above the title
    assert warning.startswith("> [!WARNING]\n> **STAND-IN OUTPUT, NOT DATA.** 2 of the ")
    assert "(and 1 of the rejected clips counted below)" in warning and "`tiny-random`" in warning
    accepted = len(both) - 2 - 3  # every clip but g's two and h's three came from the fixture's "tiny"
    for line in (
        "| separator | `tiny` | unknown | no |",
        f"| separator | `htdemucs` | `{'ab' * 32}` | no |",
        f"| separator | `tiny-random` | `{'5e' * 32}` | **yes: random weights, not data** |",
        f"| speech detector | `silero_vad` | `{'cd' * 32}` | no |",
    ):
        assert line in card, line
    models = card.split("## Models\n\n", 1)[1].split("\n## ", 1)[0]
    rows = [row.strip("| ").split(" | ") for row in models.splitlines() if row.startswith("| s")]
    totals = {cells[1]: int(cells[-1]) for cells in rows}
    assert totals == {"`tiny`": accepted, "`htdemucs`": 3, "`tiny-random`": 2, "`silero_vad`": 5}


# --- checksummed media, paths from any folder, empty splits, no-op publishes (issue 18) ------------


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


def new_workdir(tmp_path: Path, media: Path, videos) -> Path:
    workdir = tmp_path / "fresh"
    workdir.mkdir()
    (workdir / "dvmset.toml").write_text('data_root = "data"\n[publish]\nseed = 3\n', encoding="utf-8")
    config = load_config(workdir / "dvmset.toml", environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    for name, query in videos:
        add_video(catalog, config, media, name, query)
    catalog.close()
    return workdir


def test_a_split_without_rows_is_refused_with_the_reason(media, tmp_path):
    from curation.publish import EmptySplitError

    workdir = new_workdir(tmp_path, media, [("a", "food")])  # one group: nothing can go to test
    code, output = run_cli("publish", "--config", workdir / "dvmset.toml")
    said = " ".join(output.split())
    assert code == 1, output
    assert "the test split would have no rows" in said
    assert "1 groups on train and 0 on test" in said and "only once it has 2 groups" in said and "'food', has 1" in said
    assert not (workdir / "data" / "manifests" / "v0001").exists()
    config = load_config(workdir / "dvmset.toml", environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    assert {v.split for v in catalog.videos()} == {None}  # no side stored either
    with pytest.raises(EmptySplitError) as refused:
        publish(catalog, config, "v0001")
    assert str(pickle.loads(pickle.dumps(refused.value))) == str(refused.value)
    catalog.close()


def test_a_publish_with_no_decision_is_refused(tmp_path):
    workdir = tmp_path / "empty"
    workdir.mkdir()
    (workdir / "dvmset.toml").write_text('data_root = "data"\n', encoding="utf-8")
    code, output = run_cli("publish", "--config", workdir / "dvmset.toml")
    assert code == 1 and "the train and test split would have no rows" in " ".join(output.split())
    assert not (workdir / "data" / "manifests" / "v0001").exists()


@pytest.mark.slow
def test_a_publish_with_nothing_new_writes_nothing_unless_forced(published, tmp_path):
    from curation.publish import NothingChangedError

    work = shutil.copytree(published, tmp_path / "work")
    config = load_config(work / "dvmset.toml", environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    before = [(v.video_id, v.group_id, v.split, v.updated_at) for v in catalog.videos()]
    catalog.close()
    code, output = run_cli("publish", "--config", work / "dvmset.toml")
    said = " ".join(output.split())
    assert code == 0, output
    assert "nothing changed since v0001" in said and "v0002 was not written" in said and "--force" in said
    manifests = work / "data" / "manifests"
    assert sorted(p.name for p in manifests.iterdir()) == ["v0001"]
    catalog = Catalog.open(config.resolved_catalog_url)
    assert [(v.video_id, v.group_id, v.split, v.updated_at) for v in catalog.videos()] == before
    with pytest.raises(NothingChangedError) as unchanged:
        publish(catalog, config, "v0002")
    assert str(pickle.loads(pickle.dumps(unchanged.value))) == str(unchanged.value)
    catalog.close()
    code, output = run_cli("publish", "--config", work / "dvmset.toml", "--force")
    assert code == 0, output
    assert sorted(p.name for p in manifests.iterdir()) == ["v0001", "v0002"]
    for side in ("train", "test"):
        assert pq.read_table(manifests / "v0002" / f"{side}.parquet").equals(
            pq.read_table(manifests / "v0001" / f"{side}.parquet")
        )
