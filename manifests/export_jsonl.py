"""Export a manifest folder to the jsonl layout of audiocraft-style trainers.

In: `manifests/<version>/` (train and test Parquet), an output folder, and optionally a data root
(by default each manifest's recorded `media_root`, so the answer is the same from any working
folder). Out: `<out_dir>/train.jsonl` and `test.jsonl`, one JSON object a line for each accepted
clip: `path` (absolute path of the music FLAC), `duration` (s), `sample_rate` (Hz), `channels`,
`video_path` (absolute), then `clip_id`, `video_id`, `query`, and `source_start_s` /
`source_end_s`, the clip's span in its source video. audiocraft's `AudioMeta.from_dict` reads
the keys it knows and ignores the others. The span is named `source_*` rather than `start` so
no trainer mistakes it for a seek offset into the music file, which holds the clip alone.
Nothing is written when a file a line would name does not exist (`MissingMediaError`, listing them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc

from dvmset.records import ClipStatus
from dvmset.storage import DataRoot, atomic_path
from manifests.schema import ManifestError, manifest_metadata, manifest_path, read_manifest, resolve_media_root
from manifests.split import Split

JSONL_COLUMNS = [
    "music_path",
    "duration_s",
    "sample_rate_hz",
    "channels",
    "video_path",
    "clip_id",
    "video_id",
    "query",
    "start_s",
    "end_s",
]


class MissingMediaError(ManifestError):
    """Files the export would name do not exist; nothing was written. `missing`: their absolute paths."""

    def __init__(self, missing: list[str]):
        self.missing = list(missing)
        super().__init__(f"{len(self.missing)} media files do not exist; nothing was written")

    def __reduce__(self):
        return type(self), (self.missing,)


def export_jsonl(manifest_dir: Path, data_root: Path | None, out_dir: Path) -> dict[Split, Path]:
    """Write one `<split>.jsonl` per split of `manifest_dir` into `out_dir` (atomically);
    return split -> path. Rejected clips are left out. Media paths start at `data_root` when
    given, else at each manifest's `media_root`. ManifestError on a bad manifest or one that
    records no media root (without `data_root`); MissingMediaError when a file is missing."""
    entries: dict[Split, list[dict]] = {}
    for split in Split:
        path = manifest_path(manifest_dir, split)
        table = read_manifest(path)
        root = DataRoot(resolve_media_root(path, manifest_metadata(table), data_root))
        accepted = table.filter(pc.equal(table["decision"], ClipStatus.ACCEPTED.value))
        entries[split] = [jsonl_entry(row, root) for row in accepted.select(JSONL_COLUMNS).to_pylist()]
    missing = [
        entry[key]
        for split_entries in entries.values()
        for entry in split_entries
        for key in ("path", "video_path")
        if not Path(entry[key]).is_file()
    ]
    if missing:
        raise MissingMediaError(missing)
    written = {}
    for split, split_entries in entries.items():
        final = Path(out_dir) / f"{split.value}.jsonl"
        with atomic_path(final) as temp, open(temp, "w", encoding="utf-8") as out:
            for entry in split_entries:
                out.write(json.dumps(entry, allow_nan=False) + "\n")
        written[split] = final
    return written


def jsonl_entry(row: dict, root: DataRoot) -> dict:
    """One manifest row (a dict holding `JSONL_COLUMNS`) -> its jsonl object. ManifestError when a
    path leaves the media root."""
    try:
        music, video = root.resolve(row["music_path"]), root.resolve(row["video_path"])
    except ValueError as error:
        raise ManifestError(f"clip {row['clip_id']}: {error}") from error
    return {
        "path": str(music),
        "duration": row["duration_s"],
        "sample_rate": row["sample_rate_hz"],
        "channels": row["channels"],
        "video_path": str(video),
        "clip_id": row["clip_id"],
        "video_id": row["video_id"],
        "query": row["query"],
        "source_start_s": row["start_s"],
        "source_end_s": row["end_s"],
    }
