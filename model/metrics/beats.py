"""Beats Coverage Score (BCS) and Beats Hit Score (BHS) of the dance-to-music literature.

Definition used (Zhu et al., "Quantized GAN for Complex Music Generation from Dance Videos"
(D2M-GAN), ECCV 2022, section 4.1, and its released evaluation script; Lee et al., "Dancing to
Music", NeurIPS 2019, define the scores for dance motion): both audio files are cut into bins of
`bin_s` seconds (1 s); a bin holds a "beat" when librosa's onset detector
(`librosa.onset.onset_detect(wait=1, delta=0.2, pre_avg=1, post_avg=1, post_max=1)`, at 22,050 Hz)
finds an onset in it. With B_t the reference bins that hold a beat, B_g the generated bins that
hold a beat and B_a the bins that hold a beat in both:

    BCS = B_g / B_t        BHS = B_a / B_t

The generated sequence is compared over the bins both files have (the shorter length). BCS can
exceed 1 (a generated track with more onsets than the reference); both are None when the reference
has no onset. LORIS (Yu et al., 2023) changes this to 5 Hz bins and BCS = B_a / B_g; pass
`bin_s=0.2` for its bins, but its BCS is another quantity and is not computed here.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np

ONSET_SAMPLE_RATE_HZ = 22_050
BIN_S = 1.0
ONSET_DETECTOR = (
    f"librosa {librosa.__version__} onset.onset_detect(wait=1, delta=0.2, pre_avg=1, post_avg=1, post_max=1)"
)


@dataclass(frozen=True)
class BeatScores:
    """One pair's beat bins: `reference_beats` (B_t), `generated_beats` (B_g), `hit_beats` (B_a)."""

    reference_beats: int
    generated_beats: int
    hit_beats: int

    @property
    def coverage(self) -> float | None:
        """BCS = B_g / B_t; None when the reference has no beat."""
        return self.generated_beats / self.reference_beats if self.reference_beats else None

    @property
    def hit(self) -> float | None:
        """BHS = B_a / B_t; None when the reference has no beat."""
        return self.hit_beats / self.reference_beats if self.reference_beats else None


def onset_times_s(mono: np.ndarray, sample_rate_hz: int = ONSET_SAMPLE_RATE_HZ) -> np.ndarray:
    """Onset times in seconds of mono audio `[S]` (the D2M-GAN detector settings)."""
    return librosa.onset.onset_detect(
        y=np.asarray(mono, dtype=np.float32),
        sr=sample_rate_hz,
        wait=1,
        delta=0.2,
        pre_avg=1,
        post_avg=1,
        post_max=1,
        units="time",
    )


def beat_bins(onsets_s: np.ndarray, duration_s: float, bin_s: float = BIN_S) -> np.ndarray:
    """[ceil(duration_s / bin_s)] bool: which bins of `bin_s` seconds hold at least one onset."""
    bins = np.zeros(int(np.ceil(duration_s / bin_s - 1e-9)), dtype=bool)
    indices = np.floor(np.asarray(onsets_s, dtype=np.float64) / bin_s).astype(int)
    bins[indices[(indices >= 0) & (indices < bins.size)]] = True
    return bins


def beat_scores(reference_bins: np.ndarray, generated_bins: np.ndarray) -> BeatScores:
    """B_t, B_g and B_a over the bins both sequences have."""
    shared = min(reference_bins.size, generated_bins.size)
    reference, generated = reference_bins[:shared], generated_bins[:shared]
    return BeatScores(
        reference_beats=int(np.count_nonzero(reference)),
        generated_beats=int(np.count_nonzero(generated)),
        hit_beats=int(np.count_nonzero(reference & generated)),
    )


def audio_beat_scores(
    reference: np.ndarray, generated: np.ndarray, sample_rate_hz: int = ONSET_SAMPLE_RATE_HZ, bin_s: float = BIN_S
) -> BeatScores:
    """BCS/BHS counts of two mono signals `[S]` at `sample_rate_hz`."""
    bins = [
        beat_bins(onset_times_s(audio, sample_rate_hz), audio.size / sample_rate_hz, bin_s)
        for audio in (reference, generated)
    ]
    return beat_scores(*bins)
