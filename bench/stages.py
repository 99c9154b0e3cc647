"""Stage benchmark of the audio and clip stages (issue 3): real-time factor and peak memory.

In: nothing; it generates (`tests/support/stage_inputs.py`) a 1280x720, 25 fps test video with music
(`--duration-s`, 5 minutes by default) and random-weight Demucs models in Demucs' own repo format.
Out: a table on stdout and, with `--json PATH`, the same figures as JSON.

Every stage runs in a fresh child process (`bench/_stage_child.py`), so no
stage inherits another's peak. For each: the real-time factor (media seconds / wall seconds),
CPU seconds, the child's RSS after its imports (baseline), its peak RSS (`ru_maxrss`), the
stage's own share (peak - baseline), and the peak RSS of its subprocesses (ffmpeg), both as
`RUSAGE_CHILDREN` reports it and as sampled from /proc (see `SubprocessPeakSampler`).

Stages: probe; separate (the tiny random HTDemucs on the whole track, and the published
htdemucs architecture with random weights, same compute, on an excerpt: `--htdemucs-excerpt-s`);
then the clip stage's parts one at a time, clip by clip: clip (`cut_music` then `cut_video` with
its small analysis frames, the music from the tiny model's accompaniment), loudness (in place),
prescreen (of the analysis frames, as the clip step does); then the real clip
step as the pipeline runs it (all parts, clips in parallel), with the config's defaults and with
one setting changed at a time (`PIPELINE_VARIANTS`). Totals: probe + clip step, i.e. every stage
but separation, against the 10x real-time target, and separation's peak memory for a 2- vs a
20-minute track (tiny model: memory is what is measured) against the audio buffers it must hold.
`--profile` adds where the time goes, and `cut_video`'s command with other x264 presets, CRFs and
heights: CPU, file size, and SSIM / PSNR against the frames before encoding.

`--real-separation` runs only a comparison instead (`bench/_real_separation.py`): the real HTDemucs
weights (`make weights`) on one real-ish file (`--real-excerpt-s` of Debian pushover-data's castle.ogg with espeak-ng
sentences laid over it; generated music where that package is absent), separated by our
`separate_file` and by Demucs' own CLI (`python -m demucs -n htdemucs --repo DIR`), each in a
fresh process; it prints both wall times, x real time and their ratio (target: ours <= 1.1x).

    .venv/bin/python bench/stages.py [--device auto|cpu|cuda] [--duration-s 300]
        [--htdemucs-excerpt-s 60] [--skip-long] [--skip-htdemucs] [--profile] [--workdir DIR] [--json PATH]
    .venv/bin/python bench/stages.py --real-separation [--real-excerpt-s 60] [--real-repeats 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from _real_separation import print_real_separation, run_real_separation
from _stage_child import CHILD, FPS, HEIGHT, HTDEMUCS_MODEL, MB, TINY_MODEL, WIDTH

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation.htdemucs_onnx import HTDEMUCS_KWARGS  # noqa: E402
from dvmset.storage import ACCOMPANIMENT_FILE, ENERGY_FILE  # noqa: E402
from tests.support.stage_inputs import make_inputs  # noqa: E402

MEMORY_TRACKS_S = (120.0, 1200.0)  # 2 vs 20 minutes
TARGET_RTF = 10.0
# The real clip step (cut, loudness, video, prescreen per clip, clips in parallel): with the
# config's defaults (the target is measured on this one), then one setting changed at a time.
PIPELINE_VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    (DEFAULT_PIPELINE := "clip step (defaults)", {}),
    ("clip step, 1 worker", {"workers": 1}),
    ("clip step, veryfast crf 23 (the earlier default)", {"x264_preset": "veryfast", "x264_params": ""}),
    ("clip step, ultrafast crf 26", {"x264_preset": "ultrafast", "x264_params": "", "crf": 26}),
    ("clip step, 720p", {"max_height": 720}),
)

# ---------------------------------------------------------------- parent side: inputs and runs


def run_child(stage: str, label: str, params: dict[str, Any], work: Path, *, required: bool = True) -> dict[str, Any]:
    """Run `stage` in a fresh interpreter and return its figures, with `label`, `stage` and `rtf`.

    This parent never imports torch or the stages: a child's `ru_maxrss` starts at the peak RSS
    of the process that spawned it (Linux keeps it across exec), so the parent must stay small.
    A failed stage stops the bench when `required`, else gives {"error": ...}.
    """
    result = work / "results" / f"{label.replace(' ', '_')}.json"
    result.parent.mkdir(parents=True, exist_ok=True)
    result.unlink(missing_ok=True)
    print(f"  running {label} ...", flush=True)
    command = [sys.executable, str(CHILD), stage, json.dumps({**params, "result": str(result)})]
    code = subprocess.run(command, check=False).returncode
    figures = json.loads(result.read_text(encoding="utf-8")) if result.exists() else {}
    if code != 0 or "wall_s" not in figures:
        if required:
            raise SystemExit(f"stage {label} failed (exit code {code}); see the traceback above")
        return {"error": figures.get("error", f"the stage failed (exit code {code}); see the traceback above")}
    timed_s = figures.get("timed_s", figures["wall_s"])
    return {**figures, "stage": stage, "label": label, "rtf": figures["media_s"] / timed_s if timed_s else None}


def run_all(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    print(f"preparing inputs in {work} (load average {os.getloadavg()[0]:.2f})", flush=True)
    load_average_start = os.getloadavg()
    tracks_s = () if args.skip_long else MEMORY_TRACKS_S
    paths = make_inputs(work, args.duration_s, args.htdemucs_excerpt_s, tracks_s, (WIDTH, HEIGHT, FPS))
    repo, stems, notes = work / "models", work / "stems", []
    models = run_child("models", "models", {"repo": str(repo)}, work)
    common = {"duration_s": args.duration_s, "work": str(work), "video": str(paths["video"])}
    clip_params = {
        **common,
        "accompaniment": str(stems / "tiny" / ACCOMPANIMENT_FILE),
        "energy": str(stems / "tiny" / ENERGY_FILE),
    }
    device = None if args.device == "auto" else args.device

    def separate(label: str, model: str, source: Path, out: str) -> dict[str, Any]:
        params = {
            "model": model,
            "repo": str(repo),
            "device": device,
            "input": str(source),
            "out_dir": str(stems / out),
        }
        return run_child("separate", label, params, work)

    rows = [run_child("probe", "probe", common, work), separate("separate tiny", TINY_MODEL, paths["video"], "tiny")]
    if not args.skip_htdemucs:
        rows.append(separate("separate htdemucs", HTDEMUCS_MODEL, paths["excerpt"], "htdemucs"))
        if paths["excerpt"] != paths["video"]:
            notes.append(
                f"htdemucs (published architecture, random weights) was timed on the first "
                f"{args.htdemucs_excerpt_s:g} s of the track only"
            )
    rows += [run_child("clip", "clip", clip_params, work), run_child("loudness", "loudness", clip_params, work)]
    pipeline = {**common, "repo": str(repo), "stems": str(stems / "tiny")}
    for label, settings in PIPELINE_VARIANTS:
        rows.append(
            run_child("pipeline", label, {**pipeline, "label": label.replace(" ", "_"), "clip": settings}, work)
        )
    prescreen = run_child("prescreen", "prescreen", clip_params, work, required=False)
    if "error" in prescreen:
        notes.append(f"prescreen NOT RUN: {prescreen['error']}")
    else:
        rows.append(prescreen)
    for track_s in () if args.skip_long else MEMORY_TRACKS_S:
        rows.append(
            separate(f"separate memory {track_s:g} s", TINY_MODEL, paths[f"track_{track_s:g}"], f"m{track_s:g}")
        )
    if not args.skip_long:
        notes.append("the 2- and 20-minute memory runs use the tiny model: memory, not speed, is measured there")
    notes.append("clip, loudness and prescreen use the tiny model's accompaniment and vocals energy curve")
    notes.append("the real-time factor of separation counts separate_file only; model loading is shown apart")
    profile: dict[str, Any] = {}
    if args.profile:  # after the measured runs, so that the profiler does not slow them
        for stage in ("loudness", "prescreen"):
            figures = run_child(
                stage, f"{stage} under cProfile", {**clip_params, "profile": True}, work, required=False
            )
            if "profile" in figures:
                profile[stage] = figures
        profile["cut_video"] = run_child("profile_clip", "cut_video variants", common, work, required=False)
    return {
        "video": f"{args.duration_s:g} s {WIDTH}x{HEIGHT} {FPS} fps H.264/AAC (curation.samples.make_video)",
        "cpus": os.cpu_count(),
        "device": args.device,
        "htdemucs_kwargs": {k: str(v) if isinstance(v, Fraction) else v for k, v in HTDEMUCS_KWARGS.items()},
        "htdemucs_parameters": models["htdemucs_parameters"],
        "htdemucs_file_mb": models["htdemucs_file_mb"],
        "stages": rows,
        "totals": totals(rows, args.duration_s),
        "notes": notes,
        "profile": profile,
        "load_average_start": load_average_start,
    }


def totals(rows: list[dict[str, Any]], duration_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    by_label = {row["label"]: row for row in rows}
    probe = by_label["probe"]
    for label, _settings in PIPELINE_VARIANTS:  # all but separation = probe + the clip step
        rest = [probe, by_label[label]]
        wall_s = sum(row["wall_s"] for row in rest)
        out.setdefault("all_but_separation", []).append(
            {
                "stages": [row["label"] for row in rest],
                "media_s": duration_s,
                "wall_s": wall_s,
                "rtf": duration_s / wall_s,
                "target_rtf": TARGET_RTF,
                "met": duration_s / wall_s >= TARGET_RTF,
                "cpu_s": sum(row["cpu_self_s"] + row["cpu_children_s"] for row in rest),
                "peak_rss_mb": max(row["peak_rss_mb"] for row in rest),
                "target_row": label == DEFAULT_PIPELINE,
                "video_mb_per_clip": by_label[label]["video_mb_per_clip"],
            }
        )
    short, long = (by_label.get(f"separate memory {track_s:g} s") for track_s in MEMORY_TRACKS_S)
    if short and long:
        bytes_per_s = long["sample_rate_hz"] * 2 * 4 * 2  # (decoded input + accompaniment) x stereo x float32
        short_mb, long_mb = (row["media_s"] * bytes_per_s / MB for row in (short, long))
        diff_mb = long["peak_rss_mb"] - short["peak_rss_mb"]
        extra_mb = diff_mb - (long_mb - short_mb)
        flat = extra_mb <= max(0.25 * (long_mb - short_mb), 64.0)  # "little more than the audio buffers"
        out["separation_memory"] = {
            "model": long["model"],
            "short_s": short["media_s"],
            "long_s": long["media_s"],
            "short_peak_mb": short["peak_rss_mb"],
            "long_peak_mb": long["peak_rss_mb"],
            "diff_mb": diff_mb,
            "sample_rate_hz": long["sample_rate_hz"],
            "bytes_per_s": bytes_per_s,
            "short_buffers_mb": short_mb,
            "long_buffers_mb": long_mb,
            "buffer_diff_mb": long_mb - short_mb,
            "extra_mb": extra_mb,
            "flat": flat,
        }
    return out


# ---------------------------------------------------------------- report


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _note(row: dict[str, Any]) -> str:
    if "load_s" in row:
        return f"{row['model']}, {row['device']}, {row['threads']} threads, load {row['load_s']:.1f} s"
    clips = f"{row.get('clips')} clip{'' if row.get('clips') == 1 else 's'}"
    if "summary" in row:
        settings = row["settings"]
        return (
            f"{clips}, {settings['workers']} workers, {settings['max_height']}p "
            f"{settings['x264_preset']} {settings['x264_params'] or ''} crf {settings['crf']}"
        )
    if "cut_video_s" in row:
        return f"{clips}: cut_music {row['cut_music_s']:.1f} s, cut_video {row['cut_video_s']:.1f} s"
    return clips if "clips" in row else ""


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console, cores = Console(width=200, emoji=False, highlight=False), report["cpus"]
    table = Table(title=f"Stage benchmark: {report['video']}; {cores} CPUs; device {report['device']}")
    for column in (
        "stage",
        "media s",
        "wall s",
        "x real time",
        "CPU s py+sub",
        "peak RSS MB",
        "baseline MB",
        "own MB",
        "ffmpeg VmHWM MB",
        "RUSAGE_CHILDREN MB",
        "notes",
    ):
        table.add_column(column, justify="left" if column in ("stage", "notes") else "right")
    for row in report["stages"]:
        table.add_row(
            row["label"],
            f"{row['media_s']:.0f}",
            f"{row['wall_s']:.1f}",
            f"{row['rtf']:.2f}",
            f"{row['cpu_self_s']:.1f}+{row['cpu_children_s']:.1f}",
            _mb(row["peak_rss_mb"]),
            _mb(row["baseline_rss_mb"]),
            _mb(max(row["share_mb"], 0.0)),
            _mb(row["subprocess_peak_mb"]),
            _mb(row["children_maxrss_mb"]),
            _note(row),
        )
    console.print(table)
    console.print(
        "CPU s: user + system seconds of the stage's Python process (after its imports) + of its subprocesses. "
        "peak RSS: ru_maxrss of the stage's process; baseline: its RSS after imports; own = peak - baseline. "
        "ffmpeg VmHWM: the largest "
        "subprocess peak, sampled from /proc every 20 ms. RUSAGE_CHILDREN: what the kernel reports, kept across "
        "exec, so never below the Python process's peak when it spawned ffmpeg: a floor, not ffmpeg's size. "
        f"Every figure is floored likewise at the parent's peak, {report['parent_peak_mb']:,.0f} MB."
    )
    for t in report["totals"].get("all_but_separation", []):
        verdict = f" (target >= {TARGET_RTF:g}x: {'MET' if t['met'] else 'MISSED'})" if t["target_row"] else ""
        console.print(
            f"All stages but separation ({' + '.join(t['stages'])}): {t['media_s']:.0f} s of media in "
            f"{t['wall_s']:.1f} s = {t['rtf']:.2f}x real time{verdict}; {t['cpu_s']:.0f} CPU s, so on {cores} "
            f"idle cores at best {t['media_s'] * cores / t['cpu_s']:.1f}x; largest peak RSS "
            f"{t['peak_rss_mb']:,.0f} MB; {t['video_mb_per_clip']:.1f} MB of video per clip"
        )
    if m := report["totals"].get("separation_memory"):
        console.print(
            f"Separation peak RSS ({m['model']}): {m['short_s']:.0f} s track {m['short_peak_mb']:,.0f} MB, "
            f"{m['long_s']:.0f} s track {m['long_peak_mb']:,.0f} MB, difference {m['diff_mb']:,.0f} MB. Expected "
            f"audio buffers (decoded input + accompaniment, float32 stereo at {m['sample_rate_hz']} Hz = "
            f"{m['bytes_per_s'] / 1e3:,.1f} kB per second of audio): {m['short_buffers_mb']:,.0f} MB vs "
            f"{m['long_buffers_mb']:,.0f} MB, difference {m['buffer_diff_mb']:,.0f} MB. Beyond the buffers: "
            f"{m['extra_mb']:+,.0f} MB ({'flat in track length: MET' if m['flat'] else 'MISSED'})"
        )
    for line in report["notes"]:
        console.print(f"note: {line}")
    profile = report["profile"]
    if cut := profile.get("cut_video", {}).get("variants"):
        table = Table(title=f"cut_video of one {profile['cut_video']['media_s']:.0f} s clip (one run each)")
        for column in (
            "variant",
            "wall s",
            "x real time",
            "ffmpeg CPU s",
            f"x real time if {cores} idle cores",
            "output MB",
            "SSIM",
            "PSNR dB",
        ):
            table.add_column(column, justify="left" if column == "variant" else "right")
        media_s = profile["cut_video"]["media_s"]
        for row in cut:
            ssim, psnr_db = row.get("ssim"), row.get("psnr_db")
            table.add_row(
                row["variant"],
                f"{row['wall_s']:.1f}",
                f"{media_s / row['wall_s']:.1f}",
                f"{row['cpu_s']:.1f}",
                f"{media_s * cores / row['cpu_s']:.1f}",
                f"{row['size_mb']:.1f}" if row["size_mb"] else "-",
                "-" if ssim is None else f"{ssim:.4f}",
                "-" if psnr_db is None else f"{psnr_db:.2f}",
            )
        console.print(table)
        console.print(
            "SSIM, PSNR: the encoded clip against the same frames before encoding (ffmpeg's ssim and psnr "
            "filters), at the clip's size"
        )
        console.print("the stage's command: " + " ".join(profile["cut_video"]["command"]), markup=False)
    for stage in ("loudness", "prescreen"):
        if stage in profile:
            table = Table(title=f"{stage} under cProfile ({profile[stage]['wall_s']:.1f} s wall with the profiler)")
            for column in ("function, by own time", "calls", "own s", "cumulative s"):
                table.add_column(column, justify="left" if column.startswith("function") else "right")
            for row in profile[stage]["profile"]:
                table.add_row(row["function"], str(row["calls"]), f"{row['tottime_s']:.2f}", f"{row['cumtime_s']:.2f}")
            console.print(table)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="separation device: cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--duration-s", type=float, default=300.0, help="length of the generated video (300)")
    parser.add_argument(
        "--htdemucs-excerpt-s",
        type=float,
        default=60.0,
        help="time htdemucs on the first N s of the track only (60; 0: the whole track)",
    )
    parser.add_argument("--skip-long", action="store_true", help="skip the 2- vs 20-minute separation memory runs")
    parser.add_argument("--skip-htdemucs", action="store_true", help="skip timing the htdemucs architecture")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="then profile loudness and prescreen (cProfile) and time cut_video variants",
    )
    parser.add_argument("--workdir", type=Path, help="keep inputs and outputs here, reused (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument(
        "--real-separation",
        action="store_true",
        help="instead: the real HTDemucs weights, our separate_file against `python -m demucs`",
    )
    parser.add_argument("--real-excerpt-s", type=float, default=60.0, help="length of that comparison's input (60)")
    parser.add_argument("--real-repeats", type=int, default=1, help="runs of each side, alternated; the fastest kept")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dvmset-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.real_separation:
        try:
            report = run_real_separation(args, work)
        finally:
            if args.workdir is None:
                shutil.rmtree(work, ignore_errors=True)
        report["load_average_end"] = os.getloadavg()
        print_real_separation(report)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
        return
    try:
        report = run_all(args, work)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    report["bench_wall_s"] = time.perf_counter() - started
    report["parent_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report["load_average_end"] = os.getloadavg()
    print_report(report)
    print(
        f"bench run time: {report['bench_wall_s'] / 60:.1f} min; load average (1, 5, 15 min) at the start "
        f"{', '.join(f'{x:.2f}' for x in report['load_average_start'])}, at the end "
        f"{', '.join(f'{x:.2f}' for x in report['load_average_end'])}, on {report['cpus']} CPUs"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
