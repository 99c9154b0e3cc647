"""The generation command of `dvmset`: `generate` (music for a video with a trained VidMusician).

Registered by `dvmset.cli.main`; the model code (torch, transformers) is imported
inside the command only. Exit codes as in `dvmset.cli.common`; here: 2 (usage) for invalid settings or an
output format that cannot be written, 3 when the configuration is invalid, or the checkpoint or a model
it names cannot be found or loaded (the message says where it looked), 1 when the video cannot be read
or has no frames, or muxing fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dvmset.cli.common import ConfigOption, ExitCode, fail, out
from dvmset.cli.run_settings import configured
from dvmset.config import ModelConfig
from dvmset.errors import StageError
from dvmset.tools import video_duration_s

if TYPE_CHECKING:
    from model.checkpoint import ModelSpec


def config_departures(model: ModelConfig, spec: ModelSpec) -> list[str]:
    """The [model] settings the config file gives (`model.model_fields_set`) that differ from the checkpoint's
    model, as `key checkpoint value (config: value)`: the checkpoint's are what generation uses."""
    conditioning = spec.conditioning
    recorded: dict[str, object] = {
        "musicgen": spec.musicgen_model_id,
        "clip": spec.clip_model_id,
        "semantic_feature": conditioning.semantic_feature,
        "embedding_layers": conditioning.embedding_layers,
        "lora_rank": conditioning.lora_rank,
        "lora_alpha": conditioning.lora_alpha,
        "lora_targets": conditioning.lora_targets,
        "affect": "on" if conditioning.affect else "off",
    }
    if spec.stage == 2:
        recorded["rhythm"] = spec.rhythm_source
    given = [key for key in ModelConfig.model_fields if key in model.model_fields_set and key in recorded]
    return [
        f"{key} {recorded[key]} (config: {getattr(model, key)})"
        for key in given
        if getattr(model, key) != recorded[key]
    ]


def generate(
    video: Annotated[Path, typer.Argument(help="the video to write music for")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="the video with the music (.mp4, .m4v, .mov, .mkv)")],
    checkpoint: Annotated[Path, typer.Option(help="a checkpoint.pt written by `dvmset train` (stage 1 or 2)")],
    config_path: ConfigOption = None,
    music_out: Annotated[Path | None, typer.Option(help="also write the music alone (.wav or .flac)")] = None,
    guidance: Annotated[float, typer.Option(min=1.0, help="classifier-free guidance scale (1: none)")] = 3.0,
    seed: Annotated[int, typer.Option(help="sampling seed: the same seed gives the same music")] = 0,
    window_s: Annotated[float, typer.Option(help="seconds generated per window (MusicGen: at most 30)")] = 30.0,
    prompt_s: Annotated[
        float, typer.Option(help="seconds of the previous window a window continues from (a longer video)")
    ] = 12.0,
    top_k: Annotated[int, typer.Option(min=1, help="sample among the k likeliest codes")] = 250,
    temperature: Annotated[float, typer.Option(min=0.01, help="sampling temperature")] = 1.0,
    device: Annotated[str | None, typer.Option(help="torch device (default: cuda when there is one)")] = None,
) -> None:
    """Generate music for VIDEO with a trained VidMusician and write it under the video's picture (copied
    as is) to --out. Loads the MusicGen and CLIP models the checkpoint names (from the config's model_dir,
    the Hugging Face cache, or the hub); the checkpoint's model settings win over the config's model section,
    and a difference is said."""
    from model.checkpoint import load_checkpoint
    from model.errors import CheckpointError, ConditioningError, WeightsNotFoundError
    from model.generate import GenerationSettings, generate_music, load_generator
    from model.soundtrack import check_output_suffixes, mux_music, write_music

    config = configured(config_path, {})
    try:
        settings = GenerationSettings(
            window_s=window_s,
            prompt_s=prompt_s,
            guidance_scale=guidance,
            top_k=top_k,
            temperature=temperature,
            seed=seed,
        )
        check_output_suffixes(out_path, music_out)
    except ValueError as exc:
        raise fail(ExitCode.USAGE, str(exc)) from exc
    if not checkpoint.is_file():
        raise fail(
            ExitCode.CONFIG,
            f"no checkpoint at {checkpoint.absolute()}: pass the checkpoint.pt that `dvmset train` wrote in its "
            "output folder (runs/<manifest version>/stage<N>/ by default)",
        )
    try:
        video_duration_s(video)  # a video that cannot be read fails before the models load
        trained = load_checkpoint(checkpoint)
        departures = config_departures(config.model, trained.spec)
        if departures:
            out.print(
                f"the checkpoint's model settings are used, not the config's [model]: {', '.join(departures)}",
                markup=False,
                highlight=False,
            )
        model, encoder = load_generator(trained, config.model_dir, device)
        soundtrack = generate_music(model, video, encoder, settings)
        waveform = soundtrack.waveform.numpy()
        mux_music(video, waveform, soundtrack.sampling_rate_hz, out_path)
    except (CheckpointError, ConditioningError, WeightsNotFoundError) as exc:
        raise fail(ExitCode.CONFIG, str(exc)) from exc
    except StageError as exc:
        raise fail(ExitCode.ITEMS_FAILED, str(exc)) from exc
    written = [str(out_path)]
    if music_out is not None:
        written.append(str(write_music(music_out, waveform, soundtrack.sampling_rate_hz)))
    out.print(
        f"{soundtrack.duration_s:.2f} s of music in {len(soundtrack.windows)} window(s), seed {seed}: "
        + ", ".join(written),
        highlight=False,
    )
