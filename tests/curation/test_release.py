"""Release and rebuild end to end, through the `dvmset` commands, against a local HTTP server.

Three generated 21 s videos are served on 127.0.0.1, discovered from a URL list, downloaded by
yt-dlp, separated by a tiny random-weight Demucs, cut into 10 s clips and fingerprinted; the
clips are labelled, published and released. The release is then rebuilt into fresh data roots:
with one source taken offline (reported with its reason, not fatal), with every source offline
(exit 1), and with another clip length (clips whose times no longer match).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from curation import separate
from curation.rebuild import Outcome, rebuild
from curation.samples import VideoSpec, make_video
from dvmset.catalog import Catalog
from dvmset.cli.main import app
from dvmset.config import load_config
from dvmset.records import ClipStatus
from manifests.release import RELEASE_SCHEMA, RELEASE_SCHEMA_VERSION
from manifests.schema import MANIFEST_SCHEMA_VERSION

MODEL = "tiny-random"
CLIP_S = 10.0
# name -> (query, bpm, hue cut every s): no two alike in picture or sound
SOURCES = {"a": ("food", 90, 3.0), "b": ("food", 130, 2.0), "c": ("city", 160, None)}
OFFLINE = "b"
REJECTED_CLIP = ("c", 0)  # (video, clip index) rejected for noise; every other clip accepted


def run_cli(*args: str | Path):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def server(tmp_path_factory, serve_folder):
    folder = tmp_path_factory.mktemp("served")
    for name, (_query, bpm, cut_s) in SOURCES.items():
        make_video(folder / f"{name}.mp4", VideoSpec(21.0, width=160, height=120, bpm=bpm, cut_every_s=cut_s))
    with serve_folder(folder) as running:
        yield running


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    separate.save_tiny_model(folder, MODEL, sample_rate_hz=8000)
    return folder


def write_config(workdir: Path, model_dir: Path, clip_s: float = CLIP_S) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "dvmset.toml"
    path.write_text(
        f'data_root = "data"\nmodel_dir = {json.dumps(str(model_dir))}\n'
        "[download]\nmin_duration_s = 0.0\nretries = 0\n[probe]\nmin_duration_s = 5.0\n"
        f'[separate]\nmodel = "{MODEL}"\nchunk_s = 8.0\noverlap_s = 1.0\n[clip]\nclip_s = {clip_s}\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def released(tmp_path_factory, server, model_dir) -> Path:
    """A workdir whose sources were built, labelled, published as v0001 and released to `release/`."""
    workdir = tmp_path_factory.mktemp("built")
    config_path = write_config(workdir, model_dir)
    urls = "".join(f"{server.url(f'/{name}.mp4')}\t{query}\n" for name, (query, *_rest) in SOURCES.items())
    (workdir / "urls.txt").write_text(urls, encoding="utf-8")
    for command in (["discover", "--urls", workdir / "urls.txt"], ["download"], ["separate"]):
        code, output = run_cli(*command, "--config", config_path)
        assert code == 0, output
    config = load_config(config_path, environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    video_of = {v.url.rsplit("/", 1)[1].removesuffix(".mp4"): v.video_id for v in catalog.videos()}
    clips = catalog.clips()
    assert len(clips) == 2 * len(SOURCES)
    rejected = catalog.clips(video_of[REJECTED_CLIP[0]])[REJECTED_CLIP[1]].clip_id
    for clip in clips:
        if clip.clip_id == rejected:
            catalog.add_label(clip.clip_id, "ann", ClipStatus.REJECTED, ["noise"], note="hiss")
        else:
            catalog.add_label(clip.clip_id, "ann", ClipStatus.ACCEPTED)
    catalog.close()
    # the tiny random-weight separator's clips are stand-in output: publishing them needs the flag
    code, output = run_cli("publish", "--config", config_path, "--version", "v0001", "--allow-stand-in")
    assert code == 0, output
    code, output = run_cli("release", "v0001", "--config", config_path, "-o", workdir / "release")
    assert code == 0, output
    return workdir


def release_frame(workdir: Path) -> pd.DataFrame:
    return pd.read_parquet(workdir / "release" / "clips.parquet")


@pytest.mark.slow
def test_the_release_lists_every_decided_clip_without_media_or_local_paths(released, model_dir):
    frame = release_frame(released)
    assert list(frame.columns) == RELEASE_SCHEMA.names
    assert len(frame) == 2 * len(SOURCES) and frame.clip_id.is_unique
    assert sorted(frame.decision) == ["accepted"] * 5 + ["rejected"]
    assert list(frame[frame.decision == "rejected"].reasons.iloc[0]) == ["noise"]
    assert set(frame.split) == {"train", "test"}  # two "food" groups: one on each side
    assert frame.source_url.str.startswith("http://127.0.0.1:").all()
    assert (frame.platform == "generic").all() and (frame.video_id == "generic:" + frame.platform_id).all()
    assert (frame.duration_s == CLIP_S).all() and set(frame.start_s) == {0.0, CLIP_S}
    meta = pq.read_schema(released / "release" / "clips.parquet").metadata
    card = (released / "release" / "README.md").read_text(encoding="utf-8")
    for local in (str(released.resolve()), str(model_dir)):  # no local path anywhere: rows, metadata, card
        assert local not in frame.astype(str).to_string() and local not in str(meta) and local not in card
    assert meta[b"dvmset.schema_version"] == str(RELEASE_SCHEMA_VERSION).encode()
    assert json.loads(meta[b"dvmset.metadata"])["release_version"] == "v0001"
    by_split = duckdb.sql(
        f"SELECT split, count(*) FROM read_parquet('{released}/release/clips.parquet') GROUP BY split ORDER BY split"
    ).fetchall()
    assert sum(count for _side, count in by_split) == len(frame)
    assert "dvmset rebuild" in card and "clip_s = 10.0" in card and "| train |" in card
    code, output = run_cli("release", "v0001", "--config", released / "dvmset.toml", "-o", released / "release")
    assert code == 2 and "exists" in output


@pytest.mark.slow
def test_hugging_face_datasets_loads_the_release(released, tmp_path):
    datasets = pytest.importorskip("datasets")
    path = released / "release" / "clips.parquet"
    loaded = datasets.load_dataset("parquet", data_files=str(path), cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert loaded.num_rows == len(release_frame(released))
    assert loaded.column_names == RELEASE_SCHEMA.names
    assert sorted(loaded["decision"]).count("rejected") == 1


@pytest.mark.slow
def test_a_rebuild_with_one_source_offline_makes_the_rest_and_reports_it(released, server, model_dir, tmp_path):
    frame = release_frame(released)
    offline = server.root / f"{OFFLINE}.mp4"
    os.rename(offline, offline.with_suffix(".gone"))
    try:
        config_path = write_config(tmp_path / "rebuilt", model_dir)
        code, output = run_cli("rebuild", released / "release", "--config", config_path)
    finally:
        os.rename(offline.with_suffix(".gone"), offline)
    assert code == 0, output
    assert "unavailable" in output and "4 of 6 clips rebuilt" in output
    config = load_config(config_path, environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    gone = {v.video_id for v in catalog.videos() if v.url.endswith(f"/{OFFLINE}.mp4")}
    expected = frame[~frame.video_id.isin(gone)]
    made = {clip.clip_id: clip for clip in catalog.clips()}
    assert set(made) == set(expected.clip_id)
    for row in expected.itertuples():
        assert abs(made[row.clip_id].duration_s - row.duration_s) <= 1.0 / row.fps
    decisions = catalog.decisions()
    assert {clip_id: d.status.value for clip_id, d in decisions.items()} == dict(
        zip(expected.clip_id, expected.decision)
    )
    assert all(d.annotators == ("release:v0001",) for d in decisions.values())
    report = rebuild(released / "release", catalog, config)  # a rerun: nothing new to do or to label
    assert report.labels_added == 0 and report.rebuilt == len(expected)
    missing = [clip for clip in report.clips if clip.outcome is Outcome.MISSING]
    assert {clip.video_id for clip in missing} == gone and {clip.reason for clip in missing} == {"unavailable"}
    assert all("HTTP Error 404" in clip.detail for clip in missing)
    catalog.close()


@pytest.mark.slow
def test_a_rebuild_that_makes_nothing_exits_non_zero(released, server, model_dir, tmp_path):
    names = [server.root / f"{name}.mp4" for name in SOURCES]
    for path in names:
        os.rename(path, path.with_suffix(".gone"))
    try:
        code, output = run_cli("rebuild", released / "release", "--config", write_config(tmp_path / "w", model_dir))
    finally:
        for path in names:
            os.rename(path.with_suffix(".gone"), path)
    assert code == 1 and "0 of 6 clips rebuilt" in output and "unavailable" in output


@pytest.mark.slow
def test_another_clip_length_is_reported_as_changed_times(released, model_dir, tmp_path):
    shutil.copytree(released / "data", tmp_path / "work" / "data")  # built as released: a rebuild redoes the clips
    config_path = write_config(tmp_path / "work", model_dir, clip_s=15.0)
    code, output = run_cli("rebuild", released / "release", "--config", config_path)
    assert code == 1 and "[clip] clip_s is 15.0 here but 10.0 in the release" in output and "times_changed" in output
    config = load_config(config_path, environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    report = rebuild(released / "release", catalog, config)  # a rerun, for the figures
    catalog.close()
    counts = report.counts()
    # a 21 s source gives one 15 s clip: the first id again with another duration, the second not at all
    assert counts == {(Outcome.TIMES_CHANGED, "duration"): 3, (Outcome.TIMES_CHANGED, "not_made"): 3}


# --- without media: the release of a manifest written from records -----------------------------


def test_local_files_are_left_out_and_a_manifest_is_not_a_release(tmp_path):
    from dataclasses import replace

    from curation.release import make_release, shareable_config
    from dvmset.config import Config, config_toml
    from dvmset.errors import DvmsetError
    from manifests.release import read_release
    from manifests.schema import manifest_path, write_manifest
    from manifests.split import Split
    from tests.support.manifest_rows import dataset_rows, make_row, make_video

    rows = dataset_rows()
    home = make_video("local:0a1b2c", ("food",))
    home = replace(home, url="/home/me/videos/holiday.mp4", platform="local")
    rows[Split.TRAIN].append(make_row(home, 0.0, "g-home", Split.TRAIN))
    config = Config(data_root=tmp_path / "secret-root", model_dir=tmp_path / "secret-models")
    metadata = {"manifest_version": "v0007", "code_version": "abc", "config": config_toml(config)}
    for side, side_rows in rows.items():
        write_manifest(side_rows, manifest_path(tmp_path / "v0007", side), metadata)
    result = make_release(tmp_path / "v0007", tmp_path / "out", catalog=None)
    table, meta = read_release(tmp_path / "out")
    assert result.withheld_local_videos == 1 and "local:0a1b2c" not in table["video_id"].to_pylist()
    assert table.num_rows == sum(len(r) for r in rows.values()) - 1 and meta["release_version"] == "v0007"
    assert "secret" not in meta["config"] and 'data_root = "data"' in meta["config"]
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "1 videos of the manifest came from local files" in card and "secret" not in card
    assert shareable_config("not toml [") == ""
    (tmp_path / "fake").mkdir()
    shutil.copy(manifest_path(tmp_path / "v0007", Split.TRAIN), tmp_path / "fake" / "clips.parquet")
    with pytest.raises(DvmsetError, match=f"schema version {MANIFEST_SCHEMA_VERSION} is newer|columns differ"):
        read_release(tmp_path / "fake")  # a manifest file is not a release (manifests are at schema 2)
    with pytest.raises(DvmsetError, match="exists"):
        make_release(tmp_path / "v0007", tmp_path / "out")
