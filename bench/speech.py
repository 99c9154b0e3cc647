"""Speech seconds found by Silero VAD on the separated vocals vs on the mix, against known truth.

In: real music (Debian's `pushover-data`: Ogg Vorbis tracks under /usr/share/pushover/themes),
espeak-ng sentences laid over it at known times and levels, and a Demucs model folder (default:
the real HTDemucs v4 weights that `python -m curation.htdemucs_onnx` writes to
~/.cache/dvmset/weights/htdemucs; `--model-dir`/`--model` for another). Out: a table on stdout.

Each case is 30 s of one track with three sentences at 2, 11 and 20.5 s (their voiced stretches,
first to last sample over -40 dBFS, are the truth), the speech `level_db` over the music's RMS under
it, or no speech at all (a music-only control). Per case and way of measuring, the speech seconds
the prescreen would count (`speech_mask` with the config's rules over 0.1 s frames), the part of
them inside the truth (+-0.1 s) and outside it:

- `vocals`: Silero VAD on the separated vocals stem, as the separate stage now runs it;
- `mix`: Silero VAD on the mix itself (no separation);
- `clean`: Silero VAD on the speech alone (what the detector finds with no music at all);
- `energy`: the old measure, vocals-stem energy over the accompaniment's (separate/1, prescreen/2).

Separations are cached (`--cache`, by track, level and model, with their timings) so that reruns
with other rules (`--threshold`, `--min-silence-s`) take seconds. It also prints the detector's
cost (timed on the mixes at every run): CPU and wall seconds per minute of audio, beside the
separation's (with the detector inside it; timed when the separation was made).

    .venv/bin/python bench/speech.py [--model-dir DIR] [--model htdemucs] [--cache DIR] [--threshold 0.5]
        [--min-speech-s 0.25] [--min-silence-s 0.1] [--speech-pad-s 0.03]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation.separate import load_separator, separate_track  # noqa: E402
from curation.speech import (  # noqa: E402
    HOP_S,
    load_speech_detector,
    speech_mask,
    speech_probabilities,
    speech_segments,
)
from dvmset.config import PrescreenConfig  # noqa: E402

MUSIC_DIR = Path("/usr/share/pushover/themes")
RATE_HZ = 44_100
CASE_S = 30.0
FRAME_S = 0.1
STARTS_S = (2.0, 11.0, 20.5)
SENTENCES = (
    "Welcome to the old town. The market opens at dawn, and the bakers are already at work.",
    "Across the river stands the cathedral, built over two hundred years by generations of masons.",
    "In the evening the harbour fills with music, and the fishing boats come home with the tide.",
)
VOICES = ("en", "en-us+f3", "en-gb+m3")
# (track, start in the track s, speech level over the music dB or None for music only)
CASES: tuple[tuple[str, float, float | None], ...] = (
    ("castle", 20.0, 3.0),
    ("electro", 30.0, 0.0),
    ("greek", 15.0, -3.0),
    ("space", 20.0, -6.0),
    ("mechanic", 20.0, -9.0),
    ("aztec", 40.0, None),
    ("dungeon", 30.0, None),
    ("toxcity", 20.0, None),
)
_VOICED_DBFS = -40.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path.home() / ".cache/dvmset/weights/htdemucs")
    parser.add_argument("--model", default="htdemucs")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/dvmset/bench-speech")
    defaults = PrescreenConfig()
    parser.add_argument("--threshold", type=float, default=defaults.speech_threshold)
    parser.add_argument("--min-speech-s", type=float, default=defaults.min_speech_s)
    parser.add_argument("--min-silence-s", type=float, default=defaults.min_speech_gap_s)
    parser.add_argument("--speech-pad-s", type=float, default=defaults.speech_pad_s)
    args = parser.parse_args()
    if not (MUSIC_DIR / "castle.ogg").is_file():
        sys.exit("needs Debian's pushover-data (apt-get install pushover-data) and espeak-ng")
    print(f"load average at start: {os.getloadavg()}")
    separator = load_separator(args.model, args.model_dir, device="cpu")
    detector = load_speech_detector()
    print(f"separator {separator.stamp.model_id} (stand-in: {separator.stand_in}), detector {detector.stamp.model_id}")
    rules = {
        "threshold": args.threshold,
        "min_speech_s": args.min_speech_s,
        "min_silence_s": args.min_silence_s,
        "speech_pad_s": args.speech_pad_s,
    }
    print(f"rules: {rules}")
    sentences = [_speech(text, voice) for text, voice in zip(SENTENCES, VOICES, strict=True)]
    args.cache.mkdir(parents=True, exist_ok=True)
    rows, costs = [], []
    for track, offset_s, level_db in CASES:
        mix, speech_alone, spans = _case(track, offset_s, level_db, sentences)
        measured = _measure(separator, detector, mix, speech_alone, args.cache, (track, offset_s, level_db), costs)
        truth = _truth_mask(spans)
        for way, mask in _masks(measured, rules).items():
            rows.append(
                (
                    track,
                    level_db,
                    way,
                    truth.sum() * FRAME_S,
                    mask.sum() * FRAME_S,
                    (mask & _near(truth)).sum() * FRAME_S,
                    (mask & ~_near(truth)).sum() * FRAME_S,
                )
            )
    _print_table(rows)
    _print_costs(costs)
    print(f"load average at end: {os.getloadavg()}")


def _masks(measured: dict[str, np.ndarray], rules: dict[str, float]) -> dict[str, np.ndarray]:
    frames = round(CASE_S / FRAME_S)
    masks = {
        way: speech_mask(speech_segments(measured[way], HOP_S, **rules), FRAME_S, frames)
        for way in ("vocals", "mix", "clean")
    }
    old = (measured["vocals_db"] > measured["accompaniment_db"]) & (measured["vocals_db"] > -45.0)
    masks["energy"] = old[:frames]
    return masks


def _measure(separator, detector, mix, speech_alone, cache: Path, key: tuple, costs: list) -> dict[str, np.ndarray]:
    """Speech probabilities (vocals, mix, clean) and the old energy curves of one case; the
    separation's part cached. Appends (audio s, separation wall s, CPU s, detector wall s, CPU s)."""
    digest = hashlib.sha256(repr((key, separator.sha256, detector.sha256, CASE_S)).encode()).hexdigest()[:16]
    path = cache / f"{key[0]}-{digest}.npz"
    if path.is_file():
        with np.load(path) as data:
            measured = {name: data[name] for name in data.files}
    else:
        started, cpu = time.perf_counter(), time.process_time()
        separation = separate_track(separator, mix.T, speech_detector=detector)
        measured = {
            "vocals": separation.speech_prob,
            "vocals_db": separation.vocals_energy_db,
            "accompaniment_db": separation.accompaniment_energy_db,
            "separate_cost_s": np.array([time.perf_counter() - started, time.process_time() - cpu]),
        }
        with tempfile.NamedTemporaryFile(dir=cache, suffix=".npz", delete=False) as file:
            np.savez(file, **measured)
        os.replace(file.name, path)
    started, cpu = time.perf_counter(), time.process_time()
    measured["mix"] = speech_probabilities(detector, [mix.T], RATE_HZ)
    costs.append((CASE_S, *measured["separate_cost_s"], time.perf_counter() - started, time.process_time() - cpu))
    measured["clean"] = speech_probabilities(detector, [speech_alone], RATE_HZ)
    return measured


def _case(track: str, offset_s: float, level_db: float | None, sentences: list[np.ndarray]):
    """The mix [T, 2], the speech alone [T] and the truth spans (s) of one case."""
    music = _music(track, offset_s)
    speech = np.zeros(len(music), np.float32)
    spans = []
    if level_db is not None:
        for sentence, start_s in zip(sentences, STARTS_S, strict=True):
            start = round(start_s * RATE_HZ)
            stop = min(start + sentence.size, len(music))
            under = float(np.sqrt(np.mean(np.square(music[start:stop]))))
            gain = under * 10 ** (level_db / 20) / float(np.sqrt(np.mean(np.square(sentence))))
            speech[start:stop] = gain * sentence[: stop - start]
            spans.append((start_s, stop / RATE_HZ))
    mix = music + speech[:, None]
    gain = 1.0 / max(1.0, float(np.abs(mix).max()) / 0.9)
    return (mix * gain).astype(np.float32), (speech * gain).astype(np.float32), spans


def _truth_mask(spans: list[tuple[float, float]]) -> np.ndarray:
    centres_s = (np.arange(round(CASE_S / FRAME_S)) + 0.5) * FRAME_S
    mask = np.zeros(centres_s.size, bool)
    for start_s, end_s in spans:
        mask |= (centres_s >= start_s) & (centres_s < end_s)
    return mask


def _near(truth: np.ndarray) -> np.ndarray:
    """The truth widened by one frame each side: a padded edge is not a false detection."""
    return truth | np.roll(truth, 1) | np.roll(truth, -1)


def _music(track: str, start_s: float) -> np.ndarray:
    args = ["ffmpeg", "-nostdin", "-v", "error", "-ss", str(start_s), "-t", str(CASE_S)]
    args += ["-i", str(MUSIC_DIR / f"{track}.ogg"), "-f", "f32le", "-ac", "2", "-ar", str(RATE_HZ), "pipe:1"]
    raw = subprocess.run(args, check=True, capture_output=True, timeout=120).stdout
    music = np.frombuffer(raw, dtype="<f4").reshape(-1, 2)
    total = round(CASE_S * RATE_HZ)
    return np.pad(music, ((0, max(0, total - len(music))), (0, 0)))[:total].copy()


def _speech(text: str, voice: str) -> np.ndarray:
    """`text` spoken by espeak-ng in `voice`, trimmed to its voiced stretch, [T] float32 at 44.1 kHz."""
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text], check=True, capture_output=True)
        args = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(wav), "-f", "f32le", "-ac", "1", "-ar", str(RATE_HZ)]
        speech = np.frombuffer(subprocess.run([*args, "pipe:1"], check=True, capture_output=True).stdout, "<f4")
    voiced = np.flatnonzero(np.abs(speech) > 10 ** (_VOICED_DBFS / 20))
    return speech[voiced[0] : voiced[-1] + 1].copy()


def _print_table(rows: list[tuple]) -> None:
    print("\nspeech seconds per 30 s case (found = inside + outside the truth +-0.1 s)")
    header = f"{'track':<9} {'speech dB':>9} {'measured on':<11} {'truth s':>7} {'found s':>7} {'inside':>6}"
    print(f"{header} {'outside':>7}")
    for track, level_db, way, truth_s, found_s, inside_s, outside_s in rows:
        level = "none" if level_db is None else f"{level_db:+.0f}"
        print(f"{track:<9} {level:>9} {way:<11} {truth_s:7.1f} {found_s:7.1f} {inside_s:6.1f} {outside_s:7.1f}")
    print("\ntotals over the cases")
    for way in ("vocals", "mix", "clean", "energy"):
        picked = [row for row in rows if row[2] == way]
        truth_s, found_s, inside_s, outside_s = (sum(row[i] for row in picked) for i in range(3, 7))
        share = inside_s / max(truth_s, 1e-9)
        print(
            f"{way:<8} truth {truth_s:6.1f} s  found {found_s:6.1f} s  inside {inside_s:6.1f} s "
            f"({share:.0%} of the truth)"
            f"  outside {outside_s:5.1f} s"
        )


def _print_costs(costs: list[tuple]) -> None:
    audio_min = sum(row[0] for row in costs) / 60
    separate_wall, separate_cpu, vad_wall, vad_cpu = (sum(row[i] for row in costs) / audio_min for i in range(1, 5))
    print(
        f"\ncost per minute of audio ({audio_min:.1f} min): separation (with the detector, timed when cached)"
        f" {separate_wall:.1f} s wall, {separate_cpu:.1f} s CPU; the detector alone (now) {vad_wall:.2f} s wall,"
        f" {vad_cpu:.2f} s CPU ({vad_cpu / separate_cpu:.1%} of the separation's CPU)"
    )


if __name__ == "__main__":
    main()
