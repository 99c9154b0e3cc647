"""The marker task of the rhythm-learns test (`tests/model/test_rhythm_learns.py`, whose docstring describes it)
and of `bench/rhythm_ablation.py`: samples of token tensors whose marker token sits at the video's cuts, the
rhythm predictor that infers their music's onsets, training steps, and how placed markers are scored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model.dataset import collate
from model.rhythm_accuracy import onset_agreement
from model.rhythm_predictor import RhythmPredictor
from model.rhythm_train import PredictorSettings, RhythmExample, rhythm_example, train_predictor
from model.train import ClipCrop, OptimizerSettings, make_optimizer
from model.video_conditions import VideoConditions
from model.vidmusician import VidMusician
from tests.support.synthetic_rhythm import cut_clip, cut_features, random_cuts
from tests.support.tiny_models import TINY_CODEBOOK_SIZE, TINY_NUM_CODEBOOKS

MARKER = 0
FRAMES = 25  # 1 s of the tiny codec's 25 Hz frames
CUTS = 3
MIN_CUT_GAP = 5  # the +-2 frame windows of two cuts never overlap
TOLERANCE_FRAMES = 1
ODF_TOLERANCE_FRAMES = 2  # 80 ms: an ODF bin (100 ms) says there is an onset in it, not where
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


def cut_sample(generator: torch.Generator, conditions: VideoConditions) -> CutSample:
    """One sample of the marker task (the rhythm-learns test's docstring describes it), conditioned as
    `conditions` say."""
    cuts = random_cuts(FRAMES, CUTS, MIN_CUT_GAP, generator)
    codes = torch.randint(MARKER + 1, TINY_CODEBOOK_SIZE, (TINY_NUM_CODEBOOKS, FRAMES), generator=generator)
    codes[0, cuts] = MARKER
    features = cut_features(cuts, FRAMES, CLIP_DIM, generator, (1.0, 1.0), CURVE_NOISE, CLIP_SECONDS)
    crop = ClipCrop(codes, conditions.semantic(features), conditions.rhythm_curve_50hz(features), start_s=0.0)
    return CutSample(crop, cuts)


def cut_samples(generator: torch.Generator, count: int, conditions: VideoConditions) -> list[CutSample]:
    return [cut_sample(generator, conditions) for _ in range(count)]


def marker_task_examples(count: int, seed: int) -> list[RhythmExample]:
    """Rhythm-predictor examples of `count` 10 s clips with 6 cuts (`cut_clip`), their CLIP-distance curve as
    in the marker task's samples, their music's strong onsets at the cuts."""
    generator = torch.Generator().manual_seed(seed)
    clips = [cut_clip(250, 6, CLIP_DIM, generator, cut_distance=(1.0, 1.0), noise=CURVE_NOISE) for _ in range(count)]
    return [rhythm_example(str(i), clip.features, None, clip.odf.numpy()) for i, clip in enumerate(clips)]


def marker_task_predictor(seed: int = 7) -> RhythmPredictor:
    """A rhythm predictor (without affect) trained on 64 `marker_task_examples`."""
    settings = PredictorSettings(epochs=25, learning_rate=3e-3, hidden=32, use_affect=False, seed=seed)
    return train_predictor(marker_task_examples(64, seed), settings)[0]


def marker_placement(
    predicted: torch.Tensor, cuts: Sequence[Sequence[int]], tolerance_frames: int = TOLERANCE_FRAMES
) -> MarkerPlacement:
    """Score predicted codebook-0 tokens `[B, T]` against each sample's cut frames, +-`tolerance_frames`: the
    markers as onsets of `model.rhythm_accuracy.onset_agreement` (the same recall, precision, chance levels)."""
    marks = [(row == MARKER).nonzero().flatten().numpy() for row in predicted]
    agreement = onset_agreement(
        marks, [np.asarray(row) for row in cuts], [predicted.shape[1]] * len(marks), tolerance_frames
    )
    precision = agreement.precision if agreement.peaks else 1.0
    return MarkerPlacement(
        agreement.recall, agreement.chance_recall, precision, agreement.chance_precision, agreement.peaks
    )


def train_steps(model: VidMusician, stage: int, num_steps: int, generator: torch.Generator) -> list[float]:
    """`num_steps` optimizer steps on fresh batches of the marker task; returns the losses."""
    optimizer, scheduler = make_optimizer(model, stage, OptimizerSettings(learning_rate=LEARNING_RATE, warmup_steps=1))
    pad_token_id = model.backbone.pad_token_id
    model.train()
    losses = []
    for _ in range(num_steps):
        batch = collate([sample.crop for sample in cut_samples(generator, BATCH, model.video_conditions)], pad_token_id)
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


def held_out_samples(conditions: VideoConditions, seed: int = 1000) -> list[CutSample]:
    """The `EVAL_SAMPLES` samples every evaluation scores (the same cuts and codes for every model)."""
    return cut_samples(torch.Generator().manual_seed(seed), EVAL_SAMPLES, conditions)
