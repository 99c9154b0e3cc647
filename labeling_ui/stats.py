"""The progress page: per-annotator counts and speed, overall progress, and agreement.

In: every label event and the clip counts by status. Out: `Progress` (pure arithmetic) and its
HTML. Agreement is Cohen's kappa of accept/reject between the first two annotators who voted
on each clip that two annotators voted on (the overlap clips); a reviewer's vote is a ruling,
not a rating, and is left out of it. The disagreements are the disputed clips under the rule of
`dvmset/catalog/decisions.py`: a reviewer's vote settles one, so the list shrinks as reviewers work.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from dvmset.catalog.decisions import VOTES, LabelEvent, disputes
from dvmset.catalog.review import AUTO_ANNOTATOR
from dvmset.records import ClipStatus, Role

_BREAK_S = 600.0  # a longer pause between two decisions is a break, not review time


@dataclass(frozen=True)
class AnnotatorStats:
    name: str
    accepted: int  # clips whose latest event by this annotator is an accept
    rejected: int
    undos: int
    median_s_per_clip: float | None  # between consecutive votes, breaks left out


@dataclass(frozen=True)
class Progress:
    annotators: tuple[AnnotatorStats, ...]
    overlap_clips: int  # clips with votes from two annotators
    kappa: float | None  # None: no overlap clip yet, or no variation to measure agreement on
    disagreements: tuple[str, ...]  # disputed clip ids: their deciding votes differ (no reviewer ruled, or a tie)


def cohens_kappa(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two raters' labels, one (rater A, rater B) pair per item."""
    if not pairs:
        return None
    labels = sorted({label for pair in pairs for label in pair})
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    expected = sum((sum(a == lab for a, _ in pairs) / n) * (sum(b == lab for _, b in pairs) / n) for lab in labels)
    return None if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def progress(events: Sequence[LabelEvent]) -> Progress:
    """Counts, speed and agreement from the label events (automatic rejections left out)."""
    people = sorted((e for e in events if e.annotator != AUTO_ANNOTATOR), key=lambda e: (e.ts, e.event_id))
    latest: dict[str, dict[str, LabelEvent]] = defaultdict(dict)
    first_vote: dict[str, dict[str, LabelEvent]] = defaultdict(dict)
    times: dict[str, list] = defaultdict(list)
    for event in people:
        latest[event.clip_id][event.annotator] = event
        if event.decision in VOTES:
            if event.role is Role.ANNOTATOR:
                first_vote[event.clip_id].setdefault(event.annotator, event)
            times[event.annotator].append(event.ts)
    annotators = []
    for name in sorted({event.annotator for event in people}):
        votes = [by[name].decision for by in latest.values() if name in by]
        gaps = [(b - a).total_seconds() for a, b in zip(times[name], times[name][1:])]
        gaps = [gap for gap in gaps if gap <= _BREAK_S]
        annotators.append(
            AnnotatorStats(
                name,
                votes.count(ClipStatus.ACCEPTED.value),
                votes.count(ClipStatus.REJECTED.value),
                sum(e.decision not in VOTES for e in people if e.annotator == name),
                statistics.median(gaps) if gaps else None,
            )
        )
    pairs = []
    for clip_id in sorted(latest):
        live = {who: e.decision for who, e in latest[clip_id].items() if e.decision in VOTES}
        raters = sorted((e for who, e in first_vote[clip_id].items() if who in live), key=lambda e: (e.ts, e.event_id))
        if len(raters) >= 2:
            pairs.append((live[raters[0].annotator], live[raters[1].annotator]))
    return Progress(tuple(annotators), len(pairs), cohens_kappa(pairs), tuple(disputes(events, AUTO_ANNOTATOR)))


def stats_html(events: Sequence[LabelEvent], clip_counts: dict[ClipStatus, int]) -> str:
    """The progress page: clips by status, one row per annotator, agreement and disagreements."""
    result = progress(events)
    total = sum(count for status, count in clip_counts.items() if status is not ClipStatus.RETIRED)
    done = total - clip_counts.get(ClipStatus.PENDING_REVIEW, 0)
    head = f"<p id='dv-overall'>{done} of {total} clips decided</p>"
    rows = "".join(
        f"<tr><td>{escape(a.name)}</td><td>{a.accepted}</td><td>{a.rejected}</td><td>{a.undos}</td>"
        f"<td>{'-' if a.median_s_per_clip is None else f'{a.median_s_per_clip:.1f}'}</td></tr>"
        for a in result.annotators
    )
    table = (
        "<table id='dv-annotators'><tr><th>annotator</th><th>accepted</th><th>rejected</th><th>undos</th>"
        f"<th>median s per clip</th></tr>{rows}</table>"
    )
    kappa = "-" if result.kappa is None else f"{result.kappa:.2f}"
    agreement = f"<p id='dv-kappa'>overlap clips: {result.overlap_clips}; Cohen's kappa: {kappa}</p>"
    listed = "".join(f"<li>{escape(clip_id)}</li>" for clip_id in result.disagreements[:50])
    disagree = f"<p>disagreements: {len(result.disagreements)}</p><ul id='dv-disagreements'>{listed}</ul>"
    return head + table + agreement + disagree
