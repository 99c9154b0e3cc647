"""Login throttling for the labeling app: per user name and per client address, a growing delay
after a few wrong passwords, then a lock for a while; every failure and lock is logged.

In: the name and password Gradio's login form posts, and the client's address (set for the
request by `ClientAddressMiddleware`, an ASGI middleware on the app). Out: True or False for
Gradio's `auth` hook (`ThrottledLogin.login`, a coroutine), or an HTTP 429 while locked. The scrypt
hash runs in a worker thread (one at a time), never on the server's event loop, and the delay is
an `anyio.sleep`: other people's requests stay fast while wrong logins are being answered.

Behind a reverse proxy the address is the proxy's: run uvicorn with `--forwarded-allow-ips`, or
rely on the per-name limit alone.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from fastapi import HTTPException

from labeling_ui.users import Authenticator

log = logging.getLogger(__name__)

CLIENT_ADDRESS: contextvars.ContextVar[str] = contextvars.ContextVar("dv_client_address", default="unknown")


@dataclass(frozen=True)
class ThrottleSettings:
    free_failures: int = 3  # wrong passwords answered at once (per name and per address)
    base_delay_s: float = 0.5  # then each attempt waits 0.5 s, 1 s, 2 s, ... before it is checked
    max_delay_s: float = 8.0
    lock_after: int = 5  # failures of one name that lock it for `lock_s`
    lock_after_address: int = 20  # failures from one address (any names) that lock the address
    lock_s: float = 300.0
    window_s: float = 900.0  # failures older than this are forgotten


class LoginLocked(Exception):
    def __init__(self, retry_s: float):
        super().__init__(f"locked for {retry_s:.0f} s more")
        self.retry_s = retry_s


class LoginThrottle:
    """Failure counts and locks by key (`user:<name>`, `addr:<address>`); thread-safe. Attempts in
    flight count as failures until answered, so a burst of parallel guesses is throttled too."""

    def __init__(self, settings: ThrottleSettings = ThrottleSettings(), clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.clock = clock
        self._failures: dict[str, list[float]] = {}
        self._in_flight: dict[str, int] = {}
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def _limit(self, key: str) -> int:
        return self.settings.lock_after if key.startswith("user:") else self.settings.lock_after_address

    def _count(self, key: str, now: float) -> int:
        recent = [t for t in self._failures.get(key, []) if now - t < self.settings.window_s]
        self._failures[key] = recent
        return len(recent) + self._in_flight.get(key, 0)

    def begin(self, keys: tuple[str, ...]) -> float:
        """Start an attempt: the seconds it must wait before its password is checked; LoginLocked
        while one of `keys` is locked (or this attempt would pass its limit)."""
        now = self.clock()
        with self._lock:
            locked = max((self._locked_until.get(key, 0.0) - now for key in keys), default=0.0)
            if locked > 0:
                raise LoginLocked(locked)
            counts = {key: self._count(key, now) for key in keys}
            if over := [key for key, n in counts.items() if n >= self._limit(key)]:
                for key in over:
                    self._locked_until[key] = now + self.settings.lock_s
                log.warning("login locked for %s s: %s", self.settings.lock_s, ", ".join(over))
                raise LoginLocked(self.settings.lock_s)
            for key in keys:
                self._in_flight[key] = self._in_flight.get(key, 0) + 1
            worst = max(counts.values(), default=0) - self.settings.free_failures
        return 0.0 if worst < 0 else min(self.settings.max_delay_s, self.settings.base_delay_s * 2**worst)

    def end(self, keys: tuple[str, ...], ok: bool) -> int:
        """Finish an attempt; a success forgets the name's failures. Returns the name's failure count."""
        now = self.clock()
        with self._lock:
            for key in keys:
                self._in_flight[key] = max(0, self._in_flight.get(key, 0) - 1)
                if ok and key.startswith("user:"):
                    self._failures.pop(key, None)
                elif not ok:
                    self._failures.setdefault(key, []).append(now)
            return len(self._failures.get(keys[0], []))


class ThrottledLogin:
    """Gradio's `auth` hook: the users file's check (`Authenticator`), throttled, hashed off the loop."""

    def __init__(self, authenticator: Authenticator, settings: ThrottleSettings = ThrottleSettings()):
        self.authenticator = authenticator
        self.throttle = LoginThrottle(settings)
        self._hashing: anyio.CapacityLimiter | None = None

    async def login(self, name: str, password: str) -> bool:
        address = CLIENT_ADDRESS.get()
        keys = (f"user:{name}", f"addr:{address}")
        try:
            delay_s = self.throttle.begin(keys)
        except LoginLocked as exc:
            log.warning("login of %r from %s refused: %s", name, address, exc)
            raise HTTPException(429, f"too many wrong passwords: try again in {exc.retry_s / 60:.0f} min") from exc
        ok = False
        try:
            if delay_s:
                await anyio.sleep(delay_s)
            if self._hashing is None:
                self._hashing = anyio.CapacityLimiter(1)  # made on the loop: one scrypt at a time
            ok = await anyio.to_thread.run_sync(self.authenticator, name, password, limiter=self._hashing)
        finally:
            failures = self.throttle.end(keys, ok)
        if not ok:
            log.warning(
                "wrong password for %r from %s (%d recent failures, waited %.1f s)", name, address, failures, delay_s
            )
        return ok


class ClientAddressMiddleware:
    """An ASGI middleware that makes each HTTP request's client address known to `ThrottledLogin`."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            client = scope.get("client")
            CLIENT_ADDRESS.set(client[0] if client else "unknown")
        await self.app(scope, receive, send)
