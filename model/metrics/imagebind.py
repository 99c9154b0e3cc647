"""ImageBind's vision and audio encoders (Girdhar et al., 2023) in plain torch, for the ImageBind score.

In: the official checkpoint `imagebind_huge.pth` (https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth:
a plain state dict of the whole six-modality model), or a smaller random model in the same format
(`save_imagebind`). Out: `ImageBind` with `embed_vision(views)` and `embed_audio(mels)`; the inputs come from
`model.metrics.imagebind_inputs`.

Written from the published architecture, not from its code; the module and parameter names are the
checkpoint's, so its vision and audio subset loads with `load_state_dict(strict=True)`:

- vision: a Conv3d patch stem (kernel = stride = (2, 14, 14), no bias; a single image would be repeated to
  2 frames, our inputs always have 2), a CLS token, learned position embeddings for 1 + 16 x 16 tokens, a
  LayerNorm (eps 1e-6) before the transformer, blocks, then the head: LayerNorm (eps 1e-6), the CLS token,
  a linear projection without bias; the postprocessor L2-normalizes.
- audio: a Conv2d patch stem over the 128 x 204 log-mel image (kernel 16, stride 10, no bias: 12 x 19 =
  228 patches) followed by a LayerNorm (eps 1e-5), a CLS token, learned position embeddings, no LayerNorm
  before the transformer, attention with learned key/value biases (`add_bias_kv`), the same head; the
  postprocessor L2-normalizes and multiplies by a fixed logit scale exp(log 20) = 20 (a buffer).
- blocks: pre-norm, x + attn(LN(x)); x + mlp(LN(x)) with LayerNorm eps 1e-6, torch's MultiheadAttention
  (packed in-projection with bias) and an MLP of ratio 4 with exact GELU. Drop-path and dropout are
  training-only and absent.

The huge model (`HUGE`): vision 1280 wide, 32 blocks, 16 heads; audio 768 wide, 12 blocks, 12 heads;
embeddings 1024 wide. Widths, depths and the embedding width of a checkpoint are read from its shapes; heads
are the width over the huge model's head width (80 vision, 64 audio), so a test model keeps those.
"""

from __future__ import annotations

import math
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dvmset.model_registry import IMAGEBIND_URL
from model.errors import WeightsNotFoundError

DEFAULT_CHECKPOINT = "imagebind/imagebind_huge.pth"
IMAGE_SIZE_PX = 224
VIDEO_FRAMES = 2
VISION_PATCH = (2, 14, 14)
MEL_BINS = 128
TARGET_FRAMES = 204
AUDIO_PATCH = 16
AUDIO_STRIDE = 10
AUDIO_LOGIT_SCALE = 20.0
VISION_HEAD_WIDTH = 80  # 1280 / 16
AUDIO_HEAD_WIDTH = 64  # 768 / 12
TRANSFORMER_EPS = 1e-6
MODALITIES = ("vision", "audio")
_MODULE_GROUPS = ("modality_preprocessors", "modality_trunks", "modality_heads", "modality_postprocessors")
_BLOCK_KEY = re.compile(r"^modality_trunks\.(vision|audio)\.blocks\.(\d+)\.")


@dataclass(frozen=True)
class ImageBindConfig:
    """Widths, depths and heads of the vision and audio encoders, and the shared embedding width."""

    vision_width: int
    vision_blocks: int
    vision_heads: int
    audio_width: int
    audio_blocks: int
    audio_heads: int
    embed_dim: int


HUGE = ImageBindConfig(1280, 32, 16, 768, 12, 12, 1024)


class _RepeatFrames(nn.Module):
    """[B, C, H, W] or [B, C, 1, H, W] -> [B, C, 2, H, W] (the image repeated); 2-frame clips pass."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            x = x[:, :, None]
        return x.expand(-1, -1, VIDEO_FRAMES, -1, -1) if x.shape[2] == 1 else x


class _PatchStem(nn.Module):
    """A convolution that cuts the input into patch tokens [B, L, D], then an optional LayerNorm."""

    def __init__(self, proj: nn.Module, norm_layer: nn.Module | None = None):
        super().__init__()
        self.proj = proj
        self.norm_layer = norm_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.proj(x).flatten(2).transpose(1, 2)
        return tokens if self.norm_layer is None else self.norm_layer(tokens)


class _PositionEmbedding(nn.Module):
    def __init__(self, tokens: int, width: int):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, width) * width**-0.5)


class _Preprocessor(nn.Module):
    """Patch tokens with a CLS token in front, plus the learned position embeddings: [B, 1 + L, D]."""

    def __init__(self, stem: _PatchStem, patches: int, width: int):
        super().__init__()
        self.rgbt_stem = stem
        self.pos_embedding_helper = _PositionEmbedding(1 + patches, width)
        self.cls_token = nn.Parameter(torch.randn(1, 1, width) * width**-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.rgbt_stem(x)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        pos_embed = self.pos_embedding_helper.pos_embed
        if tokens.shape[1] != pos_embed.shape[1]:
            raise ValueError(f"{tokens.shape[1] - 1} patches, the position embeddings hold {pos_embed.shape[1] - 1}")
        return tokens + pos_embed


class _Mlp(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    """Pre-norm transformer block on [B, L, D]."""

    def __init__(self, width: int, heads: int, key_value_bias: bool):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, bias=True, add_bias_kv=key_value_bias, batch_first=True)
        self.norm_1 = nn.LayerNorm(width, eps=TRANSFORMER_EPS)
        self.mlp = _Mlp(width)
        self.norm_2 = nn.LayerNorm(width, eps=TRANSFORMER_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.norm_1(x)
        x = x + self.attn(normed, normed, normed, need_weights=False)[0]
        return x + self.mlp(self.norm_2(x))


class _Trunk(nn.Module):
    def __init__(self, width: int, blocks: int, heads: int, pre_norm: bool, key_value_bias: bool):
        super().__init__()
        self.pre_transformer_layer = nn.Sequential(
            nn.LayerNorm(width, eps=TRANSFORMER_EPS) if pre_norm else nn.Identity()
        )
        self.blocks = nn.Sequential(*[_Block(width, heads, key_value_bias) for _ in range(blocks)])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.pre_transformer_layer(tokens))


class _SelectCls(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


class _Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1)


class _FixedLogitScale(nn.Module):
    """Multiplies by exp(`log_logit_scale`) (a buffer, so it is in the checkpoint but never trained)."""

    def __init__(self, scale: float):
        super().__init__()
        self.register_buffer("log_logit_scale", torch.tensor(math.log(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.log_logit_scale.exp()


def _patch_count(sizes: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> int:
    """Patches an unpadded convolution cuts from an input of `sizes` (16 x 16 = 256 vision, 12 x 19 = 228 audio)."""
    return math.prod((size - k) // s + 1 for size, k, s in zip(sizes, kernel, stride))


def _head(width: int, embed_dim: int) -> nn.Sequential:
    norm = nn.LayerNorm(width, eps=TRANSFORMER_EPS)
    return nn.Sequential(norm, _SelectCls(), nn.Linear(width, embed_dim, bias=False))


class ImageBind(nn.Module):
    """ImageBind's vision and audio encoders (see the module docstring); eval-only."""

    def __init__(self, config: ImageBindConfig = HUGE):
        super().__init__()
        self.config = config
        vision_stem = _PatchStem(
            nn.Sequential(
                _RepeatFrames(), nn.Conv3d(3, config.vision_width, VISION_PATCH, stride=VISION_PATCH, bias=False)
            )
        )
        audio_stem = _PatchStem(
            nn.Conv2d(1, config.audio_width, AUDIO_PATCH, stride=AUDIO_STRIDE, bias=False),
            nn.LayerNorm(config.audio_width),
        )
        vision_patches = _patch_count((VIDEO_FRAMES, IMAGE_SIZE_PX, IMAGE_SIZE_PX), VISION_PATCH, VISION_PATCH)
        audio_patches = _patch_count((MEL_BINS, TARGET_FRAMES), (AUDIO_PATCH,) * 2, (AUDIO_STRIDE,) * 2)
        self.modality_preprocessors = nn.ModuleDict(
            {
                "vision": _Preprocessor(vision_stem, vision_patches, config.vision_width),
                "audio": _Preprocessor(audio_stem, audio_patches, config.audio_width),
            }
        )
        self.modality_trunks = nn.ModuleDict(
            {
                "vision": _Trunk(config.vision_width, config.vision_blocks, config.vision_heads, True, False),
                "audio": _Trunk(config.audio_width, config.audio_blocks, config.audio_heads, False, True),
            }
        )
        self.modality_heads = nn.ModuleDict(
            {
                "vision": _head(config.vision_width, config.embed_dim),
                "audio": _head(config.audio_width, config.embed_dim),
            }
        )
        self.modality_postprocessors = nn.ModuleDict(
            {
                "vision": _Normalize(),
                "audio": nn.Sequential(_Normalize(), _FixedLogitScale(AUDIO_LOGIT_SCALE)),
            }
        )

    def _embed(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        tokens = self.modality_trunks[modality](self.modality_preprocessors[modality](x))
        return self.modality_postprocessors[modality](self.modality_heads[modality](tokens))

    def embed_vision(self, views: torch.Tensor) -> torch.Tensor:
        """Views [N, 3, 2, 224, 224] (or images [N, 3, 224, 224]) -> unit embeddings [N, embed_dim]."""
        return self._embed("vision", views)

    def embed_audio(self, mels: torch.Tensor) -> torch.Tensor:
        """Log-mel clips [N, 1, 128, 204] -> embeddings [N, embed_dim] of length 20 (the fixed logit scale)."""
        return self._embed("audio", mels)

    @torch.inference_mode()
    def mean_embedding(self, modality: str, inputs: torch.Tensor) -> np.ndarray:
        """One sample's embedding [embed_dim]: the mean of its views' or clips' embeddings (`inputs` as
        `embed_vision` or `embed_audio` take them), as ImageBind's forward reduces a 5-d or 6-d input."""
        device = next(self.parameters()).device
        embeddings = self._embed(modality, inputs.to(device))
        return embeddings.mean(dim=0).double().cpu().numpy()


def config_from_state(state: dict[str, torch.Tensor]) -> ImageBindConfig:
    """The `ImageBindConfig` of a state dict: widths from the CLS tokens, depths from the block indices,
    the embedding width from the vision head, heads from the huge model's head widths."""
    widths = {modality: int(state[f"modality_preprocessors.{modality}.cls_token"].shape[-1]) for modality in MODALITIES}
    blocks = {modality: 0 for modality in MODALITIES}
    for key in state:
        if match := _BLOCK_KEY.match(key):
            blocks[match[1]] = max(blocks[match[1]], int(match[2]) + 1)
    for modality, head_width in (("vision", VISION_HEAD_WIDTH), ("audio", AUDIO_HEAD_WIDTH)):
        if widths[modality] % head_width:
            raise ValueError(f"the {modality} width {widths[modality]} is not a multiple of {head_width}")
    vision, audio = widths["vision"], widths["audio"]
    return ImageBindConfig(
        vision_width=vision,
        vision_blocks=blocks["vision"],
        vision_heads=vision // VISION_HEAD_WIDTH,
        audio_width=audio,
        audio_blocks=blocks["audio"],
        audio_heads=audio // AUDIO_HEAD_WIDTH,
        embed_dim=int(state["modality_heads.vision.2.weight"].shape[0]),
    )


def vision_audio_subset(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries of a whole-model state dict that belong to the vision and audio encoders."""
    prefixes = tuple(f"{group}.{modality}." for group in _MODULE_GROUPS for modality in MODALITIES)
    return {key: value for key, value in state.items() if key.startswith(prefixes)}


def save_imagebind(model: ImageBind, path: Path) -> Path:
    """Write `model` as the official checkpoint is stored: a plain state dict in a `.pth` file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def checkpoint_path(checkpoint: str, model_dir: Path | None = None) -> Path:
    """Where the checkpoint is looked for: `checkpoint` itself when it is absolute, exists, or there is no
    model folder; else `<model_dir>/<checkpoint>` (the default: `<model_dir>/imagebind/imagebind_huge.pth`)."""
    path = Path(checkpoint).expanduser()
    if path.is_absolute() or path.exists() or model_dir is None:
        return path
    return Path(model_dir) / path


def missing_weights_reason(path: Path) -> str:
    """What to say when there is no checkpoint at `path`."""
    return f"no ImageBind weights at {path}; download imagebind_huge.pth from {IMAGEBIND_URL}"


def load_imagebind(
    checkpoint: str = DEFAULT_CHECKPOINT, model_dir: Path | None = None, device: str = "cpu"
) -> ImageBind:
    """`ImageBind` with the vision and audio weights of `checkpoint` (see `checkpoint_path`), strictly loaded,
    in eval mode on `device`; WeightsNotFoundError when the file is missing, unreadable, or lacks or adds
    vision/audio weights (named) or has other shapes."""
    path = checkpoint_path(checkpoint, model_dir)
    if not path.is_file():
        raise WeightsNotFoundError(missing_weights_reason(path.absolute()))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # only the subset is read
        if not isinstance(state, dict):
            raise TypeError(f"it holds a {type(state).__name__}, not a state dict")
        subset = vision_audio_subset(state)
        with torch.device("meta"):
            model = ImageBind(config_from_state(subset))
        report = model.load_state_dict(subset, strict=False, assign=True)
    except KeyError as error:  # a key the config is read from
        message = f"{path} does not fit ImageBind's vision and audio encoders: missing {error.args[0]}"
        raise WeightsNotFoundError(message) from error
    except (OSError, RuntimeError, TypeError, ValueError, pickle.UnpicklingError) as error:
        message = f"{path} is not an ImageBind checkpoint ({type(error).__name__}: {error})"
        raise WeightsNotFoundError(message) from error
    if report.missing_keys or report.unexpected_keys:
        raise WeightsNotFoundError(
            f"{path} does not fit ImageBind's vision and audio encoders: missing {_listed(report.missing_keys)}; "
            f"unexpected {_listed(report.unexpected_keys)}"
        )
    return model.eval().to(device)


def _listed(keys: list[str], shown: int = 5) -> str:
    if not keys:
        return "none"
    return ", ".join(keys[:shown]) + (f" and {len(keys) - shown} more" if len(keys) > shown else "")
