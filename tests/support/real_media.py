"""A real-media corpus with known ground truth, for checking what the curation stages measure.

The music is real: composed and recorded tracks that Debian's `pushover-data` package ships
(Ogg Vorbis, GPL-3+, /usr/share/pushover/themes). Speech is espeak-ng's, laid over the music at
known times; the picture is a lavfi test pattern with hard cuts. Every case keeps what went into
its mix, so a test can compare what the pipeline measured with the truth:

- `voiceover`: three spoken sentences over music (speech seconds known);
- `silent_gap`: music with a 12 s digital-silence gap;
- `music_only`: the control: nothing to flag;
- `surround_dialogue`: a 5.1 track, music on the front and back pairs, dialogue on the centre
  channel (as films mix it).

`build_corpus(folder)` writes one mp4 per case and returns the `CaseTruth`s. Speech spans are the
voiced stretch of each sentence (its first to its last sample above -40 dBFS). `speech_over_music`
writes one longer track for `bench/stages.py --real-separation` (sentences over castle.ogg, no truth).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

MUSIC_DIR = Path("/usr/share/pushover/themes")  # Debian: pushover-data
SAMPLE_RATE_HZ = 44_100
CLIP_S = 30.0  # the corpus' clip length: each case makes one clip
VIDEO_S = 31.0  # the remainder past the clip is dropped
SPEECH_GAIN_DB = 3.0  # the voice-over's level over the music's (RMS), as a narrator is mixed
_VOICED_DBFS = -40.0  # a speech sample above this is voiced
SPOKEN_AT_S = (4.0, 24.0, 44.0)  # `speech_over_music`'s sentence starts
SENTENCES = (  # espeak-ng's lines, laid over the music
    "Welcome to the old town. The market opens at dawn, and the bakers are already at work.",
    "Across the river stands the cathedral, built over two hundred years by generations of masons.",
    "In the evening the harbour fills with music, and the fishing boats come home with the tide.",
)


@dataclass(frozen=True)
class CaseTruth:
    """What went into one case: its file, the music alone as mixed ([T, 2] float32 at 44.1 kHz,
    after any down-mix the pipeline applies), the speech spans (s) and the silent seconds."""

    name: str
    path: Path
    music: np.ndarray
    speech_spans_s: tuple[tuple[float, float], ...]
    silence_s: float

    @property
    def speech_s(self) -> float:
        return float(sum(end - start for start, end in self.speech_spans_s))


def real_music_available() -> bool:
    """True when pushover-data's music and espeak-ng are installed."""
    return (MUSIC_DIR / "castle.ogg").is_file() and shutil.which("espeak-ng") is not None


def build_corpus(folder: Path) -> dict[str, CaseTruth]:
    """Write the four cases (see the module docstring) into `folder`; return their truths by name."""
    folder.mkdir(parents=True, exist_ok=True)
    sentences = [_speech(text, folder / f".sentence{index}.wav") for index, text in enumerate(SENTENCES)]
    cases = [
        _voiceover(folder, sentences),
        _silent_gap(folder),
        _music_only(folder),
        _surround_dialogue(folder, sentences),
    ]
    return {case.name: case for case in cases}


def _voiceover(folder: Path, sentences: list[np.ndarray]) -> CaseTruth:
    music = music_excerpt("castle", 20.0)
    mix, spans = _lay_speech(music, sentences, (2.0, 11.0, 20.5))
    path, gain = _mux(folder / "voiceover.mp4", mix, cut_every_s=5.0)
    return CaseTruth("voiceover", path, music * gain, spans, 0.0)


def _silent_gap(folder: Path) -> CaseTruth:
    music = music_excerpt("dungeon", 30.0)
    start, stop = round(10.0 * SAMPLE_RATE_HZ), round(22.0 * SAMPLE_RATE_HZ)
    music[start:stop] = 0.0
    path, gain = _mux(folder / "silent_gap.mp4", music, cut_every_s=4.0)
    return CaseTruth("silent_gap", path, music * gain, (), 12.0)


def _music_only(folder: Path) -> CaseTruth:
    music = music_excerpt("aztec", 40.0)
    path, gain = _mux(folder / "music_only.mp4", music, cut_every_s=3.0)
    return CaseTruth("music_only", path, music * gain, (), 0.0)


def _surround_dialogue(folder: Path, sentences: list[np.ndarray]) -> CaseTruth:
    """5.1 in ffmpeg's order FL FR FC LFE BL BR: the music on the front and (3 dB down) back pairs,
    the dialogue alone on FC. The truth's music is that music down-mixed as the pipeline decodes it."""
    music = music_excerpt("japanese", 30.0)
    silent = np.zeros_like(music)
    dialogue, spans = _lay_speech(silent, sentences[:2], (4.0, 16.0), reference=music)
    back = music * np.float32(10 ** (-3 / 20))
    channels = [music[:, 0], music[:, 1], dialogue[:, 0], np.zeros(len(music), np.float32), back[:, 0], back[:, 1]]
    path, gain = _mux(folder / "surround_dialogue.mp4", np.stack(channels, axis=1), cut_every_s=6.0)
    music_only = np.stack([*channels[:2], np.zeros(len(music), np.float32), *channels[3:]], axis=1)
    return CaseTruth("surround_dialogue", path, _ffmpeg_stereo(music_only * gain, folder), spans, 0.0)


def music_excerpt(track: str, start_s: float) -> np.ndarray:
    """VIDEO_S seconds of a pushover track from `start_s`, as [T, 2] float32 at 44.1 kHz."""
    args = ["ffmpeg", "-nostdin", "-v", "error", "-ss", str(start_s), "-t", str(VIDEO_S)]
    args += ["-i", str(MUSIC_DIR / f"{track}.ogg"), "-f", "f32le", "-ac", "2", "-ar", str(SAMPLE_RATE_HZ), "pipe:1"]
    raw = subprocess.run(args, check=True, capture_output=True, timeout=120).stdout
    music = np.frombuffer(raw, dtype="<f4").reshape(-1, 2).copy()
    total = round(VIDEO_S * SAMPLE_RATE_HZ)
    return np.pad(music, ((0, max(0, total - len(music))), (0, 0)))[:total]


def speech_over_music(path: Path, duration_s: float) -> str:
    """A 44.1 kHz stereo FLAC of `duration_s` at `path` (kept when there): castle.ogg from 20 s or, where
    pushover-data is absent, the generated chord and kick, with `SENTENCES` spoken over it from
    `SPOKEN_AT_S`. Returns what it holds, in words."""
    music = MUSIC_DIR / "castle.ogg"
    source = f"{music.name} from 20 s" if music.is_file() else "generated chord and kick (no pushover-data)"
    described = f"{duration_s:g} s of {source} with {len(SENTENCES)} espeak-ng sentences over it"
    if path.exists():
        return described
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as temp:
        args = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
        if music.is_file():
            args += ["-ss", "20", "-t", f"{duration_s:g}", "-i", str(music)]
        else:
            from curation.samples import make_music

            args += ["-i", str(make_music(Path(temp) / "music.flac", duration_s))]
        mix = ["[0:a]aresample=44100,aformat=channel_layouts=stereo[m0]"]
        for index, (start_s, sentence) in enumerate(zip(SPOKEN_AT_S, SENTENCES, strict=True), start=1):
            spoken = Path(temp) / f"speech{index}.wav"
            subprocess.run(["espeak-ng", "-w", str(spoken), sentence], check=True, capture_output=True, timeout=60)
            args += ["-i", str(spoken)]
            delay_ms = round(start_s * 1000)
            mix.append(
                f"[{index}:a]aresample=44100,aformat=channel_layouts=stereo,adelay={delay_ms}|{delay_ms}[s{index}]"
            )
        inputs = "".join(f"[s{i}]" for i in range(1, len(SENTENCES) + 1))
        mix.append(
            f"[m0]{inputs}amix=inputs={len(SENTENCES) + 1}:duration=first:normalize=0,atrim=end={duration_s:g}[out]"
        )
        temp_out = Path(temp) / path.name
        args += ["-filter_complex", ";".join(mix), "-map", "[out]", "-c:a", "flac", "-sample_fmt", "s16", str(temp_out)]
        subprocess.run(args, check=True, capture_output=True, timeout=300)
        temp_out.rename(path)
    return described


def _speech(text: str, path: Path) -> np.ndarray:
    """`text` spoken by espeak-ng, trimmed to its voiced stretch, as [T] float32 at 44.1 kHz."""
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), text], check=True, capture_output=True, timeout=60)
    args = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1"]
    raw = subprocess.run([*args, "-ar", str(SAMPLE_RATE_HZ), "pipe:1"], check=True, capture_output=True).stdout
    path.unlink()
    speech = np.frombuffer(raw, dtype="<f4")
    voiced = np.flatnonzero(np.abs(speech) > 10 ** (_VOICED_DBFS / 20))
    return speech[voiced[0] : voiced[-1] + 1].copy()


def _lay_speech(
    music: np.ndarray, sentences: list[np.ndarray], starts_s: tuple[float, ...], reference: np.ndarray | None = None
) -> tuple[np.ndarray, tuple[tuple[float, float], ...]]:
    """`music` [T, 2] with `sentences[i]` added on both channels from `starts_s[i]`, each at
    SPEECH_GAIN_DB over the RMS of `reference` (default: the music) under it; the mix and the spans."""
    reference = music if reference is None else reference
    mix = music.copy()
    spans = []
    for sentence, start_s in zip(sentences, starts_s, strict=False):
        start = round(start_s * SAMPLE_RATE_HZ)
        stop = min(start + sentence.size, len(mix))
        under = float(np.sqrt(np.mean(np.square(reference[start:stop]))))
        gain = under * 10 ** (SPEECH_GAIN_DB / 20) / float(np.sqrt(np.mean(np.square(sentence))))
        mix[start:stop] += (gain * sentence[: stop - start])[:, None]
        spans.append((start_s, stop / SAMPLE_RATE_HZ))
    return mix, tuple(spans)


def _mux(path: Path, audio: np.ndarray, cut_every_s: float) -> tuple[Path, float]:
    """`audio` [T, C] (C = 2 or 6), scaled down where it would clip, under a moving test pattern
    with a hard cut every `cut_every_s`, as H.264 + AAC (256 kb/s; 5.1 for 6 channels) in an mp4
    of VIDEO_S seconds; the file and the gain applied."""
    wav = path.with_suffix(".wav")
    gain = 1.0 / max(1.0, float(np.max(np.abs(audio))) / 0.9)
    sf.write(wav, audio * np.float32(gain), SAMPLE_RATE_HZ, subtype="FLOAT")
    picture = f"testsrc2=size=320x240:rate=25:duration={VIDEO_S},hue=h=97*floor(t/{cut_every_s}):s=1.5"
    layout = ["-channel_layout", "5.1"] if audio.shape[1] == 6 else []
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", picture, *layout, "-i", str(wav)]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "256k"]
    subprocess.run([*args, "-t", str(VIDEO_S), "-movflags", "+faststart", str(path)], check=True, capture_output=True)
    wav.unlink()
    return path, gain


def _ffmpeg_stereo(audio: np.ndarray, folder: Path) -> np.ndarray:
    """[T, 6] 5.1 -> [T, 2] down-mixed by ffmpeg's `-ac 2`, as the separate stage decodes a 5.1 track."""
    wav = folder / ".downmix.wav"
    sf.write(wav, audio, SAMPLE_RATE_HZ, subtype="FLOAT")
    args = ["ffmpeg", "-nostdin", "-v", "error", "-channel_layout", "5.1", "-i", str(wav), "-f", "f32le", "-ac", "2"]
    raw = subprocess.run([*args, "pipe:1"], check=True, capture_output=True).stdout
    wav.unlink()
    return np.frombuffer(raw, dtype="<f4").reshape(-1, 2).copy()


def signal_to_distortion_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """10 log10(|s|^2 / |s - s_hat|^2) over the samples both hold ([T, 2] each), as in the
    issue's figure (plain SDR: no scale or filter is fitted)."""
    length = min(len(reference), len(estimate))
    reference, estimate = reference[:length].astype(np.float64), estimate[:length].astype(np.float64)
    error = np.sum(np.square(reference - estimate))
    return math.inf if error == 0 else float(10 * np.log10(np.sum(np.square(reference)) / error))
