"""Typed errors. Every failure a stage can meet carries a `ReasonCode` and a readable message.

Stages raise `StageError` subclasses; callers record `(reason, message)` in the catalog and go on.
Whether a reason leaves an item `skipped` (valid input that does not qualify) or `failed`
(broken, unreachable) is decided here, once, by `ReasonCode.is_skip`.
"""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    """Why an item did not advance. Stored in the catalog as the string value."""

    # probe: the file itself
    EMPTY_FILE = "empty_file"
    NOT_MEDIA = "not_media"
    TRUNCATED = "truncated"
    DECODE_ERROR = "decode_error"
    NO_AUDIO_STREAM = "no_audio_stream"
    NO_VIDEO_STREAM = "no_video_stream"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    # sources and downloads
    NETWORK_UNREACHABLE = "network_unreachable"
    UNAVAILABLE = "unavailable"
    BLOCKED = "blocked"
    DOWNLOAD_ERROR = "download_error"
    SOURCE_NOT_FOUND = "source_not_found"
    # anything a stage did not foresee; the message holds the detail
    INTERNAL_ERROR = "internal_error"

    @property
    def is_skip(self) -> bool:
        """True where the input is fine but does not qualify (the item is `skipped`, not `failed`)."""
        return self in _SKIP_REASONS


_SKIP_REASONS = frozenset(
    {ReasonCode.NO_AUDIO_STREAM, ReasonCode.NO_VIDEO_STREAM, ReasonCode.TOO_SHORT, ReasonCode.TOO_LONG}
)


class DvmsetError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(DvmsetError):
    """The configuration file or an environment override is invalid."""


class InfrastructureError(ConfigError):
    """A fault of the machine, not of the video: the data root's disk is full or read-only, or not
    writable. Like a set-up error it stops the run (it would fail every video the same way) and leaves
    the video as it was, so a plain rerun goes on once it is fixed; it has an exit code of its own."""


class CatalogError(DvmsetError):
    """The catalog cannot be opened, or its schema is newer than this code."""


class StageError(DvmsetError):
    """A stage could not process one item. `reason` says why, `message` says it for people."""

    def __init__(self, reason: ReasonCode, message: str):
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message

    def __reduce__(self) -> tuple[type[StageError], tuple[ReasonCode, str]]:
        return type(self), (self.reason, self.message)  # pickles (e.g. across Dask workers) as made


class SearchError(StageError):
    """A source (platform search, URL list, folder) could not be read."""


class DownloadError(StageError):
    """A video could not be downloaded."""


class ProbeError(StageError):
    """A downloaded file is not a usable video with music."""


class DedupError(StageError):
    """A video could not be fingerprinted, or a saved fingerprint could not be read."""


class SplitError(DvmsetError):
    """The split's inputs are inconsistent (a bad clip count, share or published assignment)."""


class PublishError(DvmsetError):
    """A manifest version cannot be published (it exists, a fingerprint is missing, a group would leak)."""
