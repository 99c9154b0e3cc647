"""Fixtures for the model tests: tiny random-weight models of the real architectures, saved with
`save_pretrained` and loaded through the same loaders as hub models; a training manifest of generated clips
(`tests/support/training_manifests.py`); no hub access."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

from dvmset.storage import DataRoot
from tests.support.tiny_models import TINY_DECODER_WIDTH, save_tiny_clip, save_tiny_musicgen
from tests.support.training_manifests import write_training_manifest


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch, tmp_path_factory) -> Path:
    """No test reaches the hub: offline mode on and an empty Hugging Face cache; returns the cache."""
    cache = tmp_path_factory.mktemp("hf_cache")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def one_thread():
    """torch on one CPU thread for the test: tiny models on two threads of a shared machine only wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tiny_musicgen_dir(tmp_path_factory) -> Path:
    return save_tiny_musicgen(tmp_path_factory.mktemp("tiny-musicgen"))


@pytest.fixture(scope="session")
def tiny_conditioned_musicgen_dir(tmp_path_factory) -> Path:
    """A MusicGen with 3 blocks of 4 decoder layers (2 take the rhythm condition) and a T5 -> decoder projector."""
    folder = tmp_path_factory.mktemp("tiny-musicgen-12")
    return save_tiny_musicgen(folder, num_layers=12, hidden_size=TINY_DECODER_WIDTH)


@pytest.fixture
def data_root(tmp_path) -> DataRoot:
    return DataRoot(tmp_path / "data").ensure()


@pytest.fixture(scope="session")
def training_manifest(tmp_path_factory) -> tuple[DataRoot, Path]:
    """`write_training_manifest` once per session (tests that compute caches share them)."""
    return write_training_manifest(tmp_path_factory.mktemp("training"))
