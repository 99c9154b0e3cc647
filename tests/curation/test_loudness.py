import numpy as np
import pyloudnorm
import pytest
import soundfile
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import lfilter, resample_poly

from curation import loudness
from dvmset.config import LoudnessConfig

SR = 44_100
TARGET_LUFS = -14.0
CEILING_DBTP = -1.0
TOLERANCE_DB = 1e-4  # float32 output rounding
SETTINGS = LoudnessConfig(target_lufs=TARGET_LUFS, true_peak_ceiling_dbtp=CEILING_DBTP)


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
    result = loudness.normalize(samples, SR, SETTINGS)
    measured = loudness.measure(result.samples, SR)
    assert abs(measured.integrated_lufs - TARGET_LUFS) <= 0.5
    assert measured.true_peak_dbtp <= CEILING_DBTP + TOLERANCE_DB
    assert result.gain_db == pytest.approx(TARGET_LUFS - input_lufs, abs=0.01)
    assert result.samples.dtype == np.float32 and result.samples.shape == samples.shape
    assert result.after.integrated_lufs == pytest.approx(measured.integrated_lufs, abs=0.01)
    assert result.after.true_peak_dbtp == pytest.approx(measured.true_peak_dbtp, abs=TOLERANCE_DB)
    assert result.after.sample_peak_dbfs == pytest.approx(measured.sample_peak_dbfs, abs=TOLERANCE_DB)
    assert not result.silent


def test_sparse_clicks_are_limited_only_around_the_clicks():
    samples = 0.003 * noise()
    click_starts = np.arange(0, samples.shape[0], 2 * SR)
    samples[click_starts] = 0.5
    result = loudness.normalize(samples, SR, SETTINGS)
    ceiling = 10.0 ** (CEILING_DBTP / 20.0)
    assert result.limited
    assert np.abs(result.samples).max() <= ceiling
    measured = loudness.measure(result.samples, SR)
    assert measured.true_peak_dbtp <= CEILING_DBTP + TOLERANCE_DB
    assert result.after.true_peak_dbtp == pytest.approx(measured.true_peak_dbtp, abs=TOLERANCE_DB)
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
    settings = LoudnessConfig(target_lufs=measured.integrated_lufs, true_peak_ceiling_dbtp=ceiling_dbtp)
    result = loudness.normalize(samples, SR, settings)
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
    result = loudness.normalize(samples, SR, LoudnessConfig(silence_lufs=silence_lufs))
    assert result.silent and not result.limited
    assert result.gain_db == 0.0
    np.testing.assert_array_equal(result.samples, samples.astype(np.float32))
    assert np.isfinite(result.samples).all()
    assert result.after == result.before


def test_mono_and_5_1_reach_the_target():
    mono = at_lufs(music(channels=1), -25.0)
    five_one = 0.1 * music(channels=6)  # L R C LFE Ls Rs
    for samples, weighted_channels in ((mono, [0]), (five_one, [0, 1, 2, 4, 5])):
        result = loudness.normalize(samples, SR, SETTINGS)
        assert result.samples.shape == samples.shape
        assert np.isfinite(result.samples).all() and np.isfinite(result.gain_db)
        out = result.samples[:, weighted_channels].astype(np.float64)
        assert abs(pyloudnorm.Meter(SR).integrated_loudness(out) - TARGET_LUFS) <= 0.5


def test_5_1_loudness_leaves_out_the_lfe():
    only_lfe = np.zeros((2 * SR, 6))
    only_lfe[:, 3] = music(duration_s=2.0, channels=1)[:, 0]
    result = loudness.normalize(only_lfe, SR, SETTINGS)
    assert result.silent
    assert np.isfinite(result.samples).all()
    assert result.before.integrated_lufs == float("-inf")
    assert result.before.true_peak_dbtp > -6.0  # peaks still count on every channel


def test_more_than_six_channels_are_refused():
    with pytest.raises(ValueError, match="1 to 6 channels"):
        loudness.measure(np.zeros((SR, 8)), SR)


def test_normalize_to_file_writes_a_24_bit_flac_atomically(tmp_path):
    samples = at_lufs(music(), -24.0)
    out_path = tmp_path / "out" / "music.flac"
    out_path.parent.mkdir()

    result = loudness.normalize_to_file(samples, SR, out_path, SETTINGS)

    info = soundfile.info(out_path)
    assert (info.format, info.subtype) == ("FLAC", "PCM_24")
    assert (info.frames, info.samplerate, info.channels) == (samples.shape[0], SR, 2)
    assert sorted(p.name for p in out_path.parent.iterdir()) == ["music.flac"]
    written, _ = soundfile.read(out_path, always_2d=True)
    measured = loudness.measure(written, SR)
    assert abs(measured.integrated_lufs - TARGET_LUFS) <= 0.5
    assert measured.true_peak_dbtp <= CEILING_DBTP + 0.01  # 24-bit rounding
    assert result.gain_db == pytest.approx(TARGET_LUFS + 24.0, abs=0.01)


def test_normalize_to_file_leaves_no_temp_file_when_the_write_fails(tmp_path, monkeypatch):
    out_path = tmp_path / "out" / "music.flac"
    out_path.parent.mkdir()

    def broken_write(path, *args, **kwargs):
        path.write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(loudness.soundfile, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        loudness.normalize_to_file(music(duration_s=1.0), SR, out_path, SETTINGS)
    assert list(out_path.parent.iterdir()) == []


def clicks_and_gain_curve(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Quiet noise `[T, 2]` float32 with a few clicks, and a limiter's gain curve `[T]` dipping at them."""
    samples = (0.01 * noise(duration_s=1.0)).astype(np.float32)
    rng = np.random.default_rng(seed)
    clicks = rng.choice(samples.shape[0], size=5, replace=False)
    samples[clicks] = rng.choice([-0.9, 0.9], size=(5, 2))
    samples[-1] = 0.9  # a click on the last frame: the signal's end is inside the filter's reach
    envelope = loudness._true_peak_envelope(samples)
    gain_curve = loudness._limiter_gain(envelope * np.float32(4.0), 0.5, SR) * np.float32(4.0)
    return samples, gain_curve


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_bounded_limited_true_peak_is_the_full_envelopes_maximum(seed):
    samples, gain_curve = clicks_and_gain_curve(seed)
    gained = samples * gain_curve[:, None]
    envelope = loudness._true_peak_envelope(samples)
    expected = float(loudness._true_peak_envelope(gained).max())
    assert gain_curve.min() < 0.9 * gain_curve.max()  # the gain does change around the clicks
    true_peak = loudness._gained_true_peak(gained, samples, gain_curve, envelope)
    assert true_peak == pytest.approx(expected, rel=1e-6)


def test_a_steep_gain_change_is_bounded_too():
    """A gain window cut out of a long burst at Nyquist rings at its edges: the gained signal peaks
    above anything the gain curve times the burst's own envelope shows."""
    samples = np.zeros((4096, 2), dtype=np.float32)
    samples[1000:1200] = 0.4 * (-1.0) ** np.arange(200)[:, None]
    samples[3000] = 0.45  # a click whose block the bound would pick first, were the ringing left out
    gain_curve = np.full(4096, 0.05, dtype=np.float32)
    gain_curve[1090:1110] = gain_curve[3000] = 1.0
    envelope = loudness._true_peak_envelope(samples)
    gained = samples * gain_curve[:, None]
    expected = float(loudness._true_peak_envelope(gained).max())
    assert expected > 1.05 * float((gain_curve * envelope).max())  # the ringing the bound must allow for
    true_peak = loudness._gained_true_peak(gained, samples, gain_curve, envelope)
    assert true_peak == pytest.approx(expected, rel=1e-6)


def test_gathered_blocks_see_zeros_beyond_the_ends_as_the_whole_signal_does():
    samples = (0.5 * noise(duration_s=0.05)).astype(np.float32)  # 2205 frames: the last block is partial
    block_frames = 64
    blocks = np.array([0, 5, 6, samples.shape[0] // block_frames])
    padded = np.zeros((blocks.max() + 1) * block_frames, dtype=np.float32)
    padded[: samples.shape[0]] = loudness._true_peak_envelope(samples)
    expected = padded.reshape(-1, block_frames)[blocks]
    np.testing.assert_array_equal(loudness._blocks_envelope(samples, blocks, block_frames), expected)


def test_blocks_are_gathered_in_batches_with_the_same_result():
    samples = (0.5 * noise(duration_s=1.7)).astype(np.float32)
    block_frames = 256
    blocks = np.arange(-(-samples.shape[0] // block_frames))
    assert blocks.shape[0] * (block_frames + 2 * loudness._REACH) > 2 * loudness._PEAK_BLOCK  # three batches
    envelope = loudness._blocks_envelope(samples, blocks, block_frames).ravel()
    np.testing.assert_array_equal(envelope[: samples.shape[0]], loudness._true_peak_envelope(samples))
    assert not envelope[samples.shape[0] :].any()


def test_the_envelope_bounds_are_exact_wherever_they_can_matter():
    """Quiet music with a few loud clicks: the maximum and every value over the floor are exact, and
    everything else is a bound no lower than the envelope, and no higher than the floor."""
    samples = np.concatenate([0.01 * music(duration_s=1.0), np.zeros((SR // 2, 2))]).astype(np.float32)
    samples[[5_000, 20_000, 40_000]] = 0.8
    envelope = loudness._true_peak_envelope(samples)
    floor = 0.05
    bounds = loudness._envelope_bounds(samples, floor)
    assert bounds.shape == envelope.shape and bounds.dtype == np.float32
    assert bounds.max() == envelope.max()
    over = envelope > floor
    np.testing.assert_array_equal(bounds[over], envelope[over])
    assert (bounds >= envelope).all() and (bounds[bounds != envelope] <= floor).all()
    assert (bounds != envelope).mean() > 0.5  # most blocks were skipped, or this proves nothing
    assert loudness._envelope_bounds(samples, np.inf).max() == envelope.max()


@pytest.mark.parametrize("seed", [0, 1])
def test_the_span_wise_hold_and_ramp_match_the_whole_signals(seed):
    """Reference: the limiter's filters run over the whole signal, peaks near both ends included."""
    samples, _ = clicks_and_gain_curve(seed)
    samples[3] = 0.9  # a click within the look-ahead of the first frame
    envelope = loudness._true_peak_envelope(samples) * np.float32(4.0)
    lookahead = round(loudness._LOOKAHEAD_S * SR)
    needed = 0.5 / np.maximum(envelope, 0.5)
    held = minimum_filter1d(needed, lookahead, origin=-(lookahead // 2), mode="nearest")
    ramped = uniform_filter1d(held, lookahead, origin=(lookahead - 1) // 2, mode="nearest")
    pole = np.exp(-1.0 / (loudness._RELEASE_S * SR))
    released, _ = lfilter([1.0 - pole], [1.0, -pole], ramped, zi=[pole])
    expected = np.minimum(ramped, released)
    gain = loudness._limiter_gain(envelope, 0.5, SR)
    assert len(loudness._spans(np.flatnonzero(needed < 1.0), 2 * lookahead, needed.shape[0])) > 2
    np.testing.assert_allclose(gain, expected, rtol=1e-6, atol=0)


def test_spans_widen_and_merge():
    spans = loudness._spans(np.array([5, 6, 50, 200, 230]), margin=10, frames=235)
    assert spans == [(0, 17), (40, 61), (190, 235)]
    assert loudness._spans(np.array([], dtype=np.intp), margin=10, frames=100) == []
