"""CLAP embeddings through transformers' ClapModel loaded from a saved folder; the CLAP score."""

from __future__ import annotations

import numpy as np
import pytest

from model.errors import WeightsNotFoundError
from model.metrics.clap import clap_embeddings, clip_windows, load_clap_encoder, paired_cosines
from tests.support.tiny_models import TINY_CLAP_WINDOW_S


def test_identical_audio_scores_one_and_other_audio_less(tiny_clap_dir):
    encoder = load_clap_encoder(str(tiny_clap_dir))
    rate = encoder.sample_rate_hz
    rng = np.random.default_rng(0)
    music = rng.standard_normal(5 * rate).astype(np.float32) * 0.1  # 5 s: three 2 s windows, the last 1 s
    t = np.arange(3 * rate) / rate
    other = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    embeddings = clap_embeddings(encoder, [music, other])
    assert embeddings.shape == (2, 8)
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0)
    again = clap_embeddings(encoder, [music])  # deterministic: no random crops
    assert paired_cosines(embeddings[:1], again)[0] == pytest.approx(1.0, abs=1e-6)
    assert paired_cosines(embeddings[:1], embeddings[1:])[0] < 0.999


def test_windows_cover_the_clip_and_drop_a_short_tail():
    audio = np.arange(10)
    assert [w.tolist() for w in clip_windows(audio, 4, 2)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [w.size for w in clip_windows(audio, 4, 3)] == [4, 4]
    assert [w.size for w in clip_windows(audio[:2], 4, 3)] == [2]  # the only window is kept
    assert TINY_CLAP_WINDOW_S == 2


def test_a_missing_clap_model_is_a_weights_error(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="ClapModel"):
        load_clap_encoder(str(tmp_path / "absent"))
