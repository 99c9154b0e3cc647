"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.http_server import LocalHttpServer, serve_folder as _serve_folder


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
