"""Child processes for the flow tests that run real programs (a Prefect server, a worker, a killed
build): each in its own process group, so that it and everything it started end together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
POLL_S = 0.05
MARKER = "DVM_TEST_PROCESS_MARKER"  # in the environment of every process a test starts, and of their children


def clean_environ(marker: str, **extra: str) -> dict[str, str]:
    """This environment without Prefect's and our settings, plus `extra`, and `marker` for
    `kill_marked`: a child sees only what a test gives it."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DVMSET_", "DVM_"))}
    quiet = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_CLI_PROMPT": "false", MARKER: marker}
    return environ | quiet | extra


def kill_marked(marker: str) -> int:
    """SIGKILL every process whose environment carries `marker`, such as a flow run that a worker
    started in a session of its own; returns how many."""
    needle = f"{MARKER}={marker}".encode()
    killed = 0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and needle in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
        except (OSError, ProcessLookupError):  # gone meanwhile, or not ours to read
            continue
    return killed


@contextmanager
def process_group(
    args: list[str], environ: Mapping[str, str], log: Path, cwd: Path = ROOT
) -> Iterator[subprocess.Popen]:
    """Start `args` as the leader of a new process group (output to `log`); SIGKILL the whole group
    on the way out, whatever happened."""
    with log.open("ab") as sink:
        process = subprocess.Popen(
            args, cwd=cwd, env=dict(environ), stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        kill_group(process)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL `process` and every process of its group; wait for the leader."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # the group is gone already
        pass
    process.wait()


def wait_until(
    condition: Callable[[], bool], what: str, timeout_s: float, process: subprocess.Popen | None = None
) -> None:
    """Poll `condition` until it holds; AssertionError after `timeout_s` (a safety net, not a
    measurement), or at once if `process` ended first."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended (exit code {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout_s:g} s")
        time.sleep(POLL_S)


def run_checked(
    args: list[str], environ: Mapping[str, str], timeout_s: float, cwd: Path = ROOT, exit_code: int = 0
) -> str:
    """Run a command to its end in its own process group; its output, or AssertionError with it
    when it exits with another code than `exit_code` or runs past `timeout_s` (then its whole group
    is killed)."""
    process = subprocess.Popen(
        args,
        cwd=cwd,
        env=dict(environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(process)
        raise AssertionError(f"{' '.join(args)} ran past {timeout_s:g} s:\n{process.communicate()[0]}") from None
    finally:
        kill_group(process)  # whatever it left running in its group
    if process.returncode != exit_code:
        raise AssertionError(f"{' '.join(args)} exited with {process.returncode}:\n{output}")
    return output
