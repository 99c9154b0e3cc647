"""VidMusician on a tiny random MusicGen: zero/identity initialisation, what trains, hook alignment, sizes.
The two-stage invariants (stage 2 at initialisation is stage 1; cached generation adds the rhythm where
teacher forcing does) are checked for every option: rhythm source (`clip-distance`, `predicted-odf`) and
affect (off, on), with the conditions built from video features by the model's own `video_conditions`."""

from __future__ import annotations

import pytest
import torch
from transformers import MusicgenForConditionalGeneration

from model.architectures import musicgen_config
from model.backbone import MusicgenBackbone, load_backbone
from model.dataset import curve_at_frames
from model.errors import ConditioningError
from model.features import VisualFeatures
from model.rhythm_predictor import PredictorConfig, RhythmPredictor
from model.tokens import apply_delay_pattern
from model.video_conditions import AFFECT_DIM, CLIP_DISTANCE, PREDICTED_ODF
from model.vidmusician import ConditioningConfig, VidMusician, trainable_parameter_counts
from tests.support.tiny_models import TINY_CODEBOOK_SIZE, TINY_NUM_CODEBOOKS

CLIP_DIM = 12
BATCH = 2
SECONDS = 3
FRAMES = 20  # music frames per clip in the tests
PAPER_TRAINABLE = 24.79e6
OPTIONS = [  # (rhythm source, affect)
    pytest.param((CLIP_DISTANCE, False), id="clip-distance"),
    pytest.param((PREDICTED_ODF, False), id="predicted-odf"),
    pytest.param((CLIP_DISTANCE, True), id="clip-distance+affect"),
    pytest.param((PREDICTED_ODF, True), id="predicted-odf+affect"),
]


@pytest.fixture
def model(tiny_conditioned_musicgen_dir, request) -> VidMusician:
    """The stage-1 model of the option in `request.param` (default: clip-distance, affect off); a predicted-odf
    model gets a random rhythm predictor (reading the affect when it is on)."""
    rhythm_source, affect = getattr(request, "param", (CLIP_DISTANCE, False))
    torch.manual_seed(0)
    predictor = None
    if rhythm_source == PREDICTED_ODF:
        predictor = RhythmPredictor(PredictorConfig(CLIP_DIM, use_affect=affect, hidden=8)).eval()
    backbone = load_backbone(str(tiny_conditioned_musicgen_dir), device="cpu")
    clip_dim = CLIP_DIM + (AFFECT_DIM if affect else 0)
    return VidMusician(backbone, clip_dim, ConditioningConfig(affect=affect), predictor).eval()


@pytest.fixture
def batch(model) -> dict[str, torch.Tensor]:
    """Global embeddings (the second clip one second shorter), delayed labels and a rhythm curve, the
    conditions made by `model.video_conditions` from random video features (and affect rows)."""
    generator = torch.Generator().manual_seed(7)
    codes = torch.randint(0, TINY_CODEBOOK_SIZE, (BATCH, TINY_NUM_CODEBOOKS, FRAMES), generator=generator)
    mask = torch.ones(BATCH, SECONDS, dtype=torch.long)
    mask[1, -1] = 0
    conditions = model.video_conditions
    embeds, curves = [], []
    for _ in range(BATCH):
        features = VisualFeatures(
            torch.randn(SECONDS, CLIP_DIM, generator=generator), torch.rand(2 * FRAMES, generator=generator), "test"
        )  # the 50 Hz curve of FRAMES frames of the tiny 25 Hz codec
        affect = torch.rand(SECONDS, AFFECT_DIM, generator=generator)
        embeds.append(conditions.semantic(features, affect))
        curves.append(curve_at_frames(conditions.rhythm_curve_50hz(features, affect), FRAMES))
    return {
        "global_embeds": torch.stack(embeds),
        "global_mask": mask,
        "labels": apply_delay_pattern(codes, TINY_CODEBOOK_SIZE).transpose(1, 2),  # [B, T + K - 1, K]
        "rhythm_curve": torch.stack(curves),
    }


def make_rhythm_nontrivial(model: VidMusician) -> None:
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        model.rhythm.projector.weight.copy_(torch.randn(model.rhythm.projector.weight.shape, generator=generator))
        model.rhythm.projector.bias.copy_(torch.randn(model.rhythm.projector.bias.shape, generator=generator))
        for layer in model.rhythm.block_layers:
            layer.weight.add_(0.3 * torch.randn(layer.weight.shape, generator=generator))


@pytest.mark.parametrize("model", OPTIONS, indirect=True)
@pytest.mark.parametrize("guidance_scale", [None, 3.0])
def test_stage2_at_init_equals_stage1_exactly(model, batch, guidance_scale):
    semantic = {key: batch[key] for key in ("global_embeds", "global_mask")}
    stage1_logits, stage1_loss = model(**semantic, labels=batch["labels"])
    stage1_music = model.generate(**semantic, num_steps=12, guidance_scale=guidance_scale, do_sample=False)

    model.add_rhythm()
    stage2_logits, stage2_loss = model(**semantic, labels=batch["labels"], rhythm_curve=batch["rhythm_curve"])
    stage2_music = model.generate(
        **semantic, num_steps=12, rhythm_curve=batch["rhythm_curve"], guidance_scale=guidance_scale, do_sample=False
    )
    assert torch.equal(stage1_logits, stage2_logits)
    assert torch.equal(stage1_loss, stage2_loss)
    assert torch.equal(stage1_music.step_logits, stage2_music.step_logits)
    assert torch.equal(stage1_music.audio, stage2_music.audio)


def test_stage2_from_a_stage1_checkpoint_starts_where_stage1_ended(model, batch, tiny_conditioned_musicgen_dir):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    semantic = {key: value for key, value in batch.items() if key != "rhythm_curve"}
    for _ in range(2):
        optimizer.zero_grad()
        model(**semantic)[1].backward()
        optimizer.step()
    with torch.no_grad():
        stage1_logits, _ = model(**semantic)

    torch.manual_seed(1)  # another random initialisation of E and LoRA, overwritten by the checkpoint
    stage2 = VidMusician(load_backbone(str(tiny_conditioned_musicgen_dir), device="cpu"), clip_dim=CLIP_DIM).eval()
    stage2.add_rhythm()
    stage2.load_trainable_state_dict(model.trainable_state_dict())
    with torch.no_grad():
        stage2_logits, _ = stage2(**batch)
    assert torch.equal(stage1_logits, stage2_logits)

    with pytest.raises(ConditioningError, match="missing"):
        stage2.load_trainable_state_dict({})
    with pytest.raises(ConditioningError, match="unknown"):
        model.load_trainable_state_dict(stage2.trainable_state_dict())  # rhythm weights in a stage-1 model


def test_only_the_conditioning_trains_and_the_backbone_stays_bit_identical(model, batch):
    model.add_rhythm()
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert trainable, "nothing to train"
    for name in trainable:
        assert name.startswith(("embedding_manager.", "rhythm.", "backbone.model.enc_to_dec_proj.")) or (
            name.startswith("backbone.model.text_encoder.") and ".lora_" in name
        ), name
    frozen_before = {name: p.detach().clone() for name, p in model.named_parameters() if not p.requires_grad}
    trainable_before = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}

    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        _, loss = model(**batch)
        loss.backward()
        for name, parameter in model.named_parameters():
            assert (parameter.grad is not None) == (name in trainable), name
        optimizer.step()

    for name, parameter in model.named_parameters():
        if name in trainable:
            assert not torch.equal(parameter, trainable_before[name]), f"{name} did not train"
        else:
            assert torch.equal(parameter, frozen_before[name]), f"frozen {name} changed"


def test_train_mode_keeps_the_frozen_backbone_at_inference(model, batch):
    model.add_rhythm()
    dropouts = [m for m in model.backbone.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]
    assert dropouts, "the tiny MusicGen should carry dropout, as the real configs do (0.1)"
    model.train()
    assert model.training and model.embedding_manager.training and model.rhythm.training
    assert not any(module.training for module in model.backbone.modules())
    make_rhythm_nontrivial(model)
    with torch.no_grad():
        first, second = model(**batch)[1], model(**batch)[1]
    assert torch.equal(first, second)  # no dropout anywhere: the same batch, the same loss


@pytest.mark.parametrize("model", OPTIONS, indirect=True)
@pytest.mark.parametrize("guidance_scale", [None, 3.0])
def test_cached_generation_adds_the_rhythm_at_the_same_positions_as_teacher_forcing(model, batch, guidance_scale):
    model.add_rhythm()
    make_rhythm_nontrivial(model)
    semantic = {key: batch[key] for key in ("global_embeds", "global_mask")}
    curve = batch["rhythm_curve"]
    num_steps = FRAMES + TINY_NUM_CODEBOOKS - 1  # past the curve: the delay tail reads 0
    generated = model.generate(**semantic, num_steps=num_steps, rhythm_curve=curve, guidance_scale=guidance_scale)

    with torch.no_grad():
        fed = generated.decoder_input_ids
        teacher_forced = model.decoder_logits(**semantic, decoder_input_ids=fed, rhythm_curve=curve)
        text_embeds = model.embedding_manager(batch["global_embeds"])
        without_rhythm, _ = model.backbone.logits(text_embeds, batch["global_mask"], decoder_input_ids=fed)
    rows = BATCH * TINY_NUM_CODEBOOKS
    torch.testing.assert_close(generated.step_logits[:rows], teacher_forced, rtol=0, atol=1e-5)
    assert (teacher_forced - without_rhythm).abs().max() > 1e-2  # the rhythm condition does change the logits

    if guidance_scale is not None:  # the unconditional half: no semantic (mask 0) and no rhythm condition
        with torch.no_grad():
            unconditional, _ = model.backbone.logits(
                text_embeds, torch.zeros_like(batch["global_mask"]), decoder_input_ids=fed
            )
        torch.testing.assert_close(generated.step_logits[rows:], unconditional, rtol=0, atol=1e-5)


def test_a_shifted_rhythm_curve_changes_the_logits_from_that_position_on(model, batch):
    """Alignment is by absolute position: changing d at position 9 leaves positions 0..8 untouched."""
    model.add_rhythm()
    make_rhythm_nontrivial(model)
    changed = batch["rhythm_curve"].clone()
    changed[:, 9] += 1.0
    with torch.no_grad():
        original, _ = model(**batch)
        moved, _ = model(**{**batch, "rhythm_curve": changed})
    assert torch.equal(original[:, :9], moved[:, :9])
    assert (original[:, 9:] - moved[:, 9:]).abs().max() > 1e-3


def test_the_rhythm_curve_is_required_in_stage2_and_refused_in_stage1(model, batch):
    with pytest.raises(ConditioningError, match="no rhythm module"):
        model(**batch)
    model.add_rhythm()
    with pytest.raises(ConditioningError, match="needs a rhythm curve"):
        model(**{key: value for key, value in batch.items() if key != "rhythm_curve"})
    with pytest.raises(ConditioningError, match="already installed"):
        model.add_rhythm()


def test_trainable_parameter_counts_by_module(model):
    stage1 = trainable_parameter_counts(model)
    model.add_rhythm()
    stage2 = trainable_parameter_counts(model)
    print(f"\ntiny VidMusician trainable parameters: stage 1 {stage1}, stage 2 {stage2}")
    # E: 12 -> 16 -> 16; LoRA r=8 on q, v of one T5 layer (16 -> 8); P: 16 -> 24; O: 1 -> 24; L_1, L_2: 24 -> 24
    assert stage1 == {
        "embedding_manager": 12 * 16 + 16 + 16 * 16 + 16,
        "t5_lora": 2 * (8 * 16 + 8 * 8),
        "projector": 16 * 24 + 24,
        "rhythm_projector": 0,
        "rhythm_layers": 0,
        "total": 480 + 384 + 408,
    }
    assert stage2["rhythm_projector"] == 24 + 24
    assert stage2["rhythm_layers"] == 2 * (24 * 24 + 24)
    assert stage2["total"] == stage1["total"] + 48 + 1200
    assert set(model.trainable_state_dict()) == {n for n, p in model.named_parameters() if p.requires_grad}


def test_musicgen_medium_lands_near_the_papers_trainable_parameter_count():
    """musicgen-medium (48 layers, width 1536, T5-base) on the meta device, with a 512-wide CLIP (ViT-B/32)
    and the default conditioning sizes: within 10% of the 24.79M the paper reports."""
    config = musicgen_config("medium")
    with torch.device("meta"):
        model = VidMusician(MusicgenBackbone(MusicgenForConditionalGeneration(config)), clip_dim=512)
        model.add_rhythm()
    counts = trainable_parameter_counts(model)
    print(f"\nmusicgen-medium VidMusician trainable parameters: {counts}")
    assert counts["rhythm_layers"] == 9 * (1536 * 1536 + 1536)
    assert abs(counts["total"] - PAPER_TRAINABLE) / PAPER_TRAINABLE < 0.10
