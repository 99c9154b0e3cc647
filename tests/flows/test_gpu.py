"""GPU slots without a server: the limit's name per machine and device, and no slot for the CPU."""

from __future__ import annotations

from contextlib import nullcontext

import pytest

from curation import steps
from dvmset.config import Config, SeparateConfig
from flows import gpu


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
