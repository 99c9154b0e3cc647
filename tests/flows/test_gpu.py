"""GPU slots: the limit's name per machine and device, no slot for the CPU; on Prefect's test server, a
process's separations take the server slot once for a run of them, and a second process waits for it."""

from __future__ import annotations

import sys
import threading
import uuid
from contextlib import ExitStack, nullcontext

import pytest
from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.settings import PREFECT_API_URL

from curation import steps
from dvmset.config import Config, SeparateConfig
from flows import gpu
from tests.flows.processes import clean_environ, process_group, wait_until


@pytest.mark.parametrize(
    ("device", "name"), [("cuda", "gpu-node1-cuda:0"), ("cuda:0", "gpu-node1-cuda:0"), ("cuda:1", "gpu-node1-cuda:1")]
)
def test_a_gpu_limit_is_named_after_its_machine_and_device(device, name):
    assert gpu.gpu_limit_name(device, host="node1") == name


def test_a_stage_on_the_cpu_or_without_a_model_holds_no_slot(monkeypatch):
    def no_server(_name):
        raise AssertionError("a CPU stage asked the server for a limit")

    monkeypatch.setattr(gpu, "ensure_gpu_limit", no_server)
    on_cpu = Config(separate=SeparateConfig(device="cpu"))
    assert isinstance(gpu.gpu_slot(steps.stage_named("separate"), on_cpu), nullcontext)
    assert isinstance(gpu.gpu_slot(steps.stage_named("clip"), on_cpu), nullcontext)
    assert gpu.stage_device(steps.stage_named("separate"), on_cpu) == "cpu"
    assert gpu.stage_device(steps.stage_named("clip"), on_cpu) is None


def _limit(host: str, slots: int = 1) -> str:
    """A limit of its own for a test (on Prefect's test server), with `slots` slots."""
    name = gpu.gpu_limit_name("cuda:0", host=host)
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
    return name


def _active_slots(name: str) -> int:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots


def _counting_acquisitions(monkeypatch) -> list[str]:
    """The limit names `flows.gpu` takes a server slot of, one entry per acquisition."""
    acquired, real = [], gpu.concurrency

    def counting(names, **kwargs):
        acquired.append(names)
        return real(names, **kwargs)

    monkeypatch.setattr(gpu, "concurrency", counting)
    return acquired


def _separations(holder: gpu.LimitHolder, threads: int, each: int, inside) -> list[tuple[int, str]]:
    """`threads` threads, each running `each` separations in a row under `holder` (a separation: `inside()`);
    the in/out events of all of them, in the order they happened."""
    events, lock = [], threading.Lock()

    def separations(thread: int) -> None:
        for _ in range(each):
            with holder.slot():
                with lock:
                    events.append((thread, "in"))
                inside()
                with lock:
                    events.append((thread, "out"))

    workers = [threading.Thread(target=separations, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not any(worker.is_alive() for worker in workers)
    return events


def test_back_to_back_separations_of_two_threads_take_the_server_slot_once(prefect_server, monkeypatch):
    name = _limit("two-threads")
    acquired = _counting_acquisitions(monkeypatch)
    holder = gpu.LimitHolder(name, linger_s=3600.0)  # given back by the test, not by the clock
    events = _separations(holder, threads=2, each=3, inside=lambda: None)
    assert [kind for _thread, kind in events] == ["in", "out"] * 6  # one separation at a time
    assert {thread for thread, _kind in events} == {0, 1}
    assert acquired == [name]  # one round trip for all six
    assert _active_slots(name) == 1  # still held, idle: the next separation would not ask the server
    holder.give_back_idle()
    assert _active_slots(name) == 0


def test_a_process_holds_as_many_slots_at_once_as_the_limit_has(prefect_server, monkeypatch):
    name = _limit("two-slots", slots=2)  # as after `prefect gcl update <name> --limit 2`
    acquired = _counting_acquisitions(monkeypatch)
    holder = gpu.LimitHolder(name, linger_s=3600.0)
    both_in = threading.Barrier(2, timeout=120)  # breaks (and fails the test) unless two run at once
    events = _separations(holder, threads=2, each=2, inside=both_in.wait)
    assert len(events) == 8 and not both_in.broken
    assert acquired == [name, name]
    holder.give_back_idle()
    assert _active_slots(name) == 0


CHILD = """
import sys

import httpx
from prefect.client.orchestration import PrefectClient

from flows import gpu

real = PrefectClient.increment_concurrency_slots_with_lease

async def noting_refusals(self, *args, **kwargs):
    try:
        return await real(self, *args, **kwargs)
    except httpx.HTTPStatusError as error:
        if error.response.status_code == 423:  # the limit is full: Prefect retries after Retry-After
            print("refused", flush=True)
        raise

PrefectClient.increment_concurrency_slots_with_lease = noting_refusals
holder = gpu.LimitHolder(sys.argv[1])
with holder.slot():
    print("separating", flush=True)
holder.give_back_idle()  # as the pipeline does at its end
"""


def test_a_second_process_on_the_same_limit_waits_while_the_first_holds_its_slot(prefect_server, tmp_path):
    name = _limit("two-processes")
    holder = gpu.LimitHolder(name, linger_s=3600.0)
    log = tmp_path / "child.log"
    environ = clean_environ(uuid.uuid4().hex, PREFECT_API_URL=PREFECT_API_URL.value(), PREFECT_HOME=str(tmp_path))
    with ExitStack() as separating:
        separating.enter_context(holder.slot())
        with process_group([sys.executable, "-c", CHILD, name], environ, log) as child:
            wait_until(lambda: "refused" in log.read_text(), "a refused slot in the second process", 120, child)
            assert "separating" not in log.read_text()
            separating.close()  # this process's separation ends
            assert _active_slots(name) == 1  # and its slot lingers, for this process's next one
            holder.give_back_idle()
            wait_until(lambda: "separating" in log.read_text(), "the second process's separation", 120, child)
            assert child.wait(timeout=120) == 0
    said = [line for line in log.read_text().splitlines() if line in ("refused", "separating")]
    assert said[-1] == "separating" and set(said[:-1]) == {"refused"}
    assert _active_slots(name) == 0  # the second process gave its slot back
