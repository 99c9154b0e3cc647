"""Training pieces for VidMusician (paper, sections 3.3 and 5.1): aligned random crops, optimizer, schedule.

`crop_clip`: one clip's cached inputs -> a random window (30 s by default) of all three, aligned in time:
codes `[K, T]` at the codec's frame rate (50 Hz for MusicGen), global embeddings `[T1, D]` at 1 fps and
the rhythm curve `[T50]` at 50 Hz. The window starts on a whole second, so the 1 fps embeddings, the
codes and the curve all start at the same instant; a clip shorter than the window is taken whole.
The random start comes from a `torch.Generator`, so a seeded generator replays the same crops.

`make_optimizer`: AdamW over the trainable parameters only, betas (0.9, 0.95), weight decay 0.1,
lr 1e-4 in stage 1 and 1e-5 in stage 2, with a linear warm-up over 6,000 steps, then constant
(the paper names no decay).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from model.features import GLOBAL_FPS, RHYTHM_FPS

CROP_S = 30.0  # MusicGen's maximum generation length, the paper's training crops
CURVE_RATE_HZ = 2 * RHYTHM_FPS  # Algorithm 1 raises the 25 fps distances to 50 Hz
STAGE_LEARNING_RATES = {1: 1e-4, 2: 1e-5}


@dataclass(frozen=True)
class ClipCrop:
    """A window of one clip: codes `[K, T]`, global_embeds `[T1, D]`, rhythm_curve `[T50]`, from start_s."""

    codes: torch.Tensor
    global_embeds: torch.Tensor
    rhythm_curve: torch.Tensor
    start_s: float


@dataclass(frozen=True)
class OptimizerSettings:
    """AdamW and warm-up settings; `learning_rate` None means the stage's rate."""

    learning_rate: float | None = None
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    warmup_steps: int = 6000


def crop_clip(
    codes: torch.Tensor,
    global_embeds: torch.Tensor,
    rhythm_curve: torch.Tensor,
    codes_rate_hz: float,
    generator: torch.Generator,
    crop_s: float = CROP_S,
) -> ClipCrop:
    """A random `crop_s` window (starting on a whole second) of a clip's codes, global embeddings and
    rhythm curve; the clip's length is the shorter of its codes and its curve."""
    duration_s = min(codes.shape[-1] / codes_rate_hz, rhythm_curve.shape[-1] / CURVE_RATE_HZ)
    window_s = min(crop_s, duration_s)
    last_start_s = math.floor(duration_s - window_s)
    start_s = float(torch.randint(0, last_start_s + 1, (1,), generator=generator).item())
    return ClipCrop(
        codes=_window(codes, codes_rate_hz, start_s, window_s),
        global_embeds=_window(global_embeds.T, GLOBAL_FPS, start_s, window_s, round_up=True).T,
        rhythm_curve=_window(rhythm_curve, CURVE_RATE_HZ, start_s, window_s),
        start_s=start_s,
    )


def make_optimizer(
    model: nn.Module, stage: int, settings: OptimizerSettings = OptimizerSettings()
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over `model`'s trainable parameters and its warm-up schedule (call `scheduler.step()` after
    every `optimizer.step()`): step s runs at lr x min(1, (s + 1) / warmup_steps)."""
    if stage not in STAGE_LEARNING_RATES:
        raise ValueError(f"stage must be 1 or 2, got {stage}")
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters")
    learning_rate = settings.learning_rate if settings.learning_rate is not None else STAGE_LEARNING_RATES[stage]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate, betas=settings.betas, weight_decay=settings.weight_decay)
    warmup_steps = max(1, settings.warmup_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup_steps))
    return optimizer, scheduler


def _window(
    series: torch.Tensor, rate_hz: float, start_s: float, window_s: float, round_up: bool = False
) -> torch.Tensor:
    """The entries of `series` `[..., T]` (sampled at `rate_hz`) in [start_s, start_s + window_s);
    `round_up` keeps a last entry that starts inside the window (1 fps embeddings of a partial second)."""
    start = round(start_s * rate_hz)
    length = math.ceil(window_s * rate_hz) if round_up else round(window_s * rate_hz)
    return series[..., start : start + length]
