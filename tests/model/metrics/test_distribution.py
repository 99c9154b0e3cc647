"""Fréchet distance and paired KL divergence."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import sqrtm

from model.metrics.distribution import MetricInputError, frechet_distance, paired_kl_divergences


def gaussian_fit(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy's mean and covariance (N - 1 in the denominator)."""
    return embeddings.mean(axis=0), np.cov(embeddings, rowvar=False)


def test_fd_of_a_set_against_itself_is_zero_and_grows_with_noise():
    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((64, 32)) @ rng.standard_normal((32, 32))
    assert frechet_distance(embeddings, embeddings) == pytest.approx(0.0, abs=1e-8)
    distances = [
        frechet_distance(embeddings, embeddings + scale * rng.standard_normal(embeddings.shape))
        for scale in (0.1, 0.5, 2.0)
    ]
    assert 0.0 < distances[0] < distances[1] < distances[2]


def test_fd_matches_the_sqrtm_formula_also_when_the_covariance_is_singular():
    rng = np.random.default_rng(1)
    for rows in (40, 10):  # 40: the [D, D] route; 10 samples of 16 dims: rank-deficient, the [N_a, N_b] route
        a, b = rng.standard_normal((rows, 16)), 2.0 * rng.standard_normal((rows + 5, 16)) + 0.5
        (mean_a, cov_a), (mean_b, cov_b) = gaussian_fit(a), gaussian_fit(b)
        expected = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2 * sqrtm(cov_a @ cov_b).real)
        assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_the_small_set_route_matches_the_covariance_route_on_wide_embeddings():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((12, 200)), rng.standard_normal((9, 200)) * 1.5 + 0.2  # 12 x 9 <= 200 x 200
    (mean_a, cov_a), (mean_b, cov_b) = gaussian_fit(a), gaussian_fit(b)
    expected = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2 * sqrtm(cov_a @ cov_b).real)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_fd_needs_two_samples_of_the_same_width():
    with pytest.raises(MetricInputError):
        frechet_distance(np.zeros((1, 4)), np.zeros((3, 4)))
    with pytest.raises(MetricInputError):
        frechet_distance(np.zeros((3, 4)), np.zeros((3, 5)))


def test_kl_of_identical_pairs_is_zero_and_follows_the_softmax_form():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((5, 10))
    assert np.array_equal(paired_kl_divergences(logits, logits), np.zeros(5))
    assert np.allclose(paired_kl_divergences(logits, logits + 3.0), 0.0)  # softmax ignores a shift
    p, q = np.exp([[0.0, np.log(3.0)]]), np.array([[1.0, 1.0]])  # softmax: p = (1/4, 3/4), q = (1/2, 1/2)
    expected = 0.25 * np.log(0.25 / 0.5) + 0.75 * np.log(0.75 / 0.5)
    assert paired_kl_divergences(np.log(p), np.log(q))[0] == pytest.approx(expected)
    assert (paired_kl_divergences(logits, np.roll(logits, 1, axis=0)) > 0).all()
