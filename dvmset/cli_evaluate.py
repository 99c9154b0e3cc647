"""The evaluation command of `dvmset`: `evaluate` (paper, section 5.2: FD, KL, ImageBind, CLAP, Rhythm).

Registered on `dvmset.cli.app` when that module loads; the model code (torch, transformers, librosa) is
imported inside the command only. Each `--generated DIR` is one run (named by `--name`, in the same
order, else by the folder's name); the music for a clip is `DIR/<clip id>.<wav|flac|mp3|ogg>` (the clip
id as `dvmset.ids.id_to_dirname` writes it). The ground-truth music (upper reference) and another
clip's music (shuffled, lower reference) are evaluated beside them unless `--no-references`.
Exit codes as in `dvmset.cli`: 2 (usage) for mismatched --name/--generated or bad settings, 3 when the
configuration is invalid or a model's weights cannot be found, 1 when the manifest or a clip's media
cannot be read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dvmset.cli import ConfigOption, ExitCode, fail, progress_bar, app, out
from dvmset.config import load_config
from dvmset.errors import ConfigError, StageError
from dvmset.ids import id_to_dirname
from dvmset.manifest import ManifestError
from dvmset.storage import DataRoot


@app.command()
def evaluate(
    manifest: Annotated[Path, typer.Option(help="a published manifests/<version>/test.parquet")],
    generated: Annotated[list[Path], typer.Option(help="a folder of generated music, one file per clip (repeatable)")],
    name: Annotated[list[str] | None, typer.Option(help="the run's name in the report, one per --generated")] = None,
    config_path: ConfigOption = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="report folder (default: reports/<manifest version>)")
    ] = None,
    report: Annotated[str, typer.Option(help="file name (no suffix) of the JSON and Markdown reports")] = "evaluation",
    references: Annotated[bool, typer.Option(help="also evaluate the ground-truth and the shuffled music")] = True,
    data_root: Annotated[
        Path | None, typer.Option(help="where the manifest's paths start (default: the config's)")
    ] = None,
    scene_detector: Annotated[
        str, typer.Option(help="PySceneDetect detector: content, adaptive, histogram, hash")
    ] = "content",
    scene_threshold: Annotated[float | None, typer.Option(help="detector threshold (default: the detector's)")] = None,
    min_scene_frames: Annotated[int, typer.Option(min=1, help="shortest scene in frames")] = 15,
    tolerance_s: Annotated[float, typer.Option(min=0.0, help="a beat this close hits a scene change (s)")] = 0.1,
    beat_bin_s: Annotated[float, typer.Option(min=0.01, help="onset bin of BCS/BHS (s)")] = 1.0,
    panns: Annotated[str, typer.Option(help="PANNs Cnn14 checkpoint file or name")] = "Cnn14_mAP=0.431.pth",
    clap: Annotated[str, typer.Option(help="CLAP hub id or folder")] = "laion/larger_clap_music",
    shuffle_seed: Annotated[int, typer.Option(help="seed of the shuffled-music reference")] = 0,
    device: Annotated[str, typer.Option(help="torch device")] = "cpu",
) -> None:
    """Score generated music against a manifest's reference clips; write a JSON and a Markdown report."""
    from model.errors import WeightsNotFoundError
    from model.metrics.evaluate import (
        EvalSettings, evaluate_runs, generated_files, imagebind_unavailable_reason, load_metric_models,
        manifest_eval_clips, music_to_analyse, reference_runs,
    )  # fmt: skip
    from model.metrics.report import protocol, write_report
    from model.metrics.scenes import SceneSettings

    names = list(name or [folder.name for folder in generated])
    if len(names) != len(generated) or len(set(names)) != len(names):
        message = f"give one distinct --name per --generated ({len(names)} names, {len(generated)} folders)"
        raise fail(ExitCode.USAGE, message)
    missing_folders = [str(folder) for folder in generated if not folder.is_dir()]
    if missing_folders:
        raise fail(ExitCode.USAGE, f"not a folder: {', '.join(missing_folders)}")
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise fail(ExitCode.CONFIG, str(exc)) from exc
    try:
        scenes = SceneSettings(scene_detector, scene_threshold, min_scene_frames)
    except ValueError as exc:
        raise fail(ExitCode.USAGE, str(exc)) from exc
    settings = EvalSettings(
        scenes=scenes, tolerance_s=tolerance_s, beat_bin_s=beat_bin_s, panns_checkpoint=panns, clap_model_id=clap,
        model_dir=config.model_dir, device=device, shuffle_seed=shuffle_seed,
    )  # fmt: skip
    root = data_root or config.data_root
    try:
        clips = manifest_eval_clips(manifest, DataRoot(root))
        models = load_metric_models(settings)
        runs = {run: generated_files(folder, clips) for run, folder in zip(names, generated)}
        if references:
            runs |= reference_runs(clips, shuffle_seed)
        with progress_bar(len(music_to_analyse(clips, runs)), "music analysed", unit="file") as bar:
            results = evaluate_runs(clips, runs, models, settings, on_music=lambda _: bar.update(1))
    except WeightsNotFoundError as exc:
        raise fail(ExitCode.CONFIG, str(exc)) from exc
    except (ManifestError, StageError) as exc:
        raise fail(ExitCode.ITEMS_FAILED, str(exc)) from exc
    clap_rate_hz, clap_window_s = models.clap.sample_rate_hz, models.clap.window_s
    protocol_block = protocol(settings, clap_rate_hz, clap_window_s, imagebind_unavailable_reason())
    inputs = {"manifest": str(manifest), "data_root": str(root), "clips": len(clips),
              "generated": {run: str(folder) for run, folder in zip(names, generated)}}  # fmt: skip
    folder = out_dir or Path("reports") / manifest.resolve().parent.name
    json_path, markdown_path = write_report(results, protocol_block, inputs, folder, report)
    for result in results:
        scored = f"{result.name}: {len(result.clips)} clips scored, {len(result.missing)} without music"
        out.print(scored + (f", {len(result.unreadable)} unreadable" if result.unreadable else ""), highlight=False)
        for clip_id, reason in result.unreadable:
            out.print(f"  {clip_id}: {reason}", highlight=False)
        if result.missing and not result.clips and not result.unreadable:
            out.print(f"  no file found; expected names such as {id_to_dirname(clips[0].clip_id)}.wav", highlight=False)
    out.print(f"report {markdown_path}\njson {json_path}", highlight=False)
