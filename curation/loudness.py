"""Loudness stage: bring a clip's music to a target integrated loudness under a true-peak ceiling.

In: samples `[T, C]` (float, full scale 1.0), their sample rate and the `[loudness]` settings
(`LoudnessConfig`: target, true-peak ceiling, silence threshold). Out: a `NormalizedAudio`
(float32 samples `[T, C]`, the gain applied, loudness and peaks before and after) and, for
`normalize_to_file`, also a 24-bit FLAC at the same sample rate.

Loudness is ITU-R BS.1770 integrated loudness (pyloudnorm); 6 channels are read as 5.1 in WAV
order (L, R, C, LFE, Ls, Rs) and the LFE is left out of the loudness, as BS.1770 says. The true
peak is the largest magnitude of the 4x oversampled signal over all channels (BS.1770-4 Annex 2),
interpolated with the 81-tap Kaiser-windowed sinc of `scipy.signal.resample_poly(x, 4, 1)`, run as
its three fractional phases in float32 (phase 0 is the sample itself, times the centre tap).
Where the gain would push the true peak over the ceiling, a look-ahead limiter lowers the gain
around those peaks only, so nothing clips and the loudness may end a little under target.
Peaks are only computed where they can matter: no interpolated value exceeds `_PHASE_L1` times the
largest sample within the filter's reach, so blocks whose bound stays under both the peak found so
far and the level the limiter acts on keep the bound instead. The true peaks reported are exact.
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
from scipy.signal import firwin, lfilter, upfirdn

from dvmset.config import LoudnessConfig
from dvmset.storage import atomic_path

STAGE_VERSION = "loudness/1"

_OVERSAMPLING = 4  # BS.1770-4 Annex 2, for sample rates up to 48 kHz
_LOOKAHEAD_S = 0.005  # the limiter's attack: gain ramps down over this much before a peak
_RELEASE_S = 0.05  # time constant of the gain's recovery after a peak
_LFE_INDEX_5_1 = 3  # WAV / SMPTE channel order
_PEAK_BLOCK = 1 << 15  # samples oversampled at once by the true-peak meter
_ENVELOPE_BLOCK = 256  # frames per block whose envelope is bounded, or computed
_GAINED_BLOCK = 64  # frames per block whose limited true peak is bounded, or computed
_INTERPOLATOR = firwin(81, 1.0 / _OVERSAMPLING, window=("kaiser", 5.0)) * _OVERSAMPLING  # resample_poly's
_REACH = 10  # input samples the interpolator reaches on either side: (81 - 1) / 2 / 4
_PHASE_0_GAIN = np.float32(_INTERPOLATOR[40])  # phase 0's other taps fall on the sinc's zeros
_PHASES = tuple(_INTERPOLATOR[p::_OVERSAMPLING].astype(np.float32) for p in range(1, _OVERSAMPLING))
_PHASE_L1 = float(max(np.abs(taps).sum() for taps in _PHASES))  # the largest gain on any input
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
    true_peak = float(_envelope_bounds(audio, floor=np.inf).max(initial=0.0))
    return _measurement(audio, _gated_lufs(_block_lufs(audio, sample_rate_hz)), true_peak)


def normalize(samples: np.ndarray, sample_rate_hz: int, settings: LoudnessConfig) -> NormalizedAudio:
    """Gain `samples` `[T, C]` to `settings.target_lufs`, limiting true peaks to its ceiling (module doc)."""
    audio = _checked(samples)
    block_lufs = _block_lufs(audio, sample_rate_hz)
    before_lufs = _gated_lufs(block_lufs)
    silent = not before_lufs >= settings.silence_lufs  # -inf, or quieter than the threshold
    gain_db = 0.0 if silent else settings.target_lufs - before_lufs
    gain = np.float32(10.0 ** (gain_db / 20.0))
    ceiling = 10.0 ** (settings.true_peak_ceiling_dbtp / 20.0)
    envelope = _envelope_bounds(audio, floor=ceiling / gain)  # exact wherever the limiter could act
    before = _measurement(audio, before_lufs, float(envelope.max(initial=0.0)))
    if silent:
        return NormalizedAudio(audio.copy(), 0.0, before, before, limited=False, silent=True)
    limited = bool(envelope.max() * gain > ceiling)  # the true peak scales with the gain
    if limited:
        gain_curve = _limiter_gain(envelope * gain, ceiling, sample_rate_hz) * gain
        gained, true_peak = _limit(audio, gain_curve, envelope, ceiling)
        after_lufs = _gated_lufs(_block_lufs(gained, sample_rate_hz))
    else:  # every block's loudness moves by the gain: only the gates are applied again
        gained, true_peak = audio * gain, float(envelope.max(initial=0.0) * gain)
        after_lufs = _gated_lufs(block_lufs + gain_db)
    after = _measurement(gained, after_lufs, true_peak)
    return NormalizedAudio(gained, gain_db, before, after, limited, silent=False)


def normalize_to_file(
    samples: np.ndarray, sample_rate_hz: int, out_path: Path, settings: LoudnessConfig
) -> NormalizedAudio:
    """Normalize `samples` `[T, C]` (`normalize`) and write them as a 24-bit FLAC at `out_path`, atomically."""
    result = normalize(samples, sample_rate_hz, settings)
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


def _measurement(audio: np.ndarray, integrated_lufs: float, true_peak: float) -> LoudnessMeasurement:
    """The measurement of `audio` `[T, C]` whose loudness and linear true peak are known."""
    return LoudnessMeasurement(
        integrated_lufs=integrated_lufs,
        true_peak_dbtp=_db(true_peak),
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
    """`[T]` float32: the largest magnitude of the 4x oversampled `audio` `[T, C]` in [t, t+1), over
    channels; oversampled `_PEAK_BLOCK` samples at a time, so memory stays small."""
    frames = audio.shape[0]
    envelope = np.empty(frames, dtype=np.float32)
    for start in range(0, frames, _PEAK_BLOCK):
        stop = min(frames, start + _PEAK_BLOCK)
        envelope[start:stop] = _span_envelope(audio, start, stop)
    return envelope


def _span_envelope(audio: np.ndarray, start: int, stop: int) -> np.ndarray:
    """`[stop - start]` float32: the true-peak envelope of `audio` `[T, C]` over frames [start, stop),
    reading the `_REACH` samples around the span (zeros beyond the signal's ends, as resample_poly)."""
    low, high = max(0, start - _REACH), min(audio.shape[0], stop + _REACH)
    envelope = np.zeros(stop - start, dtype=np.float32)
    for channel in range(audio.shape[1]):
        samples = np.ascontiguousarray(audio[low:high, channel], dtype=np.float32)
        np.maximum(envelope, np.abs(samples[start - low : stop - low]) * _PHASE_0_GAIN, out=envelope)
        for taps in _PHASES:  # full convolution: frame t's value sits _REACH entries later
            filtered = upfirdn(taps, samples)[start - low + _REACH : stop - low + _REACH]
            np.maximum(envelope, np.abs(filtered), out=envelope)
    return envelope


def _limiter_gain(envelope: np.ndarray, ceiling: float, sample_rate_hz: int) -> np.ndarray:
    """`[T]` float32 gain, at most 1, that brings the true-peak envelope `[T]` under `ceiling`.

    The needed gain is held at its minimum over the look-ahead window, then averaged over that
    window: the gain ramps down before each peak and is at most the needed gain on it. Recovery
    follows a one-pole release. Hold and ramp reach one window either way, so they are computed
    only on the spans around the frames that need a gain under 1; elsewhere they are exactly 1.
    """
    lookahead = max(1, round(_LOOKAHEAD_S * sample_rate_hz))
    needed = ceiling / np.maximum(envelope, ceiling)  # 1 where under the ceiling
    ramped = np.ones_like(needed)
    for start, stop in _spans(np.flatnonzero(needed < 1.0), 2 * lookahead, needed.shape[0]):
        held = minimum_filter1d(needed[start:stop], lookahead, origin=-(lookahead // 2), mode="nearest")
        ramped[start:stop] = uniform_filter1d(held, lookahead, origin=(lookahead - 1) // 2, mode="nearest")
    pole = np.exp(-1.0 / (_RELEASE_S * sample_rate_hz))
    released, _ = lfilter([1.0 - pole], [1.0, -pole], ramped, zi=[pole])
    return np.minimum(ramped, released).astype(np.float32)


def _spans(frames_in: np.ndarray, margin: int, frames: int) -> list[tuple[int, int]]:
    """Spans [start, stop) of [0, frames) that hold the sorted frame numbers `frames_in` `[K]` and
    `margin` frames either side of each; frames less than 4 margins apart share a span, so that
    the frames between two spans lie more than `margin` from both (the spans are merged more
    eagerly than that needs, to keep them few)."""
    if not frames_in.shape[0]:
        return []
    breaks = np.flatnonzero(np.diff(frames_in) > 4 * margin)
    firsts, lasts = frames_in[np.r_[0, breaks + 1]], frames_in[np.r_[breaks, frames_in.shape[0] - 1]]
    return [(max(0, int(a) - margin), min(frames, int(b) + margin + 1)) for a, b in zip(firsts, lasts)]


def _limit(audio: np.ndarray, gain_curve: np.ndarray, envelope: np.ndarray, ceiling: float) -> tuple[np.ndarray, float]:
    """`audio` `[T, C]` times `gain_curve` `[T]`, and the result's true peak; `envelope` `[T]` bounds
    `audio`'s (`_envelope_bounds`). A last static trim covers what the oversampling filter spreads
    from a changing gain into neighbouring samples."""
    limited = audio * gain_curve[:, None]
    true_peak = _gained_true_peak(limited, audio, gain_curve, envelope)
    if true_peak > ceiling:
        limited *= np.float32(ceiling / true_peak)
        true_peak = ceiling
    return limited, true_peak


def _envelope_bounds(audio: np.ndarray, floor: float) -> np.ndarray:
    """`[T]` float32 upper bounds on the true-peak envelope of `audio` `[T, C]`: the envelope itself
    in every `_ENVELOPE_BLOCK` block that could pass `floor` or hold the maximum (so the maximum is
    exact), elsewhere the block's bound, which passes neither.

    A block's bound is `_PHASE_L1` times the largest magnitude within the filter's reach. The block
    that holds the sample peak is computed first; its peak decides which others must be."""
    frames = audio.shape[0]
    magnitude = _block_max(_frame_magnitude(audio), _ENVELOPE_BLOCK)
    bound = (_PHASE_L1 * _near_max(magnitude) * (1.0 + 1e-5)).astype(np.float32)  # rounding slack
    top = np.argmax(magnitude)[None] if frames else np.empty(0, dtype=np.intp)  # holds the sample peak
    top_peak = float(_blocks_envelope(audio, top, _ENVELOPE_BLOCK).max(initial=0.0))
    exact = np.flatnonzero(bound > min(top_peak, floor))
    envelope = np.repeat(bound, _ENVELOPE_BLOCK)
    envelope.reshape(-1, _ENVELOPE_BLOCK)[exact] = _blocks_envelope(audio, exact, _ENVELOPE_BLOCK)
    return envelope[:frames]


def _gained_true_peak(gained: np.ndarray, audio: np.ndarray, gain_curve: np.ndarray, envelope: np.ndarray) -> float:
    """The true peak of `gained` = `audio` `[T, C]` times `gain_curve` `[T]`, given upper bounds
    `[T]` on `audio`'s envelope.

    Within the filter's reach of frame t the gain departs from `gain_curve[t]` by at most d, the
    smaller of the curve's range there and `_REACH` times its steepest step, so the interpolated
    value is at most `gain_curve[t] * envelope[t] + _PHASE_L1 * d * max |audio|`. The block with the
    highest bound is computed exactly; then every block whose bound passes that peak."""
    block = _GAINED_BLOCK
    steepest = _near_max(_block_max(np.abs(np.diff(gain_curve, append=gain_curve[-1:])), block))
    curve_range = _near_max(_block_max(gain_curve, block)) + _near_max(_block_max(-gain_curve, block))
    departure = np.minimum(curve_range, _REACH * steepest)  # the range: the largest minus the smallest
    spread = _PHASE_L1 * departure * _near_max(_block_max(_frame_magnitude(audio), block))
    bound = (_block_max(gain_curve * envelope, block) + spread) * (1.0 + 1e-5)  # rounding slack
    true_peak = float(_blocks_envelope(gained, np.argmax(bound)[None], block).max())
    rest = _blocks_envelope(gained, np.flatnonzero(bound > true_peak), block)
    return max(true_peak, float(rest.max(initial=0.0)))


def _blocks_envelope(audio: np.ndarray, blocks: np.ndarray, block_frames: int) -> np.ndarray:
    """`[K, block_frames]` float32: the true-peak envelope of `audio` `[T, C]` over the blocks numbered
    `blocks` `[K]`, 0 past the signal's end. The blocks, each with `_REACH` frames of context (zeros
    beyond the signal), are gathered and oversampled together, about `_PEAK_BLOCK` frames at once."""
    frames = audio.shape[0]
    envelope = np.empty((blocks.shape[0], block_frames), dtype=np.float32)
    per_batch = max(1, _PEAK_BLOCK // (block_frames + 2 * _REACH))
    for first in range(0, blocks.shape[0], per_batch):
        batch = blocks[first : first + per_batch]
        with_context = batch[:, None] * block_frames + np.arange(-_REACH, block_frames + _REACH)
        gathered = audio[np.clip(with_context, 0, frames - 1).ravel()]
        gathered[((with_context < 0) | (with_context >= frames)).ravel()] = 0.0
        batch_envelope = _true_peak_envelope(gathered).reshape(with_context.shape)[:, _REACH:-_REACH]
        envelope[first : first + batch.shape[0]] = batch_envelope
    envelope[blocks[:, None] * block_frames + np.arange(block_frames) >= frames] = 0.0
    return envelope


def _frame_magnitude(audio: np.ndarray) -> np.ndarray:
    """`[T]`: the largest magnitude over the channels of `audio` `[T, C]` (a column at a time: numpy
    reduces a short last axis slowly)."""
    magnitude = np.abs(audio[:, 0])
    for channel in range(1, audio.shape[1]):
        np.maximum(magnitude, np.abs(audio[:, channel]), out=magnitude)
    return magnitude


def _block_max(values: np.ndarray, block_frames: int) -> np.ndarray:
    """`[ceil(T / block_frames)]`: the largest of `values` `[T]` in each block of `block_frames`."""
    if not values.shape[0]:
        return values[:0]
    return np.maximum.reduceat(values, np.arange(0, values.shape[0], block_frames))


def _near_max(per_block: np.ndarray) -> np.ndarray:
    """`[B]`: the largest of `per_block` `[B]` over each block and the blocks either side, which the
    filter reaches into (`_REACH` is shorter than a block)."""
    if not per_block.shape[0]:
        return per_block
    padded = np.concatenate([per_block[:1], per_block, per_block[-1:]])
    return np.maximum(np.maximum(padded[:-2], padded[1:-1]), padded[2:])


def _db(amplitude: float) -> float:
    """20 log10 of a linear amplitude; -inf for 0, without a warning."""
    return 20.0 * float(np.log10(amplitude)) if amplitude > 0.0 else float("-inf")
