"""Whether the hubs and download sites can be reached, found out at once and once per process.

In: a URL (default: the Hugging Face endpoint, `HF_ENDPOINT`). Out: None when its host accepts a TCP
connection (through the HTTPS proxy when one is set) within `REACH_TIMEOUT_S`, else why not, in a few
words. `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) set means offline without trying anything. Loaders ask
this before any hub or remote download (`curation.separate.load_separator`, `model.weights.load_model`,
`dvmset models pull`) and, offline, read their local places only: one clear error instead of a minute of
HTTP retries. No torch.
"""

from __future__ import annotations

import functools
import os
import socket
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlsplit

REACH_TIMEOUT_S = 2.0  # a host that does not accept a TCP connection within this is taken as unreachable
_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's truthy environment values


def hf_offline_flag(environ: Mapping[str, str] | None = None) -> bool:
    """`HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) set, in the environment or in huggingface_hub's settings."""
    import huggingface_hub.constants

    environ = os.environ if environ is None else environ
    value = environ.get("HF_HUB_OFFLINE") or environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in _TRUE or bool(huggingface_hub.constants.HF_HUB_OFFLINE)


def hub_url() -> str:
    """The Hugging Face endpoint huggingface_hub talks to (`HF_ENDPOINT`)."""
    import huggingface_hub.constants

    return huggingface_hub.constants.ENDPOINT


def offline_reason(url: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """None when `url`'s host (default: the Hugging Face hub) can be reached; else why not, in a few words.
    With HF_HUB_OFFLINE set nothing is tried. Else one TCP connect (to the HTTPS proxy when one is set) with
    a `REACH_TIMEOUT_S` timeout, remembered for the rest of the process."""
    if hf_offline_flag(environ):
        return "HF_HUB_OFFLINE is set"
    parts = urlsplit(url or hub_url())
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxied = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        error = _connect_error(proxied.hostname or "", proxied.port or 80, REACH_TIMEOUT_S)
        return f"the proxy {proxied.hostname}:{proxied.port or 80} cannot be reached: {error}" if error else None
    error = _connect_error(host, port, REACH_TIMEOUT_S)
    return f"{host}:{port} cannot be reached: {error}" if error else None


@functools.cache
def _connect_error(host: str, port: int, timeout_s: float) -> str | None:
    """None when a TCP connection to `host:port` opens within `timeout_s`; else the error (once per process)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except OSError as error:
        return error.strerror or str(error)


def forget_reachability() -> None:
    """Forget the remembered reachability checks (for tests, or after the network came back)."""
    _connect_error.cache_clear()
