"""CLAP audio embeddings (transformers' `ClapModel`) and the CLAP score: the cosine of generated and
reference music embeddings (paper, section 5.2), averaged over pairs.

In: a CLAP model id (hub id or local folder; `model.weights` resolves it) and mono audio at the
feature extractor's rate (48 kHz for LAION CLAP). Out: unit-length embeddings `[N, P]`.

Protocol: CLAP's feature extractor crops audio longer than its `max_length_s` (10 s) at a random
place ("rand_trunc", and "fusion" picks random chunks), so a score would change between runs. Each
clip is instead cut into consecutive windows of `max_length_s` seconds, each window short enough to
be taken whole (a shorter last window is repeat-padded by the extractor; a last window under
`MIN_WINDOW_S` is dropped unless it is the only one), and `is_longer` is passed as False for every
window (it is true: the extractor's "fusion" mode would otherwise mark a random window as longer);
the window embeddings are averaged and renormalized. The default model is LAION's music CLAP, `laion/larger_clap_music`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import ClapFeatureExtractor, ClapModel

from model.weights import load_model, load_processor

DEFAULT_CLAP_MODEL = "laion/larger_clap_music"
MIN_WINDOW_S = 1.0


@dataclass(frozen=True)
class ClapEncoder:
    """A loaded CLAP model, its feature extractor and the model id they came from."""

    model: ClapModel
    feature_extractor: ClapFeatureExtractor
    model_id: str

    @property
    def sample_rate_hz(self) -> int:
        return int(self.feature_extractor.sampling_rate)

    @property
    def window_s(self) -> float:
        return float(self.feature_extractor.max_length_s)


def load_clap_encoder(
    model_id: str = DEFAULT_CLAP_MODEL, model_dir: Path | None = None, device: str = "cpu"
) -> ClapEncoder:
    """CLAP's audio side (the whole `ClapModel` checkpoint loads; the text side is unused)."""
    model = load_model(ClapModel, model_id, model_dir, required_prefix="audio_")
    extractor = load_processor(ClapFeatureExtractor, model_id, model_dir)
    return ClapEncoder(model.eval().to(device), extractor, model_id)


def clip_windows(mono: np.ndarray, window_samples: int, min_samples: int) -> list[np.ndarray]:
    """Consecutive windows of `window_samples` of `mono` `[S]`; a last window under `min_samples` is dropped
    unless it is the only one."""
    windows = [mono[start : start + window_samples] for start in range(0, max(mono.size, 1), window_samples)]
    if len(windows) > 1 and windows[-1].size < min_samples:
        windows.pop()
    return windows


@torch.inference_mode()
def clap_embeddings(encoder: ClapEncoder, clips: list[np.ndarray]) -> np.ndarray:
    """Unit-length audio embeddings `[N, P]` of mono clips `[S]` at `encoder.sample_rate_hz`."""
    rate = encoder.sample_rate_hz
    window_samples, min_samples = round(encoder.window_s * rate), round(MIN_WINDOW_S * rate)
    device = next(encoder.model.parameters()).device
    embeddings = []
    for clip in clips:
        windows = clip_windows(np.asarray(clip, dtype=np.float32), window_samples, min_samples)
        inputs = encoder.feature_extractor(windows, sampling_rate=rate, return_tensors="pt")
        not_longer = torch.zeros((len(windows), 1), dtype=torch.bool, device=device)  # every window fits whole
        features = inputs["input_features"].to(device)
        outputs = encoder.model.get_audio_features(input_features=features, is_longer=not_longer)
        mean = outputs.pooler_output.mean(dim=0)
        embeddings.append(torch.nn.functional.normalize(mean, dim=0).cpu().numpy())
    return np.stack(embeddings).astype(np.float64)


def paired_cosines(embeddings_a: np.ndarray, embeddings_b: np.ndarray) -> np.ndarray:
    """[N] cosine similarity of row i of `embeddings_a` with row i of `embeddings_b` (`[N, P]` each)."""
    a, b = np.asarray(embeddings_a, np.float64), np.asarray(embeddings_b, np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)
