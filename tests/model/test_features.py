"""CLIP features and the rhythm curve (paper eq. (4), Algorithm 1), with a tiny random CLIP saved by
`save_pretrained` and generated test-pattern videos with hard cuts."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from dvmset.errors import DvmsetError, ReasonCode
from dvmset.ids import make_clip_id
from dvmset.storage import VIDEO_FILE
from dvmset.tools import MissingToolError
from model import features, video
from model.errors import FeatureError, WeightsNotFoundError
from model.features import (
    distance_sequence,
    extract_visual_features,
    features_path,
    load_cached_visual_features,
    load_clip_encoder,
    rhythm_curve,
    visual_features,
    visual_features_for_clips,
)
from tests.support.generated_media import make_cut_video
from tests.support.tiny_models import TINY_CLIP_EMBED_DIM, TINY_CLIP_IMAGE_PX, save_tiny_clip
from tests.support.training_manifests import CLIP_ID, place

VIDEO_S = 6.0  # cuts at 2 s and 4 s: frames 50 and 100 at 25 fps, entries 100 and 200 at 50 Hz


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    return make_cut_video(tmp_path_factory.mktemp("video") / "cuts.mp4", VIDEO_S, fps=30, cut_every_s=2.0)


@pytest.fixture(scope="module")
def encoder(tiny_clip_dir):
    return load_clip_encoder(str(tiny_clip_dir), device="cpu")


@pytest.fixture
def decode_calls(monkeypatch):
    """Counts the decodes (calls of `video.iter_frame_batches`) made through the features module."""
    calls = []
    real = video.iter_frame_batches

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(video, "iter_frame_batches", counting)
    return calls


# -- the rhythm curve, by hand -------------------------------------------------------------------


def test_rhythm_curve_hand_computed():
    frame_a = [[1.0, 0.0], [0.0, 1.0]]
    frame_b = [[0.0, 1.0], [1.0, 0.0]]  # each patch orthogonal to frame_a's: cos 0
    frame_c = [[3.0, 0.0], [1.0, 0.0]]  # vs frame_b: cos 0 and 1, whatever the norms: mean 0.5
    tokens = torch.tensor([frame_a, frame_a, frame_b, frame_c])  # [T=4, P=2, H=2]
    expected = [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.5, 0.0]  # 1 prepended -> 0; identical -> 0; orthogonal -> 1
    assert rhythm_curve(tokens).tolist() == pytest.approx(expected, abs=1e-6)


def test_rhythm_curve_opposite_patches_and_single_frame():
    frame = torch.tensor([[1.0, 2.0], [-3.0, 0.5]])
    assert rhythm_curve(torch.stack([frame, -frame])).tolist() == pytest.approx([0.0, 0.0, 2.0, 0.0], abs=1e-6)
    assert rhythm_curve(frame[None]).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        rhythm_curve(torch.zeros(0, 2, 2))


def test_rhythm_curve_matches_a_loop_over_patches():
    tokens = torch.randn(7, 5, 3, generator=torch.Generator().manual_seed(1))
    array = tokens.numpy().astype(np.float64)
    expected = [0.0, 0.0]
    for i in range(1, 7):
        cosines = [
            array[i - 1, j] @ array[i, j] / np.linalg.norm(array[i - 1, j]) / np.linalg.norm(array[i, j])
            for j in range(5)
        ]
        expected += [1.0 - float(np.mean(cosines)), 0.0]
    curve = rhythm_curve(tokens)
    assert curve.shape == (14,)
    assert curve.tolist() == pytest.approx(expected, abs=1e-5)
    assert distance_sequence(torch.tensor([0.25])).tolist() == [0.0, 0.0, 0.75, 0.0]


# -- decoding --------------------------------------------------------------------------------------


def test_scaled_size_keeps_the_aspect_and_never_scales_up():
    assert video.scaled_size(1280, 720, 224) == (398, 224)
    assert video.scaled_size(720, 1280, 224) == (224, 398)
    assert video.scaled_size(200, 100, 224) == (200, 100)


def test_frames_are_decoded_at_25_fps_with_the_short_edge_scaled(cut_video):
    batches = list(video.iter_frame_batches(cut_video, 25, 32, batch_size=64))
    assert [batch.shape for batch in batches] == [(64, 32, 42, 3), (64, 32, 42, 3), (22, 32, 42, 3)]
    assert batches[0].dtype == np.uint8
    native = next(video.iter_frame_batches(cut_video, 25, 480, batch_size=4))
    assert native.shape == (4, 240, 320, 3)


def test_a_file_that_is_not_a_video_is_a_decode_error(tmp_path):
    bogus = tmp_path / "video.mp4"
    bogus.write_bytes(b"not a video at all" * 100)
    with pytest.raises(FeatureError) as caught:
        list(video.iter_frame_batches(bogus, 25, 32, batch_size=8))
    assert caught.value.reason is ReasonCode.DECODE_ERROR


def test_missing_ffmpeg_is_a_clear_error(cut_video, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(MissingToolError, match="ffprobe is not installed"):
        list(video.iter_frame_batches(cut_video, 25, 32, batch_size=8))


# -- features --------------------------------------------------------------------------------------


def test_feature_shapes_and_rates_and_the_cuts_stand_out(cut_video, encoder):
    result = extract_visual_features(cut_video, encoder, batch_size=16)
    assert result.global_embeds_1fps.shape == (6, TINY_CLIP_EMBED_DIM)  # 1 fps
    assert result.num_frames_25fps == 150
    assert result.rhythm_curve_50hz.shape == (300,)  # 50 Hz: one value per MusicGen token
    assert result.rhythm_curve_50hz[1::2].abs().max() == 0
    assert result.rhythm_curve_50hz[0] == 0
    cut_entries = torch.topk(result.rhythm_curve_50hz, 2).indices.sort().values.tolist()
    assert cut_entries == [100, 200]  # the distance between frames 49|50 and 99|100


@torch.inference_mode()
def test_batched_features_equal_one_pass_over_all_frames(cut_video, encoder):
    frames = np.concatenate(list(video.iter_frame_batches(cut_video, 25, TINY_CLIP_IMAGE_PX, batch_size=1000)))
    pixels = encoder.processor(images=list(frames), return_tensors="pt", input_data_format="channels_last")
    output = encoder.model(pixel_values=pixels["pixel_values"])
    result = extract_visual_features(cut_video, encoder, batch_size=7)  # 7: batches straddle whole seconds
    torch.testing.assert_close(result.global_embeds_1fps, output.image_embeds[::25])
    torch.testing.assert_close(result.rhythm_curve_50hz, rhythm_curve(output.last_hidden_state[:, 1:]))
    # the CLS token is what CLIP projects into image_embeds: projected, it gives them back
    assert result.cls_1fps.shape == (6, encoder.model.config.hidden_size)
    torch.testing.assert_close(encoder.model.visual_projection(result.cls_1fps), result.global_embeds_1fps)
    assert result.semantic("cls") is result.cls_1fps and result.semantic() is result.global_embeds_1fps


def test_features_are_cached_and_a_second_call_does_not_decode(cut_video, encoder, data_root, decode_calls):
    place(cut_video, data_root, CLIP_ID, VIDEO_FILE)
    first = visual_features(data_root, CLIP_ID, encoder, batch_size=32)
    path = features_path(data_root, CLIP_ID, encoder.model_id)
    assert path.parent == data_root.features_dir(CLIP_ID) and path.name.startswith("clip-")
    mtime_ns = path.stat().st_mtime_ns
    assert len(decode_calls) == 1
    second = visual_features(data_root, CLIP_ID, encoder, batch_size=32)
    assert len(decode_calls) == 1
    assert path.stat().st_mtime_ns == mtime_ns
    torch.testing.assert_close(second.global_embeds_1fps, first.global_embeds_1fps)
    torch.testing.assert_close(second.rhythm_curve_50hz, first.rhythm_curve_50hz)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_another_model_id_computes_anew(cut_video, encoder, data_root, decode_calls, tmp_path):
    place(cut_video, data_root, CLIP_ID, VIDEO_FILE)
    first = visual_features(data_root, CLIP_ID, encoder)
    other = load_clip_encoder(str(save_tiny_clip(tmp_path / "other-clip", seed=1)), device="cpu")
    second = visual_features(data_root, CLIP_ID, other)
    assert len(decode_calls) == 2
    assert features_path(data_root, CLIP_ID, other.model_id) != features_path(data_root, CLIP_ID, encoder.model_id)
    assert len(list(data_root.features_dir(CLIP_ID).iterdir())) == 2
    assert not torch.allclose(first.global_embeds_1fps, second.global_embeds_1fps)
    cached = load_cached_visual_features(data_root, CLIP_ID, encoder.model_id)
    torch.testing.assert_close(cached.rhythm_curve_50hz, first.rhythm_curve_50hz)


def test_a_cache_of_another_format_version_is_recomputed(cut_video, encoder, data_root, decode_calls, monkeypatch):
    place(cut_video, data_root, CLIP_ID, VIDEO_FILE)
    visual_features(data_root, CLIP_ID, encoder)
    monkeypatch.setattr(features, "FEATURES_VERSION", "clip-features/999")
    assert load_cached_visual_features(data_root, CLIP_ID, encoder.model_id) is None
    visual_features(data_root, CLIP_ID, encoder)
    assert len(decode_calls) == 2


def test_features_for_a_batch_of_clips(cut_video, encoder, data_root, decode_calls):
    clip_ids = [make_clip_id("local:" + "b" * 40, start_s) for start_s in (60.0, 0.0)]
    for clip_id in clip_ids:
        place(cut_video, data_root, clip_id, VIDEO_FILE)
    paths = visual_features_for_clips(data_root, clip_ids, encoder, batch_size=50)
    assert paths == [features_path(data_root, clip_id, encoder.model_id) for clip_id in clip_ids]
    assert all(path.is_file() for path in paths)
    assert visual_features_for_clips(data_root, clip_ids, encoder) == paths
    assert len(decode_calls) == 2


# -- weights ---------------------------------------------------------------------------------------


def test_missing_hub_weights_offline_say_where_we_looked(offline_hub):
    with pytest.raises(WeightsNotFoundError) as caught:
        load_clip_encoder("dvmset-test/no-such-clip", device="cpu")
    message = str(caught.value)
    assert isinstance(caught.value, DvmsetError)
    assert "'dvmset-test/no-such-clip'" in message
    assert str(offline_hub / "models--dvmset-test--no-such-clip") in message
    assert "HF_HUB_OFFLINE" in message
    assert "hf download dvmset-test/no-such-clip" in message and "DVMSET_MODEL_DIR" in message


def test_a_missing_local_folder_is_named(tmp_path, offline_hub):
    absent = tmp_path / "models" / "clip"
    with pytest.raises(WeightsNotFoundError, match=re.escape(f"local folder {absent} (absent)")) as caught:
        load_clip_encoder(str(absent), device="cpu")
    assert str(offline_hub) not in str(caught.value).split("To provide it")[0]


def test_a_folder_without_weights_is_refused(tiny_clip_dir, tmp_path):
    folder = tmp_path / "no-weights"
    folder.mkdir()
    shutil.copy(tiny_clip_dir / "config.json", folder)
    with pytest.raises(WeightsNotFoundError, match="present but incomplete"):
        load_clip_encoder(str(folder), device="cpu")


def test_a_checkpoint_without_the_weights_of_this_architecture_is_refused(tiny_clip_dir, tmp_path):
    folder = tmp_path / "not-clip"
    folder.mkdir()
    shutil.copy(tiny_clip_dir / "config.json", folder)
    save_file({"text_model.embeddings.weight": torch.zeros(2, 2)}, folder / "model.safetensors")
    with pytest.raises(WeightsNotFoundError, match="weights are missing"):
        load_clip_encoder(str(folder), device="cpu")


def test_a_hub_id_is_found_in_the_local_model_folder(tiny_clip_dir, tmp_path):
    model_dir = tmp_path / "models"
    shutil.copytree(tiny_clip_dir, model_dir / "acme" / "tiny-clip")
    loaded = load_clip_encoder("acme/tiny-clip", model_dir=model_dir, device="cpu")
    assert loaded.model_id == "acme/tiny-clip"
    assert loaded.short_edge_px == TINY_CLIP_IMAGE_PX
