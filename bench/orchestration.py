"""Orchestration benchmark (issue 4): the Prefect build flow against a plain loop over the stages.

In: nothing; it generates a small local corpus (`--videos` music videos of `--duration-s` s,
320x240) and a tiny random-weight Demucs (44.1 kHz) in Demucs' own repo format. Out: a table on
stdout and, with `--json PATH`, the same figures as JSON.

Each run starts from an empty catalog and data root, in a fresh process:
- `plain loop`: discover the folder, then `curation.steps.run_stage` for each stage of `STAGES`, on
  each video, one after the other (what the per-stage commands do);
- `build flow`: `flows.flows.build_flow` with `--workers 1` (one video at a time, as the loop),
  timed in parts: imports, the temporary Prefect server's start, the flow run, the server's stop;
- `build flow, N workers`: the same with the default thread count, for what a user gets;
- `dvmset build`: the command end to end (`python -m dvmset build --workers 1`), once.

Runs of each kind are interleaved and the fastest is kept: on a shared machine the load of other
programs only ever slows a run down.

The overhead is the flow run's time over the loop's work time, minus one; the target is under
10 %. It is given in wall time and in CPU time (user + system of the process and its ffmpeg
children; then also with the temporary server's): on a busy machine only the CPU figure holds
still. Torch runs on one thread in every run (`OMP_NUM_THREADS=1`). Process start-up, imports
and the temporary server's start are shown apart: they do not grow with the corpus.

The GPU-idle share, with and without the stage barrier (issue 22): no GPU is needed. A prep run
separates the corpus once with the tiny model and measures the separation time per video (or
`--separate-s` gives it, e.g. htdemucs' time on a real GPU). Then the ingest runs from an empty
catalog, with `--workers` threads and a stand-in separation that copies the prep run's stems and sleeps
that long while it holds the one GPU slot:
- `stage barrier`: one stage after the other, each over every video (how the ingest ran before);
- `no barrier`: `ingest_flow`, each video moving on as soon as its stage is done (`flows.pipeline`);
each with two kinds of slot: `lock`, a lock of the process (the barrier's effect alone), and `Prefect
limit`, the GPU's Prefect global concurrency limit of one slot that a separation on `cuda:0` holds in
production (`flows.gpu`; a task refused a slot sleeps for the server's Retry-After before it asks again).
The GPU-idle share is 1 - (time the slot was held / wall time from the first probed video, when a
separation could first start, to the end of the ingest); the handover is the mean time from the end of
one separation to the start of the next.

    .venv/bin/python bench/orchestration.py [--videos 4] [--duration-s 20] [--repeats 2] [--separate-s S]
        [--gpu-idle-only] [--workdir DIR] [--json PATH]
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
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from _gpu_idle_child import LABEL  # beside this file (the script's folder is on sys.path); stdlib only at its top

MODEL = "tiny-bench"
TARGET_OVERHEAD = 0.10
DEFAULT_WORKERS = 4  # flows.runners.DEFAULT_WORKERS (not imported: this parent stays free of Prefect)
GPU_SLOTS = {"lock": "lock", "prefect": "Prefect limit"}  # the GPU-idle runs' kinds of slot: name -> label

# ---------------------------------------------------------------- child side: one run, timed in parts


def _cpu_s() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its children that have ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _child_loop(config_path: Path, folder: Path) -> dict[str, Any]:
    start = time.perf_counter()
    from curation import search, steps
    from dvmset.catalog import Catalog
    from dvmset.config import load_config
    from dvmset.storage import DataRoot

    imported, cpu_before = time.perf_counter(), _cpu_s()
    config = load_config(config_path)
    DataRoot(config.data_root).ensure()
    catalog = Catalog.open(config.resolved_catalog_url)
    catalog.add_candidates(search.scan_folder(folder, LABEL))
    for stage in steps.STAGES:
        steps.run_stage(stage, catalog, config, stage.pending(catalog, config))
    done, cpu_after = time.perf_counter(), _cpu_s()
    return {
        "import_s": imported - start,
        "work_s": done - imported,
        "clips": len(catalog.clips()),
        "work_cpu_s": sum(cpu_after) - sum(cpu_before),
    }


def _child_flow(config_path: Path, folder: Path, workers: int) -> dict[str, Any]:
    start = time.perf_counter()
    from dvmset.catalog import Catalog
    from dvmset.config import load_config
    from flows.flows import build_flow
    from flows.server import prefect_api

    imported = time.perf_counter()
    with ExitStack() as stack:
        stack.enter_context(prefect_api())
        served, cpu_before = time.perf_counter(), _cpu_s()
        build_flow(config=config_path, folder=str(folder), label=LABEL, workers=workers)
        done, cpu_after = time.perf_counter(), _cpu_s()
    stopped, cpu_stopped = time.perf_counter(), _cpu_s()
    clips = len(Catalog.open(load_config(config_path).resolved_catalog_url).clips())
    return {
        "import_s": imported - start,
        "server_start_s": served - imported,
        "work_s": done - served,
        "server_stop_s": stopped - done,
        "clips": clips,
        "work_cpu_s": sum(cpu_after) - sum(cpu_before),
        "server_cpu_s": cpu_stopped[1] - cpu_after[1],
    }  # the server process, reaped when it stops


# ---------------------------------------------------------------- parent side


def child_environ(work: Path) -> dict[str, str]:
    """Quiet, offline, always Prefect's temporary server in a scratch home, and torch on one thread
    (OpenMP threads that spin while they wait make CPU time swing with the machine's load)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DVMSET_"))}
    return environ | {
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_CLI_PROMPT": "false",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }


def make_inputs(work: Path, videos: int, duration_s: float) -> tuple[Path, Path]:
    """The corpus folder and the tiny model's folder; reused when already there."""
    from curation.samples import VideoSpec, make_video
    from curation.separate import save_tiny_model

    corpus, models = work / "corpus", work / "models"
    corpus.mkdir(parents=True, exist_ok=True)
    for index in range(videos):
        path = corpus / f"video_{index:02d}_{duration_s:g}s.mp4"
        if not path.exists():
            make_video(path, VideoSpec(duration_s, bpm=90 + 10 * index, cut_every_s=2.0 + index % 3))
    if not (models / f"{MODEL}.yaml").exists():
        save_tiny_model(models, MODEL, sample_rate_hz=44100)
    return corpus, models


def write_config(folder: Path, models: Path) -> Path:
    """A fresh run folder: its config (data under `folder/data`, 10 s clips, the tiny model)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    path = folder / "dvmset.toml"
    path.write_text(
        f'data_root = "data"\nmodel_dir = "{models}"\n[download]\nmin_duration_s = 1.0\n[probe]\nmin_duration_s = 5.0\n'
        f'[separate]\nmodel = "{MODEL}"\n[clip]\nclip_s = 10.0\n',
        encoding="utf-8",
    )
    return path


def run_child(
    mode: str, work: Path, label: str, config_path: Path, corpus: Path, workers: int, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One timed run in a fresh process; its figures with the process's wall time."""
    result = config_path.parent / "result.json"
    args = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--config",
        str(config_path),
        "--folder",
        str(corpus),
        "--workers",
        str(workers),
        "--json",
        str(result),
        *extra,
    ]
    return _timed(label, args, work) | json.loads(result.read_text(encoding="utf-8"))


def run_command(work: Path, config_path: Path, corpus: Path) -> dict[str, Any]:
    args = [
        sys.executable,
        "-m",
        "dvmset",
        "build",
        "--config",
        str(config_path),
        "--folder",
        str(corpus),
        "--label",
        LABEL,
        "--workers",
        "1",
    ]
    return _timed("dvmset build (command)", args, work)


def _timed(label: str, args: list[str], work: Path) -> dict[str, Any]:
    print(f"  running {label} ...", flush=True)
    start = time.perf_counter()
    done = subprocess.run(args, env=child_environ(work), capture_output=True, text=True, check=False)
    wall_s = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{label} failed (exit code {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return {"label": label, "process_s": wall_s}


def run_all(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    load_average_start = os.getloadavg()
    print(f"preparing {args.videos} videos of {args.duration_s:g} s in {work}", flush=True)
    corpus, models = make_inputs(work, args.videos, args.duration_s)
    if args.gpu_idle_only:
        return {"load_average_start": load_average_start, "gpu_idle": run_gpu_idle(args, work, models, corpus)}
    runs: dict[str, list[dict[str, Any]]] = {}
    plan = [
        ("plain loop", "loop", 1),
        ("build flow", "flow", 1),
        (f"build flow, {args.workers} workers", "flow", args.workers),
    ]
    for _repeat in range(args.repeats):
        for label, mode, workers in plan:
            config_path = write_config(work / "runs" / mode, models)
            runs.setdefault(label, []).append(run_child(mode, work, label, config_path, corpus, workers))
    runs["dvmset build (command)"] = [run_command(work, write_config(work / "runs" / "cli", models), corpus)]
    best = {label: min(rows, key=lambda row: row["process_s"]) for label, rows in runs.items()}
    gpu_idle = run_gpu_idle(args, work, models, corpus)
    loop_s, flow_s = best["plain loop"]["work_s"], best["build flow"]["work_s"]
    loop_cpu_s, flow_cpu_s = best["plain loop"]["work_cpu_s"], best["build flow"]["work_cpu_s"]
    server_cpu_s = best["build flow"]["server_cpu_s"]
    return {
        "corpus": f"{args.videos} generated videos of {args.duration_s:g} s (320x240, 25 fps, music), 10 s clips",
        "cpus": os.cpu_count(),
        "repeats": args.repeats,
        "runs": best,
        "loop_work_s": loop_s,
        "flow_work_s": flow_s,
        "ratio": flow_s / loop_s,
        "overhead": flow_s / loop_s - 1,
        "target_overhead": TARGET_OVERHEAD,
        "met": flow_s / loop_s - 1 < TARGET_OVERHEAD,
        "load_average_start": load_average_start,
        "loop_work_cpu_s": loop_cpu_s,
        "flow_work_cpu_s": flow_cpu_s,
        "server_cpu_s": server_cpu_s,
        "cpu_overhead": flow_cpu_s / loop_cpu_s - 1,
        "cpu_overhead_with_server": (flow_cpu_s + server_cpu_s) / loop_cpu_s - 1,
        "gpu_idle": gpu_idle,
    }


def run_gpu_idle(args: argparse.Namespace, work: Path, models: Path, corpus: Path) -> dict[str, Any]:
    """The prep run (stems, separation time), then ingests with and without the stage barrier, interleaved,
    the one with the shortest ingest of each kind kept."""
    prep_config = write_config(work / "runs" / "prep", models)
    prep = run_child("prep", work, "prep: separation time", prep_config, corpus, 1)
    measured_s = sum(prep["separate_s"]) / len(prep["separate_s"])
    separate_s = args.separate_s if args.separate_s is not None else measured_s
    extra = ("--prepared", str(prep_config.parent), "--separate-s", str(separate_s))
    runs: dict[str, list[dict[str, Any]]] = {}
    for _repeat in range(args.repeats):
        for slot, slot_label in GPU_SLOTS.items():
            for mode, label in (("barrier", "stage barrier"), ("pipeline", "no barrier")):
                config_path = write_config(work / "runs" / mode, models)
                run = run_child(
                    mode, work, f"{label}, {slot_label}", config_path, corpus, args.workers, (*extra, "--slot", slot)
                )
                runs.setdefault(f"{label}, {slot_label}", []).append(run)
    best = {label: min(rows, key=lambda row: row["ingest_s"]) for label, rows in runs.items()}
    return {
        "separate_s": separate_s,
        "measured_separate_s": measured_s,
        "separate_s_given": args.separate_s is not None,
        "workers": args.workers,
        "repeats": args.repeats,
        "runs": best,
        "idle_share": {
            slot: {mode: best[f"{mode}, {label}"]["gpu_idle_share"] for mode in ("stage barrier", "no barrier")}
            for slot, label in GPU_SLOTS.items()
        },
    }


def _s(row: dict[str, Any], key: str) -> str:
    return f"{row[key]:.1f}" if key in row else "-"


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console(width=160, emoji=False, highlight=False)
    if "runs" in report:
        print_overhead(console, report)
    print_gpu_idle(console, report["gpu_idle"])
    console.print(
        f"load average (1, 5, 15 min) at the start {', '.join(f'{x:.2f}' for x in report['load_average_start'])}, "
        f"at the end {', '.join(f'{x:.2f}' for x in report['load_average_end'])}"
    )


def print_overhead(console: Any, report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(
        title=f"Orchestration benchmark: {report['corpus']}; {report['cpus']} CPUs; best of {report['repeats']}"
    )
    for column in (
        "run",
        "process s",
        "imports s",
        "server start s",
        "work s",
        "server stop s",
        "work CPU s",
        "server CPU s",
        "clips",
    ):
        table.add_column(column, justify="left" if column == "run" else "right")
    for label, row in report["runs"].items():
        table.add_row(
            label,
            _s(row, "process_s"),
            _s(row, "import_s"),
            _s(row, "server_start_s"),
            _s(row, "work_s"),
            _s(row, "server_stop_s"),
            _s(row, "work_cpu_s"),
            _s(row, "server_cpu_s"),
            str(row.get("clips", "-")),
        )
    console.print(table)
    console.print(
        f"work: plain loop {report['loop_work_s']:.1f} s, build flow (1 worker) {report['flow_work_s']:.1f} s; "
        f"ratio {report['ratio']:.3f}, orchestration overhead {100 * report['overhead']:+.1f} % "
        f"(target < {100 * report['target_overhead']:.0f} %: {'MET' if report['met'] else 'MISSED'})"
    )
    console.print(
        f"CPU seconds of the work (the process and its ffmpeg children): plain loop {report['loop_work_cpu_s']:.1f}, "
        f"build flow {report['flow_work_cpu_s']:.1f} ({100 * report['cpu_overhead']:+.1f} %), and with the temporary "
        f"server's {report['server_cpu_s']:.1f} ({100 * report['cpu_overhead_with_server']:+.1f} %). CPU time hardly "
        "depends on what else the machine runs; wall time does: with a load average above the CPU count, read "
        "the CPU figures"
    )
    command, loop = report["runs"]["dvmset build (command)"], report["runs"]["plain loop"]
    console.print(
        f"end to end, process start to exit: `dvmset build` {command['process_s']:.1f} s against the loop's "
        f"{loop['process_s']:.1f} s ({100 * (command['process_s'] / loop['process_s'] - 1):+.1f} %); the difference "
        "is mostly fixed: Prefect's imports and its temporary server, the same for any corpus size"
    )


def print_gpu_idle(console: Any, figures: dict[str, Any]) -> None:
    from rich.table import Table

    source = "given" if figures["separate_s_given"] else "measured: the tiny model on the CPU"
    table = Table(
        title=f"GPU idle with and without the stage barrier: a stand-in separation of {figures['separate_s']:.2f} s "
        f"a video ({source}) on one GPU slot, {figures['workers']} workers; best of {figures['repeats']}"
    )
    columns = ("ingest", "ingest s", "GPU window s", "GPU busy s", "GPU idle", "handover s", "separations", "clips")
    for column in columns:
        table.add_column(column, justify="left" if column == "ingest" else "right")
    for label, row in figures["runs"].items():
        table.add_row(
            label,
            f"{row['ingest_s']:.1f}",
            f"{row['gpu_window_s']:.1f}",
            f"{row['gpu_busy_s']:.1f}",
            f"{100 * row['gpu_idle_share']:.0f} %",
            f"{row['handover_s']:.2f}",
            str(row["separations"]),
            str(row["clips"]),
        )
    console.print(table)
    for slot, shares in figures["idle_share"].items():
        console.print(
            f"GPU idle share, {GPU_SLOTS[slot]} (1 - slot held / time from the first probed video to the ingest's "
            f"end): stage barrier {100 * shares['stage barrier']:.0f} %, no barrier {100 * shares['no barrier']:.0f} %"
        )


# ---------------------------------------------------------------- main


def _child(args: argparse.Namespace) -> dict[str, Any]:
    if args.child == "loop":
        return _child_loop(args.config, args.folder)
    if args.child == "flow":
        return _child_flow(args.config, args.folder, args.workers)
    from _gpu_idle_child import child_gpu_idle, child_prep

    if args.child == "prep":
        return child_prep(args.config, args.folder)
    barrier = args.child == "barrier"
    return child_gpu_idle(args.config, args.folder, args.workers, barrier, args.prepared, args.separate_s, args.slot)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=4, help="videos in the generated corpus (4)")
    parser.add_argument("--duration-s", type=float, default=20.0, help="length of each video (20)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="threads of the parallel flow run (4)")
    parser.add_argument(
        "--repeats", type=int, default=2, help="runs of each kind, interleaved; the fastest is shown (2)"
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep inputs and runs here; the corpus is reused (default: a temp dir)"
    )
    parser.add_argument(
        "--separate-s",
        type=float,
        help="seconds the stand-in separation holds the GPU per video (default: measured with the tiny model)",
    )
    parser.add_argument(
        "--gpu-idle-only", action="store_true", help="only the GPU-idle runs (with and without the stage barrier)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--child", choices=("loop", "flow", "prep", "barrier", "pipeline"), help=argparse.SUPPRESS)
    parser.add_argument("--prepared", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--slot", choices=tuple(GPU_SLOTS), help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # one timed run, in the process the parent started
        figures = _child(args)
        args.json.write_text(json.dumps(figures), encoding="utf-8")
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dvmset-bench-orchestration-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        report = run_all(args, work)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    report["bench_wall_s"] = time.perf_counter() - started
    report["load_average_end"] = os.getloadavg()
    print_report(report)
    print(f"bench run time: {report['bench_wall_s'] / 60:.1f} min")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
