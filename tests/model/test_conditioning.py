"""Conditioning modules without a backbone: shapes, initialisation, layer choice, curve fitting, guidance halves."""

from __future__ import annotations

import pytest
import torch
from transformers import T5Config, T5EncoderModel

from model.conditioning import (
    EmbeddingManager,
    RhythmConditioner,
    _add_block_condition,
    add_lora,
    fit_curve,
    rhythm_layer_indices,
)
from model.errors import ConditioningError


def test_embedding_manager_maps_clip_to_t5_width():
    manager = EmbeddingManager(clip_dim=12, text_dim=16, num_layers=3)
    assert manager(torch.randn(2, 5, 12)).shape == (2, 5, 16)
    assert sum(isinstance(layer, torch.nn.Linear) for layer in manager.layers) == 3
    with pytest.raises(ValueError):
        EmbeddingManager(12, 16, num_layers=0)


def test_rhythm_conditioner_starts_at_exactly_zero_and_chains_its_layers():
    rhythm = RhythmConditioner(hidden_size=8, num_blocks=3)
    curve = torch.rand(2, 10)
    assert all(torch.equal(features, torch.zeros(2, 10, 8)) for features in rhythm(curve))
    assert all(torch.equal(layer.weight, torch.eye(8)) for layer in rhythm.block_layers)

    torch.nn.init.normal_(rhythm.projector.weight)
    torch.nn.init.normal_(rhythm.block_layers[1].weight)
    first, second, third = rhythm(curve)
    expected_first = rhythm.projector(curve[..., None])  # L_1 is still the identity
    torch.testing.assert_close(first, expected_first)
    torch.testing.assert_close(second, rhythm.block_layers[1](first))
    torch.testing.assert_close(third, second)  # L_3 is still the identity


@pytest.mark.parametrize(
    ("num_layers", "expected"),
    [
        (48, [0, 4, 8, 12, 16, 20, 24, 28, 32]),  # musicgen-medium and -large: 12 blocks, 9 conditioned
        (24, [0, 4, 8, 12]),  # musicgen-small: 6 blocks, 4 conditioned
        (12, [0, 4]),
    ],
)
def test_rhythm_goes_to_the_first_layer_of_the_first_three_quarters_of_the_blocks(num_layers, expected):
    assert rhythm_layer_indices(num_layers) == expected


def test_rhythm_layer_choice_refuses_layers_that_do_not_form_blocks():
    with pytest.raises(ConditioningError, match="blocks of 4"):
        rhythm_layer_indices(10)
    with pytest.raises(ConditioningError, match="no block"):
        rhythm_layer_indices(4)


def test_fit_curve_cuts_or_pads_with_no_change():
    curve = torch.tensor([[0.5, 0.0, 0.25, 0.0]])
    assert torch.equal(fit_curve(curve, 2), curve[:, :2])
    assert torch.equal(fit_curve(curve, 6), torch.tensor([[0.5, 0.0, 0.25, 0.0, 0.0, 0.0]]))


def test_block_condition_follows_positions_and_leaves_the_unconditional_half_alone():
    features = torch.arange(2 * 6 * 3, dtype=torch.float32).reshape(2, 6, 3)
    hidden = torch.randn(2, 2, 3)
    torch.testing.assert_close(_add_block_condition(features, hidden, 3), hidden + features[:, 3:5])

    guided = torch.randn(4, 1, 3)  # [conditional 2 | unconditional 2]
    out = _add_block_condition(features, guided, 5)
    torch.testing.assert_close(out[:2], guided[:2] + features[:, 5:6])
    assert torch.equal(out[2:], guided[2:])

    with pytest.raises(ConditioningError, match="covers 6 positions"):
        _add_block_condition(features, hidden, 5)
    with pytest.raises(ConditioningError, match="3 rows"):
        _add_block_condition(features, torch.randn(3, 1, 3), 0)


def tiny_t5() -> T5EncoderModel:
    torch.manual_seed(0)
    return T5EncoderModel(T5Config(vocab_size=20, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_heads=2)).eval()


def test_lora_adds_zero_initialised_adapters_and_freezes_the_rest():
    encoder = tiny_t5()
    embeds = torch.randn(1, 3, 16)
    before = encoder(inputs_embeds=embeds).last_hidden_state
    adapters = add_lora(encoder, rank=4)
    assert len(adapters) == 2 * 2 * 2  # 2 layers x (q, v) x (A, B)
    assert {name for name, p in encoder.named_parameters() if p.requires_grad} == {
        name for name, _ in encoder.named_parameters() if "lora_" in name
    }
    torch.testing.assert_close(encoder(inputs_embeds=embeds).last_hidden_state, before)  # B starts at 0
    with pytest.raises(ConditioningError, match="LoRA targets"):
        add_lora(tiny_t5(), target_modules=("nope",))
