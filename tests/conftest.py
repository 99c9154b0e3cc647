"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.http_server import LocalHttpServer
from tests.http_server import serve_folder as _serve_folder

# pytest-xdist's workers start with COLUMNS=80 and LINES=24, from which Rich would fix the CLI's console
# width when the CLI is imported (the tests' own COLUMNS would then be ignored): a plain run has neither.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

# Tests that use one of these run a whole pipeline, a browser or a server: `make test-fast` leaves
# them out (they are marked `slow` at collection), `make test` runs them. Tests over a module-wide corpus
# that takes more than ~10 s to make (a module fixture) carry `@pytest.mark.slow` themselves.
_SLOW_FIXTURES = frozenset({"browser", "prefect_server", "real_server", "built", "discovered", "real_htdemucs_dir"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks `slow` every test that needs a slow fixture or the real weights."""
    for item in items:
        if _SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("real_weights"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The tests' tiny models gain nothing from threads; on a shared CPU, waiting OpenMP threads
    cost far more than they give."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def serve_folder():
    """`with serve_folder(folder) as server:` a real HTTP server on 127.0.0.1 (see tests/http_server.py)."""
    return _serve_folder


@pytest.fixture
def http_server(tmp_path_factory) -> Iterator[LocalHttpServer]:
    """A real HTTP server on 127.0.0.1 serving an empty folder, `http_server.root`, for this test."""
    with _serve_folder(tmp_path_factory.mktemp("served")) as server:
        yield server


@pytest.fixture(scope="session")
def real_htdemucs_dir():
    """The Demucs repo folder holding the real HTDemucs weights, rebuilt by `make weights` under
    `weights_cache_dir()/htdemucs` (outside the repo; `load_separator("htdemucs", folder)` loads it),
    or a skip that says how to make it."""
    from curation.htdemucs_onnx import MODEL_NAME, checkpoint_path, weights_cache_dir

    folder = weights_cache_dir() / MODEL_NAME
    if checkpoint_path(folder) is None:
        pytest.skip(
            f"the real HTDemucs weights are not in {folder}: run `make weights` (python -m curation.htdemucs_onnx)"
        )
    return folder
