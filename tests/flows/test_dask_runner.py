"""The ingest flow on a Dask LocalCluster of two worker processes gives the catalog a local run
gives, on the SQLite catalog and on PostgreSQL (the catalog for runs across machines), and the
same bytes in every stem and clip file: separation sets its own torch thread count, where a Dask
worker starts torch on one thread and the thread runner's threads on every core."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation import steps
from dvmset.storage import VIDEO_FILE
from flows.flows import ingest_flow
from tests.support.catalogs import PG_URL, wipe
from tests.support.flow_builds import catalog_content, copy_of, discover_corpus, write_config


@pytest.mark.slow
def test_a_local_cluster_of_two_processes_gives_the_same_catalog(built, discovered, tmp_path):
    config_path = copy_of(discovered, tmp_path / "dask")
    summary = ingest_flow(config=config_path, runner="dask", workers=2)
    assert {row["stage"] for row in summary["stages"]} == {stage.name for stage in steps.STAGES}
    assert catalog_content(config_path) == catalog_content(built.config_path)
    assert media_bytes(config_path) == media_bytes(built.config_path)


def media_bytes(config_path: Path) -> dict[str, bytes]:
    """Every file of the stems and clips folders under the data root, by path: its bytes; a clip's
    video.mp4 only by being there (x264 in the pipeline now and then decides a few frames differently
    from run to run, on any runner: bench/README.md, compare_builds.py)."""
    root = config_path.parent / "data"
    return {
        str(path.relative_to(root)): b"" if path.name == VIDEO_FILE else path.read_bytes()
        for folder in ("stems", "clips")
        for path in sorted((root / folder).rglob("*"))
        if path.is_file()
    }


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
