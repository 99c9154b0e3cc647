"""A step's hold on its video: the catalog's work lease, claimed, renewed while the work goes on,
checked before the step records anything, and released at the end.

In: an open catalog, a video id, the stage, and the owner id (`work_owner`: host, process id and
run). Out: `hold(...)`, a context manager that yields a `Hold`, or None when another live owner
holds the video. An owner is dead when its lease ran out, or at once when it was a process of
this machine (same host name and process-id namespace) that is gone, as after `kill -9`. While a
hold is live, the video's files are this owner's alone: temporary files found in its folders are a
dead owner's, so the holder may remove them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from dvmset.catalog import Catalog
from dvmset.catalog.work import WORK_LEASE_S, WorkLease
from dvmset.errors import DvmsetError

log = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 4  # a held lease is renewed this many times per `lease_s`: a few missed renewals do not lose it
_PROCESS_RUN = uuid.uuid4().hex[:12]  # the run part of owner ids made without one (a CLI command, a test)


def work_owner(run: str | None = None) -> str:
    """`<host>:<pid>:<run>`: who holds a lease, for the catalog and for people (a Prefect flow run id as `run`)."""
    return f"{_host()}:{os.getpid()}:{run or _PROCESS_RUN}"


def _host() -> str:
    """This machine's name, with its process-id namespace where Linux says it (`~4026531836`):
    containers that share a host name do not share process ids."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}~{namespace.removeprefix('pid:[').removesuffix(']')}"


def live(lease: WorkLease | None, now: datetime | None = None) -> bool:
    """True for a lease that has not run out and whose owner is not a dead process of this machine."""
    if lease is None:
        return False
    expires_at = lease.expires_at if lease.expires_at.tzinfo else lease.expires_at.replace(tzinfo=UTC)
    return expires_at > (now or datetime.now(UTC)) and not gone_from_this_host(lease.owner)


def gone_from_this_host(owner: str) -> bool:
    """True when `owner` was a process of this host (and process-id namespace) that no longer runs.
    A process id taken again by another process counts as alive: its lease then runs out instead."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != _host() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: alive
        return False
    return False


class LeaseLost(DvmsetError):
    """The lease on a video ran out while its step worked (the worker stalled past `lease_s`) and
    another owner took the video over: this step records nothing and leaves the video to them."""


class Hold:
    """A live lease on one video, renewed in the background every `lease_s / RENEWALS_PER_LEASE`."""

    def __init__(self, catalog: Catalog, video_id: str, owner: str, lease_s: float):
        self.catalog, self.video_id, self.owner, self.lease_s = catalog, video_id, owner, lease_s
        self.status: str | None = None  # the video's status when the step ended: logged at release
        self._lost = False
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew_until_stopped, name=f"lease {video_id}", daemon=True)
        self._renewer.start()

    def check(self) -> None:
        """Renew the lease now; LeaseLost when another owner holds the video. Called before every write
        to the catalog that records the step's work."""
        if self._lost or not self.catalog.renew_work(self.video_id, self.owner, self.lease_s):
            self._lost = True
            holder = self.catalog.work_lease(self.video_id)
            raise LeaseLost(f"{self.video_id}: the lease ran out and went to {holder.owner if holder else 'nobody'}")

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.lease_s / RENEWALS_PER_LEASE):
            try:
                if not self.catalog.renew_work(self.video_id, self.owner, self.lease_s):
                    self._lost = True
                    return
            except Exception as exc:  # noqa: BLE001 - the catalog away for a moment: try again next time
                log.warning("cannot renew the lease on %s: %s", self.video_id, exc)

    def stop(self) -> None:
        self._stop.set()
        self._renewer.join()


@contextmanager
def hold(
    catalog: Catalog, video_id: str, stage: str, owner: str, lease_s: float = WORK_LEASE_S
) -> Iterator[Hold | None]:
    """Hold `video_id` for `stage` while the block runs, or yield None when another owner's lease on
    it is live. At the end the lease is released, and the work logged when `Hold.status` was set."""
    lease = catalog.claim_work(video_id, stage, owner, lease_s)
    holder = catalog.work_lease(video_id) if lease is None else None
    if holder is not None and gone_from_this_host(holder.owner):
        lease = catalog.claim_work(video_id, stage, owner, lease_s, dead_owner=holder.owner)
    if lease is None:
        yield None
        return
    if lease.taken_from is not None:
        log.info("%s %s: took over the lease of %s, a dead owner", stage, video_id, lease.taken_from)
    held = Hold(catalog, video_id, owner, lease_s)
    try:
        yield held
    finally:
        held.stop()
        catalog.release_work(video_id, owner, held.status)
