"""Speech detection: Silero VAD (the model the `silero-vad` wheel ships) and Silero's rules.

The rules are checked on hand-made probabilities and against Silero's own
`get_speech_timestamps_from_probs`; the detector on espeak-ng speech, a tone, silence and noise.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import subprocess

import numpy as np
import pytest
import torch

from curation import speech
from curation.speech import (
    HOP_S,
    SpeechDetectorNotFoundError,
    SpeechStream,
    load_speech_detector,
    speech_mask,
    speech_probabilities,
    speech_segments,
)
from curation.weights import state_sha256
from dvmset.errors import ConfigError

RATE_HZ = 44_100
SPEECH = "Welcome to our city guide. Today we walk through the old harbour and visit the market."
SPEECH_START_S = 1.0


@pytest.fixture(scope="module")
def detector():
    return load_speech_detector()


@pytest.fixture(scope="module")
def spoken(tmp_path_factory) -> tuple[np.ndarray, float]:
    """espeak-ng speech from SPEECH_START_S, then 1.5 s of silence: [T] float32 at 44.1 kHz, and
    the end of its voiced stretch (s)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng")
    wav = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), SPEECH], check=True, capture_output=True, timeout=60)
    args = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(wav), "-f", "f32le", "-ac", "1", "-ar", str(RATE_HZ)]
    voice = np.frombuffer(subprocess.run([*args, "pipe:1"], check=True, capture_output=True).stdout, "<f4")
    voiced = np.flatnonzero(np.abs(voice) > 0.01)
    voice = voice[voiced[0] : voiced[-1] + 1]
    audio = np.concatenate([np.zeros(round(SPEECH_START_S * RATE_HZ)), voice, np.zeros(round(1.5 * RATE_HZ))])
    return audio.astype(np.float32), SPEECH_START_S + voice.size / RATE_HZ


def _flat(segments: list[tuple[float, float]]) -> list[float]:
    """[(start, end), ...] -> [start, end, ...] (pytest.approx compares flat lists)."""
    return [edge for segment in segments for edge in segment]


def _probs(*runs: tuple[float, int]) -> np.ndarray:
    """Probabilities from (value, chunks) runs."""
    return np.concatenate([np.full(count, value) for value, count in runs]).astype(np.float32)


# --- the rules, on hand-made probabilities ----------------------------------------------------


def test_a_stretch_of_speech_is_padded_on_both_sides():
    segments = speech_segments(_probs((0.0, 10), (0.9, 20), (0.0, 20)), HOP_S)
    assert _flat(segments) == pytest.approx([10 * HOP_S - 0.03, 30 * HOP_S + 0.03])


def test_hysteresis_short_pauses_and_short_bursts():
    # A dip under the threshold but above threshold - 0.15 does not end speech, however long.
    assert len(speech_segments(_probs((0.9, 10), (0.4, 30), (0.9, 10), (0.0, 10)), HOP_S, speech_pad_s=0)) == 1
    # A pause (under 0.35) ends speech once its last chunk starts min_silence_s = 0.1 s or more after
    # its first: 4 chunks (96 ms apart) do not, 5 chunks (128 ms apart) do, where the pause began.
    short_pause = speech_segments(_probs((0.9, 10), (0.1, 4), (0.9, 10), (0.0, 10)), HOP_S, speech_pad_s=0)
    assert _flat(short_pause) == pytest.approx([0.0, 24 * HOP_S])
    long_pause = speech_segments(_probs((0.9, 10), (0.1, 5), (0.9, 10), (0.0, 10)), HOP_S, speech_pad_s=0)
    assert _flat(long_pause) == pytest.approx([0.0, 10 * HOP_S, 15 * HOP_S, 25 * HOP_S])
    # Bursts of 7 chunks (224 ms) are not longer than min_speech_s = 0.25 and are dropped; 8 are kept.
    assert speech_segments(_probs((0.0, 5), (0.9, 7), (0.0, 10)), HOP_S) == []
    assert len(speech_segments(_probs((0.0, 5), (0.9, 8), (0.0, 10)), HOP_S)) == 1
    # The threshold itself counts as speech (>=), and neg_threshold can be set apart.
    assert len(speech_segments(_probs((0.5, 10), (0.0, 5)), HOP_S)) == 1
    apart = speech_segments(_probs((0.9, 10), (0.4, 5), (0.9, 10)), HOP_S, neg_threshold=0.45, speech_pad_s=0)
    assert _flat(apart) == pytest.approx([0.0, 10 * HOP_S, 15 * HOP_S, 25 * HOP_S])


def test_speech_to_the_end_and_neighbours_closer_than_two_pads():
    assert _flat(speech_segments(_probs((0.0, 5), (0.9, 10)), HOP_S)) == pytest.approx([5 * HOP_S - 0.03, 15 * HOP_S])
    assert speech_segments(_probs((0.0, 5), (0.9, 2)), HOP_S) == []  # 64 ms at the very end: too short
    # A 5-chunk pause (160 ms) with 0.1 s pads: the gap is under two pads, so they meet half-way.
    close = speech_segments(_probs((0.9, 10), (0.1, 5), (0.9, 10), (0.0, 10)), HOP_S, speech_pad_s=0.1)
    assert _flat(close) == pytest.approx([0.0, 12.5 * HOP_S, 12.5 * HOP_S, 25 * HOP_S + 0.1])
    assert speech_segments(np.zeros(0, np.float32), HOP_S) == []


def test_the_rules_match_silero_get_speech_timestamps_from_probs():
    threads = torch.get_num_threads()
    try:
        from silero_vad.utils_vad import get_speech_timestamps_from_probs
    finally:
        torch.set_num_threads(threads)  # importing silero_vad sets torch to one thread
    rng = np.random.default_rng(0)
    for _ in range(200):
        runs = rng.integers(1, 8, size=40)
        probs = np.repeat(rng.random(runs.size), runs).astype(np.float32)
        threshold, min_speech_ms, min_silence_ms, pad_ms = (
            float(rng.choice([0.3, 0.5, 0.7])),
            int(rng.choice([0, 64, 250])),
            int(rng.choice([0, 96, 100, 300])),
            int(rng.choice([0, 30, 100])),
        )
        reference = get_speech_timestamps_from_probs(
            probs.tolist(),
            sampling_rate=16_000,
            threshold=threshold,
            min_speech_duration_ms=min_speech_ms,
            min_silence_duration_ms=min_silence_ms,
            speech_pad_ms=pad_ms,
            audio_length_samples=probs.size * 512,
        )
        ours = speech_segments(
            probs,
            HOP_S,
            threshold=threshold,
            min_speech_s=min_speech_ms / 1000,
            min_silence_s=min_silence_ms / 1000,
            speech_pad_s=pad_ms / 1000,
        )
        expected = [(stamp["start"] / 16_000, stamp["end"] / 16_000) for stamp in reference]
        assert len(ours) == len(expected)
        np.testing.assert_allclose(_flat(ours), _flat(expected), atol=1.01 / 16_000)  # Silero rounds to samples


def test_speech_mask_marks_frames_by_their_centre_and_fits_the_frame_count():
    probs = _probs((0.0, 10), (0.9, 20), (0.0, 20))  # speech 0.29 s .. 0.99 s with the pads
    mask = speech_mask(speech_segments(probs, HOP_S), 0.1, 20)
    assert mask.tolist() == [False] * 3 + [True] * 7 + [False] * 10  # centres 0.35 .. 0.95 s are in
    assert speech_mask(speech_segments(probs, HOP_S), 0.1, 5).tolist() == [False, False, False, True, True]
    assert speech_mask(speech_segments(probs, HOP_S, threshold=0.95), 0.1, 20).sum() == 0
    assert speech_mask(speech_segments(np.zeros(0, np.float32), HOP_S), 0.1, 3).tolist() == [False] * 3


# --- the detector ----------------------------------------------------------------------------


def test_the_detector_is_loaded_from_the_wheel_and_stamped(detector):
    stamp = detector.stamp
    assert stamp.model_id == "silero-vad 6.2.3" and not stamp.stand_in
    assert stamp.sha256 == state_sha256(detector.model) and len(stamp.sha256) == 64
    assert detector.device == "cpu"


def test_a_missing_package_is_a_config_error_that_says_how_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        speech.importlib.util, "find_spec", lambda name, *a: None if name == "silero_vad" else real_find_spec(name, *a)
    )
    with pytest.raises(SpeechDetectorNotFoundError) as caught:
        load_speech_detector()
    assert isinstance(caught.value, ConfigError)
    assert "pip install silero-vad==6.2.3" in str(caught.value)


def test_speech_is_found_where_spoken(detector, spoken):
    audio, end_s = spoken
    segments = speech_segments(speech_probabilities(detector, [audio], RATE_HZ), HOP_S)
    assert segments, "no speech found"
    assert segments[0][0] == pytest.approx(SPEECH_START_S, abs=0.3)
    assert segments[-1][1] == pytest.approx(end_s, abs=0.3)
    spoken_s = sum(end - start for start, end in segments)
    assert spoken_s > 0.8 * (end_s - SPEECH_START_S)


@pytest.mark.parametrize("kind", ["tone", "silence", "noise"])
def test_no_speech_in_a_tone_silence_or_noise(detector, kind):
    t_s = np.arange(5 * RATE_HZ) / RATE_HZ
    audio = {
        "tone": 0.3 * np.sin(2 * np.pi * 440 * t_s),
        "silence": np.zeros_like(t_s),
        "noise": 0.1 * np.random.default_rng(0).standard_normal(t_s.size),
    }[kind].astype(np.float32)
    probs = speech_probabilities(detector, [np.stack([audio, audio])], RATE_HZ)
    assert speech_segments(probs, HOP_S) == []


def test_streaming_gives_the_same_probabilities_in_one_piece_or_in_windows(detector, spoken):
    audio = np.stack([spoken[0], 0.5 * spoken[0]])  # stereo: the channels are averaged
    threads = torch.get_num_threads()
    whole = speech_probabilities(detector, [audio], RATE_HZ)
    assert torch.get_num_threads() == threads  # one thread while the detector runs, then as before
    bounds = [0, 1_000, 44_100, 100_001, 180_000, audio.shape[1]]
    pieces = speech_probabilities(detector, [audio[:, a:b] for a, b in zip(bounds, bounds[1:])], RATE_HZ)
    np.testing.assert_allclose(pieces, whole, atol=1e-6)
    samples_16k = round(audio.shape[1] * 16_000 / RATE_HZ)
    assert whole.shape == (math.ceil(samples_16k / 512),) and whole.dtype == np.float32
    # The stream carries the model's state as Silero's own call does, chunk after chunk.
    stream = SpeechStream(detector, 16_000)
    mono16 = np.random.default_rng(1).standard_normal(16_000 * 2).astype(np.float32) * 0.1
    stream.feed(mono16[:5_000])
    stream.feed(mono16[5_000:])
    reference = detector.model.audio_forward(torch.from_numpy(mono16)[None], 16_000)[0].numpy()
    np.testing.assert_allclose(stream.finish(), reference, atol=1e-6)
    with pytest.raises(RuntimeError):
        stream.feed(mono16)
