"""Music rhythm representations (Diff-V2M's ODF, tempogram, low-resolution mel; beats, downbeats) on
click tracks with known times, and their per-clip cache."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from dvmset.storage import DataRoot
from manifests.media_facts import music_facts
from manifests.music_rhythm import resample_mono
from model import music_features as mf

RATE_HZ = 22_050


def clicks(
    duration_s: float, period_s: float, accent_every: int = 0, start_s: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Mono clicks (5 ms decaying bursts) every `period_s` from `start_s`; every `accent_every`th one
    (from the first) four times louder. Returns the audio and the click times."""
    audio = np.zeros(round(duration_s * RATE_HZ), dtype=np.float32)
    times_s = np.arange(start_s, duration_s - 0.1, period_s)
    burst = np.exp(-np.arange(200) / 40.0).astype(np.float32)
    for index, time_s in enumerate(times_s):
        gain = 1.0 if accent_every and index % accent_every == 0 else 0.25
        begin = round(time_s * RATE_HZ)
        audio[begin : begin + burst.size] += gain * burst
    return audio, times_s


def test_pool_takes_each_bins_frames_and_leaves_empty_bins_zero():
    frames = np.array([1.0, 5.0, 2.0, 0.0, 3.0])  # at 4 Hz: 0, 0.25, 0.5, 0.75, 1.0 s
    assert mf.pool(frames, 4.0, 2.0, 4, np.max).tolist() == [5.0, 2.0, 3.0, 0.0]
    assert mf.pool(frames, 4.0, 1.0, 2, np.mean).tolist() == pytest.approx([2.0, 3.0])


def test_the_odf_peaks_at_the_clicks_at_ten_hertz_and_beats_fall_within_20_ms():
    audio, times_s = clicks(12.0, 0.5, start_s=0.55)  # mid-bin: an onset is placed within a hop (11.6 ms)
    features = mf.music_features(audio, RATE_HZ)
    assert features.odf.shape == (120,) and features.odf.max() == pytest.approx(1.0)
    click_bins = np.unique(np.floor(times_s * mf.ODF_RATE_HZ).astype(int))
    others = np.setdiff1d(np.arange(features.odf.size), click_bins)
    assert features.odf[click_bins].min() > 0.5 and features.odf[others].max() < 0.3
    assert features.tempo_bpm == pytest.approx(120.0, rel=0.02)
    nearest_s = np.abs(features.beats_s[:, None] - times_s[None, :]).min(axis=1)
    assert features.beats_s.size >= times_s.size - 1 and nearest_s.max() <= 0.020
    assert features.tempogram.shape == (12, mf.TEMPOGRAM_LAGS) and features.mel.shape == (120, mf.MEL_BANDS)


def test_downbeats_are_the_accented_phase_of_a_four_four_metronome():
    audio, times_s = clicks(16.0, 0.5, accent_every=4, start_s=1.0)  # accents at 1, 3, 5, ... s
    features = mf.music_features(audio, RATE_HZ)
    accents_s = times_s[::4]
    nearest_s = np.abs(features.downbeats_s[:, None] - accents_s[None, :]).min(axis=1)
    assert features.downbeats_s.size >= accents_s.size - 1 and nearest_s.max() <= 0.020
    assert mf.downbeats_from(np.arange(7.0), np.ones(100), 10.0).size == 0  # under two bars: none


def test_a_clips_features_are_cached_and_read_back_without_decoding(tmp_path, monkeypatch):
    data = DataRoot(tmp_path)
    clip_id = "local:abc:00000000"
    audio, _ = clicks(6.0, 0.5)
    data.clip_dir(clip_id).mkdir(parents=True)
    sf.write(data.clip_music_path(clip_id), np.stack([audio, audio], axis=1), RATE_HZ)
    first = mf.clip_music_features(data, clip_id)
    assert mf.music_features_path(data, clip_id).is_file()

    def no_decoding(*_args):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(mf, "read_music", no_decoding)
    (again,) = mf.music_features_for_clips(data, [clip_id])
    for name in ("odf", "tempogram", "mel", "beats_s", "downbeats_s"):
        assert np.array_equal(getattr(again, name), getattr(first, name)), name
    assert (again.tempo_bpm, again.duration_s) == (first.tempo_bpm, first.duration_s)


def test_the_manifests_tempo_and_beat_count_are_those_of_the_cached_features(tmp_path):
    data = DataRoot(tmp_path)
    clip_id = "local:abc:00000000"
    audio, _ = clicks(8.0, 0.4)
    stereo = np.stack([resample_mono(audio, RATE_HZ, 44_100), np.zeros(round(8.0 * 44_100), np.float32)], axis=1)
    data.clip_dir(clip_id).mkdir(parents=True)
    sf.write(data.clip_music_path(clip_id), stereo, 44_100)
    features = mf.clip_music_features(data, clip_id)
    facts = music_facts(data.clip_music_path(clip_id))
    assert (facts.tempo_bpm, facts.beat_count) == (features.tempo_bpm, features.beats_s.size)
    assert features.tempo_bpm == pytest.approx(150.0, rel=0.03)
