"""Beat alignment at storyboard transitions (VeM's idea): do the video's shot boundaries fall on the music's beats?

In: per clip, the storyboard's transitions (the starts of its shots after the first: `model.video_structure.
storyboard` over the clip's scene changes) and the beats of the music (`model.music_features`: librosa's beat
tracker on an 11.6 ms hop, within 20 ms of a metronome's clicks). Out: `TransitionClip` per clip and
`TransitionSummary` over clips.

Both directions are counted, each within `tolerance_s` (the bound included), each with its chance level:
- recall: the share of transitions with a beat near them (as the Rhythm score, with tracked beats); chance is
  the share of the clip's time within the tolerance of a beat: what transitions at random times would get;
- precision: the share of beats with a transition near them; chance is the share of the time within the
  tolerance of a transition: what beats at random times would get. Precision is bounded by the number of
  transitions over the number of beats (a cut every bar of 4/4 caps it at 1/4): read it against its chance.
A clip without transitions (or left out by the exclusion rule) is excluded from both; one without beats
is excluded from precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import librosa

from model.metrics.rhythm import chance_recall, mean_or_none, scene_change_hits
from model.music_features import ANALYSIS_RATE_HZ, HOP, MUSIC_FEATURES_VERSION
from model.video_structure import storyboard

TRANSITION_TOLERANCE_S = 0.1  # the paper's Rhythm tolerance
TRACKED_BEATS = (
    f"model.music_features ({MUSIC_FEATURES_VERSION}): librosa {librosa.__version__} beat.beat_track on the onset "
    f"strength of a 128-band log-mel spectrogram at {ANALYSIS_RATE_HZ} Hz, hop {HOP} "
    f"({HOP / ANALYSIS_RATE_HZ * 1000:.1f} ms), and its global tempo"
)


@dataclass(frozen=True)
class TransitionClip:
    """One clip: `transition_hits` of its `transitions` have a beat near them, `beat_hits` of its `beats` a
    transition; the chance levels of both."""

    clip_id: str
    transitions: int
    beats: int
    transition_hits: int
    beat_hits: int
    chance_recall: float
    chance_precision: float

    @property
    def recall(self) -> float | None:
        """transition_hits / transitions; None without transitions (excluded)."""
        return self.transition_hits / self.transitions if self.transitions else None

    @property
    def precision(self) -> float | None:
        """beat_hits / beats; None without transitions or beats (excluded)."""
        return self.beat_hits / self.beats if self.transitions and self.beats else None


@dataclass(frozen=True)
class TransitionSummary:
    """Means over the scored clips of recall, precision and their chance levels."""

    recall: float | None
    precision: float | None
    chance_recall: float | None
    chance_precision: float | None
    scored_clips: int
    excluded_clips: int


def transition_times_s(scene_changes_s: Sequence[float], duration_s: float) -> list[float]:
    """The storyboard's transitions: the start of every shot but the first, inside (0, duration_s)."""
    return [shot.start_s for shot in storyboard(scene_changes_s, duration_s)[1:]]


def transition_clip(
    clip_id: str,
    scene_changes_s: Sequence[float],
    beats_s: Sequence[float],
    duration_s: float,
    tolerance_s: float = TRANSITION_TOLERANCE_S,
) -> TransitionClip:
    """One clip's `TransitionClip`: its transitions within `duration_s` against the beats within it."""
    transitions = transition_times_s(scene_changes_s, duration_s)
    beats = [beat for beat in beats_s if 0.0 <= beat <= duration_s]
    return TransitionClip(
        clip_id=clip_id,
        transitions=len(transitions),
        beats=len(beats),
        transition_hits=scene_change_hits(transitions, beats, tolerance_s),
        beat_hits=scene_change_hits(beats, transitions, tolerance_s),
        chance_recall=float(chance_recall(beats, duration_s, tolerance_s)),
        chance_precision=float(chance_recall(transitions, duration_s, tolerance_s)),
    )


def summarize_transitions(clips: Sequence[TransitionClip]) -> TransitionSummary:
    """Means over the clips with transitions (precision: with beats too); the others counted as excluded."""
    scored = [clip for clip in clips if clip.transitions]
    with_beats = [clip for clip in scored if clip.beats]
    return TransitionSummary(
        recall=mean_or_none([clip.recall for clip in scored]),
        precision=mean_or_none([clip.precision for clip in with_beats]),
        chance_recall=mean_or_none([clip.chance_recall for clip in scored]),
        chance_precision=mean_or_none([clip.chance_precision for clip in with_beats]),
        scored_clips=len(scored),
        excluded_clips=len(clips) - len(scored),
    )
