"""`dvmset build` as a script runs it: a subprocess on Prefect's own temporary local server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.flow_builds import copy_of, open_catalog


def run_build(args: list[str], cwd: Path, prefect_home: Path) -> subprocess.CompletedProcess:
    """`python -m dvmset build ...` with no Prefect server configured: it must start its own."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DVMSET_", "PREFECT_"))}
    environ |= {"PREFECT_HOME": str(prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    return subprocess.run(
        [sys.executable, "-m", "dvmset", "build", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_build_runs_in_process_without_a_prefect_server_and_reports_failures(built, tmp_path):
    config_path = copy_of(built.config_path.parent, tmp_path / "run")
    new = tmp_path / "new"
    new.mkdir()
    (new / "empty.mp4").write_bytes(b"")
    result = run_build(["--config", str(config_path), "--folder", str(new)], tmp_path, tmp_path / "prefect")
    assert result.returncode == 1, result.stderr  # a video failed in this run
    assert "Starting temporary server" in result.stderr
    assert "probe: 1 videos -> failed/empty_file 1" in result.stderr  # the per-stage count
    assert "empty_file" in result.stdout and "Catalog after the run" in result.stdout
    catalog = open_catalog(config_path)
    assert sorted(v.status.value for v in catalog.videos()) == [
        "clipped",
        "clipped",
        "failed",
        "failed",
        "failed",
        "skipped",
    ]


def test_build_refuses_a_sqlite_catalog_behind_a_dask_scheduler(tmp_path):
    result = run_build(["--runner", "dask", "--dask-address", "tcp://127.0.0.1:1"], tmp_path, tmp_path / "prefect")
    assert result.returncode == 3
    assert "SQLite" in result.stderr and "PostgreSQL" in result.stderr
