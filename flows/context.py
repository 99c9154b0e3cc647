"""What a flow or task works on, from the strings it is given: the config and the catalog.

Flows and tasks take a config file path and a catalog URL as plain strings (they travel to
Dask workers and into deployment parameters); `open_run` turns them into a `Config` and a
`Catalog`. The catalog's connection pool is opened once per process and URL, and shared by
the task threads of that process. A deployment run must name its config (`check_deployment_config`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from prefect.runtime import deployment

from dvmset.catalog import Catalog
from dvmset.config import ENV_PREFIX, Config, find_config_file, load_config
from dvmset.errors import ConfigError


def load_run_config(config_path: str | None, catalog_url: str | None) -> Config:
    """The config at `config_path` (or found as `load_config` finds it); `catalog_url` overrides its catalog."""
    config = load_config(Path(config_path) if config_path else None)
    return config.model_copy(update={"catalog_url": catalog_url}) if catalog_url else config


def check_deployment_config(config_path: str | None) -> None:
    """In a deployment run, ConfigError unless a config file is given or found (`config_path`,
    $DVMSET_CONFIG, ./dvmset.toml in the project folder) or DVMSET_DATA_ROOT is set: the embedded
    defaults would put the data (and a SQLite catalog) into the worker's checkout."""
    if deployment.id is None:
        return
    if find_config_file(Path(config_path) if config_path else None, os.environ) or os.environ.get(f"{ENV_PREFIX}DATA_ROOT"):
        return
    raise ConfigError(
        f"the deployment run of {deployment.name} found no config file, and its defaults would write data/ into "
        f"{Path.cwd()}: pass one with --param config_path=/path/to/dvmset.toml (or set DVMSET_CONFIG for the worker)"
    )


def open_run(config_path: str | None, catalog_url: str | None) -> tuple[Config, Catalog]:
    """(config, catalog) for a flow or task; raises ConfigError or CatalogError for a bad set-up."""
    config = load_run_config(config_path, catalog_url)
    return config, _catalog(config.resolved_catalog_url)


@functools.cache
def _catalog(url: str) -> Catalog:
    return Catalog.open(url)
