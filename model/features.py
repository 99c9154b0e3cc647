"""Visual features of a clip for VidMusician (paper, sections 3.1 and 3.2), cached per clip and CLIP model.

In: a clip's `video.mp4` (any length, any constant frame rate) and a CLIP vision model
(`CLIPVisionModelWithProjection` with its image processor; a hub id or a local folder).
Out: `VisualFeatures`, for a clip of T25 frames at 25 fps (1500 for 60 s):
- `global_embeds_1fps` `[T1, D]` float32, T1 = ceil(T25 / 25): CLIP `image_embeds` (the projected
  CLS token, not normalised) of the frames at 0 s, 1 s, 2 s, ... -- the semantic condition V_S, eq. (1).
- `cls_1fps` `[T1, H]` float32: the CLS token itself of the same frames (after CLIP's final layer norm,
  before the projection; 768 wide for ViT-B/32), as the paper's equation (1) writes V_S.
  `SEMANTIC_FEATURES` names the two; the model's `semantic_feature` setting picks one.
- `rhythm_curve_50hz` `[2 * T25]` float32: the rhythm condition d. sim_i = the mean over the P patches
  of the cosine between the patch tokens (`last_hidden_state[:, 1:]`, `[T25, P, H]`) of frames i and
  i+1, eq. (4); Algorithm 1 prepends 1, takes dis = 1 - sim and puts a 0 after every value, so entry
  2i is the distance between frame i-1 and frame i and there is one value per 50 Hz MusicGen token.

The video is decoded once, at 25 fps, and every frame goes through CLIP once, in batches; the 1 fps
frames are every 25th frame of that decode. Patch tokens are reduced to sim as the batches pass and
are never kept (for a real ViT-B/32 they would be 1500 x 49 x 768 float32 = 226 MB per 60 s clip):
the rhythm module consumes d, never the tokens.

Cached: `features/<clip_id>/clip-<model slug>.safetensors` with the two tensors above (see
`model.cache`); a second call returns it without decoding, another model id computes anew.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import CLIPVisionModelWithProjection
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from dvmset.storage import DataRoot
from model import video
from model.cache import cache_path, read_cache, write_cache
from model.weights import load_model, load_processor

DEFAULT_CLIP_MODEL_ID = "openai/clip-vit-base-patch32"
FEATURES_VERSION = "clip-features/2"  # 2: the CLS token too
SEMANTIC_FEATURES = ("image_embeds", "cls")
CACHE_KIND = "clip"
RHYTHM_FPS = 25  # patch tokens, eq. (3)
GLOBAL_FPS = 1  # global features, eq. (1); RHYTHM_FPS is a multiple of it
DEFAULT_BATCH_SIZE = 64  # frames per CLIP forward pass


@dataclass(frozen=True, eq=False)
class ClipEncoder:
    """A loaded CLIP vision tower, its image processor (transformers' PIL backend: the default
    `CLIPImageProcessor` of transformers 5 needs torchvision) and the id it was loaded by."""

    model: CLIPVisionModelWithProjection
    processor: CLIPImageProcessorPil
    model_id: str
    device: torch.device

    @property
    def short_edge_px(self) -> int:
        """The short edge frames are decoded at: the processor's resize target."""
        size = self.processor.size
        short_edge = size.shortest_edge or max(size.height or 0, size.width or 0)
        if not short_edge:
            raise ValueError(f"image processor of {self.model_id!r} has no usable resize size: {size}")
        return int(short_edge)


@dataclass(frozen=True, eq=False)
class VisualFeatures:
    """One clip's CLIP features: `global_embeds_1fps` `[T1, D]`, `rhythm_curve_50hz` `[2 * T25]`."""

    global_embeds_1fps: torch.Tensor
    rhythm_curve_50hz: torch.Tensor
    model_id: str
    cls_1fps: torch.Tensor | None = None

    @property
    def num_frames_25fps(self) -> int:
        return self.rhythm_curve_50hz.shape[0] // 2

    def semantic(self, feature: str = "image_embeds") -> torch.Tensor:
        """The 1 fps semantic condition `[T1, D]`: `image_embeds` or the `cls` token (`SEMANTIC_FEATURES`)."""
        if feature == "image_embeds":
            return self.global_embeds_1fps
        if feature == "cls" and self.cls_1fps is not None:
            return self.cls_1fps
        raise ValueError(f"no semantic feature {feature!r} in these features; features are {SEMANTIC_FEATURES}")


def load_clip_encoder(
    model_id: str = DEFAULT_CLIP_MODEL_ID, model_dir: Path | None = None, device: str | None = None
) -> ClipEncoder:
    """Load CLIP's vision tower and image processor by `model_id` (see `model.weights` for where it is
    looked for); raises `WeightsNotFoundError` when they cannot be found."""
    torch_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = load_model(CLIPVisionModelWithProjection, model_id, model_dir)
    processor = load_processor(CLIPImageProcessorPil, model_id, model_dir)
    return ClipEncoder(model.to(torch_device).eval(), processor, model_id, torch_device)


def patch_similarity(patch_tokens: torch.Tensor) -> torch.Tensor:
    """Eq. (4): `[T, P, H]` patch tokens -> `[T - 1]`, entry i the mean over the P patches of the cosine
    between patch j of frame i and patch j of frame i + 1."""
    tokens = patch_tokens.float()
    return F.cosine_similarity(tokens[:-1], tokens[1:], dim=-1).mean(dim=-1)


def distance_sequence(similarity: torch.Tensor) -> torch.Tensor:
    """Algorithm 1: sim `[T - 1]` -> d `[2T]`: prepend 1, dis = 1 - sim, a 0 after every value."""
    distance = 1.0 - torch.cat([similarity.new_ones(1), similarity])
    return torch.stack([distance, torch.zeros_like(distance)], dim=1).reshape(-1)


def rhythm_curve(patch_tokens: torch.Tensor) -> torch.Tensor:
    """Patch tokens `[T, P, H]` at 25 fps -> the rhythm curve `[2T]` at 50 Hz (eq. (4), Algorithm 1)."""
    if patch_tokens.ndim != 3 or patch_tokens.shape[0] == 0:
        raise ValueError(f"expected patch tokens [T >= 1, P, H], got shape {tuple(patch_tokens.shape)}")
    return distance_sequence(patch_similarity(patch_tokens))


@torch.inference_mode()
def extract_visual_features(
    video_path: Path, encoder: ClipEncoder, batch_size: int = DEFAULT_BATCH_SIZE
) -> VisualFeatures:
    """Decode `video_path` at 25 fps and run CLIP over every frame, `batch_size` frames at a time."""
    global_stride = RHYTHM_FPS // GLOBAL_FPS
    global_embeds: list[torch.Tensor] = []
    cls_tokens: list[torch.Tensor] = []
    similarities: list[torch.Tensor] = []
    final_norm = _final_layer_norm(encoder.model)
    previous_patches: torch.Tensor | None = None  # [1, P, H]: the last frame of the previous batch
    first_index = 0
    for frames in video.iter_frame_batches(video_path, RHYTHM_FPS, encoder.short_edge_px, batch_size):
        pixels = encoder.processor(images=list(frames), return_tensors="pt", input_data_format="channels_last")
        output = encoder.model(pixel_values=pixels["pixel_values"].to(encoder.device))
        patches = output.last_hidden_state[:, 1:]  # [B, P, H]
        if previous_patches is not None:
            patches = torch.cat([previous_patches, patches])
        similarities.append(patch_similarity(patches).cpu())
        previous_patches = patches[-1:]
        offset = -first_index % global_stride  # first frame of this batch at a whole second
        global_embeds.append(output.image_embeds[offset::global_stride].float().cpu())
        cls_tokens.append(final_norm(output.last_hidden_state[offset::global_stride, 0]).float().cpu())
        first_index += len(frames)
    return VisualFeatures(
        global_embeds_1fps=torch.cat(global_embeds),
        rhythm_curve_50hz=distance_sequence(torch.cat(similarities)),
        model_id=encoder.model_id,
        cls_1fps=torch.cat(cls_tokens),
    )


def _final_layer_norm(model: CLIPVisionModelWithProjection) -> torch.nn.Module:
    """CLIP vision's `post_layernorm`: what turns the CLS token into the pooled output it projects."""
    return next(module for name, module in model.named_modules() if name.endswith("post_layernorm"))


def features_path(data_root: DataRoot, clip_id: str, model_id: str) -> Path:
    """Where `visual_features` caches a clip's features for `model_id`."""
    return cache_path(data_root, clip_id, CACHE_KIND, model_id)


def load_cached_visual_features(data_root: DataRoot, clip_id: str, model_id: str) -> VisualFeatures | None:
    """The cached features of `clip_id` for `model_id`, or None; needs no model (for training)."""
    tensors = read_cache(features_path(data_root, clip_id, model_id), _cache_metadata(model_id))
    if tensors is None:
        return None
    return VisualFeatures(tensors["global_embeds_1fps"], tensors["rhythm_curve_50hz"], model_id, tensors["cls_1fps"])


def visual_features(
    data_root: DataRoot, clip_id: str, encoder: ClipEncoder, batch_size: int = DEFAULT_BATCH_SIZE
) -> VisualFeatures:
    """The features of `clip_id` from the cache, else computed from its `video.mp4` and cached."""
    cached = load_cached_visual_features(data_root, clip_id, encoder.model_id)
    if cached is not None:
        return cached
    features = extract_visual_features(data_root.clip_video_path(clip_id), encoder, batch_size)
    write_cache(
        features_path(data_root, clip_id, encoder.model_id),
        {
            "global_embeds_1fps": features.global_embeds_1fps,
            "rhythm_curve_50hz": features.rhythm_curve_50hz,
            "cls_1fps": features.cls_1fps,
        },
        _cache_metadata(encoder.model_id),
    )
    return features


def visual_features_for_clips(
    data_root: DataRoot, clip_ids: Sequence[str], encoder: ClipEncoder, batch_size: int = DEFAULT_BATCH_SIZE
) -> list[Path]:
    """Compute (or find cached) the features of every clip, with a progress bar; returns the cache
    files in the order of `clip_ids`. The first failing clip raises; the clips before it stay cached,
    so a re-run goes on from there."""
    paths = []
    for clip_id in tqdm(clip_ids, desc=f"CLIP features ({encoder.model_id})", unit="clip"):
        visual_features(data_root, clip_id, encoder, batch_size)
        paths.append(features_path(data_root, clip_id, encoder.model_id))
    return paths


def _cache_metadata(model_id: str) -> dict[str, str]:
    return {
        "model_id": model_id,
        "version": FEATURES_VERSION,
        "rhythm_fps": str(RHYTHM_FPS),
        "global_fps": str(GLOBAL_FPS),
    }
