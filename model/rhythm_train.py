"""Training the rhythm predictor (`model.rhythm_predictor`) on clips' cached features.

In: `RhythmExample`s, one a clip: its predictor inputs and its music's ODF (`model.music_features`), bin for
bin (`rhythm_example`), and `PredictorSettings`. Out: a trained `RhythmPredictor` and each epoch's mean loss.

Each epoch visits the clips in a seeded random order, `batch_size` whole clips a step, padded to the longest
(the padding carries no loss); the loss is the mean squared error between the predicted and the music's ODF
over the real bins; AdamW at a constant learning rate. The same examples, settings and seed give the same
predictor (on the CPU). `predicted_curves` runs a predictor over examples, `distance_curves` gives their
CLIP-distance input: the curves `model.rhythm_accuracy` scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model.features import VisualFeatures
from model.rhythm_predictor import (
    CURVE_ENTRIES_PER_BIN,
    PredictorConfig,
    PredictorInputs,
    RhythmPredictor,
    predict_odf,
    predictor_inputs,
)


@dataclass(frozen=True)
class PredictorSettings:
    """How to train the predictor, and its sizes (`PredictorConfig`)."""

    epochs: int = 100
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0
    hidden: int = 64
    layers: int = 3
    use_affect: bool = True

    def __post_init__(self) -> None:
        if min(self.epochs, self.batch_size, self.hidden, self.layers) < 1:
            raise ValueError("epochs, batch_size, hidden and layers must be at least 1")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ValueError(
                f"learning_rate must be positive and weight_decay not negative: {self.learning_rate}, "
                f"{self.weight_decay}"
            )


@dataclass(frozen=True)
class RhythmExample:
    """One clip: its predictor inputs and its music's ODF `[T10]`, of the same number of bins."""

    clip_id: str
    inputs: PredictorInputs
    target_odf: torch.Tensor


def rhythm_example(
    clip_id: str,
    features: VisualFeatures,
    affect: torch.Tensor | None,
    music_odf: np.ndarray,
    semantic_feature: str = "image_embeds",
) -> RhythmExample:
    """A clip's example over the bins both its video curve and its music's ODF cover."""
    video_bins = math.ceil(features.rhythm_curve_50hz.shape[0] / CURVE_ENTRIES_PER_BIN)
    num_bins = min(video_bins, len(music_odf))
    inputs = predictor_inputs(features, affect, semantic_feature, num_bins)
    return RhythmExample(clip_id, inputs, torch.as_tensor(np.asarray(music_odf[:num_bins], dtype=np.float32)))


def train_predictor(
    examples: Sequence[RhythmExample],
    settings: PredictorSettings = PredictorSettings(),
    semantic_feature: str = "image_embeds",
    device: str | None = None,
) -> tuple[RhythmPredictor, list[float]]:
    """A predictor trained on `examples` (see the module docstring): (the predictor in eval mode on the CPU,
    the mean loss of each epoch)."""
    if not examples:
        raise ValueError("no clips to train the rhythm predictor on")
    torch.manual_seed(settings.seed)
    config = PredictorConfig(
        clip_dim=examples[0].inputs.semantic.shape[-1],
        semantic_feature=semantic_feature,
        use_affect=settings.use_affect,
        hidden=settings.hidden,
        layers=settings.layers,
    )
    torch_device = torch.device(device or "cpu")
    predictor = RhythmPredictor(config).to(torch_device)
    optimizer = torch.optim.AdamW(predictor.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    order = torch.Generator().manual_seed(settings.seed)
    losses = []
    predictor.train()
    for _ in range(settings.epochs):
        permutation = torch.randperm(len(examples), generator=order).tolist()
        epoch_loss = 0.0
        for start in range(0, len(examples), settings.batch_size):
            batch = _collate([examples[i] for i in permutation[start : start + settings.batch_size]], torch_device)
            distance, semantic, affect, target, mask = batch
            predicted = predictor(distance, semantic, affect if settings.use_affect else None)
            loss = ((predicted - target) ** 2 * mask).sum() / mask.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            epoch_loss += float(loss.detach()) * len(batch[0])
        losses.append(epoch_loss / len(examples))
    return predictor.cpu().eval(), losses


def predicted_curves(predictor: RhythmPredictor, examples: Sequence[RhythmExample]) -> list[np.ndarray]:
    """The predictor's ODF `[T10]` of each example."""
    return [predict_odf(predictor, example.inputs).numpy() for example in examples]


def distance_curves(examples: Sequence[RhythmExample]) -> list[np.ndarray]:
    """Each example's CLIP-distance input at the ODF rate `[T10]` (VidMusician's curve, before any rescaling)."""
    return [example.inputs.distance.numpy() for example in examples]


def _collate(
    examples: Sequence[RhythmExample], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """(distance `[B, T]`, semantic `[B, T, D]`, affect `[B, T, 4]` or None, target `[B, T]`, mask `[B, T]`),
    padded with zeros to the longest example."""
    length = max(example.inputs.num_bins for example in examples)

    def padded(tensors: list[torch.Tensor]) -> torch.Tensor:
        out = torch.zeros(len(tensors), length, *tensors[0].shape[1:], dtype=torch.float32)
        for row, tensor in enumerate(tensors):
            out[row, : tensor.shape[0]] = tensor
        return out.to(device)

    with_affect = all(example.inputs.affect is not None for example in examples)
    return (
        padded([example.inputs.distance for example in examples]),
        padded([example.inputs.semantic for example in examples]),
        padded([example.inputs.affect for example in examples]) if with_affect else None,
        padded([example.target_odf for example in examples]),
        padded([torch.ones(example.inputs.num_bins) for example in examples]),
    )
