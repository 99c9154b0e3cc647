"""A flow for the zombie-run test (tests/flows/test_zombie_runs.py): its first run writes its process id to
`marker` and sleeps (to be killed); a run that finds the marker there ends at once (the retry)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from prefect import flow

SLEEP_S = 600


@flow(name="sleeper")
def sleeper(marker: str) -> str:
    path = Path(marker)
    if path.exists():
        return "retried"
    path.write_text(str(os.getpid()), encoding="utf-8")
    time.sleep(SLEEP_S)
    return "slept"
