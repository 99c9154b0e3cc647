"""Publish benchmark (issue 6): a synthetic catalog of 100,000 decided clips through
`curation.publish.publish`, with the time and peak memory of each of its phases.

In: nothing; it builds (`tests/support/publish_corpus.py`), under `--workdir` (a temporary folder by
default), a SQLite catalog of `--videos` clipped videos with `--clips-per-video` clips each (default
20,000 x 5), spread over `--queries` queries, every clip decided (a share rejected with reasons), plus
what publish reads from the data root: one fingerprint file per video and every clip's music and video file.
Out: a table on stdout (and `--json PATH`): per phase, wall seconds, CPU seconds of this process
(the fairer figure on a shared machine) and peak RSS; then (`--check`, on by default) the time of
`manifests check` (every file's size and SHA-256) on the published manifest: files, GB read,
seconds per GB. A later run with the same `--workdir`
reuses its setup (the catalog restored to its state before publish, the manifests removed).

What is real and what is faked:
- real: the catalog (its own schema and tables; rows inserted in bulk with SQLAlchemy Core,
  since the stages' one-row-at-a-time writes would take far longer than the publish), the label
  events and their settling, the fingerprint files (`dedup.save_fingerprint`, the real format),
  grouping (`dedup_groups.assign_groups`: index, candidate pairs, `compare` of the full
  fingerprints read back for each pair), the split, the manifest
  rows and Parquet files, the dataset card with its histograms, and the catalog updates;
- faked: the content. Fingerprints are made, not measured from media: each video a sequence of
  4 s "scenes" (one random picture hash, with two bits of jitter per sample, and one colour grid
  each; sound band energies steady within a scene), as long as its clips plus a 30 s tail;
  `--duplicate-share` of the videos are copies of another video (two more bits of each hash
  flipped, up to 4 s trimmed off the start), so grouping has matches to find; the bench counts
  how many of them end in their original's group. All clips' music files are hard
  links to a few short FLACs, and their video files hard links to a few real 60 s H.264 test
  patterns (160x90): publish measures each distinct file once (hard links share it), so the
  "build rows" phase holds the per-row bookkeeping, not the cost of measuring 200,000 real files;
  the check reads and hashes every link in full (from the page cache: the hashing speed).

The fake fingerprints cover the whole of each video by default (`--fingerprint-s` shortens
them); the bench prints how many candidate pairs grouping compared. `--grouping-scale` also times
`dedup_groups.candidate_pairs` and `assign_groups` alone on whole-length fingerprints of a few
thousand videos held in memory, to show how grouping grows with the catalog.

Phases are what `publish` does in order (timed by wrapping its own functions, so the bench runs
the code as it is): read videos, settle decisions, select the accepted clips, index fingerprints,
group (near-duplicates, with bridges withheld), split, build the rows (one music-file read per
video), write the manifests and the card, store the groups, store the sides. Peak RSS per phase
comes from Linux's VmHWM, reset at each phase's start (`/proc/self/clear_refs`).

    .venv/bin/python bench/publish.py [--videos 20000] [--clips-per-video 5] [--queries 47]
        [--duplicate-share 0.01] [--reject-share 0.1] [--fingerprint-s 0] [--grouping-scale 500 1000 2000]
        [--workdir DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import curation.publish as publish_module  # noqa: E402
from curation import dedup_groups  # noqa: E402
from dvmset.catalog import Catalog  # noqa: E402
from dvmset.config import Config, PublishConfig  # noqa: E402
from dvmset.storage import CATALOG_FILE, DataRoot  # noqa: E402
from manifests.check import check_manifests  # noqa: E402
from tests.support.publish_corpus import PLANTED_FILE, CorpusSpec, build_catalog, own_fingerprint  # noqa: E402

PRISTINE_FILE = "catalog.before-publish.sqlite"  # the setup's catalog, kept for a rerun with --workdir
GROUPING_SCALE_VIDEOS = (500, 1000, 2000)
MB = 1024 * 1024
PHASES = (  # (name, what publish calls first in it); publish enters them in this order
    ("read videos", "catalog.videos"),
    ("settle decisions", "catalog.decisions"),
    ("accepted clips", "_accepted_clips"),
    ("index fingerprints", "_fingerprints"),
    ("group near-duplicates", "_group_without_bridges"),
    ("split", "split_groups"),
    ("build rows", "_manifest_rows"),
    ("write manifests + card", "_write"),
    ("store groups", "catalog.set_groups"),
    ("store sides", "catalog.publish_splits"),
)


# ------------------------------------------------------------------------------- measuring


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """VmHWM of this process (peak RSS since the last reset), in MB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / MB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


class PhaseClock:
    """Wall time and peak RSS per phase. Phases are entered in `PHASES` order by wrapped calls;
    a call of an earlier phase from inside a later one (e.g. decisions again for the card's
    rejection counts) stays in the later phase."""

    def __init__(self) -> None:
        self.order = [name for name, _target in PHASES]
        self.current: int = -1
        self.running = False
        self.started = 0.0
        self.started_cpu = 0.0
        self.rows: list[dict[str, Any]] = []

    def enter(self, name: str) -> None:
        index = self.order.index(name)
        if index <= self.current:
            return
        self.close()
        reset_peak_rss()
        self.current, self.started, self.running = index, time.perf_counter(), True
        self.started_cpu = time.process_time()

    def close(self) -> None:
        """End the running phase (if any) and record it."""
        if self.running:
            seconds = time.perf_counter() - self.started
            cpu_s = time.process_time() - self.started_cpu
            self.rows.append(
                {"phase": self.order[self.current], "seconds": seconds, "cpu_s": cpu_s, "peak_rss_mb": peak_rss_mb()}
            )
            self.running = False

    def wrap(self, name: str, function: Any) -> Any:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.enter(name)
            return function(*args, **kwargs)

        return timed


def instrument(clock: PhaseClock, catalog: Catalog) -> None:
    """Wrap the functions `publish` calls first in each phase (module functions and the
    catalog's methods, on this catalog object only)."""
    for name, target in PHASES:
        if target.startswith("catalog."):
            method = target.removeprefix("catalog.")
            setattr(catalog, method, clock.wrap(name, getattr(catalog, method)))
        else:
            setattr(publish_module, target, clock.wrap(name, getattr(publish_module, target)))


def count_candidate_pairs(counts: list[int]) -> None:
    """Append to `counts` the number of pairs each later `dedup_groups.candidate_pairs` call
    finds (`assign_groups` calls it; `publish` again when it withholds a video)."""
    find = dedup_groups.candidate_pairs

    @functools.wraps(find)
    def counted(*args: Any, **kwargs: Any) -> set[tuple[str, str]]:
        pairs = find(*args, **kwargs)
        counts.append(len(pairs))
        return pairs

    dedup_groups.candidate_pairs = counted


def planted_found(catalog: Catalog, workdir: Path) -> tuple[int, int]:
    """(copies the setup planted that publish put in their original's group, copies planted)."""
    planted = json.loads((workdir / PLANTED_FILE).read_text())
    group_of = {video.video_id: video.group_id for video in catalog.videos()}
    return sum(1 for copy, original in planted if group_of[copy] == group_of[original] is not None), len(planted)


# ------------------------------------------------------------------------------- the setup


def grouping_scale(counts: list[int], duration_s: float, seed: int) -> list[dict[str, Any]]:
    """Time indexing and `dedup_groups.candidate_pairs`, then `assign_groups` (its own candidate
    pairs again, and their `compare`), alone on `count` whole-length fake fingerprints held in
    memory, for each count: how grouping grows with the catalog."""
    rows = []
    for count in counts:
        prints = {f"v{n:06d}": own_fingerprint(seed, n, duration_s) for n in range(count)}
        started = time.perf_counter()
        index = dedup_groups.FingerprintIndex.of(prints)
        pairs = dedup_groups.candidate_pairs(index)
        index_s = time.perf_counter() - started
        started = time.perf_counter()
        dedup_groups.assign_groups(index, {})
        grouping_s = time.perf_counter() - started
        samples = sum(len(p.frame_hashes) for p in prints.values())
        rows.append(
            {
                "videos": count,
                "samples": samples,
                "candidate_pairs": len(pairs),
                "index_s": index_s,
                "assign_groups_s": grouping_s,
            }
        )
        print(f"{count:>8,}{samples:>12,}{len(pairs):>12,}{index_s:>10.2f}{grouping_s:>12.2f}", flush=True)
    return rows


def reuse_setup(workdir: Path, config: Config) -> bool:
    """Restore the setup a former run left in `workdir` (its catalog as before publish, no
    manifests): True, or False where there is none. The sizes are those of that setup, not the
    arguments'."""
    pristine = workdir / PRISTINE_FILE
    if not pristine.exists() or not (workdir / PLANTED_FILE).exists():
        return False
    for suffix in ("-wal", "-shm"):
        (config.data_root / (CATALOG_FILE + suffix)).unlink(missing_ok=True)
    shutil.copyfile(pristine, config.data_root / CATALOG_FILE)
    shutil.rmtree(DataRoot(config.data_root).manifests_dir, ignore_errors=True)
    return True


# ------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=20_000)
    parser.add_argument("--clips-per-video", type=int, default=5)
    parser.add_argument("--queries", type=int, default=47)
    parser.add_argument("--duplicate-share", type=float, default=0.01)
    parser.add_argument("--reject-share", type=float, default=0.1)
    parser.add_argument(
        "--fingerprint-s",
        type=float,
        default=0.0,
        help="seconds of each video its fake fingerprint covers (0: the whole video)",
    )
    parser.add_argument(
        "--grouping-scale",
        type=int,
        nargs="*",
        default=list(GROUPING_SCALE_VIDEOS),
        help="also time grouping alone on this many whole-length fingerprints in memory",
    )
    parser.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time `manifests check` (sizes and SHA-256s of every file) on the published manifest",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="kept when given (a later run with it reuses its setup); a temporary folder otherwise",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    print(f"load average at start: {os.getloadavg()}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-publish-"))
    try:
        config = Config(data_root=workdir / "data", publish=PublishConfig(seed=args.seed))
        clips = args.videos * args.clips_per_video
        spec = CorpusSpec(
            args.videos,
            args.clips_per_video,
            args.queries,
            args.duplicate_share,
            args.reject_share,
            args.fingerprint_s,
            args.seed,
        )
        if reuse_setup(workdir, config):
            print(f"setup: reused the one in {workdir} (its catalog as it was before any publish)")
        else:
            started = time.perf_counter()
            # in a child process, so that the publishing process does not start with the setup's memory
            setup = multiprocessing.get_context("fork").Process(target=build_catalog, args=(config, spec))
            setup.start()
            setup.join()
            if setup.exitcode != 0:
                raise SystemExit(f"the setup failed (exit code {setup.exitcode})")
            setup_s = time.perf_counter() - started
            shutil.copyfile(config.data_root / CATALOG_FILE, workdir / PRISTINE_FILE)
            print(f"setup: {args.videos:,} videos, {clips:,} clips, fingerprints and music files in {setup_s:.1f} s")
        catalog = Catalog.open(config.resolved_catalog_url)
        clock = PhaseClock()
        instrument(clock, catalog)
        pair_counts: list[int] = []
        count_candidate_pairs(pair_counts)
        rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started, started_cpu = time.perf_counter(), time.process_time()
        result = publish_module.publish(catalog, config, "v0001")
        total_s, total_cpu_s = time.perf_counter() - started, time.process_time() - started_cpu
        clock.close()
        found, planted = planted_found(catalog, workdir)
        catalog.close()
        grouping = {"candidate_pairs": list(pair_counts), "planted_copies": planted, "copies_found": found}
        report(clock, result, total_s, total_cpu_s, rss_before_mb, grouping, args)
        if args.check:
            check_speed(result.manifest_dir, args.json)
        if args.grouping_scale:
            duration_s = spec.duration_s  # the whole video's
            print(f"\ngrouping alone, whole-length ({duration_s:.0f} s) fingerprints:")
            print(f"{'videos':>8}{'samples':>12}{'pairs':>12}{'index s':>10}{'grouping s':>12}")
            scale = grouping_scale(args.grouping_scale, duration_s, args.seed)
            if args.json:
                saved = json.loads(args.json.read_text())
                args.json.write_text(json.dumps({**saved, "grouping_scale": scale}, indent=2))
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"load average at end: {os.getloadavg()}")


def check_speed(manifest_dir: Path, json_path: Path | None) -> dict[str, Any]:
    """Time `check_manifests` (default: every file's size and SHA-256, no decode) on `manifest_dir`:
    files, bytes read, seconds, seconds per GB. The bench's files are hard links to a few files, so
    the reads come from the page cache: the figure is the hashing speed, the ceiling a disk read
    cannot beat."""
    import pyarrow.parquet as pq

    tables = [
        pq.read_table(manifest_dir / f"{side}.parquet", columns=["video_bytes", "music_bytes"])
        for side in ("train", "test")
    ]
    files = sum(2 * table.num_rows for table in tables)
    read_bytes = sum(sum(table[column].to_pylist()) for table in tables for column in table.column_names)
    started, started_cpu = time.perf_counter(), time.process_time()
    checked = check_manifests(manifest_dir)
    seconds, cpu_s = time.perf_counter() - started, time.process_time() - started_cpu
    gb = read_bytes / 1e9
    row = {
        "clips": checked.clips_checked,
        "files": files,
        "gb_read": gb,
        "seconds": seconds,
        "cpu_s": cpu_s,
        "s_per_gb": seconds / gb if gb else None,
        "files_per_s": files / seconds,
        "ok": checked.ok,
        "workers": os.cpu_count(),
    }
    print(
        f"\nmanifests check (sizes + SHA-256, {os.cpu_count()} threads): {checked.clips_checked:,} clips, "
        f"{files:,} files, {gb:.2f} GB read in {seconds:.1f} s ({cpu_s:.1f} CPU s): {row['s_per_gb']:.2f} s per GB, "
        f"{files / seconds:,.0f} files/s; {'ok' if checked.ok else f'{len(checked.problems)} problems'}"
    )
    if json_path:
        saved = json.loads(json_path.read_text())
        json_path.write_text(json.dumps({**saved, "check": row}, indent=2))
    return row


def report(
    clock: PhaseClock,
    result: Any,
    total_s: float,
    total_cpu_s: float,
    rss_before_mb: float,
    grouping: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    print(f"\n{'phase':<26}{'seconds':>10}{'CPU s':>10}{'peak RSS MB':>14}")
    for row in clock.rows:
        print(f"{row['phase']:<26}{row['seconds']:>10.2f}{row['cpu_s']:>10.2f}{row['peak_rss_mb']:>14.0f}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    before = f"(process peak; {rss_before_mb:.0f} MB before publish)"
    print(f"{'publish, total':<26}{total_s:>10.2f}{total_cpu_s:>10.2f}{peak_mb:>14.0f}  {before}")
    clips = {side.value: count for side, count in result.clips.items()}
    print(
        f"\npublished {clips} clips, {result.groups:,} groups, {len(result.merges)} merges, "
        f"{result.rejected_clips:,} rejected; {result.manifest_dir}"
    )
    pairs = " + ".join(f"{n:,}" for n in grouping["candidate_pairs"])
    found, planted = grouping["copies_found"], grouping["planted_copies"]
    print(f"grouping compared {pairs} candidate pairs; {found} of {planted} planted copies in their original's group")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "videos": args.videos,
                    "clips_per_video": args.clips_per_video,
                    "total_s": total_s,
                    "fingerprint_s": args.fingerprint_s,
                    "total_cpu_s": total_cpu_s,
                    "process_peak_rss_mb": peak_mb,
                    "phases": clock.rows,
                    "published_clips": clips,
                    "groups": result.groups,
                    **grouping,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
