"""Agreement of the generated music's beats and tempo with the ground-truth music's.

In: the tracked beats and the tempo of both pieces of music (`model.music_features`: librosa's beat tracker on
an 11.6 ms hop, and its global tempo). Out: `BeatAgreement` per clip, `AgreementSummary` over clips.

Beat F-measure, as `mir_eval.beat.f_measure` defines it (our own code; mir_eval is not a dependency): beats
before `skip_s` (5 s, as `mir_eval.beat.evaluate` trims them) are left out of both; each reference beat is
matched to at most one generated beat within `tolerance_s` (70 ms) and back (a maximum one-to-one matching:
on sorted times the greedy walk is optimal); precision = matches / generated beats, recall = matches /
reference beats, F = 2PR / (P + R), 0 when either has no beat and None when the reference has none. Chance:
the F-measure expected when the generated beats are moved by a random offset (what music at the right tempo
but out of phase gets): precision is then the share of the scored span within the tolerance of a reference
beat, recall the share within the tolerance of a generated beat (exact while no two beats of one piece lie
within twice the tolerance, as F = 2 matches / (beats of both) is linear in the matches).

Tempo agreement (Gouyon et al. 2006, the MIREX tempo accuracies): Acc1 when the generated tempo is within
`tempo_tolerance` (4 %) of the reference's, Acc2 when it is within it of 1/3, 1/2, 1, 2 or 3 times the
reference's (octave errors forgiven). None when the reference has no tempo (no beats).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from model.metrics.rhythm import chance_recall, mean_or_none

BEAT_MATCH_TOLERANCE_S = 0.07  # mir_eval.beat.f_measure's f_measure_threshold
BEAT_SKIP_S = 5.0  # mir_eval.beat.trim_beats' min_beat_time
TEMPO_TOLERANCE = 0.04  # MIREX: 4 %
TEMPO_FACTORS = (1 / 3, 1 / 2, 1.0, 2.0, 3.0)


@dataclass(frozen=True)
class BeatAgreement:
    """One pair of music: matched beats, beat counts after the skip, the F-measure's chance level and tempi."""

    reference_beats: int
    generated_beats: int
    matched_beats: int
    chance_f_measure: float | None
    reference_tempo_bpm: float
    generated_tempo_bpm: float
    tempo_tolerance: float = TEMPO_TOLERANCE

    @property
    def f_measure(self) -> float | None:
        """2PR / (P + R); 0 without generated beats or matches, None without reference beats."""
        if not self.reference_beats:
            return None
        if not self.matched_beats:
            return 0.0
        precision, recall = self.matched_beats / self.generated_beats, self.matched_beats / self.reference_beats
        return 2 * precision * recall / (precision + recall)

    @property
    def tempo_acc1(self) -> bool | None:
        """The generated tempo is within the tolerance of the reference's; None without a reference tempo."""
        return self._tempo_within((1.0,))

    @property
    def tempo_acc2(self) -> bool | None:
        """As `tempo_acc1`, of 1/3, 1/2, 1, 2 or 3 times the reference's tempo."""
        return self._tempo_within(TEMPO_FACTORS)

    def _tempo_within(self, factors: Sequence[float]) -> bool | None:
        if self.reference_tempo_bpm <= 0:
            return None
        targets = np.asarray(factors) * self.reference_tempo_bpm
        return bool(np.any(np.abs(self.generated_tempo_bpm - targets) <= self.tempo_tolerance * targets))


@dataclass(frozen=True)
class AgreementSummary:
    """Means over clips: beat F-measure and its chance (clips with reference beats), tempo Acc1 and Acc2
    (shares of the clips with a reference tempo)."""

    f_measure: float | None
    chance_f_measure: float | None
    tempo_acc1: float | None
    tempo_acc2: float | None
    beat_scored_clips: int
    tempo_scored_clips: int


def matched_beats(reference_s: Sequence[float], generated_s: Sequence[float], tolerance_s: float) -> int:
    """The size of a maximum one-to-one matching of beats within `tolerance_s` (inclusive) of each other."""
    reference, generated = np.sort(np.asarray(reference_s, float)), np.sort(np.asarray(generated_s, float))
    matches, i, j = 0, 0, 0
    while i < reference.size and j < generated.size:
        if generated[j] < reference[i] - tolerance_s - 1e-9:
            j += 1
        elif generated[j] > reference[i] + tolerance_s + 1e-9:
            i += 1
        else:
            matches, i, j = matches + 1, i + 1, j + 1
    return matches


def chance_f_measure(
    reference_s: Sequence[float], generated_s: Sequence[float], start_s: float, end_s: float, tolerance_s: float
) -> float | None:
    """The F-measure expected of `generated_s` moved by a random offset within [start_s, end_s] (see the
    module docstring); None without reference beats or span."""
    span_s = end_s - start_s
    if not len(reference_s) or span_s <= 0:
        return None
    precision = chance_recall(np.asarray(reference_s, float) - start_s, span_s, tolerance_s)
    recall = chance_recall(np.asarray(generated_s, float) - start_s, span_s, tolerance_s)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def beat_agreement(
    reference_s: Sequence[float],
    generated_s: Sequence[float],
    reference_tempo_bpm: float,
    generated_tempo_bpm: float,
    duration_s: float,
    tolerance_s: float = BEAT_MATCH_TOLERANCE_S,
    skip_s: float = BEAT_SKIP_S,
    tempo_tolerance: float = TEMPO_TOLERANCE,
) -> BeatAgreement:
    """One pair's `BeatAgreement`: beats in [skip_s, duration_s] of both, and the two tempi."""
    reference = [beat for beat in reference_s if skip_s <= beat <= duration_s]
    generated = [beat for beat in generated_s if skip_s <= beat <= duration_s]
    return BeatAgreement(
        reference_beats=len(reference),
        generated_beats=len(generated),
        matched_beats=matched_beats(reference, generated, tolerance_s),
        chance_f_measure=chance_f_measure(reference, generated, skip_s, duration_s, tolerance_s),
        reference_tempo_bpm=float(reference_tempo_bpm),
        generated_tempo_bpm=float(generated_tempo_bpm),
        tempo_tolerance=tempo_tolerance,
    )


def summarize_agreement(clips: Sequence[BeatAgreement]) -> AgreementSummary:
    """Means over the clips that can be scored (see `AgreementSummary`)."""
    return AgreementSummary(
        f_measure=mean_or_none([clip.f_measure for clip in clips]),
        chance_f_measure=mean_or_none([clip.chance_f_measure for clip in clips if clip.f_measure is not None]),
        tempo_acc1=mean_or_none([clip.tempo_acc1 for clip in clips]),
        tempo_acc2=mean_or_none([clip.tempo_acc2 for clip in clips]),
        beat_scored_clips=sum(1 for clip in clips if clip.f_measure is not None),
        tempo_scored_clips=sum(1 for clip in clips if clip.tempo_acc1 is not None),
    )
