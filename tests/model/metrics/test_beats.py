"""Beats Coverage and Hit Scores against a hand-computed example."""

from __future__ import annotations

import numpy as np
import pytest

from model.metrics.beats import audio_beat_scores, beat_bins, beat_scores
from tests.support.generated_media import DRUM_RATE_HZ, drums


def test_bins_and_scores_match_a_hand_computed_example():
    # reference onsets -> 1 s bins 0, 2, 3 (two onsets in bin 3 count once); 5 s -> 5 bins
    reference = beat_bins(np.array([0.2, 2.5, 3.1, 3.9]), 5.0)
    # generated onsets -> bins 0, 1, 3, 4, and one past the end of the shorter 4.5 s file is dropped
    generated = beat_bins(np.array([0.9, 1.0, 3.5, 4.2, 6.0]), 4.5)
    assert reference.tolist() == [True, False, True, True, False]
    assert generated.tolist() == [True, True, False, True, True]
    scores = beat_scores(reference, generated)
    assert (scores.reference_beats, scores.generated_beats, scores.hit_beats) == (3, 4, 2)
    assert scores.coverage == pytest.approx(4 / 3)  # BCS = B_g / B_t
    assert scores.hit == pytest.approx(2 / 3)  # BHS = B_a / B_t


def test_scores_are_none_without_reference_beats():
    scores = beat_scores(np.zeros(3, bool), np.ones(3, bool))
    assert scores.coverage is None and scores.hit is None


def test_identical_drum_tracks_cover_and_hit_every_beat_bin():
    audio = drums(4.0, 0.5, period_s=1.0)
    scores = audio_beat_scores(audio, audio, DRUM_RATE_HZ)
    assert scores.reference_beats == 4  # one hit in each of the four 1 s bins
    assert scores.coverage == 1.0 and scores.hit == 1.0
    silent_half = audio.copy()
    silent_half[2 * DRUM_RATE_HZ :] = 0.0
    assert audio_beat_scores(audio, silent_half, DRUM_RATE_HZ).hit == pytest.approx(0.5)
