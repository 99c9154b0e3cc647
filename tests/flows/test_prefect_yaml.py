"""prefect.yaml: each deployment names a flow that loads, with parameters the flow takes; its pull
step enters the checkout $DVM_PROJECT_DIR names, or stops with a one-line error that names it."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest
import yaml
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.flows import load_flow_from_entrypoint

from dvmset.errors import ConfigError
from flows.deploy_steps import START_WORKER_HINT, enter_project_dir

ROOT = Path(__file__).resolve().parents[2]


def test_every_deployment_loads_its_flow_with_parameters_it_takes(monkeypatch):
    monkeypatch.chdir(ROOT)  # entrypoints are relative to the project root
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    assert (spec["build"], spec["push"]) == (None, None)
    assert spec["pull"] == [{"flows.deploy_steps.enter_project_dir": {}}, {"flows.deploy_steps.watch_heartbeats": {}}]
    assert all(
        pool["job_variables"]["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
        for pool in spec["definitions"]["work_pools"].values()
    )
    pools = {}
    for deployment in spec["deployments"]:
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
        taken = inspect.signature(flow.fn).parameters
        assert set(deployment["parameters"]) == set(taken), deployment["name"]  # every default listed
        pools[deployment["name"]] = deployment["work_pool"]["name"]
    assert pools == {
        "dvmset-discover": "dvmset-cpu",
        "dvmset-fetch": "dvmset-cpu",
        "dvmset-separate": "dvmset-gpu",
        "dvmset-clip": "dvmset-cpu",
        "dvmset-ingest": "dvmset-gpu",
        "dvmset-publish": "dvmset-cpu",
        "dvmset-build": "dvmset-gpu",
    }


def test_the_pull_step_enters_the_checkout_or_fails_the_run_naming_the_variable(prefect_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVM_PROJECT_DIR", raising=False)
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(Flow(lambda: None, name="pulled"))
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", str(flow_run.id))  # as the worker sets it
    with pytest.raises(
        ConfigError, match=r"DVM_PROJECT_DIR is not set for this worker: .*DVM_PROJECT_DIR=\$PWD prefect worker"
    ):
        enter_project_dir()
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run.id).state
    assert (state.type.value, state.message) == (
        "FAILED",
        f"DVM_PROJECT_DIR is not set for this worker: {START_WORKER_HINT}",
    )
    monkeypatch.delenv("PREFECT__FLOW_RUN_ID")
    monkeypatch.setenv("DVM_PROJECT_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="not a dvmset checkout"):
        enter_project_dir()
    monkeypatch.setenv("DVM_PROJECT_DIR", str(ROOT))
    assert enter_project_dir() == {"directory": str(ROOT)} and Path(os.getcwd()) == ROOT
