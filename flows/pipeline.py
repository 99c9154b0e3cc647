"""The ingest's scheduler: per-video tasks of the chosen stages, with no barrier between stages.

In: the chosen stages (rows of `curation.steps.STAGES`, in table order), the run's `Config` and catalog,
a started Prefect task runner and how many tasks to keep on it (`slots`). Out: `run_pipeline` returns the
tally of each stage that got work, in stage order; a `ConfigError` that a task raised (a set-up problem,
or an `InfrastructureError`: a fault of the machine) is raised once every task already submitted has
finished.

A video moves on as soon as its stage is done for it: when its task ends, the first later chosen stage
that the catalog says it has to do (`Stage.to_do`) gets it, and videos pending at a later stage from the
start go there at once. A video is in one stage at a time. At most `slots` tasks are on the runner; the
next comes from the stage with the fewest running (ties: the later stage), so no stage waits behind the
queue of another: the GPU stage takes the next probed video while the CPU stages cut clips. On the
thread runner (`local`), a stage's preflight (loading its model) runs once, before its first task (the
threads share the model), and a stage on a CUDA device has one task more on the runner than its GPU's
limit has slots (`flows.gpu`): the one that waits takes the slot from the process's holder as soon as
a separation ends, without asking the server, and more would only keep runner threads waiting. When
the run ends, the GPU slots this process holds idle go back to the server (`give_back_idle_slots`).
After a set-up error in a task, later stages get no new task (as behind a barrier: the stage's own
videos still run); after one in a preflight, that stage gets none either.

Follow mode: the run also takes up videos that turn pending at its stages while it runs (made by other
runs or workers: the fetch deployment upstream of the separate one), asking the catalog every `poll_s`,
and ends when nothing more can come: its stages have no video left that it has not tried, none held
by another worker, and no earlier stage of `STAGES` has a video pending or leased (`upstream_work`).
A video another live worker holds is left to it and waited for. A following run whose upstream videos stay
pending with nobody working on them (an upstream run ended, or its task raised on them) ends with a warning
once nothing has moved for `idle_timeout_s`.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from prefect import Task, get_run_logger
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner

from curation import leases, steps
from curation.outcomes import StageTally
from dvmset.catalog import Catalog
from dvmset.config import Config
from dvmset.errors import ConfigError
from flows import gpu
from flows.tasks import task_for

PROGRESS_STEPS = 10  # a stage logs its progress about this many times
FOLLOW_IDLE_TIMEOUT_S = 1800.0  # a following run ends after this long with upstream work waiting and nobody on it


def upstream_of(chosen: Sequence[steps.Stage], table: Sequence[steps.Stage]) -> list[steps.Stage]:
    """The stages of `table` before the last chosen one that are not chosen: those whose work (by other
    runs) can still bring videos to `chosen`. [clip, fingerprint] of the five stages -> download, probe, separate."""
    names = {stage.name for stage in chosen}
    last = max((index for index, stage in enumerate(table) if stage.name in names), default=0)
    return [stage for stage in table[:last] if stage.name not in names]


def gpu_slots(stage: steps.Stage, config: Config) -> int | None:
    """The slots of the GPU limit that `stage`'s tasks hold on this machine (made if new), or None for a
    stage that holds none (no model, or on the CPU)."""
    device = gpu.stage_device(stage, config)
    if device is None or not device.startswith("cuda"):
        return None
    return gpu.limit_slots(gpu.ensure_gpu_limit(gpu.gpu_limit_name(device)))


@dataclass(frozen=True)
class Upstream:
    """What the stages upstream of a following run's stages hold: the videos pending there, and the videos
    (pending there or at the run's own stages) under a live lease of an upstream stage: being worked on."""

    pending: frozenset[str]
    worked: frozenset[str]

    @property
    def more_can_arrive(self) -> bool:
        """True while a video may still come to the run's stages."""
        return bool(self.pending or self.worked)


def upstream_work(catalog: Catalog, config: Config, chosen: Sequence[steps.Stage]) -> Upstream:
    """The `Upstream` of `chosen` (`upstream_of`: the stages before them). The upstream stages are asked
    first, then `chosen`, then the leases; and the caller asks its own stages after: a video only moves
    on, so one that moves while they are asked is found further on."""
    upstream = upstream_of(chosen, steps.STAGES)
    pending = {video.video_id for stage in upstream for video in stage.pending(catalog, config)}
    arriving = pending | {video.video_id for stage in chosen for video in stage.pending(catalog, config)}
    worked = {
        lease.video_id
        for lease in catalog.work_leases({stage.name for stage in upstream})
        if lease.video_id in arriving and leases.live(lease)
    }
    return Upstream(frozenset(pending), frozenset(worked))


@dataclass
class _Lane:
    """One chosen stage's share of the run."""

    stage: steps.Stage
    task: Task
    tally: StageTally
    waiting: deque[str] = field(default_factory=deque)  # video ids to submit
    running: int = 0
    done: int = 0
    tried: set[str] = field(default_factory=set)  # videos whose task raised here: not taken up again
    prepared: bool = False  # its preflight ran
    cap: int | None = None  # at most this many tasks on the runner (a CUDA stage on the thread runner: slots + 1)
    open: bool = True  # it takes new videos (False after a set-up error in it or before it)

    @property
    def has_room(self) -> bool:
        return self.cap is None or self.running < self.cap

    @property
    def used(self) -> bool:
        return self.done + self.running > 0


class _Pipeline:
    def __init__(
        self,
        chosen: Sequence[steps.Stage],
        config: Config,
        catalog: Catalog,
        task_runner: TaskRunner,
        slots: int,
        local: bool,
    ):
        self.lanes = [_Lane(stage, task_for(stage, config), StageTally(stage.name)) for stage in chosen]
        self.config, self.catalog, self.task_runner = config, catalog, task_runner
        self.slots, self.local = max(1, slots), local
        self.placed: set[str] = set()  # videos waiting or running in a lane
        self.running: dict[PrefectFuture, tuple[int, str]] = {}
        self.finished: queue.SimpleQueue[PrefectFuture] = queue.SimpleQueue()
        self.set_up_errors: list[ConfigError] = []
        self.log_every = 1
        self.finished_since_poll = True  # follow mode: ask the catalog at once when idle
        self.moved_at_s = time.monotonic()  # follow mode: when work last moved (here, or upstream under a lease)
        self.logger = get_run_logger()

    # ------------------------------------------------------------ taking work up

    def take_up(self, skip_held: bool) -> tuple[int, int]:
        """Queue each video the catalog says an open lane has to do, at the first such lane, unless it is in
        the run already or its task raised there; with `skip_held`, not one another live worker holds.
        (videos queued, videos left to other workers)."""
        new = held = 0
        for index, lane in enumerate(self.lanes):
            if not lane.open:
                continue
            for video in lane.stage.pending(self.catalog, self.config):
                if video.video_id in self.placed or video.video_id in lane.tried:
                    continue
                if skip_held and leases.live(self.catalog.work_lease(video.video_id)):
                    held += 1
                    continue
                self._queue(index, video.video_id)
                new += 1
        return new, held

    def _queue(self, index: int, video_id: str) -> None:
        self.lanes[index].waiting.append(video_id)
        self.placed.add(video_id)

    def _close_from(self, index: int) -> None:
        """Lanes `index` on take no new video; their waiting ones are dropped."""
        for lane in self.lanes[index:]:
            lane.open = False
            self.placed.difference_update(lane.waiting)
            lane.waiting.clear()

    # ------------------------------------------------------------ submitting

    def fill(self) -> None:
        """Submit waiting videos until `slots` tasks run, from the lane with the fewest running (ties: the later)."""
        while len(self.running) < self.slots:
            ready = [index for index, lane in enumerate(self.lanes) if lane.open and lane.waiting and lane.has_room]
            if not ready:
                return
            index = min(ready, key=lambda i: (self.lanes[i].running, -i))
            if self._prepared(index):
                self._submit(index, self.lanes[index].waiting.popleft())

    def _prepared(self, index: int) -> bool:
        """Before the lane's first task on the thread runner: its preflight, and its cap (its GPU slots and one
        task waiting for a slot). A set-up error closes it and the lanes after it."""
        lane = self.lanes[index]
        if lane.prepared or not self.local:
            return True
        try:
            lane.stage.preflight(self.config)  # once for all task threads (e.g. the separator)
        except ConfigError as error:  # a missing model: this stage and those after it stop here
            self.set_up_errors.append(error)
            self._close_from(index)
            return False
        slots = gpu_slots(lane.stage, self.config)
        lane.cap, lane.prepared = None if slots is None else slots + 1, True
        return True

    def _submit(self, index: int, video_id: str) -> None:
        lane = self.lanes[index]
        parameters = {"stage": lane.stage.name, "config": self.config, "video_id": video_id}
        future = self.task_runner.submit(lane.task, parameters)
        self.running[future] = (index, video_id)
        lane.running += 1
        future.add_done_callback(self.finished.put)

    # ------------------------------------------------------------ finishing

    def wait(self, timeout_s: float | None) -> None:
        """Finish the tasks that end within `timeout_s` (None: wait for one), and any others that ended."""
        try:
            future = self.finished.get(timeout=timeout_s)
        except queue.Empty:
            return
        while True:
            self._finish(future)
            try:
                future = self.finished.get_nowait()
            except queue.Empty:
                return

    def _finish(self, future: PrefectFuture) -> None:
        """Tally the task's outcome and send its video on. A task that raised counts as an error of its video;
        a ConfigError is kept for the end, and later lanes take no new video."""
        index, video_id = self.running.pop(future)
        lane = self.lanes[index]
        lane.running -= 1
        lane.done += 1
        self.placed.discard(video_id)
        self.finished_since_poll = True
        result = future.result(raise_on_failure=False)
        if isinstance(result, ConfigError):
            self.set_up_errors.append(result)
            lane.tried.add(video_id)
            self._close_from(index + 1)
        elif isinstance(result, BaseException):
            lane.tally.add_error(video_id, result)
            lane.tried.add(video_id)
            self._send_on(index, video_id)
        else:
            lane.tally.add(result)
            self._send_on(index, video_id)
        if lane.done % self.log_every == 0 and (lane.running or lane.waiting):
            to_go = lane.running + len(lane.waiting)
            self.logger.info("%s: %d videos done, %d to go", lane.stage.name, lane.done, to_go)

    def _send_on(self, index: int, video_id: str) -> None:
        """Queue the video at the first later open lane whose stage the catalog says it has to do."""
        for later in range(index + 1, len(self.lanes)):
            lane = self.lanes[later]
            if not lane.open:
                return
            if video_id not in lane.tried and lane.stage.to_do(self.catalog, self.config, video_id):
                self._queue(later, video_id)
                return

    # ------------------------------------------------------------ the run

    def run(self, follow: bool, poll_s: float, idle_timeout_s: float | None) -> list[StageTally]:
        self.take_up(skip_held=follow)
        self.log_every = max(1, len(self.placed) // PROGRESS_STEPS)
        for lane in self.lanes:
            self.logger.info("%s: %d videos to do now", lane.stage.name, len(lane.waiting))
        next_poll_s = time.monotonic()
        while True:
            self.fill()
            idle = not self.running
            if not follow or self.set_up_errors:  # no new work: finish what runs
                if idle:
                    break
                self.wait(None)
            elif (idle and self.finished_since_poll) or time.monotonic() >= next_poll_s:
                next_poll_s, self.finished_since_poll = time.monotonic() + poll_s, False
                if self._poll(idle, idle_timeout_s):
                    break
            elif idle:
                time.sleep(max(0.0, next_poll_s - time.monotonic()))
            else:
                self.wait(max(0.0, next_poll_s - time.monotonic()))
        return self._end()

    def _poll(self, idle: bool, idle_timeout_s: float | None) -> bool:
        """Follow mode: take up what turned pending; True when the run is idle and nothing more can come, or
        nothing has moved for `idle_timeout_s` (no task here, none taken up, no upstream video under a live
        lease) while upstream videos stay pending with nobody working on them. Upstream is asked before the
        run's own stages (see `upstream_work`)."""
        upstream = upstream_work(self.catalog, self.config, [lane.stage for lane in self.lanes])
        new, held = self.take_up(skip_held=True)
        if new:
            self.logger.info("follow: took up %d videos", new)
        if not idle or new or held or upstream.worked:
            self.moved_at_s = time.monotonic()
            return False
        if not upstream.more_can_arrive:
            return True
        still_s = time.monotonic() - self.moved_at_s
        if idle_timeout_s is None or still_s < idle_timeout_s:
            return False
        stages = ", ".join(stage.name for stage in upstream_of([lane.stage for lane in self.lanes], steps.STAGES))
        self.logger.warning(
            "follow: nothing moved for %.0f s: %d videos pending at earlier stages (%s), none under a live work "
            "lease; ending. Run those stages (a fetch or separate deployment, or retry_failed), then this one again",
            still_s,
            len(upstream.pending),
            stages,
        )
        return True

    def _end(self) -> list[StageTally]:
        for lane in self.lanes:
            self.logger.info(lane.tally.line() if lane.used else f"{lane.stage.name}: nothing to do")
        if self.set_up_errors:
            raise self.set_up_errors[0]
        return [lane.tally for lane in self.lanes if lane.used]


def run_pipeline(
    chosen: Sequence[steps.Stage],
    config: Config,
    catalog: Catalog,
    task_runner: TaskRunner,
    slots: int,
    local: bool = True,
    follow: bool = False,
    poll_s: float = 10.0,
    idle_timeout_s: float | None = None,
) -> list[StageTally]:
    """Run `chosen` over every video the catalog says they have to do, each video moving on as soon as
    its stage is done (see the module's docstring); with `follow`, also over videos that turn pending while
    it runs, until nothing more can come, or until nothing has moved for `idle_timeout_s` (None: no limit)
    while upstream videos wait with nobody working on them. `local`: the tasks run in this process's threads
    (the thread runner). The tallies of the stages that got work, in stage order."""
    if follow and poll_s <= 0:
        raise ConfigError(f"poll_s must be above 0 s, not {poll_s}")
    if follow and idle_timeout_s is not None and idle_timeout_s <= 0:
        raise ConfigError(f"idle_timeout_s must be above 0 s (or null: no limit), not {idle_timeout_s}")
    try:
        return _Pipeline(chosen, config, catalog, task_runner, slots, local).run(follow, poll_s, idle_timeout_s)
    finally:
        gpu.give_back_idle_slots()  # no separation of this run needs them any more
