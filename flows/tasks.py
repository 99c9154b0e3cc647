"""Prefect tasks: one per (stage, video) and one per discovery source, each a few lines over curation/.

In: the stage's name (a row of `curation.steps.STAGES`), the run's `Config` and a video id (or a
source). Out: the step's `StepOutcome` (or a `SourceRow`); the step itself has recorded the
outcome in the catalog. Steps never raise for a bad video; what escapes a task is a set-up
problem (`ConfigError`, never retried) or an infrastructure one (e.g. the catalog away), which
downloads retry with back-off. Results are not cached: the catalog alone says what is left to
do, so a rerun skips finished work and redoes nothing else.
"""

from __future__ import annotations

from pathlib import Path

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.runtime import flow_run

from curation import leases, search, steps
from curation.outcomes import StepOutcome
from dvmset.config import Config
from dvmset.errors import CatalogError, ConfigError, SearchError
from flows.context import catalog_for
from flows.gpu import gpu_slot
from flows.summary import SourceRow

SOURCE_KINDS = ("folder", "urls", "query")


def _unless_config_error(_task: Task, _run: TaskRun, state: State) -> bool:
    """Retry condition: a set-up error fails the same way every time, so it is not retried."""
    return not isinstance(state.result(raise_on_failure=False), ConfigError)


@task(name="stage", task_run_name="{stage} {video_id}", cache_policy=NO_CACHE, retry_condition_fn=_unless_config_error)
def stage_task(stage: str, config: Config, video_id: str) -> StepOutcome:
    """Run the step of the stage named `stage` on one video, holding the video's work lease for this
    host, process and flow run (a video another worker holds is left to it). A stage on a CUDA device
    (separation on a GPU) holds a slot of that GPU's limit while it runs (`flows.gpu`); its model is
    loaded once per process (the stage's preflight)."""
    run = steps.stage_named(stage)
    catalog = catalog_for(config)
    video = catalog.get_video(video_id)
    if video is None:
        raise CatalogError(f"no video {video_id!r} in the catalog {catalog.url}")
    with gpu_slot(run, config):
        return run.step(catalog, config, video, leases.work_owner(str(flow_run.id)))


def task_for(stage: steps.Stage, config: Config) -> Task:
    """`stage_task` named after `stage`, retried after the stage's `retry_delays_s` (downloads: the
    config's exponential back-off, `backoff_base_s` * 2^n, capped; yt-dlp's transient errors are also
    retried inside the step); a stage without them keeps Prefect's defaults."""
    named = stage_task.with_options(name=stage.name)
    if stage.retry_delays_s is None:
        return named
    delays_s = stage.retry_delays_s(config)
    return named.with_options(retries=len(delays_s), retry_delay_seconds=delays_s or 0)


@task(name="discover", task_run_name="discover {kind} {value}", cache_policy=NO_CACHE)
def discover_task(config: Config, kind: str, value: str, label: str | None = None) -> SourceRow:
    """Read one source (`folder` path, `urls` list file, or a search `query`) and add its hits to the
    catalog as `discovered`. A source that cannot be read is reported in the row, not raised."""
    catalog = catalog_for(config)
    try:
        if kind == "folder":
            found, failures = search.scan_folder(Path(value), label), []
        elif kind == "urls":
            found, failures = search.read_url_list(Path(value)), []
        elif kind == "query":
            found, failures = search.search_queries([value], config.search)
        else:
            raise ConfigError(f"unknown source kind {kind!r}; kinds are {', '.join(SOURCE_KINDS)}")
    except SearchError as error:
        found, failures = [], [error]
    added = catalog.add_candidates(found)
    return SourceRow(f"{kind} {value}", len(found), added.new_videos, "; ".join(str(f) for f in failures))
