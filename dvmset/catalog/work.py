"""Work leases in the catalog, mixed into `Catalog`: who works on a video, and what each step did.

A worker claims a video for a stage with a lease of `lease_s` seconds (`claim_work`): one INSERT
into the primary key `video_id`, or one UPDATE of a lease that ran out, so two workers never hold
one video at once, on SQLite and PostgreSQL alike. Another run or worker that asks for a leased
video gets None and leaves it alone. The holder renews the lease while the work goes on
(`renew_work`) and releases it at the end (`release_work`), which appends a `work_log` row with
the status the step left; a worker that dies stops renewing, its lease runs out and the next claim
takes the video over (at once, when the caller knows the owner is dead: `dead_owner`). Lease times
come from the workers' clocks: keep them in sync (NTP).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from dvmset.catalog.rows import now as utc_now
from dvmset.catalog.tables import work_leases, work_log

WORK_LEASE_S = 120.0  # how long a claim on a video lasts without renewal: a dead worker's video waits this long
_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}  # dialects with INSERT ... ON CONFLICT


@dataclass(frozen=True)
class WorkLease:
    """A live claim on one video: `taken_from` is the owner whose lease had run out, if any."""

    video_id: str
    stage: str
    owner: str
    claimed_at: datetime
    expires_at: datetime
    taken_from: str | None = None


@dataclass(frozen=True)
class WorkEvent:
    """One `work_log` row: a step that ran on a video, and the status it left the video in."""

    video_id: str
    stage: str
    owner: str
    started_at: datetime
    finished_at: datetime
    status: str


def insert_if_absent(conn: Connection, table: sa.Table, values: Mapping[str, Any]) -> bool:
    """Insert one row unless a row with its primary key exists (one another writer inserts at the
    same moment included: INSERT ... ON CONFLICT DO NOTHING RETURNING, SQLite 3.35 or later); True
    when it was inserted. Other databases than SQLite and PostgreSQL get a plain INSERT after a look-up."""
    insert = _INSERTS.get(conn.dialect.name)
    key_columns = list(table.primary_key.columns)
    if insert is not None:  # RETURNING says whether it inserted: not every driver gives an INSERT's rowcount
        stmt = insert(table).values(**values).on_conflict_do_nothing().returning(*key_columns)
        return conn.execute(stmt).first() is not None
    key = [column == values[column.name] for column in key_columns]
    if conn.execute(sa.select(sa.func.count()).select_from(table).where(*key)).scalar():
        return False
    conn.execute(table.insert().values(**values))
    return True


class WorkLeases:
    """Claims, renewals and releases of work on videos, and the work log; `Catalog` inherits these."""

    engine: Engine

    def claim_work(
        self,
        video_id: str,
        stage: str,
        owner: str,
        lease_s: float = WORK_LEASE_S,
        now: datetime | None = None,
        dead_owner: str | None = None,
    ) -> WorkLease | None:
        """Lease `video_id` to `owner` for `stage` for `lease_s` seconds, or None when another claim
        on it is live (its owner's included: claims do not nest). A lease that ran out is taken over,
        and so is a live one of `dead_owner` (an owner the caller knows to be dead)."""
        now = now or utc_now()
        values = {
            "video_id": video_id,
            "stage": stage,
            "owner": owner,
            "claimed_at": now,
            "expires_at": now + timedelta(seconds=lease_s),
        }
        free = work_leases.c.expires_at <= now
        if dead_owner is not None:
            free = sa.or_(free, work_leases.c.owner == dead_owner)
        takeable = sa.and_(work_leases.c.video_id == video_id, free)
        with self.engine.begin() as conn:
            if insert_if_absent(conn, work_leases, values):
                return WorkLease(**values)
            previous = conn.execute(sa.select(work_leases.c.owner).where(takeable)).scalar()
            taken = conn.execute(work_leases.update().where(takeable).values(**values))
        return WorkLease(**values, taken_from=previous) if taken.rowcount == 1 else None

    def renew_work(self, video_id: str, owner: str, lease_s: float = WORK_LEASE_S, now: datetime | None = None) -> bool:
        """Extend `owner`'s lease on `video_id` to `lease_s` from now; False when it is not theirs
        (any more): it ran out and another worker took it."""
        now = now or utc_now()
        mine = (work_leases.c.video_id == video_id, work_leases.c.owner == owner)
        with self.engine.begin() as conn:
            renewed = conn.execute(
                work_leases.update().where(*mine).values(expires_at=now + timedelta(seconds=lease_s))
            )
        return renewed.rowcount == 1

    def release_work(self, video_id: str, owner: str, status: str | None = None, now: datetime | None = None) -> bool:
        """Give back `owner`'s lease on `video_id`; with `status` (the step ran), log the step's work.
        False (and nothing logged) when the lease is not theirs any more."""
        mine = (work_leases.c.video_id == video_id, work_leases.c.owner == owner)
        with self.engine.begin() as conn:
            lease = conn.execute(sa.select(work_leases).where(*mine)).mappings().first()
            if lease is None:
                return False
            conn.execute(work_leases.delete().where(*mine))
            if status is not None:
                conn.execute(
                    work_log.insert().values(
                        video_id=video_id,
                        stage=lease["stage"],
                        owner=owner,
                        started_at=lease["claimed_at"],
                        finished_at=now or utc_now(),
                        status=status,
                    )
                )
        return True

    def work_lease(self, video_id: str) -> WorkLease | None:
        """The lease on `video_id` (live or run out), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(work_leases).where(work_leases.c.video_id == video_id)).mappings().first()
        return WorkLease(**row) if row else None

    def work_leases(self, stages: Collection[str]) -> list[WorkLease]:
        """The leases (live or run out) taken for any of `stages`, by video id."""
        stmt = sa.select(work_leases).where(work_leases.c.stage.in_(sorted(stages))).order_by(work_leases.c.video_id)
        with self.engine.connect() as conn:
            return [WorkLease(**row) for row in conn.execute(stmt).mappings()]

    def work_events(self, stage: str | None = None) -> list[WorkEvent]:
        """The work log in the order it was written, optionally of one stage."""
        stmt = sa.select(work_log).order_by(work_log.c.event_id)
        if stage is not None:
            stmt = stmt.where(work_log.c.stage == stage)
        with self.engine.connect() as conn:
            return [
                WorkEvent(
                    row["video_id"], row["stage"], row["owner"], row["started_at"], row["finished_at"], row["status"]
                )
                for row in conn.execute(stmt).mappings()
            ]
