"""Audio tokens of each clip's music for the MusicGen backbone, cached per clip and model id.

In: a clip's `music.flac` (44.1 kHz stereo from the clip stage; any rate and channel count work) and
a mono MusicGen checkpoint (`MusicgenForConditionalGeneration`, a hub id or a local folder), of which
only the EnCodec `audio_encoder` is kept: the hub repositories hold one checkpoint (text encoder,
audio encoder, decoder under one `config.json`), so there is no separate EnCodec to load.
Out: codes `[K, T]` int16 (int32 for codebooks past 32768 entries), K = the decoder's codebooks
(4 for musicgen-small), T = ceil(samples at the codec's rate / its hop) = duration_s x frame_rate_hz
(60 s at 50 Hz: 3000, one per value of the rhythm curve).

The music is down-mixed to mono (the mean of the channels, as audiocraft does) and resampled with
soxr to the codec's sampling rate, read from the checkpoint's config (32 kHz for musicgen-small);
it is encoded at the codec's smallest bandwidth, as MusicGen's own `generate` encodes audio prompts.
Clips are encoded in batches of equal length (no padding, so a code never depends on its batch).

Cached: `features/<clip_id>/codes-<model slug>.safetensors` (see `model.cache`).
`apply_delay_pattern` lays codes out as MusicGen's decoder reads them (codebook k delayed by k steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm.auto import tqdm
from transformers import EncodecModel, MusicgenForConditionalGeneration

from dvmset.errors import ReasonCode
from dvmset.storage import DataRoot
from manifests.music_rhythm import resample_mono
from model.cache import cache_path, read_cache, write_cache
from model.errors import FeatureError
from model.weights import load_model

DEFAULT_MUSICGEN_MODEL_ID = "facebook/musicgen-medium"  # the paper's backbone (24.79M trainable parameters)
CODES_VERSION = "musicgen-codes/1"
CACHE_KIND = "codes"
DEFAULT_BATCH_SIZE = 4  # clips per EnCodec forward pass (60 s at 32 kHz each)


@dataclass(frozen=True, eq=False)
class AudioCodec:
    """MusicGen's EnCodec and the numbers the rest of the model needs from its checkpoint."""

    encoder: EncodecModel
    model_id: str
    sampling_rate_hz: int
    frame_rate_hz: int
    num_codebooks: int
    codebook_size: int
    pad_token_id: int
    device: torch.device

    @property
    def codes_dtype(self) -> torch.dtype:
        return torch.int16 if self.codebook_size <= 2**15 else torch.int32


def load_audio_codec(
    model_id: str = DEFAULT_MUSICGEN_MODEL_ID, model_dir: Path | None = None, device: str | None = None
) -> AudioCodec:
    """Load a mono MusicGen checkpoint and keep its audio encoder; raises `WeightsNotFoundError` when
    the checkpoint cannot be found or lacks the audio encoder's weights."""
    torch_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    musicgen = load_model(MusicgenForConditionalGeneration, model_id, model_dir, required_prefix="audio_encoder.")
    config = musicgen.config
    if config.decoder.audio_channels != 1:
        raise ValueError(f"{model_id!r} is a stereo MusicGen; only mono checkpoints are supported")
    return AudioCodec(
        encoder=musicgen.audio_encoder.to(torch_device).eval(),
        model_id=model_id,
        sampling_rate_hz=int(config.audio_encoder.sampling_rate),
        frame_rate_hz=int(config.audio_encoder.frame_rate),
        num_codebooks=int(config.decoder.num_codebooks),
        codebook_size=int(config.audio_encoder.codebook_size),
        pad_token_id=int(config.decoder.pad_token_id),
        device=torch_device,
    )


def read_music(music_path: Path, sampling_rate_hz: int) -> np.ndarray:
    """A music file as mono float32 `[S]` at `sampling_rate_hz` (channel mean, then soxr resampling)."""
    return MusicAt(music_path)(sampling_rate_hz)


class MusicAt:
    """A music file decoded once as mono (channel mean); called with a rate, the samples `[S]` float32
    at that rate (soxr HQ), each rate resampled once. FeatureError when the file cannot be read or is empty."""

    def __init__(self, music_path: Path):
        try:
            audio, self.file_rate_hz = sf.read(music_path, dtype="float32", always_2d=True)  # [S, C]
        except (sf.LibsndfileError, OSError) as error:
            raise FeatureError(ReasonCode.DECODE_ERROR, f"cannot read {music_path}: {error}") from error
        if audio.shape[0] == 0:
            raise FeatureError(ReasonCode.EMPTY_FILE, f"{music_path} holds no samples")
        self._at = {self.file_rate_hz: audio.mean(axis=1)}

    def __call__(self, sampling_rate_hz: int) -> np.ndarray:
        if sampling_rate_hz not in self._at:
            self._at[sampling_rate_hz] = resample_mono(self._at[self.file_rate_hz], self.file_rate_hz, sampling_rate_hz)
        return self._at[sampling_rate_hz]


@torch.inference_mode()
def encode_waveforms(codec: AudioCodec, waveforms: torch.Tensor) -> torch.Tensor:
    """Mono waveforms `[B, S]` at the codec's rate -> codes `[B, K, T]`, T = ceil(S / hop)."""
    output = codec.encoder.encode(waveforms[:, None, :].to(codec.device), return_dict=True)
    codes = output.audio_codes  # [chunks, B, K, T]
    if codes.shape[0] != 1 or codes.shape[2] != codec.num_codebooks:
        raise ValueError(
            f"EnCodec of {codec.model_id!r} gave codes of shape {tuple(codes.shape)}; expected one chunk of "
            f"{codec.num_codebooks} codebooks (chunk_length_s must be unset)"
        )
    return codes[0].to(device="cpu", dtype=codec.codes_dtype)


def codes_path(data_root: DataRoot, clip_id: str, model_id: str) -> Path:
    """Where `music_codes` caches a clip's codes for `model_id`."""
    return cache_path(data_root, clip_id, CACHE_KIND, model_id)


def load_cached_music_codes(data_root: DataRoot, clip_id: str, model_id: str) -> torch.Tensor | None:
    """The cached codes `[K, T]` of `clip_id` for `model_id`, or None; needs no model (for training)."""
    tensors = read_cache(codes_path(data_root, clip_id, model_id), _cache_metadata(model_id))
    return None if tensors is None else tensors["codes"]


def music_codes(data_root: DataRoot, clip_id: str, codec: AudioCodec) -> torch.Tensor:
    """The codes `[K, T]` of `clip_id`'s music from the cache, else encoded and cached."""
    cached = load_cached_music_codes(data_root, clip_id, codec.model_id)
    if cached is not None:
        return cached
    waveform = read_music(data_root.clip_music_path(clip_id), codec.sampling_rate_hz)
    codes = encode_waveforms(codec, torch.from_numpy(waveform)[None])[0]
    _write_codes(data_root, codec, clip_id, codes)
    return codes


def music_codes_for_clips(
    data_root: DataRoot,
    clip_ids: Sequence[str],
    codec: AudioCodec,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[Path]:
    """Encode (or find cached) the music of every clip, up to `batch_size` clips of equal length at a
    time, with a progress bar; returns the cache files in the order of `clip_ids`. The first failing
    clip raises; the batches before it stay cached, so a re-run goes on from there."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    pending: list[tuple[str, np.ndarray]] = []
    for clip_id in tqdm(clip_ids, desc=f"MusicGen codes ({codec.model_id})", unit="clip"):
        if load_cached_music_codes(data_root, clip_id, codec.model_id) is not None:
            continue
        waveform = read_music(data_root.clip_music_path(clip_id), codec.sampling_rate_hz)
        if pending and (len(pending) == batch_size or pending[0][1].shape != waveform.shape):
            _encode_and_cache(data_root, codec, pending)
            pending = []
        pending.append((clip_id, waveform))
    if pending:
        _encode_and_cache(data_root, codec, pending)
    return [codes_path(data_root, clip_id, codec.model_id) for clip_id in clip_ids]


def apply_delay_pattern(codes: torch.Tensor, pad_id: int) -> torch.Tensor:
    """MusicGen's codebook delay: codes `[B, K, T]` -> `[B, K, T + K - 1]`, codebook k shifted right by
    k steps, `pad_id` before and after. Equal to MusicGen's `build_delay_pattern_mask` on
    `[pad | codes]` with `max_length = T + K`, without its first column (all `pad_id`)."""
    batch, num_codebooks, num_steps = codes.shape
    delayed = codes.new_full((batch, num_codebooks, num_steps + num_codebooks - 1), pad_id)
    for codebook in range(num_codebooks):
        delayed[:, codebook, codebook : codebook + num_steps] = codes[:, codebook]
    return delayed


def _encode_and_cache(data_root: DataRoot, codec: AudioCodec, batch: list[tuple[str, np.ndarray]]) -> None:
    codes = encode_waveforms(codec, torch.from_numpy(np.stack([waveform for _, waveform in batch])))
    for (clip_id, _), clip_codes in zip(batch, codes, strict=True):
        _write_codes(data_root, codec, clip_id, clip_codes)


def _write_codes(data_root: DataRoot, codec: AudioCodec, clip_id: str, codes: torch.Tensor) -> None:
    write_cache(codes_path(data_root, clip_id, codec.model_id), {"codes": codes}, _cache_metadata(codec.model_id))


def _cache_metadata(model_id: str) -> dict[str, str]:
    return {"model_id": model_id, "version": CODES_VERSION}
