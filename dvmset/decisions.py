"""Settle a clip's label events into a `Decision` (pure; the catalog feeds it its `labels` rows).

In: `LabelEvent`s of any clips, in any order. Out: clip id -> `Decision`, for the decided clips.

The rule, per clip:

1. each annotator's latest event counts (by `ts`, then `event_id`); earlier ones are history;
2. an event whose decision is neither `accepted` nor `rejected` (e.g. `pending_review`: an undo)
   withdraws that annotator's vote;
3. the automatic annotator's vote (the prescreen's auto-reject) counts only while no person has
   a vote: any person's accept or reject overrides it;
4. the clip is decided when at least one vote is left and all of them agree. When people
   disagree it stays undecided until a later event settles it: one side changes or withdraws
   its vote (no annotator outranks another).

The decision carries the union of the voters' reasons (sorted, unknown ones as `other`), the
voters' names (sorted) and the latest vote's note.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from dvmset.records import ClipStatus, Decision, RejectReason

VOTES = (ClipStatus.ACCEPTED.value, ClipStatus.REJECTED.value)


@dataclass(frozen=True)
class LabelEvent:
    """One row of the `labels` table."""

    event_id: int
    clip_id: str
    annotator: str
    decision: str
    reasons: tuple[str, ...]
    note: str | None
    ts: datetime


def settle(events: Iterable[LabelEvent], auto_annotator: str) -> dict[str, Decision]:
    """Clip id -> its settled `Decision` under the module's rule; undecided clips are left out."""
    latest: dict[str, dict[str, LabelEvent]] = defaultdict(dict)
    for event in sorted(events, key=lambda e: (e.ts, e.event_id)):
        latest[event.clip_id][event.annotator] = event
    decided = {}
    for clip_id, by_annotator in latest.items():
        votes = [event for event in by_annotator.values() if event.decision in VOTES]
        people = [event for event in votes if event.annotator != auto_annotator]
        decision = _agreed(people or votes)
        if decision is not None:
            decided[clip_id] = decision
    return dict(sorted(decided.items()))


def _agreed(votes: list[LabelEvent]) -> Decision | None:
    """The decision all `votes` agree on; None when there is none or they disagree."""
    if not votes or len({vote.decision for vote in votes}) != 1:
        return None
    reasons = {_reason(reason) for vote in votes for reason in vote.reasons}
    last = max(votes, key=lambda e: (e.ts, e.event_id))
    return Decision(
        status=ClipStatus(last.decision),
        reasons=tuple(sorted(reasons)),
        annotators=tuple(sorted(vote.annotator for vote in votes)),
        note=last.note,
    )


def _reason(value: str) -> RejectReason:
    try:
        return RejectReason(value)
    except ValueError:
        return RejectReason.OTHER
