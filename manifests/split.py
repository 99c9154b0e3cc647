"""The train/test split: by near-duplicate group, stratified by query, stable as the catalog grows.

Pure: no I/O. In: `SplitItem(group_id, query, clip_count)` records (any number per group, e.g.
one per video), a `SplitConfig` (test share in clips, the fewest groups that make a query
eligible, seed), and the assignments already published (group id -> `Split`). Out: a
`SplitResult`: one `Split` per group of the items, and a `SplitReport` (counts per query).

A group counts for stratification under one query, its *primary query*: the query with the most
of its clips (ties: the smallest string). Queries are taken in sorted order, with a running
target `test_share * (clips of this and earlier queries)`; for each query:

1. published groups keep their side, whatever the items say now;
2. each new group, in the order of a salted hash of `(seed, group id)`, goes to test if that
   brings the running test-clip count strictly closer to the running target, else to train;
3. an eligible query (`min_groups_per_query` groups or more) left without a test group gets its
   smallest new group (in clips) moved to test; one left without a train group gets its largest
   new test group moved to train (ties: first in hash order). A query whose groups were all
   published on one side cannot be mended; it is listed in `SplitReport.unbalanced_queries`.

Guarantees (tested with hypothesis in tests/manifests/test_split.py):

- every group of the items gets exactly one side, hence so does every video of a group;
- published assignments never change, so adding items never moves an old group;
- the same items (in any order), config and published assignments give the same split;
  another seed gives another one;
- every eligible query has both sides when nothing was published, or when what was published
  came from this function and only new groups were added since;
- with nothing published, and every query's expected test clips `test_share * C_q` above the
  largest group's clip count `c_max`, no query needs step 3, the test clips are within
  `c_max / 2` of `test_share * total` (the running target carries each query's rounding error
  into the next) and each query's within `c_max` of `test_share * C_q`. E.g. 3,839 clips in
  groups of at most 10 clips, at 7 % and with over 143 clips per query: 268 +- 5 test clips
  (+- 0.13 percentage point). Smaller queries may need step 3, which can add up to `c_max` test
  clips per query that later queries do not always make up; `SplitReport` gives the outcome.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from dvmset.errors import SplitError


class Split(StrEnum):
    """A side of the split, stored as its string value."""

    TRAIN = "train"
    TEST = "test"


@dataclass(frozen=True)
class SplitItem:
    """`clip_count` clips of group `group_id`, found by `query`."""

    group_id: str
    query: str
    clip_count: int


@dataclass(frozen=True)
class SplitConfig:
    """`test_share`: the target share of clips in test (the paper: 268 / 3,839, about 7 %)."""

    test_share: float = 0.07
    min_groups_per_query: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.test_share <= 0.5:
            raise SplitError(f"test_share must be in (0, 0.5], not {self.test_share}")
        if self.min_groups_per_query < 2:
            raise SplitError(f"min_groups_per_query must be 2 or more, not {self.min_groups_per_query}")


@dataclass(frozen=True)
class QueryCounts:
    """Groups and clips of one primary query on each side."""

    train_groups: int = 0
    test_groups: int = 0
    train_clips: int = 0
    test_clips: int = 0

    @property
    def total_clips(self) -> int:
        return self.train_clips + self.test_clips


@dataclass(frozen=True)
class SplitReport:
    """Counts per primary query, and the eligible queries that could not be given both sides."""

    per_query: dict[str, QueryCounts]
    unbalanced_queries: tuple[str, ...] = ()  # eligible, yet on one side only (all published there)

    @property
    def train_clips(self) -> int:
        return sum(counts.train_clips for counts in self.per_query.values())

    @property
    def test_clips(self) -> int:
        return sum(counts.test_clips for counts in self.per_query.values())

    @property
    def test_share(self) -> float:
        total = self.train_clips + self.test_clips
        return self.test_clips / total if total else 0.0


@dataclass(frozen=True)
class SplitResult:
    """Group id -> side, for every group of the items; and the report."""

    assignments: dict[str, Split]
    report: SplitReport


@dataclass(frozen=True)
class GroupSummary:
    """A group as the split sees it: its primary query and its clip count."""

    query: str
    clip_count: int


def summarize_groups(items: Iterable[SplitItem]) -> dict[str, GroupSummary]:
    """Group id -> its primary query (most clips; ties: smallest string) and total clip count."""
    clips: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item in items:
        if not isinstance(item.clip_count, int) or item.clip_count < 1:
            raise SplitError(f"group {item.group_id!r}: clip_count must be a positive int, not {item.clip_count!r}")
        clips[item.group_id][item.query] += item.clip_count
    return {
        group_id: GroupSummary(min(per_query, key=lambda q: (-per_query[q], q)), sum(per_query.values()))
        for group_id, per_query in clips.items()
    }


def salted_rank(group_id: str, seed: int) -> int:
    """A stable pseudo-random 64-bit rank of a group for a seed (BLAKE2b of `seed:group_id`)."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{group_id}".encode(), digest_size=8).digest(), "big")


def split_groups(
    items: Iterable[SplitItem], config: SplitConfig = SplitConfig(), published: Mapping[str, str] | None = None
) -> SplitResult:
    """Assign every group of `items` to train or test (see the module docstring). Published
    assignments of groups absent from `items` are left out of the answer."""
    groups = summarize_groups(items)
    fixed = _checked_published(published or {})
    by_query: dict[str, list[str]] = defaultdict(list)
    for group_id in sorted(groups):
        by_query[groups[group_id].query].append(group_id)
    assignments: dict[str, Split] = {}
    unbalanced: list[str] = []
    clips_so_far = test_clips_so_far = 0
    for query in sorted(by_query):
        members = by_query[query]
        new = sorted((g for g in members if g not in fixed), key=lambda g: (salted_rank(g, config.seed), g))
        clips_so_far += sum(groups[g].clip_count for g in members)
        test_clips_so_far += sum(groups[g].clip_count for g in members if fixed.get(g) is Split.TEST)
        side = {g: fixed[g] for g in members if g in fixed}
        deficit = config.test_share * clips_so_far - test_clips_so_far
        for group_id in new:
            clip_count = groups[group_id].clip_count
            if abs(deficit - clip_count) < abs(deficit):
                side[group_id], deficit = Split.TEST, deficit - clip_count
            else:
                side[group_id] = Split.TRAIN
        if len(members) >= config.min_groups_per_query and not _mend(side, new, groups):
            unbalanced.append(query)
        test_clips_so_far += sum(groups[g].clip_count for g in new if side[g] is Split.TEST)
        assignments.update(side)
    return SplitResult(assignments, _report(groups, assignments, tuple(unbalanced)))


def _checked_published(published: Mapping[str, str]) -> dict[str, Split]:
    """`published` with its values as `Split`s; `SplitError` on any other value."""
    try:
        return {group_id: Split(side) for group_id, side in published.items()}
    except ValueError as error:
        raise SplitError(f"a published assignment is neither train nor test: {error}") from error


def _mend(side: dict[str, Split], new: list[str], groups: Mapping[str, GroupSummary]) -> bool:
    """Give a query both sides by moving one of its `new` groups (in hash order); False if impossible."""
    sides = set(side.values())
    if sides == {Split.TRAIN}:
        movable = [g for g in new if side[g] is Split.TRAIN]
        if movable:
            side[min(movable, key=lambda g: groups[g].clip_count)] = Split.TEST
    elif sides == {Split.TEST}:
        movable = [g for g in new if side[g] is Split.TEST]
        if movable:
            side[max(movable, key=lambda g: groups[g].clip_count)] = Split.TRAIN
    return set(side.values()) == {Split.TRAIN, Split.TEST}


def _report(
    groups: Mapping[str, GroupSummary], assignments: Mapping[str, Split], unbalanced: tuple[str, ...]
) -> SplitReport:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for group_id, side in assignments.items():
        counts[groups[group_id].query][f"{side.value}_groups"] += 1
        counts[groups[group_id].query][f"{side.value}_clips"] += groups[group_id].clip_count
    return SplitReport({query: QueryCounts(**fields) for query, fields in sorted(counts.items())}, unbalanced)
