"""The dataset card of a published manifest folder.

In: the folder, its train and test tables (`MANIFEST_SCHEMA`), the rejection reasons counted
over the reviewed clips, the exact config (TOML text), the code version, the models the clips'
stems came from (`ModelUse`: separator and speech detector, SHA-256, stand-in or not, clips per
split) and the rejected clips made by a stand-in. Out: `README.md` in that folder (Hugging Face
dataset-card front matter naming the Parquet files per split and saying `stand_in: true|false`;
a red-flag warning first thing when any clip's music came from a stand-in separator with random
weights; then counts per split and query, hours, rejection reasons, models, histograms,
provenance) and the pictures it embeds, `loudness_hist.png` and `duration_hist.png`
(matplotlib's Agg canvas, no pyplot state). Every file is written atomically.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dvmset.manifest import MANIFEST_SCHEMA_VERSION, manifest_path
from dvmset.records import ModelStamp
from dvmset.split import Split
from dvmset.storage import atomic_write_bytes, atomic_write_text

CARD_FILE = "README.md"
LOUDNESS_PICTURE = "loudness_hist.png"
DURATION_PICTURE = "duration_hist.png"
HISTOGRAM_BINS = 30
NO_QUERY = "(none)"

# one histogram panel: (title, x label, {series label: values})
Panel = tuple[str, str, dict[str, list[float]]]
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
) -> Path:
    """Write `README.md` and its two pictures into `manifest_dir`; return the card's path.
    `rejections`: reason (str or RejectReason) -> rejected clips; `models`: see `card_text`;
    `stand_in_rejected`: rejected clips (counted in the card) whose music a stand-in made."""
    manifest_dir = Path(manifest_dir)
    tables = {Split.TRAIN: train_table, Split.TEST: test_table}
    loudness = [
        ("before normalization", "integrated loudness (LUFS)", _finite_values(tables, "loudness_before_lufs")),
        ("after normalization", "integrated loudness (LUFS)", _finite_values(tables, "loudness_lufs")),
    ]
    duration = [("clip duration", "seconds", _finite_values(tables, "duration_s"))]
    atomic_write_bytes(manifest_dir / LOUDNESS_PICTURE, histogram_png(loudness))
    atomic_write_bytes(manifest_dir / DURATION_PICTURE, histogram_png(duration))
    card = manifest_dir / CARD_FILE
    text = card_text(
        manifest_dir.name, tables, rejections, config_toml, code_version, models=models,
        stand_in_rejected=stand_in_rejected,
    )  # fmt: skip
    atomic_write_text(card, text)
    return card


def card_text(
    version: str, tables: Mapping[Split, pa.Table], rejections: Counter, config_toml: str, code_version: str,
    *, models: Sequence[ModelUse] | None = None, stand_in_rejected: int = 0,
) -> str:
    """The Markdown of the card (pure): front matter, the stand-in warning (only when a clip's
    music came from a stand-in), then one section per topic. `models`: the models the clips'
    stems came from; None: the separators named in the tables (`separator_model_id`, `stand_in`),
    SHA-256 unknown."""
    total_clips = sum(table.num_rows for table in tables.values())
    models = _models_of_tables(tables) if models is None else list(models)
    stand_in_accepted = sum(_stand_in_count(table) for table in tables.values())
    stand_in = bool(stand_in_accepted or stand_in_rejected or any(use.stamp.stand_in for use in models))
    warning = [_stand_in_warning(tables, models, stand_in_accepted, stand_in_rejected)] if stand_in else []
    sections = [
        _front_matter(version, total_clips, stand_in),
        *warning,
        f"# DVMSet {version}\n\n"
        "Video-music clips curated from web videos: each row of a split's Parquet file is one clip, "
        "with its source, its scores, the reviewers' decision, and the paths of its video and its "
        "music (relative to the data root). Each clip keeps the licence of its source video "
        "(column `license`).",
        "## Splits\n\n" + _split_table(tables),
        "## Clips per query\n\n" + _query_table(tables),
        "## Rejections\n\n" + _rejection_table(rejections),
        "## Models\n\n" + _model_table(models, tables),
        "## Loudness and duration\n\n"
        f"![Loudness histograms]({LOUDNESS_PICTURE})\n\n![Duration histogram]({DURATION_PICTURE})",
        "## Provenance\n\n"
        f"Manifest schema version {MANIFEST_SCHEMA_VERSION}.\n\nCode version:\n\n{fenced(code_version, 'text')}\n\n"
        f"Configuration:\n\n{fenced(config_toml, 'toml')}",
    ]
    return "\n\n".join(sections) + "\n"


def histogram_png(panels: list[Panel]) -> bytes:
    """PNG bytes of one histogram per panel, side by side; each panel's series stacked."""
    figure = Figure(figsize=(5.0 * len(panels), 3.5), layout="constrained")
    FigureCanvasAgg(figure)
    for index, (title, xlabel, series) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), index)
        filled = {label: values for label, values in series.items() if values}
        if filled:
            axes.hist(list(filled.values()), bins=HISTOGRAM_BINS, stacked=True, label=list(filled))
            axes.legend()
        else:
            axes.text(0.5, 0.5, "no clips", ha="center", va="center", transform=axes.transAxes)
        axes.set(title=title, xlabel=xlabel, ylabel="clips")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _finite_values(tables: Mapping[Split, pa.Table], column: str) -> dict[str, list[float]]:
    """Split name -> the finite values of `column` (silent clips' -inf loudness left out)."""
    return {
        split.value: [value for value in table[column].to_pylist() if math.isfinite(value)]
        for split, table in tables.items()
    }


def _front_matter(version: str, total_clips: int, stand_in: bool = False) -> str:
    """Hugging Face dataset-card YAML (JSON strings are valid YAML scalars); `stand_in`: some
    clip's music was made by a stand-in (random-weight) model."""
    files = "".join(f"  - split: {split.value}\n    path: {manifest_path(Path('.'), split).name}\n" for split in Split)
    return (
        f"---\npretty_name: {json.dumps(f'DVMSet {version}')}\nlicense: other\n"
        f"size_categories:\n- {_size_category(total_clips)}\n"
        "tags:\n- music\n- video\n- video-to-music\n"
        f"configs:\n- config_name: default\n  data_files:\n{files}"
        f"dvmset_schema_version: {MANIFEST_SCHEMA_VERSION}\nstand_in: {json.dumps(stand_in)}\n---"
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
    which = f"{accepted} of the {total} clips of this manifest{rejected_text}" if accepted else (
        f"Clips of this manifest{rejected_text}")
    return (
        "> [!WARNING]\n"
        f"> **STAND-IN OUTPUT, NOT DATA.** {which} "
        f"have music made by a stand-in separator with RANDOM weights ({named}): it removes no vocals, and "
        "its \"music\" is filtered noise. Do not train or evaluate on them. They are published only because "
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
        [use.role, f"`{use.stamp.model_id}`", f"`{use.stamp.sha256}`" if use.stamp.sha256 else "unknown",
         "**yes: random weights, not data**" if use.stamp.stand_in else "no",
         *(use.clips.get(split.value, 0) for split in tables), sum(use.clips.values())]
        for use in sorted(models, key=lambda u: (order.get(u.role, 2), u.role, u.stamp.model_id, u.stamp.sha256 or ""))
    ]  # fmt: skip
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


def _rejection_table(rejections: Counter) -> str:
    if not rejections:
        return "No clip was rejected."
    rows = [[str(reason), count] for reason, count in sorted(rejections.items(), key=lambda kv: (-kv[1], str(kv[0])))]
    return markdown_table(["reason", "clips"], rows)


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(str(cell).replace("|", "\\|") for cell in line) + " |" for line in lines)


def fenced(text: str, language: str) -> str:
    """`text` in a fenced block whose fence is longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    body = text.rstrip("\n")
    return f"{fence}{language}\n{body}\n{fence}"
