"""A flow run whose worker and process are SIGKILLed (a lost worker machine) is marked `Crashed` by the real
Prefect server, through the heartbeats every run sends and the automation the pull step `watch_heartbeats`
makes, and then `prefect flow-run retry` takes it and a worker runs it to completion (the README's recovery
steps). The deployment is a sleeper flow (tests/support/sleeper_flow.py) with prefect.yaml's own pull steps
and heartbeat setting; the clock sits in the server's automation, not in the test."""

from __future__ import annotations

import os
import re
import signal

import httpx
import pytest
import yaml

from flows.zombies import HEARTBEAT_S, ZOMBIE_AUTOMATION
from tests.flows.processes import PREFECT, ROOT, kill_group, process_group, run_checked, wait_until

POOL = "dvmset-zombies"
HEARTBEAT = "prefect.flow-run.heartbeat"
PROJECT_KEYS = ("name", "prefect-version", "build", "push", "pull")  # prefect.yaml's own, for the sleeper


def state_of(api_url: str, flow_run_id: str) -> str:
    return httpx.get(f"{api_url}/flow_runs/{flow_run_id}", timeout=10).json()["state"]["type"]


def heartbeats(api_url: str, flow_run_id: str) -> int:
    """How many heartbeat events of the flow run the server has recorded."""
    query = {"filter": {"event": {"name": [HEARTBEAT]}, "resource": {"id": [f"prefect.flow-run.{flow_run_id}"]}}}
    return len(httpx.post(f"{api_url}/events/filter", json=query, timeout=10).json()["events"])


@pytest.mark.slow
def test_a_run_whose_worker_died_is_marked_crashed_and_retried(real_server, tmp_path):
    api_url, environ = real_server.api_url, real_server.environ
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    job_variables = spec["definitions"]["work_pools"]["cpu"]["job_variables"]
    assert job_variables["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == str(HEARTBEAT_S)
    sleeper = {
        "name": "sleeper",
        "entrypoint": "tests/support/sleeper_flow.py:sleeper",
        "work_pool": {"name": POOL, "work_queue_name": None, "job_variables": job_variables},
    }
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(
        yaml.safe_dump(
            {
                **{key: spec[key] for key in ("name", "prefect-version", "build", "push", "pull")},
                "deployments": [sleeper],
            }
        ),
        encoding="utf-8",
    )
    run_checked([PREFECT, "work-pool", "create", POOL, "--type", "process"], environ, 60)
    run_checked([PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)], environ, 120)
    marker = tmp_path / "flow-run.pid"
    started = run_checked([PREFECT, "deployment", "run", "sleeper/sleeper", "--param", f"marker={marker}"], environ, 60)
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", started).group(1)
    worker_environ = environ | {"DVM_PROJECT_DIR": str(ROOT)}
    with process_group([PREFECT, "worker", "start", "--pool", POOL], worker_environ, tmp_path / "worker.log") as worker:
        wait_until(marker.exists, "the flow run's start", 180, worker)
        wait_until(lambda: heartbeats(api_url, flow_run_id) > 0, "a heartbeat on the server", 60)
        kill_group(worker)  # the worker machine is lost: the worker and its flow run's process
        os.kill(int(marker.read_text(encoding="utf-8")), signal.SIGKILL)
    assert state_of(api_url, flow_run_id) == "RUNNING"  # nobody is left to say otherwise...
    wait_until(lambda: state_of(api_url, flow_run_id) == "CRASHED", "the run marked crashed", 6 * HEARTBEAT_S)
    run_checked([PREFECT, "flow-run", "retry", flow_run_id], environ, 60)  # ... until the server does
    with process_group(
        [PREFECT, "worker", "start", "--pool", POOL], worker_environ, tmp_path / "worker2.log"
    ) as worker:
        wait_until(lambda: state_of(api_url, flow_run_id) == "COMPLETED", "the retried run's end", 180, worker)
    automations = httpx.post(f"{api_url}/automations/filter", json={}, timeout=10).json()
    assert [a["name"] for a in automations].count(ZOMBIE_AUTOMATION) == 1
