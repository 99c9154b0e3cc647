"""Frozen records that stages take and return, and the status enums of the catalog.

Video statuses advance `discovered -> downloaded -> probed -> separated -> clipped`, or end in
`failed` / `skipped` with an `ErrorInfo`. Clips go `pending_review -> accepted | rejected`; a
clip that a changed plan no longer makes (e.g. another clip length) is `retired`, never deleted
while label events point at it.
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
    RETIRED = "retired"


class PrescreenFlag(StrEnum):
    """What the prescreen can flag in a clip; each is also a reason an annotator may reject it for."""

    NON_MUSIC = "non_music"  # more than a few seconds of silence or speech
    NOISE = "noise"  # persistent noise
    STATIC = "static"  # a still or nearly still picture


class RejectReason(StrEnum):
    """Why a clip is rejected: the paper's four criteria, plus "other" (with a note)."""

    NON_MUSIC = "non_music"  # more than 5 s of non-music (silence, speech, voice-over)
    NOISE = "noise"  # persistent noise
    STATIC = "static"  # static images
    MISMATCH = "mismatch"  # background music that does not match the picture
    OTHER = "other"


class Role(StrEnum):
    """Who casts a label event: a reviewer's vote outranks annotators' (see `dvmset/catalog/decisions.py`)."""

    ANNOTATOR = "annotator"  # reviews the clips of their queue (also the prescreen and release imports)
    REVIEWER = "reviewer"  # settles disagreements; also sees the agreement page


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
class ModelStamp:
    """Which model made something: its id (name, or name and version), the SHA-256 of its weight
    files (None when unknown) and whether it is a stand-in with random weights (never data)."""

    model_id: str
    sha256: str | None = None
    stand_in: bool = False


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
    separator_model_id: str | None = None
    separate_version: str | None = None
    separator_stand_in: bool = False  # separated by a stand-in (random-weight) model: never data
    separation_models: tuple[ModelStamp, ...] = ()  # the separator and speech detector its stems came from
    clip_count: int | None = None
    fingerprint_version: int | None = None
    group_id: str | None = None  # near-duplicate group, set by publish
    split: str | None = None  # the published side ("train" / "test"); never changes once set


@dataclass(frozen=True)
class ClipLoudness:
    """What the loudness stage measured and did: integrated loudness (LUFS; -inf for silence)
    before and after, the true peak after (dBTP), the static gain, and whether the limiter acted."""

    before_lufs: float
    after_lufs: float
    true_peak_dbtp: float
    gain_db: float
    limited: bool
    silent: bool


@dataclass(frozen=True)
class PrescreenScores:
    """The prescreen's scores of one clip; `priority` orders the review queue (higher first)."""

    silence_s: float  # seconds of silent frames in the music
    longest_silence_s: float  # longest run of silent frames
    speech_s: float  # seconds of speech (a speech detector on the vocals stem: talk, voice-over)
    non_music_s: float  # seconds that are silent or speech (the union)
    static_share: float  # 0..1: share of the clip where the picture stands still
    noise_score: float  # 0..1: how noise-like the music is
    scene_cuts_s: tuple[float, ...]  # scene-cut times from the clip's start
    flags: tuple[PrescreenFlag, ...]
    priority: float


@dataclass(frozen=True)
class ClipVersions:
    """The stage keys (`<stage>/<code version>+<settings hash>`) a clip's files and scores came from."""

    separate: str
    clip: str
    loudness: str
    prescreen: str


@dataclass(frozen=True)
class ClipRecord:
    """One row of the `clips` table. Paths are relative to the data root."""

    clip_id: str
    video_id: str
    start_s: float
    end_s: float
    status: ClipStatus
    fps: float
    video_path: str
    music_path: str
    separator_model_id: str
    loudness: ClipLoudness
    prescreen: PrescreenScores
    versions: ClipVersions
    updated_at: datetime | None = None
    stand_in: bool = False  # its music came from a stand-in (random-weight) separator: never data

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Decision:
    """The settled decision on a clip, from its label events: accepted or rejected, the union of
    the reasons given for it, and who decided (annotator names, sorted)."""

    status: ClipStatus  # ACCEPTED or REJECTED
    reasons: tuple[RejectReason, ...] = ()
    annotators: tuple[str, ...] = ()
    note: str | None = None
