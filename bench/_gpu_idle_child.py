"""The GPU-idle runs of `bench/orchestration.py`, child side: a prep run that separates the corpus once and
times each separation (`child_prep`), and one ingest with a stand-in separation that holds one GPU slot for
that time (`child_gpu_idle`), with or without the stage barrier. Imported only by the child processes the
bench starts (the parent stays free of Prefect). Out: each run's figures as a dict.
"""

from __future__ import annotations

import shutil
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LABEL = "bench corpus"  # the label orchestration.py's corpus is discovered under


def child_prep(config_path: Path, folder: Path) -> dict[str, Any]:
    """Download, probe and separate the corpus once, timing each separation: the stand-in's stems and time."""
    from curation import search, separate, steps
    from dvmset.catalog import Catalog
    from dvmset.config import load_config
    from dvmset.storage import DataRoot

    config = load_config(config_path)
    DataRoot(config.data_root).ensure()
    catalog = Catalog.open(config.resolved_catalog_url)
    catalog.add_candidates(search.scan_folder(folder, LABEL))
    real, separate_s = separate.separate_file, []

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        files = real(*args, **kwargs)
        separate_s.append(time.perf_counter() - start)
        return files

    separate.separate_file = timed
    for stage in steps.STAGES[:3]:  # download, probe, separate
        steps.run_stage(stage, catalog, config, stage.pending(catalog, config))
    return {"separate_s": separate_s}


def _stand_in_separation(
    prepared: Path, separate_s: float, busy: list[tuple[float, float]], slot: AbstractContextManager[Any]
) -> Any:
    """A `separate_file` that copies the prep run's stems and holds the (stand-in) GPU for `separate_s`,
    inside `slot` (a lock, or nothing: the task holds the GPU's Prefect limit around it)."""
    from curation.separate import SeparationFiles
    from dvmset.catalog import Catalog
    from dvmset.config import load_config
    from dvmset.storage import ACCOMPANIMENT_FILE, ENERGY_FILE, DataRoot

    prep_config = load_config(prepared / "dvmset.toml")
    prep_data, prep_catalog = DataRoot(prep_config.data_root), Catalog.open(prep_config.resolved_catalog_url)
    made = {prep_data.stems_dir(v.video_id).name: v for v in prep_catalog.videos() if v.separator_model_id}

    def separate_file(_separator: Any, _in_path: Path, out_dir: Path, *_args: Any, **_kwargs: Any) -> Any:
        video = made[out_dir.name]
        out_dir.mkdir(parents=True, exist_ok=True)
        with slot:
            start = time.time()
            for name in (ACCOMPANIMENT_FILE, ENERGY_FILE):
                shutil.copyfile(prep_data.stems_dir(video.video_id) / name, out_dir / name)
            time.sleep(max(0.0, separate_s - (time.time() - start)))
            busy.append((start, time.time()))
        return SeparationFiles(
            out_dir / ACCOMPANIMENT_FILE,
            out_dir / ENERGY_FILE,
            video.separator_model_id,
            video.separator_stand_in,
            video.separation_models,
        )

    return separate_file


def _epoch_s(moment: datetime) -> float:
    """Seconds since the epoch of a catalog time (SQLite gives them back without their UTC zone)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def child_gpu_idle(
    config_path: Path, folder: Path, workers: int, barrier: bool, prepared: Path, separate_s: float, slot: str
) -> dict[str, Any]:
    """One ingest with the stand-in separation on one GPU slot (`slot`: `lock` or `prefect`): with the stage
    barrier (stage after stage, each over every video, in one flow run) or without (`ingest_flow`)."""
    from prefect import flow

    from curation import search, separate, steps
    from dvmset.catalog import Catalog
    from dvmset.config import load_config
    from dvmset.storage import DataRoot
    from flows import gpu
    from flows.context import catalog_for
    from flows.flows import ingest_flow
    from flows.pipeline import run_pipeline
    from flows.runners import task_runner_for
    from flows.server import prefect_api

    config = load_config(config_path)
    DataRoot(config.data_root).ensure()
    catalog = Catalog.open(config.resolved_catalog_url)
    catalog.add_candidates(search.scan_folder(folder, LABEL))
    busy: list[tuple[float, float]] = []
    if slot == "prefect":  # separation taken to run on cuda:0: its task holds a slot of the GPU's limit
        gpu.stage_device = lambda stage, _config: "cuda:0" if stage.device else None
    held: AbstractContextManager[Any] = threading.Lock() if slot == "lock" else nullcontext()
    separate.separate_file = _stand_in_separation(prepared, separate_s, busy, held)

    @flow(name="ingest-with-stage-barrier")
    def ingest_with_barrier() -> None:
        with task_runner_for("local", None, workers) as task_runner:
            for stage in steps.STAGES:  # as the ingest ran before: preflight, then every video of the stage
                if stage.pending(catalog, config):
                    stage.preflight(config)
                run_pipeline([stage], config, catalog_for(config), task_runner, workers, local=False)

    with prefect_api():
        ingest_with_barrier() if barrier else ingest_flow(config=config, workers=workers)
    events = catalog.work_events()
    separated = {event.video_id for event in events if event.stage == "separate"}
    could_start = min(_epoch_s(e.finished_at) for e in events if e.stage == "probe" and e.video_id in separated)
    started, ended = min(_epoch_s(e.started_at) for e in events), max(_epoch_s(e.finished_at) for e in events)
    busy_s = sum(end - start for start, end in busy)
    gaps_s = [later[0] - earlier[1] for earlier, later in zip(sorted(busy), sorted(busy)[1:], strict=False)]
    return {
        "handover_s": sum(gaps_s) / len(gaps_s) if gaps_s else 0.0,
        "ingest_s": ended - started,
        "gpu_window_s": ended - could_start,
        "gpu_busy_s": busy_s,
        "gpu_idle_share": 1 - busy_s / (ended - could_start),
        "separations": len(busy),
        "clips": len(catalog.clips()),
    }
