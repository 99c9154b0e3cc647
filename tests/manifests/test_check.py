"""`check_manifests`: a good folder passes; each planted problem is found with its reason code."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dvmset.storage import DataRoot
from manifests.check import CheckReport, ProblemCode, check_manifests
from manifests.schema import MEDIA_ROOT_KEY, ManifestRow, manifest_path, media_root_of, write_manifest
from manifests.split import Split
from tests.support.manifest_rows import (
    CITY2,
    CLIP_S,
    FOOD1,
    FOOD2,
    SAMPLE_RATE_HZ,
    dataset_rows,
    make_row,
    make_test_video,
    measured,
    publish,
    write_music,
)


def check(tmp_path: Path, rows, video_template: Path) -> tuple[CheckReport, DataRoot, Path]:
    """Publish `rows` with their media under `tmp_path`, then check them."""
    data_root, manifest_dir = tmp_path / "data", tmp_path / "manifests" / "v1"
    publish(data_root, manifest_dir, rows, video_template)
    return check_manifests(manifest_dir), DataRoot(data_root), manifest_dir


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
    data_root, manifest_dir = tmp_path / "data", tmp_path / "manifests" / "v1"
    rows = publish(data_root, manifest_dir, dataset_rows(), video_template)
    root = DataRoot(data_root)
    root.resolve(rows[Split.TRAIN][0].music_path).unlink()
    root.resolve(rows[Split.TEST][1].video_path).unlink()
    report = check_manifests(manifest_dir)  # the media root the manifests record
    assert report.counts() == {ProblemCode.MISSING_FILE: 2}
    assert {(p.split, p.clip_id) for p in report.problems} == {
        ("train", rows[Split.TRAIN][0].clip_id),
        ("test", rows[Split.TEST][1].clip_id),
    }
    manifest_path(manifest_dir, Split.TEST).unlink()
    assert ProblemCode.MISSING_MANIFEST in check_manifests(manifest_dir).counts()
    assert not report.ok and "missing_file: 2" in report.render()


def write_noise(path: Path, duration_s: float, seed: int) -> None:
    """A stereo 16-bit FLAC of white noise (it does not compress: about 170 KiB a second)."""
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, (round(duration_s * SAMPLE_RATE_HZ), 2))
    sf.write(path, noise, SAMPLE_RATE_HZ, format="FLAC", subtype="PCM_16")


@pytest.fixture
def noisy(tmp_path, video_template) -> tuple[Path, dict[Split, list[ManifestRow]]]:
    """(manifest folder, rows) of `dataset_rows()` published with noise music (each clip's its own,
    over 64 KiB), measured and recorded as publish does."""
    data_root, manifest_dir = tmp_path / "data", tmp_path / "manifests" / "v1"
    rows = publish(data_root, manifest_dir, dataset_rows(), video_template)
    root = DataRoot(data_root)
    for seed, row in enumerate(row for side in rows.values() for row in side):
        write_noise(root.resolve(row.music_path), row.duration_s, seed)
    rows = {side: [measured(row, root) for row in side_rows] for side, side_rows in rows.items()}
    metadata = {"manifest_version": "v1", MEDIA_ROOT_KEY: media_root_of(manifest_dir, data_root)}
    for side, side_rows in rows.items():
        write_manifest(side_rows, manifest_path(manifest_dir, side), metadata)
    return manifest_dir, rows


def flip_middle(path: Path, span: int = 64 * 1024) -> None:
    data = bytearray(path.read_bytes())
    assert len(data) > 2 * span, len(data)
    start = len(data) // 2 - span // 2
    data[start : start + span] = bytes(b ^ 0xFF for b in data[start : start + span])
    path.write_bytes(bytes(data))


def truncate_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


CORRUPTIONS = {  # name -> (which file of the first train clip, what to do with it, the code check reports)
    "0 bytes": ("music", lambda path, other: path.write_bytes(b""), ProblemCode.SIZE_MISMATCH),
    "half truncated": ("music", lambda path, other: truncate_half(path), ProblemCode.SIZE_MISMATCH),
    "64 KiB flipped mid-file": ("music", lambda path, other: flip_middle(path), ProblemCode.CHECKSUM_MISMATCH),
    "swapped with another clip's": ("music", lambda path, other: shutil.copyfile(other, path), None),
    "video truncated to half": ("video", lambda path, other: truncate_half(path), ProblemCode.SIZE_MISMATCH),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_a_corrupted_file_fails_the_check_by_name(noisy, name):
    manifest_dir, rows = noisy
    kind, corrupt, code = CORRUPTIONS[name]
    root = DataRoot(manifest_dir.parent.parent / "data")
    victim, other = rows[Split.TRAIN][0], rows[Split.TRAIN][1]
    path = root.resolve(getattr(victim, f"{kind}_path"))
    corrupt(path, root.resolve(other.music_path))
    report = check_manifests(manifest_dir)
    assert not report.ok
    [problem] = report.problems
    assert (problem.split, problem.clip_id) == ("train", victim.clip_id)
    assert problem.message.startswith(f"{kind} {getattr(victim, f'{kind}_path')}: ")
    if code is None:  # a swapped file of the same length differs in its checksum alone; noise FLACs differ in size
        assert problem.code in (ProblemCode.SIZE_MISMATCH, ProblemCode.CHECKSUM_MISMATCH)
    else:
        assert problem.code is code
    assert "the manifest says" in problem.message
    assert victim.clip_id in report.render(width=250) and getattr(victim, f"{kind}_path") in report.render(width=250)


def test_decode_checks_every_file_in_full(noisy):
    manifest_dir, rows = noisy
    assert check_manifests(manifest_dir, decode=True).ok
    root = DataRoot(manifest_dir.parent.parent / "data")
    music, video = rows[Split.TRAIN][0], rows[Split.TEST][0]
    truncate_half(root.resolve(music.music_path))
    truncate_half(root.resolve(video.video_path))
    flip_middle(root.resolve(rows[Split.TRAIN][1].music_path))
    report = check_manifests(manifest_dir, decode=True)
    by_clip = {(p.clip_id, p.message.split(" ")[0]): p for p in report.problems}
    assert set(by_clip) == {(music.clip_id, "music"), (video.clip_id, "video"), (rows[Split.TRAIN][1].clip_id, "music")}


def test_decode_compares_the_decoded_duration(tmp_path, video_template):
    data_root, manifest_dir = tmp_path / "data", tmp_path / "manifests" / "v1"
    rows = publish(data_root, manifest_dir, dataset_rows(), video_template)
    root = DataRoot(data_root)
    write_music(root.resolve(rows[Split.TRAIN][1].music_path), CLIP_S - 1.0)
    make_test_video(root.resolve(rows[Split.TEST][0].video_path), CLIP_S + 1.0)
    for side, side_rows in rows.items():  # a manifest that recorded the new files' sizes and checksums...
        remeasured = [measured(row, root) for row in side_rows]
        remeasured = [
            replace(new, video_duration_s=old.video_duration_s, music_duration_s=old.music_duration_s)
            for new, old in zip(remeasured, side_rows)
        ]  # ...but the old durations
        metadata = {MEDIA_ROOT_KEY: media_root_of(manifest_dir, data_root)}
        write_manifest(remeasured, manifest_path(manifest_dir, side), metadata)
    assert check_manifests(manifest_dir).ok  # sizes and checksums match
    report = check_manifests(manifest_dir, decode=True)
    assert report.counts() == {ProblemCode.DURATION_MISMATCH: 2}
    assert "decodes to 2.000 s, the manifest says 3.000 s" in report.render(width=250)
    assert check_manifests(manifest_dir, decode=True, tolerance_s=1.5).ok


def test_unreadable_media_and_paths_outside_the_root_are_found(tmp_path, video_template):
    data_root, manifest_dir = tmp_path / "data", tmp_path / "manifests" / "v1"
    rows = publish(data_root, manifest_dir, dataset_rows(), video_template)
    rows[Split.TEST][1] = replace(rows[Split.TEST][1], music_path="../outside.flac")
    write_manifest(rows[Split.TEST], manifest_path(manifest_dir, Split.TEST), {MEDIA_ROOT_KEY: "../../data"})
    report = check_manifests(manifest_dir)
    assert report.counts() == {ProblemCode.BAD_PATH: 1}
    assert "leaves the data root" in report.render(width=200)


def test_an_empty_split_and_a_manifest_without_a_media_root_are_found(tmp_path, video_template):
    data_root, manifest_dir = tmp_path / "data", tmp_path / "manifests" / "v1"
    rows = publish(data_root, manifest_dir, dataset_rows(), video_template)
    write_manifest([], manifest_path(manifest_dir, Split.TEST), {MEDIA_ROOT_KEY: "../../data"})
    assert check_manifests(manifest_dir).counts() == {ProblemCode.EMPTY_SPLIT: 1}
    write_manifest(rows[Split.TEST], manifest_path(manifest_dir, Split.TEST), {"manifest_version": "v1"})
    report = check_manifests(manifest_dir)
    assert report.counts() == {ProblemCode.NO_MEDIA_ROOT: 1}
    assert "records no media_root" in report.render(width=250)
    assert check_manifests(manifest_dir, data_root).ok  # an explicit data root stands in for it


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
    report = check_manifests(manifest_dir, tmp_path / "elsewhere")
    assert report.counts() == {ProblemCode.MISSING_FILE: 12}
    assert "(10 more not shown)" in report.render(limit=2)
