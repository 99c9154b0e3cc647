"""The pictures a dataset card embeds: their file names and what each one shows, drawn from the manifest tables.

In: the train and test tables (`MANIFEST_SCHEMA`) by `Split`, the rejection reasons counted over the
reviewed clips, optionally the source videos' durations and the number of rejected clips. Out: file name
-> PNG bytes (`card_pictures`, pure: no files): clip loudness before and after normalization, source-video
and clip durations, scene cuts per minute of clip, and the review outcome, drawn with the histograms and
the bar chart of `manifests.card_pictures`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping

import pyarrow as pa

from manifests.card_pictures import Panel, bar_png, histogram_png
from manifests.split import Split

LOUDNESS_PICTURE = "loudness_hist.png"
DURATION_PICTURE = "duration_hist.png"
SCENE_CUT_PICTURE = "scene_cuts_hist.png"
REVIEW_PICTURE = "review_reasons.png"


def card_pictures(
    tables: Mapping[Split, pa.Table],
    rejections: Counter,
    video_durations_s: Mapping[str, float] | None = None,
    rejected_clips: int | None = None,
) -> dict[str, bytes]:
    """File name -> PNG bytes of each picture the card embeds (pure)."""
    lufs = "integrated loudness (LUFS)"
    loudness = [
        ("clip loudness before normalization", lufs, _finite_values(tables, "loudness_before_lufs")),
        ("clip loudness after normalization", lufs, _finite_values(tables, "loudness_lufs")),
    ]
    title = "source videos" if video_durations_s is not None else "source videos (to their last clip's end)"
    durations: list[Panel] = [
        (title, "duration (seconds)", _video_durations(tables, video_durations_s), "videos"),
        ("clips", "duration (seconds)", _finite_values(tables, "duration_s")),
    ]
    cuts = [("scene cuts per clip", "scene cuts per minute of clip", _cuts_per_minute(tables))]
    return {
        LOUDNESS_PICTURE: histogram_png(loudness),
        DURATION_PICTURE: histogram_png(durations),
        SCENE_CUT_PICTURE: histogram_png(cuts),
        REVIEW_PICTURE: bar_png("review outcome", _review_counts(tables, rejections, rejected_clips)),
    }


def _finite_values(tables: Mapping[Split, pa.Table], column: str) -> dict[str, list[float]]:
    """Split name -> the finite values of `column` (silent clips' -inf loudness left out)."""
    return {
        split.value: [value for value in table[column].to_pylist() if math.isfinite(value)]
        for split, table in tables.items()
    }


def _video_durations(
    tables: Mapping[Split, pa.Table], durations_s: Mapping[str, float] | None
) -> dict[str, list[float]]:
    """Split name -> one duration per source video: from `durations_s`, or its last clip's end."""
    values: dict[str, list[float]] = {}
    for split, table in tables.items():
        last_end: dict[str, float] = {}
        for video_id, end_s in zip(table["video_id"].to_pylist(), table["end_s"].to_pylist()):
            last_end[video_id] = max(end_s, last_end.get(video_id, 0.0))
        found = [end if durations_s is None else durations_s.get(video, end) for video, end in sorted(last_end.items())]
        values[split.value] = [value for value in found if value is not None and math.isfinite(value)]
    return values


def _cuts_per_minute(tables: Mapping[Split, pa.Table]) -> dict[str, list[float]]:
    """Split name -> scene cuts per minute of each clip."""
    return {
        split.value: [
            len(cuts) * 60.0 / duration
            for cuts, duration in zip(table["scene_cuts_s"].to_pylist(), table["duration_s"].to_pylist())
            if duration and duration > 0
        ]
        for split, table in tables.items()
    }


def _review_counts(tables: Mapping[Split, pa.Table], rejections: Counter, rejected: int | None) -> dict[str, int]:
    """Bar label -> clips: accepted (published), rejected (when known), then each reason."""
    counts = {"accepted": sum(table.num_rows for table in tables.values())}
    if rejected is not None:
        counts["rejected (any reason)"] = rejected
    ordered = sorted(rejections.items(), key=lambda kv: (-kv[1], str(kv[0])))
    counts.update({f"rejected: {reason}": count for reason, count in ordered})
    return counts
