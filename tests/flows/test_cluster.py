"""A cluster on this machine: moto's S3 server on 127.0.0.1 as the data root, PostgreSQL as the catalog, a real
`prefect server`, the deployments of prefect.yaml, and two workers, "gpu" and "cpu", each started with a
scratch folder of its own (neither sees the other's files: only the store and the catalog are shared). The
three chained deployments (fetch and clip on the cpu pool, separate on the gpu pool, started together, each
following the catalog) build the real-media corpus (tests/support/real_media.py: real music, espeak-ng
speech, a silent gap, 5.1 dialogue) into the same catalog and the same bytes as a local run of the stages.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from curation import steps
from curation.search import scan_folder
from dvmset.catalog import Catalog
from dvmset.config import load_config
from tests.flows.processes import PREFECT, ROOT, process_group, run_checked, wait_until
from tests.support.catalogs import PG_URL, wipe
from tests.support.flow_builds import (
    LABEL,
    built_files,
    catalog_content,
    local_files,
    write_config,
    write_store_config,
)
from tests.support.object_store import BUCKET, CREDENTIALS, NO_CREDENTIALS, s3_server
from tests.support.real_media import build_corpus, real_music_available

PREFIX = "cluster"
CHAIN = ("fetch", "separate", "clip")  # ingest/dvmset-<name>, started together
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def local_reference(folder: Path, model_dir: Path, corpus: Path) -> Path:
    """The stages run one after the other on a local data root (the CLI's loop): its config path."""
    config_path = write_config(folder, model_dir)
    config = load_config(config_path, environ={})
    config.data_root.mkdir(parents=True)
    catalog = Catalog.open(config.resolved_catalog_url)
    catalog.add_candidates(scan_folder(corpus, LABEL))
    for stage in steps.STAGES:
        steps.run_stage(stage, catalog, config, stage.pending(catalog, config))
    catalog.close()
    return config_path


def state_of(api_url: str, flow_run_id: str) -> str:
    return httpx.get(f"{api_url}/flow_runs/{flow_run_id}", timeout=10).json()["state"]["type"]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="set DVMSET_TEST_PG_URL")
@pytest.mark.skipif(not real_music_available(), reason="needs pushover-data and espeak-ng")
def test_two_workers_over_an_object_store_build_what_a_local_run_does(real_server, model_dir, tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    build_corpus(corpus)
    reference = local_reference(tmp_path / "local", model_dir, corpus)
    api_url, environ = real_server.api_url, real_server.environ
    wipe(PG_URL)
    try:
        with s3_server(monkeypatch) as s3:
            url = f"s3://{BUCKET}/{PREFIX}"
            config_path = write_store_config(tmp_path / "cluster", model_dir, url, PG_URL, s3.endpoint_url)
            catalog = Catalog.open(PG_URL)
            catalog.add_candidates(scan_folder(corpus, LABEL))
            catalog.close()
            for pool in ("dvmset-cpu", "dvmset-gpu"):
                run_checked([PREFECT, "work-pool", "create", pool, "--type", "process", "--overwrite"], environ, 60)
            run_checked([PREFECT, "--no-prompt", "deploy", "--all"], environ, 120)
            runs = []
            for name in CHAIN:
                args = [PREFECT, "deployment", "run", f"ingest/dvmset-{name}", "--param", f"config={config_path}"]
                started = run_checked([*args, "--param", "poll_s=2"], environ, 60)
                runs.append(re.search(r"UUID: ([0-9a-f-]{36})", started).group(1))
            machine = environ | CREDENTIALS | NO_CREDENTIALS | {"DVM_PROJECT_DIR": str(ROOT), "HF_HUB_OFFLINE": "1"}
            gpu = [PREFECT, "worker", "start", "--pool", "dvmset-gpu"]
            cpu = [PREFECT, "worker", "start", "--pool", "dvmset-cpu"]
            gpu_scratch, cpu_scratch = tmp_path / "gpu-machine", tmp_path / "cpu-machine"
            with (
                process_group(gpu, machine | {"DVMSET_STORAGE__SCRATCH_DIR": str(gpu_scratch)}, tmp_path / "gpu.log"),
                process_group(cpu, machine | {"DVMSET_STORAGE__SCRATCH_DIR": str(cpu_scratch)}, tmp_path / "cpu.log"),
            ):
                wait_until(lambda: all(state_of(api_url, run) in FINAL for run in runs), "the three runs' end", 900)
            logs = "\n".join((tmp_path / f"{name}.log").read_text(errors="replace")[-3000:] for name in ("gpu", "cpu"))
            assert [state_of(api_url, run) for run in runs] == ["COMPLETED"] * 3, logs
            stored = built_files(s3.objects(PREFIX))
        assert catalog_content(config_path) == catalog_content(reference)
        assert stored == built_files(local_files(reference.parent / "data"))
        assert any((gpu_scratch / "stems").rglob("accompaniment.flac"))  # separated on the GPU machine,
        assert not (gpu_scratch / "clips").exists()  # which cut no clip: the CPU machine did
        assert any((cpu_scratch / "clips").rglob("music.flac"))
    finally:
        wipe(PG_URL)
