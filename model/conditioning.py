"""VidMusician's conditioning modules (paper, sections 3.1 and 3.2), independent of MusicGen's internals.

Semantic path (eq. 2, F_S = P(T(E(V_S)))):
- `EmbeddingManager` E: CLIP global embeddings `[B, N, clip_dim]` -> T5 input embeddings
  `[B, N, text_dim]`, a few linear layers with GELU between them;
- `add_lora`: LoRA adapters (peft) injected in place into the T5 encoder T; only they train in T.
  (P is MusicGen's own T5 -> decoder projection; the backbone exposes it.)

Rhythm path (eqs. 5 and 6):
- `RhythmConditioner`: the rhythm curve d `[B, L]` (one value per decoder position, 50 Hz) -> the
  block conditions F_R1..F_RM, each `[B, L, hidden]`: a projector O = Linear(1, hidden) with zero
  weight and bias, then L_1..L_M = Linear(hidden, hidden) with identity weight and zero bias,
  F_Rj = L_j(...L_1(O(d))). At initialisation every F_Rj is exactly 0.
- `rhythm_layer_indices`: block j (4 layers a block) is conditioned at its first layer, for the first
  3/4 of the blocks (musicgen-medium: 48 layers, 12 blocks, 9 conditioned).
- `rhythm_injected`: while active, F_Rj is added to the hidden state entering the first layer of
  block j, rows [p, p + L) of F_Rj for a layer input covering decoder positions [p, p + L) (p from the
  layer's KV cache, so teacher-forced and cached incremental decoding add the same values).
  Classifier-free guidance: the decoder batch is `[conditional B | unconditional B]`; the rhythm
  condition is added to the conditional half only. The unconditional half gets nothing, just as
  MusicGen zeroes its semantic condition: it is the backbone without any video condition.
- `fit_curve`: a rhythm curve cut or zero-padded (0 = no visual change) to the decoder's length.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.utils.error import NoMatchingPeftModuleError
from torch import nn

from model.backbone import MusicgenBackbone
from model.errors import ConditioningError

LAYERS_PER_BLOCK = 4
RHYTHM_BLOCK_FRACTION = 0.75


class EmbeddingManager(nn.Module):
    """E: `[B, N, clip_dim]` -> `[B, N, text_dim]`; `num_layers` linear layers, GELU between them,
    the hidden ones `text_dim` wide."""

    def __init__(self, clip_dim: int, text_dim: int, num_layers: int = 2):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"the embedding manager needs at least one layer, got {num_layers}")
        layers: list[nn.Module] = [nn.Linear(clip_dim, text_dim)]
        for _ in range(num_layers - 1):
            layers += [nn.GELU(), nn.Linear(text_dim, text_dim)]
        self.layers = nn.Sequential(*layers)

    def forward(self, global_embeds: torch.Tensor) -> torch.Tensor:
        return self.layers(global_embeds)


def add_lora(
    text_encoder: nn.Module,
    rank: int = 8,
    alpha: float = 16.0,
    target_modules: Sequence[str] = ("q", "v"),
) -> list[nn.Parameter]:
    """Inject LoRA adapters (B initialised to zero, so T is unchanged at first; no dropout) into `text_encoder`
    in place, on its attention projections named in `target_modules`; returns the adapter parameters,
    the only ones of the encoder that train."""
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=list(target_modules))
    try:
        inject_adapter_in_model(config, text_encoder)
    except NoMatchingPeftModuleError as error:
        targets = list(target_modules)
        raise ConditioningError(f"no module of the text encoder matches the LoRA targets {targets}") from error
    adapters = [parameter for name, parameter in text_encoder.named_parameters() if "lora_" in name]
    for name, parameter in text_encoder.named_parameters():
        parameter.requires_grad_("lora_" in name)
    return adapters


class RhythmConditioner(nn.Module):
    """d `[B, L]` -> [F_R1, ..., F_RM], each `[B, L, hidden_size]` (zero/identity initialised: all 0)."""

    def __init__(self, hidden_size: int, num_blocks: int):
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"the rhythm module needs at least one block, got {num_blocks}")
        self.projector = nn.Linear(1, hidden_size)
        nn.init.zeros_(self.projector.weight)
        nn.init.zeros_(self.projector.bias)
        self.block_layers = nn.ModuleList(nn.Linear(hidden_size, hidden_size) for _ in range(num_blocks))
        for layer in self.block_layers:
            nn.init.eye_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, curve: torch.Tensor) -> list[torch.Tensor]:
        features = self.projector(curve[..., None].to(self.projector.weight.dtype))
        block_features = []
        for layer in self.block_layers:
            features = layer(features)
            block_features.append(features)
        return block_features


def rhythm_layer_indices(
    num_layers: int, layers_per_block: int = LAYERS_PER_BLOCK, block_fraction: float = RHYTHM_BLOCK_FRACTION
) -> list[int]:
    """The decoder layers that receive F_Rj: the first layer of each of the first
    floor(block_fraction x num_layers / layers_per_block) blocks."""
    if num_layers % layers_per_block:
        raise ConditioningError(f"{num_layers} decoder layers do not split into blocks of {layers_per_block}")
    num_blocks = int(num_layers // layers_per_block * block_fraction)
    if num_blocks < 1:
        raise ConditioningError(
            f"{num_layers} decoder layers in blocks of {layers_per_block} leave no block for the rhythm condition"
        )
    return [block * layers_per_block for block in range(num_blocks)]


def fit_curve(curve: torch.Tensor, num_positions: int) -> torch.Tensor:
    """Rhythm curve `[B, T]` -> `[B, num_positions]`: cut, or padded with 0 (no visual change)."""
    if curve.shape[1] >= num_positions:
        return curve[:, :num_positions]
    return nn.functional.pad(curve, (0, num_positions - curve.shape[1]))


@contextmanager
def rhythm_injected(
    backbone: MusicgenBackbone, block_features: Sequence[torch.Tensor], layer_indices: Sequence[int]
) -> Iterator[None]:
    """Add `block_features[j]` `[B, L_cond, hidden]` to the input of decoder layer `layer_indices[j]`
    while the context is active (see the module docstring for positions and guidance)."""
    if len(block_features) != len(layer_indices):
        raise ConditioningError(f"{len(block_features)} rhythm conditions for {len(layer_indices)} layers")
    handles = [
        backbone.install_layer_pre_hook(index, partial(_add_block_condition, features))
        for index, features in zip(layer_indices, block_features, strict=True)
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _add_block_condition(features: torch.Tensor, hidden: torch.Tensor, first_position: int) -> torch.Tensor:
    """hidden `[B or 2B, L, H]` covering positions [first_position, first_position + L) + features rows."""
    batch, num_positions = features.shape[0], features.shape[1]
    end = first_position + hidden.shape[1]
    if end > num_positions:
        raise ConditioningError(
            f"the decoder reached position {end - 1}, but the rhythm condition covers {num_positions} positions"
        )
    window = features[:, first_position:end].to(hidden.dtype)
    if hidden.shape[0] == batch:
        return hidden + window
    if hidden.shape[0] == 2 * batch:  # classifier-free guidance: [conditional | unconditional]
        return torch.cat([hidden[:batch] + window, hidden[batch:]])
    raise ConditioningError(f"a decoder batch of {hidden.shape[0]} rows for a rhythm condition of {batch} rows")
