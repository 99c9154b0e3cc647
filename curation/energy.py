"""Energy curves: the level of a signal in dBFS, one value per short frame.

The separate stage measures its vocals stem and the accompaniment this way and keeps both
curves for the whole track in `vocals_energy.npz`, beside the speech probabilities of the
track (Silero VAD on the vocals stem, one per 32 ms: `curation.speech`); the prescreen reads a
clip's stretch of them (`EnergyCurves.span`) and measures the clip's music with the same
`frame_energy_db`. A file written before the speech probabilities were kept (separate/1) cannot
be read: its video must be separated again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dvmset.errors import ReasonCode, StageError
from dvmset.storage import atomic_path

SILENCE_FLOOR_DB = -120.0  # level given to all-zero frames


@dataclass(frozen=True, eq=False)
class EnergyCurves:
    """The curves `vocals_energy.npz` holds: [F] float32 dBFS of the vocals stem and of the
    accompaniment, frame i covering [i * frame_s, (i + 1) * frame_s) of the track; and [N] float32
    speech probabilities (0..1), chunk j covering [j * speech_hop_s, (j + 1) * speech_hop_s)."""

    vocals_db: np.ndarray
    accompaniment_db: np.ndarray
    frame_s: float
    speech_prob: np.ndarray
    speech_hop_s: float

    def span(self, start_s: float, end_s: float) -> EnergyCurves:
        """The frames and speech chunks of [start_s, end_s), time 0 = start_s: frames
        round(start_s / frame_s) up to round(end_s / frame_s), and chunks likewise by speech_hop_s,
        cut short where the curves end."""
        if not 0 <= start_s <= end_s:
            raise ValueError(f"need 0 <= start_s <= end_s, got {start_s}, {end_s}")
        frames = _indices(start_s, end_s, self.frame_s, self.vocals_db.size)
        chunks = _indices(start_s, end_s, self.speech_hop_s, self.speech_prob.size)
        return EnergyCurves(
            self.vocals_db[frames],
            self.accompaniment_db[frames],
            self.frame_s,
            self.speech_prob[chunks],
            self.speech_hop_s,
        )


def _indices(start_s: float, end_s: float, step_s: float, size: int) -> slice:
    return slice(min(round(start_s / step_s), size), min(round(end_s / step_s), size))


def frame_energy_db(samples: np.ndarray, frame_samples: int) -> np.ndarray:
    """[C, T] -> [F] float32: the RMS level in dBFS of each frame of `frame_samples` over all
    channels, F = ceil(T / frame_samples) (the last frame may be shorter), as `separate_track`
    measures its stems; all-zero frames read -120 dBFS."""
    samples = np.asarray(samples)
    if samples.ndim != 2 or samples.shape[1] == 0 or frame_samples < 1:
        raise ValueError(f"need samples [C, T > 0] and frame_samples >= 1, got {samples.shape}, {frame_samples}")
    power = np.zeros(math.ceil(samples.shape[1] / frame_samples))
    add_frame_power(power, 0, samples, frame_samples)
    return frames_db(power, samples.shape[0], samples.shape[1], frame_samples)


def read_energy_curves(path: Path) -> EnergyCurves:
    """The curves `separate_file` wrote to `path` (a `vocals_energy.npz`). A file without speech
    probabilities (written by separate/1) raises `StageError(INTERNAL_ERROR)`: separate again."""
    with np.load(path) as data:
        if "speech_prob" not in data.files:
            version = str(data["stage_version"]) if "stage_version" in data.files else "an older separate stage"
            raise StageError(
                ReasonCode.INTERNAL_ERROR,
                f"{path.name} holds no speech probabilities (written by {version}): separate the video again",
            )
        return EnergyCurves(
            vocals_db=data["vocals_energy_db"].astype(np.float32),
            accompaniment_db=data["accompaniment_energy_db"].astype(np.float32),
            frame_s=float(data["frame_s"]),
            speech_prob=data["speech_prob"].astype(np.float32),
            speech_hop_s=float(data["speech_hop_s"]),
        )


def write_energy_curves(path: Path, curves: EnergyCurves, **metadata: str | int | float) -> None:
    """Write `curves` (and `metadata` such as the model id) to `path` as an `.npz`, atomically."""
    with atomic_path(path) as temp, open(temp, "wb") as file:  # a file object: np.savez adds no suffix
        np.savez(
            file,
            vocals_energy_db=curves.vocals_db,
            accompaniment_energy_db=curves.accompaniment_db,
            frame_s=np.float64(curves.frame_s),
            speech_prob=curves.speech_prob,
            speech_hop_s=np.float64(curves.speech_hop_s),
            **{key: np.asarray(value) for key, value in metadata.items()},
        )


def add_frame_power(power: np.ndarray, start: int, samples: np.ndarray, frame_samples: int) -> None:
    """Add the squares of `samples` ([C, L], beginning at sample `start`) to their frames' sums in `power`."""
    if samples.shape[1] == 0:
        return
    frames = np.arange(start, start + samples.shape[1]) // frame_samples
    sums = np.bincount(frames - frames[0], weights=np.square(samples, dtype=np.float64).sum(axis=0))
    power[frames[0] : frames[0] + sums.size] += sums


def frames_db(power: np.ndarray, channels: int, num_samples: int, frame_samples: int) -> np.ndarray:
    """Sums of squares per frame of `num_samples` x `channels` samples -> [F] float32 RMS levels in dBFS."""
    frame_counts = np.full(power.size, channels * frame_samples)
    frame_counts[-1] = channels * (num_samples - (power.size - 1) * frame_samples)  # the last frame may be short
    mean_square = power / frame_counts
    return (10.0 * np.log10(np.maximum(mean_square, 10.0 ** (SILENCE_FLOOR_DB / 10.0)))).astype(np.float32)
