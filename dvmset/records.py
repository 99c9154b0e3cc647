"""Frozen records that stages take and return, and the status enums of the catalog.

Video statuses advance `discovered -> downloaded -> probed -> separated -> clipped`, or end in
`failed` / `skipped` with an `ErrorInfo`. Clips go `pending_review -> accepted | rejected`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from dvmset.errors import ReasonCode, StageError


class VideoStatus(StrEnum):
    DISCOVERED = "discovered"
    DOWNLOADED = "downloaded"
    PROBED = "probed"
    SEPARATED = "separated"
    CLIPPED = "clipped"
    FAILED = "failed"
    SKIPPED = "skipped"


class ClipStatus(StrEnum):
    PENDING_REVIEW = "pending_review"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class SourceKind(StrEnum):
    """Where a candidate came from."""

    PLATFORM_SEARCH = "platform_search"
    URL_LIST = "url_list"
    LOCAL_FOLDER = "local_folder"


@dataclass(frozen=True)
class ErrorInfo:
    """A reason code plus a readable message, as stored in the catalog."""

    reason: ReasonCode
    message: str

    @classmethod
    def from_error(cls, error: StageError) -> ErrorInfo:
        return cls(reason=error.reason, message=error.message)


@dataclass(frozen=True)
class Candidate:
    """One search hit: a video to fetch, and the query (or list, or folder) that found it.

    `url` is what the download stage fetches: a web page URL, or an absolute local path.
    """

    video_id: str
    url: str
    source: SourceKind
    query: str
    title: str | None = None
    duration_s: float | None = None


@dataclass(frozen=True)
class SourceMetadata:
    """What the platform says about a video (all optional: platforms differ)."""

    title: str | None = None
    channel: str | None = None
    upload_date: str | None = None  # YYYYMMDD, as yt-dlp gives it
    duration_s: float | None = None
    license: str | None = None
    webpage_url: str | None = None
    extractor: str | None = None


@dataclass(frozen=True)
class ProbeInfo:
    """What ffprobe and the decode check found in a media file."""

    duration_s: float
    size_bytes: int
    container: str
    video_codec: str
    width: int
    height: int
    fps: float
    audio_codec: str
    sample_rate_hz: int
    channels: int
    channel_layout: str | None = None


@dataclass(frozen=True)
class Download:
    """Output of the download stage: the media file (relative to the data root) and its metadata."""

    video_id: str
    media_path: str
    metadata: SourceMetadata


@dataclass(frozen=True)
class VideoRecord:
    """One row of the `videos` table, with the queries that found it."""

    video_id: str
    url: str
    platform: str
    source: SourceKind
    status: VideoStatus
    queries: tuple[str, ...] = ()
    metadata: SourceMetadata = field(default_factory=SourceMetadata)
    media_path: str | None = None
    probe: ProbeInfo | None = None
    error: ErrorInfo | None = None
    stage_version: str | None = None
    updated_at: datetime | None = None
