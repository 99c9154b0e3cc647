"""Training checkpoints of VidMusician: only what training changed, written atomically.

In: a `TrainingCheckpoint`: the `ModelSpec` that rebuilds the model (MusicGen and CLIP ids, CLIP width,
stage, conditioning sizes, rhythm source and the SHA-256 of its rhythm predictor), the step, the trainable
weights by name (never the frozen backbone), the rhythm predictor of a `predicted-odf` model (its saved
payload, `model.rhythm_predictor`, so the checkpoint alone rebuilds the model's conditions), and,
for an exact resume, the optimizer, scheduler and data-order states, the torch RNG states (dropout)
and the settings a resume must share (data, learning rates). Out: one `torch.save` file, written
under a temporary name and renamed into place (a killed run leaves the previous checkpoint whole),
read back with `weights_only=True` (plain tensors and containers, no pickled code).

`trained_model` rebuilds a trained model from a checkpoint and the backbone's weights.
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from dvmset.storage import atomic_path
from model.backbone import load_backbone
from model.errors import CheckpointError
from model.rhythm_predictor import payload_sha256, predictor_from_payload
from model.video_conditions import CLIP_DISTANCE, PREDICTED_ODF, RHYTHM_SOURCES
from model.vidmusician import ConditioningConfig, VidMusician

CHECKPOINT_FORMAT = "vidmusician-checkpoint/1"


@dataclass(frozen=True)
class ModelSpec:
    """What rebuilds the model around a checkpoint's weights."""

    musicgen_model_id: str
    clip_model_id: str
    clip_dim: int
    stage: int
    conditioning: ConditioningConfig = ConditioningConfig()
    rhythm_source: str = CLIP_DISTANCE  # `model.video_conditions.RHYTHM_SOURCES`; stage 2 reads it
    rhythm_predictor_sha256: str | None = None  # `payload_sha256` of a predicted-odf model's predictor

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "conditioning": {**asdict(self.conditioning)}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        conditioning = dict(data["conditioning"])
        conditioning["lora_targets"] = tuple(conditioning["lora_targets"])
        return cls(**{**data, "conditioning": ConditioningConfig(**conditioning)})


@dataclass(frozen=True)
class TrainingCheckpoint:
    """A checkpoint's content (see the module docstring); the resume states are None in a weights-only one."""

    spec: ModelSpec
    step: int
    trainable: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    data_order: dict[str, int] | None = None
    rng: dict[str, Any] | None = None
    run_settings: dict[str, Any] | None = None
    rhythm_predictor: dict[str, Any] | None = None  # `model.rhythm_predictor.predictor_payload`


def save_checkpoint(path: Path, checkpoint: TrainingCheckpoint) -> Path:
    """Write `checkpoint` to `path` atomically; returns `path`."""
    content = {
        "format": CHECKPOINT_FORMAT,
        "spec": checkpoint.spec.to_dict(),
        "step": checkpoint.step,
        "trainable": {name: tensor.detach().cpu() for name, tensor in checkpoint.trainable.items()},
        "optimizer": checkpoint.optimizer,
        "scheduler": checkpoint.scheduler,
        "data_order": checkpoint.data_order,
        "rng": checkpoint.rng,
        "run_settings": checkpoint.run_settings,
        "rhythm_predictor": checkpoint.rhythm_predictor,
    }
    with atomic_path(Path(path)) as temp:
        torch.save(content, temp)
    return Path(path)


def load_checkpoint(path: Path) -> TrainingCheckpoint:
    """The checkpoint at `path`, on the CPU; CheckpointError when it is missing, unreadable or of another format."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise CheckpointError(f"{path} is not a readable checkpoint: {error}") from error
    if not isinstance(content, dict) or content.get("format") != CHECKPOINT_FORMAT:
        found = content.get("format") if isinstance(content, dict) else type(content).__name__
        raise CheckpointError(f"{path} is not a {CHECKPOINT_FORMAT} file (format {found!r})")
    return TrainingCheckpoint(
        spec=ModelSpec.from_dict(content["spec"]),
        step=int(content["step"]),
        trainable=content["trainable"],
        optimizer=content["optimizer"],
        scheduler=content["scheduler"],
        data_order=content["data_order"],
        rng=content["rng"],
        run_settings=content["run_settings"],
        rhythm_predictor=content.get("rhythm_predictor"),
    )


def capture_rng_state() -> dict[str, Any]:
    """The torch RNG states (CPU, and every CUDA device when there are any)."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what `capture_rng_state` returned (the CUDA states only where CUDA is there)."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def build_model(
    spec: ModelSpec,
    model_dir: Path | None = None,
    device: str | None = None,
    rhythm_predictor: dict[str, Any] | None = None,
) -> VidMusician:
    """The untrained model of `spec`: the frozen backbone loaded by id, the conditioning freshly initialised
    (seed torch first for a reproducible one), the rhythm module added for stage 2, and for a stage-2
    `predicted-odf` spec the rhythm predictor of the payload `rhythm_predictor` (CheckpointError when it is
    missing or not the one the spec names)."""
    predictor = None
    if spec.rhythm_source not in RHYTHM_SOURCES:
        raise CheckpointError(f"unknown rhythm source {spec.rhythm_source!r}; sources are {', '.join(RHYTHM_SOURCES)}")
    if spec.stage == 2 and spec.rhythm_source == PREDICTED_ODF:
        if rhythm_predictor is None or payload_sha256(rhythm_predictor) != spec.rhythm_predictor_sha256:
            raise CheckpointError(
                f"the {PREDICTED_ODF} model needs its rhythm predictor (SHA-256 {spec.rhythm_predictor_sha256}); "
                + ("none was given" if rhythm_predictor is None else f"got {payload_sha256(rhythm_predictor)}")
            )
        predictor = predictor_from_payload(rhythm_predictor)
    backbone = load_backbone(spec.musicgen_model_id, model_dir, device)
    model = VidMusician(backbone, spec.clip_dim, spec.conditioning, predictor)
    if spec.stage == 2:
        model.add_rhythm()
    return model


def trained_model(
    checkpoint: TrainingCheckpoint, model_dir: Path | None = None, device: str | None = None
) -> VidMusician:
    """The trained model of a loaded checkpoint (its backbone's weights from `model_dir` or the hub), in eval mode."""
    model = build_model(checkpoint.spec, model_dir, device, checkpoint.rhythm_predictor)
    model.load_trainable_state_dict(checkpoint.trainable)
    return model.eval()
