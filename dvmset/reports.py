"""Status reports of the catalog as rich tables (what `dvmset status` and `dvmset demo` print)."""

from __future__ import annotations

from rich.table import Table

from dvmset.catalog import Catalog


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
