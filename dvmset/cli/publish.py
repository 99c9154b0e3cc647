"""The publishing commands of `dvmset`: `publish`, `manifests check`, `manifests export-jsonl`,
`release` and `rebuild`.

Registered by `dvmset.cli.main`. Exit codes as in `dvmset.cli.common`; here:
2 (usage) when the manifest or release version asked for exists already, or when clips to
publish have music made by a stand-in (random-weight) separator and `--allow-stand-in` was not
given (nothing is written either way), 1 when publishing fails otherwise (a fingerprint is
missing, the stored groups leak, a split would have no rows), a manifest or release file is
unreadable or has problems, `export-jsonl` would name files that do not exist, or a rebuild made
none of its clips. A publish with nothing changed since the last version writes nothing and
exits 0 (`--force` writes it anyway).
A rebuild with sources gone but some clips made exits 0 and reports them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from dvmset.cli.common import ConfigOption, ExitCode, err, fail, load_config_or_exit, open_catalog, out
from dvmset.errors import ConfigError, PublishError
from manifests.schema import MEDIA_ROOT_KEY, ManifestError, file_metadata, manifest_path
from manifests.split import Split

manifests_app = typer.Typer(help="Check and export published manifests.", no_args_is_help=True)

DataRootOption = Annotated[
    Path | None, typer.Option("--data-root", help="where the manifests' media paths start (default: the config's)")
]


def publish(
    config_path: ConfigOption = None,
    version: Annotated[str | None, typer.Option(help="the manifest version (default: the next vNNNN)")] = None,
    allow_stand_in: Annotated[
        bool,
        typer.Option(
            "--allow-stand-in",
            help="publish clips whose music a stand-in separator with random weights made (noise, not data); "
            "the card then says so at the top",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="write a new version even when nothing changed since the last one")
    ] = False,
) -> None:
    """Split the decided clips by near-duplicate group and write `manifests/<version>/`: train and
    test Parquet files (with every media file's size, SHA-256 and decoded duration) and a dataset
    card. Videos already published keep their side. Clips made by a stand-in (random-weight)
    separator are refused unless --allow-stand-in is given; a split with no rows is refused (exit
    1, with the reason); nothing is written when nothing changed since the last version (exit 0)
    unless --force is given."""
    from curation.publish import StandInError
    from curation.publish import (
        publish as publish_manifests,
    )
    from curation.versions import NothingChangedError, VersionExistsError, next_version

    config, catalog = open_catalog(config_path)
    try:
        result = publish_manifests(
            catalog, config, version or next_version(config), allow_stand_in=allow_stand_in, force=force
        )
    except NothingChangedError as exc:
        out.print(escape(str(exc)), highlight=False)
        return
    except (VersionExistsError, StandInError) as exc:
        raise fail(ExitCode.USAGE, str(exc)) from exc
    except PublishError as exc:
        raise fail(ExitCode.ITEMS_FAILED, str(exc)) from exc
    table = Table(title=f"published {result.version}")
    for column in ("split", "clips", "videos"):
        table.add_column(column)
    for side, clips in result.clips.items():
        table.add_row(side.value, str(clips), str(result.videos[side]))
    out.print(table)
    out.print(
        f"{result.groups} groups, {result.newly_published_videos} videos published for the first time, "
        f"{result.rejected_clips} rejected clips (counted in the card)\n{result.manifest_dir}"
    )
    if result.stand_in_clips:
        err.print(
            f"[bold red]STAND-IN OUTPUT PUBLISHED[/]: {result.stand_in_clips} clips have music made by a stand-in "
            f"separator with random weights ({escape(', '.join(result.stand_in_models))}): noise, not data; the card "
            "says so at the top",
            highlight=False,
        )
    for merge in result.merges:
        err.print(f"[yellow]groups merged[/] {', '.join(merge.absorbed)} into {merge.kept}", highlight=False)
    if result.withheld_video_ids:
        err.print(
            f"[yellow]withheld[/] {', '.join(result.withheld_video_ids)}: each matches videos published on both "
            "sides, so it cannot join either without a leak",
            highlight=False,
        )


def _media_root(manifest_dir: Path, config_path: Path | None, data_root: Path | None) -> Path | None:
    """Where the manifests' media paths start, as an override of their recorded `media_root`:
    `--data-root` when given; the config's data root only when the manifest records no media
    root (published before it did); else None (the manifest's own, from any working folder)."""
    if data_root is not None:
        return data_root
    try:
        recorded = MEDIA_ROOT_KEY in file_metadata(manifest_path(manifest_dir, Split.TRAIN))
    except (ManifestError, OSError):
        recorded = False
    if recorded:
        return None
    return load_config_or_exit(config_path).data_root


@manifests_app.command()
def check(
    manifest_dir: Annotated[Path, typer.Argument(help="a manifests/<version> folder")],
    config_path: ConfigOption = None,
    data_root: DataRootOption = None,
    decode: Annotated[
        bool, typer.Option("--decode", help="also decode every file in full (ffmpeg) and compare its duration; slow")
    ] = False,
) -> None:
    """Check a manifest folder: schema, rows in both splits, no clip twice, no video or group on
    both sides, every file there with the size and SHA-256 recorded at publish (and with
    --decode, decoding cleanly to the recorded duration). Media paths start at the manifest's
    recorded media root, from any working folder. Exit 1 with a report when anything is wrong."""
    from manifests.check import check_manifests

    report = check_manifests(manifest_dir, _media_root(manifest_dir, config_path, data_root), decode=decode)
    (out if report.ok else err).print(report.table())
    if not report.ok:
        raise typer.Exit(int(ExitCode.ITEMS_FAILED))


@manifests_app.command(name="export-jsonl")
def export_jsonl(
    manifest_dir: Annotated[Path, typer.Argument(help="a manifests/<version> folder")],
    out_dir: Annotated[Path, typer.Argument(help="where to write train.jsonl and test.jsonl")],
    config_path: ConfigOption = None,
    data_root: DataRootOption = None,
) -> None:
    """Write the accepted clips as audiocraft-style jsonl (absolute paths), one file per split.
    Exit 1, listing them and writing nothing, when files the lines would name do not exist."""
    from manifests.export_jsonl import MissingMediaError
    from manifests.export_jsonl import export_jsonl as export

    try:
        written = export(manifest_dir, _media_root(manifest_dir, config_path, data_root), out_dir)
    except MissingMediaError as exc:
        for path in exc.missing:
            err.print(f"missing: {escape(path)}", highlight=False, emoji=False, soft_wrap=True)
        raise fail(ExitCode.ITEMS_FAILED, str(exc)) from exc
    except ManifestError as exc:
        raise fail(ExitCode.ITEMS_FAILED, str(exc)) from exc
    for side, path in written.items():
        out.print(f"{side.value}: {path}")


def release(
    version: Annotated[str, typer.Argument(help="a published manifest version (a folder under manifests/)")],
    config_path: ConfigOption = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="the release folder (default: <data_root>/releases/<version>)")
    ] = None,
) -> None:
    """Write a media-free release of a published manifest: `clips.parquet` (source URLs, clip
    times, groups, splits, decisions and reasons; no media, no local paths) and its card."""
    from curation.release import make_release
    from curation.versions import VersionExistsError

    config, catalog = open_catalog(config_path)
    storage = config.data_storage()  # with an object store: the manifest fetched, the release uploaded
    manifest_dir = storage.fetch_folder(storage.data.manifests_dir / version)
    if not manifest_dir.is_dir():
        raise fail(ExitCode.USAGE, f"no manifest version {version!r} at {manifest_dir}; publish it first")
    try:
        result = make_release(
            manifest_dir, out_dir or storage.fetch_folder(storage.data.releases_dir / version), catalog
        )
        if out_dir is None:
            storage.upload(result.release_dir)
    except VersionExistsError as exc:
        raise fail(ExitCode.USAGE, str(exc)) from exc
    except ManifestError as exc:
        raise fail(ExitCode.ITEMS_FAILED, str(exc)) from exc
    table = Table(title=f"release {result.version}")
    for column in ("split", "decision", "clips"):
        table.add_column(column)
    for (side, decision), clips in sorted(result.clips.items()):
        table.add_row(side, decision, str(clips))
    out.print(table)
    if result.withheld_local_videos:
        err.print(f"[yellow]left out[/] {result.withheld_local_videos} videos from local files (no URL to share)")
    out.print(f"{result.videos} videos\n{result.release_dir}")


def rebuild(
    release_dir: Annotated[Path, typer.Argument(help="a release folder (with clips.parquet)")],
    config_path: ConfigOption = None,
) -> None:
    """Rebuild a release's clips through the normal stages into the config's data root; carry its
    decisions over as label events; report the clips rebuilt, missing (with the reason) and those
    whose times no longer match. Exit 1 only when no clip could be rebuilt."""
    from curation.rebuild import Outcome
    from curation.rebuild import rebuild as rebuild_release

    config, catalog = open_catalog(config_path)
    try:
        report = rebuild_release(release_dir, catalog, config, on_stage=lambda s: out.print(s.line(), highlight=False))
    except ManifestError as exc:
        raise fail(ExitCode.ITEMS_FAILED, str(exc)) from exc
    except ConfigError as exc:
        raise fail(ExitCode.CONFIG, str(exc)) from exc
    for warning in report.warnings:
        err.print(f"[yellow]warning[/] {escape(warning)}", highlight=False)
    summary = Table(title=f"rebuild of release {report.version}")
    for column in ("outcome", "reason", "clips"):
        summary.add_column(column)
    for (outcome, reason), count in sorted(report.counts().items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        summary.add_row(outcome.value, reason or "", str(count))
    out.print(summary)
    problems = Counter(
        (clip.video_id, clip.outcome.value, clip.reason or "", clip.detail or "")
        for clip in report.clips
        if clip.outcome is not Outcome.REBUILT
    )
    if problems:
        details = Table(title="videos with clips not rebuilt")
        for column in ("video", "outcome", "reason", "clips", "detail"):
            details.add_column(column, overflow="fold")
        for (video_id, outcome, reason, detail), count in sorted(problems.items()):
            details.add_row(video_id, outcome, reason, str(count), Text(detail))
        err.print(details)
    out.print(f"{report.rebuilt} of {len(report.clips)} clips rebuilt; {report.labels_added} decisions carried over")
    if report.clips and not report.rebuilt:
        raise typer.Exit(int(ExitCode.ITEMS_FAILED))
