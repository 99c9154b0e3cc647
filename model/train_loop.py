"""The VidMusician training loop: optimizer steps over a data order, checkpoints, exact resume.

In: a `VidMusician` (stage 1, or stage 2 after `add_rhythm()`), its `ModelSpec`, `TrainingClips`, and
`TrainSettings`. Out: optimizer steps, each over `batch_size` random crops (16, the paper's batch)
split into `accumulate` micro-batches whose gradients add up (the loss of each is divided by
`accumulate`, so a step's gradient is that of the mean micro-batch loss); one `StepRecord` per step;
a checkpoint (`model.checkpoint`) every `save_every_steps` steps and at the last step.

The loss is MusicGen's own: the mean over codebooks of the cross-entropy of the delayed codes (the pad
id carries no loss). On CUDA the forward pass runs under bf16 autocast; on the CPU in float32. The
model runs in train mode, where the frozen backbone stays at inference (`VidMusician.train`): no
dropout in MusicGen or T5, as audiocraft trains MusicGen.
`Trainer.resume` restores weights, optimizer, scheduler, data order and RNG states, so steps after a
resume are bit-identical to those of an uninterrupted run (on the same device and settings).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from model.checkpoint import (
    ModelSpec,
    TrainingCheckpoint,
    capture_rng_state,
    restore_rng_state,
    save_checkpoint,
)
from model.dataset import DataOrder, TrainingClips, collate
from model.errors import CheckpointError
from model.train import CROP_S, OptimizerSettings, make_optimizer
from model.train_log import StepRecord, TrainLog
from model.vidmusician import VidMusician

PAPER_BATCH_SIZE = 16
PAPER_EPOCHS = 120  # per stage
CHECKPOINT_FILE = "checkpoint.pt"


@dataclass(frozen=True)
class TrainSettings:
    """How to train: `total_steps` optimizer steps in all (a resumed run goes on up to it; None: `epochs`
    passes over the clips, the paper's 120 by default), `batch_size` crops a step in `accumulate`
    micro-batches, crops of `crop_s`, the data order's `seed`."""

    total_steps: int | None = None
    epochs: float = PAPER_EPOCHS
    batch_size: int = PAPER_BATCH_SIZE
    accumulate: int = 1
    crop_s: float = CROP_S
    seed: int = 0
    save_every_steps: int = 500
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)

    def __post_init__(self) -> None:
        steps = 1 if self.total_steps is None else self.total_steps
        if min(steps, self.batch_size, self.accumulate, self.save_every_steps) < 1:
            raise ValueError("total_steps, batch_size, accumulate and save_every_steps must be at least 1")
        if self.epochs <= 0:
            raise ValueError(f"epochs must be positive, got {self.epochs}")
        if self.batch_size % self.accumulate:
            raise ValueError(f"batch_size {self.batch_size} does not split into {self.accumulate} equal micro-batches")
        if self.crop_s <= 0:
            raise ValueError(f"crop_s must be positive, got {self.crop_s}")

    def steps_for(self, num_clips: int) -> int:
        """The run's length in optimizer steps for `num_clips` clips."""
        if self.total_steps is not None:
            return self.total_steps
        return math.ceil(self.epochs * num_clips / self.batch_size)

    @property
    def micro_batch_size(self) -> int:
        return self.batch_size // self.accumulate

    def run_settings(self) -> dict[str, Any]:
        """The settings a resumed run must share with its checkpoint to see the same data and learning rates
        (the length of the run and the micro-batches may change)."""
        return {
            "batch_size": self.batch_size,
            "crop_s": self.crop_s,
            "seed": self.seed,
            "optimizer": asdict(self.optimizer),
        }


class Trainer:
    """Runs optimizer steps on `model` and writes checkpoints to `out_dir / CHECKPOINT_FILE`."""

    def __init__(
        self,
        model: VidMusician,
        spec: ModelSpec,
        clips: TrainingClips,
        settings: TrainSettings,
        out_dir: Path,
        rhythm_predictor: dict[str, Any] | None = None,
    ):
        if (model.rhythm is not None) != (spec.stage == 2):
            raise ValueError(f"a stage-{spec.stage} spec for a model {'with' if model.rhythm else 'without'} rhythm")
        self.model = model
        self.spec = spec
        self.rhythm_predictor = rhythm_predictor  # the payload a predicted-odf model's checkpoints carry
        self.clips = clips
        self.settings = settings
        self.checkpoint_path = Path(out_dir) / CHECKPOINT_FILE
        self.optimizer, self.scheduler = make_optimizer(model, spec.stage, settings.optimizer)
        self.order = DataOrder(len(clips), settings.seed)
        self.step = 0
        self.total_steps = settings.steps_for(len(clips))
        self.device = model.backbone.model.device

    def resume(self, checkpoint: TrainingCheckpoint) -> None:
        """Continue from `checkpoint` exactly; CheckpointError when it belongs to another run."""
        if checkpoint.optimizer is None or checkpoint.data_order is None or checkpoint.rng is None:
            raise CheckpointError("the checkpoint holds weights only, not the state a resume needs")
        if checkpoint.spec != self.spec:
            raise CheckpointError(f"the checkpoint is of another model: {checkpoint.spec} (this run: {self.spec})")
        if checkpoint.run_settings != self.settings.run_settings():
            raise CheckpointError(
                f"the checkpoint was trained with {checkpoint.run_settings}; this run asks for "
                f"{self.settings.run_settings()} (a resume must see the same data and learning rates)"
            )
        if checkpoint.data_order["num_clips"] != len(self.clips):
            raise CheckpointError(
                f"the checkpoint's data order is over {checkpoint.data_order['num_clips']} clips; the manifest has "
                f"{len(self.clips)} accepted clips"
            )
        self.model.load_trainable_state_dict(checkpoint.trainable)
        self.optimizer.load_state_dict(checkpoint.optimizer)
        self.scheduler.load_state_dict(checkpoint.scheduler)
        self.order = DataOrder.from_state_dict(checkpoint.data_order)
        self.step = checkpoint.step
        restore_rng_state(checkpoint.rng)

    def checkpoint(self) -> TrainingCheckpoint:
        return TrainingCheckpoint(
            spec=self.spec,
            step=self.step,
            trainable=self.model.trainable_state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            data_order=self.order.state_dict(),
            rng=capture_rng_state(),
            run_settings=self.settings.run_settings(),
            rhythm_predictor=self.rhythm_predictor,
        )

    def train_step(self) -> StepRecord:
        """One optimizer step over the next `batch_size` crops of the data order."""
        started_s = time.perf_counter()
        crops = [self.clips.crop(sample) for sample in self.order.take(self.settings.batch_size)]
        size = self.settings.micro_batch_size
        pad_token_id = self.model.backbone.pad_token_id
        micro_batches = [collate(crops[i : i + size], pad_token_id) for i in range(0, len(crops), size)]
        learning_rate = float(self.scheduler.get_last_lr()[0])
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for batch in micro_batches:
            inputs = batch.to(self.device).model_inputs(with_rhythm=self.model.rhythm is not None)
            with _autocast(self.device):
                _, loss = self.model(**inputs)
            (loss / len(micro_batches)).backward()
            loss_sum += float(loss.detach())
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return StepRecord(self.step, loss_sum / len(micro_batches), learning_rate, time.perf_counter() - started_s)

    def run(self, log: TrainLog, progress: bool = True) -> list[StepRecord]:
        """Train up to the run's last step, logging every step; returns this run's records."""
        records = []
        with tqdm(
            total=self.total_steps,
            initial=self.step,
            desc=f"train stage {self.spec.stage}",
            unit="step",
            disable=not progress,
            dynamic_ncols=True,
        ) as bar:
            while self.step < self.total_steps:
                record = self.train_step()
                log.append(record)
                records.append(record)
                bar.update()
                bar.set_postfix(loss=f"{record.loss:.4f}", lr=f"{record.lr:.2e}")
                if self.step % self.settings.save_every_steps == 0 or self.step == self.total_steps:
                    save_checkpoint(self.checkpoint_path, self.checkpoint())
        return records


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; nothing elsewhere (CPU training stays in float32)."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
