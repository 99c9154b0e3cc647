"""The rhythm predictor's command of `dvmset`: `train-rhythm` (Diff-V2M's idea, issue 20).

Registered by `dvmset.cli.main`; the model code (torch) is imported inside the command
only. Settings come from the config's `[rhythm]` section and the CLIP features its `[model]` section names;
flags override them, and the resolved config is written beside the predictor (`<out>/config.toml`: `--config`
with it repeats the run). Exit codes as in `dvmset.cli.common`; here: 2 (usage) for invalid settings or an output
folder that holds a predictor already, 3 when the configuration is invalid or the CLIP model cannot be found,
1 when a clip's media cannot be read or a manifest is unusable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from dvmset.cli.common import ConfigOption, ExitCode, fail, out
from dvmset.cli.manifest_inputs import local_manifest
from dvmset.cli.run_settings import configured
from dvmset.cli.train import training_errors_as_exit_codes
from dvmset.config import config_toml, portable


def train_rhythm(
    manifest: Annotated[
        str,
        typer.Option(
            help="a published manifest version folder (manifests/<version>/; with an object-store data root, "
            "also its URL: fetched with its clips)"
        ),
    ],
    config_path: ConfigOption = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="output folder (default: runs/<manifest version>/rhythm)")
    ] = None,
    clip: Annotated[str | None, typer.Option(help="CLIP hub id or folder (default: the config's model.clip)")] = None,
    semantic_feature: Annotated[
        Literal["image_embeds", "cls"] | None,
        typer.Option(help="the 1 fps CLIP feature it reads (default: the config's model.semantic_feature)"),
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="passes over the train split's clips (100)")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="whole clips per step (16)")] = None,
    learning_rate: Annotated[float | None, typer.Option(min=1e-8, help="AdamW learning rate, constant (1e-3)")] = None,
    hidden: Annotated[int | None, typer.Option(min=1, help="channels of the temporal convolutions (64)")] = None,
    layers: Annotated[
        int | None, typer.Option(min=1, help="dilated convolution blocks (3: +-1.4 s of context)")
    ] = None,
    affect: Annotated[
        bool | None, typer.Option("--affect/--no-affect", help="read the per-second affect features too (yes)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="seed of the initial weights and the clip order (0)")] = None,
    data_root: Annotated[
        Path | None, typer.Option(help="where the manifest's paths start (default: the config's)")
    ] = None,
    device: Annotated[str | None, typer.Option(help="torch device for CLIP and the predictor (default: cpu)")] = None,
) -> None:
    """Train the rhythm predictor (video features -> the music's 10 Hz onset detection function) on a
    manifest's train split and score it on its test split beside the baseline, VidMusician's CLIP-distance
    curve rescaled. Caches CLIP features, music rhythm features and video structure on first use; writes
    rhythm_predictor.pt (pass it to `dvmset train --rhythm predicted-odf --rhythm-predictor`),
    rhythm_report.json, rhythm_report.md and config.toml (the resolved config)."""
    from model.features import DEFAULT_CLIP_MODEL_ID
    from model.rhythm_run import RhythmRequest, run_rhythm_training
    from model.rhythm_train import PredictorSettings

    flags = {
        "model": {"clip": clip, "semantic_feature": semantic_feature},
        "rhythm": {
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "hidden": hidden,
            "layers": layers,
            "affect": affect,
            "seed": seed,
            "device": device,
        },
    }
    config = configured(config_path, flags, data_root=data_root)
    config = config.model_copy(
        update={
            "model": config.model.model_copy(  # the CLIP model it really reads
                update={"clip": config.model.clip or DEFAULT_CLIP_MODEL_ID}
            )
        }
    )
    rhythm = config.rhythm
    try:
        settings = PredictorSettings(
            epochs=rhythm.epochs,
            batch_size=rhythm.batch_size,
            learning_rate=rhythm.learning_rate,
            weight_decay=rhythm.weight_decay,
            seed=rhythm.seed,
            hidden=rhythm.hidden,
            layers=rhythm.layers,
            use_affect=rhythm.affect,
        )
    except ValueError as exc:
        raise fail(ExitCode.USAGE, str(exc)) from exc
    manifest = local_manifest(manifest, config)
    manifest_dir = manifest if manifest.is_dir() else manifest.parent
    request = RhythmRequest(
        manifest_dir=manifest_dir,
        data_root=config.data_root,
        out_dir=out_dir or Path("runs") / manifest_dir.resolve().name / "rhythm",
        settings=settings,
        clip_model_id=config.model.clip,
        semantic_feature=config.model.semantic_feature,
        model_dir=config.model_dir,
        device=rhythm.device,
        run_config=config_toml(portable(config)),
    )
    with training_errors_as_exit_codes():
        result = run_rhythm_training(request)
    out.print(result.report_path.read_text(), highlight=False)
    out.print(
        f"predictor {result.predictor_path}\nreport {result.report_path}\nconfig {result.config_path} "
        "(--config repeats this run)",
        highlight=False,
    )
