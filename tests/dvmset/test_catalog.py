"""Catalog tests: run on SQLite, and on PostgreSQL when DVMSET_TEST_PG_URL is set."""

from concurrent.futures import ProcessPoolExecutor

import pytest
import sqlalchemy as sa

from dvmset import catalog as catalog_module
from dvmset.catalog import Catalog
from dvmset.errors import CatalogError, ProbeError, ReasonCode
from dvmset.records import Candidate, Download, ProbeInfo, SourceKind, SourceMetadata, VideoStatus

PROBE = ProbeInfo(
    duration_s=65.0, size_bytes=1234, container="mov,mp4", video_codec="h264", width=320, height=240, fps=25.0,
    audio_codec="aac", sample_rate_hz=44100, channels=6, channel_layout="5.1",
)


def cand(video_id: str, query: str, source=SourceKind.PLATFORM_SEARCH) -> Candidate:
    return Candidate(video_id=video_id, url=f"https://example.invalid/{video_id}", source=source, query=query)


def test_a_video_found_by_two_queries_is_one_row_that_remembers_both(catalog):
    first = catalog.add_candidates([cand("youtube:a", "food commercial"), cand("youtube:b", "food commercial")])
    second = catalog.add_candidates([cand("youtube:a", "city video guide"), cand("youtube:a", "food commercial")])
    assert (first.new_videos, first.new_links) == (2, 2)
    assert (second.new_videos, second.new_links) == (0, 1)
    videos = list(catalog.videos())
    assert [v.video_id for v in videos] == ["youtube:a", "youtube:b"]
    assert set(videos[0].queries) == {"food commercial", "city video guide"}
    assert videos[0].status is VideoStatus.DISCOVERED
    assert [v.video_id for v in catalog.videos(query="city video guide")] == ["youtube:a"]


def test_lifecycle_download_probe_and_errors(catalog):
    catalog.add_candidates([cand("youtube:a", "q"), cand("youtube:b", "q"), cand("youtube:c", "q")])
    meta = SourceMetadata(title="<b>Title</b>", channel="Chan", upload_date="20240102", duration_s=65.0,
                          license="Creative Commons", webpage_url="https://w/a", extractor="youtube")
    catalog.mark_downloaded(Download("youtube:a", "raw/youtube:a/source.mp4", meta), "download/1")
    catalog.mark_probed("youtube:a", PROBE, "probe/1")
    catalog.mark_downloaded(Download("youtube:b", "raw/youtube:b/source.mp4", SourceMetadata()), "download/1")
    assert catalog.mark_error("youtube:b", ProbeError(ReasonCode.TRUNCATED, "cut at 30 s"), "probe/1") is VideoStatus.FAILED
    assert catalog.mark_error("youtube:c", ProbeError(ReasonCode.TOO_SHORT, "5 s"), "probe/1") is VideoStatus.SKIPPED

    a = catalog.get_video("youtube:a")
    assert a.status is VideoStatus.PROBED and a.probe == PROBE and a.metadata == meta
    assert a.stage_version == "probe/1" and a.error is None and a.updated_at is not None
    b = catalog.get_video("youtube:b")
    assert b.status is VideoStatus.FAILED and b.error.reason is ReasonCode.TRUNCATED and b.error.message == "cut at 30 s"

    counts = {(c.status, c.reason): c.count for c in catalog.status_counts()}
    assert counts == {
        (VideoStatus.PROBED, None): 1,
        (VideoStatus.FAILED, "truncated"): 1,
        (VideoStatus.SKIPPED, "too_short"): 1,
    }
    # retry: a failed video with a file goes back to `downloaded`, skipped ones stay
    assert catalog.reset_errors() == 1
    assert catalog.get_video("youtube:b").status is VideoStatus.DOWNLOADED
    assert catalog.get_video("youtube:c").status is VideoStatus.SKIPPED


def test_status_counts_per_query(catalog):
    catalog.add_candidates([cand("youtube:a", "q1"), cand("youtube:a", "q2"), cand("youtube:b", "q2")])
    catalog.mark_error("youtube:b", ProbeError(ReasonCode.UNAVAILABLE, "gone"), "download/1")
    rows = {(c.query, c.status, c.reason): c.count for c in catalog.status_counts(by_query=True)}
    assert rows == {
        ("q1", VideoStatus.DISCOVERED, None): 1,
        ("q2", VideoStatus.DISCOVERED, None): 1,
        ("q2", VideoStatus.FAILED, "unavailable"): 1,
    }


def test_unknown_video_update_is_an_error(catalog):
    with pytest.raises(CatalogError, match="no video"):
        catalog.mark_probed("youtube:nope", PROBE, "probe/1")


def test_reopen_keeps_data_and_schema_version(catalog_url):
    first = Catalog.open(catalog_url)
    first.add_candidates([cand("youtube:a", "q")])
    first.close()
    again = Catalog.open(catalog_url)
    assert again.schema_version() == catalog_module.SCHEMA_VERSION
    assert [v.video_id for v in again.videos()] == ["youtube:a"]
    again.close()


def test_migrations_run_in_order_on_an_older_catalog(catalog_url, monkeypatch):
    Catalog.open(catalog_url).close()
    applied = []
    monkeypatch.setattr(catalog_module, "SCHEMA_VERSION", catalog_module.SCHEMA_VERSION + 2)
    for version in (catalog_module.SCHEMA_VERSION - 1, catalog_module.SCHEMA_VERSION):
        monkeypatch.setitem(catalog_module.MIGRATIONS, version, lambda conn, v=version: applied.append(v))
    reopened = Catalog.open(catalog_url)
    assert applied == [catalog_module.SCHEMA_VERSION - 1, catalog_module.SCHEMA_VERSION]
    assert reopened.schema_version() == catalog_module.SCHEMA_VERSION
    reopened.close()


def test_a_newer_catalog_is_refused(catalog_url):
    Catalog.open(catalog_url).close()
    engine = sa.create_engine(catalog_url)
    with engine.begin() as conn:
        conn.execute(catalog_module.schema_info.update().values(version=catalog_module.SCHEMA_VERSION + 1))
    engine.dispose()
    with pytest.raises(CatalogError, match="newer than this code"):
        Catalog.open(catalog_url)


def test_sqlite_is_in_wal_mode(tmp_path):
    catalog = Catalog.open(f"sqlite:///{tmp_path / 'c.sqlite'}")
    with catalog.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    catalog.close()


def test_unreachable_catalog_gives_a_clear_error():
    with pytest.raises(CatalogError, match="cannot open catalog"):
        Catalog.open("postgresql+psycopg://nobody:secret@127.0.0.1:1/none?connect_timeout=2")


def _add_many(url: str, worker: int) -> None:
    catalog = Catalog.open(url)
    for i in range(25):
        catalog.add_candidates([cand(f"youtube:w{worker}-{i}", f"q{worker}")])
    catalog.close()


def test_concurrent_writers_from_several_processes(catalog_url):
    Catalog.open(catalog_url).close()
    with ProcessPoolExecutor(max_workers=3) as pool:
        list(pool.map(_add_many, [catalog_url] * 3, range(3)))
    catalog = Catalog.open(catalog_url)
    assert len(list(catalog.videos())) == 75
    catalog.close()
