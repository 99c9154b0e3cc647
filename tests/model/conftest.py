"""Fixtures for the model tests: tiny random-weight models of the real architectures, saved with
`save_pretrained` and loaded through the same loaders as hub models; generated media; no hub access."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import soundfile as sf
import torch

from dvmset.ids import make_clip_id
from tests.support.tiny_models import TINY_DECODER_WIDTH, save_tiny_clip, save_tiny_musicgen
from dvmset.storage import DataRoot

CLIP_ID = make_clip_id("local:" + "a" * 40, 0.0)



@pytest.fixture(autouse=True)
def offline_hub(monkeypatch, tmp_path_factory) -> Path:
    """No test reaches the hub: offline mode on and an empty Hugging Face cache; returns the cache."""
    cache = tmp_path_factory.mktemp("hf_cache")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def one_thread():
    """torch on one CPU thread for the test: tiny models on two threads of a shared machine only wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tiny_musicgen_dir(tmp_path_factory) -> Path:
    return save_tiny_musicgen(tmp_path_factory.mktemp("tiny-musicgen"))


@pytest.fixture(scope="session")
def tiny_conditioned_musicgen_dir(tmp_path_factory) -> Path:
    """A MusicGen with 3 blocks of 4 decoder layers (2 take the rhythm condition) and a T5 -> decoder projector."""
    folder = tmp_path_factory.mktemp("tiny-musicgen-12")
    return save_tiny_musicgen(folder, num_layers=12, hidden_size=TINY_DECODER_WIDTH)


@pytest.fixture
def data_root(tmp_path) -> DataRoot:
    return DataRoot(tmp_path / "data").ensure()


def make_cut_video(
    path: Path, duration_s: float, fps: int = 30, cut_every_s: float | None = 2.0, first_cut_s: float | None = None,
    size: str = "320x240",
) -> Path:
    """An H.264 test pattern of `size` at `fps` whose hue jumps (a hard cut) every `cut_every_s`, the first
    at `first_cut_s` (default: `cut_every_s`); `cut_every_s` None: one unchanging pattern."""
    source = f"testsrc2=size={size}:rate={fps}:duration={duration_s}"
    if cut_every_s is not None:
        shift_s = cut_every_s - (cut_every_s if first_cut_s is None else first_cut_s)
        source += f",hue=h=97*floor((t+{shift_s})/{cut_every_s})"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", source,
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


def make_tone(path: Path, duration_s: float, rate_hz: int = 44100, frequency_hz: float = 440.0) -> Path:
    """A stereo 16-bit FLAC tone (the clip stage's music format), a little louder on the left."""
    t = np.arange(round(duration_s * rate_hz)) / rate_hz
    tone = 0.5 * np.sin(2 * np.pi * frequency_hz * t)
    sf.write(path, np.stack([tone, 0.8 * tone], axis=1), rate_hz, subtype="PCM_16")
    return path


def place(source: Path, data_root: DataRoot, clip_id: str, name: str) -> Path:
    """Copy a generated file into the clip's folder under the clip stage's file name."""
    target = data_root.clip_dir(clip_id) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    return target


TRAINING_CLIP_S = 3.0  # the clip length of `tests.dvmset.test_manifest.make_row`


def write_training_manifest(folder: Path, num_accepted: int = 3) -> tuple[DataRoot, Path]:
    """A data root with `num_accepted` accepted clips (a 3 s cut video and tone each) plus one rejected clip
    (no media), and their `manifests/v1/train.parquet` written by `dvmset.manifest`; returns both."""
    from dvmset.manifest import manifest_path, write_manifest
    from dvmset.split import Split
    from tests.dvmset.test_manifest import REJECT, make_row, make_video

    data_root = DataRoot(folder / "data").ensure()
    video = make_cut_video(folder / "video.mp4", TRAINING_CLIP_S, fps=10, cut_every_s=1.0)
    video_record = make_video("youtube:train1", ("food commercial",))
    rows = []
    for index in range(num_accepted):
        row = make_row(video_record, TRAINING_CLIP_S * index, "g-train1", Split.TRAIN)
        music = make_tone(folder / f"music-{index}.flac", TRAINING_CLIP_S, frequency_hz=220.0 * (index + 1))
        place(video, data_root, row.clip_id, "video.mp4")
        place(music, data_root, row.clip_id, "music.flac")
        rows.append(row)
    rows.append(make_row(video_record, TRAINING_CLIP_S * num_accepted, "g-train1", Split.TRAIN, decision=REJECT))
    manifest = write_manifest(rows, manifest_path(folder / "manifests" / "v1", Split.TRAIN), {"manifest_version": "v1"})
    return data_root, manifest


@pytest.fixture(scope="session")
def training_manifest(tmp_path_factory) -> tuple[DataRoot, Path]:
    """`write_training_manifest` once per session (tests that compute caches share them)."""
    return write_training_manifest(tmp_path_factory.mktemp("training"))


def make_clicks(path: Path, duration_s: float, times_s: list[float], rate_hz: int = 44100) -> Path:
    """A stereo 16-bit FLAC of 5 ms clicks at `times_s` over a quiet tone: music whose onsets are known."""
    t = np.arange(round(duration_s * rate_hz)) / rate_hz
    audio = 0.05 * np.sin(2 * np.pi * 330.0 * t)
    for time_s in times_s:
        begin = round(time_s * rate_hz)
        audio[begin : begin + round(0.005 * rate_hz)] += 0.6
    sf.write(path, np.stack([audio, audio], axis=1), rate_hz, subtype="PCM_16")
    return path


def write_rhythm_manifests(folder: Path) -> DataRoot:
    """A data root with `manifests/v1/{train,test}.parquet`: 3 train clips of one video and 2 test clips of
    another, each a 3 s video with a cut every second and music with a click at each cut; returns the root."""
    from dvmset.manifest import manifest_path, write_manifest
    from dvmset.split import Split
    from tests.dvmset.test_manifest import make_row, make_video

    data_root = DataRoot(folder / "data").ensure()
    video = make_cut_video(folder / "video.mp4", TRAINING_CLIP_S, fps=10, cut_every_s=1.0)
    music = make_clicks(folder / "music.flac", TRAINING_CLIP_S, [1.0, 2.0])
    for side, count in ((Split.TRAIN, 3), (Split.TEST, 2)):
        record = make_video(f"youtube:{side.value}1", ("food commercial",))
        rows = [make_row(record, TRAINING_CLIP_S * index, f"g-{side.value}", side) for index in range(count)]
        for row in rows:
            place(video, data_root, row.clip_id, "video.mp4")
            place(music, data_root, row.clip_id, "music.flac")
        write_manifest(rows, manifest_path(folder / "manifests" / "v1", side), {"manifest_version": "v1"})
    return data_root
