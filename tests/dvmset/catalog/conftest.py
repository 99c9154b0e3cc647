"""Catalog fixtures: a fresh catalog on SQLite, and on PostgreSQL when DVMSET_TEST_PG_URL is set."""

from __future__ import annotations

import pytest

from dvmset.catalog import Catalog
from tests.support.catalogs import PG_URL, wipe


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql", marks=[pytest.mark.postgres, pytest.mark.skipif(not PG_URL, reason="set DVMSET_TEST_PG_URL")]
        ),
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
