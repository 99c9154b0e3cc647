"""How well a curve at the ODF rate tells where the music's onsets are: the rhythm predictor's accuracy, and
its baseline's (VidMusician's CLIP-distance curve, rescaled).

In: per clip, a curve and the target ODF `[T10]` (`model.music_features`, 10 Hz), of equal length.
Out: `RhythmAccuracy`, pooled over the clips:
- `mse`: the mean squared error over all bins, of the curves as given (rescale a baseline first: `fit_rescale`,
  the least-squares scale and offset, fit on the train split);
- `correlation`: the mean over clips of Pearson's r (0 for a clip where either curve is flat);
- `onsets`: `OnsetAgreement` of the peaks. The target's onsets are its `peak_bins`, and so are the curve's
  predicted onsets. recall: the share of onsets with a predicted peak within `TOLERANCE_BINS` (1 bin, 100 ms,
  the tolerance of the paper's rhythm score); precision: the share of predicted peaks within that of an
  onset. Each has its chance level: recall had each clip's predicted peaks fallen on as many random bins,
  and the precision of a random bin (the share of bins near an onset).
`peak_bins`: the local maxima (above the bin before, not below the bin after) that rise at least
`PEAK_THRESHOLD` (0.5) of the curve's range above its minimum: the strong onsets. A positive scale and any
offset leave them unchanged, so the baseline's peaks do not depend on its rescaling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TOLERANCE_BINS = 1
PEAK_THRESHOLD = 0.5


@dataclass(frozen=True)
class OnsetAgreement:
    """Predicted peaks against target onsets (see the module docstring)."""

    recall: float
    chance_recall: float
    precision: float
    chance_precision: float
    onsets: int
    peaks: int


@dataclass(frozen=True)
class RhythmAccuracy:
    """A curve's agreement with the music's ODF over `clips` clips (see the module docstring)."""

    mse: float
    correlation: float
    onsets: OnsetAgreement
    clips: int


def peak_bins(curve: np.ndarray, threshold: float = PEAK_THRESHOLD) -> np.ndarray:
    """The bins of `curve` `[T]` that are strong local maxima (see the module docstring); none when flat."""
    values = np.asarray(curve, dtype=np.float64)
    low, high = (values.min(), values.max()) if values.size else (0.0, 0.0)
    if high <= low:
        return np.zeros(0, dtype=int)
    padded = np.concatenate([[-np.inf], values, [-np.inf]])
    is_peak = (values > padded[:-2]) & (values >= padded[2:]) & ((values - low) >= threshold * (high - low))
    return np.flatnonzero(is_peak)


def onset_agreement(
    predicted_peaks: Sequence[np.ndarray],
    target_onsets: Sequence[np.ndarray],
    num_bins: Sequence[int],
    tolerance_bins: int = TOLERANCE_BINS,
) -> OnsetAgreement:
    """Score each clip's predicted peak bins against its onset bins (clip i has `num_bins[i]` bins)."""
    hits = near = bins_near = total_bins = placed = onsets = 0
    chance_hits = 0.0
    for peaks, targets, bins in zip(predicted_peaks, target_onsets, num_bins, strict=True):
        peaks, targets = np.asarray(peaks, dtype=int), np.asarray(targets, dtype=int)
        close = np.abs(peaks[:, None] - targets[None, :]) <= tolerance_bins  # [P, T]
        hits += int(close.any(axis=0).sum())
        near += int(close.any(axis=1).sum())
        covered = np.zeros(bins, dtype=bool)
        for target in targets:
            covered[max(0, target - tolerance_bins) : target + tolerance_bins + 1] = True
            window = min(target + tolerance_bins, bins - 1) - max(target - tolerance_bins, 0) + 1
            chance_hits += 1 - math.comb(bins - window, peaks.size) / math.comb(bins, peaks.size)
        bins_near += int(covered.sum())
        total_bins += bins
        placed += peaks.size
        onsets += targets.size
    return OnsetAgreement(
        recall=hits / onsets if onsets else 0.0,
        chance_recall=chance_hits / onsets if onsets else 0.0,
        precision=near / placed if placed else 0.0,
        chance_precision=bins_near / total_bins if total_bins else 0.0,
        onsets=onsets,
        peaks=placed,
    )


def rhythm_accuracy(
    curves: Sequence[np.ndarray], targets: Sequence[np.ndarray], tolerance_bins: int = TOLERANCE_BINS
) -> RhythmAccuracy:
    """`curves[i]` against the ODF `targets[i]` (equal lengths), pooled over the clips."""
    pairs = [(np.asarray(c, np.float64), np.asarray(t, np.float64)) for c, t in zip(curves, targets, strict=True)]
    if any(curve.shape != target.shape for curve, target in pairs):
        raise ValueError("each curve must have its target's length")
    squared = np.concatenate([(curve - target) ** 2 for curve, target in pairs]) if pairs else np.zeros(0)
    correlations = [_pearson(curve, target) for curve, target in pairs]
    onsets = onset_agreement(
        [peak_bins(curve) for curve, _ in pairs],
        [peak_bins(target) for _, target in pairs],
        [curve.size for curve, _ in pairs],
        tolerance_bins,
    )
    return RhythmAccuracy(
        float(squared.mean()) if squared.size else 0.0,
        float(np.mean(correlations)) if correlations else 0.0,
        onsets,
        len(pairs),
    )


def fit_rescale(curves: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> tuple[float, float]:
    """(scale, offset) minimising the squared error of scale x curve + offset to the targets, over all bins."""
    x = np.concatenate([np.asarray(curve, np.float64) for curve in curves])
    y = np.concatenate([np.asarray(target, np.float64) for target in targets])
    if x.size == 0 or np.ptp(x) == 0:
        return 0.0, float(y.mean()) if y.size else 0.0
    scale, offset = np.polyfit(x, y, 1)
    return float(scale), float(offset)


def _pearson(curve: np.ndarray, target: np.ndarray) -> float:
    if curve.size < 2 or np.ptp(curve) == 0 or np.ptp(target) == 0:
        return 0.0
    return float(np.corrcoef(curve, target)[0, 1])
