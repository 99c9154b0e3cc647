"""Object-store hand-over overhead (issue 22): the share of each stage's time spent moving files to and from
an object-store data root, against the same stages on a local data root, one run each.

In: `--videos` real-media sources of `tests/support/real_footage.py` (photographs shipped by installed
packages under real music), each `--duration-s` long at `--height-px`, and the real HTDemucs v4 weights
(`make weights`). The stages run in this process through `curation.steps.run_stage` (the code the CLI and
the flows run), in three groups as three machines would run them: fetch (download, probe), separate, clip
(clip, fingerprint).
- `local`: one local data root, as today.
- `store`: `data_root = s3://...` on moto's S3 server on 127.0.0.1 (tests/support/object_store.py), each
  group in a scratch folder of its own that is deleted before the next group starts, so every group
  fetches its inputs from the store and uploads its outputs.

Measured: wall seconds of each group (one run each, in this order: local, then store), and in the store
run the seconds spent inside the store's calls (`ObjectStore.info`, `listing`, `download`, `upload`,
`delete`, `clear_partial_uploads`: the calls that do not call each other), as a share of the group's
time. moto on 127.0.0.1 has no network latency and no bandwidth cap: against a real store add the
transfer time of the bytes printed beside (raw video, stems and clips) at that link's speed.

Out: a table on stdout and, with `--json PATH`, the same figures.

    .venv/bin/python bench/store_handover.py [--videos 2] [--duration-s 65] [--height-px 720] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curation import search, steps  # noqa: E402
from dvmset.catalog import Catalog  # noqa: E402
from dvmset.config import load_config  # noqa: E402
from dvmset.models import weights_cache_dir  # noqa: E402
from dvmset.store import ObjectStore  # noqa: E402
from tests.support.object_store import BUCKET, s3_server  # noqa: E402
from tests.support.real_footage import SOURCES, build_footage, footage_available  # noqa: E402

GROUPS = {"fetch": ("download", "probe"), "separate": ("separate",), "clip": ("clip", "fingerprint")}
STORE_CALLS = ("info", "listing", "download", "upload", "delete", "clear_partial_uploads")  # none calls another


def timed_store_calls(totals: dict[str, float], bytes_moved: dict[str, int]) -> pytest.MonkeyPatch:
    """Wrap the store's calls so that each adds its wall seconds to `totals` (and up/down bytes)."""
    patch = pytest.MonkeyPatch()
    for name in STORE_CALLS:
        original = getattr(ObjectStore, name)

        def timed(self, *args, _original=original, _name=name, **kwargs):
            start = time.perf_counter()
            try:
                return _original(self, *args, **kwargs)
            finally:
                totals["store_s"] += time.perf_counter() - start
                if _name in ("download", "upload"):
                    local = args[1] if _name == "download" else args[0]
                    bytes_moved[_name] += Path(local).stat().st_size if Path(local).exists() else 0

        patch.setattr(ObjectStore, name, timed)
    return patch


def run_groups(config_text: str, work: Path, corpus: Path, scratch_per_group: bool) -> dict[str, dict]:
    """Run the stage groups over the corpus; per group: wall seconds, seconds in the store, bytes moved."""
    config_path = work / "dvmset.toml"
    config_path.write_text(config_text, encoding="utf-8")
    figures: dict[str, dict] = {}
    for group, names in GROUPS.items():
        if scratch_per_group:
            os.environ["DVMSET_STORAGE__SCRATCH_DIR"] = str(work / f"scratch-{group}")
        config = load_config(config_path)
        config.data_root.mkdir(parents=True, exist_ok=True)
        catalog = Catalog.open(config.resolved_catalog_url)
        if group == "fetch":
            catalog.add_candidates(search.scan_folder(corpus, "store hand-over"))
        totals, moved = defaultdict(float), defaultdict(int)
        patch = timed_store_calls(totals, moved)
        start = time.perf_counter()
        try:
            for name in names:
                stage = steps.stage_named(name)
                stage.preflight(config)  # model loading, once per worker: not timed
                start_stage = time.perf_counter()
                tally = steps.run_stage(stage, catalog, config, stage.pending(catalog, config))
                totals["work_s"] += time.perf_counter() - start_stage
                print(f"    {tally.line()}", flush=True)
        finally:
            patch.undo()
        figures[group] = {"stage_s": totals["work_s"], "store_s": totals["store_s"], **dict(moved)}
        print(f"  {group}: {time.perf_counter() - start:.1f} s", flush=True)
        catalog.close()
        if scratch_per_group:
            shutil.rmtree(config.data_root)  # the next machine sees only the store
    return figures


def print_table(local: dict[str, dict], store: dict[str, dict]) -> None:
    print(
        f"\n{'group':<9} {'local s':>8} {'store s':>8} {'in store calls s':>17} {'share':>7} "
        f"{'vs local':>9} {'up MB':>7} {'down MB':>8}"
    )
    for group in GROUPS:
        here, there = local[group], store[group]
        share = there["store_s"] / there["stage_s"] if there["stage_s"] else 0.0
        versus = there["stage_s"] / here["stage_s"] - 1 if here["stage_s"] else 0.0
        print(
            f"{group:<9} {here['stage_s']:>8.1f} {there['stage_s']:>8.1f} {there['store_s']:>17.2f} "
            f"{share:>7.1%} {versus:>+9.1%} {there.get('upload', 0) / 1e6:>7.1f} {there.get('download', 0) / 1e6:>8.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=2, choices=range(1, len(SOURCES) + 1))
    parser.add_argument("--duration-s", type=float, default=65.0)
    parser.add_argument("--height-px", type=int, default=720)
    parser.add_argument("--model-dir", type=Path, default=weights_cache_dir() / "htdemucs")
    parser.add_argument("--workdir", type=Path, help="build here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not footage_available():
        raise SystemExit("the real footage is missing: gradio, scikit-learn, matplotlib and ffmpeg must be installed")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dvmset-bench-store-"))
    print(f"workdir {work}; load average {os.getloadavg()[0]:.1f}", flush=True)
    sources = tuple(source for source in SOURCES if source.photos)[: args.videos]
    build_footage(work / "corpus", sources=sources, transforms=(), duration_s=args.duration_s, height_px=args.height_px)
    common = f'model_dir = "{args.model_dir.resolve()}"\n[separate]\nthreads = 1\n'
    print("local data root", flush=True)
    (work / "local").mkdir()
    local = run_groups(f'data_root = "{work / "local" / "data"}"\n{common}', work / "local", work / "corpus", False)
    print("object-store data root (moto on 127.0.0.1)", flush=True)
    (work / "store").mkdir()
    with s3_server(pytest.MonkeyPatch()) as s3:
        text = (
            f'data_root = "s3://{BUCKET}/bench"\ncatalog_url = "sqlite:///{work / "store" / "catalog.sqlite"}"\n'
            f'{common}[storage]\nendpoint_url = "{s3.endpoint_url}"\n'
        )
        store = run_groups(text, work / "store", work / "corpus", True)
    print_table(local, store)
    print(f"load average {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"local": local, "store": store}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
