"""One training run from a manifest: what `dvmset train` does.

In: a `TrainRequest`: the manifest (`manifests/<version>/train.parquet`), the data root its paths start
from, the output folder, the stage, the settings, model ids (None: the checkpoint's when resuming or
starting from `--init`, else the defaults), the local model folder, a stage-1 checkpoint to start
stage 2 from, whether to resume the run in the output folder, and the options: the conditioning (its
`affect` appends the video's affect features to the semantic condition) and the rhythm source of stage 2
(`clip-distance`, VidMusician's; `predicted-odf`, Diff-V2M's idea, with the rhythm predictor file that
`dvmset train-rhythm` wrote; stage 1 has no rhythm path and ignores it).
Out: `<out>/checkpoint.pt` (`model.checkpoint`), `<out>/train_log.csv` and `<out>/loss.png`
(`model.train_log`), and a `TrainResult`.

Steps: the manifest's accepted clips; their CLIP features and MusicGen codes (and with affect, the video
structure), computed and cached on first use; the backbone; the model (seeded initialisation, stage-1
weights for stage 2); the trainer, resumed when asked; the steps; the loss curve. Refused with a
`CheckpointError` before any work: a new run into a folder that holds a checkpoint, stage 2 without
`--init`, a resume without a checkpoint, an `--init` or resume checkpoint of other models, a
`predicted-odf` stage 2 without a rhythm predictor (or, resumed, with another one than its checkpoint's),
or a predictor trained on other CLIP features.
A `predicted-odf` checkpoint carries its predictor, so generation needs nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dvmset.storage import DataRoot, atomic_write_text
from model.checkpoint import ModelSpec, TrainingCheckpoint, build_model, load_checkpoint
from model.dataset import TrainingClips, ensure_cached, ensure_rhythm_cached, manifest_clips
from model.errors import CheckpointError
from model.features import DEFAULT_CLIP_MODEL_ID, load_cached_visual_features
from model.rhythm_predictor import load_predictor_payload, payload_sha256
from model.tokens import DEFAULT_MUSICGEN_MODEL_ID
from model.train_log import LOG_FILE, PLOT_FILE, StepRecord, TrainLog, plot_loss, read_log
from model.train_loop import CHECKPOINT_FILE, Trainer, TrainSettings
from model.video_conditions import AFFECT_DIM, CLIP_DISTANCE, PREDICTED_ODF, RHYTHM_SOURCES
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
    rhythm_source: str = CLIP_DISTANCE  # stage 2's: `model.video_conditions.RHYTHM_SOURCES`
    rhythm_predictor: Path | None = None  # the `dvmset train-rhythm` file a predicted-odf stage 2 reads


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
    if spec.stage == 2 and spec.rhythm_source == PREDICTED_ODF:
        line += (
            f"; rhythm source {PREDICTED_ODF} (Diff-V2M's idea, not the paper's CLIP-distance curve), predictor "
            f"{spec.rhythm_predictor_sha256[:12]}"
        )
    if spec.conditioning.affect:
        line += "; affect features in the semantic condition (Diff-V2M's idea, not the paper's)"
    return line


def run_training(request: TrainRequest, announce: Callable[[str], None] = lambda _line: None) -> TrainResult:
    """Train as `request` says (see the module docstring); `announce` gets `model_line` before the first step."""
    if request.stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {request.stage}")
    if request.rhythm_source not in RHYTHM_SOURCES:
        raise ValueError(f"rhythm source must be one of {', '.join(RHYTHM_SOURCES)}, got {request.rhythm_source!r}")
    out_dir = Path(request.out_dir)
    checkpoint_path = out_dir / CHECKPOINT_FILE
    resumed, init = _checkpoints(request, checkpoint_path)
    source = resumed or init
    musicgen_model_id = _model_id("MusicGen", request.musicgen_model_id, source, "musicgen_model_id")
    clip_model_id = _model_id("CLIP", request.clip_model_id, source, "clip_model_id")
    musicgen_model_id = musicgen_model_id or DEFAULT_MUSICGEN_MODEL_ID
    clip_model_id = clip_model_id or DEFAULT_CLIP_MODEL_ID

    rhythm_source = request.rhythm_source if request.stage == 2 else CLIP_DISTANCE
    predictor = _rhythm_predictor(request, rhythm_source, resumed, clip_model_id)

    data_root = DataRoot(Path(request.data_root))
    manifest_rows = manifest_clips(Path(request.manifest_path), data_root)
    clip_ids = [clip.clip_id for clip in manifest_rows]
    cached = ensure_cached(data_root, clip_ids, clip_model_id, musicgen_model_id, request.model_dir, request.device)
    conditioning = _conditioning(request.conditioning, source)
    if conditioning.affect or (predictor is not None and predictor["config"]["use_affect"]):
        ensure_rhythm_cached(data_root, manifest_rows, clip_model_id, music=False, progress=request.progress)
    features = load_cached_visual_features(data_root, clip_ids[0], clip_model_id)
    semantic_width = int(features.semantic(conditioning.semantic_feature).shape[-1])
    clip_dim = semantic_width + (AFFECT_DIM if conditioning.affect else 0)
    sha256 = None if predictor is None else payload_sha256(predictor)
    spec = ModelSpec(musicgen_model_id, clip_model_id, clip_dim, request.stage, conditioning, rhythm_source, sha256)
    if init is not None and init.spec.clip_dim != clip_dim:
        raise CheckpointError(
            f"{request.init_checkpoint} was trained on {init.spec.clip_dim}-wide semantic "
            f"conditions, these are {clip_dim} wide"
        )

    torch.manual_seed(request.settings.seed)  # the conditioning's initial weights
    model = build_model(spec, request.model_dir, request.device, predictor)
    if init is not None:
        model.load_trainable_state_dict(init.trainable)
    announce(model_line(spec, sum(p.numel() for p in model.parameters() if p.requires_grad)))
    clips = TrainingClips(
        data_root,
        clip_ids,
        clip_model_id,
        musicgen_model_id,
        model.backbone.frame_rate_hz,
        request.settings.crop_s,
        model.video_conditions,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    if request.run_config is not None:
        atomic_write_text(out_dir / RUN_CONFIG_FILE, request.run_config(musicgen_model_id, clip_model_id))
    trainer = Trainer(model, spec, clips, request.settings, out_dir, predictor)
    if resumed is not None:
        trainer.resume(resumed)
    log = TrainLog(out_dir / LOG_FILE, keep_through_step=trainer.step if resumed is not None else None)
    records = trainer.run(log, request.progress)
    plot_path = plot_loss(read_log(log.path), out_dir / PLOT_FILE, f"VidMusician stage {request.stage}")
    return TrainResult(
        step=trainer.step,
        records=records,
        clips=len(clip_ids),
        features_computed=cached.features_computed,
        codes_computed=cached.codes_computed,
        checkpoint_path=checkpoint_path,
        log_path=log.path,
        plot_path=plot_path,
    )


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


def _rhythm_predictor(
    request: TrainRequest, rhythm_source: str, resumed: TrainingCheckpoint | None, clip_model_id: str
) -> dict[str, Any] | None:
    """The rhythm predictor's payload of a predicted-odf stage 2 (None for clip-distance): the requested file's,
    else the resumed checkpoint's; CheckpointError when there is none, when the resumed checkpoint has another
    rhythm source or predictor, or when it reads another CLIP model's features."""
    if resumed is not None and resumed.spec.rhythm_source != rhythm_source:
        raise CheckpointError(
            f"the checkpoint was trained with the rhythm source {resumed.spec.rhythm_source}, not {rhythm_source}"
        )
    if rhythm_source != PREDICTED_ODF:
        return None
    recorded = None if resumed is None else resumed.rhythm_predictor
    if request.rhythm_predictor is None and recorded is None:
        raise CheckpointError(
            f"rhythm source {PREDICTED_ODF} needs a rhythm predictor: train one with `dvmset train-rhythm` and pass "
            "its file with --rhythm-predictor"
        )
    payload = recorded if request.rhythm_predictor is None else load_predictor_payload(request.rhythm_predictor)
    if recorded is not None and payload_sha256(payload) != payload_sha256(recorded):
        raise CheckpointError(f"{request.rhythm_predictor} is not the rhythm predictor the checkpoint was trained with")
    trained_on = payload["facts"].get("clip_model_id")
    if trained_on is not None and trained_on != clip_model_id:
        raise CheckpointError(f"the rhythm predictor reads {trained_on!r} features; this run uses {clip_model_id!r}")
    return payload


def _conditioning(requested: ConditioningConfig | None, source: TrainingCheckpoint | None) -> ConditioningConfig:
    """The conditioning sizes: the checkpoint's when resuming or starting from one (CheckpointError when
    other ones are requested), else the requested, else the default."""
    if source is None:
        return requested or ConditioningConfig()
    if requested is not None and requested != source.spec.conditioning:
        raise CheckpointError(
            f"the checkpoint was trained with the conditioning {source.spec.conditioning}, not {requested}"
        )
    return source.spec.conditioning


def _model_id(what: str, requested: str | None, source: TrainingCheckpoint | None, key: str) -> str | None:
    """The requested model id, else the checkpoint's; CheckpointError when both are given and differ."""
    recorded = None if source is None else getattr(source.spec, key)
    if requested is not None and recorded is not None and requested != recorded:
        raise CheckpointError(f"the checkpoint was trained on the {what} model {recorded!r}, not {requested!r}")
    return requested or recorded
