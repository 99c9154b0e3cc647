"""The dataset card of a published manifest folder, after Hugging Face's dataset-card conventions.

In: the folder, its train and test tables (`MANIFEST_SCHEMA`), the rejection reasons counted
over the reviewed clips, the exact config (TOML text), the code version, the models the clips'
stems came from (`ModelUse`: separator and speech detector, SHA-256, stand-in or not, clips per
split), the rejected clips made by a stand-in, and optionally the source videos' durations and
the number of rejected clips. Out: `README.md` in that folder and the pictures it embeds
(`manifests.card_picture_files`), every file written atomically.

The card: YAML front matter (`configs` naming the Parquet file of each split, so that
`datasets.load_dataset(<folder>)` reads both splits; `license` from the source videos' licences:
their Hub id when they all have the same one, else `other` with the licences counted;
`task_categories`, `size_categories`, `pretty_name`, tags; `stand_in: true|false`); a red-flag
warning first thing when any clip's music came from a stand-in separator with random weights;
then how to load it, counts per split and query, the split rule, the column dictionary
(`manifests.card_columns`, from `MANIFEST_SCHEMA` and `COLUMN_DOCS`), licences, review outcome,
models, pictures (clip loudness, source-video and clip durations, scene cuts per minute,
accept/reject reasons) and provenance (code version and the config with its local paths redacted).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from dvmset.records import ModelStamp
from dvmset.storage import atomic_write_bytes, atomic_write_text
from manifests.card_columns import column_dictionary
from manifests.card_picture_files import (
    DURATION_PICTURE,
    LOUDNESS_PICTURE,
    REVIEW_PICTURE,
    SCENE_CUT_PICTURE,
    card_pictures,
)
from manifests.markdown import fenced, markdown_table
from manifests.schema import MANIFEST_SCHEMA_VERSION, manifest_path
from manifests.split import Split, SplitConfig

CARD_FILE = "README.md"
NO_QUERY = "(none)"
UNKNOWN_LICENSE = "unknown"
# Hub task ids (@huggingface/tasks, pipelines.ts): the Hub has no video-to-audio task; music
# generation from a conditioning signal is text-to-audio there, and tags say video-to-music.
TASK_CATEGORIES = ("text-to-audio",)
TAGS = ("music", "video", "video-to-music", "video-to-audio", "music-generation")
# licence strings platforms give (yt-dlp's `license`), lowercased -> the Hub's licence id
_PLATFORM_LICENSES = {
    "creative commons attribution license (reuse allowed)": "cc-by-3.0",  # YouTube's CC BY 3.0
    "creative commons attribution": "cc-by-4.0",
    "cc by": "cc-by-4.0",
    "public domain": "cc0-1.0",
    "cc0": "cc0-1.0",
}
_HUB_LICENSES = frozenset(
    {
        "cc0-1.0",
        "cc-by-2.0",
        "cc-by-2.5",
        "cc-by-3.0",
        "cc-by-4.0",
        "cc-by-sa-3.0",
        "cc-by-sa-4.0",
        "cc-by-nc-2.0",
        "cc-by-nc-3.0",
        "cc-by-nc-4.0",
        "cc-by-nd-4.0",
        "cc-by-nc-nd-3.0",
        "cc-by-nc-nd-4.0",
        "cc-by-nc-sa-2.0",
        "cc-by-nc-sa-3.0",
        "cc-by-nc-sa-4.0",
        "pddl",
        "odc-by",
        "mit",
        "apache-2.0",
    }
)
# config keys whose values are local (or private) places: never in a card
_REDACTED_KEYS = frozenset({"data_root", "model_dir", "catalog_url", "queries_file", "cookies_file", "proxy"})
_LOCAL_PATH = re.compile(r'"(?:/|~|[A-Za-z]:[\\/]|file:)[^"]*"')

SEPARATOR_ROLE = "separator"
SPEECH_ROLE = "speech detector"


@dataclass(frozen=True)
class ModelUse:
    """One model the published clips' stems came from (`role`: `SEPARATOR_ROLE` or
    `SPEECH_ROLE`), and how many clips of each split (`Split` value -> clips) it made."""

    role: str
    stamp: ModelStamp
    clips: Mapping[str, int]


def write_dataset_card(
    manifest_dir: Path,
    train_table: pa.Table,
    test_table: pa.Table,
    *,
    rejections: Counter,
    config_toml: str,
    code_version: str,
    models: Sequence[ModelUse] | None = None,
    stand_in_rejected: int = 0,
    video_durations_s: Mapping[str, float] | None = None,
    rejected_clips: int | None = None,
) -> Path:
    """Write `README.md` and its pictures into `manifest_dir`; return the card's path.
    `rejections`: reason (str or RejectReason) -> rejected clips; `models`: see `card_text`;
    `stand_in_rejected`: rejected clips (counted in the card) whose music a stand-in made;
    `video_durations_s`: video id -> the source video's duration (None: each video's last clip
    end is drawn instead); `rejected_clips`: how many clips were rejected (None: not drawn)."""
    manifest_dir = Path(manifest_dir)
    tables = {Split.TRAIN: train_table, Split.TEST: test_table}
    for name, png in card_pictures(tables, rejections, video_durations_s, rejected_clips).items():
        atomic_write_bytes(manifest_dir / name, png)
    card = manifest_dir / CARD_FILE
    text = card_text(
        manifest_dir.name,
        tables,
        rejections,
        config_toml,
        code_version,
        models=models,
        stand_in_rejected=stand_in_rejected,
        video_durations_known=video_durations_s is not None,
        rejected_clips=rejected_clips,
    )
    atomic_write_text(card, text)
    return card


def card_text(
    version: str,
    tables: Mapping[Split, pa.Table],
    rejections: Counter,
    config_toml: str,
    code_version: str,
    *,
    models: Sequence[ModelUse] | None = None,
    stand_in_rejected: int = 0,
    video_durations_known: bool = False,
    rejected_clips: int | None = None,
) -> str:
    """The Markdown of the card (pure): front matter, the stand-in warning (only when a clip's
    music came from a stand-in), then one section per topic. `models`: the models the clips'
    stems came from; None: the separators named in the tables (`separator_model_id`, `stand_in`),
    SHA-256 unknown. `video_durations_known`: the duration picture shows the source videos'
    whole durations (else up to their last clip's end)."""
    total_clips = sum(table.num_rows for table in tables.values())
    models = _models_of_tables(tables) if models is None else list(models)
    stand_in_accepted = sum(_stand_in_count(table) for table in tables.values())
    stand_in = bool(stand_in_accepted or stand_in_rejected or any(use.stamp.stand_in for use in models))
    warning = [_stand_in_warning(tables, models, stand_in_accepted, stand_in_rejected)] if stand_in else []
    licenses = _license_counts(tables)
    durations = "their durations" if video_durations_known else "how far into them the last clip ends"
    sections = [
        _front_matter(version, total_clips, stand_in, licenses),
        *warning,
        f"# DVMSet {version}\n\n"
        "Video-music clips curated from web videos, for video-to-music generation: each row of a split's "
        "Parquet file is one clip, with its source, its scores, the reviewers' decision, and the paths of "
        "its video and its music. Each clip keeps the licence of its source video (column `license`, "
        "[Licences](#licences)).",
        "## Load it\n\n"
        + fenced(
            "from datasets import load_dataset\n"
            'clips = load_dataset("path/to/this/folder")  # both splits, from this card\'s configs\n\n'
            'import pandas as pd\ntrain = pd.read_parquet("train.parquet")\n\n'
            "# duckdb -c \"SELECT query, count(*) FROM 'train.parquet' GROUP BY query\"",
            "python",
        ),
        "## Splits\n\n" + _split_table(tables) + "\n\n" + _split_rule(config_toml, tables),
        "## Clips per query\n\nEach clip counts under its source video's first query.\n\n" + _query_table(tables),
        "## Columns\n\n"
        f"Generated from the manifest schema (version {MANIFEST_SCHEMA_VERSION}), the same in both files.\n\n"
        + column_dictionary(),
        "## Licences\n\n" + _license_section(licenses),
        "## Rejections\n\n"
        + _rejection_table(rejections, rejected_clips)
        + f"\n\n![Review outcome: accepted clips, and rejected clips by reason]({REVIEW_PICTURE})",
        "## Models\n\n" + _model_table(models, tables),
        "## Loudness, durations and scene cuts\n\n"
        "Integrated loudness (ITU-R BS.1770) of each clip's music before and after normalization:\n\n"
        f"![Clip loudness histograms, before and after normalization, in LUFS]({LOUDNESS_PICTURE})\n\n"
        f"Durations of the source videos ({durations}) and of the clips:\n\n"
        f"![Histograms of source-video and clip durations, in seconds]({DURATION_PICTURE})\n\n"
        "Scene cuts per minute of each clip (the prescreen's cut times):\n\n"
        f"![Histogram of scene cuts per minute of clip]({SCENE_CUT_PICTURE})",
        "## Provenance\n\n"
        f"Manifest schema version {MANIFEST_SCHEMA_VERSION}.\n\nCode version:\n\n{fenced(code_version, 'text')}\n\n"
        "Configuration (local paths, the catalog URL and proxies left out):\n\n"
        f"{fenced(redact_local_paths(config_toml), 'toml')}",
    ]
    return "\n\n".join(sections) + "\n"


def hub_license(license_text: str | None) -> str | None:
    """The Hub's licence id for a licence string a platform gives, or None when it has none."""
    if not license_text:
        return None
    text = license_text.strip().lower()
    return text if text in _HUB_LICENSES else _PLATFORM_LICENSES.get(text)


def redact_local_paths(config_toml: str) -> str:
    """The config TOML without local places: lines setting `data_root`, `model_dir`,
    `catalog_url`, `queries_file`, `cookies_file` or `proxy` become comments saying so, and any
    other absolute path in a string (`/...`, `~...`, `C:\\...`, `file:...`) becomes `"<local path>"`."""
    lines = []
    for line in config_toml.splitlines():
        key = line.split("=", 1)[0].strip() if "=" in line and not line.lstrip().startswith("#") else ""
        if key in _REDACTED_KEYS:
            lines.append(f"# {key} = <redacted: a local path or private address>")
        else:
            lines.append(_LOCAL_PATH.sub('"<local path>"', line))
    return "\n".join(lines) + ("\n" if config_toml.endswith("\n") else "")


def _license_counts(tables: Mapping[Split, pa.Table]) -> Counter[tuple[str, str]]:
    """(licence or "unknown", video id) -> clips, over both splits."""
    counts: Counter[tuple[str, str]] = Counter()
    for table in tables.values():
        for video_id, license_text in zip(table["video_id"].to_pylist(), table["license"].to_pylist()):
            counts[((license_text or "").strip() or UNKNOWN_LICENSE, video_id)] += 1
    return counts


def _license_section(licenses: Counter[tuple[str, str]]) -> str:
    if not licenses:
        return "No clips, so no licences."
    videos = Counter(name for name, _video in licenses)
    clips: Counter[str] = Counter()
    for (name, _video), count in licenses.items():
        clips[name] += count
    rows = [
        [name, hub_license(name) or ("unknown" if name == UNKNOWN_LICENSE else "other"), videos[name], clips[name]]
        for name in sorted(videos, key=lambda n: (-videos[n], n))
    ]
    return (
        "The licences the platforms give for the source videos (`unknown`: the platform said none). "
        "A clip keeps its source video's licence; check it before you redistribute the media.\n\n"
        + markdown_table(["licence (as the platform gives it)", "Hub id", "videos", "clips"], rows)
    )


def _front_matter(version: str, total_clips: int, stand_in: bool, licenses: Counter[tuple[str, str]]) -> str:
    """Hugging Face dataset-card YAML (JSON strings are valid YAML scalars); `stand_in`: some
    clip's music was made by a stand-in (random-weight) model."""
    files = "".join(f"  - split: {split.value}\n    path: {manifest_path(Path('.'), split).name}\n" for split in Split)
    videos = Counter(name for name, _video in licenses)
    ids = {hub_license(name) for name in videos}
    if len(ids) == 1 and None not in ids:
        license_lines = f"license: {ids.pop()}\n"
    else:
        counted = "".join(
            f"- license: {json.dumps(name)}\n  videos: {videos[name]}\n"
            for name in sorted(videos, key=lambda n: (-videos[n], n))
        )
        license_lines = "license: other\nlicense_name: source-video-licences\n" + (
            f"source_licenses:\n{counted}" if counted else "source_licenses: []\n"
        )
    return (
        f"---\npretty_name: {json.dumps(f'DVMSet {version}')}\n{license_lines}"
        + "task_categories:\n"
        + "".join(f"- {task}\n" for task in TASK_CATEGORIES)
        + f"size_categories:\n- {_size_category(total_clips)}\n"
        + "tags:\n"
        + "".join(f"- {tag}\n" for tag in TAGS)
        + f"configs:\n- config_name: default\n  data_files:\n{files}"
        f"dvmset_schema_version: {MANIFEST_SCHEMA_VERSION}\nstand_in: {json.dumps(stand_in)}\n---"
    )


def _split_rule(config_toml: str, tables: Mapping[Split, pa.Table]) -> str:
    """The split rule in words, with the config's `[publish]` settings, and the queries on one side."""
    try:
        publish = tomllib.loads(config_toml).get("publish", {})
    except tomllib.TOMLDecodeError:
        publish = {}
    defaults = SplitConfig()
    share = publish.get("test_share", defaults.test_share)
    min_groups = publish.get("min_groups_per_query", defaults.min_groups_per_query)
    seed = publish.get("seed", defaults.seed)
    sides: dict[str, set[str]] = {}
    for split, table in tables.items():
        for query in table["query"].to_pylist():
            sides.setdefault(query or NO_QUERY, set()).add(split.value)
    one_sided = sorted(f"{query} ({next(iter(found))})" for query, found in sides.items() if len(found) == 1)
    tail = (
        f"\n\nQueries whose clips are on one side only (too few groups, or all published there before): "
        f"{', '.join(one_sided)}."
        if one_sided
        else "\n\nEvery query has clips on both sides."
    )
    return (
        "The split is by source video and by near-duplicate group: every clip of a video, and every video of a "
        "group (the same footage or the same music, re-uploaded, re-encoded, resized or trimmed), is on one side "
        "only, so no video and no near-duplicate leaks from train to test. Groups are stratified by their primary "
        "query (the query with most of their clips): within each query, in a seeded hash order, a group goes to "
        f"test when that brings the test clips closer to `test_share` = {share} of the clips so far; every query "
        f"with at least `min_groups_per_query` = {min_groups} groups gets groups on both sides. A video keeps the "
        "side it was first published on, so later versions never move a clip; a new video that is a near-duplicate "
        f"of videos on both sides is withheld. Seed: {seed}." + tail
    )


def _stand_in_count(table: pa.Table) -> int:
    """Rows of `table` whose music a stand-in made (0 for a table without the column)."""
    if "stand_in" not in table.column_names:
        return 0
    return sum(1 for value in table["stand_in"].to_pylist() if value)


def _stand_in_warning(
    tables: Mapping[Split, pa.Table], models: Sequence[ModelUse], accepted: int, rejected: int
) -> str:
    """The warning the card opens with when stand-in output was published (`--allow-stand-in`)."""
    names = {use.stamp.model_id for use in models if use.stamp.stand_in}
    for table in tables.values():
        if "stand_in" in table.column_names:
            names |= {m for m, s in zip(table["separator_model_id"].to_pylist(), table["stand_in"].to_pylist()) if s}
    total = sum(table.num_rows for table in tables.values())
    named = ", ".join(f"`{name}`" for name in sorted(names)) or "a stand-in model"
    rejected_text = f" (and {rejected} of the rejected clips counted below)" if rejected else ""
    which = (
        f"{accepted} of the {total} clips of this manifest{rejected_text}"
        if accepted
        else (f"Clips of this manifest{rejected_text}")
    )
    return (
        "> [!WARNING]\n"
        f"> **STAND-IN OUTPUT, NOT DATA.** {which} "
        f"have music made by a stand-in separator with RANDOM weights ({named}): it removes no vocals, and "
        'its "music" is filtered noise. Do not train or evaluate on them. They are published only because '
        "stand-in output was allowed (`dvmset publish --allow-stand-in`, the flows' `allow_stand_in`); the "
        "column `stand_in` marks them. Separate the videos again with real weights (htdemucs) for a real dataset."
    )


def _models_of_tables(tables: Mapping[Split, pa.Table]) -> list[ModelUse]:
    """The separators the tables name (`separator_model_id`, `stand_in`), SHA-256 unknown."""
    counts: Counter[tuple[ModelStamp, str]] = Counter()
    for split, table in tables.items():
        flags = table["stand_in"].to_pylist() if "stand_in" in table.column_names else [False] * table.num_rows
        for model_id, stand_in in zip(table["separator_model_id"].to_pylist(), flags):
            counts[(ModelStamp(model_id, None, bool(stand_in)), split.value)] += 1
    clips: dict[ModelStamp, dict[str, int]] = {}
    for (stamp, side), count in counts.items():
        clips.setdefault(stamp, {})[side] = count
    return [ModelUse(SEPARATOR_ROLE, stamp, sides) for stamp, sides in clips.items()]


def _model_table(models: Sequence[ModelUse], tables: Mapping[Split, pa.Table]) -> str:
    """One row per model: role, id, SHA-256 of its weights, stand-in or not, clips per split."""
    if not models:
        return "No model is recorded for these clips."
    order = {SEPARATOR_ROLE: 0, SPEECH_ROLE: 1}
    rows = [
        [
            use.role,
            f"`{use.stamp.model_id}`",
            f"`{use.stamp.sha256}`" if use.stamp.sha256 else "unknown",
            "**yes: random weights, not data**" if use.stamp.stand_in else "no",
            *(use.clips.get(split.value, 0) for split in tables),
            sum(use.clips.values()),
        ]
        for use in sorted(models, key=lambda u: (order.get(u.role, 2), u.role, u.stamp.model_id, u.stamp.sha256 or ""))
    ]
    return (
        "The models the clips' stems came from (the vocals separator, and the speech detector the "
        "prescreen ran on the vocals stem), with the SHA-256 of their loaded weights:\n\n"
        + markdown_table(["role", "model", "SHA-256", "stand-in", *(split.value for split in tables), "total"], rows)
    )


def _size_category(rows: int) -> str:
    """Hugging Face's size bucket for `rows` rows."""
    for limit, name in ((10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M")):
        if rows < limit:
            return name
    return "1M<n<10M"


def _split_table(tables: Mapping[Split, pa.Table]) -> str:
    rows, total_s = [], 0.0
    for split, table in tables.items():
        seconds = pc.sum(table["duration_s"]).as_py() or 0.0
        distinct = [pc.count_distinct(table[column]).as_py() for column in ("video_id", "group_id")]
        rows.append([split.value, table.num_rows, *distinct, f"{seconds / 3600:.2f}"])
        total_s += seconds
    rows.append(["**total**", sum(table.num_rows for table in tables.values()), "", "", f"{total_s / 3600:.2f}"])
    return markdown_table(["split", "clips", "videos", "groups", "hours"], rows)


def _query_table(tables: Mapping[Split, pa.Table]) -> str:
    counts = {split: Counter(table["query"].to_pylist()) for split, table in tables.items()}
    queries = sorted(set().union(*counts.values()), key=lambda query: (query is None, query or ""))
    rows = [
        [query or NO_QUERY, *(counts[split][query] for split in tables), sum(c[query] for c in counts.values())]
        for query in queries
    ]
    return markdown_table(["query", *(split.value for split in tables), "total"], rows)


def _rejection_table(rejections: Counter, rejected_clips: int | None = None) -> str:
    if not rejections and not rejected_clips:
        return "No clip was rejected."
    rows = [[str(reason), count] for reason, count in sorted(rejections.items(), key=lambda kv: (-kv[1], str(kv[0])))]
    total = f"{rejected_clips} clips were rejected; a" if rejected_clips is not None else "A"
    return (
        f"{total} clip rejected for several reasons counts under each (the reviewers' criteria: more than 5 s "
        "of non-music, persistent noise, static images, mismatched music).\n\n"
        + markdown_table(["reason", "clips"], rows)
    )
