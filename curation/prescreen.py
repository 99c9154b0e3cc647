"""Prescreen stage: per-clip scores that mirror the human review criteria, to show likely rejects first.

In: the analysis of a clip's picture (`PictureAnalysis`), its music (the loudness-normalized
accompaniment as samples: the clip step's own, or `read_music` of a saved `music.flac`), the
clip's stretch of the track's curves (`EnergyCurves.span`, from `energy`: the frame length and
the speech probabilities that Silero VAD gave the vocals stem) and a `PrescreenConfig`. Out:
`PrescreenScores`. Audio is judged in the curves' frames (0.1 s by default):

- silence: frames of the music whose RMS level is under `silence_dbfs`;
- speech: frames whose centre lies in a stretch of speech that Silero's own rules find in the
  clip's speech probabilities (`speech.speech_mask`: `speech_threshold`, `min_speech_s`,
  `min_speech_gap_s`, `speech_pad_s`); singing is not speech to the detector;
- non-music: frames that are silent or speech, each counted once;
- noise: per frame, the spectral flatness of the mono music (geometric over arithmetic mean of
  the power spectrum in `NOISE_BAND_HZ`, averaged over 1024-sample Hann segments): about 0.9 for
  white noise, near 0 for tones; the score is its median over the non-silent frames.

The picture comes as a `picture.PictureAnalysis` (the clip cut's own, or a saved one): a frame moves
where the mean absolute luma change (0-255) between consecutive frames reaches `static_diff` within
`MOTION_WINDOW_S` of it, so animation drawn on twos or threes (repeated frames) still moves;
`static_share` is the share of frames that do not. The scene-cut times are PySceneDetect
`ContentDetector`'s with `scene_threshold` and `min_scene_s`, replayed on the analysis's frame scores.

Flags: each score over its threshold. Priority: the largest ratio of a score to its threshold,
so a clip with priority over 1 is flagged and the clearest rejects come first. A music file that
cannot be decoded raises `StageError(DECODE_ERROR)`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.ndimage import maximum_filter1d

from curation import speech
from curation.energy import EnergyCurves, frame_energy_db
from curation.picture import PictureAnalysis
from dvmset.config import PrescreenConfig
from dvmset.errors import ReasonCode, StageError
from dvmset.records import PrescreenFlag, PrescreenScores

STAGE_VERSION = "prescreen/3"  # 3: speech from Silero VAD, not from vocals energy
MOTION_WINDOW_S = 0.25  # a picture change makes the frames this close to it move
NOISE_BAND_HZ = (100.0, 10_000.0)  # flatness band: lossy sources hold little above ~16 kHz
_SEGMENT_SAMPLES = 1024  # Hann segments averaged within each audio frame (Welch)
_POWER_FLOOR = 1e-20  # added to the power spectrum so that digital silence has a logarithm
_MIN_THRESHOLD = 1e-6  # a threshold of 0 counts as this in the priority ratios


def prescreen_clip(
    picture: PictureAnalysis, music: np.ndarray, sample_rate_hz: int, energy: EnergyCurves, config: PrescreenConfig
) -> PrescreenScores:
    """Score one clip from its music `[C, T]` at `sample_rate_hz` (see the module docstring)."""
    frame_samples = max(1, round(energy.frame_s * sample_rate_hz))
    silent = frame_energy_db(music, frame_samples) < config.silence_dbfs
    spoken = speech_mask(energy, silent.size, config)
    non_music_s = float(np.count_nonzero(silent | spoken) * energy.frame_s)
    static_share = static_share_for(picture.luma_diffs_255, config.static_diff, round(MOTION_WINDOW_S * picture.fps))
    flatness = spectral_flatness(music.mean(axis=0), sample_rate_hz, frame_samples)
    noise_score = float(np.median(flatness[~silent])) if not silent.all() else 0.0
    return PrescreenScores(
        silence_s=float(np.count_nonzero(silent) * energy.frame_s),
        longest_silence_s=longest_run_s(silent, energy.frame_s),
        speech_s=float(np.count_nonzero(spoken) * energy.frame_s),
        non_music_s=non_music_s,
        static_share=static_share,
        noise_score=noise_score,
        scene_cuts_s=picture.scene_cuts_s(config.scene_threshold, config.min_scene_s),
        flags=flags_for(non_music_s, static_share, noise_score, config),
        priority=priority_for(non_music_s, static_share, noise_score, config),
    )


def longest_run_s(mask: np.ndarray, frame_s: float) -> float:
    """Seconds of the longest run of True in `mask` ([F] bool, one value per `frame_s`)."""
    edges = np.diff(np.concatenate([[0], np.asarray(mask, dtype=np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return float((stops - starts).max() * frame_s) if starts.size else 0.0


def speech_mask(energy: EnergyCurves, frame_count: int, config: PrescreenConfig) -> np.ndarray:
    """[frame_count] bool: the frames of `energy.frame_s` that the clip's speech probabilities put in
    speech, under the config's rules (see `speech.speech_mask`); frames past their end are not speech."""
    segments = speech.speech_segments(
        energy.speech_prob,
        energy.speech_hop_s,
        threshold=config.speech_threshold,
        min_speech_s=config.min_speech_s,
        min_silence_s=config.min_speech_gap_s,
        speech_pad_s=config.speech_pad_s,
    )
    return speech.speech_mask(segments, energy.frame_s, frame_count)


def static_share_for(luma_diffs_255: np.ndarray, static_diff: float, window_frames: int) -> float:
    """Share (0..1) of the frame changes ([N - 1] mean absolute luma differences) with none of at
    least `static_diff` among the `window_frames` around it; 1.0 when there is no change to judge."""
    diffs = np.asarray(luma_diffs_255, dtype=np.float64)
    if diffs.size == 0:
        return 1.0
    moving = maximum_filter1d(diffs, size=max(1, window_frames), mode="nearest") >= static_diff
    return float(1.0 - moving.mean())


def spectral_flatness(mono: np.ndarray, sample_rate_hz: int, frame_samples: int) -> np.ndarray:
    """[T] samples -> [ceil(T / frame_samples)] flatness (0..1) of each frame's power spectrum in
    `NOISE_BAND_HZ`, the spectrum averaged over the frame's Hann segments (the last frame is zero-padded)."""
    segment = min(_SEGMENT_SAMPLES, frame_samples)
    per_frame = frame_samples // segment
    frame_count = -(-mono.size // frame_samples)
    padded = np.zeros(frame_count * frame_samples, dtype=np.float32)
    padded[: mono.size] = mono
    segments = padded.reshape(frame_count, frame_samples)[:, : per_frame * segment].reshape(frame_count, per_frame, -1)
    power = np.square(np.abs(np.fft.rfft(segments * np.hanning(segment), axis=-1))).mean(axis=1)
    freqs_hz = np.fft.rfftfreq(segment, 1.0 / sample_rate_hz)
    band = power[:, (freqs_hz >= NOISE_BAND_HZ[0]) & (freqs_hz <= NOISE_BAND_HZ[1])] + _POWER_FLOOR
    return np.exp(np.log(band).mean(axis=1)) / band.mean(axis=1)


def flags_for(
    non_music_s: float, static_share: float, noise_score: float, config: PrescreenConfig
) -> tuple[PrescreenFlag, ...]:
    """The flags whose score is over its threshold in `config`, in a fixed order."""
    over = {
        PrescreenFlag.NON_MUSIC: non_music_s > config.max_non_music_s,
        PrescreenFlag.STATIC: static_share > config.max_static_share,
        PrescreenFlag.NOISE: noise_score > config.max_noise_score,
    }
    return tuple(flag for flag, flagged in over.items() if flagged)


def priority_for(non_music_s: float, static_share: float, noise_score: float, config: PrescreenConfig) -> float:
    """The largest of score / threshold over the three flags: over 1 means flagged."""
    ratios = (
        non_music_s / max(config.max_non_music_s, _MIN_THRESHOLD),
        static_share / max(config.max_static_share, _MIN_THRESHOLD),
        noise_score / max(config.max_noise_score, _MIN_THRESHOLD),
    )
    return float(max(ratios))


def read_music(music_path: Path) -> tuple[np.ndarray, int]:
    """A clip's `music.flac` as [C, T] float32 and its sample rate."""
    try:
        samples, sample_rate_hz = sf.read(music_path, dtype="float32", always_2d=True)
    except sf.LibsndfileError as error:
        raise StageError(ReasonCode.DECODE_ERROR, f"cannot decode the music {music_path.name}: {error}") from error
    if samples.shape[0] == 0:
        raise StageError(ReasonCode.DECODE_ERROR, f"the music {music_path.name} holds no sample")
    return samples.T, int(sample_rate_hz)
