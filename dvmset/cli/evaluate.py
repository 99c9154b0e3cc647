"""The evaluation command of `dvmset`: `evaluate` (paper, section 5.2: FD, KL, ImageBind, CLAP, Rhythm; VeM's
beat alignment at transitions, beat and tempo agreement).

Registered by `dvmset.cli.main`; the model code (torch, transformers, librosa) is
imported inside the command only. Settings come from the config's `[evaluate]` section (the paper's protocol
by default); flags override them, and the resolved config is written beside the report
(`<out>/<report>.toml`): `--config` with it repeats the evaluation. Each `--generated DIR` is one run (named
by `--name`, in the same order, else by the folder's name); the music for a clip is
`DIR/<clip id>.<wav|flac|mp3|ogg>` (the clip id as `dvmset.ids.id_to_dirname` writes it). The ground-truth
music (upper reference) and another clip's music (shuffled, chance reference) are evaluated beside them
unless `--no-references`. `--scenes manifest` takes each clip's scene changes from the manifest (the curation
prescreen's cuts) instead of running PySceneDetect again; `--beats` names the Rhythm score's beat protocol
(default `onsets-d2m`); `--beat-tracker module:function` plugs in another beat tracker
(`model.metrics.trackers`), checked before any work. The ImageBind score reads `--imagebind PATH`
(default `imagebind/imagebind_huge.pth` under the model folder); without that file the report says it is not
available and where to download it, `--no-imagebind` leaves it out.
Exit codes as in `dvmset.cli.common`: 2 (usage) for mismatched --name/--generated or bad settings (a beat
tracker that cannot be loaded or returns something other than beat times included), 3 when the
configuration is invalid or a model's weights cannot be found (or an ImageBind file does not load), 1 when
the manifest or a clip's media cannot be read.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dvmset.cli.common import ConfigOption, ExitCode, fail, out, progress_bar
from dvmset.cli.manifest_inputs import local_manifest
from dvmset.cli.run_settings import configured
from dvmset.config import EvaluateConfig, config_toml, portable
from dvmset.errors import StageError
from dvmset.ids import id_to_dirname
from dvmset.storage import DataRoot, atomic_write_text
from manifests.schema import ManifestError, manifest_path
from manifests.split import Split

if TYPE_CHECKING:
    from model.metrics.evaluate import EvalSettings


SCENE_SOURCES = ("detect", "manifest")


def prescreen_detector() -> str:
    """What the curation prescreen runs to find the manifest's `scene_cuts_s`, read from `curation.prescreen`."""
    from curation import picture, prescreen

    return (
        f"PySceneDetect ContentDetector's frame score and FlashFilter in the curation prescreen "
        f"({prescreen.STAGE_VERSION}), on every frame scaled to {picture.ANALYSIS_SIDE_PX} px on the longer side"
    )


def eval_settings(evaluate: EvaluateConfig, model_dir: Path | None, manifest: Path) -> EvalSettings:
    """The evaluator's settings of an `[evaluate]` section: the beat tracker loaded and checked, the manifest's
    prescreen settings read for `scenes = "manifest"` (ValueError or BeatTrackerError for a bad setting,
    ManifestError for a manifest whose config cannot be read)."""
    from model.metrics.evaluate import EvalSettings
    from model.metrics.scenes import SceneSettings, manifest_scenes
    from model.metrics.trackers import beat_tracker_spec, load_beat_tracker

    tracker = load_beat_tracker(beat_tracker_spec(evaluate.beats))
    scenes = (
        manifest_scenes(manifest, prescreen_detector())
        if evaluate.scenes == "manifest"
        else SceneSettings(evaluate.scene_detector, evaluate.scene_threshold, evaluate.min_scene_frames)
    )
    return EvalSettings(
        scenes=scenes,
        beat_tracker=tracker,
        tolerance_s=evaluate.tolerance_s,
        beat_bin_s=evaluate.beat_bin_s,
        panns_checkpoint=evaluate.panns,
        clap_model_id=evaluate.clap,
        imagebind_checkpoint=evaluate.imagebind if evaluate.imagebind_score else None,
        model_dir=model_dir,
        device=evaluate.device,
        shuffle_seed=evaluate.shuffle_seed,
        exclude=evaluate.exclude,
        transition_tolerance_s=evaluate.transition_tolerance_s,
        beat_match_tolerance_s=evaluate.beat_match_tolerance_s,
        beat_skip_s=evaluate.beat_skip_s,
        tempo_tolerance=evaluate.tempo_tolerance,
    )


def repeat_command(manifest: Path, runs: dict[str, Path], config_file: Path, out_dir: Path, report: str) -> str:
    """The shell command that repeats an evaluation from its resolved config, from any folder."""
    words = ["dvmset", "evaluate", "--manifest", str(manifest.resolve())]
    for run, folder in runs.items():
        words += ["--generated", str(folder.resolve()), "--name", run]
    words += ["--config", str(config_file.resolve()), "--out", str(out_dir.resolve()), "--report", report]
    return shlex.join(words)


def evaluate(
    manifest: Annotated[
        str,
        typer.Option(
            help="a published manifest version folder (manifests/<version>/) or one of its splits (with an "
            "object-store data root, also its URL: fetched with its clips)"
        ),
    ],
    generated: Annotated[list[Path], typer.Option(help="a folder of generated music, one file per clip (repeatable)")],
    name: Annotated[list[str] | None, typer.Option(help="the run's name in the report, one per --generated")] = None,
    config_path: ConfigOption = None,
    split: Annotated[Split, typer.Option(help="the split of a manifest version folder to evaluate on")] = Split.TEST,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="report folder (default: reports/<manifest version>)")
    ] = None,
    report: Annotated[
        str, typer.Option(help="file name (no suffix) of the JSON, Markdown and config files")
    ] = "evaluation",
    references: Annotated[
        bool | None,
        typer.Option(
            "--references/--no-references", help="also evaluate the ground-truth and the shuffled music (default: yes)"
        ),
    ] = None,
    data_root: Annotated[
        Path | None, typer.Option(help="where the manifest's paths start (default: the config's)")
    ] = None,
    scene_detector: Annotated[
        str | None, typer.Option(help="PySceneDetect detector: content (the default), adaptive, histogram, hash")
    ] = None,
    scene_threshold: Annotated[float | None, typer.Option(help="detector threshold (default: the detector's)")] = None,
    min_scene_frames: Annotated[int | None, typer.Option(min=1, help="shortest scene in frames (default: 15)")] = None,
    scenes: Annotated[
        str | None,
        typer.Option(
            help="scene changes: detect (PySceneDetect on each video, the default) or manifest (its scene_cuts_s)"
        ),
    ] = None,
    beats: Annotated[
        str | None,
        typer.Option(
            help="the Rhythm score's beats: onsets-d2m (the default: D2M-GAN's onsets, as the paper), "
            "onsets-loris, beat_track (librosa's beat tracker), plp"
        ),
    ] = None,
    beat_tracker: Annotated[
        str | None,
        typer.Option(help="another beat tracker, module:function (instead of --beats)"),
    ] = None,
    tolerance_s: Annotated[
        float | None, typer.Option(min=0.0, help="Rhythm: a beat this close hits a scene change (s; 0.1)")
    ] = None,
    exclude: Annotated[
        str | None,
        typer.Option(
            help="clips left out of Rhythm and transitions: none (only clips without scene "
            "changes; the default) or stable-visual (still pictures, or under 2 cuts a "
            "minute, by the manifest's prescreen)"
        ),
    ] = None,
    beat_bin_s: Annotated[float | None, typer.Option(min=0.01, help="onset bin of BCS/BHS (s; 1)")] = None,
    transition_tolerance_s: Annotated[
        float | None, typer.Option(min=0.0, help="a tracked beat this close to a transition aligns with it (s; 0.1)")
    ] = None,
    beat_match_tolerance_s: Annotated[
        float | None, typer.Option(min=0.001, help="beat F-measure window (s; 0.07, as mir_eval)")
    ] = None,
    beat_skip_s: Annotated[
        float | None, typer.Option(min=0.0, help="beats before this are left out of the F-measure (s; 5)")
    ] = None,
    tempo_tolerance: Annotated[
        float | None, typer.Option(min=0.001, max=0.999, help="relative tempo error that agrees (0.04)")
    ] = None,
    panns: Annotated[str | None, typer.Option(help="PANNs Cnn14 checkpoint file or name")] = None,
    clap: Annotated[str | None, typer.Option(help="CLAP hub id or folder")] = None,
    imagebind: Annotated[
        str | None, typer.Option(help="ImageBind checkpoint file (relative: under the model folder when not here)")
    ] = None,
    no_imagebind: Annotated[bool, typer.Option("--no-imagebind", help="leave the ImageBind score out")] = False,
    shuffle_seed: Annotated[int | None, typer.Option(help="seed of the shuffled-music reference (0)")] = None,
    device: Annotated[str | None, typer.Option(help="torch device (cpu)")] = None,
) -> None:
    """Score generated music against a manifest's reference clips; write a JSON and a Markdown report and the
    resolved config. Settings come from the config's evaluate section (the paper's protocol by default); flags
    override them."""
    from model.errors import WeightsNotFoundError
    from model.metrics.evaluate import (
        evaluate_runs,
        generated_files,
        load_metric_models,
        manifest_eval_clips,
        music_to_analyse,
        reference_runs,
    )
    from model.metrics.report import protocol, write_report
    from model.metrics.rhythm import EXCLUDE_RULES
    from model.metrics.trackers import BeatTrackerError

    names = list(name or [folder.name for folder in generated])
    if len(names) != len(generated) or len(set(names)) != len(names):
        message = f"give one distinct --name per --generated ({len(names)} names, {len(generated)} folders)"
        raise fail(ExitCode.USAGE, message)
    missing_folders = [str(folder) for folder in generated if not folder.is_dir()]
    if missing_folders:
        raise fail(ExitCode.USAGE, f"not a folder: {', '.join(missing_folders)}")
    if exclude is not None and exclude not in EXCLUDE_RULES:
        raise fail(ExitCode.USAGE, f"--exclude must be one of {', '.join(EXCLUDE_RULES)}, got {exclude!r}")
    if scenes is not None and scenes not in SCENE_SOURCES:
        raise fail(ExitCode.USAGE, f"--scenes must be one of {', '.join(SCENE_SOURCES)}, got {scenes!r}")
    if beats is not None and beat_tracker is not None:
        raise fail(ExitCode.USAGE, "give --beats (a named protocol) or --beat-tracker (module:function), not both")
    detection = {
        "scene_detector": scene_detector,
        "scene_threshold": scene_threshold,
        "min_scene_frames": min_scene_frames,
    }
    flags = {
        **detection,
        "references": references,
        "scenes": scenes,
        "beats": beat_tracker or beats,
        "tolerance_s": tolerance_s,
        "exclude": exclude,
        "beat_bin_s": beat_bin_s,
        "transition_tolerance_s": transition_tolerance_s,
        "beat_match_tolerance_s": beat_match_tolerance_s,
        "beat_skip_s": beat_skip_s,
        "tempo_tolerance": tempo_tolerance,
        "panns": panns,
        "clap": clap,
        "imagebind": imagebind,
        "imagebind_score": False if no_imagebind else (True if imagebind else None),
        "shuffle_seed": shuffle_seed,
        "device": device,
    }
    config = configured(config_path, {"evaluate": flags}, data_root=data_root)
    if config.evaluate.scenes == "manifest" and any(value is not None for value in detection.values()):
        raise fail(
            ExitCode.USAGE,
            "--scene-detector, --scene-threshold and --min-scene-frames set how scenes are "
            "detected: they do not apply with --scenes manifest",
        )
    manifest = local_manifest(manifest, config)
    if manifest.is_dir():  # the version folder, as `manifests check` takes it
        manifest = manifest_path(manifest, split)
    try:
        settings = eval_settings(config.evaluate, config.model_dir, manifest)
    except (ValueError, BeatTrackerError) as exc:
        raise fail(ExitCode.USAGE, str(exc)) from exc
    except ManifestError as exc:
        raise fail(ExitCode.ITEMS_FAILED, str(exc)) from exc
    try:
        clips = manifest_eval_clips(manifest, DataRoot(config.data_root))
        models = load_metric_models(settings)
        runs = {run: generated_files(folder, clips) for run, folder in zip(names, generated)}
        if config.evaluate.references:
            runs |= reference_runs(clips, settings.shuffle_seed)
        files = len(music_to_analyse(clips, runs)) + len(clips)  # music files, then the reference videos
        with progress_bar(files, "music and videos analysed", unit="file") as bar:
            results = evaluate_runs(
                clips, runs, models, settings, on_music=lambda _: bar.update(1), on_video=lambda _: bar.update(1)
            )
    except WeightsNotFoundError as exc:
        raise fail(ExitCode.CONFIG, str(exc)) from exc
    except BeatTrackerError as exc:
        raise fail(ExitCode.USAGE, str(exc)) from exc
    except (ManifestError, StageError) as exc:
        raise fail(ExitCode.ITEMS_FAILED, str(exc)) from exc
    folder = out_dir or Path("reports") / manifest.resolve().parent.name
    folder.mkdir(parents=True, exist_ok=True)
    config_file = folder / f"{report}.toml"
    atomic_write_text(config_file, config_toml(portable(config)))
    clap_rate_hz, clap_window_s = models.clap.sample_rate_hz, models.clap.window_s
    imagebind_unavailable = None if models.imagebind is not None else models.imagebind_unavailable
    protocol_block = protocol(settings, clap_rate_hz, clap_window_s, imagebind_unavailable)
    inputs = {
        "manifest": str(manifest),
        "data_root": str(config.data_root),
        "clips": len(clips),
        "generated": {run: str(path) for run, path in zip(names, generated)},
        "config": str(config_file),
        "repeat": repeat_command(manifest, dict(zip(names, generated)), config_file, folder, report),
    }
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
    out.print(
        f"report {markdown_path}\njson {json_path}\nconfig {config_file} (--config repeats this evaluation)",
        highlight=False,
    )
