"""The rhythm score of the paper (section 5.2): the recall of scene changes that have a music beat near them.

In: per clip, the scene-change times of the video (`scenes`) and the music's beat times from a beat
tracker (`trackers`). The default, `d2m_onset_beats_s`, takes librosa's onsets as beats with the
settings of D2M-GAN's released Beats Hit Score script (the paper's rhythm score is "similar to" it);
`loris_onset_beats_s` is the same detector with LORIS' peak picking; `music_beats_s` is librosa's
dynamic-programming beat tracker (`librosa.beat.beat_track`, hop 512, `trim=True`, which drops weak
beats at both ends), whose regular grid at 100-140 BPM already covers a third or more of a clip within
the tolerance, so that cuts at random times score 0.33-0.47; `plp_beats_s` is a fourth. All read mono
audio at `BEAT_SAMPLE_RATE_HZ`. Out: `RhythmClip` per clip (hits / scene changes) and `RhythmSummary`
over clips.

A scene change is hit when some beat lies within `tolerance_s` (0.1 s, the paper's) of it, either side,
the bound included. A clip without scene changes (stable visuals) says nothing about rhythm: it is
excluded from both averages and counted (`excluded_clips`). Two averages are reported: the mean of the
per-clip recalls (each clip weighs the same) and the pooled recall (all hits over all scene changes, so
each scene change weighs the same). `chance_recall` is the recall that scene changes at random times
would get against the same beats: the share of the clip's duration within `tolerance_s` of a beat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import librosa
import numpy as np

from model.metrics.beats import onset_times_s
from model.metrics.trackers import DEFAULT_BEAT_TRACKER, BeatTracker, tracker_from_callable

BEAT_SAMPLE_RATE_HZ = 22_050  # librosa's default analysis rate
EXCLUDE_RULES = ("none", "stable-visual")
STABLE_STATIC_SHARE = 0.5  # the prescreen's max_static_share: still this share of the time or more
STABLE_CUTS_PER_MIN = 2.0  # fewer scene cuts than this a minute (under one per 30 s)
STABLE_VISUAL_RULE = (
    f"a clip is stable-visual when its picture stands still for at least {STABLE_STATIC_SHARE:g} of the clip "
    f"(the prescreen's static_share) or it has fewer than {STABLE_CUTS_PER_MIN:g} scene cuts a minute (the "
    "prescreen's scene_cuts_s): landscapes and talking heads, which the paper excludes by hand"
)
TOLERANCE_S = 0.1  # the paper's tolerance
_PLP_HOP = 512
_PLP_WINDOW_FRAMES = 384  # librosa.beat.plp's default window, shortened for shorter music


@dataclass(frozen=True)
class RhythmClip:
    """One clip's rhythm score: `hits` of its `scene_changes` have a beat within the tolerance."""

    clip_id: str
    scene_changes: int
    hits: int
    beats: int
    chance_recall: float

    @property
    def recall(self) -> float | None:
        """hits / scene_changes; None for a clip without scene changes (excluded)."""
        return self.hits / self.scene_changes if self.scene_changes else None


@dataclass(frozen=True)
class RhythmSummary:
    """The rhythm score over clips: mean of per-clip recalls, pooled recall, chance levels, exclusions."""

    mean_recall: float | None
    pooled_recall: float | None
    mean_chance_recall: float | None
    scored_clips: int
    excluded_clips: int
    scene_changes: int
    hits: int


def music_beats_s(mono: np.ndarray, sample_rate_hz: int = BEAT_SAMPLE_RATE_HZ) -> np.ndarray:
    """Beat times in seconds, ascending, of mono audio `[S]` (librosa's beat tracker; see the module docstring)."""
    if mono.size == 0:
        return np.zeros(0)
    _, beats_s = librosa.beat.beat_track(y=np.asarray(mono, dtype=np.float32), sr=sample_rate_hz, units="time")
    return np.asarray(beats_s, dtype=np.float64)


music_beats_s.SAMPLE_RATE_HZ = BEAT_SAMPLE_RATE_HZ
music_beats_s.DESCRIPTION = f"librosa {librosa.__version__} beat.beat_track (Ellis 2007 dynamic programming), hop 512"


def plp_beats_s(mono: np.ndarray, sample_rate_hz: int = BEAT_SAMPLE_RATE_HZ) -> np.ndarray:
    """Beat times in seconds of mono audio `[S]`: the peaks (local maxima) of librosa's predominant local
    pulse curve (`librosa.beat.plp`, Grosche & Mueller 2011, tempo 30-300 BPM, hop 512). The pulse follows
    the locally strongest tempo, so it keeps up with music whose tempo drifts or changes, where
    `beat_track`'s single global tempo does not; it is not trimmed at the ends."""
    if mono.size == 0:
        return np.zeros(0)
    frames = 1 + mono.size // _PLP_HOP  # of the onset envelope; librosa's window is 384 of them (~8.9 s)
    pulse = librosa.beat.plp(
        y=np.asarray(mono, dtype=np.float32),
        sr=sample_rate_hz,
        hop_length=_PLP_HOP,
        win_length=min(_PLP_WINDOW_FRAMES, frames),
    )
    peaks = np.flatnonzero(librosa.util.localmax(pulse))
    return librosa.frames_to_time(peaks, sr=sample_rate_hz, hop_length=_PLP_HOP).astype(np.float64)


plp_beats_s.SAMPLE_RATE_HZ = BEAT_SAMPLE_RATE_HZ
plp_beats_s.DESCRIPTION = f"librosa {librosa.__version__} beat.plp peaks (predominant local pulse, 30-300 BPM), hop 512"


def d2m_onset_beats_s(mono: np.ndarray, sample_rate_hz: int = BEAT_SAMPLE_RATE_HZ) -> np.ndarray:
    """Onset times in seconds of mono audio `[S]`, taken as beats as D2M-GAN's Beats Hit Score does
    (`beats.onset_times_s`: `onset_detect(wait=1, delta=0.2, pre_avg=1, post_avg=1, post_max=1)`)."""
    if mono.size == 0:
        return np.zeros(0)
    return np.asarray(onset_times_s(mono, sample_rate_hz), dtype=np.float64)


d2m_onset_beats_s.SAMPLE_RATE_HZ = BEAT_SAMPLE_RATE_HZ
d2m_onset_beats_s.DESCRIPTION = (
    f"librosa {librosa.__version__} onset.onset_detect(wait=1, delta=0.2, pre_avg=1, post_avg=1, post_max=1) "
    "(D2M-GAN's Beats Scores script)"
)


def loris_onset_beats_s(mono: np.ndarray, sample_rate_hz: int = BEAT_SAMPLE_RATE_HZ) -> np.ndarray:
    """Onset times in seconds of mono audio `[S]` with LORIS' peak picking (`onset_detect(wait=1,
    delta=0.2, pre_avg=3, post_avg=3, pre_max=3, post_max=3)`): fewer onsets close together."""
    if mono.size == 0:
        return np.zeros(0)
    onsets_s = librosa.onset.onset_detect(
        y=np.asarray(mono, dtype=np.float32),
        sr=sample_rate_hz,
        wait=1,
        delta=0.2,
        pre_avg=3,
        post_avg=3,
        pre_max=3,
        post_max=3,
        units="time",
    )
    return np.asarray(onsets_s, dtype=np.float64)


loris_onset_beats_s.SAMPLE_RATE_HZ = BEAT_SAMPLE_RATE_HZ
loris_onset_beats_s.DESCRIPTION = (
    f"librosa {librosa.__version__} onset.onset_detect(wait=1, delta=0.2, pre_avg=3, post_avg=3, pre_max=3, "
    "post_max=3) (LORIS)"
)


def is_stable_visual(static_share: float | None, scene_cuts: int, duration_s: float) -> bool:
    """`STABLE_VISUAL_RULE` on a clip's prescreen figures (`static_share` None: judged by its cuts alone)."""
    still = static_share is not None and static_share >= STABLE_STATIC_SHARE
    return still or scene_cuts < STABLE_CUTS_PER_MIN * duration_s / 60.0


def default_beat_tracker() -> BeatTracker:
    """The default beat protocol's tracker, `onsets-d2m` (`d2m_onset_beats_s`): the paper scores rhythm
    "similar to the Beats Hit Score" of D2M-GAN, whose beats are these onsets."""
    return tracker_from_callable(d2m_onset_beats_s, DEFAULT_BEAT_TRACKER)


def scene_change_hits(
    scene_changes_s: Sequence[float], beats_s: Sequence[float], tolerance_s: float = TOLERANCE_S
) -> int:
    """How many scene changes have a beat within `tolerance_s` (inclusive) of them."""
    changes, beats = np.asarray(scene_changes_s, dtype=np.float64), np.sort(np.asarray(beats_s, dtype=np.float64))
    if changes.size == 0 or beats.size == 0:
        return 0
    right = np.clip(np.searchsorted(beats, changes), 0, beats.size - 1)
    left = np.clip(right - 1, 0, beats.size - 1)
    nearest_s = np.minimum(np.abs(beats[right] - changes), np.abs(beats[left] - changes))
    return int(np.count_nonzero(nearest_s <= tolerance_s + 1e-9))


def chance_recall(beats_s: Sequence[float], duration_s: float, tolerance_s: float = TOLERANCE_S) -> float:
    """The share of [0, duration_s] within `tolerance_s` of a beat: the expected recall of scene changes
    placed uniformly at random."""
    if duration_s <= 0:
        return 0.0
    windows = sorted((max(0.0, beat - tolerance_s), min(duration_s, beat + tolerance_s)) for beat in beats_s)
    covered_s, reach_s = 0.0, 0.0
    for start_s, end_s in windows:
        start_s = max(start_s, reach_s)
        if end_s > start_s:
            covered_s += end_s - start_s
            reach_s = end_s
    return covered_s / duration_s


def rhythm_clip(
    clip_id: str,
    scene_changes_s: Sequence[float],
    beats_s: Sequence[float],
    duration_s: float,
    tolerance_s: float = TOLERANCE_S,
) -> RhythmClip:
    """One clip's `RhythmClip` from its scene changes and beats (seconds) and its duration."""
    return RhythmClip(
        clip_id=clip_id,
        scene_changes=len(scene_changes_s),
        hits=scene_change_hits(scene_changes_s, beats_s, tolerance_s),
        beats=len(beats_s),
        chance_recall=float(chance_recall(beats_s, duration_s, tolerance_s)),
    )


def mean_or_none(values: Sequence[float | bool | None]) -> float | None:
    """The mean of the values that are not None (a bool counts 0 or 1); None when there is none."""
    kept = [float(value) for value in values if value is not None]
    return float(np.mean(kept)) if kept else None


def summarize_rhythm(clips: Sequence[RhythmClip]) -> RhythmSummary:
    """Mean and pooled recall over the clips with scene changes; the others are counted as excluded."""
    scored = [clip for clip in clips if clip.scene_changes]
    changes, hits = sum(clip.scene_changes for clip in scored), sum(clip.hits for clip in scored)
    return RhythmSummary(
        mean_recall=float(np.mean([clip.recall for clip in scored])) if scored else None,
        pooled_recall=hits / changes if changes else None,
        mean_chance_recall=float(np.mean([clip.chance_recall for clip in scored])) if scored else None,
        scored_clips=len(scored),
        excluded_clips=len(clips) - len(scored),
        scene_changes=changes,
        hits=hits,
    )
