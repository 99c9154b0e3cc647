"""The training command of `dvmset`: `train` (VidMusician, paper section 3.3 and 5.1).

Registered by `dvmset.cli.main`; the model code (torch, transformers) is imported
inside the command only. Exit codes as in `dvmset.cli.common`; here: 2 (usage) for a refused run (a checkpoint
already in the output folder without --resume, stage 2 without --init, a checkpoint that does not fit),
3 when the configuration is invalid or a model's weights cannot be found, 1 when a clip's media cannot
be read or the manifest is unusable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dvmset.cli.common import ConfigOption, ExitCode, fail, out
from dvmset.cli.manifest_inputs import local_manifest
from dvmset.cli.run_settings import configured
from dvmset.config import Config, ModelConfig, config_toml, portable
from dvmset.errors import StageError
from manifests.schema import ManifestError, manifest_path
from manifests.split import Split

if TYPE_CHECKING:
    from model.vidmusician import ConditioningConfig


# named [model] and [train] overrides; flags given on the command line win over them
PRESETS: dict[str, dict[str, dict[str, object]]] = {
    "cpu-smoke": {
        "model": {"musicgen": "facebook/musicgen-small"},
        "train": {"steps": 4, "batch_size": 2, "crop_s": 10.0, "warmup_steps": 2, "save_every": 2},
    },
}
PRESET_NOTES = {"cpu-smoke": "musicgen-small, 4 steps of 2 crops of 10 s: checks the set-up, trains nothing useful"}


@contextmanager
def training_errors_as_exit_codes() -> Iterator[None]:
    """Ends the command with the exit code of a training error: a checkpoint that cannot go on is a
    usage error, missing weights a config error, a bad manifest or clip an item failure."""
    from model.errors import CheckpointError, WeightsNotFoundError

    try:
        yield
    except CheckpointError as exc:
        raise fail(ExitCode.USAGE, str(exc)) from exc
    except WeightsNotFoundError as exc:
        raise fail(ExitCode.CONFIG, str(exc)) from exc
    except (ManifestError, StageError) as exc:
        raise fail(ExitCode.ITEMS_FAILED, str(exc)) from exc


def conditioning_of(model: ModelConfig) -> ConditioningConfig:
    """The model's conditioning sizes from the [model] section."""
    from model.vidmusician import ConditioningConfig

    return ConditioningConfig(
        semantic_feature=model.semantic_feature,
        embedding_layers=model.embedding_layers,
        lora_rank=model.lora_rank,
        lora_alpha=model.lora_alpha,
        lora_targets=tuple(model.lora_targets),
        affect=model.affect == "on",
    )


def resolved_run_config(config: Config, musicgen_id: str, clip_id: str) -> str:
    """The TOML a run writes beside its checkpoint: `config` with the model ids it really used and
    absolute data and model folders, so that `--config <run>/config.toml` repeats it from anywhere."""
    model = config.model.model_copy(update={"musicgen": musicgen_id, "clip": clip_id})
    return config_toml(portable(config.model_copy(update={"model": model})))


def train(
    manifest: Annotated[
        str,
        typer.Option(
            help="a published manifest version folder (manifests/<version>/) or its train.parquet (with an "
            "object-store data root, also its URL: fetched with its clips)"
        ),
    ],
    stage: Annotated[int, typer.Option(min=1, max=2, help="1: the semantic path; 2: adds the rhythm path")],
    config_path: ConfigOption = None,
    init: Annotated[Path | None, typer.Option(help="the stage-1 checkpoint stage 2 starts from")] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="output folder (default: runs/<manifest version>/stage<N>)")
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(min=1, help="optimizer steps in all, a resumed run goes on up to it (default: from --epochs)"),
    ] = None,
    epochs: Annotated[
        float | None, typer.Option(min=0.01, help="passes over the clips when --steps is not given (default: 120)")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="clips per optimizer step (the paper: 16)")] = None,
    accumulate: Annotated[
        int | None, typer.Option(min=1, help="micro-batches a step is split into (gradient accumulation, less memory)")
    ] = None,
    resume: Annotated[bool, typer.Option(help="continue the run in the output folder from its checkpoint")] = False,
    musicgen: Annotated[
        str | None, typer.Option(help="MusicGen hub id or folder (default: facebook/musicgen-medium, the paper's)")
    ] = None,
    clip: Annotated[
        str | None, typer.Option(help="CLIP hub id or folder (default: openai/clip-vit-base-patch32)")
    ] = None,
    data_root: Annotated[
        Path | None, typer.Option(help="where the manifest's paths start (default: the config's)")
    ] = None,
    crop_s: Annotated[float | None, typer.Option(min=0.1, help="seconds of each random training crop (30)")] = None,
    seed: Annotated[int | None, typer.Option(help="seed of the data order, crops and initial weights (0)")] = None,
    save_every: Annotated[
        int | None, typer.Option(min=1, help="write a checkpoint every this many steps (500)")
    ] = None,
    learning_rate: Annotated[float | None, typer.Option(help="peak learning rate (default: the stage's)")] = None,
    warmup_steps: Annotated[int | None, typer.Option(min=1, help="linear warm-up steps (6000)")] = None,
    device: Annotated[str | None, typer.Option(help="torch device (default: cuda when there is one)")] = None,
    rhythm: Annotated[
        str | None,
        typer.Option(
            help="stage 2's rhythm source: clip-distance (VidMusician, the default) or "
            "predicted-odf (Diff-V2M's idea; needs --rhythm-predictor)"
        ),
    ] = None,
    rhythm_predictor: Annotated[
        Path | None, typer.Option(help="the rhythm_predictor.pt `dvmset train-rhythm` wrote (for predicted-odf)")
    ] = None,
    affect: Annotated[
        str | None, typer.Option(help="on: each second's affect features join the semantic condition (off)")
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help="cpu-smoke: a few small steps on musicgen-small to try the set-up on a CPU "
            "(NOT the paper's setup); flags still override it"
        ),
    ] = None,
) -> None:
    """Train VidMusician on a manifest's accepted clips: stage 1, then stage 2 from its checkpoint.
    The network comes from the config's model section, the optimization from its train section (the
    paper's by default); flags override them.
    --rhythm predicted-odf and --affect on are Diff-V2M's ideas as options, not the paper's setup.
    Caches CLIP features and MusicGen codes on first use; writes config.toml (the resolved config: pass
    it with --config to repeat the run), checkpoint.pt, train_log.csv and loss.png."""
    from model.train import OptimizerSettings
    from model.train_loop import TrainSettings
    from model.train_run import TrainRequest, run_training

    flags = {
        "model": {
            "musicgen": musicgen,
            "clip": clip,
            "rhythm": rhythm,
            "rhythm_predictor": rhythm_predictor,
            "affect": affect,
        },
        "train": {
            "steps": steps,
            "epochs": epochs,
            "batch_size": batch_size,
            "accumulate": accumulate,
            "crop_s": crop_s,
            "seed": seed,
            "save_every": save_every,
            "learning_rate": learning_rate,
            "warmup_steps": warmup_steps,
            "device": device,
        },
    }
    if preset is not None and preset not in PRESETS:
        raise fail(ExitCode.USAGE, f"unknown preset {preset!r}; presets are {', '.join(PRESETS)}")
    config = configured(config_path, flags, PRESETS.get(preset or ""), data_root)
    if preset is not None:
        out.print(f"[bold yellow]preset {preset}: NOT the paper's setup[/] ({PRESET_NOTES[preset]})", highlight=False)
    train_config, model_config = config.train, config.model
    try:
        settings = TrainSettings(
            total_steps=train_config.steps,
            epochs=train_config.epochs,
            batch_size=train_config.batch_size,
            accumulate=train_config.accumulate,
            crop_s=train_config.crop_s,
            seed=train_config.seed,
            save_every_steps=train_config.save_every,
            optimizer=OptimizerSettings(
                learning_rate=train_config.learning_rate, warmup_steps=train_config.warmup_steps
            ),
        )
    except ValueError as exc:
        raise fail(ExitCode.USAGE, str(exc)) from exc
    manifest = local_manifest(manifest, config)
    if manifest.is_dir():  # the version folder, as `manifests check` takes it: its train split
        manifest = manifest_path(manifest, Split.TRAIN)
    request = TrainRequest(
        manifest_path=manifest,
        data_root=config.data_root,
        out_dir=out_dir or Path("runs") / manifest.resolve().parent.name / f"stage{stage}",
        stage=stage,
        settings=settings,
        musicgen_model_id=model_config.musicgen,
        clip_model_id=model_config.clip,
        model_dir=config.model_dir,
        init_checkpoint=init,
        resume=resume,
        device=train_config.device,
        conditioning=conditioning_of(model_config),
        rhythm_source=model_config.rhythm,
        rhythm_predictor=model_config.rhythm_predictor,
        run_config=lambda musicgen_id, clip_id: resolved_run_config(config, musicgen_id, clip_id),
    )
    with training_errors_as_exit_codes():
        result = run_training(request, announce=lambda line: out.print(line, highlight=False))
    last = f", last loss {result.records[-1].loss:.4f}" if result.records else ""
    out.print(
        f"stage {stage}: {result.clips} clips ({result.features_computed} features and {result.codes_computed} codes "
        f"computed), {len(result.records)} steps this run, at step {result.step}{last}\n"
        f"checkpoint {result.checkpoint_path}\nlog {result.log_path}\nloss curve {result.plot_path}",
        highlight=False,
    )
