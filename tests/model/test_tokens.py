"""MusicGen audio tokens and the codebook delay pattern, with a tiny random MusicGen saved by
`save_pretrained` (its EnCodec runs at 8 kHz and 25 codes a second, so nothing real is hard-coded)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from transformers import MusicgenForConditionalGeneration

from dvmset.errors import ReasonCode
from dvmset.ids import make_clip_id
from dvmset.storage import MUSIC_FILE
from model import tokens
from model.errors import FeatureError, WeightsNotFoundError
from model.tokens import (
    apply_delay_pattern,
    codes_path,
    load_audio_codec,
    load_cached_music_codes,
    music_codes,
    music_codes_for_clips,
    read_music,
)
from tests.support.generated_media import make_tone
from tests.support.tiny_models import TINY_CODEBOOK_SIZE, TINY_CODEC_RATE_HZ, TINY_NUM_CODEBOOKS, save_tiny_musicgen
from tests.support.training_manifests import CLIP_ID, place

FRAME_RATE_HZ = 25  # the tiny EnCodec: 8000 Hz / hop 320


@pytest.fixture(scope="module")
def codec(tiny_musicgen_dir):
    return load_audio_codec(str(tiny_musicgen_dir), device="cpu")


@pytest.fixture(scope="module")
def tone_4s(tmp_path_factory):
    return make_tone(tmp_path_factory.mktemp("music") / "tone.flac", 4.0)


@pytest.fixture
def music_reads(monkeypatch):
    """Counts the music files read through the tokens module."""
    calls = []
    real = tokens.read_music

    def counting(path, sampling_rate_hz):
        calls.append(path)
        return real(path, sampling_rate_hz)

    monkeypatch.setattr(tokens, "read_music", counting)
    return calls


def test_the_codec_numbers_come_from_the_checkpoint_config(codec):
    assert codec.sampling_rate_hz == TINY_CODEC_RATE_HZ
    assert codec.frame_rate_hz == FRAME_RATE_HZ
    assert codec.num_codebooks == TINY_NUM_CODEBOOKS
    assert codec.pad_token_id == TINY_CODEBOOK_SIZE
    assert codec.codes_dtype == torch.int16


def test_music_is_mixed_to_mono_and_resampled_to_the_codec_rate(tone_4s):
    mono = read_music(tone_4s, TINY_CODEC_RATE_HZ)
    assert mono.shape == (4 * TINY_CODEC_RATE_HZ,) and mono.dtype == np.float32
    assert np.abs(mono[1000:-1000]).max() == pytest.approx(0.45, abs=0.01)  # mean of 0.5 and 0.4
    spectrum = np.abs(np.fft.rfft(mono))
    assert np.argmax(spectrum) * TINY_CODEC_RATE_HZ / mono.size == pytest.approx(440.0, abs=1.0)


def test_an_unreadable_music_file_is_a_decode_error(tmp_path):
    bogus = tmp_path / MUSIC_FILE
    bogus.write_bytes(b"not flac" * 50)
    with pytest.raises(FeatureError) as caught:
        read_music(bogus, TINY_CODEC_RATE_HZ)
    assert caught.value.reason is ReasonCode.DECODE_ERROR


def test_codes_have_one_step_per_codec_frame(codec, tone_4s, data_root, tiny_musicgen_dir):
    place(tone_4s, data_root, CLIP_ID, MUSIC_FILE)
    codes = music_codes(data_root, CLIP_ID, codec)
    assert codes.shape == (TINY_NUM_CODEBOOKS, 4 * FRAME_RATE_HZ)  # [K, duration_s x frame rate]
    assert codes.dtype == torch.int16
    assert 0 <= int(codes.min()) and int(codes.max()) < TINY_CODEBOOK_SIZE
    musicgen = MusicgenForConditionalGeneration.from_pretrained(tiny_musicgen_dir)
    waveform = torch.from_numpy(read_music(tone_4s, TINY_CODEC_RATE_HZ))[None, None]
    with torch.inference_mode():
        expected = musicgen.audio_encoder.encode(waveform, return_dict=True).audio_codes[0, 0]
    torch.testing.assert_close(codes.long(), expected)


def test_codes_are_cached_and_a_second_call_reads_no_music(codec, tone_4s, data_root, music_reads):
    place(tone_4s, data_root, CLIP_ID, MUSIC_FILE)
    first = music_codes(data_root, CLIP_ID, codec)
    path = codes_path(data_root, CLIP_ID, codec.model_id)
    assert path.parent == data_root.features_dir(CLIP_ID) and path.name.startswith("codes-")
    mtime_ns = path.stat().st_mtime_ns
    second = music_codes(data_root, CLIP_ID, codec)
    assert len(music_reads) == 1
    assert path.stat().st_mtime_ns == mtime_ns
    torch.testing.assert_close(second, first)
    assert music_codes_for_clips(data_root, [CLIP_ID], codec) == [path]
    assert len(music_reads) == 1


def test_another_model_id_encodes_anew(codec, tone_4s, data_root, music_reads, tiny_musicgen_dir, tmp_path):
    place(tone_4s, data_root, CLIP_ID, MUSIC_FILE)
    music_codes(data_root, CLIP_ID, codec)
    other = load_audio_codec(str(shutil.copytree(tiny_musicgen_dir, tmp_path / "other-musicgen")), device="cpu")
    music_codes(data_root, CLIP_ID, other)
    assert len(music_reads) == 2
    assert codes_path(data_root, CLIP_ID, other.model_id) != codes_path(data_root, CLIP_ID, codec.model_id)
    assert len(list(data_root.features_dir(CLIP_ID).iterdir())) == 2


def test_batches_of_clips_give_the_codes_of_single_clips(codec, data_root, tmp_path):
    durations_s = {"a": 4.0, "b": 4.0, "c": 3.0, "d": 4.0}  # c cannot share a batch with a, b or d
    clip_ids = []
    for index, (name, duration_s) in enumerate(durations_s.items()):
        clip_id = make_clip_id("local:" + name * 40, 0.0)
        tone = make_tone(tmp_path / f"{name}.flac", duration_s, frequency_hz=220.0 * (index + 1))
        place(tone, data_root, clip_id, MUSIC_FILE)
        clip_ids.append(clip_id)
    paths = music_codes_for_clips(data_root, clip_ids, codec, batch_size=2)
    assert paths == [codes_path(data_root, clip_id, codec.model_id) for clip_id in clip_ids]
    batched = [load_cached_music_codes(data_root, clip_id, codec.model_id) for clip_id in clip_ids]
    assert [codes.shape[1] for codes in batched] == [100, 100, 75, 100]
    for clip_id, codes in zip(clip_ids, batched):
        shutil.rmtree(data_root.features_dir(clip_id))
        torch.testing.assert_close(music_codes(data_root, clip_id, codec), codes)


def test_delay_pattern_by_hand():
    codes = torch.tensor([[[1, 2], [3, 4], [5, 6]]])  # [B=1, K=3, T=2]
    pad = 9
    expected = [[[1, 2, 9, 9], [9, 3, 4, 9], [9, 9, 5, 6]]]  # [B, K, T + K - 1]
    assert apply_delay_pattern(codes, pad).tolist() == expected


def test_delay_pattern_matches_musicgen_build_delay_pattern_mask(tiny_musicgen_dir):
    decoder = MusicgenForConditionalGeneration.from_pretrained(tiny_musicgen_dir).decoder
    pad = decoder.config.pad_token_id
    batch, num_steps = 3, 11
    generator = torch.Generator().manual_seed(0)
    codes = torch.randint(0, TINY_CODEBOOK_SIZE, (batch, TINY_NUM_CODEBOOKS, num_steps), generator=generator)
    with_start = torch.cat([torch.full((batch, TINY_NUM_CODEBOOKS, 1), pad), codes], dim=2)
    _, pattern = decoder.build_delay_pattern_mask(
        with_start.reshape(batch * TINY_NUM_CODEBOOKS, -1), pad_token_id=pad, max_length=num_steps + TINY_NUM_CODEBOOKS
    )
    pattern = pattern.reshape(batch, TINY_NUM_CODEBOOKS, -1)
    assert (pattern[:, :, 0] == pad).all()
    torch.testing.assert_close(apply_delay_pattern(codes, pad), pattern[:, :, 1:])


def test_missing_musicgen_weights_are_a_clear_error(offline_hub):
    with pytest.raises(WeightsNotFoundError) as caught:
        load_audio_codec("dvmset-test/no-such-musicgen", device="cpu")
    assert "'dvmset-test/no-such-musicgen'" in str(caught.value)
    assert str(offline_hub / "models--dvmset-test--no-such-musicgen") in str(caught.value)


def test_a_stereo_musicgen_is_refused(tmp_path):
    folder = save_tiny_musicgen(tmp_path / "stereo", audio_channels=2)
    with pytest.raises(ValueError, match="stereo"):
        load_audio_codec(str(folder), device="cpu")
