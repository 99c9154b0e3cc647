"""Per-video steps: run one stage on one catalog video and record the outcome.

A step never raises for a bad video: a `StageError` is recorded with its reason code, and any
unforeseen exception is recorded as `internal_error` with its message, so one failing video
never stops a run. The CLI loops over these; Prefect tasks wrap them one to one.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from curation import download, probe
from dvmset.catalog import Catalog
from dvmset.config import Config
from dvmset.errors import ReasonCode, StageError
from dvmset.records import VideoRecord, VideoStatus
from dvmset.storage import DataRoot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepOutcome:
    video_id: str
    status: VideoStatus
    reason: ReasonCode | None = None


def _record_failure(catalog: Catalog, video: VideoRecord, error: StageError, stage_version: str) -> StepOutcome:
    status = catalog.mark_error(video.video_id, error, stage_version)
    return StepOutcome(video.video_id, status, error.reason)


def _guarded(stage_version: str, work: Callable[[], StepOutcome], catalog: Catalog, video: VideoRecord) -> StepOutcome:
    try:
        return work()
    except StageError as error:
        return _record_failure(catalog, video, error, stage_version)
    except Exception as exc:  # noqa: BLE001 - the run goes on; the catalog keeps the reason
        log.exception("unexpected error in %s for %s", stage_version, video.video_id)
        error = StageError(ReasonCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        return _record_failure(catalog, video, error, stage_version)


def download_step(catalog: Catalog, config: Config, video: VideoRecord) -> StepOutcome:
    """discovered -> downloaded (or failed/skipped)."""

    def work() -> StepOutcome:
        result = download.download_video(video, config.download, DataRoot(config.data_root))
        catalog.mark_downloaded(result, download.STAGE_VERSION)
        return StepOutcome(video.video_id, VideoStatus.DOWNLOADED)

    return _guarded(download.STAGE_VERSION, work, catalog, video)


def probe_step(catalog: Catalog, config: Config, video: VideoRecord) -> StepOutcome:
    """downloaded -> probed (or failed/skipped)."""

    def work() -> StepOutcome:
        if video.media_path is None:
            raise StageError(ReasonCode.INTERNAL_ERROR, "video has no downloaded file to probe")
        info = probe.probe_media(DataRoot(config.data_root).resolve(video.media_path), config.probe)
        catalog.mark_probed(video.video_id, info, probe.STAGE_VERSION)
        return StepOutcome(video.video_id, VideoStatus.PROBED)

    return _guarded(probe.STAGE_VERSION, work, catalog, video)


@dataclass
class StageSummary:
    """Counts of one stage's outcomes: by resulting status, and failures by reason."""

    stage: str
    statuses: Counter[VideoStatus] = field(default_factory=Counter)
    reasons: Counter[ReasonCode] = field(default_factory=Counter)

    def add(self, outcome: StepOutcome) -> None:
        self.statuses[outcome.status] += 1
        if outcome.reason is not None:
            self.reasons[outcome.reason] += 1

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        return self.statuses[VideoStatus.FAILED]

    def line(self) -> str:
        """e.g. `probe: 10 videos -> probed 7, failed 2, skipped 1 (truncated 2, too_short 1)`."""
        parts = ", ".join(f"{status.value} {count}" for status, count in sorted(self.statuses.items()))
        reasons = ", ".join(f"{reason.value} {count}" for reason, count in sorted(self.reasons.items()))
        return f"{self.stage}: {self.total} videos -> {parts or 'nothing to do'}" + (f" ({reasons})" if reasons else "")


def run_step(
    step: Callable[[Catalog, Config, VideoRecord], StepOutcome],
    stage: str,
    catalog: Catalog,
    config: Config,
    videos: Iterable[VideoRecord],
    on_outcome: Callable[[StepOutcome], None] = lambda _outcome: None,
) -> StageSummary:
    """Run `step` over `videos` in order; `on_outcome` sees each result (e.g. to move a progress bar)."""
    summary = StageSummary(stage)
    for video in videos:
        outcome = step(catalog, config, video)
        summary.add(outcome)
        on_outcome(outcome)
    return summary
