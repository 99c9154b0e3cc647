"""The `--real-separation` mode of `bench/stages.py`: the real HTDemucs weights, our `separate_file` (in a
fresh `_stage_child.py` process) against Demucs' own CLI on one file, speech over recorded music
(`tests.support.real_media.speech_over_music`); the wall and CPU times of both, and their ratio.
Module level imports only the standard library, as `bench/stages.py`'s parent must stay small."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _stage_child import CHILD

TARGET_REAL_RATIO = 1.1


def timed_process(command: list[str]) -> dict[str, float]:
    """Run `command` to the end; its wall seconds and its CPU seconds (user + system, with its children).
    Its output (progress bars) is shown only when it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wall_s = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.stdout.write(done.stdout.decode(errors="replace")[-4000:])
        raise SystemExit(f"{' '.join(command[:4])} ... failed (exit code {done.returncode})")
    return {"wall_s": wall_s, "cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime}


def run_real_separation(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Our `separate_file` (in `_stage_child.py`'s separate stage) against `python -m demucs`, both on the
    same file with the real weights, alternated `--real-repeats` times; the fastest of each is kept."""
    from curation.htdemucs_onnx import MODEL_NAME, checkpoint_path, weights_cache_dir
    from tests.support.real_media import speech_over_music

    repo = weights_cache_dir() / MODEL_NAME
    checkpoint = checkpoint_path(repo)
    if checkpoint is None:
        raise SystemExit(f"the real HTDemucs weights are not in {repo}: run `make weights` first")
    print(f"preparing the input in {work} (load average {os.getloadavg()[0]:.2f})", flush=True)
    load_average_start = os.getloadavg()
    source = work / "inputs" / f"real_{args.real_excerpt_s:g}s.flac"
    described = speech_over_music(source, args.real_excerpt_s)
    device = None if args.device == "auto" else args.device  # auto: each side picks cuda if it has one
    ours_runs, demucs_runs = [], []
    params = {
        "model": MODEL_NAME,
        "repo": str(repo),
        "device": device,
        "input": str(source),
        "out_dir": str(work / "stems" / "real"),
        "result": str(work / "real.json"),
    }
    cli = [
        sys.executable,
        "-m",
        "demucs",
        "-n",
        MODEL_NAME,
        "--repo",
        str(repo),
        "--two-stems",
        "vocals",
        "--flac",
        "--int24",
        "-o",
        str(work / "demucs_cli"),
        str(source),
    ] + (["-d", device] if device else [])

    def run_ours() -> None:
        process = timed_process([sys.executable, str(CHILD), "separate", json.dumps(params)])
        ours_runs.append(
            {
                **json.loads(Path(params["result"]).read_text(encoding="utf-8")),
                **{"process_wall_s": process["wall_s"], "process_cpu_s": process["cpu_s"]},
            }
        )

    def run_demucs() -> None:
        demucs_runs.append(timed_process(cli))

    sides = [("ours (separate_file)", run_ours), ("python -m demucs", run_demucs)]
    for repeat in range(args.real_repeats):  # the order alternates, so neither side always runs first
        for label, run in sides if repeat % 2 == 0 else sides[::-1]:
            print(f"  run {repeat + 1} of {args.real_repeats}: {label} ...", flush=True)
            run()
    ours = min(ours_runs, key=lambda run: run["process_wall_s"])
    cli_best = min(demucs_runs, key=lambda run: run["wall_s"])
    cpu_ratio = min(run["process_cpu_s"] for run in ours_runs) / min(run["cpu_s"] for run in demucs_runs)
    return {
        "input": described,
        "media_s": ours["media_s"],
        "device": ours["device"],
        "threads": ours["threads"],
        "checkpoint": str(checkpoint),
        "ours": ours,
        "demucs_cli": cli_best,
        "ours_all_s": [run["process_wall_s"] for run in ours_runs],
        "demucs_all_s": [run["wall_s"] for run in demucs_runs],
        "ratio": ours["process_wall_s"] / cli_best["wall_s"],
        "cpu_ratio": cpu_ratio,
        "cpus": os.cpu_count(),
        "demucs_command": " ".join(cli[2:]),
        "load_average_start": load_average_start,
    }


def print_real_separation(report: dict[str, Any]) -> None:
    media_s, ours, cli = report["media_s"], report["ours"], report["demucs_cli"]
    print(
        f"Real HTDemucs separation of {report['input']} ({media_s:.1f} s), device {report['device']}, "
        f"{report['threads']} torch threads, {report['cpus']} CPUs; fastest of {len(report['ours_all_s'])} run(s):"
    )
    print(
        f"  ours, separate_file in a fresh process: {ours['process_wall_s']:.1f} s wall = "
        f"{media_s / ours['process_wall_s']:.2f}x real time, {ours['process_cpu_s']:.0f} CPU s "
        f"(of it: model load {ours['load_s']:.1f} s, separate_file {ours['timed_s']:.1f} s = "
        f"{media_s / ours['timed_s']:.2f}x real time; imports and start-up the rest)"
    )
    print(
        f"  demucs CLI ({report['demucs_command']}): {cli['wall_s']:.1f} s wall = "
        f"{media_s / cli['wall_s']:.2f}x real time, {cli['cpu_s']:.0f} CPU s"
    )
    verdict = "MET" if report["ratio"] <= TARGET_REAL_RATIO else "MISSED"
    print(
        f"  ratio ours / demucs: {report['ratio']:.3f} in wall time (target <= {TARGET_REAL_RATIO:g}: {verdict}), "
        f"{report['cpu_ratio']:.3f} in CPU time (fewest CPU s of each; steadier on a shared machine)"
    )
    print(
        "  both: one 4-source HTDemucs pass over 7.8 s segments with overlap 0.25 (the CLI adds its one random "
        "shift of up to 0.5 s, we use none), FLAC out; ours writes the accompaniment FLAC and the energy and "
        "speech curves (Silero VAD on the vocals stem), the CLI writes vocals and no_vocals FLACs"
    )
    print(
        f"  all runs: ours {', '.join(f'{s:.1f}' for s in report['ours_all_s'])} s; demucs "
        f"{', '.join(f'{s:.1f}' for s in report['demucs_all_s'])} s; load average at the start "
        f"{', '.join(f'{x:.2f}' for x in report['load_average_start'])}, at the end "
        f"{', '.join(f'{x:.2f}' for x in report['load_average_end'])}"
    )
