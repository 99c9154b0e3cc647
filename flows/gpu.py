"""The GPU slots: a stage that runs on a CUDA device (separation) holds one slot of that GPU's
Prefect global concurrency limit while it runs, so the machines of a cluster each guard their own
GPUs; a stage on the CPU holds none.

In: the stage (`curation.steps.Stage`: its `device`) and the run's `Config`. Out: a context manager
(`gpu_slot`). The limit is named after the machine and the device (`gpu-<host>-cuda:0`,
`gpu_limit_name`) and made with one slot the first time a process of that machine needs it
(`ensure_gpu_limit`); an operator may give it more slots (`prefect gcl update <name> --limit 2`),
which later runs keep. Prefect renews a held slot's lease while the stage runs; a worker killed
mid-stage frees its slot when the lease runs out (`GPU_LEASE_S`).
"""

from __future__ import annotations

import socket
from contextlib import AbstractContextManager, nullcontext
from functools import cache

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists

from curation.steps import Stage
from dvmset.config import Config

GPU_LEASE_S = 60.0  # a killed worker's slot frees after this long, not Prefect's default 300 s
GPU_SLOTS = 1  # slots of a new GPU limit: one separation per GPU at a time


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


def stage_device(stage: Stage, config: Config) -> str | None:
    """The torch device `stage` runs on under `config`, or None for a stage without a model."""
    return stage.device(config) if stage.device is not None else None


def gpu_slot(stage: Stage, config: Config) -> AbstractContextManager[object]:
    """Hold a slot of the GPU's limit while a stage on a CUDA device runs; nothing for the CPU."""
    device = stage_device(stage, config)
    if device is None or not device.startswith("cuda"):
        return nullcontext()
    name = ensure_gpu_limit(gpu_limit_name(device))
    return concurrency(name, occupy=1, lease_duration=GPU_LEASE_S, strict=True)
