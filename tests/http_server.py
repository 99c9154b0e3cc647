"""A real HTTP server on 127.0.0.1 for tests: serves a folder, counts requests, fails on demand.

    with serve_folder(folder) as server:
        server.fail_next("/a.mp4", 503, 503)   # the next two GETs of /a.mp4 answer 503
        server.truncate("/cut.mp4")            # every GET of /cut.mp4 stops after half the body
        fetch(server.url("/a.mp4"))
        assert server.requests("/a.mp4") == 3

Tests get it as the `serve_folder` fixture (tests/conftest.py) or import it from `tests.http_server`.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter, defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

HOST = "127.0.0.1"


class LocalHttpServer:
    """State shared with the request handler; all access goes through one lock."""

    def __init__(self, root: Path):
        self.root = root
        self.port = 0  # set once the server is bound
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._failures: defaultdict[str, deque[int]] = defaultdict(deque)
        self._truncated: set[str] = set()

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}/{path.lstrip('/')}"

    def requests(self, path: str) -> int:
        """How many GET/HEAD requests `path` has received."""
        with self._lock:
            return self._requests[path]

    def total_requests(self) -> int:
        with self._lock:
            return sum(self._requests.values())

    def fail_next(self, path: str, *statuses: int) -> None:
        """Answer the next requests of `path` with these HTTP statuses, in order."""
        with self._lock:
            self._failures[path].extend(statuses)

    def truncate(self, path: str) -> None:
        """Send the full Content-Length for `path` but close the connection after half the body."""
        with self._lock:
            self._truncated.add(path)

    def _on_request(self, path: str) -> tuple[int | None, bool]:
        """Count the request; return (status to fail with or None, whether to truncate)."""
        with self._lock:
            self._requests[path] += 1
            failures = self._failures[path]
            return (failures.popleft() if failures else None), path in self._truncated


class _Handler(SimpleHTTPRequestHandler):
    state: LocalHttpServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep test output clean
        pass

    def do_GET(self) -> None:
        self._serve(head_only=False)

    def do_HEAD(self) -> None:
        self._serve(head_only=True)

    def _serve(self, head_only: bool) -> None:
        path = urlsplit(self.path).path
        status, truncate = self.state._on_request(path)
        if status is not None:
            self.send_error(status)
        elif truncate and not head_only:
            self._send_half(path)
        elif head_only:
            super().do_HEAD()
        else:
            super().do_GET()

    def _send_half(self, path: str) -> None:
        data = (self.state.root / path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients (yt-dlp probing a file) may hang up mid-body; that is not a test failure."""


@contextmanager
def serve_folder(folder: Path) -> Iterator[LocalHttpServer]:
    """Serve `folder` at http://127.0.0.1:<free port>/ in a background thread."""
    state = LocalHttpServer(folder)
    handler = type("Handler", (_Handler,), {"state": state})
    server = _QuietServer((HOST, 0), functools.partial(handler, directory=str(folder)))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="test-http-server", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
