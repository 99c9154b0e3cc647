"""The rhythm predictor's command of `dvmset`: `train-rhythm` (Diff-V2M's idea, issue 20).

Registered on `dvmset.cli.app` when that module loads; the model code (torch) is imported inside the command
only. Exit codes as in `dvmset.cli`; here: 2 (usage) for invalid settings or an output folder that holds a
predictor already, 3 when the configuration is invalid or the CLIP model cannot be found, 1 when a clip's
media cannot be read or a manifest is unusable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from dvmset.cli import ConfigOption, ExitCode, app, fail, out
from dvmset.config import load_config
from dvmset.cli.train import training_errors_as_exit_codes
from dvmset.errors import ConfigError


@app.command(name="train-rhythm")
def train_rhythm(
    manifest: Annotated[Path, typer.Option(help="a published manifest version folder (manifests/<version>/)")],
    config_path: ConfigOption = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="output folder (default: runs/<manifest version>/rhythm)")
    ] = None,
    clip: Annotated[str | None, typer.Option(help="CLIP hub id or folder (default: the config's train.clip)")] = None,
    semantic_feature: Annotated[
        Literal["image_embeds", "cls"] | None,
        typer.Option(help="the 1 fps CLIP feature it reads (default: the config's train.semantic_feature)"),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="passes over the train split's clips")] = 100,
    batch_size: Annotated[int, typer.Option(min=1, help="whole clips per step")] = 16,
    learning_rate: Annotated[float, typer.Option(min=1e-8, help="AdamW learning rate (constant)")] = 1e-3,
    hidden: Annotated[int, typer.Option(min=1, help="channels of the temporal convolutions")] = 64,
    layers: Annotated[int, typer.Option(min=1, help="dilated convolution blocks (3: +-1.4 s of context)")] = 3,
    affect: Annotated[bool, typer.Option(help="read the per-second affect features too")] = True,
    seed: Annotated[int, typer.Option(help="seed of the initial weights and the clip order")] = 0,
    data_root: Annotated[
        Path | None, typer.Option(help="where the manifest's paths start (default: the config's)")
    ] = None,
    device: Annotated[str | None, typer.Option(help="torch device for CLIP and the predictor (default: cpu)")] = None,
) -> None:
    """Train the rhythm predictor (video features -> the music's 10 Hz onset detection function) on a
    manifest's train split and score it on its test split beside the baseline, VidMusician's CLIP-distance
    curve rescaled. Caches CLIP features, music rhythm features and video structure on first use; writes
    rhythm_predictor.pt (pass it to `dvmset train --rhythm predicted-odf --rhythm-predictor`),
    rhythm_report.json and rhythm_report.md."""
    from model.rhythm_run import RhythmRequest, run_rhythm_training
    from model.rhythm_train import PredictorSettings

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise fail(ExitCode.CONFIG, str(exc)) from exc
    try:
        settings = PredictorSettings(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                     hidden=hidden, layers=layers, use_affect=affect)  # fmt: skip
    except ValueError as exc:
        raise fail(ExitCode.USAGE, str(exc)) from exc
    manifest_dir = manifest if manifest.is_dir() else manifest.parent
    request = RhythmRequest(
        manifest_dir=manifest_dir, data_root=data_root or config.data_root,
        out_dir=out_dir or Path("runs") / manifest_dir.resolve().name / "rhythm", settings=settings,
        clip_model_id=clip or config.train.clip, semantic_feature=semantic_feature or config.train.semantic_feature,
        model_dir=config.model_dir, device=device,
    )  # fmt: skip
    with training_errors_as_exit_codes():
        result = run_rhythm_training(request)
    out.print(result.report_path.read_text(), highlight=False)
    out.print(f"predictor {result.predictor_path}\nreport {result.report_path}", highlight=False)
