"""Export a manifest folder to the jsonl layout of audiocraft-style trainers.

In: `manifests/<version>/` (train and test Parquet), the data root, an output folder. Out:
`<out_dir>/train.jsonl` and `test.jsonl`, one JSON object a line for each accepted clip:
`path` (absolute path of the music FLAC), `duration` (s), `sample_rate` (Hz), `channels`,
`video_path` (absolute), then `clip_id`, `video_id`, `query`, and `source_start_s` /
`source_end_s`, the clip's span in its source video. audiocraft's `AudioMeta.from_dict` reads
the keys it knows and ignores the others. The span is named `source_*` rather than `start` so
no trainer mistakes it for a seek offset into the music file, which holds the clip alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc

from dvmset.manifest import manifest_path, read_manifest
from dvmset.records import ClipStatus
from dvmset.split import Split
from dvmset.storage import DataRoot, atomic_path

JSONL_COLUMNS = [
    "music_path", "duration_s", "sample_rate_hz", "channels", "video_path",
    "clip_id", "video_id", "query", "start_s", "end_s",
]  # fmt: skip


def export_jsonl(manifest_dir: Path, data_root: Path, out_dir: Path) -> dict[Split, Path]:
    """Write one `<split>.jsonl` per split of `manifest_dir` into `out_dir` (atomically);
    return split -> path. Rejected clips are left out. ManifestError on a bad manifest."""
    root = DataRoot(Path(data_root))
    written = {}
    for split in Split:
        table = read_manifest(manifest_path(manifest_dir, split))
        accepted = table.filter(pc.equal(table["decision"], ClipStatus.ACCEPTED.value))
        final = Path(out_dir) / f"{split.value}.jsonl"
        with atomic_path(final) as temp, open(temp, "w", encoding="utf-8") as out:
            for row in accepted.select(JSONL_COLUMNS).to_pylist():
                out.write(json.dumps(jsonl_entry(row, root), allow_nan=False) + "\n")
        written[split] = final
    return written


def jsonl_entry(row: dict, root: DataRoot) -> dict:
    """One manifest row (a dict holding `JSONL_COLUMNS`) -> its jsonl object."""
    return {
        "path": str(root.resolve(row["music_path"])),
        "duration": row["duration_s"],
        "sample_rate": row["sample_rate_hz"],
        "channels": row["channels"],
        "video_path": str(root.resolve(row["video_path"])),
        "clip_id": row["clip_id"],
        "video_id": row["video_id"],
        "query": row["query"],
        "source_start_s": row["start_s"],
        "source_end_s": row["end_s"],
    }
