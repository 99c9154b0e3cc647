"""Fixtures of the metric tests: tiny random-weight Cnn14, CLAP and ImageBind in their real on-disk formats
(their media come from `tests/support/generated_media.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.metrics.imagebind import ImageBind, save_imagebind
from model.metrics.panns import Cnn14, save_cnn14
from tests.support.tiny_models import TINY_CNN14_CLASSES, TINY_CNN14_WIDTHS, TINY_IMAGEBIND, save_tiny_clap


@pytest.fixture(scope="session")
def tiny_cnn14_path(tmp_path_factory) -> Path:
    """A random Cnn14 with narrow blocks and 10 classes, saved as the published checkpoint is."""
    torch.manual_seed(0)
    model = Cnn14(TINY_CNN14_WIDTHS, TINY_CNN14_CLASSES)
    return save_cnn14(model, tmp_path_factory.mktemp("panns") / "Cnn14_tiny.pth")


@pytest.fixture(scope="session")
def tiny_clap_dir(tmp_path_factory) -> Path:
    """`save_tiny_clap` in a session folder."""
    return save_tiny_clap(tmp_path_factory.mktemp("clap"))


@pytest.fixture(scope="session")
def tiny_imagebind_path(tmp_path_factory) -> Path:
    """A random ImageBind of `TINY_IMAGEBIND`, saved as the official checkpoint is (a plain state dict)."""
    torch.manual_seed(0)
    return save_imagebind(ImageBind(TINY_IMAGEBIND), tmp_path_factory.mktemp("imagebind") / "imagebind_tiny.pth")
