"""yt-dlp glue shared by the search and download stages: error text -> `ReasonCode`, and a
logger that sends yt-dlp's output to Python logging instead of the terminal.

yt-dlp reports every failure as a `DownloadError` with a message; the reason is in the text.
"""

from __future__ import annotations

import logging
import re

from dvmset.errors import ReasonCode

_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_REPORT_TAIL_RE = re.compile(r";? ?please report this issue on .*$", re.S)

_PATTERNS: tuple[tuple[ReasonCode, re.Pattern[str]], ...] = (
    (
        ReasonCode.UNAVAILABLE,
        re.compile(
            r"HTTP Error 40[14]|HTTP Error 410|Video unavailable|Private video|has been removed|"
            r"does not exist|no longer available|account .* terminated|Unsupported URL",
            re.I,
        ),
    ),
    (
        ReasonCode.BLOCKED,
        re.compile(r"HTTP Error 403|HTTP Error 429|not a bot|Sign in to confirm|Too Many Requests|rate.limit", re.I),
    ),
    (
        ReasonCode.NETWORK_UNREACHABLE,
        re.compile(
            r"Name or service not known|Temporary failure in name resolution|nodename nor servname|"
            r"getaddrinfo failed|Failed to resolve|Connection refused|Network is unreachable|timed out|"
            r"Unable to connect to proxy|ProxyError|No route to host|Connection reset|Remote end closed|"
            r"Failed to establish a new connection|URLError|TransportError",
            re.I,
        ),
    ),
)

_TRANSIENT_RE = re.compile(
    r"HTTP Error (5\d\d|429)|timed out|Connection reset|Remote end closed|IncompleteRead|"
    r"Temporary failure|Connection aborted|bytes read, \d+ more expected",
    re.I,
)


def clean_message(message: str) -> str:
    """yt-dlp's message without ANSI colours and its 'ERROR: ' prefix."""
    text = _ANSI_RE.sub("", message).removeprefix("ERROR: ")
    return _REPORT_TAIL_RE.sub("", text).strip()


def reason_for(message: str) -> ReasonCode:
    """The reason code a yt-dlp error message stands for (`download_error` when none matches)."""
    for reason, pattern in _PATTERNS:
        if pattern.search(message):
            return reason
    return ReasonCode.DOWNLOAD_ERROR


def is_transient(message: str) -> bool:
    """True for errors worth a retry with back-off (5xx, 429, timeouts, dropped connections)."""
    return bool(_TRANSIENT_RE.search(message))


class YtdlpLogger:
    """Pass as yt-dlp's `logger` option: its messages go to the `yt_dlp` Python logger.

    Errors are logged at DEBUG because the stages raise them as typed errors anyway."""

    _log = logging.getLogger("yt_dlp")

    def debug(self, message: str) -> None:
        self._log.debug(clean_message(message))

    def info(self, message: str) -> None:
        self._log.debug(clean_message(message))

    def warning(self, message: str) -> None:
        self._log.warning(clean_message(message))

    def error(self, message: str) -> None:
        self._log.debug(clean_message(message))
