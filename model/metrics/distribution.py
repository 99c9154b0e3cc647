"""Fréchet distance between two sets of embeddings and the paired KL divergence of class outputs.

FD: each set `[N, D]` is fitted by a Gaussian (mean, covariance with N - 1 in the denominator, as
numpy's `cov` and pytorch-fid do); FD = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)).
The trace of the matrix square root is computed without `sqrtm`, so no complex parts or
singular-matrix offsets appear (scipy's `sqrtm` route of pytorch-fid gives the same number when it
converges). With X_i the deviations from the mean `[N_i, D]` over sqrt(N_i - 1), S_i = X_i^T X_i and the
non-zero eigenvalues of S_1 S_2 are the squared singular values of X_1 X_2^T, so tr((S_1 S_2)^(1/2)) is
the sum of the singular values of that `[N_1, N_2]` matrix: the route taken when the sets are smaller
than the embedding (a test set of a few hundred clips against PANNs' 2048 dimensions: milliseconds,
where the `[D, D]` route takes seconds). Larger sets take sum sqrt(eig(S_1^(1/2) S_2 S_1^(1/2))), a
symmetric positive semi-definite `[D, D]` matrix. FD compares distributions: it ignores which generated
clip goes with which reference.

KL (paired): for each clip, KL(p_ref || p_gen) = sum_c p_ref(c) (log p_ref(c) - log p_gen(c)), with
p = softmax over the 527 AudioSet class logits of PANNs Cnn14 (the pre-sigmoid `fc_audioset`
outputs): the "KL" (softmax) of AudioLDM's `audioldm_eval` and of AudioGen, reference as target,
generated as prediction. Reported as the mean over pairs. `audioldm_eval` adds 1e-6 to p_gen before
its log; log-softmax is used here instead, so identical pairs give exactly 0.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from dvmset.errors import DvmsetError


class MetricInputError(DvmsetError):
    """A metric got inputs it cannot be computed from (too few samples, mismatched shapes)."""


def frechet_distance(embeddings_a: np.ndarray, embeddings_b: np.ndarray) -> float:
    """FD between Gaussian fits of two sets of embeddings `[N_a, D]`, `[N_b, D]` (see the module docstring)."""
    (mean_a, deviations_a), (mean_b, deviations_b) = _scaled_deviations(embeddings_a), _scaled_deviations(embeddings_b)
    if mean_a.shape != mean_b.shape:
        raise MetricInputError(f"embeddings of different widths: {mean_a.shape[0]} and {mean_b.shape[0]}")
    if deviations_a.shape[0] * deviations_b.shape[0] <= mean_a.size**2:
        trace_root = float(np.linalg.svd(deviations_a @ deviations_b.T, compute_uv=False).sum())
    else:
        values, vectors = np.linalg.eigh(deviations_a.T @ deviations_a)
        root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
        product = root_a @ (deviations_b.T @ deviations_b) @ root_a
        trace_root = float(np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0.0, None)).sum())
    traces = float(np.sum(deviations_a**2) + np.sum(deviations_b**2))  # tr(S_a) + tr(S_b)
    return max(float(np.sum((mean_a - mean_b) ** 2)) + traces - 2.0 * trace_root, 0.0)


def _scaled_deviations(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean `[D]` of embeddings `[N >= 2, D]` and their deviations from it over sqrt(N - 1) `[N, D]`, whose
    Gram matrix X^T X is the covariance (N - 1 in the denominator, as numpy's `cov`)."""
    samples = np.asarray(embeddings, dtype=np.float64)
    if samples.ndim != 2 or samples.shape[0] < 2:
        raise MetricInputError(f"a Gaussian fit needs embeddings [N >= 2, D], got shape {samples.shape}")
    mean = samples.mean(axis=0)
    return mean, (samples - mean) / np.sqrt(samples.shape[0] - 1)


def paired_kl_divergences(reference_logits: np.ndarray, generated_logits: np.ndarray) -> np.ndarray:
    """[N] KL(softmax(reference) || softmax(generated)) per pair of class-logit rows `[N, C]`."""
    reference, generated = np.asarray(reference_logits, np.float64), np.asarray(generated_logits, np.float64)
    if reference.shape != generated.shape or reference.ndim != 2:
        raise MetricInputError(f"paired logits must both be [N, C]; got {reference.shape} and {generated.shape}")
    log_p, log_q = log_softmax(reference, axis=1), log_softmax(generated, axis=1)
    return np.sum(np.exp(log_p) * (log_p - log_q), axis=1)
