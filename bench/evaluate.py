"""Evaluation benchmark (issue 8): seconds per clip of each part of `dvmset evaluate`, and peak memory.

In: nothing to download. `--clips` test clips of `--clip-s` seconds are made with ffmpeg's lavfi: an H.264
test pattern (`--height` p, 25 fps) whose hue jumps every 2 s (a hard cut) and a stereo 44.1 kHz FLAC
drum track (a decaying tone every 0.5 s), each clip shifted in time. The real `model.metrics.evaluate.
evaluate_runs` scores the ground-truth and shuffled-music references against them (each music file
analysed once), then `write_report` writes the report; the functions it calls are wrapped with timers
in this process only. Two model sets run:
- tiny: the tests' random Cnn14 and CLAP (`tests.model.metrics.conftest`), saved in their real formats
  and loaded through `load_cnn14` / `load_clap_encoder`, as users load theirs;
- full: PANNs Cnn14 at full width (80 M parameters, 527 classes) and CLAP with the architecture of
  `laion/larger_clap_music` (from the Hugging Face cache when it is there, else from the non-default
  fields of that model's config.json, `LARGER_CLAP_MUSIC_FIELDS`; the feature extractor's defaults with
  `truncation="rand_trunc"`, as the unfused larger CLAPs set it), random weights, in memory.
With `--imagebind`, each set also has ImageBind (the tests' tiny one, saved and loaded through
`load_imagebind`; the huge architecture with random weights).
Out, on stdout (and `--json PATH`): per set, seconds per clip of: audio read + resampling, scene
detection (PySceneDetect on the video), beat tracking, onsets, music features (the tracked beats and tempo of
the transition, beat F and tempo metrics), Cnn14 forward, CLAP forward, ImageBind's
inputs (frames, fbanks) and forward (0 without `--imagebind`), the report,
the total (librosa's one-off numba compilation is done before, untimed); peak RSS after each set
(`ru_maxrss`, whole process so far); the load average at start and end.
No targets: the figures are for reading.

    .venv/bin/python bench/evaluate.py                       # 4 clips of 60 s, 720p, both sets
    .venv/bin/python bench/evaluate.py --clips 4 --sets full --json out.json
    .venv/bin/python bench/evaluate.py --clips 2 --clip-s 10 --imagebind     # ImageBind too, a short run
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.metrics import evaluate as evaluate_module  # noqa: E402
from model.metrics.beats import ONSET_SAMPLE_RATE_HZ, onset_times_s  # noqa: E402
from model.metrics.clap import DEFAULT_CLAP_MODEL, ClapEncoder, load_clap_encoder  # noqa: E402
from model.metrics.evaluate import EvalClip, EvalSettings, MetricModels, evaluate_runs, reference_runs  # noqa: E402
from model.metrics.imagebind import HUGE, ImageBind, load_imagebind, save_imagebind  # noqa: E402
from model.metrics.panns import Cnn14, load_cnn14, save_cnn14  # noqa: E402
from model.metrics.report import protocol, write_report  # noqa: E402
from model.metrics.rhythm import default_beat_tracker  # noqa: E402
from model.metrics.trackers import probe_signal  # noqa: E402
from model.music_features import music_features  # noqa: E402
from model.tokens import MusicAt  # noqa: E402
from tests.support.generated_media import make_cut_video  # noqa: E402
from tests.support.tiny_models import (  # noqa: E402
    TINY_CNN14_CLASSES,
    TINY_CNN14_WIDTHS,
    TINY_IMAGEBIND,
    save_tiny_clap,
)

CUT_PERIOD_S = 2.0
BEAT_PERIOD_S = 0.5
MUSIC_RATE_HZ = 44_100
MB = 1024 * 1024
# laion/larger_clap_music's config.json (huggingface.co/laion/larger_clap_music, commit a0b4534a): the fields
# it sets; every other field is transformers' default
LARGER_CLAP_MUSIC_FIELDS = {
    "audio_config": {"depths": [2, 2, 12, 2], "hidden_size": 1024, "patch_embeds_hidden_size": 128},
    "hidden_size": 768,
    "logit_scale_init_value": 14.285714285714285,
    "num_hidden_layers": 16,
    "projection_dim": 512,
    "projection_hidden_act": "relu",
}
PARTS = (
    "read + resample",
    "scene detection",
    "beat tracking",
    "onsets",
    "music features",
    "Cnn14 forward",
    "CLAP forward",
    "ImageBind inputs",
    "ImageBind forward",
    "report",
)


def make_clip(folder: Path, index: int, clip_s: float, height: int) -> EvalClip:
    """`video.mp4` (cuts every `CUT_PERIOD_S`) and `music.flac` (a beat every `BEAT_PERIOD_S`) of clip
    `index`, both shifted by index x 0.3 s."""
    folder.mkdir(parents=True, exist_ok=True)
    shift_s = 0.3 * index
    width = round(height * 16 / 9 / 2) * 2
    video, music = folder / "video.mp4", folder / "music.flac"
    size, first_cut_s = f"{width}x{height}", CUT_PERIOD_S - shift_s
    make_cut_video(video, clip_s, fps=25, cut_every_s=CUT_PERIOD_S, first_cut_s=first_cut_s, size=size)
    beat = f"mod(t+{shift_s},{BEAT_PERIOD_S})"
    sound = f"aevalsrc='0.6*exp(-30*{beat})*sin(2*PI*(110+55*mod(floor(t/2),4))*t)':s={MUSIC_RATE_HZ}:d={clip_s}"
    ffmpeg = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi"]
    subprocess.run([*ffmpeg, "-i", sound, "-ac", "2", "-c:a", "flac", str(music)], check=True)
    return EvalClip(f"bench:{index}", "bench", video, music, clip_s)


def tiny_models(folder: Path, imagebind: bool) -> tuple[MetricModels, str]:
    """The tests' tiny Cnn14, CLAP (and ImageBind), saved and loaded through the users' loaders."""
    torch.manual_seed(0)
    checkpoint = save_cnn14(Cnn14(TINY_CNN14_WIDTHS, TINY_CNN14_CLASSES), folder / "Cnn14_tiny.pth")
    clap = load_clap_encoder(str(save_tiny_clap(folder / "clap")))
    tiny_imagebind = None
    if imagebind:
        tiny_imagebind = load_imagebind(str(save_imagebind(ImageBind(TINY_IMAGEBIND), folder / "imagebind.pth")))
    models = MetricModels(load_cnn14(str(checkpoint)), clap, tiny_imagebind)
    return models, f"tests' tiny random Cnn14, CLAP{' and ImageBind' if imagebind else ''}"


def full_models(imagebind: bool) -> tuple[MetricModels, str]:
    """Full-width Cnn14, CLAP of `laion/larger_clap_music`'s architecture (and ImageBind huge), random weights."""
    torch.manual_seed(0)
    try:
        config, source = ClapConfig.from_pretrained(DEFAULT_CLAP_MODEL, local_files_only=True), "Hugging Face cache"
    except OSError:
        config, source = ClapConfig(**LARGER_CLAP_MUSIC_FIELDS), "its config.json fields (not in the cache)"
    extractor = ClapFeatureExtractor(truncation="rand_trunc")  # the unfused larger CLAPs' setting; 48 kHz, 10 s
    clap = ClapEncoder(ClapModel(config).eval(), extractor, f"{DEFAULT_CLAP_MODEL} (random weights)")
    huge = ImageBind(HUGE).eval() if imagebind else None
    described = f"Cnn14 full width, CLAP {DEFAULT_CLAP_MODEL} config from {source}"
    return MetricModels(Cnn14().eval(), clap, huge), described + (", ImageBind huge" if imagebind else "")


def timed(function: Callable[..., Any], seconds: list[float]) -> Callable[..., Any]:
    """`function`, adding the wall seconds of each call to `seconds`."""

    def run(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - started)

    return run


@contextlib.contextmanager
def timers(totals: dict[str, list[float]]) -> Iterator[None]:
    """Wrap what `evaluate_runs` calls (in `model.metrics.evaluate`'s namespace) with `timed`."""
    names = {
        "scene_changes_s": "scene detection",
        "onset_times_s": "onsets",
        "music_features": "music features",
        "panns_outputs": "Cnn14 forward",
        "clap_embeddings": "CLAP forward",
        "video_views": "ImageBind inputs",
        "audio_melspecs": "ImageBind inputs",
    }
    originals = {name: getattr(evaluate_module, name) for name in names}
    music_at = {method: getattr(MusicAt, method) for method in ("__init__", "__call__")}  # decode, resample
    try:
        for name, part in names.items():
            setattr(evaluate_module, name, timed(originals[name], totals[part]))
        for method, original in music_at.items():
            setattr(MusicAt, method, timed(original, totals["read + resample"]))
        yield
    finally:
        for name, original in originals.items():
            setattr(evaluate_module, name, original)
        for method, original in music_at.items():
            setattr(MusicAt, method, original)


def run_set(clips: list[EvalClip], models: MetricModels, out: Path) -> dict[str, float]:
    """Seconds per clip of each part (and the total) of evaluating the references against `clips`."""
    totals: dict[str, list[float]] = defaultdict(list)
    tracker = default_beat_tracker()
    tracker = dataclasses.replace(tracker, function=timed(tracker.function, totals["beat tracking"]))
    settings = EvalSettings(beat_tracker=tracker)
    if models.imagebind is not None:  # an instance attribute: this model's calls only
        models.imagebind.mean_embedding = timed(models.imagebind.mean_embedding, totals["ImageBind forward"])
    started = time.perf_counter()
    with timers(totals):
        results = evaluate_runs(clips, reference_runs(clips, settings.shuffle_seed), models, settings)
    report_started = time.perf_counter()
    unavailable = None if models.imagebind is not None else "not run (bench/evaluate.py without --imagebind)"
    block = protocol(settings, models.clap.sample_rate_hz, models.clap.window_s, unavailable)
    write_report(results, block, {"manifest": "bench", "clips": len(clips)}, out, "bench")
    totals["report"].append(time.perf_counter() - report_started)
    figures = {part: sum(totals[part]) / len(clips) for part in PARTS}
    figures["total"] = (time.perf_counter() - started) / len(clips)
    return figures


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # KiB on Linux


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=4, help="test clips (at least 2, for the shuffled run)")
    parser.add_argument("--clip-s", type=float, default=60.0, help="clip length in seconds (the dataset's: 60)")
    parser.add_argument("--height", type=int, default=720, help="video height in pixels (the clip stage's: 720)")
    parser.add_argument("--sets", nargs="+", choices=("tiny", "full"), default=["tiny", "full"])
    parser.add_argument("--imagebind", action="store_true", help="also ImageBind (huge: about 80 s a clip on 2 cores)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.clips < 2:
        parser.error("--clips must be at least 2")
    report: dict[str, Any] = {"load_average_start": os.getloadavg(), "torch_threads": torch.get_num_threads()}
    print(f"load average at start: {report['load_average_start']}, torch threads {report['torch_threads']}")
    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as work:
        started = time.perf_counter()
        clips = [make_clip(Path(work) / f"clip{i}", i, args.clip_s, args.height) for i in range(args.clips)]
        made_s = time.perf_counter() - started
        print(f"{args.clips} clips of {args.clip_s:g} s at {args.height}p made in {made_s:.1f} s")
        default_beat_tracker().beats_s(probe_signal(ONSET_SAMPLE_RATE_HZ))  # librosa's numba compilation: once,
        onset_times_s(probe_signal(ONSET_SAMPLE_RATE_HZ))  # per process, not timed
        music_features(probe_signal(ONSET_SAMPLE_RATE_HZ), ONSET_SAMPLE_RATE_HZ)
        report["sets"] = {}
        for name in args.sets:
            if name == "tiny":
                models, described = tiny_models(Path(work) / "tiny", args.imagebind)
            else:
                models, described = full_models(args.imagebind)
            figures = run_set(clips, models, Path(work) / f"report-{name}")
            report["sets"][name] = {"models": described, "seconds_per_clip": figures, "peak_rss_mb": peak_rss_mb()}
            print(f"\n{name}: {described}; peak RSS so far {peak_rss_mb():,.0f} MB")
            for part, seconds in figures.items():
                print(f"  {part:<16} {seconds:8.2f} s per clip")
            del models
    report["load_average_end"] = os.getloadavg()
    print(f"\nload average at end: {report['load_average_end']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
