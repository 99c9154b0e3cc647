"""Where the per-video tasks run: threads of the flow's process, or a Dask cluster.

In: the runner name (`local` or `dask`), a Dask scheduler address or a worker count, and the
catalog's SQL dialect. Out: a Prefect task runner to submit to, or a `ConfigError` for a set-up
that cannot work (SQLite is a file on one machine; a scheduler may run tasks on other machines).
"""

from __future__ import annotations

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from dvmset.errors import ConfigError

RUNNERS = ("local", "dask")
DEFAULT_WORKERS = 4  # threads (local) or worker processes of a Dask LocalCluster


def check_runner(runner: str, dask_address: str | None, workers: int, catalog_dialect: str) -> None:
    """Raise ConfigError for an unknown runner, a bad worker count, or SQLite behind a Dask scheduler."""
    if runner not in RUNNERS:
        raise ConfigError(f"unknown runner {runner!r}; runners are {', '.join(RUNNERS)}")
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, not {workers}")
    if runner == "dask" and dask_address and catalog_dialect == "sqlite":
        raise ConfigError(
            f"the Dask scheduler at {dask_address} may run tasks on other machines, and they cannot share "
            "a SQLite catalog (a file on this machine). Set catalog_url in the config (or DVMSET_CATALOG_URL) "
            "to a PostgreSQL URL, e.g. postgresql+psycopg://user:password@host/dvmset, that every worker can "
            "reach; or leave out the address to run a LocalCluster of --workers processes on this machine."
        )


def task_runner_for(runner: str, dask_address: str | None, workers: int) -> TaskRunner:
    """A thread pool of `workers` threads (`local`); for `dask`, a client of the scheduler at
    `dask_address`, or a LocalCluster of `workers` single-threaded processes started for the run."""
    if runner == "local":
        return ThreadPoolTaskRunner(max_workers=workers)
    from prefect_dask import DaskTaskRunner  # imports distributed: only when asked for

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True})
