"""ImageBind's inputs: the Kaldi fbank and the audio clips, the clip and frame sampling, the vision views."""

from __future__ import annotations

import math
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from model.errors import FeatureError
from model.metrics.imagebind_inputs import (
    AUDIO_SAMPLE_RATE_HZ,
    CLIP_MEAN,
    CLIP_STD,
    FBANK_MEAN,
    FBANK_STD,
    audio_melspecs,
    clip_frame_indices,
    clip_starts_s,
    crop_offsets,
    decode_frames,
    kaldi_fbank,
    short_side_size,
    video_views,
)
from tests.support.generated_media import write_cut_video


def lossless_video(path: Path, source: str, filters: str) -> Path:
    """An FFV1 video (lossless) of an ffmpeg lavfi `source` through `filters`."""
    command = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", source, "-vf", filters, "-c:v", "ffv1"]
    subprocess.run([*command, str(path)], check=True)
    return path


def tone(frequency_hz: float, duration_s: float = 2.0) -> torch.Tensor:
    t = torch.arange(round(duration_s * AUDIO_SAMPLE_RATE_HZ), dtype=torch.float64) / AUDIO_SAMPLE_RATE_HZ
    return (0.5 * torch.sin(2 * math.pi * frequency_hz * t)).float()


def test_two_seconds_give_198_fbank_frames_padded_to_204_and_normalized():
    fbank = kaldi_fbank(tone(440.0))
    assert fbank.shape == (198, 128)  # 1 + (32000 - 400) // 160 whole frames
    melspecs = audio_melspecs(tone(440.0, 7.0).numpy())
    assert melspecs.shape == (3, 1, 128, 204)
    padding = (0.0 - FBANK_MEAN) / FBANK_STD
    assert torch.allclose(melspecs[..., 198:], torch.full((3, 1, 128, 6), padding))
    assert not torch.allclose(melspecs[..., :198], torch.full((3, 1, 128, 198), padding))
    assert audio_melspecs(tone(440.0, 9.0).numpy()).shape == (3, 1, 128, 204)  # never more frames than 204


@pytest.mark.parametrize("frequency_hz", [300.0, 1000.0, 3500.0])
def test_a_pure_tone_lands_in_the_mel_bin_centred_nearest_to_it(frequency_hz):
    mel = lambda hz: 1127.0 * math.log(1.0 + hz / 700.0)  # noqa: E731
    low, high = mel(20.0), mel(AUDIO_SAMPLE_RATE_HZ / 2)
    centres_mel = [low + (index + 1) * (high - low) / 129 for index in range(128)]
    expected = min(range(128), key=lambda index: abs(centres_mel[index] - mel(frequency_hz)))
    loudest = kaldi_fbank(tone(frequency_hz)).mean(dim=0).argmax().item()
    assert abs(loudest - expected) <= 1  # the FFT bins (31.25 Hz apart) are coarser than the low mel bins
    assert kaldi_fbank(tone(frequency_hz)).mean(dim=0)[loudest] > kaldi_fbank(tone(frequency_hz)).mean() + 5


def test_constant_and_too_short_audio():
    floor = math.log(torch.finfo(torch.float32).eps)
    fbank = kaldi_fbank(torch.full((32_000,), 0.5))  # DC only: every frame's mean is removed
    assert torch.allclose(fbank, torch.full_like(fbank, floor))
    assert torch.isfinite(audio_melspecs(np.full(32_000, 0.5, np.float32))).all()
    assert kaldi_fbank(torch.zeros(399)).shape == (0, 128)
    with pytest.raises(FeatureError, match="too short"):
        audio_melspecs(np.zeros(399, np.float32))


def test_clips_spread_over_the_duration_as_pytorchvideo_samples_them():
    assert clip_starts_s(8, 3) == [0, 2, 4]  # (8 - 2) / 3 apart: the last clip ends before the end
    assert clip_starts_s(Fraction(3, 2), 3) == [0, 0, 0]  # shorter than a clip
    assert clip_frame_indices(175, 25.0) == [(0, 49), (25, 74), (50, 99), (75, 124), (100, 149)]
    assert clip_frame_indices(25, 25.0, 2) == [(0, 24), (0, 24)]  # 1 s: every clip holds the whole video


def test_short_side_scaling_and_the_three_crops():
    assert short_side_size(48, 64) == (224, 298)
    assert short_side_size(640, 360) == (398, 224)
    assert crop_offsets(224, 298) == [(0, 0), (0, 37), (0, 74)]  # along the width
    assert crop_offsets(398, 224) == [(0, 0), (87, 0), (174, 0)]  # along the height
    assert crop_offsets(224, 224) == [(0, 0), (0, 0), (0, 0)]


def test_frames_come_back_by_index(tmp_path):
    path = tmp_path / "ramp.mkv"  # frame n is grey level 5 n, losslessly stored
    lossless_video(path, "color=black:size=32x16:rate=25:d=2", "format=gray,geq=lum=5*N")
    frames = decode_frames(path, [30, 0, 49, 30], 32, 16)
    assert sorted(frames) == [0, 30, 49]
    assert [int(frames[index].mean()) for index in (0, 30, 49)] == [0, 150, 245]


def test_video_views_are_clip_by_clip_crops_in_clip_normalization(tmp_path):
    path = tmp_path / "halves.mkv"  # 7 s, black on the left half, white on the right
    lossless_video(path, "color=black:size=96x48:rate=25:d=7", "drawbox=x=48:y=0:w=48:h=48:color=white:t=fill")
    views = video_views(path)
    assert views.shape == (15, 3, 2, 224, 224)
    black = torch.tensor([(0.0 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD)])[:, None, None, None]
    white = torch.tensor([(1.0 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD)])[:, None, None, None]
    for clip in range(5):
        left, centre, right = views[3 * clip : 3 * clip + 3]  # scaled to 224 x 448: crops at 0, 112, 224
        edge = 8  # bilinear scaling blurs the edge at x = 224 of 448
        assert torch.allclose(left[..., :-edge], black.expand(3, 2, 224, 224 - edge), atol=0.05)
        assert torch.allclose(right[..., edge:], white.expand(3, 2, 224, 224 - edge), atol=0.05)
        assert torch.allclose(centre[..., : 112 - edge], black.expand(3, 2, 224, 112 - edge), atol=0.05)
        assert torch.allclose(centre[..., 112 + edge :], white.expand(3, 2, 224, 112 - edge), atol=0.05)


def test_a_video_with_cuts_gives_views_of_the_frames_at_the_clip_edges(tmp_path):
    views = video_views(write_cut_video(tmp_path / "cuts.mp4", 7.0))  # hue jumps every 2 s
    first_clip_start, first_clip_end = views[0, :, 0], views[0, :, 1]  # frames 0 and 49: 0 s and 1.96 s
    assert not torch.allclose(first_clip_start, first_clip_end, atol=0.1)  # the test pattern moves
    assert torch.isfinite(views).all()
