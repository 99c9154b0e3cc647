"""Settle a clip's label events into a `Decision` (pure; the catalog feeds it its `labels` rows).

In: `LabelEvent`s of any clips, in any order. Out: clip id -> `Decision`, for the decided clips
(`settle`), or clip id -> the disagreeing votes, for the disputed ones (`disputes`).

The rule, per clip:

1. each annotator's latest event counts (by `ts`, then `event_id`); earlier ones are history;
2. an event whose decision is neither `accepted` nor `rejected` (e.g. `pending_review`: an undo)
   withdraws that annotator's vote;
3. the deciding votes: the reviewers' votes (events cast in the `reviewer` role) when there is
   one: a reviewer outranks every annotator, and among reviewers the side more than half of
   them took decides (2 of 3), all of them on a tie; else the people's votes: the automatic
   annotator's vote (the prescreen's auto-reject) counts only while no person has a vote;
4. the clip is decided when at least one deciding vote is left and all of them agree. When
   they disagree (annotators, or reviewers in a tie) the clip is disputed and stays undecided
   until a later event settles it: a reviewer votes (one more reviewer breaks a tie), or one
   side changes or withdraws its vote. A reviewer's undo withdraws the ruling and brings the
   dispute back.

The decision carries the deciding votes' reasons (their union, sorted, unknown ones as `other`),
the deciding voters' names (sorted: the reviewers of the deciding side, not the annotators they overruled,
whose events stay in the history) and the latest deciding vote's note.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from dvmset.records import ClipStatus, Decision, RejectReason, Role

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
    role: Role = Role.ANNOTATOR  # the role the annotator voted in


def live_votes(events: Iterable[LabelEvent]) -> dict[str, list[LabelEvent]]:
    """Clip id -> its live votes (rules 1 and 2: each annotator's latest event, where it is an
    accept or a reject), oldest first; clips without a live vote are left out."""
    latest: dict[str, dict[str, LabelEvent]] = defaultdict(dict)
    for event in sorted(events, key=_order):
        latest[event.clip_id][event.annotator] = event
    live = {
        clip_id: sorted((event for event in by_annotator.values() if event.decision in VOTES), key=_order)
        for clip_id, by_annotator in latest.items()
    }
    return {clip_id: votes for clip_id, votes in live.items() if votes}


def deciding_votes(votes: list[LabelEvent], auto_annotator: str) -> list[LabelEvent]:
    """Of one clip's live votes, those that decide it (rule 3): the reviewers' majority (all reviewers'
    votes on a tie), else the people's, else all."""
    reviewers = [vote for vote in votes if vote.role is Role.REVIEWER]
    if reviewers:
        decision, count = Counter(vote.decision for vote in reviewers).most_common(1)[0]
        return [vote for vote in reviewers if vote.decision == decision] if 2 * count > len(reviewers) else reviewers
    people = [vote for vote in votes if vote.annotator != auto_annotator]
    return people or votes


def settle(events: Iterable[LabelEvent], auto_annotator: str) -> dict[str, Decision]:
    """Clip id -> its settled `Decision` under the module's rule; undecided clips are left out."""
    decided = {}
    for clip_id, votes in live_votes(events).items():
        decision = _agreed(deciding_votes(votes, auto_annotator))
        if decision is not None:
            decided[clip_id] = decision
    return dict(sorted(decided.items()))


def disputes(events: Iterable[LabelEvent], auto_annotator: str) -> dict[str, list[LabelEvent]]:
    """Clip id -> its deciding votes (oldest first), for the clips whose deciding votes disagree."""
    disputed = {}
    for clip_id, votes in live_votes(events).items():
        deciding = deciding_votes(votes, auto_annotator)
        if len({vote.decision for vote in deciding}) > 1:
            disputed[clip_id] = deciding
    return dict(sorted(disputed.items()))


def _order(event: LabelEvent) -> tuple[datetime, int]:
    return event.ts, event.event_id


def _agreed(votes: list[LabelEvent]) -> Decision | None:
    """The decision all `votes` agree on; None when there is none or they disagree."""
    if not votes or len({vote.decision for vote in votes}) != 1:
        return None
    reasons = {_reason(reason) for vote in votes for reason in vote.reasons}
    last = max(votes, key=_order)
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
