"""The pull steps of prefect.yaml: start each deployment's flow run in the worker machine's checkout
(`enter_project_dir`), and have the server mark runs whose process died `Crashed` (`watch_heartbeats`).

In: the worker's environment, `DVM_PROJECT_DIR` (not `DVMSET_*`: those are all config overrides).
Out: the working directory set to that checkout, returned as Prefect's step output
`{"directory": ...}`; or, before the flow is loaded, a one-line `ConfigError` that names the
variable and how to set it, which also becomes the flow run's `Failed` state message (the UI
shows it, and `prefect flow-run retry` works once the worker is fixed).
"""

from __future__ import annotations

import os
from pathlib import Path
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.states import Failed

from dvmset.errors import ConfigError
from flows.zombies import ZOMBIE_AUTOMATION, ensure_zombie_automation

PROJECT_DIR_VARIABLE = "DVM_PROJECT_DIR"
FLOW_RUN_VARIABLE = "PREFECT__FLOW_RUN_ID"  # set by the worker for the process it starts
START_WORKER_HINT = (
    f"start the worker in its dvmset checkout as `{PROJECT_DIR_VARIABLE}=$PWD prefect worker start --pool <pool>` "
    f"(or set {PROJECT_DIR_VARIABLE} to that checkout's path)"
)


def enter_project_dir() -> dict[str, str]:
    """Change into the checkout `$DVM_PROJECT_DIR` names (a folder with prefect.yaml); ConfigError,
    and the flow run marked Failed with its message, when the variable is unset or names no checkout."""
    value = os.environ.get(PROJECT_DIR_VARIABLE, "").strip()
    folder = Path(value).expanduser().resolve() if value else None
    if folder is None:
        problem = f"{PROJECT_DIR_VARIABLE} is not set for this worker: {START_WORKER_HINT}"
    elif not (folder / "prefect.yaml").is_file():
        problem = (
            f"{PROJECT_DIR_VARIABLE}={value} is not a dvmset checkout (it has no prefect.yaml): {START_WORKER_HINT}"
        )
    else:
        os.chdir(folder)
        return {"directory": str(folder)}
    if os.environ.get(FLOW_RUN_VARIABLE):
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(UUID(os.environ[FLOW_RUN_VARIABLE]), Failed(message=problem))
    raise ConfigError(problem)


def watch_heartbeats() -> dict[str, str]:
    """Make the server's automation that marks flow runs without heartbeats `Crashed` (`flows.zombies`),
    once: later runs find it there. Out: its name, as Prefect's step output."""
    ensure_zombie_automation()
    return {"zombie_automation": ZOMBIE_AUTOMATION}
