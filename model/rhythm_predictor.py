"""The rhythm predictor (Diff-V2M's idea): a video's cached features -> the low-resolution onset detection
function (ODF) of the music it should have.

In, for a clip of T10 bins at `ODF_RATE_HZ` (10 Hz, `model.music_features`' ODF rate; `predictor_inputs`):
- distance `[T10]`: VidMusician's CLIP patch-distance curve (`model.features`, 50 Hz) max-pooled into the
  bins (5 entries each): the one input that places a cut within a second;
- semantic `[T10, D]`: the 1 fps CLIP embeddings (L2-normalised), each repeated over its second's 10 bins;
- affect `[T10, 4]`: the per-second affect (`model.video_structure.scaled_affect`), repeated the same way,
  when the predictor uses it (`PredictorConfig.use_affect`).
Out: `[T10]` in 0..1 (a sigmoid), trained against `model.music_features`' ODF (max-pooled onset strength,
divided by the clip's largest bin).

The network, per clip: Linear(D -> `semantic_width`) on the embeddings, concatenated with the distance and
the affect -> Conv1d (kernel 1) to `hidden` channels -> `layers` residual blocks of GELU and a dilated
Conv1d (kernel 5, dilations 1, 2, 4, ...; not causal: a bin sees +-2 x (2^layers - 1) bins, +-1.4 s for 3
layers) -> Conv1d (kernel 1) to one channel -> sigmoid. About 80k parameters for a 512-wide CLIP.

`odf_curve_50hz` puts an ODF on the rhythm path's 50 Hz grid: bin b's value on all 5 of its entries (a
zero-order hold). The decoder is causal and the rhythm condition is added position by position, so every
position of the bin reads that there is an onset in it, and an onset anywhere in the bin can be placed;
the bin does not say where in its 100 ms the onset is.

Saved (`save_predictor`) as one `torch.save` dict: format, config, weights and the facts of its training,
read back with `weights_only=True`; `payload_sha256` names one predictor's weights and config.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dvmset.storage import atomic_path
from model.errors import CheckpointError
from model.features import GLOBAL_FPS, VisualFeatures
from model.music_features import ODF_RATE_HZ
from model.train import CURVE_RATE_HZ
from model.video_structure import AFFECT_COLUMNS, scaled_affect

PREDICTOR_FORMAT = "rhythm-predictor/1"
CURVE_ENTRIES_PER_BIN = round(CURVE_RATE_HZ / ODF_RATE_HZ)  # 5 entries of the 50 Hz curve per 10 Hz bin
BINS_PER_SECOND = round(ODF_RATE_HZ / GLOBAL_FPS)


@dataclass(frozen=True)
class PredictorConfig:
    """The predictor's sizes and inputs (see the module docstring)."""

    clip_dim: int
    semantic_feature: str = "image_embeds"  # `model.features.SEMANTIC_FEATURES`
    use_affect: bool = True
    hidden: int = 64
    semantic_width: int = 32
    layers: int = 3
    kernel: int = 5


@dataclass(frozen=True)
class PredictorInputs:
    """One clip's inputs at the ODF rate: distance `[T10]`, semantic `[T10, D]`, affect `[T10, 4]` or None."""

    distance: torch.Tensor
    semantic: torch.Tensor
    affect: torch.Tensor | None

    @property
    def num_bins(self) -> int:
        return self.distance.shape[0]


class RhythmPredictor(nn.Module):
    """distance `[B, T]`, semantic `[B, T, D]`, affect `[B, T, 4]` or None -> ODF `[B, T]` in 0..1."""

    def __init__(self, config: PredictorConfig):
        super().__init__()
        self.config = config
        self.semantic_projection = nn.Linear(config.clip_dim, config.semantic_width)
        channels = 1 + config.semantic_width + (len(AFFECT_COLUMNS) if config.use_affect else 0)
        self.input_layer = nn.Conv1d(channels, config.hidden, kernel_size=1)
        self.blocks = nn.ModuleList(
            nn.Conv1d(
                config.hidden, config.hidden, config.kernel, dilation=2**index, padding=2**index * (config.kernel // 2)
            )
            for index in range(config.layers)
        )
        self.output_layer = nn.Conv1d(config.hidden, 1, kernel_size=1)

    def forward(self, distance: torch.Tensor, semantic: torch.Tensor, affect: torch.Tensor | None) -> torch.Tensor:
        parts = [distance[..., None], self.semantic_projection(F.normalize(semantic, dim=-1))]
        if self.config.use_affect:
            if affect is None:
                raise ValueError("this rhythm predictor reads the affect features; none were given")
            parts.append(affect)
        hidden = self.input_layer(torch.cat(parts, dim=-1).transpose(1, 2))  # [B, H, T]
        for block in self.blocks:
            hidden = hidden + block(F.gelu(hidden))
        return torch.sigmoid(self.output_layer(F.gelu(hidden))[:, 0])


def distance_at_odf_rate(curve_50hz: torch.Tensor, num_bins: int) -> torch.Tensor:
    """The 50 Hz distance curve `[T50]` -> `[num_bins]`: the largest of each bin's 5 entries (0 past its end)."""
    entries = num_bins * CURVE_ENTRIES_PER_BIN
    fitted = F.pad(curve_50hz.float()[:entries], (0, max(0, entries - curve_50hz.shape[0])))
    return fitted.reshape(num_bins, CURVE_ENTRIES_PER_BIN).amax(dim=1)


def per_bin(rows_1fps: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Per-second rows `[T1, C]` -> `[num_bins, C]`: bin b takes the row of second b // 10 (the last past the end)."""
    seconds = torch.clamp(torch.arange(num_bins) // BINS_PER_SECOND, max=rows_1fps.shape[0] - 1)
    return rows_1fps.float()[seconds]


def predictor_inputs(
    features: VisualFeatures,
    affect: torch.Tensor | None,
    semantic_feature: str = "image_embeds",
    num_bins: int | None = None,
) -> PredictorInputs:
    """A clip's inputs for `num_bins` bins (default: those its 50 Hz curve covers); `affect` `[T1, 4]`
    as `model.video_structure` computes it (scaled here), or None."""
    curve = features.rhythm_curve_50hz
    bins = math.ceil(curve.shape[0] / CURVE_ENTRIES_PER_BIN) if num_bins is None else num_bins
    scaled = None if affect is None else per_bin(scaled_affect(torch.as_tensor(affect)), bins)
    semantic = per_bin(features.semantic(semantic_feature), bins)
    return PredictorInputs(distance_at_odf_rate(curve, bins), semantic, scaled)


@torch.no_grad()
def predict_odf(predictor: RhythmPredictor, inputs: PredictorInputs) -> torch.Tensor:
    """The predicted ODF `[T10]` of one clip (eval mode, on the predictor's device; returned on the CPU)."""
    predictor.eval()
    device = next(predictor.parameters()).device
    affect = None if inputs.affect is None or not predictor.config.use_affect else inputs.affect[None].to(device)
    return predictor(inputs.distance[None].to(device), inputs.semantic[None].to(device), affect)[0].cpu()


def odf_curve_50hz(odf: torch.Tensor, num_entries: int) -> torch.Tensor:
    """An ODF `[T10]` -> a 50 Hz curve `[num_entries]`: bin b's value on entries 5b .. 5b + 4, cut or padded
    with 0 (no onset) to `num_entries`."""
    held = odf.float().repeat_interleave(CURVE_ENTRIES_PER_BIN)[:num_entries]
    return F.pad(held, (0, num_entries - held.shape[0]))


def predictor_payload(predictor: RhythmPredictor, facts: dict[str, Any] | None = None) -> dict[str, Any]:
    """What `save_predictor` writes (and a VidMusician checkpoint embeds): format, config, weights, facts."""
    state = {name: tensor.detach().cpu() for name, tensor in predictor.state_dict().items()}
    return {"format": PREDICTOR_FORMAT, "config": asdict(predictor.config), "state": state, "facts": dict(facts or {})}


def predictor_from_payload(payload: dict[str, Any], where: str = "the payload") -> RhythmPredictor:
    """The predictor a payload describes, in eval mode on the CPU; CheckpointError when it is not one."""
    if not isinstance(payload, dict) or payload.get("format") != PREDICTOR_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{where} is not a {PREDICTOR_FORMAT} file (format {found!r})")
    predictor = RhythmPredictor(PredictorConfig(**payload["config"]))
    predictor.load_state_dict(payload["state"])
    return predictor.eval()


def payload_sha256(payload: dict[str, Any]) -> str:
    """SHA-256 (hex) of a predictor's config and weights (its facts aside): the predictor's identity."""
    digest = hashlib.sha256(json.dumps(payload["config"], sort_keys=True).encode())
    for name in sorted(payload["state"]):
        digest.update(name.encode())
        digest.update(payload["state"][name].float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def save_predictor(path: Path, predictor: RhythmPredictor, facts: dict[str, Any] | None = None) -> Path:
    """Write the predictor to `path` atomically; returns `path`."""
    with atomic_path(Path(path)) as temp:
        torch.save(predictor_payload(predictor, facts), temp)
    return Path(path)


def load_predictor_payload(path: Path) -> dict[str, Any]:
    """The saved payload at `path` (checked by building its predictor); CheckpointError when it is missing,
    unreadable or not a rhythm predictor."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no rhythm predictor at {path} (`dvmset train-rhythm` writes one)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise CheckpointError(f"{path} is not a readable rhythm predictor: {error}") from error
    predictor_from_payload(payload, str(path))
    return payload
