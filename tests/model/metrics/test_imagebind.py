"""The ImageBind column's "not available" reason: the checked facts when the package is missing, the failed
import when a package of that name is installed but is not the real one."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from model.metrics.evaluate import IMAGEBIND_MODEL_MODULE, imagebind_unavailable_reason


@pytest.fixture
def fake_imagebind(tmp_path, monkeypatch):
    """A folder on sys.path where a test writes an `imagebind` package; its modules are forgotten after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path / "imagebind"
    for name in [name for name in sys.modules if name == "imagebind" or name.startswith("imagebind.")]:
        del sys.modules[name]


@pytest.mark.skipif(importlib.util.find_spec("imagebind") is not None, reason="an imagebind package is installed")
def test_the_missing_package_reason_states_why_it_cannot_be_installed():
    reason = imagebind_unavailable_reason()
    for fact in ("empty 0.0.1.dev0 placeholder", "github.com/facebookresearch/ImageBind", "pins torch 1.13",
                 "pytorchvideo 0.1.5", "torchvision.transforms.functional_tensor", "torchvision 0.17"):  # fmt: skip
        assert fact in reason


def test_an_installed_placeholder_names_the_import_that_fails(fake_imagebind):
    fake_imagebind.mkdir()
    (fake_imagebind / "__init__.py").write_text("")  # what the PyPI placeholder amounts to
    reason = imagebind_unavailable_reason()
    assert reason.startswith(f"an `imagebind` package is installed, but `import {IMAGEBIND_MODEL_MODULE}` fails")
    assert "ModuleNotFoundError" in reason


def test_a_model_module_that_imports_is_reported_as_having_no_scorer(fake_imagebind):
    (fake_imagebind / "models").mkdir(parents=True)
    for init in (fake_imagebind / "__init__.py", fake_imagebind / "models" / "__init__.py"):
        init.write_text("")
    (fake_imagebind / "models" / "imagebind_model.py").write_text("")
    expected = f"`{IMAGEBIND_MODEL_MODULE}` imports, but dvmset has no ImageBind scorer to run it"
    assert imagebind_unavailable_reason() == expected
