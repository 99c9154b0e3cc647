"""Download stage: one discovered video in, one media file under `raw/<video_id>/` out.

In: a `VideoRecord` (a web page URL, or an absolute local path for `SourceKind.LOCAL_FOLDER`),
the `DownloadConfig` and the `DataRoot`. Out: a `Download` with the media file as
`raw/<video_id>/source.<ext>` (relative to the data root) and the platform metadata, which is
also kept beside it as `metadata.json`, so a later run returns both without network access.

URLs go through yt-dlp with a download archive (`state/yt-dlp-archive.txt`), a height cap, a
duration filter, cookies, rate limits and our own retries with exponential back-off for
transient errors only. yt-dlp writes under a temporary name (`.source.tmp-...`); only the
finished file is renamed to `source.<ext>`. Failures raise `DownloadError` with a reason code
(yt-dlp's message -> reason: `curation.ytdlp_errors.reason_for`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yt_dlp
from yt_dlp.postprocessor import PostProcessor

from curation.ytdlp_errors import YtdlpLogger, clean_message, is_transient, reason_for
from dvmset.config import DownloadConfig
from dvmset.errors import ConfigError, DownloadError, ReasonCode
from dvmset.records import Download, SourceKind, SourceMetadata, VideoRecord
from dvmset.storage import (
    ARCHIVE_FILE,
    MEDIA_STEM,
    METADATA_FILE,
    DataRoot,
    atomic_path,
    atomic_write_text,
    remove_stale_temps,
    temp_name_for,
)

STAGE_VERSION = "download/1"
YTDLP_RETRIES = 1  # yt-dlp's own retries (one in-place resume); the whole download is retried here

log = logging.getLogger(__name__)


def backoff_delay_s(attempt: int, cfg: DownloadConfig) -> float:
    """Seconds to wait after failed attempt number `attempt` (0-based)."""
    return min(cfg.backoff_base_s * 2**attempt, cfg.backoff_max_s)


def duration_rejection(duration_s: float | None, cfg: DownloadConfig) -> DownloadError | None:
    """The error for a known duration outside [min_duration_s, max_duration_s]; None if it passes."""
    if duration_s is None:
        return None
    if duration_s < cfg.min_duration_s:
        return DownloadError(ReasonCode.TOO_SHORT, f"duration {duration_s:.0f} s < minimum {cfg.min_duration_s:.0f} s")
    if duration_s > cfg.max_duration_s:
        return DownloadError(ReasonCode.TOO_LONG, f"duration {duration_s:.0f} s > maximum {cfg.max_duration_s:.0f} s")
    return None


class DurationFilter:
    """A yt-dlp `match_filter` that remembers why it rejected a video."""

    def __init__(self, cfg: DownloadConfig):
        self.cfg = cfg
        self.rejection: DownloadError | None = None

    def __call__(self, info: dict[str, Any], *, incomplete: bool = False) -> str | None:
        self.rejection = self.rejection or duration_rejection(info.get("duration"), self.cfg)
        return self.rejection.message if self.rejection else None


def ytdlp_params(
    cfg: DownloadConfig, raw_dir: Path, temp_stem: str, archive: Path, match_filter: Callable[..., str | None]
) -> dict[str, Any]:
    """YoutubeDL options. Raises ConfigError for a bad rate limit or a missing cookies file."""
    params: dict[str, Any] = {
        "paths": {"home": str(raw_dir)},
        "outtmpl": {"default": f"{temp_stem}.%(ext)s"},
        "download_archive": str(archive),
        "format": f"bv*[height<={cfg.max_height}]+ba/b[height<={cfg.max_height}]/bv*+ba/b",
        "merge_output_format": "mp4",
        "match_filter": match_filter,
        "noplaylist": True,
        "retries": YTDLP_RETRIES,
        "fragment_retries": YTDLP_RETRIES,
        "extractor_retries": YTDLP_RETRIES,
        "socket_timeout": cfg.socket_timeout_s,
        "sleep_interval_requests": cfg.sleep_requests_s,
        "quiet": True,
        "noprogress": True,
        "color": "no_color",
        "logger": YtdlpLogger(),
    }
    if cfg.sleep_interval_s > 0:
        params["sleep_interval"] = cfg.sleep_interval_s
        params["max_sleep_interval"] = max(cfg.sleep_interval_s, cfg.max_sleep_interval_s)
    if cfg.rate_limit:
        params["ratelimit"] = yt_dlp.utils.parse_bytes(cfg.rate_limit)
        if params["ratelimit"] is None:
            raise ConfigError(f"download.rate_limit {cfg.rate_limit!r} is not a byte rate such as '500K' or '4.2M'")
    if cfg.cookies_file:
        if not cfg.cookies_file.is_file():
            raise ConfigError(f"download.cookies_file {cfg.cookies_file} does not exist")
        params["cookiefile"] = str(cfg.cookies_file)
    if cfg.proxy:
        params["proxy"] = cfg.proxy
    return params


def finished_media(raw_dir: Path) -> Path | None:
    """The finished `source.<ext>` of an earlier run, if any (temporary names start with a dot)."""
    return next((path for path in sorted(raw_dir.glob(f"{MEDIA_STEM}.*")) if path.is_file()), None)


def metadata_from_info(info: dict[str, Any]) -> SourceMetadata:
    extractor = info.get("extractor_key") or info.get("extractor")
    return SourceMetadata(
        title=info.get("title"),
        channel=info.get("channel") or info.get("uploader"),
        upload_date=info.get("upload_date"),
        duration_s=info.get("duration"),
        license=info.get("license"),
        webpage_url=info.get("webpage_url"),
        extractor=extractor.lower() if extractor else None,
    )


def _read_metadata(raw_dir: Path, fallback: SourceMetadata) -> SourceMetadata:
    path = raw_dir / METADATA_FILE
    return SourceMetadata(**json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else fallback


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(source, target)


def _fetch_local(video: VideoRecord, raw_dir: Path) -> tuple[Path, SourceMetadata]:
    source = Path(video.url)
    metadata = SourceMetadata(title=source.stem, extractor="local")
    if (done := finished_media(raw_dir)) is not None:
        return done, metadata
    if not source.is_file():
        raise DownloadError(ReasonCode.SOURCE_NOT_FOUND, f"local file {source} does not exist")
    final = raw_dir / f"{MEDIA_STEM}{source.suffix.lower()}"
    with atomic_path(final) as temp:
        _link_or_copy(source, temp)
    return final, metadata


def _with_retries(action: Callable[[], object], cfg: DownloadConfig, sleep: Callable[[float], None]) -> None:
    """Run `action`, retrying transient yt-dlp errors with back-off; map the final error to a reason."""
    attempt = 0
    while True:
        try:
            action()
            return
        except yt_dlp.utils.DownloadError as exc:
            message = clean_message(str(exc))
            if attempt >= cfg.retries or not is_transient(message):
                tries = f" (gave up after {attempt + 1} attempts)" if attempt else ""
                raise DownloadError(reason_for(message), message + tries) from exc
            delay_s = backoff_delay_s(attempt, cfg)
            attempt += 1
            log.warning("transient error, retry %d/%d in %.1f s: %s", attempt, cfg.retries, delay_s, message)
            sleep(delay_s)


class PublishFinished(PostProcessor):
    """yt-dlp's last post-processor: writes `metadata.json`, then renames the file to `source.<ext>`.

    It runs before yt-dlp records the video in its archive, so the archive never lists a video
    whose finished file is not in place.
    """

    def run(self, info: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        produced = Path(info["filepath"])
        final = produced.with_name(f"{MEDIA_STEM}{produced.suffix.lower()}")
        atomic_write_text(final.with_name(METADATA_FILE), json.dumps(asdict(metadata_from_info(info)), indent=2))
        os.replace(produced, final)
        info["filepath"] = str(final)
        return [], info


def _fetch_url(
    video: VideoRecord, cfg: DownloadConfig, raw_dir: Path, archive: Path, sleep: Callable[[float], None]
) -> tuple[Path, SourceMetadata]:
    if (done := finished_media(raw_dir)) is not None:
        return done, _read_metadata(raw_dir, fallback=video.metadata)
    remove_stale_temps(raw_dir)  # .part files of a killed run
    temp_stem = temp_name_for(raw_dir / MEDIA_STEM).name
    duration_filter = DurationFilter(cfg)
    params = ytdlp_params(cfg, raw_dir, temp_stem, archive, duration_filter)
    archive.parent.mkdir(parents=True, exist_ok=True)

    def attempt() -> None:
        with yt_dlp.YoutubeDL(params) as ydl:
            ydl.add_post_processor(PublishFinished(), when="after_move")
            ydl.extract_info(video.url, download=True)

    try:
        _with_retries(attempt, cfg, sleep)
    finally:
        for leftover in raw_dir.glob(f"{temp_stem}*"):
            leftover.unlink()
    if duration_filter.rejection is not None:
        raise duration_filter.rejection
    if (done := finished_media(raw_dir)) is None:
        raise DownloadError(
            ReasonCode.DOWNLOAD_ERROR,
            f"yt-dlp produced no file for {video.url}: it is not a single video, or the download archive"
            f" {archive} already lists it (remove its line there to download it again)",
        )
    return done, _read_metadata(raw_dir, fallback=video.metadata)


def download_video(
    video: VideoRecord, cfg: DownloadConfig, data_root: DataRoot, *, sleep: Callable[[float], None] = time.sleep
) -> Download:
    """Fetch one video into `raw/<video_id>/source.<ext>`; `sleep` waits between retries."""
    raw_dir = data_root.raw_dir(video.video_id)
    if video.source == SourceKind.LOCAL_FOLDER:
        media, metadata = _fetch_local(video, raw_dir)
    else:
        media, metadata = _fetch_url(video, cfg, raw_dir, data_root.state_dir / ARCHIVE_FILE, sleep)
    return Download(video_id=video.video_id, media_path=data_root.relative(media), metadata=metadata)
