"""Music for a video with a trained VidMusician (paper, section 3; the backbone's 30 s windows).

In: a `VidMusician` (stage 1 or 2, e.g. from `model.checkpoint`), a video file and its CLIP encoder (or
its `VisualFeatures`, length and, for a model whose options read them, per-second affect features),
`GenerationSettings`. The model's `video_conditions` (`model.video_conditions`) turn the features into the
semantic condition and the rhythm curve, as in training (the affect features are computed from the video
when the model reads them: `affect = on`, or a predicted-odf model whose predictor reads them).
Out: `Soundtrack`: a mono waveform `[S]` at the codec's sampling rate, exactly as long as the video
(S = round(duration_s x rate)), and its codes.

Long videos are generated window by window (`plan_windows`): each window spans `window_s` seconds (30 s,
MusicGen's length, by default; the last one may be shorter). After the first, a window starts
`window_s - prompt_s` seconds after the previous one and begins with the previous window's last
`prompt_s` seconds of codes as the decoder prefix (MusicGen's audio prompt), then generates the rest.
Window starts fall on whole seconds, as the training crops do. Each window is conditioned on its own
seconds of the video, in absolute time (`window_conditions`): the 1 fps CLIP embeddings of the seconds
it covers, and the 50 Hz rhythm curve of its span brought to the codec's frame rate as in training
(`model.dataset.curve_at_frames`), so decoder position p of a window starting at frame s sees the
curve at absolute frame s + p, the prompt's positions included.

Sampling: top-k (250, as MusicGen) at a temperature, classifier-free guidance (3.0, as MusicGen; 1 turns
it off), from a seed: the same seed, model and video give the same music (the global torch RNG is
forked, so the caller's random state is left as it was).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from dvmset.tools import video_duration_s
from model.checkpoint import TrainingCheckpoint, trained_model
from model.conditioning import fit_curve
from model.dataset import curve_at_frames
from model.errors import FeatureError
from model.features import GLOBAL_FPS, ClipEncoder, VisualFeatures, extract_visual_features, load_clip_encoder
from model.train import CURVE_RATE_HZ
from model.video_structure import video_affect
from model.vidmusician import VidMusician

DEFAULT_WINDOW_S = 30.0  # MusicGen's maximum generation length
DEFAULT_PROMPT_S = 12.0  # audiocraft's continuation keeps 12 s (an 18 s stride over 30 s windows)


@dataclass(frozen=True)
class GenerationSettings:
    """Windowing and sampling; see the module docstring. `window_s - prompt_s` must be whole seconds."""

    window_s: float = DEFAULT_WINDOW_S
    prompt_s: float = DEFAULT_PROMPT_S
    guidance_scale: float = 3.0
    top_k: int = 250
    temperature: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        stride_s = self.window_s - self.prompt_s
        if self.prompt_s < 0 or stride_s < 1 or stride_s != round(stride_s):
            raise ValueError(
                f"window_s {self.window_s:g} and prompt_s {self.prompt_s:g} must leave a whole number of seconds "
                "(at least 1) between window starts"
            )
        if self.guidance_scale < 1:
            raise ValueError(f"guidance_scale must be at least 1 (1: no guidance), got {self.guidance_scale:g}")
        if self.top_k < 1 or self.temperature <= 0:
            raise ValueError(f"top_k must be at least 1 and temperature above 0: {self.top_k}, {self.temperature:g}")


@dataclass(frozen=True)
class Window:
    """Music frames [start_frame, end_frame) of the whole track; the first prompt_frames come from the
    previous window, the rest are generated."""

    start_frame: int
    prompt_frames: int
    end_frame: int

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame


@dataclass(frozen=True)
class Soundtrack:
    """Generated music: waveform `[S]` float32 at sampling_rate_hz, codes `[K, T]` (T frames cover it)."""

    waveform: torch.Tensor
    sampling_rate_hz: int
    codes: torch.Tensor
    windows: list[Window]

    @property
    def duration_s(self) -> float:
        return self.waveform.shape[0] / self.sampling_rate_hz


def plan_windows(num_frames: int, frame_rate_hz: float, window_s: float, prompt_s: float) -> list[Window]:
    """The windows that cover `num_frames` music frames (see the module docstring)."""
    if num_frames < 1:
        raise ValueError(f"nothing to generate: {num_frames} frames")
    window_frames, prompt_frames = round(window_s * frame_rate_hz), round(prompt_s * frame_rate_hz)
    stride_frames = window_frames - prompt_frames
    if stride_frames < 1:
        raise ValueError(f"windows of {window_frames} frames with {prompt_frames} prompt frames do not advance")
    windows = [Window(0, 0, min(window_frames, num_frames))]
    while windows[-1].end_frame < num_frames:
        start = windows[-1].start_frame + stride_frames
        windows.append(Window(start, prompt_frames, min(start + window_frames, num_frames)))
    return windows


def window_conditions(
    semantic: torch.Tensor, curve_50hz: torch.Tensor, window: Window, frame_rate_hz: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """A window's conditions in absolute time: global_embeds `[1, N, D]`, the rows of the 1 fps semantic
    condition `[T1, D]` of the seconds it touches, and rhythm_curve `[1, window.num_frames]`, the 50 Hz curve
    `[T50]` over its span (0 past the curve's end) at the codec's frame rate."""
    start_s, end_s = window.start_frame / frame_rate_hz, window.end_frame / frame_rate_hz
    first = min(math.floor(start_s * GLOBAL_FPS), semantic.shape[0] - 1)
    last = max(math.ceil(end_s * GLOBAL_FPS), first + 1)
    start_index, end_index = round(start_s * CURVE_RATE_HZ), round(end_s * CURVE_RATE_HZ)
    curve = fit_curve(curve_50hz[None, start_index:end_index].float(), end_index - start_index)
    return semantic[None, first:last].float(), curve_at_frames(curve[0], window.num_frames)[None]


@torch.no_grad()
def generate_from_features(
    model: VidMusician,
    features: VisualFeatures,
    duration_s: float,
    settings: GenerationSettings = GenerationSettings(),
    progress: bool = True,
    affect: torch.Tensor | None = None,
) -> Soundtrack:
    """Music of `duration_s` seconds conditioned on a video's features and, when the model reads them, its
    affect rows `[T1, 4]` (see the module docstring)."""
    backbone = model.backbone
    semantic = model.video_conditions.semantic(features, affect)
    curve_50hz = features.rhythm_curve_50hz  # read by a stage-2 model only
    if model.rhythm is not None:
        curve_50hz = model.video_conditions.rhythm_curve_50hz(features, affect)
    frame_rate_hz, num_codebooks = backbone.frame_rate_hz, backbone.num_codebooks
    device = backbone.model.device
    windows = plan_windows(math.ceil(duration_s * frame_rate_hz), frame_rate_hz, settings.window_s, settings.prompt_s)
    codes = torch.empty(1, num_codebooks, 0, dtype=torch.long)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(settings.seed)
        for window in tqdm(windows, desc="generating music", unit="window", disable=not progress):
            global_embeds, rhythm_curve = window_conditions(semantic, curve_50hz, window, frame_rate_hz)
            prompt_end = window.start_frame + window.prompt_frames
            music = model.generate(
                global_embeds.to(device),
                torch.ones(global_embeds.shape[:2], dtype=torch.long, device=device),
                num_steps=window.num_frames - window.prompt_frames + num_codebooks - 1,
                rhythm_curve=None if model.rhythm is None else rhythm_curve.to(device),
                guidance_scale=settings.guidance_scale if settings.guidance_scale > 1 else None,
                prompt_codes=codes[:, :, window.start_frame : prompt_end].to(device) if window.prompt_frames else None,
                do_sample=True,
                top_k=settings.top_k,
                temperature=settings.temperature,
            )
            codes = torch.cat([codes, music.codes[:, :, window.prompt_frames :].cpu()], dim=2)
    num_samples = round(duration_s * backbone.sampling_rate_hz)
    waveform = backbone.decode(codes.to(device))[0, :num_samples].float().cpu()
    return Soundtrack(waveform, backbone.sampling_rate_hz, codes[0], windows)


def generate_music(
    model: VidMusician,
    video_path: Path,
    encoder: ClipEncoder,
    settings: GenerationSettings = GenerationSettings(),
    progress: bool = True,
) -> Soundtrack:
    """Music exactly as long as `video_path`'s video stream, conditioned on its CLIP features (1 fps
    global embeddings, the 50 Hz rhythm curve) and, when the model reads them, its affect features.
    FeatureError when the video has no frames."""
    duration_s = video_duration_s(video_path, error=FeatureError)
    features = extract_visual_features(video_path, encoder)
    seconds = features.global_embeds_1fps.shape[0]
    affect = torch.from_numpy(video_affect(video_path, seconds)) if model.video_conditions.needs_affect else None
    return generate_from_features(model, features, duration_s, settings, progress, affect)


def load_generator(
    checkpoint: TrainingCheckpoint, model_dir: Path | None = None, device: str | None = None
) -> tuple[VidMusician, ClipEncoder]:
    """The trained model of a checkpoint (`model.checkpoint.load_checkpoint`; eval mode) and the CLIP encoder it
    was trained with; raises `WeightsNotFoundError` (saying where it looked) when either cannot be loaded."""
    encoder = load_clip_encoder(checkpoint.spec.clip_model_id, model_dir, device)
    return trained_model(checkpoint, model_dir, device), encoder
