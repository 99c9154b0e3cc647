"""The manifest's rhythm summary (`manifests.music_rhythm`, measured by `manifests.media_facts`): a metronome's
tempo and beats, silence, and the facts publish records from a stereo FLAC."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from manifests.media_facts import music_facts
from manifests.music_rhythm import ANALYSIS_RATE_HZ, BeatSummary, beat_summary, resample_mono

FILE_RATE_HZ = 44_100


def metronome(duration_s: float, period_s: float, rate_hz: int) -> tuple[np.ndarray, int]:
    """Mono clicks (5 ms decaying bursts) every `period_s` from 0.5 s; returns the audio and the click count."""
    audio = np.zeros(round(duration_s * rate_hz), dtype=np.float32)
    times_s = np.arange(0.5, duration_s - 0.1, period_s)
    burst = np.exp(-np.arange(round(0.005 * rate_hz)) / (0.001 * rate_hz)).astype(np.float32)
    for time_s in times_s:
        begin = round(time_s * rate_hz)
        audio[begin : begin + burst.size] += 0.5 * burst
    return audio, times_s.size


def test_a_metronome_has_its_tempo_and_about_one_beat_per_click():
    audio, clicks = metronome(12.0, 0.5, ANALYSIS_RATE_HZ)
    summary = beat_summary(audio)
    assert summary.tempo_bpm == pytest.approx(120.0, rel=0.02)
    assert clicks - 2 <= summary.beat_count <= clicks
    assert beat_summary(np.zeros(ANALYSIS_RATE_HZ * 3, dtype=np.float32)) == BeatSummary(0.0, 0)
    assert beat_summary(np.zeros(0, dtype=np.float32)) == BeatSummary(0.0, 0)


def test_publish_measures_the_tempo_of_the_channel_mean_at_the_analysis_rate(tmp_path):
    audio, _ = metronome(10.0, 60 / 100, FILE_RATE_HZ)  # 100 BPM, right channel silent
    path = tmp_path / "music.flac"
    sf.write(path, np.stack([audio, np.zeros_like(audio)], axis=1), FILE_RATE_HZ, subtype="PCM_16")
    facts = music_facts(path)
    decoded, _ = sf.read(path, dtype="float32", always_2d=True)
    expected = beat_summary(resample_mono(decoded.mean(axis=1), FILE_RATE_HZ, ANALYSIS_RATE_HZ))
    assert (facts.tempo_bpm, facts.beat_count) == (expected.tempo_bpm, expected.beat_count)
    assert facts.tempo_bpm == pytest.approx(100.0, rel=0.03)
    assert (facts.samples, facts.duration_s) == (audio.size, pytest.approx(10.0))
