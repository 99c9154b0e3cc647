"""The ingest flow on a Dask LocalCluster of two worker processes gives the catalog a local run
gives, on the SQLite catalog and on PostgreSQL (the catalog for runs across machines), and the
same bytes in every stem and clip file: separation sets its own torch thread count, where a Dask
worker starts torch on one thread and the thread runner's threads on every core."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation import steps
from flows.flows import ingest_flow
from tests.support.catalogs import PG_URL, wipe
from tests.support.flow_builds import built_files, catalog_content, copy_of, discover_corpus, local_files, write_config


@pytest.mark.slow
def test_a_local_cluster_of_two_processes_gives_the_same_catalog(built, discovered, tmp_path):
    config_path = copy_of(discovered, tmp_path / "dask")
    summary = ingest_flow(config=config_path, runner="dask", workers=2)
    assert {row["stage"] for row in summary["stages"]} == {stage.name for stage in steps.STAGES}
    assert catalog_content(config_path) == catalog_content(built.config_path)
    assert media_bytes(config_path) == media_bytes(built.config_path)


def media_bytes(config_path: Path) -> dict[str, bytes]:
    """The stems and clips files under the config's data root (`built_files`)."""
    return built_files(local_files(config_path.parent / "data"), ("stems", "clips"))


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="set DVMSET_TEST_PG_URL")
def test_a_local_cluster_on_a_postgresql_catalog_gives_the_same_catalog(built, model_dir, media, url_list, tmp_path):
    wipe(PG_URL)
    config_path = write_config(tmp_path / "dask-pg", model_dir)
    config_path.write_text(f'catalog_url = "{PG_URL}"\n' + config_path.read_text(encoding="utf-8"), encoding="utf-8")
    discover_corpus(config_path, media, url_list)
    try:
        ingest_flow(config=config_path, runner="dask", workers=2)
        assert catalog_content(config_path) == catalog_content(built.config_path)
    finally:
        wipe(PG_URL)
