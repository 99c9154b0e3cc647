"""The Prefect API an in-process run talks to: the configured server, or a temporary local one.

`dvmset build` needs no `prefect server start`: with no `PREFECT_API_URL` set, `prefect_api()`
starts Prefect's own temporary local server (the one Prefect would start by itself) and puts
its address in the settings for the run, so that task runs in other processes (Dask workers)
report to the same server instead of each starting their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

# Prefect waits 20 s by default; a first start (database migrations) on a busy machine takes longer
MIN_STARTUP_TIMEOUT_S = 120


def configured_api_url() -> str | None:
    """The Prefect API URL set for this process (PREFECT_API_URL or a profile), or None: then
    `prefect_api()` starts a temporary server on 127.0.0.1."""
    return PREFECT_API_URL.value() or None


@contextmanager
def prefect_api() -> Iterator[str]:
    """Yield the API URL for flows run inside the block; a temporary server is stopped at the end."""
    configured = PREFECT_API_URL.value()
    if configured:
        yield configured
        return
    server = SubprocessASGIServer()  # the default instance, which Prefect's own clients reuse
    server.start(timeout=max(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value(), MIN_STARTUP_TIMEOUT_S))
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        # send the buffered logs and events while the server still listens (else: retries at exit)
        APILogWorker.drain_all(at_exit=False)
        EventsWorker.drain_all(at_exit=False)
        server.stop()
