"""The crop-proof picture score (`curation.dedup_picture`): made-up pictures that a crop, a pad or a
mirror leaves alike; made-up descriptors for the alignment over time and the colours; the index;
then real footage (tests/support/real_footage.py): each copy joins its original, no two sources join."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from curation import dedup, dedup_picture
from curation.dedup import Fingerprint, compare
from curation.dedup_groups import assign_groups, candidate_pairs
from curation.dedup_picture import (
    BLACK_LUMA,
    MAX_COLOUR_DIFF,
    PICTURE_MATCH_THRESHOLD,
    PICTURE_RATE_HZ,
    content_box,
    describe_pictures,
    picture_hashes,
    picture_score,
)
from tests.support.real_footage import SOURCES, TRANSFORMS, build_footage, footage_available, matched_pairs

REAL_SOURCES = ("safari", "earth", "landmarks")  # a montage of photographs, a video, another montage
REAL_TRANSFORMS = ("crop_9x16", "letterbox_9x16", "mirror", "speed_1.25", "crop_9x16_mirror_speed_1.1")  # re-encoded
UNRELATED_SCORE = 0.2  # unrelated videos score under this (measured on the real set: 0.0)


# --- made-up pictures -----------------------------------------------------------------------------


def moving_picture(rng: np.random.Generator, samples: int = 8, height: int = 144, width: int = 256) -> np.ndarray:
    """`[samples, height, width]` uint8 luma: smooth random detail drifting 1 px a sample."""
    big = cv2.GaussianBlur(rng.uniform(0, 255, (height, width + samples)).astype(np.float32), (0, 0), 4.0)
    big = 40 + 180 * (big - big.min()) / (big.max() - big.min())
    return np.stack([big[:, k : k + width] for k in range(samples)]).astype(np.uint8)


def with_chroma(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """4:2:0 chroma that follows the luma (a colour gradient), for `describe_pictures`."""
    half = luma[:, ::2, ::2].astype(np.int16)
    return luma, np.stack([128 + (half - 128) // 3, 128 - (half - 128) // 4], axis=1).astype(np.uint8)


def test_black_bars_are_cut_off_and_a_dark_picture_is_kept_whole():
    rng = np.random.default_rng(0)
    frame = np.full((4, 144, 256), 16, np.uint8)
    frame[:, 30:114, :] = moving_picture(rng, 4, 84, 256)  # letterboxed: bars of 30 rows
    frame[:, 40:50, :3] = 16  # a dark stretch at the edge inside the picture is no bar
    assert content_box(frame) == (30, 114, 0, 256)
    dark = np.full((4, 144, 256), BLACK_LUMA, np.uint8)
    dark[:, 60:70, 100:110] = BLACK_LUMA - 10
    assert content_box(dark) == (0, 144, 0, 256)  # nothing brighter than black: no bars to tell


def test_a_crop_a_pad_and_a_mirror_of_a_picture_score_one():
    luma = moving_picture(np.random.default_rng(1))
    original = describe_pictures(*with_chroma(luma))
    variants = {
        "crop_9x16": luma[:, :, 88:168],  # the full height, 80 of 256 columns
        "letterbox": np.pad(luma, ((0, 0), (100, 100), (0, 0)), constant_values=16),
        "pillarbox": np.pad(luma[:, :, 40:216], ((0, 0), (0, 0), (40, 40)), constant_values=16),
        "mirror": luma[:, :, ::-1],
    }
    for name, pictures in variants.items():
        described = describe_pictures(*with_chroma(np.ascontiguousarray(pictures)))
        assert picture_score(original, described)[0] == 1.0, name
    mirrored = describe_pictures(*with_chroma(np.ascontiguousarray(luma[:, :, ::-1])))
    same_bits = picture_hashes(mirrored[0]) == picture_hashes(original[0])  # [samples, regions]
    assert same_bits.all()  # a mirror leaves the index's hashes as they are


def test_a_region_without_detail_gives_no_evidence():
    flat = np.full((8, 144, 256), 90, np.uint8)
    descriptors, _colours = describe_pictures(*with_chroma(flat))
    assert not descriptors.any() and not picture_hashes(descriptors).any()
    detailed = describe_pictures(*with_chroma(moving_picture(np.random.default_rng(2))))
    assert picture_score(detailed, describe_pictures(*with_chroma(flat))) == (None, 1.0)


# --- made-up descriptors --------------------------------------------------------------------------


def scenes(rng: np.random.Generator, samples: int, scene_len: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors `[samples, 4, 63]` and colours like a video's: a new random picture every
    `scene_len` samples, drifting a little from sample to sample."""
    count = -(-samples // scene_len)
    base = np.repeat(rng.standard_normal((count, 4, 63)), scene_len, axis=0)[:samples]
    drift = np.cumsum(0.15 * rng.standard_normal((samples, 4, 63)), axis=0)
    values = base + drift
    descriptors = np.round(127 * values / np.linalg.norm(values, axis=2, keepdims=True)).astype(np.int8)
    colours = np.repeat(rng.integers(60, 200, (count, 4, 8)), scene_len, axis=0)[:samples].astype(np.uint8)
    return descriptors, colours


def resampled(video: tuple[np.ndarray, np.ndarray], speed: float, start: int) -> tuple[np.ndarray, np.ndarray]:
    """`video` from sample `start`, played `speed` times as fast (nearest samples)."""
    picks = np.round(start + speed * np.arange(int((len(video[0]) - start) / speed))).astype(int)
    picks = picks[picks < len(video[0])]
    return video[0][picks], video[1][picks]


@pytest.mark.parametrize("speed", [0.8, 1.0, 1.1, 1.25])
def test_an_excerpt_played_faster_or_slower_scores_one_at_its_speed(speed):
    video = scenes(np.random.default_rng(3), 160)  # 80 s
    excerpt = resampled(video, speed, start=30)
    score, found = picture_score(video, excerpt)
    assert score == 1.0 and found == pytest.approx(speed, rel=0.03)
    assert picture_score(excerpt, video) == (1.0, pytest.approx(1 / found))


def test_past_the_speed_range_other_pictures_or_other_colours_do_not_match():
    rng = np.random.default_rng(4)
    video = scenes(rng, 120)
    assert picture_score(video, resampled(video, 2.0, start=0))[0] < PICTURE_MATCH_THRESHOLD
    assert picture_score(video, scenes(rng, 120))[0] == 0.0
    recoloured = video[0], np.clip(video[1].astype(int) + int(MAX_COLOUR_DIFF) + 1, 0, 255).astype(np.uint8)
    assert picture_score(video, recoloured)[0] == 0.0
    slightly = video[0], (video[1] + int(MAX_COLOUR_DIFF) - 2).astype(np.uint8)
    assert picture_score(video, slightly)[0] == 1.0
    shorter = round(dedup_picture.MIN_INFORMATIVE_S * PICTURE_RATE_HZ) - 1
    too_short = video[0][:shorter], video[1][:shorter]
    assert picture_score(video, too_short) == (None, 1.0)


def made_up(rng: np.random.Generator, pictures: tuple[np.ndarray, np.ndarray]) -> Fingerprint:
    """A fingerprint with `pictures`, and frame hashes and sound of its own (as a crop under other music has)."""
    frames = 2 * len(pictures[0])
    hashes = rng.integers(1, 2**63, frames // 8 + 1, dtype=np.int64).astype(np.uint64).repeat(8)[:frames]
    bands = rng.integers(-100, 0, (10 * len(pictures[0]), dedup.AUDIO_BANDS), dtype=np.int8)
    return Fingerprint(hashes, rng.integers(0, 256, (frames, 32), dtype=np.uint8), bands, *pictures)


def test_the_index_finds_crops_among_many_videos_by_their_picture_hashes_alone():
    rng = np.random.default_rng(5)
    originals = {f"v{i:03d}": scenes(rng, 120) for i in range(200)}  # 60 s each
    prints = {name: made_up(rng, pictures) for name, pictures in originals.items()}
    for name in ("v000", "v100"):  # a copy: mirrored, from its 5th second, 1.1 times as fast
        descriptors, colours = resampled(originals[name], 1.1, start=10)
        mirrored = descriptors * dedup_picture._MIRROR_SIGNS, colours[:, :, dedup_picture._MIRROR_COLOURS]
        prints[f"{name}c"] = made_up(rng, mirrored)
    pairs = candidate_pairs(prints)
    assert {("v000", "v000c"), ("v100", "v100c")} <= pairs and len(pairs) <= 4  # of 20,301
    match = compare(prints["v000"], prints["v000c"])
    assert match.similarity < 0.2 and match.picture == 1.0 and match.is_match
    group_of = assign_groups(prints, existing={}).group_of
    assert group_of["v000c"] == "v000" and group_of["v100c"] == "v100" and len(set(group_of.values())) == 200


# --- real footage ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    if not footage_available():
        pytest.skip("the real footage needs gradio's, scikit-learn's and matplotlib's sample media, and ffmpeg")
    sources = tuple(source for source in SOURCES if source.name in REAL_SOURCES)
    transforms = tuple(transform for transform in TRANSFORMS if transform.name in REAL_TRANSFORMS)
    made = build_footage(
        tmp_path_factory.mktemp("footage"), sources=sources, transforms=transforms, duration_s=5.0, height_px=180
    )
    return made, {item.name: dedup.fingerprint_video(item.path) for item in made}


@pytest.mark.slow
def test_every_crop_pad_mirror_and_speed_copy_matches_and_no_unrelated_pair_does(footage):
    made, prints = footage
    copies = {(a.name, b.name) for a, b in matched_pairs(made)}
    scores = {}
    for a, b in itertools.combinations(made, 2):
        match = compare(prints[a.name], prints[b.name])
        scores[a.name, b.name] = match.picture
        assert match.is_match == ((a.name, b.name) in copies), (a.name, b.name, match)
    lowest_copy = min(scores[pair] for pair in copies)
    highest_unrelated = max(score for pair, score in scores.items() if pair not in copies)
    assert lowest_copy >= PICTURE_MATCH_THRESHOLD + 0.3 and highest_unrelated < UNRELATED_SCORE


@pytest.mark.slow
def test_the_copies_of_each_source_make_one_group(footage):
    made, prints = footage
    group_of = assign_groups(prints, existing={}).group_of
    groups = {source: {group_of[item.name] for item in made if item.source == source} for source in REAL_SOURCES}
    assert all(len(ids) == 1 for ids in groups.values()), groups
    assert len(set.union(*groups.values())) == len(REAL_SOURCES)
