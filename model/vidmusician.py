"""VidMusician: the frozen MusicGen backbone with the semantic and rhythm conditioning (paper, section 3).

In: a `MusicgenBackbone`, the semantic condition's width (CLIP's, plus 4 with `affect`), a `ConditioningConfig`,
and for the `predicted-odf` rhythm source a trained `RhythmPredictor`. Out: an `nn.Module` whose
trainable parameters are exactly the embedding manager E, the LoRA adapters of T5, MusicGen's
projector P (stage 1, eq. 2) and, after `add_rhythm()`, the rhythm module O, L_1..L_M (stage 2).
Everything else stays frozen. `video_conditions` (`model.video_conditions`) turns a clip's video features into
the inputs below by the model's options; the rhythm predictor in it is not trained here and is not a submodule.

Inputs, for a batch of B clips of T music frames (50 Hz), K codebooks:
- global_embeds `[B, N, clip_dim]` and global_mask `[B, N]` (1 = a real second): V_S at 1 fps (with `affect`,
  each second's scaled affect appended);
- rhythm_curve `[B, T]`: d, one value per music frame (stage 2 only);
- labels `[B, L, K]` for training: the delayed codes (`tokens.apply_delay_pattern`) transposed,
  L = T + K - 1. Decoder position p sees d[p] (position p predicts codebook 0 of frame p); the delay
  tail past T sees 0.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from model.backbone import GeneratedMusic, MusicgenBackbone
from model.conditioning import (
    LAYERS_PER_BLOCK,
    RHYTHM_BLOCK_FRACTION,
    EmbeddingManager,
    RhythmConditioner,
    add_lora,
    fit_curve,
    rhythm_injected,
    rhythm_layer_indices,
)
from model.errors import ConditioningError
from model.rhythm_predictor import RhythmPredictor
from model.video_conditions import VideoConditions


@dataclass(frozen=True)
class ConditioningConfig:
    """Sizes of the trainable modules. The defaults land musicgen-medium with a 512-wide CLIP
    (ViT-B/32) near the paper's 24.79M trainable parameters (see `trainable_parameter_counts`)."""

    semantic_feature: str = "image_embeds"  # `model.features.SEMANTIC_FEATURES`: image_embeds or cls
    affect: bool = False  # the per-second affect features appended to the semantic condition (Diff-V2M)
    embedding_layers: int = 2
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = ("q", "v")
    layers_per_block: int = LAYERS_PER_BLOCK
    rhythm_block_fraction: float = RHYTHM_BLOCK_FRACTION


class VidMusician(nn.Module):
    """The conditioned backbone. Stage 1 as built; `add_rhythm()` turns it into the stage-2 model."""

    def __init__(
        self,
        backbone: MusicgenBackbone,
        clip_dim: int,
        config: ConditioningConfig = ConditioningConfig(),
        rhythm_predictor: RhythmPredictor | None = None,
    ):
        super().__init__()
        self.config = config
        self.video_conditions = VideoConditions(config.semantic_feature, config.affect, rhythm_predictor)
        self.backbone = backbone
        self.embedding_manager = EmbeddingManager(clip_dim, backbone.text_hidden_size, config.embedding_layers)
        self.lora_parameters = add_lora(backbone.text_encoder, config.lora_rank, config.lora_alpha, config.lora_targets)
        if backbone.projector is not None:
            backbone.projector.requires_grad_(True)
        self.rhythm_layers = rhythm_layer_indices(
            backbone.num_layers, config.layers_per_block, config.rhythm_block_fraction
        )
        self.rhythm: RhythmConditioner | None = None
        self.embedding_manager.to(backbone.model.device)

    def train(self, mode: bool = True) -> VidMusician:
        """Train mode for the trainable parts only: the frozen MusicGen (T5 with its LoRA adapters,
        which have no dropout, and the decoder) always runs as at inference, so its dropout (0.1 in
        the Hugging Face configs) stays off, as in audiocraft's training of MusicGen."""
        super().train(mode)
        self.backbone.eval()
        return self

    def add_rhythm(self) -> None:
        """Stage 2: add the zero/identity-initialised rhythm module (the model's output is unchanged)."""
        if self.rhythm is not None:
            raise ConditioningError("the rhythm module is already installed")
        rhythm = RhythmConditioner(self.backbone.hidden_size, len(self.rhythm_layers))
        self.rhythm = rhythm.to(self.backbone.model.device)

    def forward(
        self,
        global_embeds: torch.Tensor,
        global_mask: torch.Tensor,
        labels: torch.Tensor,
        rhythm_curve: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced pass: logits `[B * K, L, V]` and the mean per-codebook cross-entropy."""
        with self._rhythm(rhythm_curve, labels.shape[1]):
            logits, loss = self.backbone.logits(self.embedding_manager(global_embeds), global_mask, labels=labels)
        return logits, loss

    def decoder_logits(
        self,
        global_embeds: torch.Tensor,
        global_mask: torch.Tensor,
        decoder_input_ids: torch.Tensor,
        rhythm_curve: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher-forced logits `[B * K, L, V]` for given decoder inputs `[B * K, L]` (start token first)."""
        with self._rhythm(rhythm_curve, decoder_input_ids.shape[1]):
            logits, _ = self.backbone.logits(
                self.embedding_manager(global_embeds), global_mask, decoder_input_ids=decoder_input_ids
            )
        return logits

    @torch.no_grad()
    def generate(
        self,
        global_embeds: torch.Tensor,
        global_mask: torch.Tensor,
        num_steps: int,
        rhythm_curve: torch.Tensor | None = None,
        guidance_scale: float | None = None,
        prompt_codes: torch.Tensor | None = None,
        **generation_kwargs,
    ) -> GeneratedMusic:
        """Cached incremental generation of `num_steps` decoder steps (with guidance above 1, the
        unconditional half has neither the semantic nor the rhythm condition), continuing prompt_codes
        `[B, K, P]` when given: decoder position p, prompt or not, sees rhythm_curve[:, p]."""
        num_positions = num_steps + (0 if prompt_codes is None else prompt_codes.shape[2])
        with self._rhythm(rhythm_curve, num_positions):
            return self.backbone.generate(
                self.embedding_manager(global_embeds),
                global_mask,
                num_steps,
                guidance_scale,
                prompt_codes=prompt_codes,
                **generation_kwargs,
            )

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The trained weights only (what a checkpoint keeps), by parameter name."""
        return {name: parameter.detach() for name, parameter in self.named_parameters() if parameter.requires_grad}

    def load_trainable_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load trained weights by name. A stage-1 checkpoint loads into a stage-2 model: the rhythm module
        then keeps its zero/identity initialisation, so the model starts where stage 1 ended."""
        trainable = {name: parameter for name, parameter in self.named_parameters() if parameter.requires_grad}
        unknown = sorted(set(state) - set(trainable))
        missing = sorted(name for name in trainable if name not in state and not name.startswith("rhythm."))
        if unknown or missing:
            raise ConditioningError(
                f"the checkpoint does not fit this model: {len(unknown)} unknown weights {unknown[:3]}, "
                f"{len(missing)} missing weights {missing[:3]}"
            )
        with torch.no_grad():
            for name, value in state.items():
                trainable[name].copy_(value)

    @contextmanager
    def _rhythm(self, rhythm_curve: torch.Tensor | None, num_positions: int) -> Iterator[None]:
        if self.rhythm is None:
            if rhythm_curve is not None:
                raise ConditioningError("a rhythm curve was given, but the model has no rhythm module (stage 1)")
            yield
            return
        if rhythm_curve is None:
            raise ConditioningError("the stage-2 model needs a rhythm curve")
        block_features = self.rhythm(fit_curve(rhythm_curve, num_positions).to(self.backbone.model.device))
        with rhythm_injected(self.backbone, block_features, self.rhythm_layers):
            yield


def trainable_parameter_counts(model: VidMusician) -> dict[str, int]:
    """Trainable parameters by module: embedding manager, T5 LoRA, projector, rhythm projector O,
    rhythm layers L_j, and the total."""
    groups: dict[str, list[nn.Parameter]] = {
        "embedding_manager": list(model.embedding_manager.parameters()),
        "t5_lora": model.lora_parameters,
        "projector": [] if model.backbone.projector is None else list(model.backbone.projector.parameters()),
        "rhythm_projector": [] if model.rhythm is None else list(model.rhythm.projector.parameters()),
        "rhythm_layers": [] if model.rhythm is None else list(model.rhythm.block_layers.parameters()),
    }
    counts = {name: sum(p.numel() for p in params if p.requires_grad) for name, params in groups.items()}
    counts["total"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return counts
