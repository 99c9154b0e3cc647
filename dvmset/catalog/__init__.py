"""The SQL catalog, `Catalog`: this package is the only code that speaks SQL (SQLAlchemy Core).

SQLite in WAL mode by default; any SQLAlchemy URL (e.g. `postgresql+psycopg://...`) by config.
Tables: `videos`, `video_queries` (which queries found a video), `clips`, `labels`
(append-only label events) and `claims` (review leases), whose SQL is in `dvmset/catalog/review.py`,
`work_leases` and `work_log` (who works on a video; `dvmset/catalog/work.py`), and `schema_info`
(the schema version). `Catalog.open` creates a new catalog at the current
schema, or migrates an older one step by step.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dvmset.catalog.review import ReviewClaims
from dvmset.catalog.rows import clip_from_row, clip_values, now, video_from_row
from dvmset.catalog.tables import MIGRATIONS, SCHEMA_VERSION, clips, metadata, schema_info, video_queries, videos
from dvmset.catalog.work import WorkLeases, insert_if_absent
from dvmset.errors import CatalogError, ReasonCode, StageError
from dvmset.ids import split_video_id
from dvmset.records import (
    Candidate,
    ClipRecord,
    ClipStatus,
    ClipVersions,
    Download,
    ModelStamp,
    ProbeInfo,
    VideoRecord,
    VideoStatus,
)


@dataclass(frozen=True)
class StatusCount:
    """One row of `Catalog.status_counts`: how many videos share a status and reason (and query)."""

    status: VideoStatus
    reason: str | None
    count: int
    query: str | None = None


@dataclass(frozen=True)
class AddResult:
    """What `add_candidates` did: new videos, and new (video, query) links on known videos."""

    new_videos: int
    new_links: int


ID_CHUNK = 500  # ids per `IN (...)` lookup: far below every database's limit on parameters


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # first: switching to WAL waits on a busy file too
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL mode, a busy timeout and foreign keys."""
    try:
        engine = sa.create_engine(url, future=True, pool_pre_ping=not url.startswith("sqlite"))
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise CatalogError(f"cannot use catalog URL {_redact(url)}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _redact(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable URL>"


_SCHEMA_LOCK_ID = 0x64766D73  # "dvms": PostgreSQL's advisory lock key for schema changes


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """An exclusive lock on a file beside a SQLite catalog, held while the schema is created or
    migrated (no-op for other databases, which lock inside the transaction)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.schema-lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


class Catalog(ReviewClaims, WorkLeases):
    """Reads and writes videos, clips, label events, review claims and work leases. Open with `Catalog.open(url)`."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Catalog:
        """Connect, create the schema if the catalog is new, migrate it if it is older."""
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        catalog = cls(make_engine(url))
        try:
            catalog._prepare_schema()
        except sa.exc.OperationalError as exc:
            raise CatalogError(f"cannot open catalog {_redact(url)}: {exc.orig}") from exc
        return catalog

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    # -- schema --------------------------------------------------------------------------------

    def schema_version(self) -> int | None:
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("schema_info"):
                return None
            return conn.execute(sa.select(sa.func.max(schema_info.c.version))).scalar()

    def _prepare_schema(self) -> None:
        """Creates or migrates the schema, one process at a time (two runs may open a new catalog at once)."""
        with _sqlite_file_lock(self.engine), self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # released when the transaction ends
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_ID})
            if not sa.inspect(conn).has_table("schema_info"):
                metadata.create_all(conn)
                conn.execute(schema_info.insert().values(version=SCHEMA_VERSION))
                return
            version = conn.execute(sa.select(sa.func.max(schema_info.c.version))).scalar() or 0
            if version > SCHEMA_VERSION:
                raise CatalogError(
                    f"catalog schema version {version} is newer than this code's ({SCHEMA_VERSION}); upgrade dvmset"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[target](conn)
                conn.execute(schema_info.update().values(version=target))

    # -- videos --------------------------------------------------------------------------------

    def add_candidates(self, candidates: Iterable[Candidate]) -> AddResult:
        """Insert new videos as `discovered`; link every (video, query) pair once (also when another
        run adds the same videos at the same moment)."""
        new_videos = new_links = 0
        found_at = now()
        with self.engine.begin() as conn:
            for cand in candidates:
                new_videos += insert_if_absent(
                    conn,
                    videos,
                    {
                        "video_id": cand.video_id,
                        "url": cand.url,
                        "platform": split_video_id(cand.video_id)[0],
                        "source": cand.source.value,
                        "status": VideoStatus.DISCOVERED.value,
                        "title": cand.title,
                        "duration_s": cand.duration_s,
                        "created_at": found_at,
                        "updated_at": found_at,
                    },
                )
                new_links += insert_if_absent(
                    conn,
                    video_queries,
                    {
                        "video_id": cand.video_id,
                        "query": cand.query,
                        "source": cand.source.value,
                        "found_at": found_at,
                    },
                )
        return AddResult(new_videos=new_videos, new_links=new_links)

    def get_video(self, video_id: str) -> VideoRecord | None:
        records = list(self.videos(video_ids=[video_id]))
        return records[0] if records else None

    def videos(
        self,
        statuses: Sequence[VideoStatus] | None = None,
        video_ids: Sequence[str] | None = None,
        query: str | None = None,
    ) -> Iterator[VideoRecord]:
        """Videos ordered by id, optionally filtered by status, id or query (a long id list is
        looked up in chunks, so it never runs into the database's limit on parameters)."""
        conditions = []
        if statuses is not None:
            conditions.append(videos.c.status.in_([s.value for s in statuses]))
        if query is not None:
            conditions.append(
                videos.c.video_id.in_(sa.select(video_queries.c.video_id).where(video_queries.c.query == query))
            )
        if video_ids is None:
            yield from self._videos_matching(conditions)
            return
        for chunk in _chunks(sorted(set(video_ids))):
            yield from self._videos_matching([*conditions, videos.c.video_id.in_(chunk)])

    def _videos_matching(self, conditions: list[sa.ColumnElement[bool]]) -> Iterator[VideoRecord]:
        """The videos meeting all `conditions`, ordered by id, with their queries (two queries)."""
        matching = sa.select(videos.c.video_id).where(*conditions)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(videos).where(*conditions).order_by(videos.c.video_id)).mappings().all()
            links: dict[str, list[str]] = {}
            for video_id, linked_query in conn.execute(
                sa.select(video_queries.c.video_id, video_queries.c.query)
                .where(video_queries.c.video_id.in_(matching))
                .order_by(video_queries.c.found_at, video_queries.c.query)
            ):
                links.setdefault(video_id, []).append(linked_query)
        for row in rows:
            yield video_from_row(row, tuple(links.get(row["video_id"], ())))

    def mark_downloaded(self, download: Download, stage_version: str) -> None:
        meta = download.metadata
        self._update_video(
            download.video_id,
            status=VideoStatus.DOWNLOADED,
            stage_version=stage_version,
            media_path=download.media_path,
            title=meta.title,
            channel=meta.channel,
            upload_date=meta.upload_date,
            duration_s=meta.duration_s,
            license=meta.license,
            webpage_url=meta.webpage_url,
            extractor=meta.extractor,
        )

    def mark_probed(self, video_id: str, probe: ProbeInfo, stage_version: str) -> None:
        self._update_video(
            video_id,
            status=VideoStatus.PROBED,
            stage_version=stage_version,
            probe=asdict(probe),
            duration_s=probe.duration_s,
        )

    def mark_error(self, video_id: str, error: StageError, stage_version: str) -> VideoStatus:
        """Record a stage error: `skipped` for reasons that mean "does not qualify", else `failed`."""
        status = VideoStatus.SKIPPED if error.reason.is_skip else VideoStatus.FAILED
        self._update_video(
            video_id,
            status=status,
            stage_version=stage_version,
            error_reason=error.reason.value,
            error_message=error.message,
        )
        return status

    def mark_separated(
        self,
        video_id: str,
        separator_model_id: str,
        separate_version: str,
        *,
        stand_in: bool = False,
        models: Sequence[ModelStamp] = (),
    ) -> None:
        """Record the separation; `stand_in`: the separator has random weights (its clips are never
        data); `models`: the separator and speech detector that made the stems, with their checksums."""
        self._update_video(
            video_id,
            status=VideoStatus.SEPARATED,
            stage_version=separate_version,
            separator_model_id=separator_model_id,
            separate_version=separate_version,
            separator_stand_in=stand_in,
            separation_models=[asdict(stamp) for stamp in models],
            fingerprint_version=None,  # its sound is the accompaniment: fingerprint it again
        )

    def mark_clipped(self, video_id: str, clip_count: int, clip_version: str) -> None:
        self._update_video(video_id, status=VideoStatus.CLIPPED, stage_version=clip_version, clip_count=clip_count)

    def videos_to_separate(self, separate_version: str, video_id: str | None = None) -> list[VideoRecord]:
        """Probed videos, and separated or clipped ones whose separation key is not `separate_version`
        (of them, only `video_id` when given)."""
        stale = sa.and_(
            videos.c.status.in_([VideoStatus.SEPARATED.value, VideoStatus.CLIPPED.value]),
            sa.or_(videos.c.separate_version.is_(None), videos.c.separate_version != separate_version),
        )
        return self._videos_where(sa.or_(videos.c.status == VideoStatus.PROBED.value, stale), video_id)

    def videos_to_clip(self, versions: ClipVersions, video_id: str | None = None) -> list[VideoRecord]:
        """Separated videos, and clipped ones with a live clip made under other keys than `versions`
        (its `separate` part is compared with the video's own separation key); only `video_id` when given."""
        outdated_clip = sa.exists().where(
            clips.c.video_id == videos.c.video_id,
            clips.c.status != ClipStatus.RETIRED.value,
            sa.or_(
                clips.c.separate_version.is_distinct_from(videos.c.separate_version),
                clips.c.clip_version.is_distinct_from(versions.clip),
                clips.c.loudness_version.is_distinct_from(versions.loudness),
                clips.c.prescreen_version.is_distinct_from(versions.prescreen),
            ),
        )
        clipped_stale = sa.and_(videos.c.status == VideoStatus.CLIPPED.value, outdated_clip)
        return self._videos_where(sa.or_(videos.c.status == VideoStatus.SEPARATED.value, clipped_stale), video_id)

    def mark_fingerprinted(self, video_id: str, fingerprint_version: int) -> None:
        """Record that the video's fingerprint file is of `fingerprint_version` (status unchanged)."""
        self._set_video_columns({video_id: {"fingerprint_version": fingerprint_version}})

    def videos_to_fingerprint(self, fingerprint_version: int, video_id: str | None = None) -> list[VideoRecord]:
        """Clipped videos without a fingerprint of `fingerprint_version` (only `video_id` when given)."""
        return self._videos_where(
            sa.and_(
                videos.c.status == VideoStatus.CLIPPED.value,
                videos.c.fingerprint_version.is_distinct_from(fingerprint_version),
            ),
            video_id,
        )

    def set_groups(self, group_of: Mapping[str, str]) -> None:
        """Store each video's near-duplicate group id (video id -> group id)."""
        self._set_video_columns({video_id: {"group_id": group_id} for video_id, group_id in group_of.items()})

    def publish_splits(self, split_of: Mapping[str, str], published_in: str) -> int:
        """Put videos on their published side (video id -> "train" / "test"), recording the
        manifest version; return how many were new. A video already on a side keeps it:
        CatalogError (and nothing written) if `split_of` would move one."""
        with self.engine.begin() as conn:
            known = _known_videos(conn, split_of)
            moved = sorted(v for v, side in split_of.items() if known.get(v) not in (None, side))
            if moved:
                raise CatalogError(f"{len(moved)} videos are already published on the other side: {moved[:5]}")
            if missing := sorted(set(split_of).difference(known)):
                raise CatalogError(f"no videos {missing[:5]} in the catalog")
            new = {v: side for v, side in split_of.items() if known[v] is None}
            _update_videos(conn, {v: {"split": side, "published_in": published_in} for v, side in new.items()})
        return len(new)

    def _set_video_columns(self, values_of: Mapping[str, Mapping[str, Any]]) -> None:
        """Update some columns of many videos in one transaction; CatalogError (and nothing
        written) for an unknown id."""
        with self.engine.begin() as conn:
            if missing := sorted(set(values_of).difference(_known_videos(conn, values_of))):
                raise CatalogError(f"no videos {missing[:5]} in the catalog")
            _update_videos(conn, values_of)

    def _videos_where(self, condition: sa.ColumnElement[bool], video_id: str | None = None) -> list[VideoRecord]:
        if video_id is not None:
            condition = sa.and_(condition, videos.c.video_id == video_id)
        with self.engine.connect() as conn:
            ids = list(conn.execute(sa.select(videos.c.video_id).where(condition)).scalars())
        return list(self.videos(video_ids=ids)) if ids else []

    def reset_errors(self, reasons: Sequence[ReasonCode] | None = None) -> int:
        """Send `failed` videos (optionally only some reasons) back to where they can be retried."""
        stmt = videos.update().where(videos.c.status == VideoStatus.FAILED.value)
        if reasons:
            stmt = stmt.where(videos.c.error_reason.in_([r.value for r in reasons]))
        restart = sa.case(
            (videos.c.media_path.is_(None), VideoStatus.DISCOVERED.value), else_=VideoStatus.DOWNLOADED.value
        )
        with self.engine.begin() as conn:
            result = conn.execute(stmt.values(status=restart, error_reason=None, error_message=None, updated_at=now()))
        return result.rowcount

    def _update_video(self, video_id: str, status: VideoStatus, stage_version: str, **values: Any) -> None:
        values.setdefault("error_reason", None)
        values.setdefault("error_message", None)
        with self.engine.begin() as conn:
            result = conn.execute(
                videos.update()
                .where(videos.c.video_id == video_id)
                .values(status=status.value, stage_version=stage_version, updated_at=now(), **values)
            )
        if result.rowcount != 1:
            raise CatalogError(f"no video {video_id!r} in the catalog")

    # -- clips ---------------------------------------------------------------------------------

    def clips(self, video_id: str | None = None, statuses: Sequence[ClipStatus] | None = None) -> list[ClipRecord]:
        """Clips ordered by id, optionally of one video or in some statuses."""
        stmt = sa.select(clips).order_by(clips.c.clip_id)
        if video_id is not None:
            stmt = stmt.where(clips.c.video_id == video_id)
        if statuses is not None:
            stmt = stmt.where(clips.c.status.in_([s.value for s in statuses]))
        with self.engine.connect() as conn:
            return [clip_from_row(row) for row in conn.execute(stmt).mappings()]

    def save_clip(self, clip: ClipRecord) -> None:
        """Insert or update a clip's files, scores and keys. An existing clip keeps its review
        status (a retired one comes back as `pending_review`); a new one takes `clip.status`."""
        values = clip_values(clip)
        with self.engine.begin() as conn:
            known = conn.execute(sa.select(clips.c.status).where(clips.c.clip_id == clip.clip_id)).scalar()
            if known is None:
                conn.execute(clips.insert().values(clip_id=clip.clip_id, status=clip.status.value, **values))
            else:
                status = ClipStatus.PENDING_REVIEW.value if known == ClipStatus.RETIRED.value else known
                conn.execute(clips.update().where(clips.c.clip_id == clip.clip_id).values(status=status, **values))

    def retire_clips(self, video_id: str, keep_clip_ids: Iterable[str]) -> list[str]:
        """Mark the video's live clips that are not in `keep_clip_ids` as `retired`; return their ids.
        Rows and their label events stay."""
        keep = set(keep_clip_ids)
        retired = [
            c.clip_id for c in self.clips(video_id) if c.clip_id not in keep and c.status is not ClipStatus.RETIRED
        ]
        if retired:
            with self.engine.begin() as conn:
                conn.execute(
                    clips.update()
                    .where(clips.c.clip_id.in_(retired))
                    .values(status=ClipStatus.RETIRED.value, updated_at=now())
                )
        return retired

    # -- reports -------------------------------------------------------------------------------

    def status_counts(self, by_query: bool = False) -> list[StatusCount]:
        """Counts of videos by status and reason; per query (a video counts once per query) if asked."""
        if by_query:
            stmt = (
                sa.select(video_queries.c.query, videos.c.status, videos.c.error_reason, sa.func.count())
                .join(videos, videos.c.video_id == video_queries.c.video_id)
                .group_by(video_queries.c.query, videos.c.status, videos.c.error_reason)
                .order_by(video_queries.c.query, videos.c.status, videos.c.error_reason)
            )
        else:
            stmt = (
                sa.select(sa.null(), videos.c.status, videos.c.error_reason, sa.func.count())
                .group_by(videos.c.status, videos.c.error_reason)
                .order_by(videos.c.status, videos.c.error_reason)
            )
        with self.engine.connect() as conn:
            return [
                StatusCount(status=VideoStatus(status), reason=reason, count=count, query=query)
                for query, status, reason, count in conn.execute(stmt)
            ]

    def clip_status_counts(self) -> dict[ClipStatus, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(clips.c.status, sa.func.count()).group_by(clips.c.status)).all()
        return {ClipStatus(status): count for status, count in rows}


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """`values` in slices of `ID_CHUNK`."""
    for start in range(0, len(values), ID_CHUNK):
        yield values[start : start + ID_CHUNK]


def _known_videos(conn: sa.Connection, video_ids: Iterable[str]) -> dict[str, str | None]:
    """Video id -> its side (None if unpublished), for those of `video_ids` in the catalog."""
    known: dict[str, str | None] = {}
    for chunk in _chunks(sorted(video_ids)):
        stmt = sa.select(videos.c.video_id, videos.c.split).where(videos.c.video_id.in_(chunk))
        known.update(conn.execute(stmt).all())
    return known


def _update_videos(conn: sa.Connection, values_of: Mapping[str, Mapping[str, Any]]) -> None:
    """Set columns of many known videos (and their `updated_at`): one executemany per set of columns."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for video_id, values in values_of.items():
        by_columns.setdefault(tuple(sorted(values)), []).append({"key_video_id": video_id, **values})
    changed_at = now()
    for columns, rows in by_columns.items():
        stmt = (
            videos.update()
            .where(videos.c.video_id == sa.bindparam("key_video_id"))
            .values(updated_at=changed_at, **{column: sa.bindparam(column) for column in columns})
        )
        conn.execute(stmt, rows)
