"""Paper-scale estimate (issue 22): storage, CPU hours, GPU hours and annotator hours for the paper's
2,043 videos and 11,126 clips, and for 10x and 100x, from per-unit figures measured on a small real build.

In: `--videos` real-media sources of `tests/support/real_footage.py` (photographs shipped by installed
packages, panned and zoomed over, under real music from Debian's pushover-data), each `--duration-s`
long at `--height-px` (720: the download cap), and the real HTDemucs v4 weights (`make weights`).
The build runs in this process, stage after stage, through `curation.steps.run_stage` (the code
the CLI and the flows run): download (a local hard link here: no network), probe, separate, clip,
fingerprint; then every clip is accepted by one annotator and published.

Measured, per unit:
- CPU seconds of each stage: this process's (`time.process_time`, all its threads) plus its waited-for
  children's (ffmpeg, `RUSAGE_CHILDREN`). CPU seconds, not wall time: the machine is shared, and wall
  time would count others' work. Model loading (each stage's preflight) is measured apart and left out
  of the per-unit figures (once per worker). `separate_track` (the Demucs network, with the vocals'
  energy and Silero VAD riding along) is timed apart: it is the part a GPU takes over.
- bytes: the apparent sizes under `raw/` (downloads) and `stems/` per source minute, under `clips/`
  per clip; the catalog's row bytes per clip (SQLite `dbstat` payload of every table and index: the
  empty catalog's pages are left out); the manifest's bytes per clip (the Parquet column chunks; card
  and footers are fixed); the model inputs per clip (`features/`: written by `model.cache` with the
  shapes of the paper's models, CLIP ViT-B/32 features and musicgen-medium codes, not computed).

Inputs, not measured here: the GPU's speed (`--gpu-speedup`, default from a published figure, printed
with its source), the time an annotator listens to a clip (`--listen-s`, default the clip length),
the app's time per decision (`--decision-overhead-s`, from `bench/labeling.py`'s figures in
bench/README.md) and the share of clips two annotators review (`ReviewSettings`). The paper's mean
source length follows from its counts: clips per video x clip length, plus half a clip dropped
at the end of each video.

Out: two tables on stdout (per-unit figures; the estimate at 1x, 10x, 100x the paper), `--json PATH`,
and `scale_estimate.png` in `--out`.

    .venv/bin/python bench/scale_estimate.py [--videos 3] [--duration-s 65] [--gpu-speedup 20]
        [--listen-s 60] [--workdir DIR] [--out DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from unittest import mock

import pyarrow.parquet as pq
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation import search, separate, steps
from curation.publish import publish
from dvmset.catalog import Catalog
from dvmset.config import Config, load_config
from dvmset.models import weights_cache_dir
from dvmset.records import ClipStatus
from dvmset.storage import DataRoot
from labeling_ui.session import ReviewSettings
from model.cache import write_cache
from model.features import DEFAULT_CLIP_MODEL_ID, GLOBAL_FPS, RHYTHM_FPS, features_path
from model.tokens import DEFAULT_MUSICGEN_MODEL_ID, codes_path
from tests.support.real_footage import SOURCES, build_footage, footage_available

PAPER_VIDEOS, PAPER_CLIPS = 2_043, 11_126  # the paper, section 4
SCALES = (1, 10, 100)
# htdemucs (v4) on a GPU is "about 20~50 times faster" than on a CPU, where it takes "about 3 times of
# audio length" (a Demucs contributor's measurements, https://github.com/facebookresearch/demucs/issues/426,
# 2022-12-28). The low end, applied to one core's CPU seconds here: a conservative GPU figure.
GPU_SPEEDUP = 20.0
GPU_SPEEDUP_SOURCE = "facebookresearch/demucs#426: htdemucs on a GPU 20-50x faster than on a CPU (low end taken)"
# bench/README.md, labeling.py (issue 17, Build 6): key press -> next clip playable, p50 149 ms
DECISION_OVERHEAD_S = 0.15
# the paper's models: CLIP ViT-B/32 (projection 512, width 768), musicgen-medium (4 codebooks, 50 Hz, int16)
CLIP_PROJECTION, CLIP_WIDTH, CODEBOOKS, CODE_RATE_HZ = 512, 768, 4, 50
GB, HOUR_S = 1e9, 3600.0
STORAGE_PARTS = ("downloads", "stems", "clips", "features", "catalog", "manifests")


@dataclass(frozen=True)
class Measured:
    """Per-unit figures of the small build."""

    videos: int
    clips: int
    source_min: float
    clip_s: float
    cpu_s_per_source_min: dict[str, float]  # stages whose work grows with the source's length
    clip_cpu_s_per_clip: float  # the clip stage: its work grows with the clips
    network_cpu_s_per_source_min: float  # separate_track: what a GPU takes over (part of "separate")
    load_cpu_s: dict[str, float]  # model loading, once per worker: left out of the estimate
    separate_threads: int  # torch CPU threads of separate_track
    bytes_per_source_min: dict[str, float]  # downloads, stems
    bytes_per_clip: dict[str, float]  # clips, features, catalog, manifests
    overlap_share: float


def cpu_s() -> float:
    """CPU seconds of this process (every thread) and of its children that were waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@contextmanager
def cpu_timed(totals: dict[str, float], key: str) -> Iterator[None]:
    start = cpu_s()
    try:
        yield
    finally:
        totals[key] = totals.get(key, 0.0) + cpu_s() - start


def build(work: Path, args: argparse.Namespace) -> tuple[Config, Catalog, dict[str, float], dict[str, float]]:
    """Make the corpus and run every stage over it; (config, catalog, stage CPU s, loading CPU s)."""
    photo_sources = tuple(source for source in SOURCES if source.photos)[: args.videos]
    build_footage(
        work / "corpus", sources=photo_sources, transforms=(), duration_s=args.duration_s, height_px=args.height_px
    )
    config_path = work / "dvmset.toml"
    config_path.write_text(f'data_root = "{work / "data"}"\nmodel_dir = "{args.model_dir}"\n', encoding="utf-8")
    config = load_config(config_path, environ={})
    DataRoot(config.data_root).ensure()
    catalog = Catalog.open(config.resolved_catalog_url)
    catalog.add_candidates(search.scan_folder(work / "corpus", "scale estimate"))
    stage_cpu_s: dict[str, float] = {}
    load_cpu_s: dict[str, float] = {}
    original_separate_track = separate.separate_track

    def timed_separate_track(*args_, **kwargs):
        with cpu_timed(stage_cpu_s, "separate_track"):
            return original_separate_track(*args_, **kwargs)

    with mock.patch.object(separate, "separate_track", timed_separate_track):
        for stage in steps.STAGES:
            print(f"  {stage.name} ...", flush=True)
            videos = stage.pending(catalog, config)
            with cpu_timed(load_cpu_s, stage.name):
                stage.preflight(config)  # loaded once per process: run_stage's own call below finds it loaded
            with cpu_timed(stage_cpu_s, stage.name):
                tally = steps.run_stage(stage, catalog, config, videos)
            print(f"    {tally.line()}", flush=True)
    return config, catalog, stage_cpu_s, load_cpu_s


def write_features(config: Config, clip_ids: list[str]) -> None:
    """Each clip's model inputs as the trainer caches them, with the paper's models' shapes (zeros)."""
    frames_25fps = round(config.clip.clip_s * RHYTHM_FPS)
    seconds = math.ceil(frames_25fps / (RHYTHM_FPS // GLOBAL_FPS))
    data = DataRoot(config.data_root)
    for clip_id in clip_ids:
        visual = {
            "global_embeds_1fps": torch.zeros(seconds, CLIP_PROJECTION),
            "cls_1fps": torch.zeros(seconds, CLIP_WIDTH),
            "rhythm_curve_50hz": torch.zeros(2 * frames_25fps),
        }
        write_cache(features_path(data, clip_id, DEFAULT_CLIP_MODEL_ID), visual, {"model_id": DEFAULT_CLIP_MODEL_ID})
        codes = torch.zeros(CODEBOOKS, round(config.clip.clip_s * CODE_RATE_HZ), dtype=torch.int16)
        write_cache(
            codes_path(data, clip_id, DEFAULT_MUSICGEN_MODEL_ID),
            {"codes": codes},
            {"model_id": DEFAULT_MUSICGEN_MODEL_ID},
        )


def folder_bytes(folder: Path) -> int:
    """Apparent size of every file under `folder` (a hard-linked download counts in full)."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def catalog_row_bytes(catalog_path: Path) -> int:
    """Bytes of the SQLite catalog's rows: the payload of every table and index but the schema's."""
    with sqlite3.connect(catalog_path) as connection:
        (payload,) = connection.execute("SELECT sum(payload) FROM dbstat WHERE name != 'sqlite_schema'").fetchone()
    return int(payload or 0)


def parquet_row_bytes(manifest_dir: Path) -> int:
    """Compressed bytes of the column chunks of every Parquet file in `manifest_dir` (no footers)."""
    total = 0
    for path in manifest_dir.glob("*.parquet"):
        metadata = pq.ParquetFile(path).metadata
        for group in range(metadata.num_row_groups):
            row_group = metadata.row_group(group)
            total += sum(row_group.column(column).total_compressed_size for column in range(row_group.num_columns))
    return total


def measure(work: Path, args: argparse.Namespace) -> Measured:
    config, catalog, stage_cpu_s, load_cpu_s = build(work, args)
    clip_ids = [clip.clip_id for clip in catalog.clips()]
    for clip_id in clip_ids:
        catalog.add_label(clip_id, "bench", ClipStatus.ACCEPTED)
    manifest_dir = publish(catalog, config, "v0001").manifest_dir
    write_features(config, clip_ids)
    videos = [video for video in catalog.videos() if video.probe is not None]
    source_min = sum(video.probe.duration_s for video in videos) / 60.0
    data = DataRoot(config.data_root)
    network_s = stage_cpu_s.pop("separate_track")
    per_min = {stage: seconds / source_min for stage, seconds in stage_cpu_s.items() if stage != "clip"}
    stored = {"downloads": folder_bytes(data.root / "raw"), "stems": folder_bytes(data.root / "stems")}
    return Measured(
        videos=len(videos),
        clips=len(clip_ids),
        source_min=source_min,
        clip_s=config.clip.clip_s,
        cpu_s_per_source_min=per_min,
        clip_cpu_s_per_clip=stage_cpu_s["clip"] / len(clip_ids),
        network_cpu_s_per_source_min=network_s / source_min,
        load_cpu_s=load_cpu_s,
        separate_threads=config.separate.threads,
        bytes_per_source_min={part: size / source_min for part, size in stored.items()},
        bytes_per_clip={
            part: size / len(clip_ids)
            for part, size in {
                "clips": folder_bytes(data.clips_dir),
                "features": folder_bytes(data.root / "features"),
                "catalog": catalog_row_bytes(data.catalog_path),
                "manifests": parquet_row_bytes(manifest_dir),
            }.items()
        },
        overlap_share=ReviewSettings().overlap_share,
    )


def paper_mean_source_s(clip_s: float) -> float:
    """The paper's mean source length: its clips per video, plus half a clip dropped at each video's end."""
    return (PAPER_CLIPS / PAPER_VIDEOS + 0.5) * clip_s


def estimate(
    measured: Measured, scale: int, gpu_speedup: float, listen_s: float, overhead_s: float
) -> dict[str, float]:
    """Storage (GB, by part), CPU hours (all on CPUs; beside a GPU), GPU hours and annotator hours at `scale`."""
    videos, clips = PAPER_VIDEOS * scale, PAPER_CLIPS * scale
    source_min = videos * paper_mean_source_s(measured.clip_s) / 60.0
    storage = {part: source_min * size for part, size in measured.bytes_per_source_min.items()}
    storage |= {part: clips * size for part, size in measured.bytes_per_clip.items()}
    cpu_all_s = source_min * sum(measured.cpu_s_per_source_min.values()) + clips * measured.clip_cpu_s_per_clip
    network_s = source_min * measured.network_cpu_s_per_source_min
    reviews = clips * (1 + measured.overlap_share)
    return {
        "scale": scale,
        "videos": videos,
        "clips": clips,
        "source_hours": source_min / 60.0,
        **{f"{part}_gb": storage[part] / GB for part in STORAGE_PARTS},
        "storage_gb": sum(storage.values()) / GB,
        "cpu_hours_cpu_only": cpu_all_s / HOUR_S,
        "cpu_hours_beside_gpu": (cpu_all_s - network_s) / HOUR_S,
        "gpu_hours": network_s / gpu_speedup / HOUR_S,
        "annotator_hours": reviews * (listen_s + overhead_s) / HOUR_S,
    }


def print_measured(measured: Measured) -> None:
    title = (
        f"Measured on {measured.videos} real videos, {measured.source_min:.1f} source min, {measured.clips} "
        f"clips of {measured.clip_s:.0f} s; CPU s of the process and its waited-for children; "
        f"separate_track on {measured.separate_threads} torch thread(s)"
    )
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("per unit", justify="right")
    for stage, seconds in measured.cpu_s_per_source_min.items():
        table.add_row(f"{stage}: CPU s per source min", f"{seconds:.2f}")
        if stage == "separate":
            network_s = measured.network_cpu_s_per_source_min
            table.add_row("  of which separate_track (the GPU's part)", f"{network_s:.2f}")
    table.add_row("clip: CPU s per clip", f"{measured.clip_cpu_s_per_clip:.2f}")
    for stage, seconds in measured.load_cpu_s.items():
        if seconds >= 0.05:
            table.add_row(f"{stage}: model loading, CPU s once per worker (left out)", f"{seconds:.1f}")
    for part, size in measured.bytes_per_source_min.items():
        table.add_row(f"{part}: MB per source min", f"{size / 1e6:.2f}")
    for part, size in measured.bytes_per_clip.items():
        table.add_row(
            f"{part}: {'MB' if size >= 1e5 else 'kB'} per clip",
            f"{size / 1e6:.2f}" if size >= 1e5 else f"{size / 1e3:.2f}",
        )
    Console(width=160).print(table)


def print_estimates(rows: list[dict[str, float]], args: argparse.Namespace, measured: Measured) -> None:
    table = Table(title="Estimate: the paper's scale (2,043 videos, 11,126 clips) and 10x, 100x")
    for column in (
        "scale",
        "videos",
        "clips",
        "source h",
        "storage GB",
        "CPU h (CPU only)",
        "CPU h (beside GPU)",
        "GPU h",
        "annotator h",
    ):
        table.add_column(column, justify="right")
    for row in rows:
        figures = (
            "source_hours",
            "storage_gb",
            "cpu_hours_cpu_only",
            "cpu_hours_beside_gpu",
            "gpu_hours",
            "annotator_hours",
        )
        counts = (f"{row['scale']}x", f"{row['videos']:,}", f"{row['clips']:,}")
        table.add_row(*counts, *(f"{row[key]:,.0f}" for key in figures))
    Console(width=160).print(table)
    parts = ", ".join(f"{part} {rows[0][f'{part}_gb']:,.2f}" for part in STORAGE_PARTS)
    print(f"storage at 1x by part, GB: {parts}")
    print(
        f"mean source length: {paper_mean_source_s(measured.clip_s) / 60:.2f} min "
        f"({PAPER_CLIPS:,} / {PAPER_VIDEOS:,} clips per video, plus half a {measured.clip_s:.0f} s clip dropped)"
    )
    print(
        f"GPU h: separate_track's CPU s here / {args.gpu_speedup:g} ({GPU_SPEEDUP_SOURCE}); "
        "CPU h beside GPU: every stage but separate_track, on CPU cores"
    )
    share = measured.overlap_share
    print(
        f"annotator h: clips x {1 + share:.2f} (ReviewSettings.overlap_share {share:g}) x ({args.listen_s:g} s "
        f"listening + {args.decision_overhead_s:g} s app per decision, bench/labeling.py p50); "
        "the time to pick a reject reason is not counted"
    )
    print(
        "downloads: the corpus' own x264 encodes (ultrafast, CRF 20, AAC 96k), not a platform's; download CPU "
        "is a local hard link here (network time not estimated); publish: see bench/publish.py"
    )


def plot(rows: list[dict[str, float]], path: Path) -> None:
    """Storage by part and the hours, each a group of bars per scale, on log axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (storage_axis, hours_axis) = plt.subplots(1, 2, figsize=(12, 4.2))
    hours = {
        "cpu_hours_cpu_only": "CPU h, CPU only",
        "cpu_hours_beside_gpu": "CPU h beside GPU",
        "gpu_hours": "GPU h",
        "annotator_hours": "annotator h",
    }
    panels = (
        (storage_axis, {f"{part}_gb": part for part in STORAGE_PARTS}, "GB (log)", "storage by part"),
        (hours_axis, hours, "hours (log)", "hours"),
    )
    width = 0.8 / len(rows)
    for axis, keys, unit, title in panels:
        for index, row in enumerate(rows):
            positions = [x + (index - (len(rows) - 1) / 2) * width for x in range(len(keys))]
            axis.bar(positions, [row[key] for key in keys], width, label=f"{row['scale']}x: {row['clips']:,} clips")
        axis.set_xticks(range(len(keys)), list(keys.values()), fontsize=8)
        axis.set(yscale="log", ylabel=unit, title=title)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--videos",
        type=int,
        default=3,
        choices=range(2, 5),
        help="real-media sources (2 to 4: publish needs both splits)",
    )
    parser.add_argument("--duration-s", type=float, default=65.0, help="each source's length (at most 170)")
    parser.add_argument("--height-px", type=int, default=720, help="the sources' height (720: the download cap)")
    parser.add_argument("--model-dir", type=Path, default=weights_cache_dir() / "htdemucs")
    parser.add_argument(
        "--gpu-speedup",
        type=float,
        default=GPU_SPEEDUP,
        help="how many times faster a GPU runs separate_track than one CPU core here",
    )
    parser.add_argument("--listen-s", type=float, help="an annotator's time on a clip (default: the clip length)")
    parser.add_argument("--decision-overhead-s", type=float, default=DECISION_OVERHEAD_S)
    parser.add_argument("--workdir", type=Path, help="build here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="write scale_estimate.png here (default: the workdir)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not footage_available():
        raise SystemExit("the real footage is missing: gradio, scikit-learn, matplotlib and ffmpeg must be installed")
    args.model_dir = args.model_dir.resolve()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dvmset-bench-scale-"))
    print(f"workdir {work}; load average {os.getloadavg()[0]:.1f}", flush=True)
    measured = measure(work, args)
    args.listen_s = measured.clip_s if args.listen_s is None else args.listen_s
    rows = [estimate(measured, scale, args.gpu_speedup, args.listen_s, args.decision_overhead_s) for scale in SCALES]
    print_measured(measured)
    print_estimates(rows, args, measured)
    out = args.out or work
    out.mkdir(parents=True, exist_ok=True)
    plot(rows, out / "scale_estimate.png")
    if args.json:
        args.json.write_text(json.dumps({"measured": asdict(measured), "estimates": rows}, indent=2), encoding="utf-8")
    print(f"picture: {out / 'scale_estimate.png'}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
