"""Synthetic clips whose music's onsets follow the video's cuts, as tensors (no media), for the rhythm
predictor's tests and `bench/rhythm_ablation.py`.

A clip of F frames at 25 fps (`RHYTHM_FPS`) has cuts at some frames. Its `VisualFeatures`:
- `rhythm_curve_50hz` `[2F]` as Algorithm 1 lays it out: entry 2i is the CLIP distance between frames i - 1
  and i (noise below `noise` within a shot, a draw from `cut_distance` at a cut), entry 2i + 1 is 0;
- `global_embeds_1fps` `[T1, D]`: one random vector per shot plus a little noise, row s from the shot shown
  at s seconds (T1 = `seconds`, default ceil(F / 25)).
Its affect `[T1, 4]` is drawn per shot on `model.video_structure`'s scales. Its music's ODF `[ceil(F / 2.5)]`
at 10 Hz: a strong onset (0.7..1) in the bin of each cut, the music's own weaker onsets (0.1..0.35, in a
fifth of the bins) and a floor (0..0.1) elsewhere, divided by its largest bin as `model.music_features`
does. Only the cuts' onsets rise above half the range: `model.rhythm_accuracy`'s onsets are the cuts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from model.features import RHYTHM_FPS, VisualFeatures
from model.music_features import ODF_RATE_HZ

CUT_ONSET = (0.7, 1.0)
OWN_ONSET = (0.1, 0.35)
OWN_ONSET_SHARE = 0.2
ODF_FLOOR = 0.1


@dataclass(frozen=True)
class CutClip:
    """One synthetic clip: its cut frames (25 fps), video features, raw affect `[T1, 4]` and music ODF `[T10]`."""

    cut_frames: list[int]
    features: VisualFeatures
    affect: torch.Tensor
    odf: torch.Tensor


def random_cuts(num_frames: int, count: int, min_gap_frames: int, generator: torch.Generator) -> list[int]:
    """`count` sorted cut frames in [1, num_frames), at least `min_gap_frames` apart (drawn until they are)."""
    while True:
        cuts = sorted((1 + torch.randperm(num_frames - 1, generator=generator)[:count]).tolist())
        if all(later - earlier >= min_gap_frames for earlier, later in zip(cuts, cuts[1:])):
            return cuts


def cut_features(
    cut_frames: list[int],
    num_frames: int,
    clip_dim: int,
    generator: torch.Generator,
    cut_distance: tuple[float, float] = (0.3, 0.7),
    noise: float = 0.08,
    seconds: int | None = None,
) -> VisualFeatures:
    """The video features of a clip with cuts at `cut_frames` (see the module docstring)."""
    distance = noise * torch.rand(num_frames, generator=generator)
    low, high = cut_distance
    distance[cut_frames] = low + (high - low) * torch.rand(len(cut_frames), generator=generator)
    curve = torch.stack([distance, torch.zeros(num_frames)], dim=1).reshape(-1)
    shot_of_second = _shot_of_seconds(cut_frames, seconds or math.ceil(num_frames / RHYTHM_FPS))
    shots = torch.randn(len(cut_frames) + 1, clip_dim, generator=generator)
    embeds = shots[shot_of_second] + 0.1 * torch.randn(len(shot_of_second), clip_dim, generator=generator)
    return VisualFeatures(embeds, curve, "synthetic")


def cut_clip(
    num_frames: int,
    num_cuts: int,
    clip_dim: int,
    generator: torch.Generator,
    min_gap_frames: int = 8,
    cut_distance: tuple[float, float] = (0.3, 0.7),
    noise: float = 0.08,
) -> CutClip:
    """A clip of `num_frames` frames with `num_cuts` random cuts (`cut_features`), its affect and its music's ODF."""
    cuts = random_cuts(num_frames, num_cuts, min_gap_frames, generator)
    features = cut_features(cuts, num_frames, clip_dim, generator, cut_distance, noise)
    shot_of_second = _shot_of_seconds(cuts, features.global_embeds_1fps.shape[0])
    shot_affect = torch.rand(len(cuts) + 1, 4, generator=generator) * torch.tensor([1.0, 1.0, 100.0, 0.1])
    return CutClip(cuts, features, shot_affect[shot_of_second], cut_odf(cuts, num_frames, generator))


def cut_odf(cut_frames: list[int], num_frames: int, generator: torch.Generator) -> torch.Tensor:
    """The ODF `[ceil(num_frames / 2.5)]` of music with a strong onset at each cut (see the module docstring)."""
    bins = math.ceil(num_frames / RHYTHM_FPS * ODF_RATE_HZ)
    odf = ODF_FLOOR * torch.rand(bins, generator=generator)
    own = torch.rand(bins, generator=generator) < OWN_ONSET_SHARE
    odf[own] = OWN_ONSET[0] + (OWN_ONSET[1] - OWN_ONSET[0]) * torch.rand(int(own.sum()), generator=generator)
    cut_bins = [math.floor(frame / RHYTHM_FPS * ODF_RATE_HZ) for frame in cut_frames]
    odf[cut_bins] = CUT_ONSET[0] + (CUT_ONSET[1] - CUT_ONSET[0]) * torch.rand(len(cut_bins), generator=generator)
    return odf / odf.max()


def _shot_of_seconds(cut_frames: list[int], seconds: int) -> torch.Tensor:
    """`[seconds]`: the index of the shot shown at 0, 1, 2, ... s."""
    frames = torch.arange(seconds) * RHYTHM_FPS
    return torch.tensor([sum(frame >= cut for cut in cut_frames) for frame in frames.tolist()])
