"""Pluggable beat trackers: loading a `module:function` spec, what the protocol records, bad specs and
bad outputs refused before any work, and the shipped PLP tracker on a drum track."""

from __future__ import annotations

import numpy as np
import pytest

from model.metrics.rhythm import d2m_onset_beats_s, default_beat_tracker, loris_onset_beats_s, music_beats_s
from model.metrics.trackers import (
    BEAT_PROTOCOLS,
    DEFAULT_BEAT_TRACKER,
    DEFAULT_BEATS,
    BeatTrackerError,
    beat_tracker_spec,
    load_beat_tracker,
    probe_signal,
)
from tests.support.generated_media import BEAT_PERIOD_S, DRUM_RATE_HZ, drums

PLUGINS = "tests.model.metrics.tracker_plugins"


def test_a_tracker_that_describes_itself_gives_its_rate_description_and_times():
    tracker = load_beat_tracker(f"{PLUGINS}:fixed_beats_s")
    assert tracker.sample_rate_hz == 16_000
    assert tracker.protocol() == {
        "beats": "custom",
        "beat_tracker": "fixed beats at 2 and 4 s (test tracker)",
        "beat_tracker_spec": f"{PLUGINS}:fixed_beats_s",
        "beat_sample_rate_hz": 16_000,
    }
    beats_s = tracker.beats_s(np.zeros(5 * 16_000, dtype=np.float32))
    assert beats_s.dtype == np.float64 and beats_s.tolist() == [2.0, 4.0]


def test_a_tracker_without_description_records_its_spec_and_module_version_at_librosas_rate():
    tracker = load_beat_tracker(f"{PLUGINS}:grid_beats_s")
    assert tracker.description == f"{PLUGINS}:grid_beats_s ({PLUGINS} 1.2.3)"
    assert tracker.sample_rate_hz == DRUM_RATE_HZ


def test_the_default_is_d2m_gans_onsets_and_loads_by_its_spec():
    default, loaded = default_beat_tracker(), load_beat_tracker(DEFAULT_BEAT_TRACKER)
    assert default.function is d2m_onset_beats_s and loaded.protocol() == default.protocol()
    assert default.protocol()["beats"] == DEFAULT_BEATS == "onsets-d2m"
    assert "onset.onset_detect(wait=1, delta=0.2, pre_avg=1, post_avg=1, post_max=1)" in default.description


def test_named_protocols_load_their_trackers_and_bad_choices_are_refused():
    for name, spec in BEAT_PROTOCOLS.items():
        tracker = load_beat_tracker(beat_tracker_spec(name))
        assert (tracker.spec, tracker.protocol()["beats"]) == (spec, name)
    assert load_beat_tracker(beat_tracker_spec(None)).function is d2m_onset_beats_s
    assert load_beat_tracker(beat_tracker_spec("beat_track")).function is music_beats_s
    assert beat_tracker_spec(f"{PLUGINS}:fixed_beats_s") == f"{PLUGINS}:fixed_beats_s"
    with pytest.raises(BeatTrackerError, match="unknown beat protocol 'beats'.*given as module:function"):
        beat_tracker_spec("beats")


def test_the_onset_protocols_find_the_drum_hits():
    audio = drums(8.0, 0.0)
    for tracker in (d2m_onset_beats_s, loris_onset_beats_s):
        onsets_s = tracker(audio, DRUM_RATE_HZ)
        hits = [np.min(np.abs(onsets_s - beat_s)) <= 0.05 for beat_s in np.arange(0.0, 8.0, BEAT_PERIOD_S)]
        assert np.mean(hits) >= 0.9, tracker.__name__


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("model.metrics.rhythm", "expected module:function"),
        (":music_beats_s", "expected module:function"),
        ("no_such_module_for_beats:beats", "module 'no_such_module_for_beats' cannot be imported"),
        (f"{PLUGINS}:missing_beats_s", "has no attribute 'missing_beats_s'"),
        (f"{PLUGINS}:NOT_CALLABLE", "is a int, not callable"),
        (f"{PLUGINS}:text_beats_s", "returned str, not beat times"),
        (f"{PLUGINS}:descending_beats_s", "times out of order"),
        (f"{PLUGINS}:late_beats_s", "times after the end of the audio (4.00 s)"),
        (f"{PLUGINS}:matrix_beats_s", "shape (2, 2)"),
        (f"{PLUGINS}:failing_beats_s", "failed: RuntimeError('no beats today') (on a probe click track of 4 s)"),
    ],
)
def test_bad_specs_and_bad_outputs_are_refused_with_the_reason(spec, message):
    with pytest.raises(BeatTrackerError) as caught:
        load_beat_tracker(spec)
    assert message in str(caught.value)


def test_the_probe_is_a_click_every_half_second():
    probe = probe_signal(1_000)
    assert probe.size == 4_000 and np.flatnonzero(probe == probe.max()).tolist() == list(range(0, 4_000, 500))


def test_the_plp_tracker_puts_beats_on_the_drum_grid():
    tracker = load_beat_tracker("model.metrics.rhythm:plp_beats_s")
    assert "beat.plp" in tracker.description
    beats_s = tracker.beats_s(drums(8.0, BEAT_PERIOD_S / 2))  # hits at 0.25, 0.75, ...
    inner = beats_s[(beats_s > 1.0) & (beats_s < 7.0)]
    assert inner.size == 12  # one beat per hit between 1 and 7 s
    offset_s = (inner - BEAT_PERIOD_S / 2) % BEAT_PERIOD_S
    assert np.all(np.minimum(offset_s, BEAT_PERIOD_S - offset_s) < 0.05)
