"""The split: hypothesis properties over random catalogs, then a few examples."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvmset.errors import SplitError
from manifests.split import Split, SplitConfig, SplitItem, salted_rank, split_groups, summarize_groups

QUERIES = ["city video guide", "food commercial", "opening title sequence", "travel vlog", "wedding film", "zz"]
shares = st.sampled_from([0.05, 0.07, 0.1, 0.2, 0.35, 0.5])
configs = st.builds(SplitConfig, test_share=shares, min_groups_per_query=st.integers(2, 4), seed=st.integers(0, 99))


@st.composite
def catalogs(draw, max_groups: int = 100, first_group: int = 0) -> list[SplitItem]:
    """Items of up to `max_groups` groups; a group may have several items, under several queries."""
    queries = draw(st.lists(st.sampled_from(QUERIES), min_size=1, max_size=5, unique=True))
    group_ids = st.integers(first_group, first_group + max_groups - 1).map(lambda i: f"g{i:04d}")
    rows = st.builds(SplitItem, group_ids, st.sampled_from(queries), st.integers(1, 6))
    size = draw(st.integers(1, 250))  # drawn first, or hypothesis keeps lists short
    return draw(st.lists(rows, min_size=size, max_size=size))


def primary_queries(items: list[SplitItem]) -> dict[str, str]:
    """The test's own reading of the rule: the query with the most clips, ties to the smallest."""
    clips: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item in items:
        clips[item.group_id][item.query] += item.clip_count
    return {g: sorted(per_query.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for g, per_query in clips.items()}


def sides_by_query(items: list[SplitItem], assignments: dict[str, Split]) -> dict[str, list[Split]]:
    sides: dict[str, list[Split]] = defaultdict(list)
    for group_id, query in primary_queries(items).items():
        sides[query].append(assignments[group_id])
    return sides


# --- properties ------------------------------------------------------------------------------


@given(catalogs(), configs)
def test_every_group_gets_exactly_one_side(items, config):
    result = split_groups(items, config)
    assert set(result.assignments) == {item.group_id for item in items}
    assert all(isinstance(side, Split) for side in result.assignments.values())
    # the report adds up to the items, each group counted once
    assert result.report.train_clips + result.report.test_clips == sum(item.clip_count for item in items)
    groups = sum(c.train_groups + c.test_groups for c in result.report.per_query.values())
    assert groups == len(result.assignments)


@given(catalogs(), configs)
def test_every_eligible_query_is_on_both_sides(items, config):
    result = split_groups(items, config)
    for query, sides in sides_by_query(items, result.assignments).items():
        if len(sides) >= config.min_groups_per_query:
            assert set(sides) == {Split.TRAIN, Split.TEST}, query
    assert result.report.unbalanced_queries == ()


@st.composite
def large_queries(draw) -> tuple[list[SplitItem], float]:
    """Single-query groups, every query holding more than `c_max / share` clips."""
    share = draw(shares)
    max_clips = draw(st.integers(1, 6))
    queries = draw(st.lists(st.sampled_from(QUERIES), min_size=1, max_size=4, unique=True))
    items, index = [], 0
    for query in queries:
        min_groups = int(max_clips / share) + 1  # groups of >= 1 clip: C_q > c_max / share
        for clip_count in draw(st.lists(st.integers(1, max_clips), min_size=min_groups, max_size=min_groups + 40)):
            items.append(SplitItem(f"g{index:04d}", query, clip_count))
            index += 1
    return items, share


@settings(max_examples=60)
@given(large_queries(), st.integers(0, 99))
def test_the_test_share_is_within_half_the_largest_group_of_the_target(catalog, seed):
    # Tolerance: the running target leaves at most half a group of error after the last query
    # (module docstring), so |test - share * total| <= c_max / 2; each query within c_max.
    items, share = catalog
    result = split_groups(items, SplitConfig(test_share=share, seed=seed))
    max_clips = max(item.clip_count for item in items)
    total = sum(item.clip_count for item in items)
    assert abs(result.report.test_clips - share * total) <= max_clips / 2
    for query, counts in result.report.per_query.items():
        assert abs(counts.test_clips - share * counts.total_clips) <= max_clips, query
        assert counts.test_groups >= 1 and counts.train_groups >= 1


@given(catalogs(max_groups=60), catalogs(max_groups=60, first_group=30), configs, st.booleans())
def test_adding_items_never_moves_an_old_group(old_items, added_items, config, only_new_groups):
    old_ids = {item.group_id for item in old_items}
    if only_new_groups:
        added_items = [item for item in added_items if item.group_id not in old_ids]
    first = split_groups(old_items, config)
    grown = old_items + added_items
    second = split_groups(grown, config, published=first.assignments)
    assert {g: second.assignments[g] for g in first.assignments} == first.assignments
    for query, sides in sides_by_query(grown, second.assignments).items():
        if len(sides) >= config.min_groups_per_query and query not in second.report.unbalanced_queries:
            assert set(sides) == {Split.TRAIN, Split.TEST}, query
    if only_new_groups:
        assert second.report.unbalanced_queries == ()


@given(catalogs(), configs, st.randoms(use_true_random=False))
def test_the_same_items_in_any_order_give_the_same_split(items, config, rng):
    shuffled = list(items)
    rng.shuffle(shuffled)
    assert split_groups(shuffled, config) == split_groups(items, config)


# --- examples --------------------------------------------------------------------------------


def paper_sized_catalog(seed: int = 0) -> list[SplitItem]:
    """About the paper's DVMSet: 2,043 videos, 3,839 clips (1 to 4 a video), 8 queries."""
    rng = random.Random(seed)
    counts = [1] * 783 + [2] * 817 + [3] * 350 + [4] * 93  # 2,043 videos, 3,839 clips
    return [SplitItem(f"youtube:v{i:05d}", QUERIES[rng.randrange(5)], c) for i, c in enumerate(counts)]


def test_a_paper_sized_catalog_gets_about_seven_percent_in_test():
    result = split_groups(paper_sized_catalog(), SplitConfig(test_share=0.07))
    assert result.report.train_clips + result.report.test_clips == 3839
    assert abs(result.report.test_clips - 0.07 * 3839) <= 2  # c_max / 2 = 2 clips
    assert all(c.test_groups and c.train_groups for c in result.report.per_query.values())


def test_another_seed_gives_another_split():
    items = paper_sized_catalog()
    splits = [split_groups(items, SplitConfig(seed=seed)).assignments for seed in range(10)]
    test_sets = {frozenset(g for g, side in split.items() if side is Split.TEST) for split in splits}
    assert len(test_sets) == 10


def test_a_group_goes_to_test_only_if_it_brings_the_count_strictly_closer_to_the_target():
    first, second, third = sorted("abc", key=lambda g: salted_rank(g, 0))  # the order they are taken in
    items = [SplitItem(first, "q", 1), SplitItem(second, "q", 2), SplitItem(third, "q", 5)]
    result = split_groups(items, SplitConfig(test_share=0.25))  # 2 test clips wanted
    # first: 0 -> 1, closer to 2; second: 1 -> 3, as far, so no; third: 1 -> 6, farther
    assert result.assignments == {first: Split.TEST, second: Split.TRAIN, third: Split.TRAIN}


def test_a_group_found_by_several_queries_counts_for_the_one_with_most_clips():
    items = [SplitItem("a", "food", 1), SplitItem("a", "city", 2)]
    items += [SplitItem("b", "food", 2), SplitItem("b", "city", 2)]
    summary = summarize_groups(items)
    assert (summary["a"].query, summary["a"].clip_count) == ("city", 3)
    assert summary["b"].query == "city"  # a tie goes to the smallest query string
    assert set(split_groups(items).report.per_query) == {"city"}


def test_a_query_of_two_groups_gets_one_on_each_side_and_a_lone_group_stays_in_train():
    items = [SplitItem("a", "small", 5), SplitItem("b", "small", 5), SplitItem("c", "lone", 5)]
    result = split_groups(items, SplitConfig(test_share=0.05))
    assert sorted(result.assignments[g] for g in "ab") == [Split.TEST, Split.TRAIN]
    assert result.assignments["c"] is Split.TRAIN  # 1 group < min_groups_per_query: not forced
    # the smaller group is the one moved to test
    items[0] = SplitItem("a", "small", 9)
    assert split_groups(items, SplitConfig(test_share=0.05)).assignments["b"] is Split.TEST


def test_published_sides_are_kept_even_when_they_leave_a_query_on_one_side():
    items = [SplitItem(g, "q", 3) for g in "abcd"] + [SplitItem("e", "r", 3), SplitItem("f", "r", 3)]
    published = {g: "test" for g in "abcd"} | {"gone": "train"}
    result = split_groups(items, SplitConfig(test_share=0.1), published=published)
    assert all(result.assignments[g] is Split.TEST for g in "abcd")
    assert "gone" not in result.assignments
    assert result.report.unbalanced_queries == ("q",)
    # the running target already holds 12 test clips: query r's new groups both stay in
    # train but one, which step 3 moves to test so that r is on both sides
    assert sorted(result.assignments[g] for g in "ef") == [Split.TEST, Split.TRAIN]


def test_the_salted_rank_depends_on_seed_and_group():
    assert salted_rank("g1", 0) == salted_rank("g1", 0)
    assert len({salted_rank("g1", 0), salted_rank("g1", 1), salted_rank("g2", 0)}) == 3


@pytest.mark.parametrize(
    "make",
    [
        lambda: SplitConfig(test_share=0.0),
        lambda: SplitConfig(test_share=0.6),
        lambda: SplitConfig(min_groups_per_query=1),
        lambda: split_groups([SplitItem("a", "q", 0)]),
        lambda: split_groups([SplitItem("a", "q", 1)], published={"a": "validation"}),
    ],
)
def test_inconsistent_inputs_raise_split_error(make):
    with pytest.raises(SplitError):
        make()
