"""Catalog fixtures: a fresh catalog on SQLite, and on PostgreSQL when DVMSET_TEST_PG_URL is set."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from dvmset.catalog import Catalog, metadata

PG_URL = os.environ.get("DVMSET_TEST_PG_URL")


def wipe(url: str) -> None:
    """Drop every catalog table so a test starts from nothing."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        metadata.drop_all(conn)
    engine.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=[pytest.mark.postgres, pytest.mark.skipif(not PG_URL, reason="set DVMSET_TEST_PG_URL")]),
    ]
)
def catalog_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    wipe(PG_URL)
    return PG_URL


@pytest.fixture
def catalog(catalog_url):
    opened = Catalog.open(catalog_url)
    yield opened
    opened.close()
