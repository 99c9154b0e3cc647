"""Loudness stage: bring a clip's music to a target integrated loudness under a true-peak ceiling.

In: samples `[T, C]` (float, full scale 1.0) and their sample rate, or a sound file. Out: a
`NormalizedAudio` (float32 samples `[T, C]`, the gain applied, loudness and peaks before and
after) and, for `normalize_file`, a 24-bit FLAC at the same sample rate.

Loudness is ITU-R BS.1770 integrated loudness (pyloudnorm); 6 channels are read as 5.1 in WAV
order (L, R, C, LFE, Ls, Rs) and the LFE is left out of the loudness, as BS.1770 says. The true
peak is the largest magnitude of the 4x oversampled signal over all channels (BS.1770-4 Annex 2).
Where the gain would push the true peak over the ceiling, a look-ahead limiter lowers the gain
around those peaks only, so nothing clips and the loudness may end a little under target.
Clips that are silent, quieter than `silence_lufs`, or shorter than one 400 ms gating block
come back unchanged, flagged `silent`. Samples that are not `[T, C]` with 1 to 6 channels, or
that hold NaN or infinity, raise `ValueError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import lfilter, resample_poly

from dvmset.storage import atomic_path

STAGE_VERSION = "loudness/1"

DEFAULT_TARGET_LUFS = -14.0
DEFAULT_TRUE_PEAK_CEILING_DBTP = -1.0
DEFAULT_SILENCE_LUFS = -70.0

_OVERSAMPLING = 4  # BS.1770-4 Annex 2, for sample rates up to 48 kHz
_LOOKAHEAD_S = 0.005  # the limiter's attack: gain ramps down over this much before a peak
_RELEASE_S = 0.05  # time constant of the gain's recovery after a peak
_LFE_INDEX_5_1 = 3  # WAV / SMPTE channel order
_PEAK_BLOCK = 1 << 15  # samples oversampled at once by the true-peak meter
_FILTER_CONTEXT = 32  # samples either side of a block: resample_poly's 81-tap filter reaches 10
_ABSOLUTE_GATE_LUFS = -70.0  # BS.1770-4 gating
_RELATIVE_GATE_LU = -10.0
_BLOCK_OFFSET_DB = 0.691  # BS.1770's -0.691 dB: block loudness = 10 log10(mean square) - 0.691


@dataclass(frozen=True)
class LoudnessMeasurement:
    """Integrated loudness (-inf for silence or under one gating block) and peaks, in dB."""

    integrated_lufs: float
    true_peak_dbtp: float
    sample_peak_dbfs: float


@dataclass(frozen=True)
class NormalizedAudio:
    """The stage's output: `samples` is float32 `[T, C]`; `gain_db` the static gain applied."""

    samples: np.ndarray
    gain_db: float
    before: LoudnessMeasurement
    after: LoudnessMeasurement
    limited: bool
    silent: bool


def measure(samples: np.ndarray, sample_rate_hz: int) -> LoudnessMeasurement:
    """Integrated loudness, true peak and sample peak of `samples` `[T, C]`."""
    audio = _checked(samples)
    return _measurement(audio, _gated_lufs(_block_lufs(audio, sample_rate_hz)), _true_peak_envelope(audio))


def normalize(
    samples: np.ndarray,
    sample_rate_hz: int,
    *,
    target_lufs: float = DEFAULT_TARGET_LUFS,
    true_peak_ceiling_dbtp: float = DEFAULT_TRUE_PEAK_CEILING_DBTP,
    silence_lufs: float = DEFAULT_SILENCE_LUFS,
) -> NormalizedAudio:
    """Gain `samples` `[T, C]` to `target_lufs`, limiting true peaks to the ceiling (module doc)."""
    audio = _checked(samples)
    envelope = _true_peak_envelope(audio)
    block_lufs = _block_lufs(audio, sample_rate_hz)
    before = _measurement(audio, _gated_lufs(block_lufs), envelope)
    if not before.integrated_lufs >= silence_lufs:  # -inf, or quieter than the threshold
        return NormalizedAudio(audio.copy(), 0.0, before, before, limited=False, silent=True)
    gain_db = target_lufs - before.integrated_lufs
    gain = np.float32(10.0 ** (gain_db / 20.0))
    gained, envelope = audio * gain, envelope * gain  # the true peak scales with the gain
    ceiling = 10.0 ** (true_peak_ceiling_dbtp / 20.0)
    limited = bool(envelope.max() > ceiling)
    if limited:
        gained, envelope = _limit(gained, envelope, ceiling, sample_rate_hz)
        after_lufs = _gated_lufs(_block_lufs(gained, sample_rate_hz))
    else:  # every block's loudness moves by the gain: only the gates are applied again
        after_lufs = _gated_lufs(block_lufs + gain_db)
    after = _measurement(gained, after_lufs, envelope)
    return NormalizedAudio(gained.astype(np.float32, copy=False), gain_db, before, after, limited, silent=False)


def normalize_file(
    in_path: Path,
    out_path: Path,
    *,
    target_lufs: float = DEFAULT_TARGET_LUFS,
    true_peak_ceiling_dbtp: float = DEFAULT_TRUE_PEAK_CEILING_DBTP,
    silence_lufs: float = DEFAULT_SILENCE_LUFS,
) -> NormalizedAudio:
    """Normalize the sound file `in_path` into a 24-bit FLAC at `out_path`, written atomically."""
    samples, sample_rate_hz = soundfile.read(in_path, dtype="float32", always_2d=True)
    result = normalize(
        samples,
        sample_rate_hz,
        target_lufs=target_lufs,
        true_peak_ceiling_dbtp=true_peak_ceiling_dbtp,
        silence_lufs=silence_lufs,
    )
    with atomic_path(out_path) as temp:
        soundfile.write(temp, result.samples, sample_rate_hz, subtype="PCM_24", format="FLAC")
    return result


def _checked(samples: np.ndarray) -> np.ndarray:
    """`samples` as float32 `[T, C]`; refuses other shapes, non-finite values, and over 6 channels."""
    audio = np.asarray(samples, dtype=np.float32)
    if audio.ndim != 2 or not 1 <= audio.shape[1] <= 6:
        raise ValueError(f"expected samples [T, C] with 1 to 6 channels, got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise ValueError("samples hold NaN or infinite values")
    return audio


def _measurement(audio: np.ndarray, integrated_lufs: float, envelope: np.ndarray) -> LoudnessMeasurement:
    """The measurement of `audio` `[T, C]` whose loudness and true-peak envelope `[T]` are known."""
    return LoudnessMeasurement(
        integrated_lufs=integrated_lufs,
        true_peak_dbtp=_db(float(envelope.max(initial=0.0))),
        sample_peak_dbfs=_db(float(np.abs(audio).max(initial=0.0))),
    )


def _block_lufs(audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """`[B]` BS.1770 loudness of each 400 ms gating block (75 % overlap) of `audio` `[T, C]`, from
    pyloudnorm; empty when under one block."""
    meter = pyloudnorm.Meter(sample_rate_hz)
    if audio.shape[0] < meter.block_size * sample_rate_hz:
        return np.empty(0)
    if audio.shape[1] == 6:
        audio = np.delete(audio, _LFE_INDEX_5_1, axis=1)
    meter.integrated_loudness(audio.astype(np.float64))
    return np.asarray(meter.blockwise_loudness, dtype=np.float64)


def _gated_lufs(block_lufs: np.ndarray) -> float:
    """BS.1770 integrated loudness from the blocks' loudness `[B]`, gated as pyloudnorm gates them
    (absolute -70 LUFS, then relative -10 LU); -inf when no block passes or there is none."""
    with np.errstate(divide="ignore"):
        power = 10.0 ** ((block_lufs + _BLOCK_OFFSET_DB) / 10.0)  # the channel-weighted mean square
        absolute = block_lufs >= _ABSOLUTE_GATE_LUFS
        if not absolute.any():
            return float("-inf")
        relative_gate_lufs = float(10.0 * np.log10(power[absolute].mean())) - _BLOCK_OFFSET_DB + _RELATIVE_GATE_LU
        gated = (block_lufs > relative_gate_lufs) & (block_lufs > _ABSOLUTE_GATE_LUFS)
        return float(10.0 * np.log10(power[gated].mean())) - _BLOCK_OFFSET_DB if gated.any() else float("-inf")


def _true_peak_envelope(audio: np.ndarray) -> np.ndarray:
    """`[T]` float32: the largest magnitude of the 4x oversampled signal in [t, t+1), over channels.

    Oversampled block by block, each with `_FILTER_CONTEXT` samples of the signal around it (more
    than the filter reaches), so the result is the whole signal's and memory stays small."""
    frames = audio.shape[0]
    envelope = np.empty(frames, dtype=np.float32)
    for start in range(0, frames, _PEAK_BLOCK):
        stop = min(frames, start + _PEAK_BLOCK)
        low, high = max(0, start - _FILTER_CONTEXT), min(frames, stop + _FILTER_CONTEXT)
        oversampled = resample_poly(audio[low:high], _OVERSAMPLING, 1, axis=0)
        kept = np.abs(oversampled[_OVERSAMPLING * (start - low) : _OVERSAMPLING * (stop - low)])
        envelope[start:stop] = kept.reshape(stop - start, -1).max(axis=1)
    return envelope


def _limit(
    audio: np.ndarray, envelope: np.ndarray, ceiling: float, sample_rate_hz: int
) -> tuple[np.ndarray, np.ndarray]:
    """Lower the gain of `audio` `[T, C]` where its true-peak envelope `[T]` passes `ceiling`.

    The needed gain is held at its minimum over the look-ahead window, then averaged over that
    window: the gain ramps down before each peak and is at most the needed gain on it. Recovery
    follows a one-pole release. A last static trim covers what the oversampling filter spreads
    from a changing gain into neighbouring samples. Returns the limited audio `[T, C]` and its
    envelope `[T]`.
    """
    lookahead = max(1, round(_LOOKAHEAD_S * sample_rate_hz))
    needed = ceiling / np.maximum(envelope, ceiling)  # 1 where under the ceiling
    held = minimum_filter1d(needed, lookahead, origin=-(lookahead // 2), mode="nearest")
    ramped = uniform_filter1d(held, lookahead, origin=(lookahead - 1) // 2, mode="nearest")
    pole = np.exp(-1.0 / (_RELEASE_S * sample_rate_hz))
    released, _ = lfilter([1.0 - pole], [1.0, -pole], ramped, zi=[pole])
    limited = audio * np.minimum(ramped, released)[:, None]
    envelope = _true_peak_envelope(limited)
    trim = min(1.0, ceiling / envelope.max())
    return limited * trim, envelope * trim


def _db(amplitude: float) -> float:
    """20 log10 of a linear amplitude; -inf for 0, without a warning."""
    return 20.0 * float(np.log10(amplitude)) if amplitude > 0.0 else float("-inf")
