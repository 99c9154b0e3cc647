"""A build whose data root is an object store (moto's S3 server on 127.0.0.1): its stages run as three
machines would (fetch, separate, clip: each in a scratch folder of its own, deleted before the next
starts, so each gets its inputs from the store alone) and give the catalog and the bytes a local build
gives; nothing is written to a local folder named after the URL."""

from __future__ import annotations

import shutil

import pytest

from flows.flows import ingest_flow
from tests.support.flow_builds import built_files, catalog_content, discover_corpus, local_files, write_store_config
from tests.support.object_store import BUCKET, s3_server

PREFIX = "run"
URL = f"s3://{BUCKET}/{PREFIX}"
MACHINES = {"fetch": ["download", "probe"], "separate": ["separate"], "clip": ["clip", "fingerprint"]}


@pytest.mark.slow
def test_three_machines_over_an_object_store_build_what_one_local_build_does(
    built, model_dir, media, url_list, tmp_path, monkeypatch, prefect_server
):
    monkeypatch.chdir(tmp_path)
    with s3_server(monkeypatch) as s3:
        catalog_url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
        config_path = write_store_config(tmp_path / "cluster", model_dir, URL, catalog_url, s3.endpoint_url)
        discover_corpus(config_path, media, url_list)
        for machine, stages in MACHINES.items():
            scratch = tmp_path / f"scratch-{machine}"
            monkeypatch.setenv("DVMSET_STORAGE__SCRATCH_DIR", str(scratch))
            summary = ingest_flow(config=config_path, stages=stages)
            assert {row["stage"] for row in summary["stages"]} == set(stages)
            assert scratch.is_dir()
            shutil.rmtree(scratch)  # the next machine sees only the store
        stored = built_files(s3.objects(PREFIX))
    assert catalog_content(config_path) == catalog_content(built.config_path)
    assert stored == built_files(local_files(built.config_path.parent / "data"))
    assert not any(path.name.startswith("s3:") for path in tmp_path.rglob("*"))
