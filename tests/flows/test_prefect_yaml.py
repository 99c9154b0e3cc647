"""prefect.yaml: each deployment names a flow that loads, with parameters the flow takes."""

from __future__ import annotations

import inspect
from pathlib import Path

import yaml
from prefect.flows import load_flow_from_entrypoint

ROOT = Path(__file__).resolve().parents[2]


def test_every_deployment_loads_its_flow_with_parameters_it_takes(monkeypatch):
    monkeypatch.chdir(ROOT)  # entrypoints are relative to the project root
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    assert (spec["build"], spec["push"]) == (None, None)
    assert spec["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $DVM_PROJECT_DIR }}"}}
    ]
    pools = {}
    for deployment in spec["deployments"]:
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
        taken = inspect.signature(flow.fn).parameters
        assert set(deployment["parameters"]) == set(taken), deployment["name"]  # every default listed
        pools[deployment["name"]] = deployment["work_pool"]["name"]
    assert pools == {
        "dvmset-discover": "dvmset-cpu", "dvmset-fetch": "dvmset-cpu", "dvmset-ingest": "dvmset-gpu",
        "dvmset-publish": "dvmset-cpu", "dvmset-build": "dvmset-gpu",
    }  # fmt: skip
