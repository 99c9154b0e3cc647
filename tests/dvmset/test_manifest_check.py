"""`check_manifests`: a good folder passes; each planted problem is found with its reason code."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from dvmset.manifest import manifest_path, write_manifest
from dvmset.manifest_check import CheckReport, ProblemCode, check_manifests
from dvmset.split import Split
from dvmset.storage import DataRoot
from tests.dvmset.test_manifest import (
    CITY2,
    CLIP_S,
    FOOD1,
    FOOD2,
    dataset_rows,
    make_row,
    make_test_video,
    publish,
    write_music,
)


@pytest.fixture(scope="module")
def video_template(tmp_path_factory) -> Path:
    return make_test_video(tmp_path_factory.mktemp("template") / "video.mp4", CLIP_S)


def check(tmp_path: Path, rows, video_template: Path) -> tuple[CheckReport, DataRoot, Path]:
    """Publish `rows` with their media under `tmp_path`, then check them."""
    data_root, manifest_dir = tmp_path / "data", tmp_path / "manifests" / "v1"
    publish(data_root, manifest_dir, rows, video_template)
    return check_manifests(manifest_dir, data_root), DataRoot(data_root), manifest_dir


def test_a_good_folder_passes(tmp_path, video_template):
    report, _, _ = check(tmp_path, dataset_rows(), video_template)
    assert report.ok, report.render()
    assert report.clips_checked == 6
    assert "6 clips, ok" in report.render()


def test_the_same_video_on_both_sides_is_a_leak(tmp_path, video_template):
    rows = dataset_rows()
    rows[Split.TEST].append(make_row(FOOD1, 9.0, "g-food1", Split.TEST))
    report, _, _ = check(tmp_path, rows, video_template)
    assert set(report.counts()) == {ProblemCode.VIDEO_LEAK, ProblemCode.GROUP_LEAK}
    assert "video_id 'youtube:food1' is in both train and test" in report.render()


def test_the_same_group_on_both_sides_is_a_leak(tmp_path, video_template):
    rows = dataset_rows()
    rows[Split.TEST] = [make_row(FOOD2, 0.0, "g-food1", Split.TEST), make_row(CITY2, 0.0, "g-city2", Split.TEST)]
    report, _, _ = check(tmp_path, rows, video_template)
    assert report.counts() == {ProblemCode.GROUP_LEAK: 1}
    assert "group_id 'g-food1'" in report.problems[0].message


def test_a_clip_listed_twice_is_found(tmp_path, video_template):
    rows = dataset_rows()
    rows[Split.TRAIN].append(rows[Split.TRAIN][0])
    report, _, _ = check(tmp_path, rows, video_template)
    assert report.counts() == {ProblemCode.DUPLICATE_CLIP: 1}
    assert report.problems[0].clip_id == "youtube:food1:00000000"


def test_a_row_in_the_wrong_file_is_found(tmp_path, video_template):
    rows = dataset_rows()
    rows[Split.TEST].append(make_row(replace(FOOD2, video_id="youtube:food3"), 0.0, "g-food3", Split.TRAIN))
    report, _, _ = check(tmp_path, rows, video_template)
    assert report.counts() == {ProblemCode.WRONG_SPLIT: 1}


def test_missing_files_and_manifests_are_found(tmp_path, video_template):
    rows = dataset_rows()
    data_root, manifest_dir = tmp_path / "data", tmp_path / "manifests" / "v1"
    publish(data_root, manifest_dir, rows, video_template)
    root = DataRoot(data_root)
    root.resolve(rows[Split.TRAIN][0].music_path).unlink()
    root.resolve(rows[Split.TEST][1].video_path).unlink()
    report = check_manifests(manifest_dir, data_root)
    assert report.counts() == {ProblemCode.MISSING_FILE: 2}
    assert {(p.split, p.clip_id) for p in report.problems} == {
        ("train", rows[Split.TRAIN][0].clip_id), ("test", rows[Split.TEST][1].clip_id)
    }  # fmt: skip
    manifest_path(manifest_dir, Split.TEST).unlink()
    assert ProblemCode.MISSING_MANIFEST in check_manifests(manifest_dir, data_root).counts()
    assert not report.ok and "missing_file: 2" in report.render()


def test_wrong_durations_are_found(tmp_path, video_template):
    rows = dataset_rows()
    data_root, manifest_dir = tmp_path / "data", tmp_path / "manifests" / "v1"
    publish(data_root, manifest_dir, rows, video_template)
    root = DataRoot(data_root)
    write_music(root.resolve(rows[Split.TRAIN][1].music_path), CLIP_S - 1.0)
    make_test_video(root.resolve(rows[Split.TEST][0].video_path), CLIP_S + 1.0)
    report = check_manifests(manifest_dir, data_root)
    assert report.counts() == {ProblemCode.DURATION_MISMATCH: 2}
    assert "music lasts 2.000 s, the row says 3.000 s" in report.render(width=200)
    quick = check_manifests(manifest_dir, data_root, probe_videos=False)
    assert quick.counts() == {ProblemCode.DURATION_MISMATCH: 1}  # music only
    assert check_manifests(manifest_dir, data_root, tolerance_s=1.5).ok


def test_unreadable_media_and_paths_outside_the_root_are_found(tmp_path, video_template):
    rows = dataset_rows()
    data_root, manifest_dir = tmp_path / "data", tmp_path / "manifests" / "v1"
    publish(data_root, manifest_dir, rows, video_template)
    DataRoot(data_root).resolve(rows[Split.TRAIN][0].music_path).write_bytes(b"not audio")
    DataRoot(data_root).resolve(rows[Split.TRAIN][1].video_path).write_bytes(b"not video")
    rows[Split.TEST][1] = replace(rows[Split.TEST][1], music_path="../outside.flac")
    write_manifest(rows[Split.TEST], manifest_path(manifest_dir, Split.TEST))
    report = check_manifests(manifest_dir, data_root)
    assert report.counts() == {ProblemCode.UNREADABLE_FILE: 2, ProblemCode.BAD_PATH: 1}
    assert "leaves the data root" in report.render(width=200)


def test_a_schema_mismatch_is_reported_not_raised(tmp_path, video_template):
    _, _, manifest_dir = check(tmp_path, dataset_rows(), video_template)
    manifest_path(manifest_dir, Split.TEST).write_bytes(b"not parquet")
    report = check_manifests(manifest_dir, tmp_path / "data")
    assert report.counts() == {ProblemCode.SCHEMA_MISMATCH: 1}
    assert report.clips_checked == 4


def test_the_rendering_caps_long_lists(tmp_path, video_template):
    rows = dataset_rows()
    data_root, manifest_dir = tmp_path / "data", tmp_path / "manifests" / "v1"
    publish(data_root, manifest_dir, rows, video_template)
    report = check_manifests(manifest_dir, tmp_path / "elsewhere", probe_videos=False)
    assert report.counts() == {ProblemCode.MISSING_FILE: 12}
    assert "(10 more not shown)" in report.render(limit=2)
