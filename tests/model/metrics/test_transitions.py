"""Beat alignment at storyboard transitions, beat F-measure and tempo agreement: counts with known answers,
chance levels, and drum tracks whose beats are known (tracked by `model.music_features`)."""

from __future__ import annotations

import numpy as np
import pytest

from model.metrics.agreement import (
    BeatAgreement,
    beat_agreement,
    chance_f_measure,
    matched_beats,
    summarize_agreement,
)
from model.metrics.transitions import summarize_transitions, transition_clip
from model.music_features import music_features
from tests.support.generated_media import BEAT_PERIOD_S, DRUM_RATE_HZ, drums

LONG_S = 60.0


@pytest.fixture(scope="module")
def metronome():
    """A 120 BPM drum track of `LONG_S`, its hit times and `music_features` of it."""
    hits_s = np.arange(0.0, LONG_S, BEAT_PERIOD_S)
    return hits_s, music_features(drums(LONG_S, 0.0), DRUM_RATE_HZ)


def test_transitions_count_both_directions_within_the_tolerance_with_their_chance_levels():
    beats_s = np.arange(0.5, 8.0, 0.5)  # 15 beats
    clip = transition_clip("a", [2.0, 4.0, 6.0, 9.0], beats_s, 8.0, tolerance_s=0.1)  # 9 s is past the end
    assert (clip.transitions, clip.beats, clip.transition_hits, clip.beat_hits) == (3, 15, 3, 3)
    assert clip.recall == 1.0 and clip.precision == pytest.approx(3 / 15)
    assert clip.chance_recall == pytest.approx(15 * 0.2 / 8.0)  # the time within 0.1 s of a beat
    assert clip.chance_precision == pytest.approx(3 * 0.2 / 8.0)  # the time within 0.1 s of a transition
    late = transition_clip("b", [2.0, 4.0, 6.0], beats_s + 0.25, 8.0, tolerance_s=0.1)
    assert late.recall == 0.0 and late.precision == 0.0
    silent = transition_clip("c", [2.0], [], 8.0)
    still = transition_clip("d", [], beats_s, 8.0)
    assert silent.recall == 0.0 and silent.precision is None and still.recall is None
    summary = summarize_transitions([clip, late, silent, still])
    assert (summary.scored_clips, summary.excluded_clips) == (3, 1)
    assert summary.recall == pytest.approx(1 / 3) and summary.precision == pytest.approx(0.1)  # silent: no beats


def test_metronome_beats_are_tracked_within_20_ms(metronome):
    hits_s, features = metronome
    nearest_s = np.abs(features.beats_s[:, None] - hits_s[None, :]).min(axis=1)
    assert features.beats_s.size >= hits_s.size - 2 and nearest_s.max() <= 0.020


def test_cuts_on_the_beats_score_about_one_and_cuts_at_random_times_score_about_chance(metronome):
    hits_s, features = metronome
    on_bars = transition_clip("bars", hits_s[4::4], features.beats_s, LONG_S)  # a cut every bar
    assert on_bars.recall == pytest.approx(1.0, abs=0.02)
    assert on_bars.chance_recall == pytest.approx(0.4, abs=0.02)  # 0.2 s of every 0.5 s
    random_cuts_s = np.random.default_rng(3).uniform(0.5, LONG_S - 0.5, 1000)
    at_random = transition_clip("random", random_cuts_s, features.beats_s, LONG_S)
    assert at_random.recall == pytest.approx(at_random.chance_recall, abs=0.05)
    # a cut every 4th beat caps precision at 1/4: read it against its chance (0.2 s of every 2 s)
    assert on_bars.precision == pytest.approx(0.25, abs=0.01)
    assert on_bars.chance_precision == pytest.approx(0.1, abs=0.01)
    assert at_random.precision == pytest.approx(at_random.chance_precision, abs=0.05)


def test_beats_are_matched_one_to_one_within_the_window():
    assert matched_beats([1.0, 2.0, 3.0], [1.05, 1.06, 2.5, 3.07], 0.07) == 2  # 1.06 finds no second partner
    assert matched_beats([1.0, 1.1], [1.05], 0.07) == 1
    assert matched_beats([], [1.0], 0.07) == 0
    pair = beat_agreement([1.0, 6.0, 7.0, 8.0], [1.0, 6.0, 7.05, 7.5, 8.2], 120.0, 120.0, 10.0, skip_s=5.0)
    assert (pair.reference_beats, pair.generated_beats, pair.matched_beats) == (3, 4, 2)  # 1 s is skipped
    assert pair.f_measure == pytest.approx(2 * (2 / 4) * (2 / 3) / (2 / 4 + 2 / 3))
    no_reference = beat_agreement([1.0], [6.0], 120.0, 120.0, 10.0)
    no_generated = beat_agreement([6.0], [], 120.0, 120.0, 10.0)
    assert no_reference.f_measure is None and no_generated.f_measure == 0.0


def test_the_chance_f_measure_is_the_mean_over_random_offsets_of_the_generated_beats():
    reference_s = np.arange(5.0, 65.0, 0.5)  # 120 BPM
    assert chance_f_measure(reference_s, reference_s + 0.2, 5.0, 65.0, 0.07) == pytest.approx(0.28, abs=0.01)
    grid_s = np.arange(0.0, 70.0, 0.4)  # 150 BPM
    pairs = [
        beat_agreement(reference_s, grid_s + offset_s, 120.0, 150.0, 65.0)
        for offset_s in np.random.default_rng(0).uniform(0.0, 2.0, 200)
    ]
    expected = 2 * 0.28 * 0.35 / (0.28 + 0.35)  # precision: 0.14 s of every 0.5 s; recall: of every 0.4 s
    assert np.mean([pair.chance_f_measure for pair in pairs]) == pytest.approx(expected, abs=0.01)
    assert np.mean([pair.f_measure for pair in pairs]) == pytest.approx(expected, abs=0.03)


def test_tempo_agreement_forgives_octave_errors_only_in_acc2():
    def tempo(reference_bpm: float, generated_bpm: float) -> tuple[bool | None, bool | None]:
        pair = BeatAgreement(0, 0, 0, None, reference_bpm, generated_bpm)
        return pair.tempo_acc1, pair.tempo_acc2

    assert tempo(120.0, 124.0) == (True, True) and tempo(120.0, 125.0) == (False, False)  # 4 %
    assert tempo(120.0, 60.0) == (False, True) and tempo(120.0, 360.0) == (False, True)
    assert tempo(120.0, 90.0) == (False, False) and tempo(0.0, 90.0) == (None, None)
    clips = [BeatAgreement(2, 2, 2, 0.3, 120.0, 120.0), BeatAgreement(0, 0, 0, None, 120.0, 60.0)]
    summary = summarize_agreement(clips)
    assert (summary.f_measure, summary.chance_f_measure, summary.beat_scored_clips) == (1.0, 0.3, 1)
    assert (summary.tempo_acc1, summary.tempo_acc2, summary.tempo_scored_clips) == (0.5, 1.0, 2)


def test_tracked_beats_and_tempo_of_drum_tracks_agree_only_when_the_music_does(metronome):
    _, reference = metronome
    duration_s = 30.0

    def against(generated: np.ndarray) -> BeatAgreement:
        features = music_features(generated, DRUM_RATE_HZ)
        return beat_agreement(reference.beats_s, features.beats_s, reference.tempo_bpm, features.tempo_bpm, duration_s)

    same = against(drums(duration_s, 0.0, seed=7))  # other drum sounds, the same beats
    late = against(drums(duration_s, BEAT_PERIOD_S / 2))
    faster = against(drums(duration_s, 0.0, period_s=0.4))  # 150 BPM
    assert same.f_measure == pytest.approx(1.0, abs=0.05) and same.tempo_acc1
    assert late.f_measure < 0.05 < late.chance_f_measure and late.tempo_acc1  # same tempo, off the beat
    assert faster.tempo_acc1 is False and faster.tempo_acc2 is False
