"""Catalogs for the catalog tests and the tests above them: the PostgreSQL URL to test on (`PG_URL`, from
DVMSET_TEST_PG_URL, else None; a schema of its own per xdist worker) and a wipe of it, hand-made catalog rows
(a candidate, a probe, a clip with its scores, a video taken up to `separated`), and a current catalog turned
back into an older schema version."""

from __future__ import annotations

import os

import sqlalchemy as sa

from dvmset.catalog import metadata, tables
from dvmset.ids import make_clip_id
from dvmset.records import (
    Candidate,
    ClipLoudness,
    ClipRecord,
    ClipStatus,
    ClipVersions,
    Download,
    PrescreenScores,
    ProbeInfo,
    SourceKind,
    SourceMetadata,
)
from dvmset.storage import DataRoot


def worker_url(url: str | None, worker: str | None) -> str | None:
    """`url` on a schema of its own for pytest-xdist's `worker` (gw0, gw1: `PYTEST_XDIST_WORKER`), made if
    new, so that two workers' tests never wipe each other's tables; `url` itself outside xdist."""
    if not url or not worker:
        return url
    schema = f"dvmset_test_{worker}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    engine.dispose()
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


PG_URL = worker_url(os.environ.get("DVMSET_TEST_PG_URL"), os.environ.get("PYTEST_XDIST_WORKER"))


def wipe(url: str) -> None:
    """Drop every catalog table so a test starts from nothing."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        metadata.drop_all(conn)
    engine.dispose()


PROBE = ProbeInfo(
    duration_s=65.0,
    size_bytes=1234,
    container="mov,mp4",
    video_codec="h264",
    width=320,
    height=240,
    fps=25.0,
    audio_codec="aac",
    sample_rate_hz=44100,
    channels=6,
    channel_layout="5.1",
)


def cand(video_id: str, query: str, source=SourceKind.PLATFORM_SEARCH) -> Candidate:
    """A candidate of `video_id` found by `query`."""
    return Candidate(video_id=video_id, url=f"https://example.invalid/{video_id}", source=source, query=query)


KEYS = ClipVersions(separate="separate/1+aa", clip="clip/1+bb", loudness="loudness/1+cc", prescreen="prescreen/1+dd")


def make_clip(
    video_id: str,
    start_s: float,
    versions: ClipVersions = KEYS,
    data_root: DataRoot | None = None,
    limited: bool = True,
    **scores,
) -> ClipRecord:
    """A pending 60 s clip of `video_id` from `start_s`, made-up loudness and prescreen scores (`scores` override);
    its files in its own folder under `data_root` when given, else named `clips/<video_id>/...`."""
    clip_id = make_clip_id(video_id, start_s)
    fields = dict(
        silence_s=0.0,
        longest_silence_s=0.0,
        speech_s=0.0,
        non_music_s=0.0,
        static_share=0.1,
        noise_score=0.05,
        scene_cuts_s=(4.0, 8.0),
        flags=(),
        priority=0.2,
    )
    fields.update(scores)
    if data_root is None:
        video_path, music_path = f"clips/{video_id}/video.mp4", f"clips/{video_id}/music.flac"
    else:
        video_path = data_root.relative(data_root.clip_video_path(clip_id))
        music_path = data_root.relative(data_root.clip_music_path(clip_id))
    return ClipRecord(
        clip_id=clip_id,
        video_id=video_id,
        start_s=start_s,
        end_s=start_s + 60.0,
        status=ClipStatus.PENDING_REVIEW,
        fps=25.0,
        video_path=video_path,
        music_path=music_path,
        separator_model_id="htdemucs",
        loudness=ClipLoudness(
            before_lufs=-20.5, after_lufs=-14.0, true_peak_dbtp=-1.2, gain_db=6.5, limited=limited, silent=False
        ),
        prescreen=PrescreenScores(**fields),
        versions=versions,
    )


def separated(catalog, video_id: str, separate_version: str = KEYS.separate) -> None:
    """Add `video_id` to `catalog` and take it through download, probe and separation (`separate_version`)."""
    catalog.add_candidates([cand(video_id, "q")])
    catalog.mark_downloaded(Download(video_id, f"raw/{video_id}/source.mp4", SourceMetadata()), "download/1")
    catalog.mark_probed(video_id, PROBE, "probe/1")
    catalog.mark_separated(video_id, "htdemucs", separate_version)


def downgrade(catalog_url: str, version: int, video_columns: list[str], clip_columns: list[str] = ()) -> None:
    """Turn a current catalog back into `version`: drop the columns (and their indexes) added since
    (the labels' `role` of version 5, the stand-in columns of version 6 and the work tables of
    version 7 always) and name the clips' `speech_s` `voice_s` again, as before version 6."""
    engine = sa.create_engine(catalog_url)
    with engine.begin() as conn:
        tables.work_log.drop(conn)
        tables.work_leases.drop(conn)
        video_columns = [*video_columns, "separator_stand_in", "separation_models"]
        clip_columns = [*clip_columns, "stand_in"]
        for table, columns in ((tables.videos, video_columns), (tables.clips, clip_columns), (tables.labels, ["role"])):
            for index in table.indexes:
                if {c.name for c in index.columns} <= set(columns):
                    index.drop(conn)
            for column in columns:
                conn.execute(sa.text(f"ALTER TABLE {table.name} DROP COLUMN {column}"))
        if "speech_s" not in clip_columns:
            conn.execute(sa.text("ALTER TABLE clips RENAME COLUMN speech_s TO voice_s"))
        conn.execute(tables.schema_info.update().values(version=version))
    engine.dispose()
