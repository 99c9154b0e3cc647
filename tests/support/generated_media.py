"""Generated media for the model tests: H.264 test patterns with hard cuts (ffmpeg's lavfi), and stereo
FLAC tones, clicks and drum tracks whose onsets are known (soundfile)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

DRUM_RATE_HZ = 22_050
BEAT_PERIOD_S = 0.5  # 120 BPM
CUT_PERIOD_S = 2.0


def make_cut_video(
    path: Path,
    duration_s: float,
    fps: int = 30,
    cut_every_s: float | None = 2.0,
    first_cut_s: float | None = None,
    size: str = "320x240",
    hue: str | None = None,
) -> Path:
    """An H.264 test pattern of `size` at `fps` whose hue jumps (a hard cut) every `cut_every_s`, the first
    at `first_cut_s` (default: `cut_every_s`); `cut_every_s` None: one unchanging pattern. `hue`, when
    given, is the hue filter's options instead (cuts at the caller's own times, or one fixed hue)."""
    source = f"testsrc2=size={size}:rate={fps}:duration={duration_s}"
    if hue is not None:
        source += f",hue={hue}"
    elif cut_every_s is not None:
        shift_s = cut_every_s - (cut_every_s if first_cut_s is None else first_cut_s)
        source += f",hue=h=97*floor((t+{shift_s})/{cut_every_s})"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-nostdin",
            "-y",
            "-f",
            "lavfi",
            "-i",
            source,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
    )
    return path


def make_tone(path: Path, duration_s: float, rate_hz: int = 44100, frequency_hz: float = 440.0) -> Path:
    """A stereo 16-bit FLAC tone (the clip stage's music format), a little louder on the left."""
    t = np.arange(round(duration_s * rate_hz)) / rate_hz
    tone = 0.5 * np.sin(2 * np.pi * frequency_hz * t)
    sf.write(path, np.stack([tone, 0.8 * tone], axis=1), rate_hz, subtype="PCM_16")
    return path


def make_clicks(path: Path, duration_s: float, times_s: list[float], rate_hz: int = 44100) -> Path:
    """A stereo 16-bit FLAC of 5 ms clicks at `times_s` over a quiet tone: music whose onsets are known."""
    t = np.arange(round(duration_s * rate_hz)) / rate_hz
    audio = 0.05 * np.sin(2 * np.pi * 330.0 * t)
    for time_s in times_s:
        begin = round(time_s * rate_hz)
        audio[begin : begin + round(0.005 * rate_hz)] += 0.6
    sf.write(path, np.stack([audio, audio], axis=1), rate_hz, subtype="PCM_16")
    return path


def drums(duration_s: float, first_hit_s: float, period_s: float = BEAT_PERIOD_S, seed: int = 0) -> np.ndarray:
    """Mono float32 at `DRUM_RATE_HZ`: a 50 ms noise burst every `period_s` from `first_hit_s`, every fourth
    one louder."""
    rng = np.random.default_rng(seed)
    burst_samples = round(0.05 * DRUM_RATE_HZ)
    burst = rng.standard_normal(burst_samples) * np.exp(-np.arange(burst_samples) / (0.01 * DRUM_RATE_HZ))
    audio = np.zeros(round(duration_s * DRUM_RATE_HZ))
    for index, hit_s in enumerate(np.arange(first_hit_s, duration_s, period_s)):
        start = round(hit_s * DRUM_RATE_HZ)
        stop = min(audio.size, start + burst_samples)
        audio[start:stop] += burst[: stop - start] * (0.8 if index % 4 == 0 else 0.4)
    return audio.astype(np.float32)


def write_drums(path: Path, duration_s: float, first_hit_s: float, seed: int = 0) -> Path:
    """`drums` written as a stereo FLAC (the clip stage's music format)."""
    mono = drums(duration_s, first_hit_s, seed=seed)
    sf.write(path, np.stack([mono, mono], axis=1), DRUM_RATE_HZ, subtype="PCM_16")
    return path


def write_cut_video(path: Path, duration_s: float, first_cut_s: float = CUT_PERIOD_S, cuts: bool = True) -> Path:
    """A 64x48 H.264 test pattern at 25 fps whose hue jumps (a hard cut) every `CUT_PERIOD_S` from
    `first_cut_s`; without `cuts`, one unchanging pattern."""
    cut_every_s = CUT_PERIOD_S if cuts else None
    return make_cut_video(path, duration_s, fps=25, cut_every_s=cut_every_s, first_cut_s=first_cut_s, size="64x48")
