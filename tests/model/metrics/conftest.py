"""Fixtures of the metric tests: tiny random-weight Cnn14, CLAP and ImageBind in their real on-disk formats,
and generated media (videos with hard cuts, drum tracks with hits on a grid)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from model.metrics.imagebind import ImageBind, save_imagebind
from model.metrics.panns import Cnn14, save_cnn14
from tests.model.conftest import make_cut_video
from tests.support.tiny_models import TINY_CNN14_CLASSES, TINY_CNN14_WIDTHS, TINY_IMAGEBIND, save_tiny_clap

DRUM_RATE_HZ = 22_050
BEAT_PERIOD_S = 0.5  # 120 BPM
CUT_PERIOD_S = 2.0


@pytest.fixture(scope="session")
def tiny_cnn14_path(tmp_path_factory) -> Path:
    """A random Cnn14 with narrow blocks and 10 classes, saved as the published checkpoint is."""
    torch.manual_seed(0)
    model = Cnn14(TINY_CNN14_WIDTHS, TINY_CNN14_CLASSES)
    return save_cnn14(model, tmp_path_factory.mktemp("panns") / "Cnn14_tiny.pth")


@pytest.fixture(scope="session")
def tiny_clap_dir(tmp_path_factory) -> Path:
    """`save_tiny_clap` in a session folder."""
    return save_tiny_clap(tmp_path_factory.mktemp("clap"))


@pytest.fixture(scope="session")
def tiny_imagebind_path(tmp_path_factory) -> Path:
    """A random ImageBind of `TINY_IMAGEBIND`, saved as the official checkpoint is (a plain state dict)."""
    torch.manual_seed(0)
    return save_imagebind(ImageBind(TINY_IMAGEBIND), tmp_path_factory.mktemp("imagebind") / "imagebind_tiny.pth")


def drums(duration_s: float, first_hit_s: float, period_s: float = BEAT_PERIOD_S, seed: int = 0) -> np.ndarray:
    """Mono float32 at `DRUM_RATE_HZ`: a 50 ms noise burst every `period_s` from `first_hit_s`, every fourth
    one louder."""
    rng = np.random.default_rng(seed)
    burst_samples = round(0.05 * DRUM_RATE_HZ)
    burst = rng.standard_normal(burst_samples) * np.exp(-np.arange(burst_samples) / (0.01 * DRUM_RATE_HZ))
    audio = np.zeros(round(duration_s * DRUM_RATE_HZ))
    for index, hit_s in enumerate(np.arange(first_hit_s, duration_s, period_s)):
        start = round(hit_s * DRUM_RATE_HZ)
        stop = min(audio.size, start + burst_samples)
        audio[start:stop] += burst[: stop - start] * (0.8 if index % 4 == 0 else 0.4)
    return audio.astype(np.float32)


def write_drums(path: Path, duration_s: float, first_hit_s: float, seed: int = 0) -> Path:
    """`drums` written as a stereo FLAC (the clip stage's music format)."""
    mono = drums(duration_s, first_hit_s, seed=seed)
    sf.write(path, np.stack([mono, mono], axis=1), DRUM_RATE_HZ, subtype="PCM_16")
    return path


def write_cut_video(path: Path, duration_s: float, first_cut_s: float = CUT_PERIOD_S, cuts: bool = True) -> Path:
    """A 64x48 H.264 test pattern at 25 fps whose hue jumps (a hard cut) every `CUT_PERIOD_S` from
    `first_cut_s`; without `cuts`, one unchanging pattern."""
    cut_every_s = CUT_PERIOD_S if cuts else None
    return make_cut_video(path, duration_s, fps=25, cut_every_s=cut_every_s, first_cut_s=first_cut_s, size="64x48")
