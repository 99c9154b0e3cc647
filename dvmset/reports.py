"""Status reports of the catalog as rich tables (what `dvmset status` and `dvmset demo` print)."""

from __future__ import annotations

from rich.table import Table

from dvmset.catalog import Catalog
from dvmset.records import ClipRecord, ClipStatus


def status_tables(catalog: Catalog, by_query: bool = False) -> list[Table]:
    """One table of video counts by status and reason; per query when `by_query`; plus clips if any."""
    rows = catalog.status_counts(by_query=by_query)
    title = "videos by query, status and reason" if by_query else "videos by status and reason"
    table = Table(title=title)
    if by_query:
        table.add_column("query")
    table.add_column("status")
    table.add_column("reason")
    table.add_column("videos", justify="right")
    for row in rows:
        cells = [row.status.value, row.reason or "", str(row.count)]
        table.add_row(*([row.query or ""] if by_query else []), *cells)
    if not by_query:
        table.add_section()
        table.add_row("total", "", str(sum(row.count for row in rows)))
    tables = [table]
    clip_counts = catalog.clip_status_counts()
    if clip_counts:
        clips = Table(title="clips by status")
        clips.add_column("status")
        clips.add_column("clips", justify="right")
        for clip_status, count in sorted(clip_counts.items()):
            clips.add_row(clip_status.value, str(count))
        tables.append(clips)
    return tables


def review_queue_table(clips: list[ClipRecord], limit: int = 20) -> Table:
    """The clips awaiting review, likely rejects first (by prescreen priority), with their scores."""
    queue = sorted(
        (c for c in clips if c.status is ClipStatus.PENDING_REVIEW), key=lambda c: (-c.prescreen.priority, c.clip_id)
    )
    separators = ", ".join(sorted({c.separator_model_id for c in queue})) or "-"
    table = Table(title=f"review queue: {len(queue)} clips, likely rejects first", caption=f"separator: {separators}")
    for name in ("video", "start s", "priority", "flags", "non-music s", "static", "noise", "cuts", "LUFS", "dBTP"):
        table.add_column(name, justify="left" if name in ("video", "flags") else "right")
    for clip in queue[:limit]:
        scores, loud = clip.prescreen, clip.loudness
        table.add_row(
            _short_id(clip.video_id),
            f"{clip.start_s:g}",
            f"{scores.priority:.2f}",
            ", ".join(scores.flags) or "-",
            f"{scores.non_music_s:.1f}",
            f"{scores.static_share:.0%}",
            f"{scores.noise_score:.2f}",
            str(len(scores.scene_cuts_s)),
            f"{loud.after_lufs:.1f}",
            f"{loud.true_peak_dbtp:.1f}",
        )
    return table


def _short_id(video_id: str, keep: int = 14) -> str:
    """`local:e3cadd171b88f3809ba9...` -> `local:e3cadd17…`: enough to tell videos apart in a table."""
    return video_id if len(video_id) <= keep else video_id[: keep - 1] + "…"
