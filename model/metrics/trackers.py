"""Pluggable music beat trackers for the rhythm score.

In: a spec `module:function` naming a callable `(mono: np.ndarray [S] float32, sample_rate_hz: int) ->
beat times in s` (any 1-d sequence of numbers). Out: a `BeatTracker`, checked before any evaluation
runs: the module imports, the attribute exists and is callable, and on a probe signal (a 120 BPM click
track of `PROBE_S`) it returns finite, non-negative, ascending times within the signal. Every later call
is checked the same way.

A tracker may describe itself through attributes on the function, else on its module:
`SAMPLE_RATE_HZ` (the rate it wants its audio at; default `DEFAULT_SAMPLE_RATE_HZ`, librosa's 22,050)
and `DESCRIPTION` (what the report's protocol records). Without a `DESCRIPTION` the protocol records
the spec and the `__version__` of its module (or else of the module's top package), if there is one.
Named protocols (`BEAT_PROTOCOLS`, `dvmset evaluate --beats NAME`, `[evaluate] beats`) name the shipped trackers:
`onsets-d2m` (the default: the paper scores rhythm "similar to the Beats Hit Score" of D2M-GAN, whose
released script takes librosa onsets as beats, `rhythm.d2m_onset_beats_s`), `onsets-loris` (the same
detector with LORIS' wider peak picking), `beat_track` (librosa's dynamic-programming beat tracker,
`rhythm.music_beats_s`) and `plp` (librosa's predominant local pulse, `rhythm.plp_beats_s`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dvmset.errors import DvmsetError

BEAT_PROTOCOLS = {  # name -> tracker spec
    "onsets-d2m": "model.metrics.rhythm:d2m_onset_beats_s",
    "onsets-loris": "model.metrics.rhythm:loris_onset_beats_s",
    "beat_track": "model.metrics.rhythm:music_beats_s",
    "plp": "model.metrics.rhythm:plp_beats_s",
}
DEFAULT_BEATS = "onsets-d2m"
DEFAULT_BEAT_TRACKER = BEAT_PROTOCOLS[DEFAULT_BEATS]
DEFAULT_SAMPLE_RATE_HZ = 22_050
PROBE_S = 4.0
PROBE_PERIOD_S = 0.5
_SLACK_S = 0.05  # a beat this far past the end of the audio still counts as inside it (frame rounding)


class BeatTrackerError(DvmsetError):
    """A beat tracker spec names nothing usable, or the tracker returned something that is not beat times."""


@dataclass(frozen=True)
class BeatTracker:
    """A checked beat tracker: its spec, the callable, the rate it reads audio at, and its description."""

    spec: str
    function: Callable[[np.ndarray, int], object]
    sample_rate_hz: int
    description: str

    def beats_s(self, mono: np.ndarray) -> np.ndarray:
        """Beat times in s (float64, ascending) of mono audio `[S]` at `sample_rate_hz`; BeatTrackerError
        when the tracker fails or returns anything else."""
        if mono.size == 0:
            return np.zeros(0)
        try:
            returned = self.function(np.asarray(mono, dtype=np.float32), self.sample_rate_hz)
        except Exception as error:  # a plug-in's own failure, whatever its type, is reported as the tracker's
            raise BeatTrackerError(f"beat tracker {self.spec} failed: {error!r}") from error
        return checked_beats_s(returned, mono.size / self.sample_rate_hz, self.spec)

    def protocol(self) -> dict[str, object]:
        """What a report records about the beat tracker."""
        name = next((name for name, spec in BEAT_PROTOCOLS.items() if spec == self.spec), "custom")
        return {
            "beats": name,
            "beat_tracker": self.description,
            "beat_tracker_spec": self.spec,
            "beat_sample_rate_hz": self.sample_rate_hz,
        }


def checked_beats_s(returned: object, duration_s: float, spec: str) -> np.ndarray:
    """`returned` as float64 beat times `[N]`, if they are finite, non-negative, ascending and no later than
    `duration_s`; BeatTrackerError otherwise."""
    try:
        beats_s = np.asarray(returned, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise BeatTrackerError(f"beat tracker {spec} returned {type(returned).__name__}, not beat times") from error
    if beats_s.ndim != 1:
        raise BeatTrackerError(f"beat tracker {spec} returned an array of shape {beats_s.shape}; expected [N] times")
    problem = (
        "non-finite times"
        if not np.all(np.isfinite(beats_s))
        else "negative times"
        if np.any(beats_s < 0)
        else "times out of order"
        if np.any(np.diff(beats_s) < 0)
        else f"times after the end of the audio ({duration_s:.2f} s)"
        if np.any(beats_s > duration_s + _SLACK_S)
        else None
    )
    if problem:
        raise BeatTrackerError(f"beat tracker {spec} returned {problem}: {beats_s[:8].tolist()}")
    return beats_s


def _attribute(function: object, name: str) -> object:
    """`function.<name>`, else `<function's module>.<name>`, else None."""
    if hasattr(function, name):
        return getattr(function, name)
    return getattr(sys.modules.get(getattr(function, "__module__", None) or ""), name, None)


def _description(function: object, spec: str) -> str:
    """The function's (or its module's) `DESCRIPTION`, else the spec and the `__version__` of the spec's
    module or, failing that, of its top package."""
    described = _attribute(function, "DESCRIPTION")
    if described is not None:
        return str(described)
    module_name = spec.partition(":")[0]
    for name in dict.fromkeys((module_name, module_name.split(".")[0])):
        module_version = getattr(importlib.import_module(name), "__version__", None)
        if module_version is not None:
            return f"{spec} ({name} {module_version})"
    return spec


def tracker_from_callable(function: Callable[[np.ndarray, int], object], spec: str) -> BeatTracker:
    """A `BeatTracker` of `function`, its rate and description read from its attributes (unchecked)."""
    rate = _attribute(function, "SAMPLE_RATE_HZ")
    if rate is None:
        rate = DEFAULT_SAMPLE_RATE_HZ
    if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
        raise BeatTrackerError(f"beat tracker {spec}: SAMPLE_RATE_HZ must be a positive int, got {rate!r}")
    return BeatTracker(spec, function, rate, _description(function, spec))


def beat_tracker_spec(beats: str | None) -> str:
    """The tracker spec of `beats`: a named protocol (None: `DEFAULT_BEATS`), or itself when it is a
    `module:function`; BeatTrackerError for anything else."""
    name = beats or DEFAULT_BEATS
    if ":" in name:
        return name
    if name not in BEAT_PROTOCOLS:
        raise BeatTrackerError(
            f"unknown beat protocol {name!r}; the protocols are {', '.join(BEAT_PROTOCOLS)}, "
            "another tracker is given as module:function"
        )
    return BEAT_PROTOCOLS[name]


def probe_signal(sample_rate_hz: int) -> np.ndarray:
    """`PROBE_S` of mono float32 clicks (10 ms decaying bursts) every `PROBE_PERIOD_S`, at `sample_rate_hz`."""
    audio = np.zeros(round(PROBE_S * sample_rate_hz), dtype=np.float32)
    click = np.exp(-np.arange(round(0.01 * sample_rate_hz)) / (0.002 * sample_rate_hz)).astype(np.float32)
    for start_s in np.arange(0.0, PROBE_S, PROBE_PERIOD_S):
        start = round(start_s * sample_rate_hz)
        audio[start : start + click.size] += click[: audio.size - start]
    return audio


def load_beat_tracker(spec: str) -> BeatTracker:
    """The tracker `spec` (`module:function`, the function may be `Class.attribute`) names, run once on
    `probe_signal` to check it; BeatTrackerError saying what is wrong."""
    module_name, colon, attribute_path = spec.partition(":")
    if not colon or not module_name or not attribute_path:
        raise BeatTrackerError(f"beat tracker {spec!r}: expected module:function, e.g. {DEFAULT_BEAT_TRACKER}")
    try:
        function: object = importlib.import_module(module_name)
    except ImportError as error:
        raise BeatTrackerError(f"beat tracker {spec!r}: module {module_name!r} cannot be imported: {error}") from error
    for part in attribute_path.split("."):
        if not hasattr(function, part):
            raise BeatTrackerError(f"beat tracker {spec!r}: {module_name} has no attribute {attribute_path!r}")
        function = getattr(function, part)
    if not callable(function):
        raise BeatTrackerError(f"beat tracker {spec!r}: {attribute_path} is a {type(function).__name__}, not callable")
    tracker = tracker_from_callable(function, spec)
    try:
        tracker.beats_s(probe_signal(tracker.sample_rate_hz))
    except BeatTrackerError as error:
        raise BeatTrackerError(f"{error} (on a probe click track of {PROBE_S:g} s)") from error
    return tracker
