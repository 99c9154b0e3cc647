"""The data engineer's commands: init, discover, download, probe, separate, clip, build, status, orphans, demo.
The curation stages and flows are imported inside the commands (loading Prefect and torch only when
a command needs them); each command parses its options, makes one call into curation/ or flows/, prints.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.panel import Panel
from tqdm import tqdm

from dvmset.catalog import Catalog
from dvmset.catalog.work import WORK_LEASE_S
from dvmset.cli.common import ConfigOption, ExitCode, LimitOption, err, fail, open_catalog, out, progress_bar
from dvmset.config import DEFAULT_FILE_NAME, STARTER_CONFIG, Config
from dvmset.errors import ConfigError, PublishError, SearchError
from dvmset.records import Candidate
from dvmset.reports import review_queue_table, status_tables
from dvmset.storage import atomic_write_text

if TYPE_CHECKING:
    from curation.outcomes import StageTally
    from flows.summary import RunSummary


DEMO_SEPARATOR = "tiny-random-demo"  # the separator model id of demo clips made without real weights


def init(
    path: Annotated[Path, typer.Argument(help="where to write the starter config")] = Path(DEFAULT_FILE_NAME),
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Write a starter config file with every setting and its default."""
    if path.exists() and not force:
        raise fail(ExitCode.USAGE, f"{path} exists; use --force to overwrite it")
    atomic_write_text(path, STARTER_CONFIG)
    out.print(f"wrote {path}")


def discover(
    config_path: ConfigOption = None,
    query: Annotated[list[str] | None, typer.Option("--query", "-q", help="search these queries (repeatable)")] = None,
    queries_file: Annotated[Path | None, typer.Option(help="queries file (default: the config's)")] = None,
    urls: Annotated[Path | None, typer.Option(help="a URL list file instead of platform search")] = None,
    folder: Annotated[Path | None, typer.Option(help="a local folder (searched recursively) instead")] = None,
    label: Annotated[str | None, typer.Option(help="the query label recorded for --folder videos")] = None,
) -> None:
    """Find candidate videos and add them to the catalog as `discovered`."""
    from curation import search

    config, catalog = open_catalog(config_path)
    candidates: list[Candidate] = []
    failures: list[SearchError] = []
    try:
        if folder is not None:
            candidates += search.scan_folder(folder, label)
        if urls is not None:
            candidates += search.read_url_list(urls)
        if folder is None and urls is None:
            queries = query or search.load_queries(queries_file or config.search.queries_file)
            with tqdm(total=len(queries), desc="search", unit="query", file=sys.stderr, leave=False) as bar:
                found, failures = search.search_queries(queries, config.search, on_done=lambda _q: bar.update())
            candidates += found
    except ConfigError as exc:
        raise fail(ExitCode.CONFIG, str(exc)) from exc
    except SearchError as exc:
        raise fail(ExitCode.SOURCE, str(exc)) from exc
    added = catalog.add_candidates(candidates)
    out.print(f"discover: {len(candidates)} hits -> {added.new_videos} new videos, {added.new_links} new query links")
    if failures:
        for failure in failures:
            err.print(f"[yellow]search failed[/] {failure}", highlight=False)
        raise typer.Exit(int(ExitCode.SOURCE))


def _run_stage(name: str, catalog: Catalog, config: Config, limit: int | None) -> StageTally:
    """Run one per-video stage over the videos the catalog says it has to do (its preflight first: a
    missing model stops here, before any video is touched); print and return its tally."""
    from curation import steps

    stage = steps.stage_named(name)
    videos = stage.pending(catalog, config)[:limit]
    with progress_bar(len(videos), name) as bar:
        tally = steps.run_stage(stage, catalog, config, videos, on_outcome=lambda _o: bar.update())
    out.print(tally.line(), highlight=False)
    return tally


def download(
    config_path: ConfigOption = None,
    limit: LimitOption = None,
    probe: Annotated[bool, typer.Option(help="probe each downloaded video too")] = True,
    retry_failed: Annotated[bool, typer.Option(help="first send failed videos back to be tried again")] = False,
) -> None:
    """Download `discovered` videos (then probe them); failures are recorded with a reason."""
    config, catalog = open_catalog(config_path)
    if retry_failed:
        out.print(f"retry: {catalog.reset_errors()} failed videos sent back")
    failed = _run_stage("download", catalog, config, limit).failed
    if probe:
        failed += _run_stage("probe", catalog, config, limit).failed
    if failed:
        raise typer.Exit(int(ExitCode.ITEMS_FAILED))


def probe(config_path: ConfigOption = None, limit: LimitOption = None) -> None:
    """Probe `downloaded` videos: streams, duration, a decode check."""
    config, catalog = open_catalog(config_path)
    if _run_stage("probe", catalog, config, limit).failed:
        raise typer.Exit(int(ExitCode.ITEMS_FAILED))


def separate(
    config_path: ConfigOption = None,
    limit: LimitOption = None,
    clips: Annotated[bool, typer.Option(help="cut, normalize and prescreen the clips of each video too")] = True,
) -> None:
    """Remove vocals from `probed` videos with Demucs (then make their clips). Videos separated
    under other settings or another model are separated again."""
    config, catalog = open_catalog(config_path)
    failed = _run_stage("separate", catalog, config, limit).failed
    if clips:
        failed += _run_stage("clip", catalog, config, limit).failed
        failed += _run_stage("fingerprint", catalog, config, limit).failed
    if failed:
        raise typer.Exit(int(ExitCode.ITEMS_FAILED))


def clip_command(config_path: ConfigOption = None, limit: LimitOption = None) -> None:
    """Cut `separated` videos into 60 s clips, normalize their loudness and prescreen them, then
    fingerprint the videos. Clips made under other settings are redone, only as far as the change reaches."""
    config, catalog = open_catalog(config_path)
    failed = _run_stage("clip", catalog, config, limit).failed
    if failed + _run_stage("fingerprint", catalog, config, limit).failed:
        raise typer.Exit(int(ExitCode.ITEMS_FAILED))


def build(
    config_path: ConfigOption = None,
    folder: Annotated[
        Path | None, typer.Option(help="discover the videos of a local folder (searched recursively)")
    ] = None,
    urls: Annotated[Path | None, typer.Option(help="discover the URLs of a URL list file")] = None,
    query: Annotated[list[str] | None, typer.Option("--query", "-q", help="search these queries (repeatable)")] = None,
    queries_file: Annotated[Path | None, typer.Option(help="queries file (default: the config's)")] = None,
    label: Annotated[str | None, typer.Option(help="the query label recorded for --folder videos")] = None,
    runner: Annotated[str, typer.Option(help="where the per-video tasks run: local (threads) or dask")] = "local",
    dask_address: Annotated[str | None, typer.Option(help="Dask scheduler address (default: a LocalCluster)")] = None,
    workers: Annotated[int, typer.Option(help="threads (local), or worker processes of the Dask LocalCluster")] = 4,
    retry_failed: Annotated[bool, typer.Option(help="first send failed videos back to be tried again")] = False,
    publish: Annotated[bool, typer.Option(help="then publish the reviewed clips as manifests")] = False,
    version: Annotated[
        str | None, typer.Option(help="the manifest version to publish (default: the next vNNNN)")
    ] = None,
    allow_stand_in: Annotated[
        bool,
        typer.Option(help="with --publish: publish clips a stand-in (random-weight) separator made; the card warns"),
    ] = False,
) -> None:
    """Discover, then run every curation stage (download, probe, separate, clip, ...) through the Prefect
    build flow, in this process (on Prefect's temporary local server unless PREFECT_API_URL is set), and
    print its summary; with --publish, publish the reviewed clips at the end. Without --folder, --urls or
    --query it searches the queries file. A rerun does only unfinished work."""
    if (version or allow_stand_in) and not publish:
        raise fail(ExitCode.USAGE, "--version and --allow-stand-in need --publish")
    config, catalog = open_catalog(config_path)
    from flows.runners import check_runner
    from flows.server import configured_api_url

    try:
        check_runner(runner, dask_address, workers, catalog.dialect, configured_api_url())
    except ConfigError as exc:
        raise fail(ExitCode.CONFIG, str(exc)) from exc

    def absolute(path: Path | None) -> str | None:  # source parameters are strings, valid in any folder
        return str(path.resolve()) if path else None

    summary = _run_build_flow(
        config=config,
        folder=absolute(folder),
        urls=absolute(urls),
        queries=query,
        queries_file=absolute(queries_file),
        label=label,
        runner=runner,
        dask_address=dask_address,
        workers=workers,
        retry_failed=retry_failed,
        publish=publish,
        version=version,
        allow_stand_in=allow_stand_in,
    )
    if summary.failed_sources:
        raise typer.Exit(int(ExitCode.SOURCE))
    if summary.failed_videos or summary.failed_in_catalog:  # this run's, or earlier runs' still in the catalog
        raise typer.Exit(int(ExitCode.ITEMS_FAILED))


def _run_build_flow(**parameters: object) -> RunSummary:
    """Run the build flow in this process with `parameters` and print its summary. Exits 1 with the
    message when publishing failed (the summary artifact of the run still says what was built)."""
    from rich.markdown import Markdown

    from flows.flows import build_flow  # here: it loads Prefect's engine and the stages
    from flows.server import prefect_api
    from flows.summary import RunSummary

    with prefect_api():
        state = build_flow(**parameters, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, PublishError):
        raise fail(ExitCode.ITEMS_FAILED, f"the build ran, but publishing failed: {result}")
    if isinstance(result, BaseException):
        raise result
    summary = RunSummary.from_dict(result)
    out.print(Markdown(summary.markdown("DVMSet build")))
    return summary


def status(
    config_path: ConfigOption = None,
    by_query: Annotated[bool, typer.Option("--by-query", help="one table row per query")] = False,
) -> None:
    """Counts of videos by status and reason (and per query)."""
    config, catalog = open_catalog(config_path)
    if config.storage.url:  # reached: open_catalog checked it
        out.print(f"data root: {config.storage.url} (this machine's copy: {config.data_root})", highlight=False)
    for table in status_tables(catalog, by_query=by_query):
        out.print(table)


def orphans(
    config_path: ConfigOption = None,
    remove: Annotated[bool, typer.Option(help="delete the orphans found")] = False,
    min_age_s: Annotated[
        float, typer.Option(min=0.0, help="never an object changed this recently (default: a work lease's length)")
    ] = WORK_LEASE_S,
) -> None:
    """Objects in the object-store data root that the catalog does not know (left by a task killed between
    its upload and its catalog write, and taken over by no later run): listed by folder, deleted with --remove."""
    from rich.table import Table

    from curation.orphans import JUDGED_FOLDERS, find_orphans, remove_orphans

    config, catalog = open_catalog(config_path)
    storage = config.data_storage()
    if storage.store is None:
        raise fail(ExitCode.USAGE, f"the data root {config.data_root} is a local folder: orphans are an object store's")
    found = find_orphans(storage, catalog, min_age_s)
    table = Table(title=f"objects under {storage.store.url} the catalog does not know")
    for column in ("folder", "objects", "MB"):
        table.add_column(column, justify="left" if column == "folder" else "right")
    for folder in JUDGED_FOLDERS:
        mine = [orphan for orphan in found if orphan.folder == folder]
        table.add_row(folder, str(len(mine)), f"{sum(o.size_bytes for o in mine) / 1e6:.1f}")
    out.print(table)
    for orphan in found:
        out.print(
            f"  {orphan.relative}  ({orphan.size_bytes} bytes, {orphan.modified_at:%Y-%m-%d %H:%M} UTC)",
            highlight=False,
        )
    if remove and found:
        remove_orphans(storage, found)
        out.print(f"removed {len(found)} objects")
    elif found:
        out.print("run again with --remove to delete them")


def demo(
    workdir: Annotated[Path, typer.Option(help="folder for the sample videos, data and config")] = Path("demo"),
) -> None:
    """The main job on embedded defaults, offline, through the Prefect build flow (as `dvmset build`):
    sample videos -> discover -> download -> probe -> separate -> clip (cut, loudness, prescreen) ->
    fingerprint; then the run's summary and the review queue. It separates with the real htdemucs
    weights where they are found (the model folder, Demucs' cache, the dvmset weights cache) and says
    so with their SHA-256; without them, and only here, a tiny random stand-in separator is built,
    said so in red, and every clip it makes is marked stand-in output (never data)."""
    from rich.markup import escape

    from curation import steps
    from curation.samples import make_sample_folder
    from curation.separate import ModelNotFoundError, save_tiny_model

    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / DEFAULT_FILE_NAME
    if not config_file.exists():
        atomic_write_text(config_file, STARTER_CONFIG)
    samples = workdir / "samples"
    if not samples.exists():
        out.print(f"making sample videos in {samples} (ffmpeg lavfi)")
        make_sample_folder(samples)
    config, catalog = open_catalog(config_file)
    fell_back = False
    try:
        separator = steps.separator_for(config)
    except ModelNotFoundError as missing:
        fell_back = True
        models = (workdir / "models").resolve()
        save_tiny_model(models, DEMO_SEPARATOR, sample_rate_hz=44100)
        config = config.model_copy(
            update={"model_dir": models, "separate": config.separate.model_copy(update={"model": DEMO_SEPARATOR})}
        )
        separator = steps.separator_for(config)  # the stand-in, loaded once: the flow's tasks reuse it
        out.print(
            Panel(
                f"{escape(str(missing))}\n\nTHE DEMO GOES ON WITH A STAND-IN: {DEMO_SEPARATOR!r}, a tiny Demucs with "
                f"RANDOM weights (saved in {models}). It removes no vocals; its 'accompaniment' is "
                f"filtered noise. Every clip records {DEMO_SEPARATOR!r} as its separator model and is marked stand-in "
                "output: the labeling app shows it under a red banner, and `dvmset publish` refuses it without "
                "--allow-stand-in. A normal run never does this: it stops with the error above. For real weights, run "
                "`python -m curation.htdemucs_onnx` (it writes them to the dvmset weights cache) and run the demo "
                "again.",
                title="no Demucs weights: demo stand-in separator",
                border_style="bold red",
            )
        )
    weights = "STAND-IN with RANDOM weights" if separator.stand_in else "real weights"
    separator_line = f"separator: {separator.model_id} ({weights}, SHA-256 {separator.sha256 or 'unknown'})"
    if not separator.stand_in:
        out.print(Panel(escape(separator_line), title="demo separator: real weights", border_style="green"))
    elif not fell_back:  # the configured model itself is a stand-in (its bag file says so)
        out.print(
            Panel(
                f"{escape(separator_line)}\nIts 'accompaniment' is filtered noise; every clip is marked stand-in "
                "output.",
                title="demo separator: STAND-IN",
                border_style="bold red",
            )
        )
    summary = _run_build_flow(
        config=config, folder=str(samples.resolve()), label="demo samples"
    )  # the failed and skipped sample videos are the demo's point: they do not fail the command
    out.print(f"discover: {sum(row.new_videos for row in summary.sources)} new videos from {samples}")
    clips = catalog.clips()
    out.print(review_queue_table(clips))
    out.print(f"catalog: {catalog.url}\ndata root: {config.data_root.resolve()}")
    stand_in_clips = sum(1 for clip in clips if clip.stand_in)
    if separator.stand_in or stand_in_clips:
        out.print(
            f"[bold red]{escape(separator_line)}[/]\n[bold red]{stand_in_clips} of {len(clips)} clips are stand-in "
            "output (noise, not data):[/] marked in the catalog, under a red banner in `dvmset label`, refused by "
            "`dvmset publish` without --allow-stand-in",
            highlight=False,
        )
    else:
        out.print(f"{escape(separator_line)}\n{len(clips)} clips, none of them stand-in output", highlight=False)
