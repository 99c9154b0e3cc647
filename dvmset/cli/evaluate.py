"""The evaluation command of `dvmset`: `evaluate` (paper, section 5.2: FD, KL, ImageBind, CLAP, Rhythm).

Registered on `dvmset.cli.app` when that module loads; the model code (torch, transformers, librosa) is
imported inside the command only. Each `--generated DIR` is one run (named by `--name`, in the same
order, else by the folder's name); the music for a clip is `DIR/<clip id>.<wav|flac|mp3|ogg>` (the clip
id as `dvmset.ids.id_to_dirname` writes it). The ground-truth music (upper reference) and another
clip's music (shuffled, lower reference) are evaluated beside them unless `--no-references`.
`--scenes manifest` takes each clip's scene changes from the manifest (the curation prescreen's cuts)
instead of running PySceneDetect again; `--beats` names the Rhythm score's beat protocol (default `onsets-d2m`);
`--beat-tracker module:function` plugs in another beat tracker
(`model.metrics.trackers`), checked before any work. The ImageBind score reads `--imagebind PATH`
(default `imagebind/imagebind_huge.pth` under the model folder); without that file the report says it is not
available and where to download it, `--no-imagebind` leaves it out.
Exit codes as in `dvmset.cli`: 2 (usage) for mismatched --name/--generated or bad settings (a beat
tracker that cannot be loaded or returns something other than beat times included), 3 when the
configuration is invalid or a model's weights cannot be found (or an ImageBind file does not load), 1 when
the manifest or a clip's media cannot be read.
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


SCENE_SOURCES = ("detect", "manifest")


def prescreen_detector() -> str:
    """What the curation prescreen runs to find the manifest's `scene_cuts_s`, read from `curation.prescreen`."""
    from curation import picture, prescreen

    return (
        f"PySceneDetect ContentDetector's frame score and FlashFilter in the curation prescreen "
        f"({prescreen.STAGE_VERSION}), on every frame scaled to {picture.ANALYSIS_SIDE_PX} px on the longer side"
    )


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
        str | None, typer.Option(help="PySceneDetect detector: content (the default), adaptive, histogram, hash")
    ] = None,
    scene_threshold: Annotated[float | None, typer.Option(help="detector threshold (default: the detector's)")] = None,
    min_scene_frames: Annotated[int | None, typer.Option(min=1, help="shortest scene in frames (default: 15)")] = None,
    scenes: Annotated[
        str, typer.Option(help="scene changes: detect (PySceneDetect on each video) or manifest (its scene_cuts_s)")
    ] = "detect",
    beats: Annotated[
        str | None,
        typer.Option(help="the Rhythm score's beats: onsets-d2m (the default: D2M-GAN's onsets, as the paper), "
                     "onsets-loris, beat_track (librosa's beat tracker), plp"),
    ] = None,
    beat_tracker: Annotated[
        str | None,
        typer.Option(help="another beat tracker, module:function (instead of --beats)"),
    ] = None,
    tolerance_s: Annotated[float, typer.Option(min=0.0, help="a beat this close hits a scene change (s)")] = 0.1,
    exclude: Annotated[
        str, typer.Option(help="clips left out of the Rhythm score: none (only clips without scene changes) or "
                               "stable-visual (still pictures, or under 2 cuts a minute, by the manifest's prescreen)")
    ] = "none",
    beat_bin_s: Annotated[float, typer.Option(min=0.01, help="onset bin of BCS/BHS (s)")] = 1.0,
    panns: Annotated[str, typer.Option(help="PANNs Cnn14 checkpoint file or name")] = "Cnn14_mAP=0.431.pth",
    clap: Annotated[str, typer.Option(help="CLAP hub id or folder")] = "laion/larger_clap_music",
    imagebind: Annotated[
        str, typer.Option(help="ImageBind checkpoint file (relative: under the model folder when not here)")
    ] = "imagebind/imagebind_huge.pth",
    no_imagebind: Annotated[bool, typer.Option("--no-imagebind", help="leave the ImageBind score out")] = False,
    shuffle_seed: Annotated[int, typer.Option(help="seed of the shuffled-music reference")] = 0,
    device: Annotated[str, typer.Option(help="torch device")] = "cpu",
) -> None:
    """Score generated music against a manifest's reference clips; write a JSON and a Markdown report."""
    from model.errors import WeightsNotFoundError
    from model.metrics.evaluate import (
        EvalSettings, evaluate_runs, generated_files, load_metric_models, manifest_eval_clips, music_to_analyse,
        reference_runs,
    )  # fmt: skip
    from model.metrics.report import protocol, write_report
    from model.metrics.scenes import SceneSettings, manifest_scenes
    from model.metrics.rhythm import EXCLUDE_RULES
    from model.metrics.trackers import BeatTrackerError, beat_tracker_spec, load_beat_tracker

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
    if exclude not in EXCLUDE_RULES:
        raise fail(ExitCode.USAGE, f"--exclude must be one of {', '.join(EXCLUDE_RULES)}, got {exclude!r}")
    if scenes not in SCENE_SOURCES:
        raise fail(ExitCode.USAGE, f"--scenes must be one of {', '.join(SCENE_SOURCES)}, got {scenes!r}")
    detection = {"detector": scene_detector, "threshold": scene_threshold, "min_scene_frames": min_scene_frames}
    detection = {key: value for key, value in detection.items() if value is not None}
    if scenes == "manifest" and detection:
        raise fail(ExitCode.USAGE, "--scene-detector, --scene-threshold and --min-scene-frames set how scenes are "
                   "detected: they do not apply with --scenes manifest")  # fmt: skip
    try:
        detector = SceneSettings(**detection)
        tracker = load_beat_tracker(beat_tracker_spec(beats, beat_tracker))
    except (ValueError, BeatTrackerError) as exc:
        raise fail(ExitCode.USAGE, str(exc)) from exc
    root = data_root or config.data_root
    try:
        settings = EvalSettings(
            scenes=manifest_scenes(manifest, prescreen_detector()) if scenes == "manifest" else detector,
            tolerance_s=tolerance_s, beat_bin_s=beat_bin_s, panns_checkpoint=panns, clap_model_id=clap,
            imagebind_checkpoint=None if no_imagebind else imagebind,
            model_dir=config.model_dir, device=device, shuffle_seed=shuffle_seed, beat_tracker=tracker, exclude=exclude,
        )  # fmt: skip
        clips = manifest_eval_clips(manifest, DataRoot(root))
        models = load_metric_models(settings)
        runs = {run: generated_files(folder, clips) for run, folder in zip(names, generated)}
        if references:
            runs |= reference_runs(clips, shuffle_seed)
        files = len(music_to_analyse(clips, runs)) + len(clips)  # music files, then the reference videos
        with progress_bar(files, "music and videos analysed", unit="file") as bar:
            results = evaluate_runs(
                clips, runs, models, settings, on_music=lambda _: bar.update(1), on_video=lambda _: bar.update(1)
            )  # fmt: skip
    except WeightsNotFoundError as exc:
        raise fail(ExitCode.CONFIG, str(exc)) from exc
    except BeatTrackerError as exc:
        raise fail(ExitCode.USAGE, str(exc)) from exc
    except (ManifestError, StageError) as exc:
        raise fail(ExitCode.ITEMS_FAILED, str(exc)) from exc
    clap_rate_hz, clap_window_s = models.clap.sample_rate_hz, models.clap.window_s
    imagebind_unavailable = None if models.imagebind is not None else models.imagebind_unavailable
    protocol_block = protocol(settings, clap_rate_hz, clap_window_s, imagebind_unavailable)
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
    if models.imagebind is None:
        out.print(f"ImageBind: not available: {models.imagebind_unavailable}", highlight=False)
    out.print(f"report {markdown_path}\njson {json_path}", highlight=False)
