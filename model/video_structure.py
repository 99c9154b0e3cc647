"""A clip's video structure (VeM's storyboard, Diff-V2M's affective cues), cached per clip.

In: a clip's scene-cut times (the prescreen's `scene_cuts_s`, from the clip's start), its duration, its
1 fps CLIP embeddings (`model.features`, `[T1, D]`) and its `video.mp4`. Out:
- the storyboard: `Shot`s (start, duration) between consecutive cuts, each with the mean of the 1 fps
  embeddings shown during it (a shot between two whole seconds takes the second it starts in);
- `affect` `[T1, 4]` float32, one row per second: brightness (mean luma, 0..1), saturation (mean HSV
  saturation, 0..1), colourfulness (Hasler and Suesstrunk 2003, on 0..255 RGB) and motion energy (the
  mean absolute luma change between consecutive frames within that second, 0..1), from frames decoded at
  `AFFECT_FPS` and scaled to `AFFECT_SHORT_EDGE_PX`.

Cached: `features/<clip_id>/structure-<version slug>.safetensors` (`model.cache`) with the shots, their
embeddings and the affect rows; another CLIP model id or version computes anew.

`scaled_affect` brings the four columns to about 0..1 (colourfulness / 100: Hasler and Suesstrunk's
"extremely colourful" is 109; motion x 10: a pan moves luma by a few hundredths a frame): the model's input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dvmset.storage import DataRoot
from model import video
from model.cache import cache_path, read_cache, write_cache

STRUCTURE_VERSION = "video-structure/1"
CACHE_KIND = "structure"
AFFECT_FPS = 8
AFFECT_SHORT_EDGE_PX = 64
AFFECT_COLUMNS = ("brightness", "saturation", "colourfulness", "motion")
AFFECT_SCALE = (1.0, 1.0, 0.01, 10.0)  # per column, to about 0..1 (see the module docstring)
_BATCH_FRAMES = 64


@dataclass(frozen=True)
class Shot:
    """One shot of a storyboard: it starts at `start_s` (from the clip's start) and lasts `duration_s`."""

    start_s: float
    duration_s: float


@dataclass(frozen=True, eq=False)
class VideoStructure:
    """The storyboard (`shots`, `shot_embeds` `[N, D]`) and the per-second `affect` `[T1, 4]` of a clip."""

    shots: tuple[Shot, ...]
    shot_embeds: np.ndarray
    affect: np.ndarray


def storyboard(scene_cuts_s: Sequence[float], duration_s: float) -> tuple[Shot, ...]:
    """The shots between 0, the cuts inside (0, duration_s) and duration_s, in order."""
    inside = sorted({float(cut) for cut in scene_cuts_s if 0.0 < cut < duration_s})
    edges = [0.0, *inside, float(duration_s)]
    return tuple(Shot(start, end - start) for start, end in zip(edges, edges[1:], strict=False))


def shot_embeddings(shots: Sequence[Shot], global_embeds_1fps: np.ndarray) -> np.ndarray:
    """`[N, D]`: each shot's mean of the 1 fps embeddings shown during it (row s is the frame at s
    seconds: the rows with start <= s < end); a shot between two whole seconds takes the row of the
    second it starts in."""
    embeds = np.asarray(global_embeds_1fps, dtype=np.float32)
    rows = []
    for shot in shots:
        first = min(int(math.ceil(shot.start_s)), embeds.shape[0])
        last = min(int(math.ceil(shot.start_s + shot.duration_s)), embeds.shape[0])
        if last <= first:
            first = min(int(math.floor(shot.start_s)), embeds.shape[0] - 1)
            last = first + 1
        rows.append(embeds[first:last].mean(axis=0))
    return np.stack(rows) if rows else np.zeros((0, embeds.shape[1]), dtype=np.float32)


def affect_per_second(frames: np.ndarray, fps: int, seconds: int) -> np.ndarray:
    """`[seconds, 4]` float32 of RGB frames `[F, H, W, 3]` uint8 at `fps` (see the module docstring);
    a second without frames repeats the last row (zeros when there is none)."""
    rgb = frames.astype(np.float32)
    luma = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255.0  # [F, H, W]
    high, low = rgb.max(axis=-1), rgb.min(axis=-1)
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1e-6), 0.0)
    red_green = rgb[..., 0] - rgb[..., 1]
    yellow_blue = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    out = np.zeros((seconds, len(AFFECT_COLUMNS)), dtype=np.float32)
    for second in range(seconds):
        members = slice(second * fps, min((second + 1) * fps, len(frames)))
        if members.start >= len(frames):
            out[second] = out[second - 1] if second else 0.0
            continue
        rg, yb = red_green[members], yellow_blue[members]
        colourfulness = np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
        changes = np.abs(np.diff(luma[members], axis=0))  # within the second: a cut into it is not motion
        out[second] = (
            luma[members].mean(),
            saturation[members].mean(),
            colourfulness,
            changes.mean() if changes.size else 0.0,
        )
    return out


def scaled_affect(affect: torch.Tensor) -> torch.Tensor:
    """Affect rows `[..., 4]` -> float32 `[..., 4]`, each column times its `AFFECT_SCALE`."""
    return affect.float() * torch.tensor(AFFECT_SCALE, dtype=torch.float32, device=affect.device)


def video_affect(video_path: Path, seconds: int) -> np.ndarray:
    """`affect_per_second` of `video_path`, decoded at `AFFECT_FPS` and `AFFECT_SHORT_EDGE_PX`."""
    batches = list(video.iter_frame_batches(video_path, AFFECT_FPS, AFFECT_SHORT_EDGE_PX, _BATCH_FRAMES))
    frames = np.concatenate(batches) if batches else np.zeros((0, 1, 1, 3), dtype=np.uint8)
    return affect_per_second(frames, AFFECT_FPS, seconds)


def structure_path(data_root: DataRoot, clip_id: str, clip_model_id: str) -> Path:
    return cache_path(data_root, clip_id, CACHE_KIND, f"{STRUCTURE_VERSION}|{clip_model_id}")


def load_cached_video_structure(data_root: DataRoot, clip_id: str, clip_model_id: str) -> VideoStructure | None:
    """The cached structure of a clip, or None when it is not cached (decodes nothing)."""
    cached = read_cache(structure_path(data_root, clip_id, clip_model_id), _metadata(clip_model_id))
    if cached is None:
        return None
    shots = tuple(Shot(float(start), float(length)) for start, length in cached["shots"].tolist())
    return VideoStructure(shots, cached["shot_embeds"].numpy(), cached["affect"].numpy())


def clip_video_structure(
    data_root: DataRoot,
    clip_id: str,
    scene_cuts_s: Sequence[float],
    duration_s: float,
    global_embeds_1fps: np.ndarray,
    clip_model_id: str,
) -> VideoStructure:
    """The cached structure of a clip, computed (decoding its `video.mp4` once) and cached on the first call."""
    cached = load_cached_video_structure(data_root, clip_id, clip_model_id)
    if cached is not None:
        return cached
    shots = storyboard(scene_cuts_s, duration_s)
    structure = VideoStructure(
        shots=shots,
        shot_embeds=shot_embeddings(shots, global_embeds_1fps),
        affect=video_affect(data_root.clip_video_path(clip_id), int(np.asarray(global_embeds_1fps).shape[0])),
    )
    tensors = {
        "shots": torch.tensor([[shot.start_s, shot.duration_s] for shot in shots], dtype=torch.float64).reshape(-1, 2),
        "shot_embeds": torch.from_numpy(np.ascontiguousarray(structure.shot_embeds)),
        "affect": torch.from_numpy(np.ascontiguousarray(structure.affect)),
    }
    write_cache(structure_path(data_root, clip_id, clip_model_id), tensors, _metadata(clip_model_id))
    return structure


def _metadata(clip_model_id: str) -> dict[str, str]:
    return {"model_id": clip_model_id, "version": STRUCTURE_VERSION, "affect_fps": str(AFFECT_FPS)}
