"""The GPU slots: a stage that runs on a CUDA device (separation) holds one slot of that GPU's
Prefect global concurrency limit while it runs, so the machines of a cluster each guard their own
GPUs; a stage on the CPU holds none.

In: the stage (`curation.steps.Stage`: its `device`) and the run's `Config`. Out: a context manager
(`gpu_slot`). The limit is named after the machine and the device (`gpu-<host>-cuda:0`,
`gpu_limit_name`) and made with one slot the first time a process of that machine needs it
(`ensure_gpu_limit`); an operator may give it more slots (`prefect gcl update <name> --limit 2`),
which later runs keep.

A process takes a server slot once for a run of separations (`LimitHolder`, one per limit and
process): a thread of its own enters Prefect's `concurrency` (occupy 1, lease `GPU_LEASE_S`) and
keeps the slot while the process's separations use it one after another, handed from one to the
next in the order they asked, without a round trip to the server between them. The slot goes back
when no separation of the process has wanted it for `linger_s` (`GPU_LINGER_S`, give or take
`LEASE_CHECK_S`), or at once with `give_back_idle_slots` (the pipeline's end). A process holds at most
the limit's slots (read from the server when it wants a second one), so two processes on a machine
never run more separations on a GPU than the limit allows; another process waits until this one's run
of separations ends. Prefect renews a held slot's lease; a process killed with a slot, or one that
ends without giving back a lingering one, frees it when the lease runs out. A lease Prefect could not
renew ends its hold (the separation using it finishes; the slot is not lent again).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import cache

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.context import SettingsContext, get_settings_context
from prefect.exceptions import ObjectAlreadyExists

from curation.steps import Stage
from dvmset.config import Config

log = logging.getLogger(__name__)

GPU_LEASE_S = 60.0  # a killed worker's slot frees after this long, not Prefect's default 300 s
GPU_SLOTS = 1  # slots of a new GPU limit: one separation per GPU at a time
GPU_LINGER_S = 3.0  # a held slot that no separation of the process wants goes back after this long
LEASE_CHECK_S = 1.0  # a holder thread looks this often whether its slot lingered out or Prefect lost its lease


def gpu_limit_name(device: str, host: str | None = None) -> str:
    """`"cuda"` on host `node1` -> `"gpu-node1-cuda:0"` (a bare "cuda" is device 0)."""
    index = device if ":" in device else f"{device}:0"
    return f"gpu-{host or socket.gethostname()}-{index}"


@cache
def ensure_gpu_limit(name: str) -> str:
    """Make the limit `name` with `GPU_SLOTS` slots unless it exists (once per process); its name."""
    with get_client(sync_client=True) as client:
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=GPU_SLOTS))
        except ObjectAlreadyExists:
            pass  # made by another process or an operator, with the slots they gave it
    return name


def limit_slots(name: str) -> int:
    """The slots the server gives the limit `name` now (at least 1)."""
    with get_client(sync_client=True) as client:
        return max(1, client.read_global_concurrency_limit_by_name(name).limit)


@dataclass(eq=False)
class _Hold:
    """One server slot, held by a thread of its own for as long as `ended` is False."""

    idle_since_s: float | None = None  # time.monotonic() since no separation uses it; None while one does
    ended: bool = False
    wake: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


@dataclass(eq=False)
class _Want:
    """A separation waiting for a slot: it gets a hold, or the error of the server acquisition."""

    hold: _Hold | None = None
    error: BaseException | None = None


class LimitHolder:
    """This process's slots of the limit `name`, lent to its separations (`slot`) one after another."""

    def __init__(self, name: str, linger_s: float = GPU_LINGER_S):
        self.name, self.linger_s = name, linger_s
        self._changed = threading.Condition()
        self._idle: list[_Hold] = []  # held, used by no separation
        self._waiting: deque[_Want] = deque()  # first come, first served
        self._held = 0  # server slots held, used or idle
        self._acquiring = False  # a holder thread is asking the server for a slot
        self._limit_slots: int | None = None  # the limit's slots, read when a second one is wanted

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the limit's slots inside the block: an idle one of this process, else one taken from
        the server (waiting for it as long as it takes)."""
        want = _Want()
        with self._changed:
            self._waiting.append(want)
            self._dispatch()
            try:
                self._changed.wait_for(lambda: want.hold is not None or want.error is not None)
            except BaseException:  # cancelled while waiting: leave the queue, or lend the slot on
                self._abandon(want)
                raise
        if want.error is not None:
            raise want.error
        try:
            yield
        finally:
            with self._changed:
                self._put_back(want.hold)

    def give_back_idle(self) -> None:
        """Give the server back each slot held but used by no separation, and wait until it is back."""
        with self._changed:
            idle = list(self._idle)
            for hold in idle:
                self._end(hold)
        for hold in idle:
            hold.wake.set()
            hold.thread.join()

    # ------------------------------------------------------------ under self._changed

    def _dispatch(self) -> None:
        """Lend idle slots to the waiting separations; ask the server for one more if some still wait and the
        limit may have room for it."""
        while self._waiting and self._idle:
            hold = self._idle.pop()
            hold.idle_since_s = None
            self._waiting.popleft().hold = hold
        room = self._limit_slots is None or self._held < self._limit_slots
        if self._waiting and not self._acquiring and room:
            self._acquiring = True
            hold = _Hold()
            settings = get_settings_context().model_copy()  # the server of the run, and no run's context
            hold.thread = threading.Thread(target=self._hold, args=(hold, settings), name=self.name, daemon=True)
            hold.thread.start()
        self._changed.notify_all()

    def _put_back(self, hold: _Hold) -> None:
        if not hold.ended:
            hold.idle_since_s = time.monotonic()
            self._idle.append(hold)
        self._dispatch()

    def _abandon(self, want: _Want) -> None:
        if want in self._waiting:
            self._waiting.remove(want)
        elif want.hold is not None:
            self._put_back(want.hold)

    def _end(self, hold: _Hold) -> None:
        """The hold stops: not lent again; its thread gives the slot back."""
        if hold.ended:
            return
        hold.ended = True
        if hold in self._idle:
            self._idle.remove(hold)
        self._held -= 1
        if not self._held:
            self._limit_slots = None  # read again for the next run of separations

    # ------------------------------------------------------------ the holder thread

    def _hold(self, hold: _Hold, settings: SettingsContext) -> None:
        """Take a slot from the server and lend it until it has been idle for `linger_s`."""
        acquired = False
        try:
            with settings:
                if not self._wanted():
                    return
                with concurrency(self.name, occupy=1, lease_duration=GPU_LEASE_S, strict=True):
                    with self._changed:
                        acquired, self._acquiring, self._held = True, False, self._held + 1
                        if self._waiting:
                            self._put_back(hold)
                        else:  # those who wanted it got a slot of this process meanwhile
                            self._end(hold)
                    while self._lend(hold):
                        hold.wake.wait(LEASE_CHECK_S)
                        hold.wake.clear()
        except BaseException as error:  # the server refused or was away; or Prefect ended a lost lease
            log.warning("GPU slot of %s: %r", self.name, error, exc_info=error)
            with self._changed:
                if acquired:
                    self._end(hold)
                else:
                    self._acquiring = False
                    for want in self._waiting:
                        want.error = error
                    self._waiting.clear()
                self._dispatch()

    def _wanted(self) -> bool:
        """Whether a separation still waits and this process may hold one more slot (the limit is read
        when it holds one already)."""
        with self._changed:
            unknown = self._held and self._limit_slots is None
        if unknown:
            slots = limit_slots(self.name)
            with self._changed:
                if self._held:  # (else it is read again next time)
                    self._limit_slots = slots
        with self._changed:
            wanted = bool(self._waiting) and (self._limit_slots is None or self._held < self._limit_slots)
            if not wanted:
                self._acquiring = False  # the waiting separations get the slots held now
                self._dispatch()
            return wanted

    def _lend(self, hold: _Hold) -> bool:
        """False once the hold ends: given back, or idle for `linger_s` (seen within `LEASE_CHECK_S`)."""
        with self._changed:
            if hold.idle_since_s is not None and time.monotonic() - hold.idle_since_s >= self.linger_s:
                self._end(hold)
            return not hold.ended


_holders: dict[str, LimitHolder] = {}  # this process's, by limit name
_holders_lock = threading.Lock()


def limit_holder(name: str) -> LimitHolder:
    """This process's `LimitHolder` of the limit `name` (made the first time)."""
    with _holders_lock:
        if name not in _holders:
            _holders[name] = LimitHolder(name)
        return _holders[name]


def give_back_idle_slots() -> None:
    """Give the server back every GPU slot this process holds and no separation uses (a run's end)."""
    with _holders_lock:
        holders = list(_holders.values())
    for holder in holders:
        holder.give_back_idle()


def stage_device(stage: Stage, config: Config) -> str | None:
    """The torch device `stage` runs on under `config`, or None for a stage without a model."""
    return stage.device(config) if stage.device is not None else None


def gpu_slot(stage: Stage, config: Config) -> AbstractContextManager[object]:
    """Hold a slot of the GPU's limit while a stage on a CUDA device runs; nothing for the CPU."""
    device = stage_device(stage, config)
    if device is None or not device.startswith("cuda"):
        return nullcontext()
    return limit_holder(ensure_gpu_limit(gpu_limit_name(device))).slot()
