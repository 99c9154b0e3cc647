"""ImageBind's inputs: a video's vision views and a music file's log-mel clips, as the official loaders make them.

In: a video file (ffprobe + ffmpeg), or mono audio at `AUDIO_SAMPLE_RATE_HZ`. Out: `video_views` ->
`[VIDEO_CLIPS * SPATIAL_CROPS, 3, 2, 224, 224]`; `audio_melspecs` -> `[AUDIO_CLIPS, 1, 128, 204]`. ImageBind's
forward embeds every view or clip and averages the embeddings (`model.metrics.imagebind`).

Protocol (ImageBind's `data.py`, with pytorchvideo's samplers and transforms, rewritten here):
- clips: `clips` windows of `CLIP_S` = 2 s starting at i * max(duration - 2 s, 0) / clips, i = 0..clips-1
  (pytorchvideo's ConstantClipsPerVideoSampler); 5 clips of video, 3 of audio (the loaders' defaults).
- video: the duration is frames / average frame rate (as the decord reader counts it); a clip holds frames
  ceil(fps * start) .. ceil(fps * end) - 1; its first and last frame are kept (a uniform subsample of 2).
  Frames are decoded by ffmpeg to RGB at full size, scaled in torch so the short side is 224 (the long side
  floor(long / short * 224); bilinear, align_corners False, no antialiasing), normalized with CLIP's mean
  and std, and cut into 3 crops of 224 x 224: start, centre (offset ceil((size - 224) / 2)), end of the long
  side. Views are ordered clip by clip, crops inside.
- audio: the music is read as the channel mean and resampled with soxr HQ to 16 kHz (the official loader
  resamples with torchaudio's sinc interpolation, and its fbank reads the first channel of a multi-channel
  file); a clip is samples int(start * 16000) .. int(end * 16000); its mean is removed; `kaldi_fbank`
  (128 mel bins, 25 ms Hanning window, 10 ms shift, no dither, htk_compat, no energy) gives 198 frames for
  2 s, zero-padded (or cut) to 204; then (fbank - (-4.268)) / 9.138, the padding included.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dvmset.errors import ReasonCode
from dvmset.tools import require_tool, run_ffprobe, run_tool
from model.errors import FeatureError
from model.metrics.imagebind import IMAGE_SIZE_PX, MEL_BINS, TARGET_FRAMES, VIDEO_FRAMES

CLIP_S = 2
VIDEO_CLIPS = 5
AUDIO_CLIPS = 3
SPATIAL_CROPS = 3
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
AUDIO_SAMPLE_RATE_HZ = 16_000
FRAME_LENGTH_MS = 25
FRAME_SHIFT_MS = 10
PREEMPHASIS = 0.97
MEL_LOW_HZ = 20.0
FBANK_MEAN = -4.268
FBANK_STD = 9.138
VIDEO_PROTOCOL = (
    f"{VIDEO_CLIPS} clips of {CLIP_S} s spread evenly (start i * (duration - {CLIP_S} s) / {VIDEO_CLIPS}), each "
    f"its first and last frame; RGB, short side scaled to {IMAGE_SIZE_PX} (bilinear), CLIP mean/std, "
    f"{SPATIAL_CROPS} crops of {IMAGE_SIZE_PX} px along the long side; embeddings averaged over the "
    f"{VIDEO_CLIPS * SPATIAL_CROPS} views"
)
AUDIO_PROTOCOL = (
    f"mono (channel mean), soxr HQ to {AUDIO_SAMPLE_RATE_HZ} Hz; {AUDIO_CLIPS} clips of {CLIP_S} s spread evenly, "
    f"each mean-removed; Kaldi fbank ({MEL_BINS} mel bins from {MEL_LOW_HZ:g} Hz, {FRAME_LENGTH_MS} ms Hanning "
    f"window, {FRAME_SHIFT_MS} ms shift, pre-emphasis {PREEMPHASIS}, no dither, htk_compat, no energy), zero-padded "
    f"to {TARGET_FRAMES} frames, (fbank - ({FBANK_MEAN})) / {FBANK_STD}; embeddings averaged over the clips"
)
_PROBE_TIMEOUT_S = 60.0
_DECODE_TIMEOUT_S = 600.0
_RGB_CHANNELS = 3


def clip_starts_s(duration_s: Fraction | float, clips: int, clip_s: int = CLIP_S) -> list[Fraction]:
    """Start times of `clips` windows of `clip_s` spread over `duration_s` (see the module docstring)."""
    latest_start_s = max(Fraction(duration_s) - clip_s, Fraction(0))
    return [latest_start_s * index / clips for index in range(clips)]


def mel_scale(frequency_hz: torch.Tensor) -> torch.Tensor:
    """Kaldi's (HTK's) mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * torch.log1p(frequency_hz / 700.0)


def kaldi_mel_banks(num_bins: int, fft_size: int, sample_rate_hz: int, low_hz: float = MEL_LOW_HZ) -> torch.Tensor:
    """Kaldi's triangular mel filters [num_bins, fft_size // 2 + 1]: `num_bins` triangles equally spaced on the
    mel scale between `low_hz` and Nyquist, each rising from its left edge to its centre and falling to its
    right edge (a neighbour's centre), evaluated at the FFT bin frequencies; the Nyquist bin gets no weight."""
    mel_low, mel_high = mel_scale(torch.tensor(low_hz)), mel_scale(torch.tensor(sample_rate_hz / 2))
    delta = (mel_high - mel_low) / (num_bins + 1)
    left = mel_low + delta * torch.arange(num_bins, dtype=torch.float32)[:, None]
    centre, right = left + delta, left + 2 * delta
    bin_mel = mel_scale(torch.arange(fft_size // 2, dtype=torch.float32) * (sample_rate_hz / fft_size))[None]
    rising = (bin_mel - left) / (centre - left)
    falling = (right - bin_mel) / (right - centre)
    return F.pad(torch.clamp(torch.minimum(rising, falling), min=0.0), (0, 1))


def kaldi_fbank(
    waveform: torch.Tensor, sample_rate_hz: int = AUDIO_SAMPLE_RATE_HZ, num_bins: int = MEL_BINS
) -> torch.Tensor:
    """Log mel filter-bank energies [frames, num_bins] of mono `waveform` [S], as Kaldi's `compute-fbank-feats`
    (and torchaudio's `compliance.kaldi.fbank`) with 25 ms frames every 10 ms, no dither, a Hanning window,
    htk_compat and no energy term:
    1. frames: whole windows only (snip_edges): 1 + (S - window) // shift of them, none under one window;
    2. each frame's mean is removed (DC offset);
    3. pre-emphasis: x[t] - 0.97 x[t - 1], the first sample against itself;
    4. the symmetric Hanning window 0.5 - 0.5 cos(2 pi n / (N - 1));
    5. zero-padded to the next power of two (512 at 16 kHz) and the power spectrum |rfft|^2 taken;
    6. the mel filters (`kaldi_mel_banks`, 20 Hz to Nyquist) applied;
    7. the natural log, floored at float32's epsilon.
    With 128 bins at 16 kHz the triangle of bin index 3 falls between two FFT bins and gets no energy: its row is
    the floor, as torchaudio computes it (Kaldi itself refuses such a bank). With fewer bins this matches
    kaldi-native-fbank to float32 rounding (checked once with 64 bins: largest difference 6e-5)."""
    window = round(sample_rate_hz * FRAME_LENGTH_MS / 1000)
    shift = round(sample_rate_hz * FRAME_SHIFT_MS / 1000)
    waveform = waveform.to(torch.float32)
    if waveform.numel() < window:
        return torch.zeros(0, num_bins)
    frames = waveform.unfold(0, window, shift)
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = (frames - PREEMPHASIS * previous) * torch.hann_window(window, periodic=False)
    fft_size = 1 << (window - 1).bit_length()
    power = torch.fft.rfft(frames, n=fft_size).abs().pow(2)
    energies = power @ kaldi_mel_banks(num_bins, fft_size, sample_rate_hz).T
    return torch.clamp(energies, min=torch.finfo(torch.float32).eps).log()


def audio_melspecs(mono: np.ndarray, clips: int = AUDIO_CLIPS) -> torch.Tensor:
    """Normalized log-mel clips [clips, 1, 128, 204] of mono audio [S] at 16 kHz (see the module docstring);
    FeatureError when the audio is shorter than one 25 ms frame."""
    waveform = torch.as_tensor(np.asarray(mono, dtype=np.float32))
    if waveform.numel() < AUDIO_SAMPLE_RATE_HZ * FRAME_LENGTH_MS // 1000:
        raise FeatureError(ReasonCode.TOO_SHORT, f"{waveform.numel()} samples: too short for a 25 ms fbank frame")
    duration_s = Fraction(waveform.numel(), AUDIO_SAMPLE_RATE_HZ)
    melspecs = []
    for start_s in clip_starts_s(duration_s, clips):
        clip = waveform[int(start_s * AUDIO_SAMPLE_RATE_HZ) : int((start_s + CLIP_S) * AUDIO_SAMPLE_RATE_HZ)]
        fbank = kaldi_fbank(clip - clip.mean()).T  # [128, frames]
        fbank = F.pad(fbank, (0, max(TARGET_FRAMES - fbank.shape[1], 0)))[:, :TARGET_FRAMES]
        melspecs.append((fbank - FBANK_MEAN) / FBANK_STD)
    return torch.stack(melspecs)[:, None]


def clip_frame_indices(frame_count: int, fps: float, clips: int = VIDEO_CLIPS) -> list[tuple[int, ...]]:
    """The `VIDEO_FRAMES` (2) frame indices of each clip of a video of `frame_count` frames at `fps`: the clip's
    first and last frame (pytorchvideo's uniform temporal subsample: linspace(0, n - 1, 2), truncated)."""
    indices = []
    for start_s in clip_starts_s(Fraction(frame_count) / Fraction(fps), clips):
        first = math.ceil(fps * start_s)
        stop = min(math.ceil(fps * (start_s + CLIP_S)), frame_count)
        if stop <= first:
            raise FeatureError(ReasonCode.TOO_SHORT, f"no frame in the clip at {float(start_s):.3f} s")
        picks = torch.linspace(0, stop - 1 - first, VIDEO_FRAMES).long()
        indices.append(tuple(first + int(pick) for pick in picks))
    return indices


def short_side_size(height: int, width: int, short_px: int = IMAGE_SIZE_PX) -> tuple[int, int]:
    """(height, width) scaled so the short side is `short_px` and the long side floor(long / short * short_px)."""
    if width < height:
        return math.floor(height / width * short_px), short_px
    return short_px, math.floor(width / height * short_px)


def crop_offsets(height: int, width: int, size_px: int = IMAGE_SIZE_PX) -> list[tuple[int, int]]:
    """(top, left) of the 3 square crops: start, centre and end of the long side (width when square)."""
    top, left = math.ceil((height - size_px) / 2), math.ceil((width - size_px) / 2)
    if height > width:
        return [(0, left), (top, left), (height - size_px, left)]
    return [(top, 0), (top, left), (top, width - size_px)]


def probe_frames(video_path: Path) -> tuple[int, float, int, int]:
    """(frame count, average frame rate, width, height) of the first video stream (packets counted)."""
    options = [
        "-select_streams",
        "v:0",
        "-count_packets",
        "-show_entries",
        "stream=nb_read_packets,avg_frame_rate,width,height",
        "-of",
        "json",
    ]
    what = f"reading {video_path}"
    listing = run_ffprobe(video_path, options, _PROBE_TIMEOUT_S, ReasonCode.NOT_MEDIA, what, error=FeatureError)
    streams = json.loads(listing or "{}").get("streams") or [{}]
    stream = streams[0]
    if "width" not in stream:
        raise FeatureError(ReasonCode.NO_VIDEO_STREAM, f"{video_path} has no video stream")
    frame_count, fps = int(stream.get("nb_read_packets", 0)), float(Fraction(stream.get("avg_frame_rate", "0/1")))
    if frame_count == 0 or fps <= 0:
        raise FeatureError(ReasonCode.EMPTY_FILE, f"{video_path}: {frame_count} frames at {fps} fps")
    return frame_count, fps, int(stream["width"]), int(stream["height"])


def decode_frames(video_path: Path, indices: list[int], width: int, height: int) -> dict[int, np.ndarray]:
    """{index: RGB uint8 [H, W, 3]} of the frames of `video_path` at the given indices (presentation order)."""
    wanted = sorted(set(indices))
    select = "+".join(f"eq(n\\,{index})" for index in wanted)
    command = [
        require_tool("ffmpeg"),
        "-v",
        "error",
        "-nostdin",
        "-noautorotate",
        "-i",
        str(video_path),
        "-map",
        "0:v:0",
        "-vf",
        f"select={select}",
        "-fps_mode",
        "passthrough",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "pipe:1",
    ]
    what = f"decoding frames of {video_path}"
    raw = run_tool(command, _DECODE_TIMEOUT_S, ReasonCode.DECODE_ERROR, what, error=FeatureError, binary=True)
    frame_bytes = width * height * _RGB_CHANNELS
    if len(raw) != frame_bytes * len(wanted):
        message = f"ffmpeg gave {len(raw) // frame_bytes} of {len(wanted)} frames of {video_path}"
        raise FeatureError(ReasonCode.DECODE_ERROR, message)
    frames = np.frombuffer(raw, dtype=np.uint8).reshape(len(wanted), height, width, _RGB_CHANNELS)
    return dict(zip(wanted, frames))


def frames_to_views(clip_frames: list[list[np.ndarray]]) -> torch.Tensor:
    """RGB uint8 frames [clips, 2, H, W, 3] -> normalized views [clips * 3, 3, 2, 224, 224] (module docstring)."""
    frames = torch.as_tensor(np.asarray(clip_frames)).permute(0, 4, 1, 2, 3).to(torch.float32) / 255.0
    clips, channels, frame_count, height, width = frames.shape  # [clips, 3, 2, H, W]
    size = short_side_size(height, width)
    scaled = F.interpolate(
        frames.reshape(clips * channels, frame_count, height, width), size=size, mode="bilinear", align_corners=False
    ).reshape(clips, channels, frame_count, *size)
    mean, std = torch.tensor(CLIP_MEAN)[:, None, None, None], torch.tensor(CLIP_STD)[:, None, None, None]
    normalized = (scaled - mean) / std
    views = [
        clip[:, :, top : top + IMAGE_SIZE_PX, left : left + IMAGE_SIZE_PX]
        for clip in normalized
        for top, left in crop_offsets(*size)
    ]
    return torch.stack(views)


def video_views(video_path: Path, clips: int = VIDEO_CLIPS) -> torch.Tensor:
    """ImageBind's vision views of a video [clips * 3, 3, 2, 224, 224] (see the module docstring)."""
    frame_count, fps, width, height = probe_frames(video_path)
    picks = clip_frame_indices(frame_count, fps, clips)
    frames = decode_frames(video_path, [index for clip in picks for index in clip], width, height)
    return frames_to_views([[frames[index] for index in clip] for clip in picks])
