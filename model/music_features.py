"""Rhythm representations of a clip's music (Diff-V2M's and VeM's inputs), cached per clip.

In: a clip's `music.flac` (any rate and channel count; read as mono at `ANALYSIS_RATE_HZ`, 22,050 Hz,
librosa's analysis rate). Out: `MusicFeatures`, for a clip of D seconds:
- `odf` `[ceil(D * ODF_RATE_HZ)]` float32: the low-resolution onset detection function. librosa's
  onset strength (spectral flux of the log-mel spectrogram, hop 256 = 11.6 ms) max-pooled into bins of
  1 / `ODF_RATE_HZ` s, then divided by the clip's largest bin (0..1). Diff-V2M finds a low-resolution
  ODF the most effective rhythm signal and its public code pools the onset strength to a low rate.
  `ODF_RATE_HZ` is 10: a bin of 100 ms still tells apart the sixteenth notes of music at 150 BPM and
  every beat up to 600 BPM, while the curve stays smooth enough to predict from video (VidMusician's
  own rhythm curve is per video frame); max-pooling keeps an onset's peak in its bin.
- `tempogram` `[ceil(D * TEMPOGRAM_RATE_HZ), TEMPOGRAM_LAGS]` float32: librosa's autocorrelation
  tempogram of the onset strength, averaged into 1 s frames, lags 0 .. TEMPOGRAM_LAGS - 1 hops
  (0 to about 2.2 s, i.e. tempi down to about 27 BPM).
- `mel` `[ceil(D * ODF_RATE_HZ), MEL_BANDS]` float32: a low-resolution log-mel spectrogram (dB
  against the clip's peak, floored at -80), averaged into the ODF's bins.
- `beats_s` `[N]` float64: librosa's beat tracker's beats; `tempo_bpm`: its global tempo (both from
  `manifests.music_rhythm`, which the manifest's `tempo_bpm` and `beat_count` columns come from too).
- `downbeats_s` `[M]` float64: every 4th beat from the phase (0..3) whose beats carry the most
  low-frequency onset strength: a heuristic for music in 4/4 (librosa has no downbeat tracker);
  empty under 8 beats.

Cached: `features/<clip_id>/music-rhythm-<version slug>.safetensors` (see `model.cache`); a second call
reads it without decoding the music.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import torch

from dvmset.storage import DataRoot
from manifests.music_rhythm import ANALYSIS_RATE_HZ, HOP, onset_envelope, track_beats
from model.cache import cache_path, read_cache, write_cache
from model.tokens import read_music

MUSIC_FEATURES_VERSION = "music-rhythm/1"
CACHE_KIND = "music"
ODF_RATE_HZ = 10.0
TEMPOGRAM_RATE_HZ = 1.0
TEMPOGRAM_LAGS = 192
MEL_BANDS = 32
BEATS_PER_BAR = 4
_LOW_MELS = 40  # the lowest of 128 mel bands (up to about 1.2 kHz): downbeat phases are judged by their onsets
_MEL_FLOOR_DB = -80.0


@dataclass(frozen=True, eq=False)
class MusicFeatures:
    """A clip's rhythm representations (see the module docstring for shapes and rates)."""

    odf: np.ndarray
    tempogram: np.ndarray
    mel: np.ndarray
    beats_s: np.ndarray
    downbeats_s: np.ndarray
    tempo_bpm: float
    duration_s: float


def music_features(mono: np.ndarray, sample_rate_hz: int = ANALYSIS_RATE_HZ) -> MusicFeatures:
    """The rhythm representations of mono audio `[S]` at `sample_rate_hz` (pure: no files)."""
    mono = np.asarray(mono, dtype=np.float32)
    duration_s = mono.size / sample_rate_hz
    frame_rate_hz = sample_rate_hz / HOP
    mel_db, strength = onset_envelope(mono, sample_rate_hz)  # [128, F], [F]
    low_strength = librosa.onset.onset_strength(S=mel_db[:_LOW_MELS], sr=sample_rate_hz)
    bins = math.ceil(duration_s * ODF_RATE_HZ)
    odf = pool(strength, frame_rate_hz, ODF_RATE_HZ, bins, np.max)
    peak = float(odf.max()) if odf.size else 0.0
    tempogram = librosa.feature.tempogram(onset_envelope=strength, sr=sample_rate_hz, hop_length=HOP)
    tempo_bpm, beats_s = track_beats(strength, sample_rate_hz)
    coarse_power = librosa.feature.melspectrogram(y=mono, sr=sample_rate_hz, hop_length=HOP, n_mels=MEL_BANDS)
    coarse_mel = librosa.power_to_db(coarse_power, ref=np.max)
    return MusicFeatures(
        odf=(odf / peak if peak > 0 else odf).astype(np.float32),
        tempogram=pool(
            tempogram[:TEMPOGRAM_LAGS].T,
            frame_rate_hz,
            TEMPOGRAM_RATE_HZ,
            math.ceil(duration_s * TEMPOGRAM_RATE_HZ),
            np.mean,
        ).astype(np.float32),
        mel=np.maximum(pool(coarse_mel.T, frame_rate_hz, ODF_RATE_HZ, bins, np.mean), _MEL_FLOOR_DB).astype(np.float32),
        beats_s=beats_s,
        downbeats_s=downbeats_from(beats_s, low_strength, frame_rate_hz),
        tempo_bpm=tempo_bpm,
        duration_s=duration_s,
    )


def pool(
    frames: np.ndarray, frame_rate_hz: float, rate_hz: float, bins: int, reduce: Callable[..., np.ndarray] = np.max
) -> np.ndarray:
    """`frames` `[F, ...]` at `frame_rate_hz` reduced into `bins` bins of 1 / `rate_hz` s: bin b takes the
    frames whose time (index / frame_rate_hz) lies in [b / rate_hz, (b + 1) / rate_hz); an empty bin
    (past the frames' end) is 0."""
    frames = np.asarray(frames)
    out = np.zeros((bins, *frames.shape[1:]), dtype=np.float64)
    owner = np.floor(np.arange(frames.shape[0]) / frame_rate_hz * rate_hz + 1e-9).astype(int)
    for index in range(bins):
        members = frames[owner == index]
        if members.shape[0]:
            out[index] = reduce(members, axis=0)
    return out


def downbeats_from(beats_s: np.ndarray, low_strength: np.ndarray, frame_rate_hz: float) -> np.ndarray:
    """Every `BEATS_PER_BAR`th beat, from the phase whose beats have the most low-band onset strength
    (`low_strength` `[F]` at `frame_rate_hz`); empty under two bars of beats."""
    if beats_s.size < 2 * BEATS_PER_BAR:
        return np.zeros(0)
    frames = np.minimum(np.round(beats_s * frame_rate_hz).astype(int), low_strength.size - 1)
    weights = low_strength[frames]
    scores = [weights[phase::BEATS_PER_BAR].mean() for phase in range(BEATS_PER_BAR)]
    return beats_s[int(np.argmax(scores)) :: BEATS_PER_BAR].copy()


def music_features_path(data_root: DataRoot, clip_id: str) -> Path:
    return cache_path(data_root, clip_id, CACHE_KIND, MUSIC_FEATURES_VERSION)


def load_cached_music_features(data_root: DataRoot, clip_id: str) -> MusicFeatures | None:
    """The cached features of a clip, or None when they are not cached (reads no audio)."""
    cached = read_cache(music_features_path(data_root, clip_id), _metadata())
    if cached is None:
        return None
    scalars = cached.pop("scalars").tolist()
    arrays = {name: tensor.numpy() for name, tensor in cached.items()}
    return MusicFeatures(**arrays, tempo_bpm=scalars[0], duration_s=scalars[1])


def clip_music_features(data_root: DataRoot, clip_id: str) -> MusicFeatures:
    """The cached features of a clip's `music.flac`, computed and cached on the first call."""
    cached = load_cached_music_features(data_root, clip_id)
    if cached is not None:
        return cached
    features = music_features(read_music(data_root.clip_music_path(clip_id), ANALYSIS_RATE_HZ))
    tensors = {
        name: torch.from_numpy(np.ascontiguousarray(getattr(features, name)))
        for name in ("odf", "tempogram", "mel", "beats_s", "downbeats_s")
    }
    tensors["scalars"] = torch.tensor([features.tempo_bpm, features.duration_s], dtype=torch.float64)
    write_cache(music_features_path(data_root, clip_id), tensors, _metadata())
    return features


def music_features_for_clips(data_root: DataRoot, clip_ids: Sequence[str]) -> list[MusicFeatures]:
    """`clip_music_features` of every clip, in order."""
    return [clip_music_features(data_root, clip_id) for clip_id in clip_ids]


def _metadata() -> dict[str, str]:
    return {
        "model_id": MUSIC_FEATURES_VERSION,
        "version": MUSIC_FEATURES_VERSION,
        "odf_rate_hz": str(ODF_RATE_HZ),
        "tempogram_rate_hz": str(TEMPOGRAM_RATE_HZ),
        "mel_bands": str(MEL_BANDS),
    }
