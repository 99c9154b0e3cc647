"""Data roots of generated clips for the model tests: a file placed in a clip's folder, and manifests
(`manifests/v1/*.parquet`) of clips with a cut video and a tone or clicks, for training and the rhythm tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from dvmset.ids import make_clip_id
from dvmset.storage import DataRoot
from manifests.schema import manifest_path, write_manifest
from manifests.split import Split
from tests.support.generated_media import make_clicks, make_cut_video, make_tone
from tests.support.manifest_rows import CLIP_S, REJECT, make_row, make_video

CLIP_ID = make_clip_id("local:" + "a" * 40, 0.0)


def place(source: Path, data_root: DataRoot, clip_id: str, name: str) -> Path:
    """Copy a generated file into the clip's folder under the clip stage's file name."""
    target = data_root.clip_dir(clip_id) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    return target


def write_training_manifest(folder: Path, num_accepted: int = 3) -> tuple[DataRoot, Path]:
    """A data root with `num_accepted` accepted clips (a 3 s cut video and tone each) plus one rejected clip
    (no media), and their `manifests/v1/train.parquet` written by `manifests.schema`; returns both."""
    data_root = DataRoot(folder / "data").ensure()
    video = make_cut_video(folder / "video.mp4", CLIP_S, fps=10, cut_every_s=1.0)
    video_record = make_video("youtube:train1", ("food commercial",))
    rows = []
    for index in range(num_accepted):
        row = make_row(video_record, CLIP_S * index, "g-train1", Split.TRAIN)
        music = make_tone(folder / f"music-{index}.flac", CLIP_S, frequency_hz=220.0 * (index + 1))
        place(video, data_root, row.clip_id, "video.mp4")
        place(music, data_root, row.clip_id, "music.flac")
        rows.append(row)
    rows.append(make_row(video_record, CLIP_S * num_accepted, "g-train1", Split.TRAIN, decision=REJECT))
    manifest = write_manifest(rows, manifest_path(folder / "manifests" / "v1", Split.TRAIN), {"manifest_version": "v1"})
    return data_root, manifest


def write_rhythm_manifests(folder: Path) -> DataRoot:
    """A data root with `manifests/v1/{train,test}.parquet`: 3 train clips of one video and 2 test clips of
    another, each a 3 s video with a cut every second and music with a click at each cut; returns the root."""
    data_root = DataRoot(folder / "data").ensure()
    video = make_cut_video(folder / "video.mp4", CLIP_S, fps=10, cut_every_s=1.0)
    music = make_clicks(folder / "music.flac", CLIP_S, [1.0, 2.0])
    for side, count in ((Split.TRAIN, 3), (Split.TEST, 2)):
        record = make_video(f"youtube:{side.value}1", ("food commercial",))
        rows = [make_row(record, CLIP_S * index, f"g-{side.value}", side) for index in range(count)]
        for row in rows:
            place(video, data_root, row.clip_id, "video.mp4")
            place(music, data_root, row.clip_id, "music.flac")
        write_manifest(rows, manifest_path(folder / "manifests" / "v1", side), {"manifest_version": "v1"})
    return data_root
