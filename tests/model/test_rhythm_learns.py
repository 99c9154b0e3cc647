"""The rhythm path learns (issue 7): a marker token at visual cuts, found only through the rhythm condition.

Data, made of token tensors (no media): each sample has `FRAMES` music frames of random codes in
[1, 64) in every codebook, except codebook 0 holds the marker token 0 at `CUTS` random cut frames
(at least `MIN_CUT_GAP` apart, so the +-1 frame windows of two cuts never overlap). The rhythm curve
is 1 at the cuts and low noise (below 0.1) elsewhere, as a real curve spikes at a cut; the 1 fps global
embeddings are random and say nothing about where the cuts are.

Training goes through the real pieces: `model.dataset.collate` (delay pattern, curve at the frames),
`VidMusician.forward`'s MusicGen loss, `model.train.make_optimizer` (AdamW 0.9/0.95, weight decay 0.1).
Two departures from the paper's settings, both training options: lr 1e-2 in both stages (from the
zero-initialised projector O, 60 stage-2 steps at the paper's 1e-5, or at 1e-4, leave the model at
chance) and no warm-up (the paper's 6,000 steps are longer than this whole run).

The stage-1-only model trains for as many steps as stage 1 + stage 2 together; stage 2 starts from the
stage-1 weights at half-way. Evaluation is on held-out samples: the argmax of codebook 0 in a
teacher-forced pass places markers; `MarkerPlacement` scores them against the cuts (+-1 frame, and
exactly: decoder position p sees the curve at frame p, so a trained stage 2 hits the cut frame itself).
The stage-1-only model learns that the marker is the most frequent token and places it on most
frames: its recall is high, but no higher than random frames would give, and its precision is chance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
import torch

from model.backbone import load_backbone
from model.dataset import collate
from model.train import ClipCrop, OptimizerSettings, make_optimizer
from model.vidmusician import VidMusician
from tests.support.tiny_models import TINY_CODEBOOK_SIZE, TINY_NUM_CODEBOOKS

MARKER = 0
FRAMES = 25  # 1 s of the tiny codec's 25 Hz frames
CUTS = 3
MIN_CUT_GAP = 3
TOLERANCE_FRAMES = 1
CURVE_NOISE = 0.1
CLIP_DIM = 8
CLIP_SECONDS = 2
BATCH = 16
STEPS_PER_STAGE = 60
LEARNING_RATE = 1e-2
EVAL_SAMPLES = 64


@dataclass(frozen=True)
class CutSample:
    crop: ClipCrop
    cuts: list[int]


@dataclass(frozen=True)
class MarkerPlacement:
    """How predicted markers sit on the cuts, within a tolerance.

    recall: share of cuts with a marker predicted within tolerance;
    chance_recall: the expected recall had each sample's markers (as many as predicted) fallen on random frames;
    precision: share of predicted markers within tolerance of a cut (1 when none is predicted);
    chance_precision: the expected precision of markers on random frames: the share of frames near a cut.
    Recall alone rewards a marker on every frame; such a model has recall 1, and chance recall 1 too.
    """

    recall: float
    chance_recall: float
    precision: float
    chance_precision: float
    num_placed: int


def cut_sample(generator: torch.Generator) -> CutSample:
    """One sample of the marker task (see the module docstring)."""
    while True:
        cuts = sorted(torch.randperm(FRAMES, generator=generator)[:CUTS].tolist())
        if all(later - earlier >= MIN_CUT_GAP for earlier, later in zip(cuts, cuts[1:])):
            break
    codes = torch.randint(MARKER + 1, TINY_CODEBOOK_SIZE, (TINY_NUM_CODEBOOKS, FRAMES), generator=generator)
    codes[0, cuts] = MARKER
    curve = CURVE_NOISE * torch.rand(FRAMES, generator=generator)
    curve[cuts] = 1.0
    global_embeds = torch.randn(CLIP_SECONDS, CLIP_DIM, generator=generator)
    return CutSample(ClipCrop(codes, global_embeds, curve, start_s=0.0), cuts)


def cut_samples(generator: torch.Generator, count: int) -> list[CutSample]:
    return [cut_sample(generator) for _ in range(count)]


def marker_placement(
    predicted: torch.Tensor, cuts: Sequence[Sequence[int]], tolerance_frames: int = TOLERANCE_FRAMES
) -> MarkerPlacement:
    """Score predicted codebook-0 tokens `[B, T]` against each sample's cut frames, +-`tolerance_frames`."""
    num_frames = predicted.shape[1]
    hits, chance, num_cuts, placed, placed_near, frames_near = 0, 0.0, 0, 0, 0, 0
    for row, row_cuts in zip(predicted, cuts, strict=True):
        marks = (row == MARKER).nonzero().flatten().tolist()
        frames_near += sum(any(abs(frame - cut) <= tolerance_frames for cut in row_cuts) for frame in range(num_frames))
        placed += len(marks)
        placed_near += sum(any(abs(mark - cut) <= tolerance_frames for cut in row_cuts) for mark in marks)
        for cut in row_cuts:
            num_cuts += 1
            hits += any(abs(mark - cut) <= tolerance_frames for mark in marks)
            window = min(cut + tolerance_frames, num_frames - 1) - max(cut - tolerance_frames, 0) + 1
            chance += 1 - math.comb(num_frames - window, len(marks)) / math.comb(num_frames, len(marks))
    precision = placed_near / placed if placed else 1.0
    return MarkerPlacement(hits / num_cuts, chance / num_cuts, precision, frames_near / predicted.numel(), placed)


def train_steps(model: VidMusician, stage: int, num_steps: int, generator: torch.Generator) -> list[float]:
    """`num_steps` optimizer steps on fresh batches of the marker task; returns the losses."""
    optimizer, scheduler = make_optimizer(model, stage, OptimizerSettings(learning_rate=LEARNING_RATE, warmup_steps=1))
    pad_token_id = model.backbone.pad_token_id
    model.train()
    losses = []
    for _ in range(num_steps):
        batch = collate([sample.crop for sample in cut_samples(generator, BATCH)], pad_token_id)
        _, loss = model(**batch.model_inputs(with_rhythm=model.rhythm is not None))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
    return losses


@torch.no_grad()
def predict_codebook0(model: VidMusician, samples: Sequence[CutSample]) -> torch.Tensor:
    """Argmax codebook-0 tokens `[B, FRAMES]` of a teacher-forced pass over `samples`."""
    model.eval()
    batch = collate([sample.crop for sample in samples], model.backbone.pad_token_id)
    logits, _ = model(**batch.model_inputs(with_rhythm=model.rhythm is not None))  # [B * K, L, V]
    codebook0 = logits.reshape(len(samples), TINY_NUM_CODEBOOKS, *logits.shape[1:])[:, 0, :FRAMES]
    return codebook0.argmax(dim=-1)


def test_marker_placement_scores_recall_precision_and_chance():
    cuts = [[2, 10], [5]]
    exact = torch.full((2, 20), 7)
    exact[0, [3, 10]] = MARKER  # one frame late, and exact
    exact[1, 4] = MARKER
    # chance: 2 random marks of 20 frames miss a 3-frame window with p = C(17, 2) / C(20, 2) = 136 / 190,
    # 1 mark with p = 17 / 20
    chance_recall = (2 * (1 - 136 / 190) + 3 / 20) / 3
    assert marker_placement(exact, cuts) == MarkerPlacement(1.0, pytest.approx(chance_recall), 1.0, 9 / 40, 3)

    everywhere = torch.full((2, 20), MARKER)
    assert marker_placement(everywhere, cuts) == MarkerPlacement(1.0, 1.0, 9 / 40, 9 / 40, 40)

    elsewhere = torch.full((2, 20), 7)
    elsewhere[0, 19] = MARKER  # far from both cuts; sample 1 places none (chance 0)
    assert marker_placement(elsewhere, cuts) == MarkerPlacement(0.0, pytest.approx(2 * 3 / 20 / 3), 0.0, 9 / 40, 1)
    assert marker_placement(torch.full((2, 20), 7), cuts) == MarkerPlacement(0.0, 0.0, 1.0, 9 / 40, 0)
    assert marker_placement(exact, cuts, tolerance_frames=0) == MarkerPlacement(
        1 / 3, pytest.approx((2 * (1 - 171 / 190) + 1 / 20) / 3), 1 / 3, 3 / 40, 3  # only frame 10 is on its cut
    )


@pytest.mark.slow
def test_the_rhythm_path_learns_to_place_the_marker_at_cuts(tiny_conditioned_musicgen_dir):
    torch.manual_seed(0)
    model = VidMusician(load_backbone(str(tiny_conditioned_musicgen_dir), device="cpu"), clip_dim=CLIP_DIM)
    held_out = cut_samples(torch.Generator().manual_seed(1000), EVAL_SAMPLES)
    cuts = [sample.cuts for sample in held_out]

    train_steps(model, 1, STEPS_PER_STAGE, torch.Generator().manual_seed(1))
    stage1_weights = {name: value.clone() for name, value in model.trainable_state_dict().items()}
    train_steps(model, 1, STEPS_PER_STAGE, torch.Generator().manual_seed(2))
    stage1 = marker_placement(predict_codebook0(model, held_out), cuts)

    model.load_trainable_state_dict(stage1_weights)
    model.add_rhythm()
    stage2_losses = train_steps(model, 2, STEPS_PER_STAGE, torch.Generator().manual_seed(2))
    stage2_predicted = predict_codebook0(model, held_out)
    stage2 = marker_placement(stage2_predicted, cuts)
    stage2_exact = marker_placement(stage2_predicted, cuts, tolerance_frames=0)
    print(f"\nstage 1 only: {stage1}\nstage 1 + 2: {stage2}\nstage 1 + 2, exact frame: {stage2_exact}")

    assert stage2.recall > 0.8 and stage2.precision > 0.8, stage2
    assert stage2.recall > stage2.chance_recall + 0.3 and stage2.precision > stage2.chance_precision + 0.3, stage2
    assert stage2_exact.recall > 0.8, stage2_exact
    assert stage1.recall < stage1.chance_recall + 0.1 and stage1.precision < stage1.chance_precision + 0.1, stage1
    assert stage2_losses[-1] < stage2_losses[0]
