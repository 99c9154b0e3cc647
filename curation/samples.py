"""Synthetic media made with ffmpeg's lavfi sources: no network, deterministic content.

Used by `dvmset demo`, the tests and the benchmarks. A "music" track is a three-note chord
with a kick drum on every beat; the picture is a moving test pattern whose hue jumps at every
cut (a hard scene change), or, given a `pattern_seed`, Conway's game of life from that seed (so
that videos of different seeds differ in picture, as crop-proof near-duplicate checks see it).
`make_music` writes the music alone (with a silent gap or noise mixed in, if asked),
`make_speech` a spoken sentence (espeak-ng), both as 44.1 kHz stereo FLAC.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dvmset.storage import atomic_path
from dvmset.tools import require_tool

_CHANNEL_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}
_MONO_TO_STEREO = "pan=stereo|c0=c0|c1=c0"  # the same signal at full level on both channels


def music_expression(bpm: float = 120.0, chord_hz: tuple[float, ...] = (220.0, 277.18, 329.63)) -> str:
    """An aevalsrc expression: a soft chord plus a decaying kick on every beat."""
    beat_s = 60.0 / bpm
    chord = "+".join(f"0.12*sin(2*PI*{hz}*t)" for hz in chord_hz)
    kick = f"0.45*exp(-25*mod(t,{beat_s}))*sin(2*PI*55*t)"
    return f"{chord}+{kick}"


@dataclass(frozen=True)
class VideoSpec:
    """What to generate. `cut_every_s=None` gives a continuous picture; `static=True` a still frame;
    `motion_fps` a picture that changes only that many times a second, each frame repeated in
    between (animation drawn on twos or threes); `pattern_seed` the game of life from that seed on
    8 px cells, 4 generations a second, instead of ffmpeg's testsrc2."""

    duration_s: float
    width: int = 320
    height: int = 240
    fps: int = 25
    audio: str = "music"  # "music", "silence" or "none"
    channels: int = 2
    video: bool = True
    cut_every_s: float | None = 4.0
    static: bool = False
    motion_fps: int | None = None
    bpm: float = 120.0
    faststart: bool = True
    pattern_seed: int | None = None


def _pattern(spec: VideoSpec, rate: float, duration_s: float) -> str:
    """The picture's lavfi source: testsrc2, or the game of life of `spec.pattern_seed`."""
    if spec.pattern_seed is None:
        return f"testsrc2=size={spec.width}x{spec.height}:rate={rate}:duration={duration_s}"
    cells = f"{-(-spec.width // 8)}x{-(-spec.height // 8)}"
    return (
        f"life=seed={spec.pattern_seed}:size={cells}:rate=4:ratio=0.3:mold=0:life_color=#ffd040:death_color=#203070,"
        f"scale={spec.width}:{spec.height}:flags=neighbor,fps={rate},trim=duration={duration_s}"
    )


def _video_filter(spec: VideoSpec) -> str:
    if spec.static:
        return f"{_pattern(spec, spec.fps, 0.04)},loop=loop=-1:size=1,trim=duration={spec.duration_s}"
    chain = _pattern(spec, spec.motion_fps or spec.fps, spec.duration_s)
    if spec.cut_every_s:
        chain += f",hue=h=97*floor(t/{spec.cut_every_s}):s=1.5"
    if spec.motion_fps:
        chain += f",fps={spec.fps}"
    return chain


def _audio_filter(spec: VideoSpec) -> str:
    layout = _CHANNEL_LAYOUTS[spec.channels]
    expr = music_expression(spec.bpm) if spec.audio == "music" else "0"
    expr = expr.replace(",", "\\,")  # a bare comma would end the filter in the filtergraph
    return f"aevalsrc={'|'.join([expr] * spec.channels)}:s=44100:c={layout}:d={spec.duration_s}"


def make_video(path: Path, spec: VideoSpec) -> Path:
    """Write an H.264/AAC mp4 (or an audio-only m4a when `spec.video` is false) at `path`."""
    if not spec.video and spec.audio == "none":
        raise ValueError("a file needs at least one stream")
    args = [require_tool("ffmpeg"), "-nostdin", "-v", "error", "-y"]
    if spec.video:
        args += ["-f", "lavfi", "-i", _video_filter(spec)]
    if spec.audio != "none":
        args += ["-f", "lavfi", "-i", _audio_filter(spec)]
    if spec.video:
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", str(spec.fps)]
    if spec.audio != "none":
        args += ["-c:a", "aac", "-b:a", "128k"]
    if spec.faststart:
        args += ["-movflags", "+faststart"]
    args += ["-t", str(spec.duration_s), "-f", "mp4"]
    with atomic_path(path) as temp:
        subprocess.run([*args, str(temp)], check=True, capture_output=True, timeout=600)
    return path


def make_music(
    path: Path,
    duration_s: float,
    *,
    bpm: float = 120.0,
    gain_db: float = 0.0,
    gap_s: tuple[float, float] | None = None,
    noise_color: str | None = None,
    noise_amplitude: float = 0.1,
) -> Path:
    """Write the sample music, `gain_db` louder, as a 16-bit 44.1 kHz stereo FLAC: silent over
    `gap_s` (start, end) when given; with ffmpeg `anoisesrc` noise of `noise_color` ("white",
    "pink", ...) and amplitude `noise_amplitude` mixed in over the whole length when given."""
    expr = music_expression(bpm).replace(",", "\\,")
    graph = f"aevalsrc={expr}:s=44100:d={duration_s},volume={gain_db}dB"
    if gap_s is not None:
        graph += f",volume=0:enable='between(t,{gap_s[0]},{gap_s[1]})'"
    if noise_color is not None:
        noise = f"anoisesrc=c={noise_color}:a={noise_amplitude}:r=44100:d={duration_s}:seed=1"
        graph = f"{graph}[music];{noise}[noise];[music][noise]amix=normalize=0"
    return _write_flac(path, ["-f", "lavfi", "-i", f"{graph},{_MONO_TO_STEREO}"])


def make_speech(path: Path, text: str, duration_s: float) -> Path:
    """Write `text` spoken by espeak-ng (from the start, then silence) as a 16-bit 44.1 kHz stereo
    FLAC of exactly `duration_s`."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    spoken = path.with_name(f".{path.stem}.espeak.wav")
    try:
        subprocess.run([espeak, "-w", str(spoken), text], check=True, capture_output=True, timeout=60)
        filters = f"aresample=44100,apad,atrim=end={duration_s},{_MONO_TO_STEREO}"
        return _write_flac(path, ["-i", str(spoken), "-af", filters])
    finally:
        spoken.unlink(missing_ok=True)


def _write_flac(path: Path, input_args: list[str]) -> Path:
    """Encode what ffmpeg makes of `input_args` (44.1 kHz stereo) as a 16-bit FLAC at `path`."""
    args = [require_tool("ffmpeg"), "-nostdin", "-v", "error", "-y", *input_args, "-c:a", "flac"]
    with atomic_path(path) as temp:
        args += ["-sample_fmt", "s16", "-f", "flac", str(temp)]
        subprocess.run(args, check=True, capture_output=True, timeout=600)
    return path


def truncate_copy(source: Path, target: Path, keep_fraction: float = 0.5) -> Path:
    """Copy the first `keep_fraction` of a file's bytes (a download cut off midway)."""
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep_fraction)])
    return target


# name -> (status, reason) that the probe stage is expected to give each file of the sample folder
SAMPLE_EXPECTATIONS: dict[str, tuple[str, str | None]] = {
    "good_music_cuts.mp4": ("probed", None),
    "Café clip №1 — ünïcode.mp4": ("probed", None),
    "surround/five_one.mp4": ("probed", None),
    "empty.mp4": ("failed", "empty_file"),
    "notes.mp4": ("failed", "not_media"),
    "truncated.mp4": ("failed", "truncated"),
    "truncated_no_index.mp4": ("failed", "truncated"),
    "no_audio.mp4": ("skipped", "no_audio_stream"),
    "audio_only.m4a": ("skipped", "no_video_stream"),
    "short_5s.mp4": ("skipped", "too_short"),
}


def make_sample_folder(folder: Path, good_duration_s: float = 65.0) -> dict[str, tuple[str, str | None]]:
    """Fill `folder` with good and bad files (see SAMPLE_EXPECTATIONS) and return the expectations."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "surround").mkdir(exist_ok=True)
    good = make_video(folder / "good_music_cuts.mp4", VideoSpec(good_duration_s))
    make_video(folder / "Café clip №1 — ünïcode.mp4", VideoSpec(good_duration_s + 5, bpm=100, cut_every_s=6.0))
    make_video(folder / "surround/five_one.mp4", VideoSpec(good_duration_s, channels=6, bpm=90))
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("These are meeting notes, not a video.\n" * 20, encoding="utf-8")
    truncate_copy(good, folder / "truncated.mp4", 0.5)
    no_index = make_video(folder / ".no_index_src.mp4", VideoSpec(good_duration_s, bpm=140, faststart=False))
    truncate_copy(no_index, folder / "truncated_no_index.mp4", 0.6)
    no_index.unlink()
    make_video(folder / "no_audio.mp4", VideoSpec(good_duration_s, audio="none"))
    make_video(folder / "audio_only.m4a", VideoSpec(good_duration_s, video=False))
    make_video(folder / "short_5s.mp4", VideoSpec(5.0))
    return dict(SAMPLE_EXPECTATIONS)
