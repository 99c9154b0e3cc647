"""The frozen MusicGen backbone: loading, freezing, layer pre-hooks and the positions they are told."""

from __future__ import annotations

import pytest
import torch

from model.backbone import load_backbone
from model.errors import WeightsNotFoundError
from tests.support.tiny_models import TINY_CODEBOOK_SIZE, TINY_DECODER_WIDTH, TINY_NUM_CODEBOOKS


@pytest.fixture
def backbone(tiny_conditioned_musicgen_dir):
    return load_backbone(str(tiny_conditioned_musicgen_dir), device="cpu").eval()


def text_condition(batch: int, seconds: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    return torch.randn(batch, seconds, 16), torch.ones(batch, seconds, dtype=torch.long)


def test_loads_frozen_with_the_sizes_the_conditioning_needs(backbone):
    assert not any(parameter.requires_grad for parameter in backbone.parameters())
    assert (backbone.num_layers, backbone.hidden_size, backbone.text_hidden_size) == (12, TINY_DECODER_WIDTH, 16)
    assert backbone.projector is not None
    assert (backbone.projector.in_features, backbone.projector.out_features) == (16, TINY_DECODER_WIDTH)
    assert backbone.num_codebooks == TINY_NUM_CODEBOOKS
    assert backbone.pad_token_id == backbone.start_token_id == TINY_CODEBOOK_SIZE


def test_a_missing_checkpoint_names_where_it_looked(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="no-musicgen"):
        load_backbone(str(tmp_path / "no-musicgen"), device="cpu")


def test_layer_pre_hook_sees_absolute_positions_and_is_removable(backbone):
    text_embeds, text_mask = text_condition(batch=2)
    seen: list[tuple[int, int]] = []

    def record(hidden: torch.Tensor, first_position: int) -> torch.Tensor:
        seen.append((first_position, hidden.shape[1]))
        return hidden

    handle = backbone.install_layer_pre_hook(4, record)
    ids = torch.full((2 * TINY_NUM_CODEBOOKS, 7), 3)
    backbone.logits(text_embeds, text_mask, decoder_input_ids=ids)
    assert seen == [(0, 7)]  # teacher-forced: one pass over positions 0..6

    seen.clear()
    backbone.generate(text_embeds, text_mask, num_steps=5, do_sample=False)
    # cached: one position per step (transformers 5.23's MusicGen `generate` runs its prefill twice and
    # drops the first result, hence any extra leading (0, 1))
    assert seen[-5:] == [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1)]
    assert set(seen[:-5]) <= {(0, 1)}

    handle.remove()
    seen.clear()
    backbone.logits(text_embeds, text_mask, decoder_input_ids=ids)
    assert seen == []


def test_a_hook_changes_what_the_layer_sees(backbone):
    text_embeds, text_mask = text_condition(batch=1)
    ids = torch.full((TINY_NUM_CODEBOOKS, 4), 5)
    before, _ = backbone.logits(text_embeds, text_mask, decoder_input_ids=ids)
    ramp = torch.arange(backbone.hidden_size, dtype=torch.float32)  # a constant shift would vanish in LayerNorm
    with_hook = backbone.install_layer_pre_hook(0, lambda hidden, first_position: hidden + ramp)
    after, _ = backbone.logits(text_embeds, text_mask, decoder_input_ids=ids)
    with_hook.remove()
    assert (before - after).abs().max() > 1e-3
    with pytest.raises(ValueError, match="outside"):
        backbone.install_layer_pre_hook(12, lambda hidden, first_position: hidden)


def test_generate_reports_the_inputs_it_fed_and_raw_logits(backbone):
    text_embeds, text_mask = text_condition(batch=2)
    generated = backbone.generate(text_embeds, text_mask, num_steps=6, guidance_scale=3.0, do_sample=False)
    rows = 2 * TINY_NUM_CODEBOOKS
    assert generated.decoder_input_ids.shape == (rows, 6)
    assert (generated.decoder_input_ids[:, 0] == backbone.start_token_id).all()
    assert generated.step_logits.shape == (2 * rows, 6, TINY_CODEBOOK_SIZE)  # guidance doubles the batch
    # the delay pattern: codebook k is padding for its first k steps after the start token
    by_codebook = generated.decoder_input_ids.reshape(2, TINY_NUM_CODEBOOKS, 6)
    for codebook in range(1, TINY_NUM_CODEBOOKS):
        assert (by_codebook[:, codebook, 1 : codebook + 1] == backbone.pad_token_id).all()
    assert generated.audio.shape[:2] == (2, 1)
