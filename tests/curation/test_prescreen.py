"""The prescreen stage, on generated media: 16 s clips (lavfi pictures and music, espeak-ng speech).

The curves come from known stems through `frame_energy_db` and the real Silero VAD
(`speech_probabilities`), the functions the separate stage measures its stems with: a perfect
separator, simulated honestly.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from curation.energy import EnergyCurves, frame_energy_db, read_energy_curves
from curation.picture import analyse_picture
from curation.prescreen import (
    flags_for,
    longest_run_s,
    prescreen_clip,
    priority_for,
    read_music,
    spectral_flatness,
    speech_mask,
    static_share_for,
)
from curation.samples import VideoSpec, make_music, make_speech, make_video, truncate_copy
from curation.speech import HOP_S, SpeechDetector, load_speech_detector, speech_probabilities
from dvmset.config import PrescreenConfig
from dvmset.errors import ReasonCode, StageError
from dvmset.records import PrescreenFlag

CLIP_S = 16.0
FPS = 25
CUT_EVERY_S = 4.0
FRAME_S = 0.1
SPEECH = (
    "Welcome to our city guide. Today we walk through the old harbour, "
    "visit the market, and taste the best street food in town."
)
CONFIG = PrescreenConfig()


def _curves(accompaniment: Path, vocals: Path | None = None) -> EnergyCurves:
    """Energy curves and speech probabilities of known stems, measured as the separate stage
    measures its own (the detector reads the vocals stem)."""
    frame_samples = round(FRAME_S * 44100)
    music, _ = sf.read(accompaniment, dtype="float32", always_2d=True)
    voice = sf.read(vocals, dtype="float32", always_2d=True)[0] if vocals else np.zeros_like(music)
    probs = speech_probabilities(_detector(), [voice.T], 44100)
    return EnergyCurves(
        frame_energy_db(voice.T, frame_samples), frame_energy_db(music.T, frame_samples), FRAME_S, probs, HOP_S
    )


def _curves_of(speech_prob: list[float], frames: int = 4) -> EnergyCurves:
    """Curves with the given speech probabilities and silent levels."""
    levels = np.full(frames, -120.0, np.float32)
    return EnergyCurves(levels, levels, FRAME_S, np.asarray(speech_prob, np.float32), HOP_S)


@functools.cache
def _detector() -> SpeechDetector:
    return load_speech_detector()


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("prescreen_media")
    picture = {"width": 160, "height": 120, "fps": FPS, "audio": "none"}
    return {
        "moving": make_video(folder / "moving.mp4", VideoSpec(CLIP_S, cut_every_s=CUT_EVERY_S, **picture)),
        "still": make_video(folder / "still.mp4", VideoSpec(CLIP_S, static=True, **picture)),
        "on_fours": make_video(folder / "on_fours.mp4", VideoSpec(CLIP_S, cut_every_s=None, motion_fps=6, **picture)),
        "music": make_music(folder / "music.flac", CLIP_S),
        "gap": make_music(folder / "gap.flac", CLIP_S, gap_s=(2.0, 14.0)),
        "background": make_music(folder / "background.flac", CLIP_S, gain_db=-20.0),
        "background_gap": make_music(folder / "background_gap.flac", CLIP_S, gain_db=-20.0, gap_s=(4.0, CLIP_S)),
        "speech": make_speech(folder / "speech.flac", SPEECH, CLIP_S),
        "noisy": make_music(folder / "noisy.flac", CLIP_S, gain_db=-6.0, noise_color="white", noise_amplitude=0.2),
    }


@pytest.fixture(scope="module")
def scores(media):
    """One prescreen per case: (video, music, vocals stem or None)."""
    cases = {
        "clean": ("moving", "music", None),
        "gap": ("moving", "gap", None),
        "gap_speech": ("moving", "background_gap", "speech"),
        "speech": ("moving", "background", "speech"),
        "noisy": ("moving", "noisy", None),
        "still": ("still", "music", None),
        "on_fours": ("on_fours", "music", None),
    }
    pictures = {video: analyse_picture(media[video]) for video in {video for video, _, _ in cases.values()}}
    return {
        name: prescreen_clip(
            pictures[video], *read_music(media[music]), _curves(media[music], vocals and media[vocals]), CONFIG
        )
        for name, (video, music, vocals) in cases.items()
    }


# --- pure helpers ---------------------------------------------------------------------------


def test_longest_run_s():
    assert longest_run_s(np.array([0, 1, 1, 0, 1, 1, 1, 0], bool), 0.1) == pytest.approx(0.3)
    assert longest_run_s(np.array([1, 1, 0, 1], bool), 0.5) == pytest.approx(1.0)
    assert longest_run_s(np.ones(4, bool), 0.1) == pytest.approx(0.4)
    assert longest_run_s(np.zeros(4, bool), 0.1) == 0.0
    assert longest_run_s(np.zeros(0, bool), 0.1) == 0.0


def test_speech_mask_follows_the_config_rules_and_fits_the_frame_count():
    # 0.0-0.32 s quiet, 0.32-0.64 s at 0.7 (10 chunks), then quiet: speech 0.29-0.67 s with the pads.
    energy = _curves_of([0.0] * 10 + [0.7] * 10 + [0.0] * 20, frames=13)
    assert speech_mask(energy, 8, CONFIG).tolist() == [False] * 3 + [True] * 4 + [False]
    assert speech_mask(energy, 12, CONFIG).tolist() == [False] * 3 + [True] * 4 + [False] * 5
    assert speech_mask(energy, 5, CONFIG).tolist() == [False] * 3 + [True] * 2
    assert not speech_mask(energy, 8, CONFIG.model_copy(update={"speech_threshold": 0.8})).any()
    assert not speech_mask(energy, 8, CONFIG.model_copy(update={"min_speech_s": 0.4})).any()
    padded = speech_mask(energy, 8, CONFIG.model_copy(update={"speech_pad_s": 0.2}))
    assert padded.tolist() == [False] + [True] * 7  # 0.12-0.84 s


def test_static_share_bridges_repeated_frames_within_the_window():
    on_fours = np.tile([5.0, 0.0, 0.0, 0.0], 25)  # the picture changes every 4th frame
    assert static_share_for(on_fours, 1.0, 6) == 0.0
    assert static_share_for(on_fours, 1.0, 1) == pytest.approx(0.75)
    assert static_share_for(np.zeros(50), 1.0, 6) == 1.0
    assert static_share_for(np.full(50, 0.9), 1.0, 6) == 1.0  # small changes (compression noise) stand still
    half = np.concatenate([np.zeros(50), np.full(50, 3.0)])
    assert static_share_for(half, 1.0, 6) == pytest.approx(0.48)  # 0.24 s of the change stands before it
    assert static_share_for(np.zeros(0), 1.0, 6) == 1.0


def test_spectral_flatness_is_high_for_white_noise_and_near_zero_for_tones():
    rate_hz, frame_samples = 44100, 4410
    t_s = np.arange(2 * rate_hz) / rate_hz
    noise = np.random.default_rng(0).standard_normal(t_s.size).astype(np.float32)
    chord = sum(np.sin(2 * np.pi * hz * t_s) for hz in (220.0, 277.18, 329.63)).astype(np.float32)
    white = spectral_flatness(noise, rate_hz, frame_samples)
    tonal = spectral_flatness(chord, rate_hz, frame_samples)
    assert white.shape == tonal.shape == (20,)
    assert 0.8 < white.min() and white.max() <= 1.0
    assert tonal.max() < 0.01
    assert spectral_flatness(np.zeros(4500, np.float32), rate_hz, frame_samples).shape == (2,)


def test_flags_compare_each_score_with_its_threshold():
    assert flags_for(5.0, 0.5, 0.35, CONFIG) == ()
    assert flags_for(5.1, 0.5, 0.35, CONFIG) == (PrescreenFlag.NON_MUSIC,)
    assert flags_for(0.0, 0.51, 0.0, CONFIG) == (PrescreenFlag.STATIC,)
    assert flags_for(0.0, 0.0, 0.36, CONFIG) == (PrescreenFlag.NOISE,)
    assert flags_for(60.0, 1.0, 0.9, CONFIG) == (PrescreenFlag.NON_MUSIC, PrescreenFlag.STATIC, PrescreenFlag.NOISE)


def test_priority_is_the_largest_score_to_threshold_ratio():
    assert priority_for(0.0, 0.0, 0.0, CONFIG) == 0.0
    assert priority_for(2.5, 0.1, 0.07, CONFIG) == pytest.approx(0.5)
    assert priority_for(2.5, 0.4, 0.07, CONFIG) == pytest.approx(0.8)
    assert priority_for(2.5, 0.1, 0.70, CONFIG) == pytest.approx(2.0)
    assert priority_for(30.0, 1.0, 0.70, CONFIG) == pytest.approx(6.0)
    assert priority_for(0.1, 0.0, 0.0, CONFIG.model_copy(update={"max_non_music_s": 0.0})) > 1.0


def test_energy_curves_round_trip_and_span(tmp_path):
    samples = np.zeros((2, 1000), np.float32)
    samples[:, 100:200] = 0.5
    samples[:, 300:350] = 0.1
    expected_db = [-120, 20 * np.log10(0.5), -120, 10 * np.log10(0.1**2 / 2)] + [-120] * 6
    assert frame_energy_db(samples, 100).tolist() == pytest.approx(expected_db, abs=1e-4)
    assert frame_energy_db(samples[:, :950], 100).shape == (10,)
    path = tmp_path / "vocals_energy.npz"
    with open(path, "wb") as file:  # the keys separate_file writes
        np.savez(
            file,
            vocals_energy_db=np.arange(10.0),
            accompaniment_energy_db=-np.arange(10.0),
            frame_s=0.5,
            speech_prob=np.arange(20.0) / 20,
            speech_hop_s=0.25,
            stage_version="separate/2",
        )
    curves = read_energy_curves(path)
    assert curves.frame_s == 0.5 and curves.vocals_db.dtype == np.float32
    assert curves.speech_hop_s == 0.25 and curves.speech_prob.dtype == np.float32
    part = curves.span(1.0, 2.6)
    assert part.vocals_db.tolist() == [2.0, 3.0, 4.0] and part.accompaniment_db.tolist() == [-2.0, -3.0, -4.0]
    assert part.speech_prob.tolist() == pytest.approx([0.2, 0.25, 0.3, 0.35, 0.4, 0.45])  # chunks 4 to 9
    assert (part.frame_s, part.speech_hop_s) == (0.5, 0.25)
    assert curves.span(4.0, 9.0).vocals_db.tolist() == [8.0, 9.0]
    assert curves.span(4.0, 9.0).speech_prob.size == 4  # chunks 16 to 19: the curve ends there
    assert curves.span(20.0, 30.0).vocals_db.size == 0 and curves.span(20.0, 30.0).speech_prob.size == 0
    with pytest.raises(ValueError):
        curves.span(3.0, 2.0)


def test_energy_curves_without_speech_probabilities_ask_for_a_new_separation(tmp_path):
    path = tmp_path / "vocals_energy.npz"
    with open(path, "wb") as file:  # what separate/1 wrote
        np.savez(
            file,
            vocals_energy_db=np.zeros(3),
            accompaniment_energy_db=np.zeros(3),
            frame_s=0.1,
            stage_version="separate/1",
        )
    with pytest.raises(StageError) as caught:
        read_energy_curves(path)
    assert "separate/1" in caught.value.message and "separate the video again" in caught.value.message


# --- whole clips ----------------------------------------------------------------------------


def test_a_silent_gap_is_non_music(scores):
    gap = scores["gap"]
    assert gap.longest_silence_s == pytest.approx(12.0, abs=0.2)
    assert gap.silence_s == pytest.approx(12.0, abs=0.2)
    assert gap.non_music_s == pytest.approx(gap.silence_s) and gap.speech_s == 0.0
    assert gap.flags == (PrescreenFlag.NON_MUSIC,)
    assert gap.priority == pytest.approx(gap.non_music_s / CONFIG.max_non_music_s)


def test_speech_over_music_is_speech(scores):
    speech = scores["speech"]
    assert speech.speech_s > 5.0 and speech.silence_s == 0.0
    assert speech.non_music_s == pytest.approx(speech.speech_s)
    assert PrescreenFlag.NON_MUSIC in speech.flags
    assert scores["clean"].speech_s == 0.0


def test_silence_and_speech_at_once_count_once(scores):
    both = scores["gap_speech"]  # speech from 0 s to about 7.5 s, the music silent from 4 s on
    assert both.silence_s == pytest.approx(12.0, abs=0.2) and both.speech_s > 5.0
    assert max(both.silence_s, both.speech_s) + 2.0 < both.non_music_s < both.silence_s + both.speech_s - 2.0


def test_a_still_picture_is_static_and_moving_ones_are_not(scores):
    assert scores["still"].static_share > 0.95
    assert scores["still"].flags == (PrescreenFlag.STATIC,)
    assert scores["clean"].static_share < 0.05
    assert scores["on_fours"].static_share < 0.05  # 6 pictures a second, each shown for 4 or 5 frames
    assert scores["on_fours"].flags == ()


def test_persistent_noise_raises_the_noise_score(scores):
    assert scores["noisy"].noise_score > CONFIG.max_noise_score
    assert scores["noisy"].flags == (PrescreenFlag.NOISE,)
    assert scores["clean"].noise_score < 0.1 and scores["speech"].noise_score < 0.1


def test_scene_cuts_match_the_generated_cuts_within_a_frame(scores, media):
    expected_s = [CUT_EVERY_S * k for k in range(1, int(CLIP_S / CUT_EVERY_S))]
    assert scores["clean"].scene_cuts_s == pytest.approx(expected_s, abs=0.5 / FPS)  # the very frame
    assert scores["still"].scene_cuts_s == () and scores["on_fours"].scene_cuts_s == ()
    picture = analyse_picture(media["moving"])
    assert picture.fps == FPS and picture.luma_diffs_255.shape == (CLIP_S * FPS - 1,)
    assert picture.scene_cuts_s(CONFIG.scene_threshold, CLIP_S) == ()


def test_a_clean_clip_has_no_flag_and_comes_after_every_flagged_clip(scores):
    clean = scores["clean"]
    assert clean.flags == () and clean.non_music_s == 0.0 and clean.priority < 1.0
    for name in ("gap", "speech", "noisy", "still"):
        assert scores[name].flags and scores[name].priority > 1.0 > clean.priority, name


def test_undecodable_media_are_decode_errors(media, tmp_path):
    notes = tmp_path / "notes.flac"
    notes.write_text("not music\n" * 50, encoding="utf-8")
    truncated = truncate_copy(media["moving"], tmp_path / "truncated.mp4", 0.5)  # its index is intact
    with pytest.raises(StageError) as caught:
        analyse_picture(truncated)  # a corrupt packet fails the decode, it is not skipped
    assert caught.value.reason is ReasonCode.DECODE_ERROR and "truncated.mp4" in caught.value.message
    with pytest.raises(StageError) as caught:
        read_music(notes)
    assert caught.value.reason is ReasonCode.DECODE_ERROR and "notes.flac" in caught.value.message
