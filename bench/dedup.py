"""Crop-proof near-duplicates on real footage: every pair's scores, the two distributions, the margin.

In: the real-footage set of `tests/support/real_footage.py` (stretches of gradio's sample videos
and Ken Burns montages of the photographs that gradio, scikit-learn and matplotlib ship, each with
ten altered copies: crops to 9:16, 1:1 and 4:3, letterbox and pillarbox pads, a mirror, speeds
0.8, 1.1 and 1.25, a zoom, a re-encode; all but the re-encode under other music). Out, on stdout:

- the fingerprint cost per second of video: CPU of ffmpeg's decode, of this process, and of
  `describe_pictures` (the crop-proof descriptors) alone;
- every pair's picture score (`dedup_picture.picture_score`), its speed, the first rule's
  similarity and whether `compare` matches it (`--pairs` prints all, else the closest to the line);
- the distributions of the picture score over pairs from one source and pairs from different
  ones, and the margin between them (lowest matched minus highest unrelated), at the chosen
  `MIN_COSINE` and over a sweep of it; below the score, the descriptor cosines of copies'
  samples to their nearest in the other copy, against unrelated videos' closest samples;
- the grouping (`assign_groups`, through the index): pairs the index proposed, sources split over
  several groups, groups holding several sources.

    .venv/bin/python bench/dedup.py [--duration-s 20] [--height 360] [--workdir DIR] [--pairs]
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation import dedup, dedup_picture  # noqa: E402
from curation.dedup_groups import assign_groups, candidate_pairs  # noqa: E402
from dvmset.tools import video_duration_s  # noqa: E402
from tests.support.real_footage import Footage, build_footage, footage_available, matched_pairs  # noqa: E402

COSINE_SWEEP = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9)


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fingerprint_all(footage: list[Footage]) -> dict[str, dedup.Fingerprint]:
    """Fingerprint every video, printing the CPU seconds per second of video."""
    described_s = 0.0
    describe = dedup.describe_pictures

    def timed(*args):
        nonlocal described_s
        started = time.process_time()
        try:
            return describe(*args)
        finally:
            described_s += time.process_time() - started

    dedup.describe_pictures = timed
    seconds = sum(video_duration_s(item.path) for item in footage)
    own, children, wall = time.process_time(), children_cpu_s(), time.perf_counter()
    prints = {item.name: dedup.fingerprint_video(item.path) for item in footage}
    own, children, wall = time.process_time() - own, children_cpu_s() - children, time.perf_counter() - wall
    dedup.describe_pictures = describe
    print(f"fingerprints: {len(prints)} videos, {seconds:.0f} s of video in {wall:.1f} s wall")
    print(
        f"  CPU s per video s: ffmpeg {children / seconds:.3f}, this process {own / seconds:.3f} "
        f"(describe_pictures {described_s / seconds:.4f})"
    )
    return prints


Pair = tuple[str, str, str, dedup.Match]  # a, b, relation, match


def score_pairs(footage: list[Footage], prints: dict[str, dedup.Fingerprint]) -> list[Pair]:
    """Every pair with its relation: "copy" (one source, speeds within `MIN_SPEED`..`MAX_SPEED` of
    each other), "far copy" (one source, one sped up and one slowed down past that), "unrelated"."""
    in_range = {(a.name, b.name) for a, b in matched_pairs(footage, (dedup_picture.MIN_SPEED, dedup_picture.MAX_SPEED))}
    pairs = []
    for a, b in itertools.combinations(footage, 2):
        relation = "unrelated" if a.source != b.source else "copy" if (a.name, b.name) in in_range else "far copy"
        pairs.append((a.name, b.name, relation, dedup.compare(prints[a.name], prints[b.name])))
    return pairs


def distribution(name: str, scores: list[float]) -> str:
    if not scores:
        return f"{name}: no pairs"
    quantiles = np.percentile(np.asarray(scores, float), [0, 5, 50, 95, 100])
    return (
        f"{name}: {len(scores)} pairs, min {quantiles[0]:.3f}, p5 {quantiles[1]:.3f}, median {quantiles[2]:.3f}, "
        f"p95 {quantiles[3]:.3f}, max {quantiles[4]:.3f}"
    )


def print_scores(pairs: list[Pair], every_pair: bool) -> None:
    print(f"\n{'a':36} {'b':36} {'relation':9} {'picture':>7} {'speed':>6} {'sim':>6}  match")
    if every_pair:
        shown = pairs
    else:
        copies = sorted((p for p in pairs if p[2] != "unrelated"), key=lambda p: p[3].picture or 0.0)
        unrelated = sorted((p for p in pairs if p[2] == "unrelated"), key=lambda p: -(p[3].picture or 0.0))
        shown = copies[:15] + unrelated[:10]
    for a, b, relation, match in shown:
        picture = "-" if match.picture is None else f"{match.picture:.3f}"
        print(
            f"{a:36} {b:36} {relation:9} {picture:>7} {match.picture_speed:6.3f} {match.similarity:6.3f}  "
            f"{'yes' if match.is_match else 'no'}"
        )
    if not every_pair:
        print("(the 15 lowest-scoring copies and the 10 highest-scoring unrelated pairs; --pairs prints all)")


def scores_of(pairs: list[Pair], relation: str) -> list[float]:
    return [match.picture or 0.0 for _a, _b, kind, match in pairs if kind == relation]


def print_distributions(pairs: list[Pair]) -> None:
    copies, far, unrelated = (scores_of(pairs, relation) for relation in ("copy", "far copy", "unrelated"))
    print(f"\npicture score at MIN_COSINE {dedup_picture.MIN_COSINE}, MAX_COLOUR_DIFF {dedup_picture.MAX_COLOUR_DIFF}:")
    for name, scores in (("copies   ", copies), ("far copies", far), ("unrelated", unrelated)):
        print("  " + distribution(name, scores))
    print(
        f"  margin (lowest copy - highest unrelated): {min(copies) - max(unrelated):.3f}; "
        f"PICTURE_MATCH_THRESHOLD {dedup_picture.PICTURE_MATCH_THRESHOLD}"
    )
    wrong = [(a, b) for a, b, relation, m in pairs if m.is_match != (relation == "copy") and relation != "far copy"]
    listed = f": {wrong[:10]}" if wrong else ""
    print(f"  compare() wrong on {len(wrong)} of {len(pairs)} pairs (far copies not counted){listed}")


def nearest_cosines(a: dedup.Fingerprint, b: dedup.Fingerprint) -> np.ndarray:
    """Each of a's samples with detail in the region: its highest descriptor cosine with any sample
    of b, in the region pair and mirror where these are highest in the median (colours aside)."""

    def units(descriptors: np.ndarray) -> np.ndarray:
        values = descriptors.astype(np.float32)
        return values / np.maximum(np.linalg.norm(values, axis=-1, keepdims=True), 1e-9)

    best = np.zeros(1)
    for (region_a, region_b), signs in itertools.product(dedup_picture._REGION_PAIRS, (1, dedup_picture._MIRROR_SIGNS)):
        detailed = a.picture_descriptors[:, region_a][(a.picture_descriptors[:, region_a] != 0).any(axis=1)]
        cosines = units(detailed) @ (units(b.picture_descriptors[:, region_b]) * signs).T
        if cosines.size and np.median(cosines.max(axis=1)) > np.median(best):
            best = cosines.max(axis=1)
    return best


def print_sample_cosines(pairs: list[Pair], prints: dict[str, dedup.Fingerprint]) -> None:
    """How close copies' samples stay, against the closest samples of unrelated videos."""
    copies = np.concatenate([nearest_cosines(prints[a], prints[b]) for a, b, kind, _m in pairs if kind == "copy"])
    unrelated = [nearest_cosines(prints[a], prints[b]).max() for a, b, kind, _m in pairs if kind == "unrelated"]
    low = np.percentile(copies, [0, 1, 5, 50])
    high = np.percentile(unrelated, [50, 95, 100])
    print(
        f"\nsample cosines: copies' samples to their nearest in the other copy: min {low[0]:.3f}, "
        f"p1 {low[1]:.3f}, "
        f"p5 {low[2]:.3f}, median {low[3]:.3f}; unrelated pairs' closest two samples: median {high[0]:.3f}, "
        f"p95 {high[1]:.3f}, max {high[2]:.3f}; MIN_COSINE {dedup_picture.MIN_COSINE}"
    )


def sweep_cosine(pairs: list[Pair], prints: dict[str, dedup.Fingerprint]) -> None:
    """The margin of the picture score (copies against unrelated pairs) as the cosine threshold moves."""
    chosen = dedup_picture.MIN_COSINE
    print("\nMIN_COSINE sweep: lowest copy / highest unrelated / margin")
    for cosine in COSINE_SWEEP:
        dedup_picture.MIN_COSINE = cosine
        scores: dict[str, list[float]] = {"copy": [], "unrelated": []}
        for a, b, relation, _match in pairs:
            if relation in scores:
                score, _speed = dedup_picture.picture_score(
                    (prints[a].picture_descriptors, prints[a].picture_colours),
                    (prints[b].picture_descriptors, prints[b].picture_colours),
                )
                scores[relation].append(score or 0.0)
        low, high = min(scores["copy"]), max(scores["unrelated"])
        print(f"  {cosine:.2f}: {low:.3f} / {high:.3f} / {low - high:+.3f}{'  <- chosen' if cosine == chosen else ''}")
    dedup_picture.MIN_COSINE = chosen


def print_grouping(footage: list[Footage], prints: dict[str, dedup.Fingerprint]) -> None:
    started = time.perf_counter()
    proposed = candidate_pairs(prints)
    group_of = assign_groups(prints, existing={}).group_of
    seconds = time.perf_counter() - started
    same = {tuple(sorted((a.name, b.name))) for a, b in matched_pairs(footage)}
    groups_of_source: dict[str, set[str]] = {}
    sources_of_group: dict[str, set[str]] = {}
    for item in footage:
        groups_of_source.setdefault(item.source, set()).add(group_of[item.name])
        sources_of_group.setdefault(group_of[item.name], set()).add(item.source)
    print(
        f"\ngrouping ({seconds:.2f} s): the index proposed {len(proposed & same)} of {len(same)} pairs of one source "
        f"and {len(proposed - same)} other pairs; not proposed: {sorted(same - proposed)}"
    )
    split = {source: sorted(groups) for source, groups in groups_of_source.items() if len(groups) > 1}
    mixed = {group: sorted(sources) for group, sources in sources_of_group.items() if len(sources) > 1}
    print(f"  sources split over several groups: {split or 'none'}")
    print(f"  groups holding several sources: {mixed or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration-s", type=float, default=20.0, help="each original's length (a.mp4 is 7 s)")
    parser.add_argument("--height", type=int, default=360, help="the originals' height in pixels (16:9)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--pairs", action="store_true", help="print every pair, not only those nearest the line")
    args = parser.parse_args()
    if not footage_available():
        sys.exit("the real footage is not installed (gradio, scikit-learn, matplotlib, ffmpeg): nothing to measure")
    print(f"load average {os.getloadavg()[0]:.1f}")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dvmset-bench-dedup-"))
    started = time.perf_counter()
    footage = build_footage(work / "footage", duration_s=args.duration_s, height_px=args.height)
    print(f"built {len(footage)} videos in {time.perf_counter() - started:.0f} s under {work}")
    prints = fingerprint_all(footage)
    started = time.process_time()
    pairs = score_pairs(footage, prints)
    compared_s = time.process_time() - started
    print(f"compare: {len(pairs)} pairs, {1000 * compared_s / len(pairs):.1f} ms CPU a pair (this process)")
    print_scores(pairs, args.pairs)
    print_distributions(pairs)
    print_sample_cosines(pairs, prints)
    sweep_cosine(pairs, prints)
    print_grouping(footage, prints)
    print(f"\nload average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
