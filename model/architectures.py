"""The published MusicGen architectures as transformers configs, for models with random weights.

In: a size (`small`, `medium`, `large`: facebook/musicgen-<size>). Out: its `MusicgenConfig` (T5-base
text encoder; 32 kHz EnCodec, 4 codebooks of 2048 entries at 50 Hz; the decoder's width, depth and
heads as published), to build on the meta device and count parameters, or on a GPU to time a step.
Nothing is downloaded; these are never weights.
"""

from __future__ import annotations

from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

# size -> (decoder width, layers, attention heads); the feed-forward layers are 4x the width
MUSICGEN_DECODERS = {"small": (1024, 24, 16), "medium": (1536, 48, 24), "large": (2048, 48, 32)}


def musicgen_config(size: str = "medium") -> MusicgenConfig:
    """facebook/musicgen-`size`'s architecture (see the module docstring)."""
    if size not in MUSICGEN_DECODERS:
        raise ValueError(f"unknown MusicGen size {size!r}; sizes are {', '.join(MUSICGEN_DECODERS)}")
    width, layers, heads = MUSICGEN_DECODERS[size]
    text_encoder = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12)
    audio_encoder = EncodecConfig(
        sampling_rate=32000,
        upsampling_ratios=[8, 5, 4, 4],
        codebook_size=2048,
        num_filters=64,
        target_bandwidths=[2.2],
        use_causal_conv=False,
        norm_type="weight_norm",
        pad_mode="reflect",
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=2048,
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        ffn_dim=4 * width,
        max_position_embeddings=2048,
        num_codebooks=4,
        pad_token_id=2048,
        bos_token_id=2048,
    )
    return MusicgenConfig(text_encoder=text_encoder, audio_encoder=audio_encoder, decoder=decoder)
