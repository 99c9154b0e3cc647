"""Beat trackers for the plug-in tests: one that returns known times and describes itself, one that does
not describe itself (its module's `__version__` is recorded), and broken ones."""

from __future__ import annotations

import numpy as np

__version__ = "1.2.3"
FIXED_BEATS_S = (2.0, 4.0)
NOT_CALLABLE = 3


def fixed_beats_s(mono: np.ndarray, sample_rate_hz: int) -> list[float]:
    """`FIXED_BEATS_S` that fall within the audio, whatever it holds."""
    return [beat_s for beat_s in FIXED_BEATS_S if beat_s <= mono.size / sample_rate_hz]


fixed_beats_s.SAMPLE_RATE_HZ = 16_000
fixed_beats_s.DESCRIPTION = "fixed beats at 2 and 4 s (test tracker)"


def grid_beats_s(mono: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """A beat every second from 0 to the end of the audio."""
    return np.arange(0.0, mono.size / sample_rate_hz, 1.0)


def text_beats_s(mono: np.ndarray, sample_rate_hz: int) -> str:
    return "one, two, three"


def descending_beats_s(mono: np.ndarray, sample_rate_hz: int) -> list[float]:
    return [2.0, 1.0]


def late_beats_s(mono: np.ndarray, sample_rate_hz: int) -> list[float]:
    return [mono.size / sample_rate_hz + 1.0]


def matrix_beats_s(mono: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    return np.zeros((2, 2))


def failing_beats_s(mono: np.ndarray, sample_rate_hz: int) -> list[float]:
    raise RuntimeError("no beats today")


def short_audio_only_beats_s(mono: np.ndarray, sample_rate_hz: int) -> list[float]:
    """Passes the 4 s probe, fails on anything longer."""
    if mono.size > 5 * sample_rate_hz:
        raise MemoryError("audio too long for this tracker")
    return [1.0]
