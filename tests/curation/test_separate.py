"""The separate stage, with a tiny random-weight HTDemucs saved in Demucs' own repo format.

The tiny model runs at 8 kHz (a real model's rate comes from the model, never from the code) and
splits each window into 4 s segments every 3 s (demucs' `apply_model`, overlap 0.25).
"""

from __future__ import annotations

import math
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import demucs.hf
import numpy as np
import pytest
import soundfile as sf
import torch
from demucs.apply import BagOfModels
from demucs.htdemucs import HTDemucs

from curation import separate
from curation.samples import VideoSpec, make_video
from curation.separate import (
    ModelNotFoundError,
    decode_audio,
    load_separator,
    plan_windows,
    save_tiny_model,
    separate_file,
    separate_track,
)
from curation.speech import HOP_S, load_speech_detector, speech_probabilities, speech_segments
from dvmset.config import SeparateConfig
from dvmset.errors import DvmsetError, ReasonCode, StageError
from dvmset.storage import is_temp_name

SAMPLE_RATE_HZ = 8000
EIGHT_S = SeparateConfig(chunk_s=8, overlap_s=1)  # windows of 8 s + 1 s cross-fade


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demucs_repo")
    save_tiny_model(folder, "tiny-random", sample_rate_hz=SAMPLE_RATE_HZ)
    return folder


@pytest.fixture(scope="module")
def separator(model_dir):
    return load_separator("tiny-random", model_dir, device="cpu")


@pytest.fixture(scope="module")
def detector():
    return load_speech_detector()


@pytest.fixture
def pointwise_model(monkeypatch):
    """Replace demucs' apply_model with stems that are fixed fractions of the mix (drums, bass, other:
    0.25 each, vocals 0.25), so stitching errors show exactly; record every input length."""
    lengths: list[int] = []

    def fake_apply_model(model, mix, **kwargs):
        lengths.append(mix.shape[-1])
        return torch.stack([0.25 * mix] * 4, dim=1)  # [1, 4, C, L]

    monkeypatch.setattr(separate, "apply_model", fake_apply_model)
    return lengths


def _stereo_noise(duration_s: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t_s = np.arange(round(duration_s * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    tones = np.stack([np.sin(2 * np.pi * 220 * t_s), np.sin(2 * np.pi * 330 * t_s)])
    return (0.3 * tones + 0.05 * rng.standard_normal(tones.shape)).astype(np.float32)


def _frame_db(signal: np.ndarray, frame_samples: int) -> np.ndarray:
    """Reference RMS level per frame of a [2, T] signal, computed in one go."""
    frames = [signal[:, i : i + frame_samples] for i in range(0, signal.shape[1], frame_samples)]
    return np.array([10 * np.log10(max(np.mean(np.square(f, dtype=np.float64)), 1e-12)) for f in frames])


def _relative_rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(b**2)))


def test_tiny_model_is_saved_in_demucs_format_and_loads_by_name(model_dir, separator):
    names = sorted(path.name for path in model_dir.iterdir())
    assert names[1] == "tiny-random.yaml" and names[0].endswith(".th") and names[0].count("-") == 1
    assert separator.model_id == "tiny-random"
    assert separator.sample_rate_hz == SAMPLE_RATE_HZ
    assert separator.sources == ("drums", "bass", "other", "vocals")
    assert separator.device == "cpu"
    assert isinstance(separator.model, BagOfModels) and isinstance(separator.model.models[0], HTDemucs)
    default_device = load_separator("tiny-random", model_dir).device
    assert default_device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_a_missing_model_says_where_it_looked_and_how_to_provide_it(model_dir, tmp_path):
    with pytest.raises(ModelNotFoundError) as caught:
        load_separator("no-such-model", model_dir, device="cpu")
    assert isinstance(caught.value, DvmsetError)
    assert "no-such-model" in str(caught.value) and str(model_dir) in str(caught.value)
    assert "DVMSET_MODEL_DIR" in str(caught.value)
    # A published model: the message names its exact files, here htdemucs' single checkpoint.
    with pytest.raises(ModelNotFoundError, match="955717e8-8726e21a.th"):
        load_separator("htdemucs", model_dir, device="cpu")
    with pytest.raises(ModelNotFoundError, match="does not exist"):  # demucs itself would sys.exit
        load_separator("htdemucs", tmp_path / "absent", device="cpu")


def test_offline_without_a_model_folder_names_the_remote_places_and_caches(monkeypatch, tmp_path):
    """Both of Demucs' remote sources fail as they do offline; no network is touched. The hub is taken
    as reachable (so that Demucs' own loader runs) and the dvmset weights cache is empty."""

    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setenv("DVMSET_WEIGHTS_CACHE", str(tmp_path / "weights"))
    monkeypatch.setattr(separate, "offline_reason", lambda *args, **kwargs: None)
    monkeypatch.setattr(demucs.hf, "get_hf_model", unreachable)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", unreachable)
    with pytest.raises(ModelNotFoundError) as caught:
        load_separator("htdemucs", None, device="cpu")
    message = str(caught.value)
    assert "'htdemucs'" in message and "network is unreachable" in message
    assert str(Path(torch.hub.get_dir()) / "checkpoints") in message and "adefossez/HTDemucs" in message
    assert "get_model('htdemucs')" in message and "DVMSET_MODEL_DIR" in message


def test_plan_windows_overlap_and_cover_the_track():
    assert plan_windows(100, 30, 10) == [(0, 40), (30, 70), (60, 100)]
    assert plan_windows(40, 30, 10) == [(0, 40)]
    assert plan_windows(41, 30, 10) == [(0, 40), (30, 41)]
    with pytest.raises(ValueError):
        plan_windows(100, 30, 30)


def test_separate_track_shapes(separator, detector):
    audio = _stereo_noise(20.0)
    result = separate_track(separator, audio, SeparateConfig(chunk_s=6, overlap_s=1), detector)
    num_frames = math.ceil(audio.shape[1] / round(0.1 * SAMPLE_RATE_HZ))
    assert result.accompaniment.shape == audio.shape and result.accompaniment.dtype == np.float32
    assert np.isfinite(result.accompaniment).all() and np.abs(result.accompaniment).max() > 0
    assert result.vocals_energy_db.shape == result.accompaniment_energy_db.shape == (num_frames,)
    assert np.isfinite(result.vocals_energy_db).all() and np.isfinite(result.accompaniment_energy_db).all()
    assert (result.frame_s, result.sample_rate_hz, result.model_id) == (0.1, SAMPLE_RATE_HZ, "tiny-random")
    assert result.speech_hop_s == HOP_S and result.speech_prob.shape == (math.ceil(20 * 16_000 / 512),)
    assert result.speech_prob.dtype == np.float32 and ((result.speech_prob >= 0) & (result.speech_prob <= 1)).all()
    assert speech_segments(result.speech_prob, HOP_S) == []  # the random model's "vocals" are filtered noise


def test_chunking_is_seamless(separator):
    """chunk_s=6 is a multiple of demucs' 3 s segment hop, so away from the 1 s cross-fades and the
    short last window (whose zero padding differs) demucs sees the same segments as in one pass and
    the outputs agree to float rounding. Over the whole track the chunked result stays within 10 %
    relative RMS of the single pass (about 5 % measured); summing instead of cross-fading the
    overlaps, or misplacing a window, gives 40 % or more."""
    audio = _stereo_noise(20.0)
    chunked = separate_track(separator, audio, SeparateConfig(chunk_s=6, overlap_s=1))
    whole = separate_track(separator, audio, SeparateConfig(chunk_s=30, overlap_s=1))
    assert _relative_rms(chunked.accompaniment, whole.accompaniment) < 0.10
    t_s = np.arange(audio.shape[1]) / SAMPLE_RATE_HZ
    interior = (t_s < 18) & ~((t_s >= 6) & (t_s < 7)) & ~((t_s >= 12) & (t_s < 13))
    assert _relative_rms(chunked.accompaniment[:, interior], whole.accompaniment[:, interior]) < 1e-5
    frame_t_s = np.arange(whole.vocals_energy_db.size) * whole.frame_s
    frames = (frame_t_s < 17.9) & ~((frame_t_s > 5.9) & (frame_t_s < 7)) & ~((frame_t_s > 11.9) & (frame_t_s < 13))
    np.testing.assert_allclose(chunked.vocals_energy_db[frames], whole.vocals_energy_db[frames], atol=1e-3)
    assert np.abs(chunked.vocals_energy_db - whole.vocals_energy_db).max() < 3.0


def test_stitching_and_energy_are_exact_with_a_pointwise_model(separator, detector, pointwise_model):
    audio = _stereo_noise(20.0)
    frame_s = 0.07  # 560 samples: frames straddle the window boundaries
    result = separate_track(separator, audio, SeparateConfig(chunk_s=6, overlap_s=1, frame_s=frame_s), detector)
    np.testing.assert_allclose(result.accompaniment, 0.75 * audio, atol=1e-6)
    frame_samples = round(frame_s * SAMPLE_RATE_HZ)
    np.testing.assert_allclose(result.vocals_energy_db, _frame_db(0.25 * audio, frame_samples), atol=1e-3)
    np.testing.assert_allclose(result.accompaniment_energy_db, _frame_db(0.75 * audio, frame_samples), atol=1e-3)
    assert pointwise_model == [7 * SAMPLE_RATE_HZ] * 3 + [2 * SAMPLE_RATE_HZ]
    # The detector read the stitched vocals stem once, in order, each sample once.
    expected = speech_probabilities(detector, [0.25 * audio], SAMPLE_RATE_HZ)
    np.testing.assert_allclose(result.speech_prob, expected, atol=1e-4)


def test_windows_passed_to_demucs_stay_bounded(separator, pointwise_model):
    audio = _stereo_noise(60.0)
    separate_track(separator, audio, SeparateConfig(chunk_s=10, overlap_s=5))
    assert max(pointwise_model) <= (10 + 5) * SAMPLE_RATE_HZ
    assert len(pointwise_model) == 6


def test_mono_and_surround_inputs_are_accepted(separator, pointwise_model):
    mono = _stereo_noise(5.0)[:1]
    result = separate_track(separator, mono, SeparateConfig(chunk_s=2, overlap_s=0.5))
    np.testing.assert_allclose(result.accompaniment, 0.75 * np.repeat(mono, 2, axis=0), atol=1e-6)

    rng = np.random.default_rng(1)
    surround = (0.1 * rng.standard_normal((6, 5 * SAMPLE_RATE_HZ))).astype(np.float32)  # FL FR FC LFE BL BR
    gain = 1 / np.sqrt(2)
    left = surround[0] + gain * (surround[2] + surround[4])
    right = surround[1] + gain * (surround[2] + surround[5])
    expected = 0.75 * np.stack([left, right]) / (1 + 2 * gain)
    result = separate_track(separator, surround, SeparateConfig(chunk_s=2, overlap_s=0.5))
    np.testing.assert_allclose(result.accompaniment, expected, atol=1e-6)

    with pytest.raises(ValueError, match="4 channels"):
        separate_track(separator, surround[:4], SeparateConfig())


def test_separate_file_writes_accompaniment_and_energy(separator, detector, tmp_path):
    video = make_video(tmp_path / "video.mp4", VideoSpec(duration_s=20))
    out_dir = tmp_path / "stems"
    files = separate_file(separator, video, out_dir, EIGHT_S, detector)

    decoded = decode_audio(video, SAMPLE_RATE_HZ, timeout_s=60)
    assert files.model_id == "tiny-random"
    assert files.models == (separator.stamp, detector.stamp)
    assert files.accompaniment_path == out_dir / "accompaniment.flac"
    info = sf.info(files.accompaniment_path)
    assert (info.format, info.subtype, info.channels) == ("FLAC", "PCM_24", 2)
    assert (info.samplerate, info.frames) == (SAMPLE_RATE_HZ, decoded.shape[1])
    written, _ = sf.read(files.accompaniment_path, dtype="float32", always_2d=True)
    expected = separate_track(separator, decoded, EIGHT_S, detector)
    np.testing.assert_allclose(written.T, np.clip(expected.accompaniment, -1, 1), atol=2**-22)

    with np.load(files.energy_path) as energy:
        assert energy["vocals_energy_db"].shape == energy["accompaniment_energy_db"].shape
        assert energy["vocals_energy_db"].shape == (math.ceil(decoded.shape[1] / 800),)
        assert (float(energy["frame_s"]), int(energy["sample_rate_hz"])) == (0.1, SAMPLE_RATE_HZ)
        assert str(energy["model_id"]) == "tiny-random" and str(energy["stage_version"]) == "separate/2"
        np.testing.assert_array_equal(energy["speech_prob"], expected.speech_prob)
        assert float(energy["speech_hop_s"]) == HOP_S and str(energy["speech_model_id"]) == "silero-vad 6.2.3"
    assert sorted(p.name for p in out_dir.iterdir()) == ["accompaniment.flac", "vocals_energy.npz"]
    assert not any(is_temp_name(p) for p in out_dir.iterdir())


def test_the_same_input_gives_the_same_bytes_whatever_threads_the_runner_left_torch(separator, detector, tmp_path):
    """A thread pool's task thread finds torch on every core, a Dask worker on one (OMP_NUM_THREADS=1);
    the thread count orders the float sums, so separation sets its own (`threads`, default 1)."""
    video = make_video(tmp_path / "video.mp4", VideoSpec(duration_s=10))

    def separate_with(runner_threads: int, out_dir: Path, threads: int = 1) -> tuple[bytes, np.ndarray]:
        torch.set_num_threads(runner_threads)  # what the runner left this thread with
        settings = EIGHT_S.model_copy(update={"threads": threads})
        files = separate_file(separator, video, out_dir, settings, detector)
        with np.load(files.energy_path) as curves:
            return files.accompaniment_path.read_bytes(), curves["speech_prob"]

    threads_before = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(1) as pool:  # as the local runner: a task thread, torch on 4 threads
            in_a_pool = pool.submit(separate_with, 4, tmp_path / "pool").result()
        as_dask_worker = separate_with(1, tmp_path / "dask")
        four_threads = separate_with(1, tmp_path / "four", threads=4)
    finally:
        torch.set_num_threads(threads_before)
    assert in_a_pool[0] == as_dask_worker[0]
    np.testing.assert_array_equal(in_a_pool[1], as_dask_worker[1])
    assert four_threads[0] != as_dask_worker[0]  # the cause: another thread count, other bytes


def test_an_undecodable_file_is_a_decode_error(separator, tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n" * 50, encoding="utf-8")
    with pytest.raises(StageError) as caught:
        separate_file(separator, bad, tmp_path / "stems", SeparateConfig())
    assert caught.value.reason is ReasonCode.DECODE_ERROR
    assert "notes.mp4" in caught.value.message
    assert not (tmp_path / "stems").exists()


@pytest.mark.real_weights
def test_real_htdemucs_separate_track_is_apply_model_and_separates(real_htdemucs_dir, detector, tmp_path):
    """The real HTDemucs (`make weights`) on 10 s of an espeak-ng voice over the sample music: within one
    window, `separate_track` is demucs' `apply_model` with the CLI's split and overlap (shifts=0), to the
    bit; and the weights are trained ones: the vocals stem recovers the voice (SDR 14 dB measured) and
    the accompaniment the music (24 dB). About 25 s of CPU: two 7.8 s segments per run."""
    from demucs.apply import apply_model

    from curation.samples import make_music, make_speech

    speech = make_speech(tmp_path / "speech.flac", "Separate me from the music, please, and keep the chord.", 10.0)
    voice = 0.6 * sf.read(speech, dtype="float32", always_2d=True)[0].T
    music = sf.read(make_music(tmp_path / "music.flac", 10.0), dtype="float32", always_2d=True)[0].T
    music = music * np.array([[0.8], [0.6]], dtype=np.float32)
    mix = np.ascontiguousarray(voice + music)
    real = load_separator("htdemucs", real_htdemucs_dir, device="cpu")
    result = separate_track(real, mix, SeparateConfig(), detector)
    with torch.inference_mode():
        stems = apply_model(real.model, torch.from_numpy(mix)[None], shifts=0, split=True, overlap=0.25, progress=False)
    stems = stems[0].numpy()
    np.testing.assert_array_equal(result.accompaniment, stems[:3].sum(axis=0))
    np.testing.assert_allclose(result.vocals_energy_db, _frame_db(stems[3], 4410), atol=1e-3)

    def sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
        return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2)))

    assert sdr_db(voice, stems[3]) > 10.0
    assert sdr_db(music, result.accompaniment) > 18.0
