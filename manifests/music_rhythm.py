"""Beats and tempo of music: the one implementation the manifest's summary columns and the model's rhythm
features (`model.music_features`) share. Torch-free (numpy, librosa, soxr).

In: mono audio `[S]` float32 at `ANALYSIS_RATE_HZ` (22,050 Hz, librosa's analysis rate); a file's samples
are brought there by `resample_mono` (the channel mean, then soxr HQ, as `model.tokens.read_music` does),
so a clip's manifest row and its cached model features hold the same tempo and beats.
Out: `onset_envelope`: the log-mel spectrogram (128 bands, hop `HOP` = 256 samples, 11.6 ms) in dB
against its peak and librosa's onset strength (spectral flux) over it; `track_beats`: librosa's beat
tracker on that strength (global tempo in BPM, beat times in s); `beat_summary`: the tempo and beat count
the manifest records (tempo 0 and no beats for silence or an empty file).
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
import soxr

ANALYSIS_RATE_HZ = 22_050
HOP = 256  # 11.6 ms: beats land within about a hop of the onsets
MEL_BANDS_FOR_ONSETS = 128


@dataclass(frozen=True)
class BeatSummary:
    """What the manifest records of a clip's rhythm: librosa's global tempo and its number of beats."""

    tempo_bpm: float
    beat_count: int


def resample_mono(mono: np.ndarray, from_rate_hz: int, to_rate_hz: int) -> np.ndarray:
    """Mono samples `[S]` at `from_rate_hz` -> float32 `[S']` at `to_rate_hz` (soxr HQ; unchanged at equal rates)."""
    if from_rate_hz == to_rate_hz:
        return np.asarray(mono, dtype=np.float32)
    return soxr.resample(mono, from_rate_hz, to_rate_hz, quality="HQ").astype(np.float32, copy=False)


def onset_envelope(mono: np.ndarray, sample_rate_hz: int = ANALYSIS_RATE_HZ) -> tuple[np.ndarray, np.ndarray]:
    """(log-mel `[128, F]` in dB against its peak, onset strength `[F]`), F frames of `HOP` samples."""
    mel_power = librosa.feature.melspectrogram(
        y=np.asarray(mono, dtype=np.float32), sr=sample_rate_hz, hop_length=HOP, n_mels=MEL_BANDS_FOR_ONSETS
    )
    mel_db = librosa.power_to_db(mel_power, ref=np.max)
    return mel_db, librosa.onset.onset_strength(S=mel_db, sr=sample_rate_hz)


def track_beats(strength: np.ndarray, sample_rate_hz: int = ANALYSIS_RATE_HZ) -> tuple[float, np.ndarray]:
    """(global tempo in BPM, beat times `[N]` float64 in s) of an onset strength `[F]` on `HOP`'s frames."""
    tempo, beat_frames = librosa.beat.beat_track(onset_envelope=strength, sr=sample_rate_hz, hop_length=HOP)
    beats_s = librosa.frames_to_time(beat_frames, sr=sample_rate_hz, hop_length=HOP).astype(np.float64)
    return float(np.atleast_1d(tempo)[0]), beats_s


def beat_summary(mono: np.ndarray, sample_rate_hz: int = ANALYSIS_RATE_HZ) -> BeatSummary:
    """The tempo and beat count of mono audio `[S]` (as `model.music_features` finds them; none of no samples)."""
    if np.asarray(mono).size == 0:
        return BeatSummary(0.0, 0)
    tempo_bpm, beats_s = track_beats(onset_envelope(mono, sample_rate_hz)[1], sample_rate_hz)
    return BeatSummary(tempo_bpm, int(beats_s.size))
