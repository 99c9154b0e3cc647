"""Tiny random-weight models of the real architectures, saved in their real formats (`save_pretrained`),
for the model tests and the benchmarks: CLIP vision, MusicGen and CLAP, and the sizes of Cnn14 and
ImageBind. They are never weights of anything; no hub is reached."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    ClapAudioConfig,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    ClapTextConfig,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    EncodecConfig,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    T5Config,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from model.metrics.imagebind import ImageBindConfig

TINY_CLIP_IMAGE_PX = 32
TINY_CLIP_PATCH_PX = 8  # 16 patches
TINY_CLIP_EMBED_DIM = 16
TINY_CODEC_RATE_HZ = 8000  # not MusicGen's 32 kHz: the code must read the rate from the config
TINY_CODEC_HOP = 320  # prod of upsampling_ratios: 25 codes per second, not 50
TINY_NUM_CODEBOOKS = 4
TINY_CODEBOOK_SIZE = 64
TINY_DECODER_WIDTH = 24
TINY_CNN14_WIDTHS = (4, 8, 8, 16, 16, 32)
TINY_CNN14_CLASSES = 10
TINY_CLAP_MEL_BANDS = 16
TINY_CLAP_WINDOW_S = 2  # the feature extractor's max_length_s: 201 frames fit the tiny HTSAT's 256
# the huge model's head widths (80, 64) with one head, 2 blocks each, 16-wide embeddings
TINY_IMAGEBIND = ImageBindConfig(80, 2, 1, 64, 2, 1, 16)


def save_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A random CLIP vision tower (32 px images, 8 px patches) and its image processor, saved in `folder`."""
    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=TINY_CLIP_IMAGE_PX,
        patch_size=TINY_CLIP_PATCH_PX,
        projection_dim=TINY_CLIP_EMBED_DIM,
    )
    CLIPVisionModelWithProjection(config).save_pretrained(folder)
    crop_size = {"height": TINY_CLIP_IMAGE_PX, "width": TINY_CLIP_IMAGE_PX}
    CLIPImageProcessorPil(size={"shortest_edge": TINY_CLIP_IMAGE_PX}, crop_size=crop_size).save_pretrained(folder)
    return folder


def save_tiny_musicgen(folder: Path, audio_channels: int = 1, num_layers: int = 2, hidden_size: int = 16) -> Path:
    """A random MusicGen (tiny T5 16 wide, EnCodec at 8 kHz with 4 codebooks of 64 entries, a decoder of
    `num_layers` layers `hidden_size` wide: wider than T5 gives MusicGen a projector), saved in `folder`."""
    torch.manual_seed(0)
    text_encoder = T5Config(vocab_size=99, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2)
    audio_encoder = EncodecConfig(
        sampling_rate=TINY_CODEC_RATE_HZ,
        upsampling_ratios=[8, 5, 4, 2],
        codebook_size=TINY_CODEBOOK_SIZE,
        target_bandwidths=[TINY_NUM_CODEBOOKS * 25 * 6 / 1000],  # K x frame rate x log2(codebook size), kb/s
        hidden_size=16,
        num_filters=4,
        num_lstm_layers=1,
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=TINY_CODEBOOK_SIZE,
        max_position_embeddings=512,
        num_hidden_layers=num_layers,
        ffn_dim=32,
        num_attention_heads=2,
        hidden_size=hidden_size,
        num_codebooks=TINY_NUM_CODEBOOKS,
        pad_token_id=TINY_CODEBOOK_SIZE,
        bos_token_id=TINY_CODEBOOK_SIZE,
        audio_channels=audio_channels,
    )
    config = MusicgenConfig(text_encoder=text_encoder, audio_encoder=audio_encoder, decoder=decoder)
    MusicgenForConditionalGeneration(config).save_pretrained(folder)
    return folder


def save_tiny_clap(folder: Path) -> Path:
    """A random CLAP (HTSAT audio tower 2 layers, 8-wide projection) and its feature extractor, saved into
    `folder` with `save_pretrained`."""
    torch.manual_seed(0)
    audio = ClapAudioConfig(
        num_mel_bins=TINY_CLAP_MEL_BANDS,
        window_size=4,
        spec_size=64,
        patch_size=2,
        patch_stride=2,
        patch_embeds_hidden_size=8,
        hidden_size=16,
        depths=[1, 1],
        num_attention_heads=[2, 2],
        projection_dim=8,
        enable_fusion=False,
    )
    text = ClapTextConfig(
        vocab_size=99,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        projection_dim=8,
    )
    config = ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=8)
    ClapModel(config).save_pretrained(folder)
    ClapFeatureExtractor(
        feature_size=TINY_CLAP_MEL_BANDS, max_length_s=TINY_CLAP_WINDOW_S, truncation="rand_trunc"
    ).save_pretrained(folder)
    return folder
