"""Review in the catalog, mixed into `Catalog`: label events, the decisions they settle, and the
review queue's claims (leases) for the labeling UI.

Label events are appended, never changed; each one carries the role it was cast in, and after
each one the clip's status is set to its settled decision (the rule: `dvmset/catalog/decisions.py`).

A clip has one review slot, or two when the overlap share picks it (by a hash of its id, so
every process agrees). An annotator claims a free slot for `lease_s` seconds; an expired lease
that holds no vote can be taken by anyone else; a vote closes the claim for good, an undo
reopens it. A claim is one INSERT into a primary key (clip, slot), or one UPDATE of an expired
row, so two annotators never hold one slot on SQLite or PostgreSQL alike. A reviewer's queue
starts with the open disputes they have not voted on (people disagree, or reviewers are tied): a
reviewer claims a review slot of the disputed clip, `REVIEW_SLOT` or one above it (one per
reviewer who has ruled), which the annotators' queue never counts.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from dvmset.catalog.decisions import VOTES, LabelEvent, disputes, live_votes, settle
from dvmset.catalog.rows import clip_from_row, json_value
from dvmset.catalog.rows import now as utc_now
from dvmset.catalog.tables import claims, clips, labels
from dvmset.errors import DvmsetError
from dvmset.records import ClipRecord, ClipStatus, Decision, PrescreenFlag, Role

AUTO_ANNOTATOR = "prescreen"  # the annotator name of automatic rejections
DEFAULT_LEASE_S = 900.0  # how long a claim on a clip lasts
MAX_SLOTS = 2
REVIEW_SLOT = MAX_SLOTS  # the first slot a reviewer claims to settle a disputed clip
_PAGE_ROWS = 200


def overlap_slots(clip_id: str, overlap_share: float) -> int:
    """How many annotators review `clip_id`: 2 for a stable `overlap_share` of clips, else 1."""
    digest = hashlib.sha256(clip_id.encode("utf-8")).digest()
    return MAX_SLOTS if int.from_bytes(digest[:8], "big") / 2**64 < overlap_share else 1


class ClaimLost(DvmsetError):
    """A checked label event from someone who holds no live claim on the clip (a lease that ran
    out or went to another annotator, or a request for a clip that was never theirs)."""


@dataclass(frozen=True)
class Claim:
    """One row of the `claims` table."""

    clip_id: str
    slot: int
    annotator: str
    slots: int
    expires_at: datetime
    done: bool


class ReviewClaims:
    """Label events, decisions, claims and the per-annotator queue; `Catalog` inherits these (it
    provides `engine`)."""

    engine: Engine

    # -- label events and decisions ------------------------------------------------------------

    def auto_reject(self, clip_id: str, flags: Sequence[PrescreenFlag], annotator: str = AUTO_ANNOTATOR) -> bool:
        """Reject a clip no person has labelled yet, for `flags`, as a label event by `annotator`.
        Returns False (and changes nothing) where a person already decided or it was done before."""
        with self.engine.begin() as conn:
            decided = conn.execute(sa.select(sa.func.count()).where(labels.c.clip_id == clip_id)).scalar()
            if decided:
                return False
            conn.execute(
                labels.insert().values(
                    clip_id=clip_id,
                    annotator=annotator,
                    decision=ClipStatus.REJECTED.value,
                    reasons=[flag.value for flag in flags],
                    note="rejected by the prescreen (config auto_reject)",
                    ts=utc_now(),
                    role=Role.ANNOTATOR.value,
                )
            )
            conn.execute(clips.update().where(clips.c.clip_id == clip_id).values(status=ClipStatus.REJECTED.value))
        return True

    def add_label(
        self,
        clip_id: str,
        annotator: str,
        decision: ClipStatus,
        reasons: Sequence[str] = (),
        note: str | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        role: Role = Role.ANNOTATOR,
        require_claim: bool = False,
    ) -> int:
        """Append one label event (ACCEPTED, REJECTED, or PENDING_REVIEW to withdraw the annotator's
        vote: an undo), cast in `role`, and update the clip's status to the settled decision;
        returns the event id. In the same transaction the annotator's review claim on the clip,
        if any, is closed by a vote or reopened for `lease_s` by an undo. With `require_claim`
        (the labeling app) a vote needs the annotator's own live (unexpired, unvoted) claim on the
        clip, and an undo their voted one: else ClaimLost, and nothing is written."""
        ts = utc_now()
        with self.engine.begin() as conn:
            if require_claim:
                self._check_claim(conn, clip_id, annotator, decision.value, ts)
            event_id = conn.execute(
                labels.insert().values(
                    clip_id=clip_id,
                    annotator=annotator,
                    decision=decision.value,
                    reasons=list(reasons),
                    note=note,
                    ts=ts,
                    role=Role(role).value,
                )
            ).inserted_primary_key[0]
            self._sync_claim(conn, clip_id, annotator, decision.value, ts, lease_s)
            rows = conn.execute(sa.select(labels).where(labels.c.clip_id == clip_id)).mappings().all()
            settled = settle([label_event(row) for row in rows], AUTO_ANNOTATOR).get(clip_id)
            status = settled.status if settled else ClipStatus.PENDING_REVIEW
            conn.execute(clips.update().where(clips.c.clip_id == clip_id).values(status=status.value))
        return event_id

    def label_events(self) -> list[LabelEvent]:
        """Every label event of a live (not retired) clip, in insertion order."""
        stmt = (
            sa.select(labels)
            .join(clips, clips.c.clip_id == labels.c.clip_id)
            .where(clips.c.status != ClipStatus.RETIRED.value)
            .order_by(labels.c.event_id)
        )
        with self.engine.connect() as conn:
            return [label_event(row) for row in conn.execute(stmt).mappings()]

    def decisions(self) -> dict[str, Decision]:
        """Clip id -> settled decision, for the decided live clips (the rule: `dvmset/catalog/decisions.py`)."""
        return settle(self.label_events(), AUTO_ANNOTATOR)

    def rejection_counts(self, decisions: Mapping[str, Decision] | None = None) -> Counter[str]:
        """Rejected live clips per reason (a clip rejected for two reasons counts under both), of
        `decisions` where the caller has settled them already (`decisions()`), else settled now."""
        settled = self.decisions() if decisions is None else decisions
        return Counter(
            reason.value
            for decision in settled.values()
            if decision.status is ClipStatus.REJECTED
            for reason in decision.reasons
        )

    def clip_votes(self, clip_id: str) -> list[LabelEvent]:
        """The live votes on one clip (each annotator's latest event, where it is a vote), oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(labels).where(labels.c.clip_id == clip_id)).mappings().all()
        return live_votes(label_event(row) for row in rows).get(clip_id, [])

    def recent_votes(
        self, annotator: str, limit: int = 20, since: datetime | None = None, scan: int = 1000
    ) -> list[LabelEvent]:
        """`annotator`'s standing votes, newest first: for each clip, their latest event when it is
        a vote (an undone vote drops out); at most `limit`, among their last `scan` events (and
        those at or after `since`). The labeling app's undo history and "done today" come from here,
        so they survive a reload or a restart."""
        stmt = sa.select(labels).where(labels.c.annotator == annotator)
        if since is not None:
            stmt = stmt.where(labels.c.ts >= since)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(labels.c.event_id.desc()).limit(scan)).mappings().all()
        seen: set[str] = set()
        votes = []
        for row in rows:
            if row["clip_id"] in seen:
                continue
            seen.add(row["clip_id"])
            if row["decision"] in VOTES:
                votes.append(label_event(row))
                if len(votes) == limit:
                    break
        return votes

    def open_disputes(self) -> list[str]:
        """Ids of the live clips whose people disagree with no reviewer's vote, or whose reviewers
        are tied, best first (priority, then id): a reviewer's queue starts with them."""
        return [clip_id for clip_id, _ in self._disputes()]

    def _disputes(self) -> list[tuple[str, list[LabelEvent]]]:
        """(clip id, its deciding votes) of the disputed live clips, best first (priority, then id).
        Only undecided (`pending_review`) clips can be disputed: only their events are read."""
        stmt = (
            sa.select(labels, clips.c.priority)
            .join(clips, clips.c.clip_id == labels.c.clip_id)
            .where(clips.c.status == ClipStatus.PENDING_REVIEW.value)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        priority = {row["clip_id"]: row["priority"] for row in rows}
        disputed = disputes(map(label_event, rows), AUTO_ANNOTATOR)
        best_first = sorted(disputed, key=lambda c: (priority[c] is None, -(priority[c] or 0.0), c))
        return [(clip_id, disputed[clip_id]) for clip_id in best_first]

    # -- claims and the queue ------------------------------------------------------------------

    def get_clip(self, clip_id: str) -> ClipRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(clips).where(clips.c.clip_id == clip_id)).mappings().first()
        return clip_from_row(row) if row else None

    def claim_next(
        self,
        annotator: str,
        lease_s: float,
        overlap_share: float,
        skip: Collection[str] = (),
        now: datetime | None = None,
        reviewer: bool = False,
    ) -> str | None:
        """The clip `annotator` reviews next, leased to them for `lease_s` seconds, or None when the
        queue is empty: first a clip they hold and have not voted on; then, for a `reviewer`, the
        review slot of the best open dispute they have not voted on (`open_disputes`); else a free slot of the
        highest-priority undisputed clip (then lowest id) they have not claimed or labelled (one
        more annotator's vote cannot settle a dispute). `skip`: ids to pass over."""
        now = now or utc_now()
        expires_at = now + timedelta(seconds=lease_s)
        held = self._open_claim(annotator, skip, expires_at)
        if held is not None:
            return held
        disputed = self._disputes()
        for clip_id, votes in disputed if reviewer else ():
            if clip_id in skip or any(vote.annotator == annotator for vote in votes):
                continue
            slots = max((claim.slots for claim in self.claims_on(clip_id)), default=1)
            review_slots = range(REVIEW_SLOT, REVIEW_SLOT + 1 + sum(vote.role is Role.REVIEWER for vote in votes))
            if self._try_claim(clip_id, annotator, slots, now, expires_at, review_slots):
                return clip_id
        passed = set(skip) | {clip_id for clip_id, _ in disputed}
        for clip_id, slots in self._candidates(annotator, now, overlap_share):
            if clip_id not in passed and self._try_claim(clip_id, annotator, slots, now, expires_at):
                return clip_id
        return None

    def renew_claims(
        self, annotator: str, clip_ids: Collection[str], lease_s: float, now: datetime | None = None
    ) -> set[str]:
        """Extend `annotator`'s live (open, unexpired) claims on `clip_ids` to `lease_s` from now;
        return the ids they still hold. A lease that ran out is lost: it is not revived here (the
        labeling app's heartbeat), though `claim_next` may give the clip back if nobody took it."""
        if not clip_ids:
            return set()
        now = now or utc_now()
        mine = (
            claims.c.annotator == annotator,
            claims.c.clip_id.in_(list(clip_ids)),
            claims.c.done.is_(False),
            claims.c.expires_at > now,
        )
        with self.engine.begin() as conn:
            conn.execute(claims.update().where(*mine).values(expires_at=now + timedelta(seconds=lease_s)))
            return set(conn.execute(sa.select(claims.c.clip_id).where(*mine)).scalars())

    def release_claim(self, clip_id: str, annotator: str) -> bool:
        """Give back `annotator`'s open (not voted) claim on `clip_id`; False when there was none."""
        with self.engine.begin() as conn:
            result = conn.execute(
                claims.delete().where(
                    claims.c.clip_id == clip_id, claims.c.annotator == annotator, claims.c.done.is_(False)
                )
            )
        return result.rowcount == 1

    def claims_on(self, clip_id: str) -> list[Claim]:
        """The claims on one clip, by slot."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(claims).where(claims.c.clip_id == clip_id).order_by(claims.c.slot)).mappings()
            return [
                Claim(row["clip_id"], row["slot"], row["annotator"], row["slots"], row["expires_at"], row["done"])
                for row in rows
            ]

    def _check_claim(self, conn: Connection, clip_id: str, annotator: str, decision: str, now: datetime) -> None:
        """Inside `add_label`'s transaction: close (a vote) the annotator's live claim on the clip,
        or find (an undo) their voted one; ClaimLost (the transaction rolls back) when there is none.
        The UPDATE is the check: a lease taken over by another annotator at the same moment makes
        one of the two statements match no row, on SQLite and PostgreSQL alike."""
        mine = (claims.c.clip_id == clip_id, claims.c.annotator == annotator)
        if decision in VOTES:
            closed = conn.execute(
                claims.update().where(*mine, claims.c.done.is_(False), claims.c.expires_at > now).values(done=True)
            )
            if closed.rowcount == 1:
                return
            holders = (
                conn.execute(
                    sa.select(claims.c.annotator).where(
                        claims.c.clip_id == clip_id,
                        claims.c.annotator != annotator,
                        claims.c.done.is_(False),
                        claims.c.expires_at > now,
                    )
                )
                .scalars()
                .all()
            )
            why = "it went to another annotator" if holders else "its reservation ran out"
            raise ClaimLost(f"{clip_id} is not reserved for {annotator} ({why}); the vote was not saved")
        voted = conn.execute(sa.select(sa.func.count()).where(*mine, claims.c.done.is_(True))).scalar()
        if not voted:
            raise ClaimLost(f"{annotator} holds no vote on {clip_id} to undo")

    def _sync_claim(
        self, conn: Connection, clip_id: str, annotator: str, decision: str, ts: datetime, lease_s: float
    ) -> None:
        """Inside `add_label`'s transaction: a vote closes the annotator's claim on the clip, any
        other event (an undo) reopens it, leased again for `lease_s`. No claim: nothing to do."""
        mine = claims.update().where(claims.c.clip_id == clip_id, claims.c.annotator == annotator)
        if decision in VOTES:
            conn.execute(mine.values(done=True))
        else:
            conn.execute(mine.values(done=False, claimed_at=ts, expires_at=ts + timedelta(seconds=lease_s)))

    def _open_claim(self, annotator: str, skip: Collection[str], expires_at: datetime) -> str | None:
        """Renew and return the annotator's best open claim outside `skip` (a resumed session)."""
        stmt = (
            sa.select(claims.c.clip_id)
            .join(clips, clips.c.clip_id == claims.c.clip_id)
            .where(
                claims.c.annotator == annotator, claims.c.done.is_(False), clips.c.status != ClipStatus.RETIRED.value
            )
            .order_by(clips.c.priority.desc().nulls_last(), clips.c.clip_id)
        )
        with self.engine.begin() as conn:
            for clip_id in conn.execute(stmt).scalars().all():
                if clip_id in skip:
                    continue
                renewed = conn.execute(
                    claims.update()
                    .where(claims.c.clip_id == clip_id, claims.c.annotator == annotator, claims.c.done.is_(False))
                    .values(expires_at=expires_at)
                )
                if renewed.rowcount == 1:
                    return clip_id
        return None

    def queue_left(self, annotator: str, now: datetime | None = None) -> int:
        """About how many clips `annotator` can still review: their open claims plus the live
        clips with a free or expired slot they have neither claimed nor labelled (`_candidates`;
        a clip never claimed counts once, whatever its overlap share)."""
        now = now or utc_now()
        candidates = self._candidates_stmt(annotator, now).order_by(None).subquery()
        open_claims = sa.select(sa.func.count()).where(claims.c.annotator == annotator, claims.c.done.is_(False))
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(candidates)).scalar() or 0) + int(
                conn.execute(open_claims).scalar() or 0
            )

    def _candidates(self, annotator: str, now: datetime, overlap_share: float) -> Iterator[tuple[str, int]]:
        """(clip id, its slot count) of live clips with a free or expired slot that `annotator` has
        neither claimed nor labelled, best first, page by page. A clip counts when it is pending
        review or already has claims (an overlap clip keeps its second slot after the first vote)."""
        stmt = self._candidates_stmt(annotator, now)
        offset = 0
        while True:
            with self.engine.connect() as conn:
                page = conn.execute(stmt.limit(_PAGE_ROWS).offset(offset)).all()
            for clip_id, slots in page:
                yield clip_id, slots or overlap_slots(clip_id, overlap_share)
            if len(page) < _PAGE_ROWS:
                return
            offset += _PAGE_ROWS

    def _candidates_stmt(self, annotator: str, now: datetime) -> sa.Select:
        """The query of `_candidates`: (clip id, slot count or NULL), best first."""
        taken = (
            sa.select(claims.c.clip_id, sa.func.count().label("taken"), sa.func.max(claims.c.slots).label("slots"))
            .where(claims.c.slot < REVIEW_SLOT, sa.or_(claims.c.done.is_(True), claims.c.expires_at > now))
            .group_by(claims.c.clip_id)
            .subquery()
        )
        stmt = (
            sa.select(clips.c.clip_id, taken.c.slots)
            .select_from(clips.outerjoin(taken, taken.c.clip_id == clips.c.clip_id))
            .where(
                clips.c.status != ClipStatus.RETIRED.value,
                sa.or_(
                    clips.c.status == ClipStatus.PENDING_REVIEW.value, clips.c.clip_id.in_(sa.select(claims.c.clip_id))
                ),
                clips.c.clip_id.not_in(sa.select(claims.c.clip_id).where(claims.c.annotator == annotator)),
                clips.c.clip_id.not_in(sa.select(labels.c.clip_id).where(labels.c.annotator == annotator)),
                sa.func.coalesce(taken.c.taken, 0) < sa.func.coalesce(taken.c.slots, MAX_SLOTS),
            )
            .order_by(clips.c.priority.desc().nulls_last(), clips.c.clip_id)
        )
        return stmt

    def _try_claim(
        self,
        clip_id: str,
        annotator: str,
        slots: int,
        now: datetime,
        expires_at: datetime,
        slot_numbers: Iterable[int] | None = None,
    ) -> bool:
        """Take a free slot of the clip (INSERT) or an expired, unvoted one (UPDATE), trying
        `slot_numbers` (default: the clip's `slots` review slots); False when all are held."""
        for slot in range(slots) if slot_numbers is None else slot_numbers:
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        claims.insert().values(
                            clip_id=clip_id,
                            slot=slot,
                            annotator=annotator,
                            slots=slots,
                            claimed_at=now,
                            expires_at=expires_at,
                            done=False,
                        )
                    )
                return True
            except sa.exc.IntegrityError:
                pass  # the slot is held (or this annotator holds another slot of the clip)
            try:
                with self.engine.begin() as conn:
                    stolen = conn.execute(
                        claims.update()
                        .where(
                            claims.c.clip_id == clip_id,
                            claims.c.slot == slot,
                            claims.c.done.is_(False),
                            claims.c.expires_at <= now,
                        )
                        .values(annotator=annotator, claimed_at=now, expires_at=expires_at)
                    )
                if stolen.rowcount == 1:
                    return True
            except sa.exc.IntegrityError:
                return False  # this annotator already holds the other slot
        return False


def label_event(row: Mapping[str, Any]) -> LabelEvent:
    """A `labels` row as a `LabelEvent`."""
    return LabelEvent(
        row["event_id"],
        row["clip_id"],
        row["annotator"],
        row["decision"],
        tuple(json_value(row["reasons"])),
        row["note"],
        row["ts"],
        Role(row["role"]),
    )
