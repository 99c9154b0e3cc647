"""The data engineer's path on a real Prefect server: `prefect server start`, work pools,
`prefect --no-prompt deploy --all` from the repository, a worker, `prefect deployment run`.

Everything runs as separate programs, as on a deployment machine: the server (the session's
`real_server`), the CLI calls, and the worker, which starts the flow run in a process of its own in the
checkout named by DVM_PROJECT_DIR (the pull step of prefect.yaml). The ingest deployment runs over a catalog that
lists the corpus folder as `discovered`.
"""

from __future__ import annotations

import re

import httpx
import pytest

from curation.search import scan_folder
from tests.flows.processes import PREFECT, ROOT, run_checked
from tests.support.flow_builds import LABEL, catalog_content, open_catalog, write_config

INGEST = "ingest/dvmset-ingest"


@pytest.mark.slow
def test_the_ingest_deployment_runs_on_a_worker_of_a_real_server(real_server, tmp_path, model_dir, media):
    config_path = write_config(tmp_path / "run", model_dir)
    catalog = open_catalog(config_path)
    catalog.add_candidates(scan_folder(media, LABEL))
    catalog.close()
    api_url, environ = real_server.api_url, real_server.environ
    for pool in ("dvmset-cpu", "dvmset-gpu"):
        run_checked([PREFECT, "work-pool", "create", pool, "--type", "process", "--overwrite"], environ, 60)
    deployed = run_checked([PREFECT, "--no-prompt", "deploy", "--all"], environ, 120)
    assert INGEST in deployed
    started = run_checked([PREFECT, "deployment", "run", INGEST, "--param", f"config={config_path}"], environ, 60)
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", started).group(1)
    worker = environ | {"DVM_PROJECT_DIR": str(ROOT)}  # started elsewhere: the pull step brings the run here
    worker_log = run_checked([PREFECT, "worker", "start", "--pool", "dvmset-gpu", "--run-once"], worker, 180, tmp_path)
    state = httpx.get(f"{api_url}/flow_runs/{flow_run_id}", timeout=10).json()["state"]
    assert state["type"] == "COMPLETED", f"{state}\n{worker_log}"
    deployments = httpx.post(f"{api_url}/deployments/filter", json={}, timeout=10).json()
    videos, clips = catalog_content(config_path)
    assert sorted((status, reason, count) for _id, status, reason, count, _model in videos) == [
        ("clipped", None, 2),
        ("failed", "not_media", None),
        ("skipped", "too_short", None),
    ]
    assert sorted((status, start_s, end_s) for _id, status, start_s, end_s, _v in clips) == [
        ("pending_review", 0.0, 10.0),
        ("pending_review", 10.0, 20.0),
    ]
    pull = [{"flows.deploy_steps.enter_project_dir": {}}, {"flows.deploy_steps.watch_heartbeats": {}}]
    assert len(deployments) == 7 and all(d["pull_steps"] == pull for d in deployments)  # run on each worker
