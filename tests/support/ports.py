"""A free TCP port on 127.0.0.1, for the tests and benches that start a server."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port that was free a moment ago (the OS picks it; a server started next will get it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
