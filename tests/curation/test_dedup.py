"""Near-duplicate detection: copies of generated videos (ffmpeg) match, different ones do not;
then the pieces without media: hashes, band energies, the match rule, the index, the grouping.
(The crop-proof picture score: tests/curation/test_dedup_picture.py.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from curation import dedup, dedup_groups
from curation.dedup import Fingerprint, compare, fingerprint_video
from curation.dedup_groups import FingerprintIndex, GroupMerge, assign_groups, candidate_pairs, index_files
from curation.samples import VideoSpec, make_video
from dvmset.errors import DedupError, ReasonCode
from dvmset.tools import require_tool

DURATION_S = 15.0
SAME_SCORE = 0.9  # copies score at least this (measured: 0.94 to 1.0)
DIFFERENT_SCORE = 0.3  # different videos score under this (measured: 0.0 to 0.13)
X264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")


def ffmpeg_to(path: Path, *args: str | float | Path) -> Path:
    """Run ffmpeg with `args` and `path` as its output; return `path`."""
    subprocess.run([require_tool("ffmpeg"), "-nostdin", "-v", "error", "-y", *map(str, args), str(path)], check=True)
    return path


# --- generated media (made once) -------------------------------------------------------------


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """The original and its copies, one under other music, and two videos that differ from it."""
    folder = tmp_path_factory.mktemp("dedup")
    original = make_video(folder / "original.mp4", VideoSpec(DURATION_S))  # 320x240, 120 bpm, a hue cut every 4 s
    other_spec = VideoSpec(DURATION_S, bpm=100, cut_every_s=6.0, pattern_seed=1)  # another picture, other music
    other_music = make_video(folder / "other_music.mp4", other_spec)
    paths = {"original": original, "other_music": other_music}
    paths["reencoded"] = ffmpeg_to(
        folder / "reencoded.mp4",
        "-i",
        original,
        "-vf",
        "scale=240:180",
        "-af",
        "volume=-3dB",
        *X264,
        "-crf",
        "35",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
    )
    for trim_s in (1.5, 1.375):  # 1.375 s: half a hash step and half an audio row off the original's
        paths[f"trimmed_{trim_s}"] = ffmpeg_to(
            folder / f"trimmed_{trim_s}.mp4",
            "-ss",
            trim_s,
            "-i",
            original,
            "-vf",
            "scale=240:180",
            "-af",
            "volume=4dB",
            *X264,
            "-crf",
            "30",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
        )
    paths["silent_copy"] = ffmpeg_to(folder / "silent_copy.mp4", "-i", original, "-an", *X264, "-crf", "30")
    paths["same_picture_other_music"] = ffmpeg_to(
        folder / "same_picture_other_music.mp4",
        "-i",
        original,
        "-i",
        other_music,
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-c",
        "copy",
    )
    paths["same_music_other_picture"] = ffmpeg_to(
        folder / "same_music_other_picture.mp4",
        "-f",
        "lavfi",
        "-i",
        "mandelbrot=size=320x240:rate=25",
        "-i",
        original,
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-t",
        DURATION_S,
        *X264,
        "-c:a",
        "copy",
    )
    return paths


@pytest.fixture(scope="module")
def prints(media) -> dict[str, Fingerprint]:
    return {name: fingerprint_video(path) for name, path in media.items()}


@pytest.mark.parametrize(("copy", "offset_s"), [("reencoded", 0.0), ("trimmed_1.5", -1.5), ("trimmed_1.375", -1.375)])
def test_a_reencoded_resized_or_trimmed_copy_matches_the_original(prints, copy, offset_s):
    match = compare(prints["original"], prints[copy])
    assert match.is_match
    assert match.visual >= SAME_SCORE and match.audio >= SAME_SCORE
    assert match.similarity == min(match.visual, match.audio) == dedup.similarity(prints["original"], prints[copy])
    # the copy's content comes offset_s later (earlier: it was trimmed), to a hash step (0.25 s)
    assert abs(match.visual_offset_s - offset_s) <= 0.125 + 1e-9


def test_a_copy_without_sound_matches_on_its_picture(prints):
    match = compare(prints["original"], prints["silent_copy"])
    assert prints["silent_copy"].band_db.shape == (0, dedup.AUDIO_BANDS)
    assert match.audio is None and match.is_match and match.similarity == match.visual


@pytest.mark.parametrize(
    ("other", "differs_in"),
    [
        ("other_music", "audio"),  # another sample video: another picture, 100 bpm, a hue cut every 6 s
        ("same_music_other_picture", "visual"),
    ],
)
def test_different_videos_do_not_match(prints, other, differs_in):
    match = compare(prints["original"], prints[other])
    assert not match.is_match
    assert getattr(match, differs_in) < DIFFERENT_SCORE
    assert match.similarity < DIFFERENT_SCORE and match.picture < DIFFERENT_SCORE


def test_the_same_picture_under_other_music_matches_on_the_picture_score(prints):
    match = compare(prints["original"], prints["same_picture_other_music"])
    assert match.audio < DIFFERENT_SCORE and match.similarity < dedup.MATCH_THRESHOLD  # not by the first rule
    assert match.picture == 1.0 and match.picture_speed == 1.0 and match.is_match


def test_copies_share_a_group_and_keep_it_as_the_catalog_grows(prints):
    first_batch = {name: prints[name] for name in ("original", "other_music", "same_music_other_picture")}
    first = assign_groups(first_batch, existing={})
    assert first.group_of == {name: name for name in first_batch}  # three singletons, named after their video
    second = assign_groups(prints, existing=first.group_of)
    copies = ("reencoded", "trimmed_1.5", "trimmed_1.375", "silent_copy", "same_picture_other_music")
    assert {name: second.group_of[name] for name in copies} == dict.fromkeys(copies, "original")
    assert {name: second.group_of[name] for name in first_batch} == first.group_of
    assert second.merges == ()


def test_the_audio_can_come_from_another_file(media, prints, tmp_path):
    music = ffmpeg_to(tmp_path / "accompaniment.flac", "-i", media["original"], "-vn", "-c:a", "flac")
    separate = fingerprint_video(media["silent_copy"], audio_path=music)
    assert compare(prints["original"], separate).audio >= SAME_SCORE


def test_a_fingerprint_survives_a_save_and_load(prints, tmp_path):
    path = dedup.save_fingerprint(prints["original"], tmp_path / "fp" / "fingerprint.npz")
    assert [p.name for p in path.parent.iterdir()] == ["fingerprint.npz"]  # no temporary file left
    assert path.stat().st_size < 12_000  # 15 s of video (10.1 kB: 8.7 of them the crop-proof descriptors)
    loaded = dedup.load_fingerprint(path)
    names = ("frame_hashes", "frame_chroma", "band_db", "picture_descriptors", "picture_colours")
    for name in names:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(prints["original"], name))
    assert [getattr(loaded, name).dtype for name in names] == [np.uint64, np.uint8, np.int8, np.int8, np.uint8]
    assert loaded.picture_descriptors.shape == (29, 4, 63)  # 2 samples a second, 1 s each


def test_an_old_or_broken_fingerprint_file_is_refused(prints, tmp_path, monkeypatch):
    path = dedup.save_fingerprint(prints["original"], tmp_path / "fingerprint.npz")
    monkeypatch.setattr(dedup, "FINGERPRINT_VERSION", dedup.FINGERPRINT_VERSION + 1)
    with pytest.raises(DedupError, match="version"):
        dedup.load_fingerprint(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DedupError) as caught:
        dedup.load_fingerprint(path)
    assert caught.value.reason is ReasonCode.INTERNAL_ERROR


def test_files_without_a_picture_are_refused_with_a_reason(tmp_path):
    notes = tmp_path / "notes.mp4"
    notes.write_text("These are meeting notes, not a video.\n" * 20, encoding="utf-8")
    with pytest.raises(DedupError) as caught:
        fingerprint_video(notes)
    assert caught.value.reason is ReasonCode.DECODE_ERROR and "notes.mp4" in caught.value.message
    audio_only = make_video(tmp_path / "audio_only.m4a", VideoSpec(3.0, video=False))
    with pytest.raises(DedupError) as caught:
        fingerprint_video(audio_only)
    assert caught.value.reason is ReasonCode.NO_VIDEO_STREAM


# --- hashes and band energies, without media -------------------------------------------------


def test_a_flat_picture_hashes_to_zero_and_others_do_not():
    rng = np.random.default_rng(0)
    flat, noise, ramp = np.full((32, 32), 40.0), rng.uniform(0, 255, (32, 32)), np.tile(np.arange(32.0) * 8, (32, 1))
    pictures = np.stack([flat, noise, ramp])
    hashes = dedup.phash_frames(pictures)
    assert hashes[0] == 0
    assert np.bitwise_count(hashes[1]) == 32  # no ties: half the coefficients above their median
    assert hashes[2] != 0  # a horizontal ramp: most coefficients tie at 0, the few above it set
    np.testing.assert_array_equal(dedup.phash_frames(pictures * 0.5 + 20), hashes)  # brightness, contrast drop out


def test_the_colour_of_each_grid_cell_is_its_mean():
    planes = np.zeros((1, 2, 32, 32))
    planes[0, 0, :8, :8] = 200.0  # U of the top-left cell
    planes[0, 1, 24:, 28:] = 100.0  # V of half the bottom-right cell
    colour = dedup.grid_chroma(planes)
    assert colour.shape == (1, 32) and colour.dtype == np.uint8
    assert colour[0, 0] == 200 and colour[0, 31] == 50
    assert colour.sum() == 250


def test_box_average_means_each_window_of_frames():
    frames = np.arange(10, dtype=np.float64)[:, None, None] * np.ones((1, 2, 2))
    averaged = dedup.box_average(frames, box=4, hop=2)
    assert averaged[:, 0, 0].tolist() == [1.5, 3.5, 5.5, 7.5]  # windows 0-3, 2-5, 4-7, 6-9
    assert dedup.box_average(frames[:3], box=4, hop=2)[:, 0, 0].tolist() == [1.0]  # shorter than a box: one


def test_band_energies_ignore_loudness_and_floor_silence():
    rng = np.random.default_rng(1)
    t = np.arange(5 * dedup.AUDIO_SAMPLE_RATE_HZ) / dedup.AUDIO_SAMPLE_RATE_HZ
    music = np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t)) + 0.05 * rng.standard_normal(len(t))
    loud, quiet = dedup.band_energies_db(music), dedup.band_energies_db(0.1 * music)
    assert loud.shape == (1 + (len(t) - dedup.AUDIO_WINDOW) // dedup.AUDIO_HOP, dedup.AUDIO_BANDS)
    assert np.abs(loud.astype(int) - quiet).max() <= 1  # one 0.5 dB step of rounding
    assert loud.max() == 0 and loud.min() >= dedup.FLOOR_DB / dedup.DB_STEP
    assert (dedup.band_energies_db(np.zeros(9000)) == dedup.FLOOR_DB / dedup.DB_STEP).all()


# --- the match rule and the index, on made-up fingerprints -----------------------------------


def walk_hashes(rng: np.random.Generator, count: int, scene_len: int = 20) -> np.ndarray:
    """`[count]` hashes like a video's: a new picture every `scene_len`, one bit changing per step."""
    bits = np.zeros((count, 64), bool)
    for i in range(count):
        if i % scene_len == 0:
            current = np.zeros(64, bool)
            current[rng.choice(64, 32, replace=False)] = True
        else:
            current = current.copy()
            current[rng.integers(64)] ^= True
        bits[i] = current
    return np.bitwise_or.reduce(bits.astype(np.uint64) << np.arange(64, dtype=np.uint64), axis=1)


def flip_bits(rng: np.random.Generator, hashes: np.ndarray, count: int) -> np.ndarray:
    """Each hash with `count` random bits flipped (a re-encode's noise)."""
    positions = [rng.choice(64, count, replace=False).astype(np.uint64) for _ in hashes]
    return hashes ^ np.array([np.bitwise_or.reduce(np.uint64(1) << bits) for bits in positions], np.uint64)


def random_bands(rng: np.random.Generator, rows: int) -> np.ndarray:
    """`[rows, 16]` int8 band energies that move smoothly, like music's."""
    walk = np.cumsum(rng.standard_normal((rows, dedup.AUDIO_BANDS)), axis=0)
    return np.clip(np.round(walk - walk.max()), -120, 0).astype(np.int8)


def silent(rows: int = 0) -> np.ndarray:
    return np.full((rows, dedup.AUDIO_BANDS), dedup.FLOOR_DB / dedup.DB_STEP, np.int8)


def fp(hashes: np.ndarray, bands: np.ndarray | None = None, colour: int = 128) -> Fingerprint:
    """A made-up fingerprint: every sample the same grey-ish colour; no sound unless `bands`."""
    return Fingerprint(hashes, np.full((len(hashes), 32), colour, np.uint8), silent() if bands is None else bands)


def test_the_offset_is_found_and_silent_tracks_or_flat_pictures_give_no_evidence():
    rng = np.random.default_rng(2)
    hashes, bands = walk_hashes(rng, 120), random_bands(rng, 600)
    shifted = compare(fp(hashes, bands), fp(hashes[6:], bands[30:]))
    assert (shifted.visual, shifted.visual_offset_s) == (1.0, -1.5)
    assert shifted.audio > 0.99 and shifted.audio_offset_s == -1.5  # centred over other spans: not exactly 1
    no_sound = compare(fp(hashes, silent(600)), fp(hashes, bands))
    assert (no_sound.audio, no_sound.similarity) == (None, 1.0)
    flat = np.zeros(120, np.uint64)
    by_sound = compare(fp(flat, bands), fp(flat, bands))
    assert (by_sound.visual, by_sound.similarity) == (None, pytest.approx(1.0))
    assert compare(fp(flat), fp(flat)).similarity == 0.0
    # one flat, one not: the picture disagrees
    assert compare(fp(flat, bands), fp(hashes, bands)).visual == 0.0


def test_a_few_seconds_in_common_at_the_ends_are_no_match():
    rng = np.random.default_rng(9)
    x = walk_hashes(rng, 40)  # 10 s
    tail_then_other = fp(np.r_[x[-8:], walk_hashes(rng, 32)])  # starts with x's last 2 s
    assert compare(fp(x), tail_then_other).visual < 0.5  # an overlap under half the shorter is not looked at


def test_the_same_shapes_in_other_colours_are_another_picture():
    hashes = walk_hashes(np.random.default_rng(7), 40)
    grey = fp(hashes)
    assert compare(grey, fp(hashes, colour=128 + int(dedup.MAX_CHROMA_DIFF))).visual == 1.0
    assert compare(grey, fp(hashes, colour=129 + int(dedup.MAX_CHROMA_DIFF))).visual == 0.0


def test_the_index_finds_every_copy_among_many_videos_without_comparing_all_pairs():
    rng = np.random.default_rng(3)
    prints = {f"v{i:03d}": fp(walk_hashes(rng, 240)) for i in range(300)}
    for i in range(0, 300, 30):  # ten copies: 6 of 64 bits changed in every hash, 2 s trimmed
        prints[f"v{i:03d}c"] = fp(flip_bits(rng, prints[f"v{i:03d}"].frame_hashes[8:], 6))
    prints["black_a"] = prints["black_b"] = fp(np.zeros(100, np.uint64), random_bands(rng, 500))
    pairs = candidate_pairs(prints)
    planted = {(f"v{i:03d}", f"v{i:03d}c") for i in range(0, 300, 30)} | {("black_a", "black_b")}
    assert planted <= pairs
    assert len(pairs) < 2 * len(planted)  # of 45,000 pairs
    assert all(compare(prints[a], prints[b]).is_match for a, b in planted)


def test_a_key_that_many_videos_hold_finds_no_pairs():
    rng = np.random.default_rng(8)
    title_card = walk_hashes(rng, 20)  # the same opening in 210 videos, which differ after it
    videos = dedup_groups.MAX_BUCKET_VIDEOS + 10
    prints = {f"v{i:03d}": fp(np.r_[title_card, walk_hashes(rng, 100)]) for i in range(videos)}
    assert candidate_pairs(prints) == set()


def test_a_new_video_bridging_two_groups_merges_them_into_the_smaller_id():
    rng = np.random.default_rng(4)
    x, y = walk_hashes(rng, 40), walk_hashes(rng, 40)  # 10 s each
    prints = {"a": fp(x), "b": fp(y), "n": fp(np.r_[x, y])}
    existing = {"a": "group-a", "a2": "group-a", "b": "group-b", "b2": "group-b"}  # a2, b2: no fingerprint
    grouping = assign_groups(prints, existing)
    assert grouping.group_of == dict.fromkeys(["a", "a2", "b", "b2", "n"], "group-a")
    assert grouping.merges == (GroupMerge(kept="group-a", absorbed=("group-b",), moved_video_ids=("b", "b2")),)


def test_existing_groups_are_never_split_or_compared_again():
    rng = np.random.default_rng(5)
    same = walk_hashes(rng, 40)
    prints = {v: fp(h) for v, h in [("a", same), ("b", same), ("c", walk_hashes(rng, 40))]}
    existing = {"a": "a", "b": "b", "c": "a"}  # a and b match, c matches nothing: as they were
    assert assign_groups(prints, existing).group_of == existing


def test_a_new_group_never_takes_an_id_already_in_use():
    rng = np.random.default_rng(6)
    same = walk_hashes(rng, 40)
    prints = {"x": fp(same), "y": fp(flip_bits(rng, same, 2))}
    grouping = assign_groups(prints, existing={"old": "x"})  # "x" names an older group already
    assert grouping.group_of == {"old": "x", "x": "y", "y": "y"}
    grouping = assign_groups(prints, existing={"old": "x", "old2": "y"})
    assert grouping.group_of["x"] == grouping.group_of["y"] == "x~2"


# --- the index at scale ----------------------------------------------------------------------


def scene_hashes(rng: np.random.Generator, duration_s: float, scene_s: float = 4.0) -> np.ndarray:
    """A long video's hashes, fast: a random picture every `scene_s`, each sample of it with two
    random bits flipped (sample-to-sample noise)."""
    samples, scene_len = int(duration_s * dedup.FRAME_RATE_HZ), int(scene_s * dedup.FRAME_RATE_HZ)
    scenes = rng.integers(0, 2**64, -(-samples // scene_len), dtype=np.uint64)
    return scene_noise(rng, np.repeat(scenes, scene_len)[:samples])


def scene_noise(rng: np.random.Generator, hashes: np.ndarray) -> np.ndarray:
    """`hashes` with two random bits of each flipped (the same one twice: none)."""
    for _ in range(2):
        hashes = hashes ^ (np.uint64(1) << rng.integers(0, 64, len(hashes)).astype(np.uint64))
    return hashes


def unreadable(video_id: str) -> Fingerprint:
    raise AssertionError(f"the index read {video_id}'s whole fingerprint")


def test_many_long_distinct_videos_give_few_candidate_pairs_and_every_copy_is_one():
    rng = np.random.default_rng(10)
    hashes = {f"v{i:04d}": scene_hashes(rng, 330.0) for i in range(1000)}  # 1,000 videos of 5.5 min
    for i in range(0, 1000, 100):  # ten copies: 2 more bits off in every sample, up to 4 s trimmed
        original = hashes[f"v{i:04d}"]
        hashes[f"v{i:04d}c"] = scene_noise(rng, original[int(rng.integers(0, 17)) :])
    index = FingerprintIndex({v: dedup_groups.index_keys(h) for v, h in hashes.items()}, load=unreadable)
    pairs = candidate_pairs(index)  # reads no fingerprint
    planted = {(f"v{i:04d}", f"v{i:04d}c") for i in range(0, 1000, 100)}
    assert planted <= pairs
    assert len(pairs) <= len(planted) + 5  # of 500,000 (the former index, 24-bit keys counted by key: 4,310)
    # the index holds a small share of each video's keys: 8 tables x 1,320 samples
    assert max(len(index.keys_of(v)) for v in hashes) < 0.1 * dedup_groups.LSH_TABLES * len(hashes["v0000"])


def test_an_index_of_files_reads_a_whole_fingerprint_only_for_a_candidate_pair(tmp_path):
    rng = np.random.default_rng(11)
    walks = [walk_hashes(rng, 120) for _ in range(5)]
    prints = {f"v{i}": fp(h) for i, h in enumerate(walks)} | {"v0copy": fp(flip_bits(rng, walks[0], 3))}
    paths = {video_id: dedup.save_fingerprint(p, tmp_path / f"{video_id}.npz") for video_id, p in prints.items()}
    paths["broken"] = tmp_path / "broken.npz"
    paths["broken"].write_bytes(b"not a zip file")
    index, errors = index_files(paths)
    assert index.video_ids == sorted(prints) and list(errors) == ["broken"]
    assert errors["broken"].reason is ReasonCode.INTERNAL_ERROR
    read: list[str] = []

    def load(video_id: str) -> Fingerprint:
        read.append(video_id)
        return dedup.load_fingerprint(paths[video_id])

    counting = FingerprintIndex({v: index.keys_of(v) for v in index.video_ids}, load)
    grouping = assign_groups(counting, existing={})
    assert grouping.group_of == {v: "v0" if v == "v0copy" else v for v in prints}
    assert sorted(read) == ["v0", "v0copy"]
    assert assign_groups(index.only(["v0copy", "v1"]), existing={}).group_of == {"v0copy": "v0copy", "v1": "v1"}
