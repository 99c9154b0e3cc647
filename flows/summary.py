"""Run summaries: what a flow did, as plain data (a dict a deployment returns) and as markdown.

In: the outcomes of discovery sources, each stage's tally (`curation.outcomes.StageTally`) and
a publish, and the catalog after the run. Out: `RunSummary` (`as_dict` / `from_dict`,
`markdown`), and the artifact key that names the data root and the run (`artifact_key`). No
Prefect here: flows turn the markdown into an artifact.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

from curation.outcomes import ERROR_STATUS, Failure, StageTally
from curation.publish import PublishResult
from dvmset.catalog import Catalog
from dvmset.records import VideoStatus

LISTED_FAILED = 20  # the catalog's failed videos a summary lists (it counts them all)
WITHHELD_STATUS = "withheld"  # a video publish left out: it would join groups published on both sides
NOT_FAILED = frozenset({VideoStatus.SKIPPED.value, WITHHELD_STATUS})  # listed, but not failures of the run


@dataclass(frozen=True)
class SourceRow:
    """One discovery source: a folder, a URL list or a search query."""

    source: str
    hits: int
    new_videos: int
    error: str = ""  # "<reason>: <message>" when the source could not be read


@dataclass(frozen=True)
class PublishRow:
    """One side (train or test) of the manifest version a run published, or (split "", error set)
    the version it could not publish."""

    version: str
    split: str
    clips: int
    videos: int
    manifest_dir: str
    error: str = ""


@dataclass(frozen=True)
class CountRow:
    """How many videos of one stage share a status and reason; stage "catalog" (videos) or "clips"
    (clips) for the catalog's totals after the run."""

    stage: str
    status: str
    reason: str
    count: int


@dataclass(frozen=True)
class RunSummary:
    """What one flow run did (sources, stages, failures) and the catalog's counts after it."""

    sources: tuple[SourceRow, ...] = ()
    stages: tuple[CountRow, ...] = ()
    failures: tuple[Failure, ...] = ()
    catalog: tuple[CountRow, ...] = ()
    clips: tuple[CountRow, ...] = ()
    published: tuple[PublishRow, ...] = ()
    still_failed: tuple[Failure, ...] = ()  # the first `LISTED_FAILED` failed videos of the catalog after the run

    @property
    def failed_sources(self) -> int:
        return sum(1 for row in self.sources if row.error)

    @property
    def failed_videos(self) -> int:
        """Videos this run failed or could not run (skipped and withheld ones do not count: they do
        not qualify, or not yet)."""
        return sum(1 for f in self.failures if f.status not in NOT_FAILED)

    @property
    def failed_in_catalog(self) -> int:
        """Videos `failed` in the catalog after the run, whichever run failed them."""
        return sum(row.count for row in self.catalog if row.status == VideoStatus.FAILED.value)

    def then(self, later: RunSummary) -> RunSummary:
        """This run followed by `later` (discovery then ingest): rows of both, the later catalog counts."""
        return RunSummary(
            self.sources + later.sources,
            self.stages + later.stages,
            self.failures + later.failures,
            later.catalog or self.catalog,
            later.clips or self.clips,
            self.published + later.published,
            later.still_failed if later.catalog else self.still_failed,
        )

    def with_catalog(self, catalog: Catalog) -> RunSummary:
        """This summary with the catalog's current counts of videos (by status and reason) and clips,
        and its first failed videos."""
        videos = tuple(
            CountRow("catalog", row.status.value, row.reason or "", row.count) for row in catalog.status_counts()
        )
        clips = tuple(
            CountRow("clips", status.value, "", count) for status, count in sorted(catalog.clip_status_counts().items())
        )
        failed = tuple(
            Failure(
                video.stage_version or "",
                video.video_id,
                video.status.value,
                video.error.reason.value if video.error else "",
                video.error.message if video.error else "",
            )
            for video in itertools.islice(catalog.videos(statuses=[VideoStatus.FAILED]), LISTED_FAILED)
        )
        return replace(self, catalog=videos, clips=clips, still_failed=failed)

    @classmethod
    def of_stage(cls, tally: StageTally, catalog: Catalog) -> RunSummary:
        """A stage's count rows, and each failure with the message the catalog recorded for it."""
        recorded = [f.video_id for f in tally.failures if f.status != ERROR_STATUS]
        messages = {
            video.video_id: video.error.message
            for video in (catalog.videos(video_ids=recorded) if recorded else ())
            if video.error is not None
        }
        failures = tuple(replace(f, message=messages.get(f.video_id, f.message)) for f in tally.failures)
        rows = tuple(CountRow(tally.stage, status, reason, n) for (status, reason), n in sorted(tally.counts.items()))
        return cls(stages=rows, failures=failures)

    @classmethod
    def of_publish(cls, result: PublishResult) -> RunSummary:
        """A publish's rows: one per side, and each video it withheld as a `withheld` failure."""
        rows = tuple(
            PublishRow(result.version, side.value, clips, result.videos[side], str(result.manifest_dir))
            for side, clips in result.clips.items()
        )
        withheld = tuple(
            Failure(
                "publish", video_id, WITHHELD_STATUS, "bridges_sides", "it would join groups published on both sides"
            )
            for video_id in result.withheld_video_ids
        )
        return cls(failures=withheld, published=rows)

    def as_dict(self) -> dict[str, list[dict[str, Any]]]:
        return {name: list(rows) for name, rows in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, list[dict[str, Any]]]) -> RunSummary:
        row_types = {
            "sources": SourceRow,
            "stages": CountRow,
            "failures": Failure,
            "catalog": CountRow,
            "clips": CountRow,
            "published": PublishRow,
            "still_failed": Failure,
        }
        return cls(**{name: tuple(row_types[name](**row) for row in rows) for name, rows in data.items()})

    def markdown(self, title: str) -> str:
        """The summary as markdown tables (the flow's artifact; `dvmset build` prints it)."""
        parts = [f"# {title}"]
        if self.sources:
            parts.append(
                _table(
                    "Discovery",
                    ("source", "hits", "new videos", "error"),
                    ((r.source, r.hits, r.new_videos, r.error) for r in self.sources),
                )
            )
        stage_rows = [(r.stage, r.status, r.reason, r.count) for r in self.stages]
        if stage_rows:
            parts.append(
                _table("This run, by stage, status and reason", ("stage", "status", "reason", "videos"), stage_rows)
            )
        else:
            parts.append("## This run\n\nNothing to do: the catalog lists no pending work for these stages.")
        if self.failures:
            parts.append(
                _table(
                    "Failures",
                    ("stage", "video", "status", "reason", "message"),
                    ((f.stage, f.video_id, f.status, f.reason, f.message) for f in self.failures),
                )
            )
        catalog_rows = [(r.status, r.reason, r.count) for r in self.catalog]
        catalog_rows += [(f"clips: {r.status}", "", r.count) for r in self.clips]
        if catalog_rows:
            parts.append(_table("Catalog after the run", ("status", "reason", "count"), catalog_rows))
        if self.failed_in_catalog:
            parts.append(self._still_failed_markdown())
        if self.published:
            parts.append(
                _table(
                    "Published",
                    ("version", "split", "clips", "videos", "folder", "error"),
                    ((r.version, r.split, r.clips, r.videos, r.manifest_dir, r.error) for r in self.published),
                )
            )
        return "\n\n".join(parts) + "\n"

    def _still_failed_markdown(self) -> str:
        listed = len(self.still_failed)
        first = f"the first {listed}" if listed < self.failed_in_catalog else "all"
        note = (
            f"{self.failed_in_catalog} videos are `failed` in the catalog, by this run or earlier ones "
            f"({first} below). "
            "A plain rerun leaves them as they are; `dvmset build --retry-failed` (a deployment: "
            "`--param retry_failed=true`) tries them again."
        )
        return _table(
            "Failed videos in the catalog",
            ("stage", "video", "status", "reason", "message"),
            ((f.stage, f.video_id, f.status, f.reason, f.message) for f in self.still_failed),
            note,
        )


def artifact_key(flow_name: str, data_root: str, run_name: str) -> str:
    """The key of a flow's summary artifact, in the lowercase letters, digits and dashes Prefect
    allows: `dvmset-<flow>-<data root>-<hash>-<run>`, e.g. `dvmset-build-srv-dvmset-data-5e1f0a-crimson-otter`:
    the end of the data root, a hash of it whole (so that two roots never share a key), the flow run's name."""

    def slug(text: str) -> str:
        return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")

    digest = hashlib.sha1(data_root.encode()).hexdigest()[:6]
    parts = ("dvmset", slug(flow_name), slug(data_root)[-40:].strip("-"), digest, slug(run_name))
    return "-".join(part for part in parts if part)


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(title: str, header: tuple[str, ...], rows: Any, note: str = "") -> str:
    lines = [f"## {title}", "", *([note, ""] if note else [])]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)
