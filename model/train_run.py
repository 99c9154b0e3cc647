"""One training run from a manifest: what `dvmset train` does.

In: a `TrainRequest`: the manifest (`manifests/<version>/train.parquet`), the data root its paths start
from, the output folder, the stage, the settings, model ids (None: the checkpoint's when resuming or
starting from `--init`, else the defaults), the local model folder, a stage-1 checkpoint to start
stage 2 from, and whether to resume the run in the output folder.
Out: `<out>/checkpoint.pt` (`model.checkpoint`), `<out>/train_log.csv` and `<out>/loss.png`
(`model.train_log`), and a `TrainResult`.

Steps: the manifest's accepted clips; their CLIP features and MusicGen codes, computed and cached on
first use; the backbone; the model (seeded initialisation, stage-1 weights for stage 2); the trainer,
resumed when asked; the steps; the loss curve. Refused with a `CheckpointError` before any work: a new
run into a folder that holds a checkpoint, stage 2 without `--init`, a resume without a checkpoint, an
`--init` or resume checkpoint of other models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from dvmset.storage import DataRoot, atomic_write_text
from model.checkpoint import ModelSpec, TrainingCheckpoint, build_model, load_checkpoint
from model.dataset import TrainingClips, ensure_cached, manifest_clip_ids
from model.errors import CheckpointError
from model.features import DEFAULT_CLIP_MODEL_ID, load_cached_visual_features
from model.tokens import DEFAULT_MUSICGEN_MODEL_ID
from model.train_log import LOG_FILE, PLOT_FILE, StepRecord, TrainLog, plot_loss, read_log
from model.train_loop import CHECKPOINT_FILE, Trainer, TrainSettings
from model.vidmusician import ConditioningConfig


@dataclass(frozen=True)
class TrainRequest:
    manifest_path: Path
    data_root: Path
    out_dir: Path
    stage: int
    settings: TrainSettings
    musicgen_model_id: str | None = None
    clip_model_id: str | None = None
    model_dir: Path | None = None
    init_checkpoint: Path | None = None
    resume: bool = False
    device: str | None = None
    progress: bool = True
    conditioning: ConditioningConfig | None = None  # None: the checkpoint's (resume, --init), else the default
    # (MusicGen id, CLIP id) -> the resolved config's TOML, written beside the checkpoint as `RUN_CONFIG_FILE`
    run_config: Callable[[str, str], str] | None = None


@dataclass(frozen=True)
class TrainResult:
    step: int  # the step the run ended at (its checkpoint's)
    records: list[StepRecord]  # the steps this run made
    clips: int
    features_computed: int
    codes_computed: int
    checkpoint_path: Path
    log_path: Path
    plot_path: Path


RUN_CONFIG_FILE = "config.toml"  # the run's resolved config: `dvmset train --config <it>` repeats the run
PAPER_TRAINABLE_PARAMETERS = 24.79e6  # VidMusician on musicgen-medium (paper, section 5.1)
PAPER_MUSICGEN_MODEL_ID = "facebook/musicgen-medium"


def model_line(spec: ModelSpec, trainable: int) -> str:
    """What a run trains, said before it starts: stage, backbone, CLIP and trainable parameters beside
    the paper's 24.79M, and a warning when the backbone is not the paper's."""
    line = (
        f"VidMusician stage {spec.stage} on {spec.musicgen_model_id} with {spec.clip_model_id}: "
        f"{trainable / 1e6:.2f}M trainable parameters (the paper: {PAPER_TRAINABLE_PARAMETERS / 1e6:.2f}M on "
        f"{PAPER_MUSICGEN_MODEL_ID})"
    )
    if spec.musicgen_model_id != PAPER_MUSICGEN_MODEL_ID:
        line += f"; {spec.musicgen_model_id} is not the paper's backbone: this run trains a different model"
    return line


def run_training(request: TrainRequest, announce: Callable[[str], None] = lambda _line: None) -> TrainResult:
    """Train as `request` says (see the module docstring); `announce` gets `model_line` before the first step."""
    if request.stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {request.stage}")
    out_dir = Path(request.out_dir)
    checkpoint_path = out_dir / CHECKPOINT_FILE
    resumed, init = _checkpoints(request, checkpoint_path)
    source = resumed or init
    musicgen_model_id = _model_id("MusicGen", request.musicgen_model_id, source, "musicgen_model_id")
    clip_model_id = _model_id("CLIP", request.clip_model_id, source, "clip_model_id")
    musicgen_model_id = musicgen_model_id or DEFAULT_MUSICGEN_MODEL_ID
    clip_model_id = clip_model_id or DEFAULT_CLIP_MODEL_ID

    data_root = DataRoot(Path(request.data_root))
    clip_ids = manifest_clip_ids(Path(request.manifest_path), data_root)
    cached = ensure_cached(data_root, clip_ids, clip_model_id, musicgen_model_id, request.model_dir, request.device)
    conditioning = _conditioning(request.conditioning, source)
    features = load_cached_visual_features(data_root, clip_ids[0], clip_model_id)
    clip_dim = int(features.semantic(conditioning.semantic_feature).shape[-1])
    spec = ModelSpec(musicgen_model_id, clip_model_id, clip_dim, request.stage, conditioning)
    if init is not None and init.spec.clip_dim != clip_dim:
        raise CheckpointError(f"{request.init_checkpoint} was trained on {init.spec.clip_dim}-wide CLIP features, "
                              f"these are {clip_dim} wide")  # fmt: skip

    torch.manual_seed(request.settings.seed)  # the conditioning's initial weights
    model = build_model(spec, request.model_dir, request.device)
    if init is not None:
        model.load_trainable_state_dict(init.trainable)
    announce(model_line(spec, sum(p.numel() for p in model.parameters() if p.requires_grad)))
    clips = TrainingClips(
        data_root, clip_ids, clip_model_id, musicgen_model_id, model.backbone.frame_rate_hz, request.settings.crop_s,
        conditioning.semantic_feature,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    if request.run_config is not None:
        atomic_write_text(out_dir / RUN_CONFIG_FILE, request.run_config(musicgen_model_id, clip_model_id))
    trainer = Trainer(model, spec, clips, request.settings, out_dir)
    if resumed is not None:
        trainer.resume(resumed)
    log = TrainLog(out_dir / LOG_FILE, keep_through_step=trainer.step if resumed is not None else None)
    records = trainer.run(log, request.progress)
    plot_path = plot_loss(read_log(log.path), out_dir / PLOT_FILE, f"VidMusician stage {request.stage}")
    return TrainResult(
        step=trainer.step, records=records, clips=len(clip_ids), features_computed=cached.features_computed,
        codes_computed=cached.codes_computed, checkpoint_path=checkpoint_path, log_path=log.path, plot_path=plot_path,
    )  # fmt: skip


def _checkpoints(
    request: TrainRequest, checkpoint_path: Path
) -> tuple[TrainingCheckpoint | None, TrainingCheckpoint | None]:
    """(the checkpoint to resume, the stage-1 checkpoint to start from), after the refusals."""
    if request.resume:
        resumed = load_checkpoint(checkpoint_path)
        if resumed.spec.stage != request.stage:
            raise CheckpointError(f"{checkpoint_path} is a stage-{resumed.spec.stage} run, not stage {request.stage}")
        return resumed, None
    if checkpoint_path.exists():
        raise CheckpointError(
            f"{checkpoint_path} exists: pass --resume to continue that run, or another output folder (--out)"
        )
    if request.init_checkpoint is None:
        if request.stage == 2:
            raise CheckpointError("stage 2 starts from a stage-1 checkpoint: pass it with --init")
        return None, None
    init = load_checkpoint(request.init_checkpoint)
    if init.spec.stage != 1:
        raise CheckpointError(f"--init {request.init_checkpoint} is a stage-{init.spec.stage} checkpoint, not stage 1")
    return None, init


def _conditioning(requested: ConditioningConfig | None, source: TrainingCheckpoint | None) -> ConditioningConfig:
    """The conditioning sizes: the checkpoint's when resuming or starting from one (CheckpointError when
    other ones are requested), else the requested, else the default."""
    if source is None:
        return requested or ConditioningConfig()
    if requested is not None and requested != source.spec.conditioning:
        raise CheckpointError(f"the checkpoint was trained with the conditioning {source.spec.conditioning}, "
                              f"not {requested}")  # fmt: skip
    return source.spec.conditioning


def _model_id(what: str, requested: str | None, source: TrainingCheckpoint | None, key: str) -> str | None:
    """The requested model id, else the checkpoint's; CheckpointError when both are given and differ."""
    recorded = None if source is None else getattr(source.spec, key)
    if requested is not None and recorded is not None and requested != recorded:
        raise CheckpointError(f"the checkpoint was trained on the {what} model {recorded!r}, not {requested!r}")
    return requested or recorded
