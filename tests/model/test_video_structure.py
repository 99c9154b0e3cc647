"""A clip's video structure: the storyboard from known cuts, shot embeddings, per-second affective
features on frames with known brightness, colour and motion, and the per-clip cache."""

from __future__ import annotations

import numpy as np
import pytest

from curation.samples import VideoSpec, make_video
from dvmset.storage import DataRoot
from model import video_structure as vs


def test_the_storyboard_has_a_shot_between_each_pair_of_cuts():
    shots = vs.storyboard([4.0, 2.0, 6.0, 6.0, 9.0, 0.0], 8.0)  # unordered, a repeat, one past the end, one at 0
    assert [(shot.start_s, shot.duration_s) for shot in shots] == [(0.0, 2.0), (2.0, 2.0), (4.0, 2.0), (6.0, 2.0)]
    assert vs.storyboard([], 5.0) == (vs.Shot(0.0, 5.0),)


def test_each_shot_takes_the_mean_embedding_of_its_seconds():
    embeds = np.arange(8, dtype=np.float32)[:, None] * np.ones((1, 3), dtype=np.float32)  # row s holds s
    shots = (vs.Shot(0.0, 2.0), vs.Shot(2.0, 0.4), vs.Shot(2.4, 5.6))
    means = vs.shot_embeddings(shots, embeds)[:, 0]
    assert means.tolist() == pytest.approx([0.5, 2.0, 5.0])  # seconds 0-1; second 2 (none inside); seconds 3-7


def test_affect_tells_bright_from_dark_colour_from_grey_and_motion_from_stillness():
    fps, size = 4, (8, 8)
    black = np.zeros((fps, *size, 3), np.uint8)
    white = np.full((fps, *size, 3), 255, np.uint8)
    red = np.zeros((fps, *size, 3), np.uint8)
    red[..., 0] = 255
    flicker = np.stack([np.full((*size, 3), 255 * (i % 2), np.uint8) for i in range(fps)])
    affect = vs.affect_per_second(np.concatenate([black, white, red, flicker]), fps, 5)
    brightness, saturation, colourfulness, motion = affect.T
    assert brightness[0] == 0.0 and brightness[1] == pytest.approx(1.0) and brightness[2] == pytest.approx(0.299)
    assert saturation[1] == 0.0 and saturation[2] == pytest.approx(1.0)
    assert colourfulness[2] == pytest.approx(0.3 * np.hypot(255, 127.5)) and colourfulness[1] == pytest.approx(0.0)
    assert motion[0] == motion[1] == motion[2] == 0.0 and motion[3] == pytest.approx(1.0)
    assert affect[4].tolist() == affect[3].tolist()  # a second past the frames repeats the last one


def test_a_clips_structure_is_computed_once_and_cached(tmp_path, monkeypatch):
    data = DataRoot(tmp_path)
    clip_id = "local:abc:00000000"
    data.clip_dir(clip_id).mkdir(parents=True)
    make_video(data.clip_video_path(clip_id), VideoSpec(6.0, cut_every_s=2.0))
    embeds = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    first = vs.clip_video_structure(data, clip_id, (2.0, 4.0), 6.0, embeds, "tiny/clip")
    assert [shot.start_s for shot in first.shots] == [0.0, 2.0, 4.0]
    assert first.shot_embeds.shape == (3, 4) and first.affect.shape == (6, 4)
    assert (first.affect[:, 0] > 0.1).all() and (first.affect[1:, 3] > 0.0).all()  # a lit, moving test pattern

    def no_decoding(*_args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(vs.video, "iter_frame_batches", no_decoding)
    again = vs.clip_video_structure(data, clip_id, (2.0, 4.0), 6.0, embeds, "tiny/clip")
    assert again.shots == first.shots
    assert np.array_equal(again.shot_embeds, first.shot_embeds) and np.array_equal(again.affect, first.affect)
