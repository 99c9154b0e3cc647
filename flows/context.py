"""What a flow or task works on, from the strings it is given: the config and the catalog.

Flows and tasks take a config file path and a catalog URL as plain strings (they travel to
Dask workers and into deployment parameters); `open_run` turns them into a `Config` and a
`Catalog`. The catalog's connection pool is opened once per process and URL, and shared by
the task threads of that process.
"""

from __future__ import annotations

import functools
from pathlib import Path

from dvmset.catalog import Catalog
from dvmset.config import Config, load_config


def load_run_config(config_path: str | None, catalog_url: str | None) -> Config:
    """The config at `config_path` (or found as `load_config` finds it); `catalog_url` overrides its catalog."""
    config = load_config(Path(config_path) if config_path else None)
    return config.model_copy(update={"catalog_url": catalog_url}) if catalog_url else config


def open_run(config_path: str | None, catalog_url: str | None) -> tuple[Config, Catalog]:
    """(config, catalog) for a flow or task; raises ConfigError or CatalogError for a bad set-up."""
    config = load_run_config(config_path, catalog_url)
    return config, _catalog(config.resolved_catalog_url)


@functools.cache
def _catalog(url: str) -> Catalog:
    return Catalog.open(url)
