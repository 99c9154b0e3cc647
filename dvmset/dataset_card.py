"""The dataset card of a published manifest folder.

In: the folder, its train and test tables (`MANIFEST_SCHEMA`), the rejection reasons counted
over the reviewed clips, the exact config (TOML text) and the code version. Out:
`README.md` in that folder (Hugging Face dataset-card front matter naming the Parquet files
per split, then counts per split and query, hours, rejection reasons, histograms, provenance)
and the pictures it embeds, `loudness_hist.png` and `duration_hist.png` (matplotlib's Agg
canvas, no pyplot state). Every file is written atomically.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dvmset.manifest import MANIFEST_SCHEMA_VERSION, manifest_path
from dvmset.split import Split
from dvmset.storage import atomic_write_bytes, atomic_write_text

CARD_FILE = "README.md"
LOUDNESS_PICTURE = "loudness_hist.png"
DURATION_PICTURE = "duration_hist.png"
HISTOGRAM_BINS = 30
NO_QUERY = "(none)"

# one histogram panel: (title, x label, {series label: values})
Panel = tuple[str, str, dict[str, list[float]]]


def write_dataset_card(
    manifest_dir: Path,
    train_table: pa.Table,
    test_table: pa.Table,
    *,
    rejections: Counter,
    config_toml: str,
    code_version: str,
) -> Path:
    """Write `README.md` and its two pictures into `manifest_dir`; return the card's path.
    `rejections`: reason (str or RejectReason) -> rejected clips."""
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
    atomic_write_text(card, card_text(manifest_dir.name, tables, rejections, config_toml, code_version))
    return card


def card_text(
    version: str, tables: Mapping[Split, pa.Table], rejections: Counter, config_toml: str, code_version: str
) -> str:
    """The Markdown of the card (pure): front matter, then one section per topic."""
    total_clips = sum(table.num_rows for table in tables.values())
    sections = [
        _front_matter(version, total_clips),
        f"# DVMSet {version}\n\n"
        "Video-music clips curated from web videos: each row of a split's Parquet file is one clip, "
        "with its source, its scores, the reviewers' decision, and the paths of its video and its "
        "music (relative to the data root). Each clip keeps the licence of its source video "
        "(column `license`).",
        "## Splits\n\n" + _split_table(tables),
        "## Clips per query\n\n" + _query_table(tables),
        "## Rejections\n\n" + _rejection_table(rejections),
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


def _front_matter(version: str, total_clips: int) -> str:
    """Hugging Face dataset-card YAML (JSON strings are valid YAML scalars)."""
    files = "".join(f"  - split: {split.value}\n    path: {manifest_path(Path('.'), split).name}\n" for split in Split)
    return (
        f"---\npretty_name: {json.dumps(f'DVMSet {version}')}\nlicense: other\n"
        f"size_categories:\n- {_size_category(total_clips)}\n"
        "tags:\n- music\n- video\n- video-to-music\n"
        f"configs:\n- config_name: default\n  data_files:\n{files}"
        f"dvmset_schema_version: {MANIFEST_SCHEMA_VERSION}\n---"
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
