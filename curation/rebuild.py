"""Rebuild the clips of a media-free release through the normal pipeline (`dvmset rebuild`).

In: a release folder (`manifests.release`), an open catalog and the config. Steps: add every
released video to the catalog as a URL-list candidate under its released id, once per query;
run the stages (the table `curation.steps.STAGES`: download, probe, separate, clip, fingerprint)
over the released videos that still need them; compare every released clip with what came out; record
the release's decision of every rebuilt clip as a label event by `release:<version>` (once: a
rerun adds none). Out: a `RebuildReport`, one `ClipOutcome` per released clip:

- `rebuilt`: the clip id exists again, live, with the released duration to within one frame;
- `missing`: its video did not get through the stages; the reason is the video's error code
  (e.g. `unavailable` when the source is gone, from the download error);
- `times_changed`: the video was clipped, but this clip id is not among its clips (`not_made`:
  e.g. the source is shorter now, or another clip length is configured) or its duration differs
  (`duration`).

A missing source is reported, never raised. A rerun does only the unfinished work.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from curation import steps
from curation.outcomes import StageTally
from dvmset.catalog import Catalog
from dvmset.config import Config
from dvmset.records import Candidate, ClipRecord, ClipStatus, SourceKind, VideoRecord, VideoStatus
from manifests.release import read_release

FRAME_SLACK_S = 1e-6  # float noise on top of the one frame a rebuilt clip may differ by
RELEASE_NOTE = "decision carried over from the release"


class Outcome(StrEnum):
    REBUILT = "rebuilt"
    MISSING = "missing"
    TIMES_CHANGED = "times_changed"


@dataclass(frozen=True)
class ClipOutcome:
    """What became of one released clip; `reason` is a code (None when rebuilt), `detail` says
    it for people."""

    clip_id: str
    video_id: str
    outcome: Outcome
    reason: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class RebuildReport:
    """The outcome of every released clip, the label events added, and warnings about settings
    that differ from the release's."""

    version: str
    clips: tuple[ClipOutcome, ...]
    labels_added: int
    warnings: tuple[str, ...]

    @property
    def rebuilt(self) -> int:
        return sum(1 for clip in self.clips if clip.outcome is Outcome.REBUILT)

    def counts(self) -> Counter[tuple[Outcome, str | None]]:
        """(outcome, reason) -> clips."""
        return Counter((clip.outcome, clip.reason) for clip in self.clips)


def rebuild(
    release_dir: Path,
    catalog: Catalog,
    config: Config,
    on_stage: Callable[[StageTally], None] = lambda _tally: None,
) -> RebuildReport:
    """Rebuild the release in `release_dir` into `config`'s data root (module docstring); `on_stage`
    sees each stage's tally. ManifestError for an unreadable release; ConfigError (e.g. no
    separator model) stops the run before any video is separated."""
    table, metadata = read_release(release_dir)
    released = table.to_pylist()
    version = str(metadata.get("release_version") or Path(release_dir).name)
    catalog.add_candidates(_candidates(released, version))
    video_ids = {row["video_id"] for row in released}
    for stage in steps.STAGES:  # each stage's preflight (the separator) stops a bad set-up before its videos
        pending = [video for video in stage.pending(catalog, config) if video.video_id in video_ids]
        on_stage(steps.run_stage(stage, catalog, config, pending))
    videos = {video.video_id: video for video in catalog.videos() if video.video_id in video_ids}
    made = {clip.clip_id: clip for clip in catalog.clips() if clip.video_id in video_ids}
    outcomes = tuple(_outcome(row, videos.get(row["video_id"]), made) for row in released)
    rebuilt = {clip.clip_id for clip in outcomes if clip.outcome is Outcome.REBUILT}
    added = _carry_decisions(catalog, [row for row in released if row["clip_id"] in rebuilt], f"release:{version}")
    return RebuildReport(version, outcomes, added, _setting_warnings(metadata.get("config") or "", config))


def _candidates(released: list[dict], version: str) -> list[Candidate]:
    """One URL-list candidate per released video and query (`release:<version>` when it has none)."""
    first_rows = {row["video_id"]: row for row in reversed(released)}
    return [
        Candidate(row["video_id"], row["source_url"], SourceKind.URL_LIST, query, title=row["title"])
        for video_id, row in sorted(first_rows.items())
        for query in (row["queries"] or [f"release:{version}"])
    ]


def _outcome(row: dict, video: VideoRecord | None, made: dict[str, ClipRecord]) -> ClipOutcome:
    """Compare one released clip with what the stages made of its video."""
    clip_id, video_id = row["clip_id"], row["video_id"]
    if video is None or video.status is not VideoStatus.CLIPPED:
        if video is not None and video.error is not None:
            reason, detail = video.error.reason.value, video.error.message
        else:
            reason, detail = "incomplete", f"video is {video.status.value if video else 'not in the catalog'}"
        return ClipOutcome(clip_id, video_id, Outcome.MISSING, reason, detail)
    clip = made.get(clip_id)
    if clip is None or clip.status is ClipStatus.RETIRED:
        length = f"{video.probe.duration_s:.2f} s" if video.probe else "unknown length"
        return ClipOutcome(clip_id, video_id, Outcome.TIMES_CHANGED, "not_made", f"the source now has {length}")
    frame_s = 1.0 / (clip.fps or row["fps"])
    if abs(clip.duration_s - row["duration_s"]) > frame_s + FRAME_SLACK_S:
        detail = f"duration {clip.duration_s:.3f} s, released {row['duration_s']:.3f} s"
        return ClipOutcome(clip_id, video_id, Outcome.TIMES_CHANGED, "duration", detail)
    return ClipOutcome(clip_id, video_id, Outcome.REBUILT)


def _carry_decisions(catalog: Catalog, rows: list[dict], annotator: str) -> int:
    """Append the released decision of each row as a label event by `annotator`, unless that
    annotator's latest event on the clip already says the same; return how many were added."""
    latest = {
        event.clip_id: (event.decision, tuple(event.reasons))
        for event in catalog.label_events()  # in insertion order: the last one wins
        if event.annotator == annotator
    }
    added = 0
    for row in rows:
        if latest.get(row["clip_id"]) != (row["decision"], tuple(row["reasons"])):
            catalog.add_label(row["clip_id"], annotator, ClipStatus(row["decision"]), row["reasons"], note=RELEASE_NOTE)
            added += 1
    return added


def _setting_warnings(release_config_toml: str, config: Config) -> tuple[str, ...]:
    """Warnings where `config` differs from the release's config in what shapes the clips."""
    try:
        released = tomllib.loads(release_config_toml)
    except tomllib.TOMLDecodeError:
        return ("the release's config is not readable TOML; clip settings not compared",)
    checks = [
        ("clip", "clip_s", config.clip.clip_s, "clip ids will not match"),
        ("separate", "model", config.separate.model, "the music will differ"),
        ("loudness", "target_lufs", config.loudness.target_lufs, "the loudness will differ"),
    ]
    warnings = []
    for section, key, current, effect in checks:
        value = released.get(section, {}).get(key)
        if value is not None and value != current:
            warnings.append(f"[{section}] {key} is {current!r} here but {value!r} in the release: {effect}")
    return tuple(warnings)
