"""The DVMSet flows: `discover_flow`, `ingest_flow`, `publish_flow`, and `build_flow` (discover,
ingest, and, when asked, publish).

In: the config, as one typed `Config` parameter (`dvmset build` passes the one it loaded; Prefect shows
it in the UI) or the path of a config file that the flow loads once at its entry (a deployment's
`--param config=/path/to/dvmset.toml`; `flows.context.entry_config`), a catalog URL overriding the
config's, and strings and numbers (sources, stages, a runner). Subflows and tasks get the same
`Config` object. Out: the run's summary as plain data (`RunSummary.as_dict()`), also posted as a
markdown table artifact whose key names the data root and the run (`flows.summary.artifact_key`).
The catalog says what is pending, so a rerun does only unfinished work; a video another run or
worker holds (its work lease) is left to it. An ingest has no stage barrier: each video moves on to its
next stage as soon as one is done (`flows.pipeline`); a following ingest (`follow`) also takes up what
other runs hand on to its stages, so deployments of a few stages each chain by the catalog's state.
One failing video or source never fails a flow; a set-up error (a bad config, a deployment run
without one, a missing model, SQLite or a local Prefect API behind a Dask scheduler) does, before it
touches a video, and so does a fault of the machine (`InfrastructureError`: a full disk), leaving its
videos as they were. A publish that cannot be done (`PublishError`: the version exists, a fingerprint
is missing, clips are stand-in output and `allow_stand_in` is false) fails its flow with the error's
message as the state message, and no traceback.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext
from prefect.runtime import flow_run
from prefect.settings import PREFECT_API_URL
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from curation import search, steps
from curation.publish import publish as publish_manifests
from curation.versions import NothingChangedError, next_version
from dvmset.catalog import Catalog
from dvmset.config import Config
from dvmset.errors import ConfigError, PublishError
from dvmset.storage import DataRoot
from flows.context import catalog_for, entry_config
from flows.pipeline import FOLLOW_IDLE_TIMEOUT_S, run_pipeline
from flows.runners import DEFAULT_WORKERS, check_runner, task_runner_for, task_slots
from flows.summary import PublishRow, RunSummary, artifact_key
from flows.tasks import discover_task


def _open(config: Config | Path | None, catalog_url: str | None) -> tuple[Config, Catalog]:
    """The run's config (the given object, or the file loaded once: `entry_config`) and its catalog."""
    config = entry_config(config, catalog_url)
    DataRoot(config.data_root).ensure()
    return config, catalog_for(config)


def _check_runner_once(runner: str, dask_address: str | None, workers: int, catalog: Catalog) -> None:
    """Check the runner where its parameters enter: in the outermost flow run, not again in a subflow
    (a build checks them before it discovers anything, then hands them to its ingest subflow)."""
    if FlowRunContext.get().flow_run.parent_task_run_id is None:
        check_runner(runner, dask_address, workers, catalog.dialect, PREFECT_API_URL.value())


def _report(summary: RunSummary, flow_name: str, title: str, config: Config) -> dict:
    """Post the summary as a markdown artifact, its key and title naming the data root and the run
    (`artifact_key`), and return it as a dict."""
    data_root = config.storage.url or str(Path(config.data_root).resolve())  # a store by its URL, not the scratch
    run_name = flow_run.name or ""
    key = artifact_key(flow_name, data_root, run_name)
    heading = f"{title}: {data_root}, run {run_name}"
    create_markdown_artifact(summary.markdown(heading), key=key, description=f"{heading}: counts and failures")
    get_run_logger().info("summary artifact: %s", key)
    return summary.as_dict()


def _sources(
    config: Config, folder: str | None, urls: str | None, queries: list[str] | None, queries_file: str | None
) -> list[tuple[str, str]]:
    """(kind, value) of each source: the folder and URL list given, else each search query (the
    given ones, or those of `queries_file`, or of the config's queries file)."""
    given = [("folder", folder)] * bool(folder) + [("urls", urls)] * bool(urls)
    if given:
        return given
    listed = queries or search.load_queries(Path(queries_file) if queries_file else config.search.queries_file)
    return [("query", query) for query in listed]


@flow(name="discover", task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_WORKERS))
def discover_flow(
    config: Config | Path | None = None,
    catalog_url: str | None = None,
    folder: str | None = None,
    urls: str | None = None,
    queries: list[str] | None = None,
    queries_file: str | None = None,
    label: str | None = None,
) -> dict:
    """Add candidate videos to the catalog as `discovered`, from a local folder (`label`: the query
    recorded for them), a URL list, or platform searches; a source that fails is listed, not fatal."""
    config, catalog = _open(config, catalog_url)
    sources = _sources(config, folder, urls, queries, queries_file)
    futures = [discover_task.submit(config, kind, value, label) for kind, value in sources]
    rows = tuple(future.result() for future in futures)
    logger = get_run_logger()
    for row in rows:
        logger.info(
            "discover %s: %d hits, %d new videos%s",
            row.source,
            row.hits,
            row.new_videos,
            f" ({row.error})" * bool(row.error),
        )
    return _report(RunSummary(sources=rows).with_catalog(catalog), "discover", "DVMSet discovery", config)


@flow(name="ingest")
def ingest_flow(
    config: Config | Path | None = None,
    catalog_url: str | None = None,
    stages: list[str] | None = None,
    runner: str = "local",
    dask_address: str | None = None,
    workers: int = DEFAULT_WORKERS,
    retry_failed: bool = False,
    follow: bool = False,
    poll_s: float = 10.0,
    idle_timeout_s: float | None = FOLLOW_IDLE_TIMEOUT_S,
) -> dict:
    """Run `stages` (default: every stage of `curation.steps.STAGES`: download, probe, separate, clip, ...)
    over every video the catalog says they have to do, a task per video and stage on the runner, each video
    moving on to its next stage as soon as one is done (`flows.pipeline`: no stage waits for every video).
    With `retry_failed`, the `failed` videos are first sent back to be tried again (skipped ones stay).
    With `follow`, the run also takes up the videos that other runs bring to its stages (asking the
    catalog every `poll_s`), and ends when no earlier stage has any left: deployments of a few stages each
    (fetch, separate, clip) chain by the catalog's state. It also ends, with a warning, when nothing has moved
    for `idle_timeout_s` (None: no limit) while earlier stages' videos wait with nobody working on them."""
    config, catalog = _open(config, catalog_url)
    chosen = [steps.stage_named(name) for name in stages] if stages else list(steps.STAGES)
    chosen = [stage for stage in steps.STAGES if stage in chosen]  # in table order, each once
    _check_runner_once(runner, dask_address, workers, catalog)
    if retry_failed:
        get_run_logger().info("retry: %d failed videos sent back", catalog.reset_errors())
    with task_runner_for(runner, dask_address, workers) as task_runner:
        slots = task_slots(task_runner, runner, dask_address, workers)
        local = runner == "local"
        tallies = run_pipeline(chosen, config, catalog, task_runner, slots, local, follow, poll_s, idle_timeout_s)
    summary = RunSummary()
    for tally in tallies:
        summary = summary.then(RunSummary.of_stage(tally, catalog))
    return _report(summary.with_catalog(catalog), "ingest", "DVMSet ingest", config)


@flow(name="publish")
def publish_flow(
    config: Config | Path | None = None,
    catalog_url: str | None = None,
    version: str | None = None,
    allow_stand_in: bool = False,
    force: bool = False,
) -> dict | State:
    """Publish the catalog's decided clips as manifest `version` (default: the next `vNNNN`) under
    `<data_root>/manifests/`: split by near-duplicate group, train and test Parquet files and a
    dataset card (see `curation.publish`). Clips made by a stand-in (random-weight) separator are
    refused unless `allow_stand_in` (then the card warns at the top). When nothing changed since
    the last version, nothing is written (the summary says so) unless `force`. A PublishError
    fails the run with its message."""
    config, catalog = _open(config, catalog_url)
    version = version or next_version(config)
    logger = get_run_logger()
    try:
        result = publish_manifests(catalog, config, version, allow_stand_in=allow_stand_in, force=force)
    except NothingChangedError as unchanged:
        logger.info("publish %s: %s", version, unchanged)
        summary = RunSummary(published=(PublishRow(version, "", 0, 0, "", str(unchanged)),))
        return _report(summary.with_catalog(catalog), "publish", f"DVMSet publish {version}", config)
    except PublishError as error:
        logger.error("publish %s: %s", version, error)
        return Failed(message=str(error), data=error)
    if result.stand_in_clips:
        logger.warning(
            "publish %s: STAND-IN OUTPUT PUBLISHED: %d clips have music made by a stand-in separator with random "
            "weights (%s): noise, not data",
            version,
            result.stand_in_clips,
            ", ".join(result.stand_in_models),
        )
    for side, clips in result.clips.items():
        logger.info("publish %s: %s %d clips from %d videos", version, side.value, clips, result.videos[side])
    return _report(RunSummary.of_publish(result).with_catalog(catalog), "publish", f"DVMSet publish {version}", config)


@flow(name="build")
def build_flow(
    config: Config | Path | None = None,
    catalog_url: str | None = None,
    folder: str | None = None,
    urls: str | None = None,
    queries: list[str] | None = None,
    queries_file: str | None = None,
    label: str | None = None,
    stages: list[str] | None = None,
    runner: str = "local",
    dask_address: str | None = None,
    workers: int = DEFAULT_WORKERS,
    retry_failed: bool = False,
    publish: bool = False,
    version: str | None = None,
    allow_stand_in: bool = False,
    force: bool = False,
) -> dict | State:
    """Discover, then ingest (with `retry_failed`: failed videos first sent back), then (with
    `publish`) publish manifest `version`, stand-in output only with `allow_stand_in`, an unchanged
    one only with `force` (see those flows).
    The runner is checked before anything is discovered. A failed publish fails the build with
    its message; the summary artifact still lists what discovery and ingest did."""
    if version and not publish:
        raise ConfigError(f"version {version!r} is given without publish: set publish to publish it")
    config, catalog = _open(config, catalog_url)
    _check_runner_once(runner, dask_address, workers, catalog)
    discovered = discover_flow(config, None, folder, urls, queries, queries_file, label)
    ingested = ingest_flow(config, None, stages, runner, dask_address, workers, retry_failed)
    summary = RunSummary.from_dict(discovered).then(RunSummary.from_dict(ingested))
    if publish:
        try:
            published = publish_flow(config, None, version, allow_stand_in, force)
            summary = summary.then(RunSummary.from_dict(published))
        except PublishError as error:
            summary = summary.then(RunSummary(published=(PublishRow(version or "", "", 0, 0, "", str(error)),)))
            _report(summary, "build", "DVMSet build", config)
            return Failed(message=f"publish failed: {error}", data=error)
    return _report(summary, "build", "DVMSet build", config)
