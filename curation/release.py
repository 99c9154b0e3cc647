"""Make a media-free release from a published manifest version (`dvmset release`).

In: a `manifests/<version>/` folder (train and test Parquet), and optionally the catalog, whose
rejected clips of the same videos are released too (with their reasons), so that a rebuild
starts with those decisions as well. Out: `<release dir>/clips.parquet` (`manifests.release`) and
its card `README.md` (counts, how to open and rebuild it, the config and code version), built
beside the final folder and renamed into place; a release that exists is never overwritten.

Videos whose source is a local file (`local:` ids) are left out and counted: a release holds no
local path. No annotator name is released, only decisions and reasons.
"""

from __future__ import annotations

import os
import shutil
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from curation.versions import VersionExistsError, code_version
from dvmset.catalog import Catalog
from dvmset.config import Config, config_toml
from dvmset.records import ClipStatus
from dvmset.storage import atomic_write_text, temp_name_for
from manifests.card import CARD_FILE
from manifests.markdown import fenced, markdown_table
from manifests.release import (
    RELEASE_FILE,
    RELEASE_SCHEMA_VERSION,
    ReleaseRow,
    is_shareable_url,
    release_row,
    write_release,
)
from manifests.schema import manifest_metadata, manifest_path, read_manifest
from manifests.split import Split


@dataclass(frozen=True)
class ReleaseResult:
    """What a release wrote: its folder, clips per (split, decision), videos, and the videos left
    out because their source is a local file."""

    version: str
    release_dir: Path
    clips: dict[tuple[str, str], int]
    videos: int
    withheld_local_videos: int


def make_release(manifest_dir: Path, release_dir: Path, catalog: Catalog | None = None) -> ReleaseResult:
    """Release the manifest in `manifest_dir` into `release_dir` (see the module docstring).
    VersionExistsError if `release_dir` exists; ManifestError if a manifest file is unreadable."""
    manifest_dir, release_dir = Path(manifest_dir), Path(release_dir)
    if release_dir.exists():
        raise VersionExistsError(f"release folder {release_dir} exists and is never overwritten; choose another -o")
    tables = [read_manifest(manifest_path(manifest_dir, side)) for side in Split]
    metadata = manifest_metadata(tables[0])
    version = metadata.get("manifest_version") or manifest_dir.name
    records = [record for table in tables for record in table.to_pylist()]
    local = {record["video_id"] for record in records if not is_shareable_url(record["source_url"])}
    kept = [record for record in records if record["video_id"] not in local]
    rows = [release_row(record) for record in kept]
    if catalog is not None:
        rows += _rejected_rows(catalog, kept)
    release_metadata = {
        "release_version": version,
        "manifest_version": version,
        "manifest_code_version": metadata.get("code_version"),
        "code_version": code_version(),
        "config": shareable_config(metadata.get("config") or ""),
    }
    staging = temp_name_for(release_dir)
    try:
        write_release(rows, staging, release_metadata)
        atomic_write_text(staging / CARD_FILE, card_text(version, rows, len(local), release_metadata))
        release_dir.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging, release_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ReleaseResult(
        version=version,
        release_dir=release_dir,
        clips=dict(Counter((row.split, row.decision) for row in rows)),
        videos=len({row.video_id for row in rows}),
        withheld_local_videos=len(local),
    )


def shareable_config(toml_text: str) -> str:
    """A manifest's config TOML without local paths: the data root back to its default, and no
    model folder, catalog URL, queries file, cookies file or proxy. "" when it does not load."""
    try:
        config = Config.model_validate(tomllib.loads(toml_text))
    except (tomllib.TOMLDecodeError, ValidationError):
        return ""
    return config_toml(
        config.model_copy(
            update={
                "data_root": Config().data_root,
                "model_dir": None,
                "catalog_url": None,
                "search": config.search.model_copy(update={"queries_file": None, "proxy": None}),
                "download": config.download.model_copy(update={"cookies_file": None, "proxy": None}),
            }
        )
    )


def _rejected_rows(catalog: Catalog, manifest_records: list[dict[str, Any]]) -> list[ReleaseRow]:
    """Release rows for the catalog's rejected live clips of the manifest's videos (each takes its
    video's source, group and split from the video's manifest rows)."""
    video_record = {record["video_id"]: record for record in manifest_records}
    released = {record["clip_id"] for record in manifest_records}
    decisions = catalog.decisions()
    rows = []
    for clip in catalog.clips():
        decision = decisions.get(clip.clip_id)
        if clip.video_id not in video_record or clip.clip_id in released or decision is None:
            continue
        if decision.status is ClipStatus.REJECTED:
            rows.append(
                release_row(
                    video_record[clip.video_id],
                    clip_id=clip.clip_id,
                    start_s=clip.start_s,
                    end_s=clip.end_s,
                    duration_s=clip.duration_s,
                    fps=clip.fps,
                    decision=decision.status.value,
                    reasons=[reason.value for reason in decision.reasons],
                )
            )
    return rows


def card_text(version: str, rows: list[ReleaseRow], withheld_local_videos: int, metadata: dict[str, Any]) -> str:
    """The release card's Markdown (pure): front matter, counts, how to open and rebuild, provenance."""
    counts = Counter((row.split, row.decision) for row in rows)
    sides = sorted({row.split for row in rows})
    split_rows = [
        [
            side,
            counts[(side, "accepted")],
            counts[(side, "rejected")],
            len({r.video_id for r in rows if r.split == side}),
            len({r.group_id for r in rows if r.split == side}),
        ]
        for side in sides
    ]
    by_query = Counter((row.query or "(none)", row.split) for row in rows if row.decision == "accepted")
    queries = sorted({query for query, _side in by_query})
    query_rows = [[query, *(by_query[(query, side)] for side in sides)] for query in queries]
    withheld = (
        f"\n\n{withheld_local_videos} videos of the manifest came from local files and are not in this release."
        if withheld_local_videos
        else ""
    )
    return (
        "\n\n".join(
            [
                f'---\npretty_name: "DVMSet {version} (media-free release)"\nlicense: other\n'
                f"configs:\n- config_name: default\n  data_files: {RELEASE_FILE}\n"
                f"dvmset_release_schema_version: {RELEASE_SCHEMA_VERSION}\n---",
                f"# DVMSet {version}: media-free release\n\n"
                f"`{RELEASE_FILE}` lists the clips of manifest {version} without any media: each row is one clip "
                "of a web video, by source URL and platform id, with its "
                "start and end time, near-duplicate group, split (train/test), and the reviewers' decision and "
                "reasons. "
                "The media stay with their owners: rebuild them from the URLs. Each clip keeps the licence of its "
                "source video (column `license`)." + withheld,
                "## Counts\n\n"
                + markdown_table(["split", "accepted clips", "rejected clips", "videos", "groups"], split_rows),
                "## Accepted clips per query\n\n"
                + (markdown_table(["query", *sides], query_rows) if query_rows else "None."),
                "## Open it\n\n"
                + fenced(
                    "import pandas as pd\nclips = pd.read_parquet('clips.parquet')\n"
                    "train = clips[(clips.split == 'train') & (clips.decision == 'accepted')]\n\n"
                    "# or: duckdb -c \"SELECT split, count(*) FROM 'clips.parquet' GROUP BY split\"",
                    "python",
                ),
                "## Rebuild the clips\n\n"
                "With the `dvmset` package installed (Python 3.11, ffmpeg) and a config whose `[clip]`, `[separate]` "
                "and `[loudness]` settings match the configuration below:\n\n"
                + fenced(
                    "dvmset init dvmset.toml            # then copy the settings below into it\n"
                    "dvmset rebuild path/to/this/folder --config dvmset.toml",
                    "sh",
                )
                + "\n\nThe rebuild downloads every source again, runs the normal stages (probe, vocal removal, "
                "clips, loudness, prescreen, fingerprint), checks that every clip comes out with the same id and "
                "duration (to one frame), records this release's decisions as label events by `release:"
                f"{version}`, and reports the clips it could not make: sources gone (with the download's reason "
                "code) and clips whose times no longer match. It exits non-zero only when no clip could be rebuilt.",
                f"## Provenance\n\nRelease schema version {RELEASE_SCHEMA_VERSION}; manifest {version}.\n\n"
                f"Code version of the manifest:\n\n{fenced(str(metadata.get('manifest_code_version')), 'text')}\n\n"
                f"Code version of the release:\n\n{fenced(str(metadata.get('code_version')), 'text')}\n\n"
                f"Configuration:\n\n{fenced(metadata.get('config') or '# not recorded', 'toml')}",
            ]
        )
        + "\n"
    )
