"""What per-video steps leave, and one stage's tally of it.

In: a step's `StepOutcome` (the status it left a video as, a reason, or why it left the video to
another run), or the error of a step that raised (in a flow: after its task's retries). Out:
`StageTally`, the counts by status and reason, each failure (`Failure`), and a one-line summary
(`probe: 4 videos -> failed/not_media 1, probed 2, skipped/too_short 1`). The CLI prints the
line, rebuild hands the tally on, and flows turn it into the run summary's rows (`flows.summary`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from dvmset.errors import ReasonCode
from dvmset.records import VideoStatus

LEFT_LEASED = "leased"  # another live worker holds the video
LEFT_DONE = "done_elsewhere"  # another run did the stage while this one waited
LEFT_LOST = "lease_lost"  # the lease ran out mid-step and another worker took the video over
ERROR_STATUS = "error"  # a step that raised: the video's catalog row is unchanged and a rerun retries it
LEFT_STATUS = "left"  # a video this run left to another (its reason: one of the `LEFT_*` codes)


@dataclass(frozen=True)
class StepOutcome:
    """What a step left a video as; `left` (one of the `LEFT_*` codes) when it left the video to another run."""

    video_id: str
    status: VideoStatus
    reason: ReasonCode | None = None
    left: str | None = None


@dataclass(frozen=True)
class Failure:
    """One video that a stage failed, skipped or could not run (`ERROR_STATUS`); `message` may be
    empty until the catalog's is looked up (see `flows.summary.RunSummary.of_stage`)."""

    stage: str
    video_id: str
    status: str
    reason: str
    message: str


@dataclass
class StageTally:
    """The outcomes of one stage, counted by (status, reason) as its steps finish."""

    stage: str
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def failed(self) -> int:
        """Videos this stage marked `failed` (not skipped, not left to other runs)."""
        return sum(n for (status, _reason), n in self.counts.items() if status == VideoStatus.FAILED.value)

    def add(self, outcome: StepOutcome) -> None:
        if outcome.left is not None:  # another run holds it or did it: not a failure
            self.counts[(LEFT_STATUS, outcome.left)] += 1
            return
        reason = outcome.reason.value if outcome.reason is not None else ""
        self.counts[(outcome.status.value, reason)] += 1
        if outcome.status in (VideoStatus.FAILED, VideoStatus.SKIPPED):
            self.failures.append(Failure(self.stage, outcome.video_id, outcome.status.value, reason, ""))

    def add_error(self, video_id: str, error: BaseException) -> None:
        """A step that raised (after its retries): nothing was recorded in the catalog for the video."""
        reason = type(error).__name__
        self.counts[(ERROR_STATUS, reason)] += 1
        self.failures.append(Failure(self.stage, video_id, ERROR_STATUS, reason, str(error)))

    def line(self) -> str:
        """e.g. `probe: 4 videos -> failed/not_media 1, probed 2, skipped/too_short 1`."""
        counts = sorted(self.counts.items())
        parts = ", ".join(f"{status}/{reason} {n}" if reason else f"{status} {n}" for (status, reason), n in counts)
        return f"{self.stage}: {self.total} videos -> {parts or 'nothing to do'}"
