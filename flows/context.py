"""What a flow works on: its config, made once at the flow's entry, and the config's catalog.

A flow takes the config as one typed parameter, `config`: a `Config` (Prefect validates it and shows
it in the UI), or the path of a config file that `entry_config` loads once, at the flow's entry (a
deployment names one with `--param config=/path/to/dvmset.toml`), or None (found as `load_config`
finds it). Subflows and tasks get the `Config` object, never a path, and never read a file again,
so an edit of the file during a run changes nothing in it. The catalog's connection pool is opened
once per process and URL (`catalog_for`), and shared by the task threads of that process.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from prefect.runtime import deployment

from dvmset.catalog import Catalog
from dvmset.config import ENV_PREFIX, Config, find_config_file, load_config
from dvmset.errors import ConfigError


def entry_config(config: Config | Path | None, catalog_url: str | None) -> Config:
    """The run's config: `config` itself, or the file it names loaded once (None: $DVMSET_CONFIG,
    ./dvmset.toml, else the embedded defaults); `catalog_url` overrides its catalog. In a deployment run
    with no `Config` given, ConfigError unless a config file is given or found or DVMSET_DATA_ROOT is
    set: the embedded defaults would put the data (and a SQLite catalog) into the worker's checkout. A
    config loaded here whose data root is an object store is checked to be reachable (ConfigError naming
    the fix)."""
    if not isinstance(config, Config):
        _check_deployment_config(config)
        config = load_config(config)
        config.data_storage().check()  # an object store without credentials stops here, naming the fix
    return config.model_copy(update={"catalog_url": catalog_url}) if catalog_url else config


def _check_deployment_config(config_file: Path | None) -> None:
    if deployment.id is None:
        return
    if find_config_file(config_file, os.environ) or os.environ.get(f"{ENV_PREFIX}DATA_ROOT"):
        return
    raise ConfigError(
        f"the deployment run of {deployment.name} found no config file, and its defaults would write data/ into "
        f"{Path.cwd()}: pass one with --param config=/path/to/dvmset.toml (or set DVMSET_CONFIG for the worker)"
    )


def catalog_for(config: Config) -> Catalog:
    """The catalog of `config`, opened once per process and URL; CatalogError for a bad set-up."""
    return _catalog(config.resolved_catalog_url)


@functools.cache
def _catalog(url: str) -> Catalog:
    return Catalog.open(url)
