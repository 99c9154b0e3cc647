"""One annotator's review session over the catalog: the clip on screen, the next one, undo.

In: the catalog, `ReviewSettings`, the annotator's name and what they pressed. Out: a new
`SessionState` (the clip on screen and the prefetched next one, both leased in the catalog).
Every decision is written to the catalog (a label event, in the annotator's role) before the
new state is returned, and only where the annotator holds a live claim on the clip (checked in
the catalog's transaction: `ClaimLost` otherwise, and nothing is written). A state belongs to
the annotator it was filled for: another login cannot act on it (`DecisionError`). A reviewer's
queue starts with the disputed clips (`Catalog.claim_next`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from dvmset.catalog import Catalog
from dvmset.errors import DvmsetError
from dvmset.records import ClipStatus, RejectReason, Role


class DecisionError(DvmsetError):
    """A decision the screen cannot take (no clip, a reject without a reason, "other" without a note)."""


@dataclass(frozen=True)
class ReviewSettings:
    lease_s: float = 900.0  # how long a clip on screen (or prefetched) stays reserved
    overlap_share: float = 0.1  # share of clips reviewed by two annotators (agreement)


@dataclass(frozen=True)
class SessionState:
    annotator: str | None = None  # whose session this is (set by the first `fill`)
    current: str | None = None  # the clip on screen
    next: str | None = None  # claimed too, prefetched by the browser
    history: tuple[str, ...] = ()  # clips decided, the latest last (what undo takes back; from the catalog on a reload)
    skipped: tuple[str, ...] = ()
    decided: int = 0  # clips decided today (UTC)


def everyone_annotates(_name: str) -> Role:
    return Role.ANNOTATOR


@dataclass
class ReviewSession:
    catalog: Catalog
    settings: ReviewSettings = field(default_factory=ReviewSettings)
    role_of: Callable[[str], Role | None] = everyone_annotates  # a name's role; None (unknown): annotator

    def role(self, annotator: str) -> Role:
        return self.role_of(annotator) or Role.ANNOTATOR

    def fill(self, state: SessionState, annotator: str) -> SessionState:
        """Renew the leases of the clips on screen and prefetched (a clip whose lease ran out and
        went to someone else is dropped), then claim clips where they are missing."""
        state = self.owned(state, annotator)
        shown = _ids(state.current) + _ids(state.next)
        held = self.catalog.renew_claims(annotator, shown, self.settings.lease_s)
        current, nxt = ([clip_id for clip_id in shown if clip_id in held] + [None, None])[:2]
        current = current or self._claim(annotator, state.skipped)
        nxt = nxt or (self._claim(annotator, state.skipped + _ids(current)) if current else None)
        return replace(state, current=current, next=nxt)

    def resume(self, state: SessionState, annotator: str, history: int = 20) -> SessionState:
        """A new screen (a login or a reload): the undo history and today's count from the
        catalog's label events, then `fill`. A screen that already has them is only filled."""
        state = self.owned(state, annotator)
        if not (state.history or state.decided):
            midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            recent = self.catalog.recent_votes(annotator, history)
            today = self.catalog.recent_votes(annotator, 10_000, since=midnight)
            state = replace(state, history=tuple(reversed([vote.clip_id for vote in recent])), decided=len(today))
        return self.fill(state, annotator)

    def decide(
        self,
        state: SessionState,
        annotator: str,
        decision: ClipStatus,
        reasons: Sequence[str] = (),
        note: str | None = None,
    ) -> SessionState:
        """Record accept or reject of the clip on screen, then move the prefetched clip onto the screen."""
        state = self.owned(state, annotator)
        if state.current is None:
            raise DecisionError("there is no clip on screen")
        reasons = _checked_reasons(decision, reasons, note)
        self.catalog.add_label(
            state.current,
            annotator,
            decision,
            reasons,
            (note or "").strip() or None,
            lease_s=self.settings.lease_s,
            role=self.role(annotator),
            require_claim=True,
        )
        moved = replace(
            state, current=state.next, next=None, history=state.history + (state.current,), decided=state.decided + 1
        )
        return self.fill(moved, annotator)

    def skip(self, state: SessionState, annotator: str) -> SessionState:
        """Give the clip on screen back to the queue (for others) and show the next one."""
        state = self.owned(state, annotator)
        if state.current is None:
            return self.fill(state, annotator)
        self.catalog.release_claim(state.current, annotator)
        return self.fill(
            replace(state, current=state.next, next=None, skipped=state.skipped + (state.current,)), annotator
        )

    def undo(self, state: SessionState, annotator: str, clip_id: str | None = None) -> SessionState:
        """Withdraw the latest decision (or the one on `clip_id`, one of the recent ones: to change
        it) with a new `pending_review` event, and show that clip again."""
        state = self.owned(state, annotator)
        if not state.history:
            raise DecisionError("nothing to undo in this session")
        if clip_id is not None and clip_id not in state.history:
            raise DecisionError("that clip is not among your recent decisions")
        last = clip_id or state.history[-1]
        self.catalog.add_label(
            last,
            annotator,
            ClipStatus.PENDING_REVIEW,
            lease_s=self.settings.lease_s,
            role=self.role(annotator),
            require_claim=True,
        )
        if state.next:
            self.catalog.release_claim(state.next, annotator)  # the screen's clip becomes the next one
        history = tuple(done for done in state.history if done != last)
        return replace(state, current=last, next=state.current, history=history, decided=max(0, state.decided - 1))

    def heartbeat(self, state: SessionState, annotator: str) -> bool:
        """Renew the leases of the clips on screen and prefetched; whether the one on screen is
        still the annotator's (False: its lease ran out or went to someone else: a vote would be refused)."""
        state = self.owned(state, annotator)
        if state.current is None:
            return True
        held = self.catalog.renew_claims(annotator, [state.current, *_ids(state.next)], self.settings.lease_s)
        if state.current in held:
            return True
        # a vote that landed while this heartbeat was on its way closed the claim: nothing was lost
        return any(c.annotator == annotator and c.done for c in self.catalog.claims_on(state.current))

    @staticmethod
    def owned(state: SessionState, annotator: str) -> SessionState:
        """`state`, stamped with its annotator; DecisionError when it was filled for someone else
        (a request that names another login's session)."""
        if state.annotator is None:
            return replace(state, annotator=annotator)
        if state.annotator != annotator:
            raise DecisionError("this screen belongs to another login: reload the page")
        return state

    def _claim(self, annotator: str, skip: Sequence[str]) -> str | None:
        return self.catalog.claim_next(
            annotator,
            self.settings.lease_s,
            self.settings.overlap_share,
            skip=set(skip),
            reviewer=self.role(annotator) is Role.REVIEWER,
        )


def _ids(clip_id: str | None) -> tuple[str, ...]:
    return (clip_id,) if clip_id else ()


def _checked_reasons(decision: ClipStatus, reasons: Sequence[str], note: str | None) -> list[str]:
    if decision is ClipStatus.ACCEPTED:
        return []
    if decision is not ClipStatus.REJECTED:
        raise DecisionError(f"a decision is accepted or rejected, not {decision.value}")
    if not reasons:
        raise DecisionError("pick at least one reason to reject (keys 1-5)")
    known = [reason.value for reason in RejectReason]
    if unknown := sorted(set(reasons) - set(known)):
        raise DecisionError(f"unknown reject reasons {unknown}")
    if RejectReason.OTHER.value in reasons and not (note or "").strip():
        raise DecisionError('"other" needs a note that says what is wrong')
    return [reason for reason in known if reason in reasons]
