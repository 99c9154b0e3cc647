"""Speech detection with Silero VAD: speech probabilities of a track fed in order, and the speech mask.

In: a track's audio, [C, L] float32 pieces at any sample rate, in order (the separate stage feeds
each window's finished part as it goes). Out: speech probabilities [N] float32, one per 32 ms
chunk (`HOP_S`): the track is averaged to mono, resampled to 16 kHz (soxr, streaming: the same
samples however the track is cut) and cut into Silero's own 512-sample chunks, the last one
zero-padded, so N = ceil(T_16k / 512) and chunk i covers [i * HOP_S, (i + 1) * HOP_S) of the track.
The model is stateful (an LSTM state and 64 samples of context carry from chunk to chunk): the
state lives in the `SpeechStream` of one track, never in the shared model, so tracks separated at
once in threads of one process do not mix. On the CPU the chunks run on one torch thread (Silero's
own advice): its ops are tiny, and spreading each over two cores costs 5 to 40 times the CPU on a
busy machine (0.65 s a minute of audio on one thread; 3 to 25 s on two, at load 4 to 12).

`speech_segments` / `speech_mask` turn probabilities into speech stretches with the rules of
Silero's `get_speech_timestamps` (threshold, neg_threshold, min speech, min silence, padding;
its max-speech split is left out, as Silero's default leaves it off: max_speech_duration_s = inf).

The model is the TorchScript Silero VAD inside the `silero-vad` wheel (MIT), loaded from the
wheel's file without importing the package: `import silero_vad` calls `torch.set_num_threads(1)`
for the whole process, which would leave Demucs one core.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
import torch

from curation.weights import state_sha256
from dvmset.errors import ConfigError
from dvmset.records import ModelStamp

SAMPLE_RATE_HZ = 16_000  # what the model reads
CHUNK_SAMPLES = 512  # Silero's chunk at 16 kHz
CONTEXT_SAMPLES = 64  # the previous chunk's tail the model sees before each chunk
HOP_S = CHUNK_SAMPLES / SAMPLE_RATE_HZ  # 0.032 s
PACKAGE = "silero-vad"
_MODULE = "silero_vad"
_MODEL_FILE = Path("data") / "silero_vad.jit"
_INSTALL = f"install it with `pip install {PACKAGE}==6.2.3` (its core needs only torch; leave out its extras)"


class SpeechDetectorNotFoundError(ConfigError):
    """The Silero VAD package or its model file is missing: a set-up error that stops a run."""


@dataclass(frozen=True, eq=False)
class SpeechDetector:
    """The loaded Silero VAD TorchScript model, its package version, `state_sha256` of its weights
    and where it runs."""

    model: torch.jit.ScriptModule
    version: str
    sha256: str
    device: str = "cpu"

    @property
    def stamp(self) -> ModelStamp:
        return ModelStamp(model_id=f"{PACKAGE} {self.version}", sha256=self.sha256, stand_in=False)


def load_speech_detector(device: str = "cpu") -> SpeechDetector:
    """Load the Silero VAD model that the installed `silero-vad` wheel ships (raises
    `SpeechDetectorNotFoundError` with how to install it when the package or the file is missing)."""
    spec = importlib.util.find_spec(_MODULE)  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise SpeechDetectorNotFoundError(f"Silero VAD (the Python package {PACKAGE}) is not installed: {_INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / _MODEL_FILE
    if not path.is_file():
        raise SpeechDetectorNotFoundError(f"the {PACKAGE} package has no model file at {path}: re{_INSTALL}")
    with warnings.catch_warnings():  # torch deprecates TorchScript; the wheel ships this model so
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.load(str(path), map_location=device)
    model.eval()
    return SpeechDetector(model, importlib.metadata.version(PACKAGE), state_sha256(model), device)


class SpeechStream:
    """The speech probabilities of one track, fed in order: `feed` each next piece, then `finish`."""

    def __init__(self, detector: SpeechDetector, sample_rate_hz: int) -> None:
        self._network = detector.model._model  # the 16 kHz network: (x, state) -> (prob, state), no state kept
        self._device = detector.device
        self._resampler = (
            None
            if sample_rate_hz == SAMPLE_RATE_HZ
            else soxr.ResampleStream(sample_rate_hz, SAMPLE_RATE_HZ, 1, dtype="float32", quality="HQ")
        )
        self._pending = np.zeros(0, dtype=np.float32)  # 16 kHz samples short of a whole chunk
        self._context = torch.zeros(1, CONTEXT_SAMPLES, device=self._device)
        self._state = torch.zeros(0, device=self._device)  # the network starts from zeros
        self._probs: list[float] = []
        self._finished = False

    def feed(self, audio: np.ndarray) -> None:
        """Add the track's next samples: [C, L] (the channels are averaged) or [L] mono."""
        if self._finished:
            raise RuntimeError("this track's speech stream is finished")
        mono = np.asarray(audio, dtype=np.float32)
        mono = mono.mean(axis=0) if mono.ndim == 2 else mono
        self._run(mono if self._resampler is None else self._resampler.resample_chunk(mono, last=False))

    def finish(self) -> np.ndarray:
        """The probabilities of the whole track, [N] float32 (the last chunk is zero-padded)."""
        if not self._finished:
            tail = np.zeros(0, dtype=np.float32)
            self._run(tail if self._resampler is None else self._resampler.resample_chunk(tail, last=True))
            if self._pending.size:
                self._run(np.zeros(CHUNK_SAMPLES - self._pending.size, dtype=np.float32))
            self._finished = True
        return np.asarray(self._probs, dtype=np.float32)

    def _run(self, samples: np.ndarray) -> None:
        samples = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32).reshape(-1)])
        whole = samples.size // CHUNK_SAMPLES * CHUNK_SAMPLES
        self._pending = samples[whole:]
        chunks = torch.from_numpy(samples[:whole]).reshape(-1, CHUNK_SAMPLES).to(self._device)
        context, state = self._context, self._state
        with torch.inference_mode(), _one_thread(self._device):
            for chunk in chunks:
                x = torch.cat([context, chunk[None]], dim=1)
                prob, state = self._network(x, state)
                context = x[:, -CONTEXT_SAMPLES:]
                self._probs.append(float(prob))
        self._context, self._state = context, state


@contextlib.contextmanager
def _one_thread(device: str):
    """Torch on one intra-op thread in this thread while on the CPU. Threads that already ran torch
    keep their own count (OpenMP's is per thread); MKL's count is global, so another thread's
    matrix products run on one thread for the few hundred ms this lasts."""
    if not device.startswith("cpu"):
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def speech_probabilities(detector: SpeechDetector, pieces: Iterable[np.ndarray], sample_rate_hz: int) -> np.ndarray:
    """[N] float32 speech probabilities of a track given as consecutive pieces ([C, L] or [L])."""
    stream = SpeechStream(detector, sample_rate_hz)
    for piece in pieces:
        stream.feed(piece)
    return stream.finish()


def speech_segments(
    probs: np.ndarray,
    hop_s: float,
    *,
    threshold: float = 0.5,
    neg_threshold: float | None = None,
    min_speech_s: float = 0.25,
    min_silence_s: float = 0.1,
    speech_pad_s: float = 0.03,
) -> list[tuple[float, float]]:
    """Speech stretches (start_s, end_s) of `probs` ([N], chunk i at i * hop_s), by the rules of
    Silero's `get_speech_timestamps`: speech starts at a chunk >= `threshold`; it ends where the
    probability fell under `neg_threshold` (default threshold - 0.15, at least 0.01) and stayed off
    `threshold` for `min_silence_s`; stretches not longer than `min_speech_s` are dropped; each is
    padded by `speech_pad_s` (neighbours closer than two pads meet half-way), within [0, N * hop_s]."""
    probs = np.asarray(probs, dtype=np.float64)
    neg_threshold = max(threshold - 0.15, 0.01) if neg_threshold is None else neg_threshold
    length_s = probs.size * hop_s
    tolerance = 1e-9 * hop_s  # durations are compared in seconds of whole chunks
    speeches: list[list[float]] = []
    start_s: float | None = None
    silence_from_s: float | None = None  # where a possible end of the current speech began
    for index, prob in enumerate(probs):
        now_s = index * hop_s
        if prob >= threshold:
            silence_from_s = None
            if start_s is None:
                start_s = now_s
                continue
        if start_s is not None and prob < neg_threshold:
            if silence_from_s is None:
                silence_from_s = now_s
            if now_s - silence_from_s >= min_silence_s - tolerance:
                if silence_from_s - start_s > min_speech_s + tolerance:
                    speeches.append([start_s, silence_from_s])
                start_s = silence_from_s = None
    if start_s is not None and length_s - start_s > min_speech_s + tolerance:
        speeches.append([start_s, length_s])
    for index, speech in enumerate(speeches):
        if index == 0:
            speech[0] = max(0.0, speech[0] - speech_pad_s)
        if index + 1 < len(speeches):
            following = speeches[index + 1]
            gap_s = following[0] - speech[1]
            shift_s = gap_s / 2 if gap_s < 2 * speech_pad_s else speech_pad_s
            speech[1] += shift_s
            following[0] = max(0.0, following[0] - shift_s)
        else:
            speech[1] = min(length_s, speech[1] + speech_pad_s)
    return [(start, end) for start, end in speeches]


def speech_mask(segments: Sequence[tuple[float, float]], frame_s: float, frame_count: int) -> np.ndarray:
    """[frame_count] bool: frame i ([i * frame_s, (i + 1) * frame_s)) is speech when its centre lies
    in one of `segments` (`speech_segments`' (start_s, end_s)); frames past their end are not."""
    centres_s = (np.arange(frame_count) + 0.5) * frame_s
    mask = np.zeros(frame_count, dtype=bool)
    for start_s, end_s in segments:
        mask |= (centres_s >= start_s) & (centres_s < end_s)
    return mask
