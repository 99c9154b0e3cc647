"""ImageBind's vision and audio encoders: the official checkpoint's key names and shapes (the huge model built
on the meta device), a tiny random model through `save_imagebind` / `load_imagebind`, and the refusals."""

from __future__ import annotations

import re

import pytest
import torch

from dvmset.model_registry import IMAGEBIND_URL
from model.errors import WeightsNotFoundError
from model.metrics.imagebind import (
    HUGE,
    ImageBind,
    checkpoint_path,
    config_from_state,
    load_imagebind,
    vision_audio_subset,
)
from tests.support.tiny_models import TINY_IMAGEBIND

AUDIO_POSITIONS = "modality_preprocessors.audio.pos_embedding_helper.pos_embed"


def official_huge_shapes() -> dict[str, tuple[int, ...]]:
    """The vision and audio entries of `imagebind_huge.pth`, written out from the published architecture."""
    shapes: dict[str, tuple[int, ...]] = {
        "modality_preprocessors.vision.cls_token": (1, 1, 1280),
        "modality_preprocessors.vision.rgbt_stem.proj.1.weight": (1280, 3, 2, 14, 14),
        "modality_preprocessors.vision.pos_embedding_helper.pos_embed": (1, 257, 1280),
        "modality_trunks.vision.pre_transformer_layer.0.weight": (1280,),
        "modality_trunks.vision.pre_transformer_layer.0.bias": (1280,),
        "modality_heads.vision.0.weight": (1280,),
        "modality_heads.vision.0.bias": (1280,),
        "modality_heads.vision.2.weight": (1024, 1280),
        "modality_preprocessors.audio.cls_token": (1, 1, 768),
        "modality_preprocessors.audio.rgbt_stem.proj.weight": (768, 1, 16, 16),
        "modality_preprocessors.audio.rgbt_stem.norm_layer.weight": (768,),
        "modality_preprocessors.audio.rgbt_stem.norm_layer.bias": (768,),
        "modality_preprocessors.audio.pos_embedding_helper.pos_embed": (1, 229, 768),
        "modality_heads.audio.0.weight": (768,),
        "modality_heads.audio.0.bias": (768,),
        "modality_heads.audio.2.weight": (1024, 768),
        "modality_postprocessors.audio.1.log_logit_scale": (),
    }
    for modality, width, blocks in (("vision", 1280, 32), ("audio", 768, 12)):
        for block in range(blocks):
            prefix = f"modality_trunks.{modality}.blocks.{block}."
            shapes |= {
                prefix + "attn.in_proj_weight": (3 * width, width),
                prefix + "attn.in_proj_bias": (3 * width,),
                prefix + "attn.out_proj.weight": (width, width),
                prefix + "attn.out_proj.bias": (width,),
                prefix + "norm_1.weight": (width,),
                prefix + "norm_1.bias": (width,),
                prefix + "norm_2.weight": (width,),
                prefix + "norm_2.bias": (width,),
                prefix + "mlp.fc1.weight": (4 * width, width),
                prefix + "mlp.fc1.bias": (4 * width,),
                prefix + "mlp.fc2.weight": (width, 4 * width),
                prefix + "mlp.fc2.bias": (width,),
            }
            if modality == "audio":  # add_bias_kv
                shapes |= {prefix + "attn.bias_k": (1, 1, width), prefix + "attn.bias_v": (1, 1, width)}
    return shapes


def huge_state() -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return ImageBind(HUGE).state_dict()


def test_the_huge_model_has_every_key_and_shape_of_the_official_checkpoint():
    shapes = {key: tuple(value.shape) for key, value in huge_state().items()}
    assert shapes == official_huge_shapes()
    assert config_from_state(huge_state()) == HUGE


def test_a_tiny_model_has_the_huge_models_key_names_and_reads_back_its_config():
    def names(state):
        return {re.sub(r"\.blocks\.\d+\.", ".blocks.N.", key) for key in state}

    tiny = ImageBind(TINY_IMAGEBIND).state_dict()
    assert names(tiny) == names(huge_state())
    assert config_from_state(tiny) == TINY_IMAGEBIND


def test_a_saved_tiny_model_loads_strictly_and_embeds_as_before(tiny_imagebind_path):
    loaded = load_imagebind(str(tiny_imagebind_path))
    torch.manual_seed(0)
    original = ImageBind(TINY_IMAGEBIND).eval()  # the fixture's seed: the same weights
    views, mels = torch.randn(2, 3, 2, 224, 224), torch.randn(3, 1, 128, 204)
    with torch.inference_mode():
        assert torch.allclose(loaded.embed_vision(views), original.embed_vision(views), atol=1e-6)
        audio = loaded.embed_audio(mels)
        assert torch.allclose(audio, original.embed_audio(mels), atol=1e-6)
        assert torch.allclose(loaded.embed_vision(views).norm(dim=-1), torch.ones(2))
        assert torch.allclose(audio.norm(dim=-1), torch.full((3,), 20.0))  # the fixed logit scale
        image = views[:1, :, 0]
        repeated = image[:, :, None].repeat(1, 1, 2, 1, 1)
        assert torch.allclose(loaded.embed_vision(image), loaded.embed_vision(repeated), atol=1e-6)
    mean = loaded.mean_embedding("audio", mels)
    assert mean.shape == (16,) and torch.allclose(torch.as_tensor(mean).float(), audio.mean(dim=0), atol=1e-6)


def test_the_other_modalities_of_a_whole_model_file_are_ignored(tiny_imagebind_path, tmp_path):
    state = torch.load(tiny_imagebind_path, weights_only=True)
    state["modality_trunks.text.blocks.0.attn.in_proj_weight"] = torch.zeros(3, 1)
    state["modality_postprocessors.text.1.log_logit_scale"] = torch.tensor(2.0)
    torch.save(state, tmp_path / "whole.pth")
    assert set(load_imagebind(str(tmp_path / "whole.pth")).state_dict()) == set(vision_audio_subset(state))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda state: state.pop("modality_heads.audio.2.weight"), "missing modality_heads.audio.2.weight"),
        (
            lambda state: state.update({"modality_trunks.vision.blocks.0.attn.bias_k": torch.zeros(1, 1, 80)}),
            "unexpected modality_trunks.vision.blocks.0.attn.bias_k",
        ),
        (lambda state: state.update({AUDIO_POSITIONS: torch.zeros(1, 9, 64)}), f"size mismatch for {AUDIO_POSITIONS}"),
    ],
)
def test_a_checkpoint_that_does_not_fit_is_refused_naming_the_keys(tiny_imagebind_path, tmp_path, change, message):
    state = torch.load(tiny_imagebind_path, weights_only=True)
    change(state)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsNotFoundError, match=re.escape(message)):
        load_imagebind(str(tmp_path / "bad.pth"))


def test_a_file_that_is_not_a_checkpoint_and_a_missing_file_are_refused(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsNotFoundError, match="is not an ImageBind checkpoint"):
        load_imagebind(str(tmp_path / "junk.pth"))
    with pytest.raises(WeightsNotFoundError, match=re.escape(IMAGEBIND_URL)) as raised:
        load_imagebind("imagebind/imagebind_huge.pth", tmp_path)
    assert str(tmp_path / "imagebind" / "imagebind_huge.pth") in str(raised.value)


def test_a_relative_checkpoint_is_looked_for_under_the_model_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert checkpoint_path("imagebind/imagebind_huge.pth", tmp_path / "models") == (
        tmp_path / "models" / "imagebind" / "imagebind_huge.pth"
    )
    (tmp_path / "here.pth").write_bytes(b"")
    assert checkpoint_path("here.pth", tmp_path / "models").name == "here.pth"  # an existing file is taken as is
    assert checkpoint_path(str(tmp_path / "x.pth"), tmp_path / "models") == tmp_path / "x.pth"
