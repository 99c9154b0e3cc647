"""The ingest flow on a Dask LocalCluster of two worker processes gives the catalog a local run gives."""

from __future__ import annotations

import pytest

from curation import steps
from flows.flows import ingest_flow
from tests.flows.conftest import catalog_content, copy_of


@pytest.mark.slow
def test_a_local_cluster_of_two_processes_gives_the_same_catalog(built, discovered, tmp_path):
    config_path = copy_of(discovered, tmp_path / "dask")
    summary = ingest_flow(config_path=str(config_path), runner="dask", workers=2)
    assert {row["stage"] for row in summary["stages"]} == set(steps.STAGES)
    assert catalog_content(config_path) == catalog_content(built.config_path)
