"""What every `dvmset` command shares: the exit codes, the consoles, the common options, loading the
config and opening the catalog (or exiting with the right code), the progress bar.

Exit codes scripts can rely on (`ExitCode`): 0 the command did its work (videos that were
skipped or failed are recorded in the catalog, not errors of the command), 1 some videos
failed in this run (`build`: or failed videos remain in the catalog from earlier runs), 2 usage error,
3 invalid configuration, 4 a source could not be read (e.g. the platform is unreachable), 5 the catalog
could not be opened, 6 the machine failed the run (the data root's disk is full, read-only or not
writable): the videos stay as they were, a rerun goes on.
"""

from __future__ import annotations

import sys
from enum import IntEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from tqdm import tqdm

from dvmset.catalog import Catalog
from dvmset.config import DEFAULT_FILE_NAME, Config, load_config
from dvmset.errors import CatalogError, ConfigError, DvmsetError, InfrastructureError, SearchError
from dvmset.storage import DataRoot


class ExitCode(IntEnum):
    OK = 0
    ITEMS_FAILED = 1
    USAGE = 2
    CONFIG = 3
    SOURCE = 4
    CATALOG = 5
    INFRASTRUCTURE = 6


out = Console(emoji=False)  # ids such as `yt:a:00060000` hold `:a:`, which is no emoji code here
err = Console(stderr=True, emoji=False)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help=f"config file (default: $DVMSET_CONFIG or ./{DEFAULT_FILE_NAME})")
]
LimitOption = Annotated[int | None, typer.Option(help="process at most this many videos")]


def fail(code: ExitCode, message: str) -> typer.Exit:
    """Print `message` as an error; return the `typer.Exit` for `code` (the caller raises it)."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(int(code))


def load_config_or_exit(config_path: Path | None) -> Config:
    """The config (`load_config`; an object-store data root checked reachable), or an exit with the config
    error's code and message."""
    try:
        config = load_config(config_path)
        config.data_storage().check()  # an object store without credentials or bucket stops here
        return config
    except ConfigError as exc:
        raise fail(ExitCode.CONFIG, str(exc)) from exc


def open_catalog(config_path: Path | None) -> tuple[Config, Catalog]:
    """The config and its catalog, or an exit with the config or catalog error's code."""
    config = load_config_or_exit(config_path)
    DataRoot(config.data_root).ensure()
    try:
        return config, Catalog.open(config.resolved_catalog_url)
    except CatalogError as exc:
        raise fail(ExitCode.CATALOG, str(exc)) from exc


def progress_bar(total: int, stage: str, unit: str = "video") -> tqdm:
    """A progress bar on stderr for `total` items of `stage`."""
    return tqdm(total=total, desc=stage, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)


def exit_code_for(error: DvmsetError) -> ExitCode:
    """The exit code of an error that ends a command."""
    if isinstance(error, InfrastructureError):
        return ExitCode.INFRASTRUCTURE
    if isinstance(error, ConfigError):
        return ExitCode.CONFIG
    if isinstance(error, CatalogError):
        return ExitCode.CATALOG
    if isinstance(error, SearchError):
        return ExitCode.SOURCE
    return ExitCode.ITEMS_FAILED
