"""The catalog's tables and their migrations (SQLAlchemy Core); only the catalog package uses them.

Version 1: videos, video_queries, clips (ids, span, status), labels (append-only events).
Version 2: the audio/clip stages: a video's separator and separation key; a clip's files,
loudness, prescreen scores and the stage keys they came from.
Version 3: publishing: a video's fingerprint version, near-duplicate group, and published side
of the split (set once, never changed) with the manifest version that first published it.
Version 4: review claims: which annotator holds which review slot of a clip, until when (a
lease), and whether that annotator's vote is in (`done`).
Version 5: the role a label event was cast in (`annotator` or `reviewer`; older events are
`annotator`): a reviewer's vote outranks annotators' (`dvmset/catalog/decisions.py`).
Version 6: real models in the loop: a clip's `voice_s` (vocals-stem energy) becomes `speech_s` (a
speech detector's seconds); whether a video was separated, and so a clip made, by a stand-in
(random-weight) separator (`separator_stand_in`, `stand_in`): such clips are never data; the
models (id, SHA-256 of the weights) a video's stems came from (`separation_models`).
Version 7: work on videos: which worker holds a video for which stage, until when (`work_leases`,
one row per video, a lease renewed while the work goes on), and one `work_log` row per step that
ran (who, from when to when, the status it left).
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

SCHEMA_VERSION = 7

metadata = sa.MetaData()

schema_info = sa.Table("schema_info", metadata, sa.Column("version", sa.Integer, nullable=False))

videos = sa.Table(
    "videos",
    metadata,
    sa.Column("video_id", sa.String(255), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("platform", sa.String(64), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("error_reason", sa.String(64)),
    sa.Column("error_message", sa.Text),
    sa.Column("stage_version", sa.String(64)),
    sa.Column("title", sa.Text),
    sa.Column("channel", sa.Text),
    sa.Column("upload_date", sa.String(16)),
    sa.Column("duration_s", sa.Float),
    sa.Column("license", sa.Text),
    sa.Column("webpage_url", sa.Text),
    sa.Column("extractor", sa.String(64)),
    sa.Column("media_path", sa.Text),
    sa.Column("probe", sa.JSON),
    # version 2
    sa.Column("separator_model_id", sa.String(255)),
    sa.Column("separate_version", sa.String(128)),
    sa.Column("clip_count", sa.Integer),
    # version 3
    sa.Column("fingerprint_version", sa.Integer),
    sa.Column("group_id", sa.String(300), index=True),
    sa.Column("split", sa.String(16)),
    sa.Column("published_in", sa.String(128)),
    # version 6
    sa.Column("separator_stand_in", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("separation_models", sa.JSON),  # [{model_id, sha256, stand_in}]: separator, speech detector
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

video_queries = sa.Table(
    "video_queries",
    metadata,
    sa.Column("video_id", sa.String(255), sa.ForeignKey("videos.video_id"), primary_key=True),
    sa.Column("query", sa.Text, primary_key=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
)

clips = sa.Table(
    "clips",
    metadata,
    sa.Column("clip_id", sa.String(300), primary_key=True),
    sa.Column("video_id", sa.String(255), sa.ForeignKey("videos.video_id"), nullable=False, index=True),
    sa.Column("start_s", sa.Float, nullable=False),
    sa.Column("end_s", sa.Float, nullable=False),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("error_reason", sa.String(64)),
    sa.Column("error_message", sa.Text),
    sa.Column("stage_version", sa.String(64)),  # the last stage that wrote the row
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # version 2
    sa.Column("fps", sa.Float),
    sa.Column("video_path", sa.Text),
    sa.Column("music_path", sa.Text),
    sa.Column("separator_model_id", sa.String(255)),
    sa.Column("separate_version", sa.String(128)),
    sa.Column("clip_version", sa.String(128)),
    sa.Column("loudness_version", sa.String(128)),
    sa.Column("prescreen_version", sa.String(128)),
    sa.Column("loudness_before_lufs", sa.Float),
    sa.Column("loudness_lufs", sa.Float),
    sa.Column("true_peak_dbtp", sa.Float),
    sa.Column("gain_db", sa.Float),
    sa.Column("limited", sa.Boolean),
    sa.Column("silent", sa.Boolean),
    sa.Column("silence_s", sa.Float),
    sa.Column("longest_silence_s", sa.Float),
    sa.Column("speech_s", sa.Float),  # "voice_s" before version 6
    sa.Column("non_music_s", sa.Float),
    sa.Column("static_share", sa.Float),
    sa.Column("noise_score", sa.Float),
    sa.Column("scene_cuts_s", sa.JSON),
    sa.Column("flags", sa.JSON),
    sa.Column("priority", sa.Float, index=True),
    # version 6
    sa.Column("stand_in", sa.Boolean, nullable=False, server_default=sa.false()),
)

labels = sa.Table(
    "labels",
    metadata,
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("clip_id", sa.String(300), sa.ForeignKey("clips.clip_id"), nullable=False, index=True),
    sa.Column("annotator", sa.String(128), nullable=False),
    sa.Column("decision", sa.String(32), nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    # version 5: `annotator` or `reviewer` (`dvmset.records.Role`)
    sa.Column("role", sa.String(16), nullable=False, server_default="annotator"),
)

# version 4: a clip has one review slot, or two when it is picked for overlap; a row holds one
# slot for one annotator: a lease until `expires_at`, kept for good once the vote is in (`done`).
claims = sa.Table(
    "claims",
    metadata,
    sa.Column("clip_id", sa.String(300), sa.ForeignKey("clips.clip_id"), primary_key=True),
    sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("annotator", sa.String(128), nullable=False, index=True),
    sa.Column("slots", sa.Integer, nullable=False),  # the clip's number of slots: 1, or 2 for overlap
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("done", sa.Boolean, nullable=False),
    sa.UniqueConstraint("clip_id", "annotator", name="uq_claims_clip_annotator"),
)

# version 7: a video is worked on by one owner (host, process and run) at a time; a lease that
# ran out (its worker died) may be taken by another.
work_leases = sa.Table(
    "work_leases",
    metadata,
    sa.Column("video_id", sa.String(255), sa.ForeignKey("videos.video_id"), primary_key=True),
    sa.Column("stage", sa.String(32), nullable=False),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

work_log = sa.Table(
    "work_log",
    metadata,
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("video_id", sa.String(255), sa.ForeignKey("videos.video_id"), nullable=False, index=True),
    sa.Column("stage", sa.String(32), nullable=False),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),  # the video's status when the step ended
)

# Migrations from version N-1 to N, applied in order by `Catalog.open`. A new catalog is
# created at SCHEMA_VERSION directly. Add an entry here with every change to the tables above.


def _add_columns(table: sa.Table, names: list[str]) -> Callable[[Connection], None]:
    """A migration that adds `names` (as declared above: type, server default, NOT NULL) to
    `table`, with their indexes; existing rows take the server default."""

    def migrate(conn: Connection) -> None:
        for name in names:
            column = sa.schema.CreateColumn(table.c[name]).compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {column}"))
        for index in table.indexes:
            if {column.name for column in index.columns} <= set(names):
                index.create(conn)

    return migrate


_V2_VIDEO_COLUMNS = ["separator_model_id", "separate_version", "clip_count"]
_CLIP_NAMES = list(clips.c.keys())
_V2_CLIP_COLUMNS = _CLIP_NAMES[_CLIP_NAMES.index("fps") : _CLIP_NAMES.index("priority") + 1]  # speech_s as voice_s


def _migrate_to_2(conn: Connection) -> None:
    _add_columns(videos, _V2_VIDEO_COLUMNS)(conn)
    _add_columns(clips, _V2_CLIP_COLUMNS)(conn)


_V3_VIDEO_COLUMNS = ["fingerprint_version", "group_id", "split", "published_in"]


def _migrate_to_4(conn: Connection) -> None:
    claims.create(conn, checkfirst=True)


def _migrate_to_6(conn: Connection) -> None:
    if "voice_s" in {column["name"] for column in sa.inspect(conn).get_columns("clips")}:
        conn.execute(sa.text("ALTER TABLE clips RENAME COLUMN voice_s TO speech_s"))
    _add_columns(videos, ["separator_stand_in", "separation_models"])(conn)
    _add_columns(clips, ["stand_in"])(conn)


def _migrate_to_7(conn: Connection) -> None:
    work_leases.create(conn, checkfirst=True)
    work_log.create(conn, checkfirst=True)


MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    2: _migrate_to_2,
    3: _add_columns(videos, _V3_VIDEO_COLUMNS),
    4: _migrate_to_4,
    5: _add_columns(labels, ["role"]),
    6: _migrate_to_6,
    7: _migrate_to_7,
}
