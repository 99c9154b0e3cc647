import numpy as np
import pyloudnorm
import pytest
import soundfile
from scipy.signal import resample_poly

from curation import loudness

SR = 44_100
TARGET_LUFS = -14.0
CEILING_DBTP = -1.0
TOLERANCE_DB = 1e-4  # float32 output rounding


def at_lufs(samples: np.ndarray, lufs: float) -> np.ndarray:
    """`samples` `[T, C]` scaled to `lufs`, measured by pyloudnorm itself."""
    return samples * 10.0 ** ((lufs - pyloudnorm.Meter(SR).integrated_loudness(samples)) / 20.0)


def music(duration_s: float = 10.0, channels: int = 2) -> np.ndarray:
    """`[T, C]`: an A major chord over a kick drum every half second."""
    t = np.arange(int(duration_s * SR)) / SR
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63)) / 3
    since_kick = t % 0.5
    kick = np.sin(2 * np.pi * 55.0 * since_kick) * np.exp(-since_kick / 0.08)
    return np.stack([(0.3 + 0.02 * c) * chord + 0.7 * kick for c in range(channels)], axis=1)


def noise(duration_s: float = 10.0) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1.0, 1.0, size=(int(duration_s * SR), 2))


@pytest.mark.parametrize("signal", [music, noise])
@pytest.mark.parametrize("input_lufs", [-30.0, -8.0])
def test_quiet_and_loud_clips_reach_the_target_under_the_ceiling(signal, input_lufs):
    samples = at_lufs(signal(), input_lufs)
    result = loudness.normalize(samples, SR, target_lufs=TARGET_LUFS, true_peak_ceiling_dbtp=CEILING_DBTP)
    measured = loudness.measure(result.samples, SR)
    assert abs(measured.integrated_lufs - TARGET_LUFS) <= 0.5
    assert measured.true_peak_dbtp <= CEILING_DBTP + TOLERANCE_DB
    assert result.gain_db == pytest.approx(TARGET_LUFS - input_lufs, abs=0.01)
    assert result.samples.dtype == np.float32 and result.samples.shape == samples.shape
    assert result.after.integrated_lufs == pytest.approx(measured.integrated_lufs, abs=0.01)
    assert not result.silent


def test_sparse_clicks_are_limited_only_around_the_clicks():
    samples = 0.003 * noise()
    click_starts = np.arange(0, samples.shape[0], 2 * SR)
    samples[click_starts] = 0.5
    result = loudness.normalize(samples, SR, target_lufs=TARGET_LUFS, true_peak_ceiling_dbtp=CEILING_DBTP)
    ceiling = 10.0 ** (CEILING_DBTP / 20.0)
    assert result.limited
    assert np.abs(result.samples).max() <= ceiling
    assert loudness.measure(result.samples, SR).true_peak_dbtp <= CEILING_DBTP + TOLERANCE_DB
    assert result.after.integrated_lufs < TARGET_LUFS  # the limiter took some loudness, and says so
    between_clicks = slice(click_starts[1] + SR // 2, click_starts[1] + 3 * SR // 2)
    full_gain = 10.0 ** (result.gain_db / 20.0)
    np.testing.assert_allclose(result.samples[between_clicks], samples[between_clicks] * full_gain, rtol=1e-5)


def test_true_peak_finds_the_peak_between_samples_and_the_limiter_uses_it():
    amplitude = 0.5
    quarter_rate_sine = amplitude * np.sin(2 * np.pi * np.arange(2 * SR) / 4 + np.pi / 4)
    samples = np.stack([quarter_rate_sine, quarter_rate_sine], axis=1)
    measured = loudness.measure(samples, SR)
    analytic_dbtp = 20 * np.log10(amplitude)
    assert abs(measured.true_peak_dbtp - analytic_dbtp) <= 0.2
    assert measured.sample_peak_dbfs == pytest.approx(analytic_dbtp - 3.01, abs=0.01)

    ceiling_dbtp = analytic_dbtp - 1.5  # above every sample, below the peaks between them
    result = loudness.normalize(
        samples, SR, target_lufs=measured.integrated_lufs, true_peak_ceiling_dbtp=ceiling_dbtp
    )
    assert result.limited
    assert loudness.measure(result.samples, SR).true_peak_dbtp <= ceiling_dbtp + TOLERANCE_DB


def test_the_block_wise_true_peak_envelope_is_the_whole_signals():
    samples = np.concatenate([music(duration_s=2.0), noise(duration_s=1.5)]).astype(np.float32)
    whole = np.abs(resample_poly(samples.astype(np.float64), 4, 1, axis=0))
    whole = whole.reshape(samples.shape[0], -1).max(axis=1)
    envelope = loudness._true_peak_envelope(samples)
    assert samples.shape[0] > 3 * loudness._PEAK_BLOCK  # several blocks, and their seams
    np.testing.assert_allclose(envelope, whole, atol=1e-5)


@pytest.mark.parametrize("gain_db", [0.0, 40.0, -3.0])
def test_the_gain_shifted_gated_loudness_is_pyloudnorms(gain_db):
    """A quiet part under the -70 LUFS absolute gate rises over it with +40 dB: the shortcut gates again."""
    samples = np.concatenate([at_lufs(music(duration_s=3.0), -66.0), at_lufs(noise(duration_s=3.0), -72.0)])
    blocks = loudness._block_lufs(samples, SR)
    expected = pyloudnorm.Meter(SR).integrated_loudness(samples * 10.0 ** (gain_db / 20.0))
    assert loudness._gated_lufs(blocks + gain_db) == pytest.approx(expected, abs=1e-6)
    if gain_db == 40.0:  # the quiet part counts now: merely adding the gain would be wrong
        assert abs(expected - (loudness._gated_lufs(blocks) + gain_db)) > 0.5


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    "samples, silence_lufs",
    [
        (np.zeros((2 * SR, 2)), -70.0),
        (music(duration_s=0.1), -70.0),  # shorter than one 400 ms gating block
        (at_lufs(noise(duration_s=2.0), -60.0), -50.0),  # quieter than the silence threshold
    ],
    ids=["zeros", "100ms", "near_silent"],
)
def test_silent_and_too_short_clips_come_back_unchanged(samples, silence_lufs):
    result = loudness.normalize(samples, SR, silence_lufs=silence_lufs)
    assert result.silent and not result.limited
    assert result.gain_db == 0.0
    np.testing.assert_array_equal(result.samples, samples.astype(np.float32))
    assert np.isfinite(result.samples).all()
    assert result.after == result.before


def test_mono_and_5_1_reach_the_target():
    mono = at_lufs(music(channels=1), -25.0)
    five_one = 0.1 * music(channels=6)  # L R C LFE Ls Rs
    for samples, weighted_channels in ((mono, [0]), (five_one, [0, 1, 2, 4, 5])):
        result = loudness.normalize(samples, SR, target_lufs=TARGET_LUFS)
        assert result.samples.shape == samples.shape
        assert np.isfinite(result.samples).all() and np.isfinite(result.gain_db)
        out = result.samples[:, weighted_channels].astype(np.float64)
        assert abs(pyloudnorm.Meter(SR).integrated_loudness(out) - TARGET_LUFS) <= 0.5


def test_5_1_loudness_leaves_out_the_lfe():
    only_lfe = np.zeros((2 * SR, 6))
    only_lfe[:, 3] = music(duration_s=2.0, channels=1)[:, 0]
    result = loudness.normalize(only_lfe, SR)
    assert result.silent
    assert np.isfinite(result.samples).all()
    assert result.before.integrated_lufs == float("-inf")
    assert result.before.true_peak_dbtp > -6.0  # peaks still count on every channel


def test_more_than_six_channels_are_refused():
    with pytest.raises(ValueError, match="1 to 6 channels"):
        loudness.measure(np.zeros((SR, 8)), SR)


def test_normalize_file_writes_a_24_bit_flac_atomically(tmp_path):
    samples = at_lufs(music(), -24.0)
    in_path = tmp_path / "in" / "music.wav"
    in_path.parent.mkdir()
    soundfile.write(in_path, samples, SR, subtype="FLOAT")
    out_path = tmp_path / "out" / "music.flac"

    result = loudness.normalize_file(in_path, out_path)

    info = soundfile.info(out_path)
    assert (info.format, info.subtype) == ("FLAC", "PCM_24")
    assert (info.frames, info.samplerate, info.channels) == (samples.shape[0], SR, 2)
    assert sorted(p.name for p in out_path.parent.iterdir()) == ["music.flac"]
    written, _ = soundfile.read(out_path, always_2d=True)
    measured = loudness.measure(written, SR)
    assert abs(measured.integrated_lufs - TARGET_LUFS) <= 0.5
    assert measured.true_peak_dbtp <= CEILING_DBTP + 0.01  # 24-bit rounding
    assert result.gain_db == pytest.approx(TARGET_LUFS + 24.0, abs=0.01)


def test_normalize_file_leaves_no_temp_file_when_the_write_fails(tmp_path, monkeypatch):
    in_path = tmp_path / "music.wav"
    soundfile.write(in_path, music(duration_s=1.0), SR, subtype="FLOAT")
    out_path = tmp_path / "out" / "music.flac"

    def broken_write(path, *args, **kwargs):
        path.write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(loudness.soundfile, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        loudness.normalize_file(in_path, out_path)
    assert list(out_path.parent.iterdir()) == []
