"""Where the per-video tasks run: threads of the flow's process, or a Dask cluster.

In: the runner name (`local` or `dask`), a Dask scheduler address or a worker count, the
catalog's SQL dialect and the Prefect API the run reports to. Out: a Prefect task runner to submit
to, or a `ConfigError` for a set-up that cannot work: a scheduler may run tasks on other machines,
which can neither open a SQLite catalog (a file on this machine) nor reach a Prefect API on this
machine's loopback address (such as the temporary server `dvmset build` starts).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from dvmset.errors import ConfigError

RUNNERS = ("local", "dask")
DEFAULT_WORKERS = 4  # threads (local) or worker processes of a Dask LocalCluster


def check_runner(
    runner: str, dask_address: str | None, workers: int, catalog_dialect: str, api_url: str | None
) -> None:
    """Raise ConfigError for an unknown runner, a bad worker count, or, behind a Dask scheduler, SQLite or
    a Prefect API only this machine reaches (`api_url` None: the temporary server of `dvmset build`)."""
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
    if runner == "dask" and dask_address and _only_this_machine(api_url):
        raise ConfigError(
            f"the Dask scheduler at {dask_address} may run tasks on other machines, and they would report to the "
            f"Prefect API at {api_url or 'a temporary server on 127.0.0.1'}, which only this machine can reach. Start "
            "a Prefect server (`prefect server start --host 0.0.0.0`) and set "
            "PREFECT_API_URL=http://<its host>:4200/api "
            "here and on every Dask worker; or leave out the address to run a LocalCluster on this machine."
        )


def _only_this_machine(api_url: str | None) -> bool:
    """True for no API URL (a temporary local server) or one on a loopback host (localhost, 127.0.0.0/8, ::1)."""
    host = urlsplit(api_url).hostname if api_url else "localhost"
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: other machines resolve it too
        return False


def task_runner_for(runner: str, dask_address: str | None, workers: int) -> TaskRunner:
    """A thread pool of `workers` threads (`local`); for `dask`, a client of the scheduler at
    `dask_address`, or a LocalCluster of `workers` single-threaded processes started for the run."""
    if runner == "local":
        return ThreadPoolTaskRunner(max_workers=workers)
    from prefect_dask import DaskTaskRunner  # imports distributed: only when asked for

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True})


def task_slots(task_runner: TaskRunner, runner: str, dask_address: str | None, workers: int) -> int:
    """How many tasks the ingest keeps on a started task runner at once: `workers` (the threads, or the
    LocalCluster's processes), or the threads of a Dask scheduler's workers when they are more."""
    if runner != "dask" or not dask_address:
        return workers
    return max(workers, sum(task_runner.client.nthreads().values()))
