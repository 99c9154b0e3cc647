"""Training pieces: random crops aligned in time across codes, 1 fps embeddings and the 50 Hz curve; the optimizer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from model.train import OptimizerSettings, crop_clip, make_optimizer


def timed_clip(duration_s: float, codes_rate_hz: int = 50) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Codes `[4, T]`, embeddings `[T1, 8]` and a curve `[T50]` whose values are their own times in seconds."""
    frames = round(duration_s * codes_rate_hz)
    codes = (torch.arange(frames, dtype=torch.float64) / codes_rate_hz).expand(4, frames)
    seconds = torch.arange(int(duration_s) + (duration_s % 1 > 0), dtype=torch.float64)
    embeds = seconds[:, None].expand(-1, 8)
    curve = torch.arange(round(duration_s * 50), dtype=torch.float64) / 50
    return codes, embeds, curve


@pytest.mark.parametrize("codes_rate_hz", [50, 25])
def test_crops_of_all_three_streams_start_at_the_same_instant(codes_rate_hz):
    codes, embeds, curve = timed_clip(60.0, codes_rate_hz)
    generator = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(40):
        crop = crop_clip(codes, embeds, curve, codes_rate_hz, generator)
        starts.add(crop.start_s)
        assert crop.codes.shape == (4, 30 * codes_rate_hz)
        assert crop.global_embeds.shape == (30, 8)
        assert crop.rhythm_curve.shape == (1500,)
        assert crop.codes[0, 0] == crop.global_embeds[0, 0] == crop.rhythm_curve[0] == crop.start_s
        # both end at the same instant: start + 30 s
        assert float(crop.codes[0, -1]) + 1 / codes_rate_hz == pytest.approx(float(crop.rhythm_curve[-1]) + 1 / 50)
        assert float(crop.rhythm_curve[-1]) == pytest.approx(crop.start_s + 30 - 1 / 50)
        assert crop.global_embeds[-1, 0] == crop.start_s + 29
    assert starts <= {float(second) for second in range(31)}
    assert len(starts) > 10  # random, not a fixed window


def test_a_seeded_generator_replays_the_same_crops():
    codes, embeds, curve = timed_clip(60.0)
    first = [crop_clip(codes, embeds, curve, 50, torch.Generator().manual_seed(5)).start_s for _ in range(3)]
    generator_a, generator_b = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert [crop_clip(codes, embeds, curve, 50, generator_a).start_s for _ in range(5)] == [
        crop_clip(codes, embeds, curve, 50, generator_b).start_s for _ in range(5)
    ]
    assert len(set(first)) == 1


def test_a_clip_shorter_than_the_window_is_taken_whole():
    codes, embeds, curve = timed_clip(12.5)
    crop = crop_clip(codes, embeds, curve, 50, torch.Generator().manual_seed(0))
    assert crop.start_s == 0.0
    assert crop.codes.shape == (4, 625) and crop.rhythm_curve.shape == (625,)
    assert crop.global_embeds.shape == (13, 8)  # the embedding of the last, partial second is kept


def test_crops_use_the_shorter_of_codes_and_curve():
    codes, embeds, curve = timed_clip(31.0)
    crop = crop_clip(codes, embeds, curve[:-60], 50, torch.Generator().manual_seed(0))  # curve: 29.8 s
    assert crop.start_s == 0.0
    assert crop.codes.shape[-1] == crop.rhythm_curve.shape[-1] == 1490


def test_optimizer_trains_only_trainable_parameters_with_the_papers_settings():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    model[0].requires_grad_(False)
    optimizer, scheduler = make_optimizer(model, stage=1)
    (group,) = optimizer.param_groups
    assert [id(p) for p in group["params"]] == [id(p) for p in model[1].parameters()]
    assert group["betas"] == (0.9, 0.95) and group["weight_decay"] == 0.1
    assert group["lr"] == pytest.approx(1e-4 / 6000)  # warm-up starts at 1 / 6000 of the rate
    for _ in range(2999):
        optimizer.step()
        scheduler.step()
    assert group["lr"] == pytest.approx(1e-4 / 2)
    for _ in range(5000):
        optimizer.step()
        scheduler.step()
    assert group["lr"] == pytest.approx(1e-4)  # constant after the warm-up

    optimizer, _ = make_optimizer(model, stage=2, settings=OptimizerSettings(warmup_steps=1))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="stage"):
        make_optimizer(model, stage=3)
    with pytest.raises(ValueError, match="no trainable"):
        make_optimizer(nn.Linear(2, 2).requires_grad_(False), stage=1)
