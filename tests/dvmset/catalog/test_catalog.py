"""Catalog tests: run on SQLite, and on PostgreSQL when DVMSET_TEST_PG_URL is set."""

import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from dvmset import catalog as catalog_module
from dvmset.catalog import Catalog, tables
from dvmset.errors import CatalogError, ProbeError, ReasonCode
from dvmset.ids import make_clip_id
from dvmset.records import (
    ClipStatus,
    Download,
    ModelStamp,
    PrescreenFlag,
    SourceMetadata,
    VideoStatus,
)
from tests.support.catalogs import KEYS, PROBE, cand, downgrade, make_clip, separated


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
    meta = SourceMetadata(
        title="<b>Title</b>",
        channel="Chan",
        upload_date="20240102",
        duration_s=65.0,
        license="Creative Commons",
        webpage_url="https://w/a",
        extractor="youtube",
    )
    catalog.mark_downloaded(Download("youtube:a", "raw/youtube:a/source.mp4", meta), "download/1")
    catalog.mark_probed("youtube:a", PROBE, "probe/1")
    catalog.mark_downloaded(Download("youtube:b", "raw/youtube:b/source.mp4", SourceMetadata()), "download/1")
    assert (
        catalog.mark_error("youtube:b", ProbeError(ReasonCode.TRUNCATED, "cut at 30 s"), "probe/1")
        is VideoStatus.FAILED
    )
    assert catalog.mark_error("youtube:c", ProbeError(ReasonCode.TOO_SHORT, "5 s"), "probe/1") is VideoStatus.SKIPPED

    a = catalog.get_video("youtube:a")
    assert a.status is VideoStatus.PROBED and a.probe == PROBE and a.metadata == meta
    assert a.stage_version == "probe/1" and a.error is None and a.updated_at is not None
    b = catalog.get_video("youtube:b")
    assert (
        b.status is VideoStatus.FAILED and b.error.reason is ReasonCode.TRUNCATED and b.error.message == "cut at 30 s"
    )

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


def _open_new(url: str) -> int:
    catalog = Catalog.open(url)
    count = len(list(catalog.videos()))
    catalog.close()
    return count


def test_several_processes_creating_one_new_catalog_at_once_all_open_it(catalog_url):
    with ProcessPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(_open_new, [catalog_url] * 8)) == [0] * 8  # no "table already exists"
    engine = sa.create_engine(catalog_url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(tables.schema_info.c.version)).scalars().all() == [tables.SCHEMA_VERSION]
    engine.dispose()


def test_concurrent_writers_from_several_processes(catalog_url):
    Catalog.open(catalog_url).close()
    with ProcessPoolExecutor(max_workers=3) as pool:
        list(pool.map(_add_many, [catalog_url] * 3, range(3)))
    catalog = Catalog.open(catalog_url)
    assert len(list(catalog.videos())) == 75
    catalog.close()


# --- clips (schema version 2) ----------------------------------------------------------------


def test_a_clip_round_trips_with_every_score(catalog):
    separated(catalog, "youtube:a")
    clip = make_clip("youtube:a", 0.0, flags=(PrescreenFlag.NON_MUSIC, PrescreenFlag.STATIC), priority=2.4)
    silent = make_clip("youtube:a", 60.0)
    silent = replace(
        silent, loudness=replace(silent.loudness, before_lufs=-math.inf, after_lufs=-math.inf, silent=True)
    )
    catalog.save_clip(clip)
    catalog.save_clip(silent)
    got = catalog.clips("youtube:a")
    assert [replace(c, updated_at=None) for c in got] == [clip, silent]
    assert catalog.clip_status_counts() == {ClipStatus.PENDING_REVIEW: 2}


def test_saving_again_keeps_the_review_status_and_brings_back_a_retired_clip(catalog):
    separated(catalog, "youtube:a")
    catalog.save_clip(make_clip("youtube:a", 0.0))
    catalog.save_clip(make_clip("youtube:a", 60.0))
    assert catalog.auto_reject(make_clip_id("youtube:a", 0.0), [PrescreenFlag.NOISE]) is True
    assert catalog.auto_reject(make_clip_id("youtube:a", 0.0), [PrescreenFlag.NOISE]) is False  # only once
    assert catalog.retire_clips("youtube:a", [make_clip_id("youtube:a", 0.0)]) == [make_clip_id("youtube:a", 60.0)]
    catalog.save_clip(make_clip("youtube:a", 0.0, priority=3.0))
    catalog.save_clip(make_clip("youtube:a", 60.0))
    statuses = {c.start_s: (c.status, c.prescreen.priority) for c in catalog.clips("youtube:a")}
    assert statuses == {0.0: (ClipStatus.REJECTED, 3.0), 60.0: (ClipStatus.PENDING_REVIEW, 0.2)}
    with catalog.engine.connect() as conn:
        events = conn.execute(sa.select(tables.labels.c.annotator, tables.labels.c.reasons)).all()
    assert [tuple(event) for event in events] == [("prescreen", ["noise"])]


def test_work_lists_follow_status_and_stage_keys(catalog):
    separated(catalog, "youtube:new")  # separated, no clips yet
    separated(catalog, "youtube:done")
    separated(catalog, "youtube:old", separate_version="separate/1+old")
    catalog.add_candidates([cand("youtube:probed", "q")])
    catalog.mark_downloaded(Download("youtube:probed", "raw/p/source.mp4", SourceMetadata()), "download/1")
    catalog.mark_probed("youtube:probed", PROBE, "probe/1")
    for video_id in ("youtube:done", "youtube:old"):
        catalog.save_clip(
            make_clip(video_id, 0.0, versions=replace(KEYS, separate=catalog.get_video(video_id).separate_version))
        )
        catalog.mark_clipped(video_id, 1, KEYS.clip)

    def ids(videos):
        return sorted(v.video_id for v in videos)

    assert ids(catalog.videos_to_separate(KEYS.separate)) == ["youtube:old", "youtube:probed"]
    assert ids(catalog.videos_to_clip(KEYS)) == ["youtube:new"]
    assert ids(catalog.videos_to_clip(replace(KEYS, prescreen="prescreen/2"))) == [
        "youtube:done",
        "youtube:new",
        "youtube:old",
    ]
    # a clip made from another separation than the video's current one is outdated
    catalog.mark_separated("youtube:done", "htdemucs_ft", "separate/1+ft")
    assert "youtube:done" in ids(catalog.videos_to_clip(KEYS))
    # retired clips never make work
    catalog.retire_clips("youtube:old", [])
    assert "youtube:old" not in ids(catalog.videos_to_clip(replace(KEYS, clip="clip/9")))


def test_a_version_1_catalog_is_migrated_keeping_its_rows(catalog_url):
    first = Catalog.open(catalog_url)
    first.add_candidates([cand("youtube:a", "q")])
    first.close()
    downgrade(catalog_url, 1, tables._V2_VIDEO_COLUMNS + tables._V3_VIDEO_COLUMNS, tables._V2_CLIP_COLUMNS)
    migrated = Catalog.open(catalog_url)
    assert migrated.schema_version() == catalog_module.SCHEMA_VERSION
    separated(migrated, "youtube:b")
    migrated.save_clip(make_clip("youtube:b", 0.0))
    assert [v.video_id for v in migrated.videos()] == ["youtube:a", "youtube:b"]
    assert len(migrated.clips()) == 1
    migrated.close()


def test_a_version_2_catalog_is_migrated_to_3_keeping_its_rows(catalog_url):
    first = Catalog.open(catalog_url)
    separated(first, "youtube:a")
    first.close()
    downgrade(catalog_url, 2, tables._V3_VIDEO_COLUMNS)
    migrated = Catalog.open(catalog_url)
    assert migrated.schema_version() == catalog_module.SCHEMA_VERSION
    video = migrated.get_video("youtube:a")
    assert (video.status, video.group_id, video.split, video.fingerprint_version) == (
        VideoStatus.SEPARATED,
        None,
        None,
        None,
    )
    migrated.set_groups({"youtube:a": "g1"})
    assert migrated.get_video("youtube:a").group_id == "g1"
    migrated.close()


def test_a_version_5_catalog_keeps_its_clips_and_calls_voice_speech(catalog_url):
    first = Catalog.open(catalog_url)
    separated(first, "youtube:a")
    first.save_clip(make_clip("youtube:a", 0.0, speech_s=7.5))
    first.close()
    downgrade(catalog_url, 5, [])
    migrated = Catalog.open(catalog_url)
    assert migrated.schema_version() == catalog_module.SCHEMA_VERSION
    (clip,) = migrated.clips()
    assert (clip.prescreen.speech_s, clip.stand_in) == (7.5, False)
    assert migrated.get_video("youtube:a").separator_stand_in is False
    stamp = ModelStamp("tiny-random", "ab" * 32, stand_in=True)
    migrated.mark_separated("youtube:a", "tiny-random", "separate/2+x", stand_in=True, models=[stamp])
    video = migrated.get_video("youtube:a")
    assert (video.separator_stand_in, video.separation_models) == (True, (stamp,))
    migrated.save_clip(replace(make_clip("youtube:a", 60.0), stand_in=True))
    assert [c.stand_in for c in migrated.clips()] == [False, True]
    migrated.close()


def test_a_version_6_catalog_gets_work_leases_and_keeps_its_rows(catalog_url):
    first = Catalog.open(catalog_url)
    separated(first, "youtube:a")
    first.save_clip(make_clip("youtube:a", 0.0))
    first.close()
    engine = sa.create_engine(catalog_url)
    with engine.begin() as conn:
        tables.work_log.drop(conn)
        tables.work_leases.drop(conn)
        conn.execute(tables.schema_info.update().values(version=6))
    engine.dispose()
    migrated = Catalog.open(catalog_url)
    assert migrated.schema_version() == catalog_module.SCHEMA_VERSION == 7
    assert (migrated.get_video("youtube:a").status, len(migrated.clips())) == (VideoStatus.SEPARATED, 1)
    assert migrated.claim_work("youtube:a", "clip", "host:1:run") is not None
    assert migrated.release_work("youtube:a", "host:1:run", "clipped")
    assert [(e.video_id, e.stage, e.status) for e in migrated.work_events()] == [("youtube:a", "clip", "clipped")]
    migrated.close()


def test_two_processes_adding_the_same_videos_at_once_add_each_once(catalog_url):
    Catalog.open(catalog_url).close()
    with ProcessPoolExecutor(max_workers=2) as pool:
        added = list(pool.map(_add_same, [catalog_url] * 2))
    assert sum(added) == 40  # no IntegrityError from the race: one process added each video
    catalog = Catalog.open(catalog_url)
    assert len(list(catalog.videos())) == 40
    catalog.close()


def _add_same(url: str) -> int:
    catalog = Catalog.open(url)
    new = sum(catalog.add_candidates([cand(f"youtube:same-{i}", "q")]).new_videos for i in range(40))
    catalog.close()
    return new


def test_fingerprint_work_list_and_a_new_separation_asks_for_a_new_fingerprint(catalog):
    separated(catalog, "youtube:a")
    separated(catalog, "youtube:b")
    assert catalog.videos_to_fingerprint(1) == []  # only clipped videos are fingerprinted
    for video_id in ("youtube:a", "youtube:b"):
        catalog.mark_clipped(video_id, 1, KEYS.clip)
    catalog.mark_fingerprinted("youtube:a", 1)
    assert [v.video_id for v in catalog.videos_to_fingerprint(1)] == ["youtube:b"]
    assert sorted(v.video_id for v in catalog.videos_to_fingerprint(2)) == ["youtube:a", "youtube:b"]
    catalog.mark_separated("youtube:a", "htdemucs_ft", "separate/1+ft")
    assert catalog.get_video("youtube:a").fingerprint_version is None


def test_a_published_side_never_changes(catalog):
    for video_id in ("youtube:a", "youtube:b"):
        separated(catalog, video_id)
    assert catalog.publish_splits({"youtube:a": "train"}, "v0001") == 1
    assert catalog.publish_splits({"youtube:a": "train", "youtube:b": "test"}, "v0002") == 1
    with pytest.raises(CatalogError, match="already published"):
        catalog.publish_splits({"youtube:a": "test", "youtube:b": "test"}, "v0003")
    assert [(v.video_id, v.split) for v in catalog.videos()] == [("youtube:a", "train"), ("youtube:b", "test")]
    with pytest.raises(CatalogError, match="no videos"):
        catalog.publish_splits({"youtube:zz": "test"}, "v0003")


def test_many_ids_are_looked_up_and_updated_in_chunks(catalog, monkeypatch):
    monkeypatch.setattr(catalog_module, "ID_CHUNK", 2)
    ids = [f"youtube:{name}" for name in "abcde"]
    catalog.add_candidates(cand(video_id, f"q {video_id}") for video_id in ids)
    catalog.add_candidates([cand("youtube:c", "q extra")])
    asked = ["youtube:e", "youtube:a", "youtube:c", "youtube:a"]  # unordered, one twice
    found = [(v.video_id, v.queries) for v in catalog.videos(video_ids=asked)]
    assert found == [
        ("youtube:a", ("q youtube:a",)),
        ("youtube:c", ("q youtube:c", "q extra")),
        ("youtube:e", ("q youtube:e",)),
    ]
    catalog.set_groups({video_id: f"g{n % 2}" for n, video_id in enumerate(ids)})
    with pytest.raises(CatalogError, match="no videos"):  # nothing written
        catalog.set_groups({"youtube:a": "g9", "youtube:zz": "g9"})
    assert [v.group_id for v in catalog.videos()] == ["g0", "g1", "g0", "g1", "g0"]
    assert catalog.publish_splits({video_id: "train" for video_id in ids[:3]}, "v0001") == 3
    assert catalog.publish_splits({video_id: "test" for video_id in ids[3:]}, "v0002") == 2
    assert [v.split for v in catalog.videos()] == ["train"] * 3 + ["test"] * 2


def add_label(catalog, clip_id: str, annotator: str, decision: str, reasons=(), minute: int = 0) -> None:
    """A label event, written as the labeling UI will: `minute` orders the events."""
    with catalog.engine.begin() as conn:
        conn.execute(
            tables.labels.insert().values(
                clip_id=clip_id,
                annotator=annotator,
                decision=decision,
                reasons=list(reasons),
                note=None,
                ts=datetime(2026, 1, 1, 12, minute, tzinfo=UTC),
            )
        )


def test_decisions_follow_each_annotators_latest_event_and_agreement(catalog):
    separated(catalog, "youtube:a")
    ids = [make_clip_id("youtube:a", 60.0 * n) for n in range(6)]
    for n in range(6):
        catalog.save_clip(make_clip("youtube:a", 60.0 * n))
    add_label(catalog, ids[0], "ann", "accepted")  # one vote
    add_label(catalog, ids[1], "ann", "rejected", ["noise"], minute=1)  # changed mind: rejected, then accepted
    add_label(catalog, ids[1], "ann", "accepted", minute=2)
    add_label(catalog, ids[2], "ann", "accepted", minute=1)  # two people disagree: undecided
    add_label(catalog, ids[2], "bob", "rejected", ["static"], minute=2)
    add_label(catalog, ids[3], "ann", "rejected", ["noise"], minute=1)  # they agree: reasons are joined
    add_label(catalog, ids[3], "bob", "rejected", ["mismatch", "made-up"], minute=2)
    catalog.auto_reject(ids[4], [PrescreenFlag.NON_MUSIC])  # the prescreen, then a person overrides it
    add_label(catalog, ids[4], "ann", "accepted", minute=3)
    add_label(catalog, ids[5], "ann", "rejected", ["noise"], minute=1)  # an undo withdraws the vote
    add_label(catalog, ids[5], "ann", "pending_review", minute=2)
    got = {
        clip_id: (d.status.value, tuple(r.value for r in d.reasons), d.annotators)
        for clip_id, d in catalog.decisions().items()
    }
    assert got == {
        ids[0]: ("accepted", (), ("ann",)),
        ids[1]: ("accepted", (), ("ann",)),
        ids[3]: ("rejected", ("mismatch", "noise", "other"), ("ann", "bob")),
        ids[4]: ("accepted", (), ("ann",)),
    }
    assert catalog.rejection_counts() == {"mismatch": 1, "noise": 1, "other": 1}
    assert catalog.rejection_counts(catalog.decisions()) == catalog.rejection_counts()  # settled by the caller
    # a later event settles the dispute; a retired clip's events no longer count
    add_label(catalog, ids[2], "bob", "accepted", minute=4)
    assert catalog.decisions()[ids[2]].annotators == ("ann", "bob")
    catalog.retire_clips("youtube:a", ids[:1])
    assert {clip_id: d.annotators for clip_id, d in catalog.decisions().items()} == {ids[0]: ("ann",)}


def test_add_label_appends_events_and_keeps_the_clip_status_settled(catalog):
    separated(catalog, "youtube:a")
    catalog.save_clip(make_clip("youtube:a", 0.0))
    clip_id = make_clip_id("youtube:a", 0.0)

    def status() -> str:
        return catalog.clips("youtube:a")[0].status.value

    first = catalog.add_label(clip_id, "ann", ClipStatus.REJECTED, ["noise"], "hum all along")
    assert status() == "rejected"
    catalog.add_label(clip_id, "bob", ClipStatus.ACCEPTED)  # a disagreement: back in review
    assert status() == "pending_review"
    catalog.add_label(clip_id, "ann", ClipStatus.PENDING_REVIEW)  # ann's undo: bob's vote stands
    last = catalog.add_label(clip_id, "ann", ClipStatus.ACCEPTED)
    assert status() == "accepted" and last > first
    events = catalog.label_events()
    assert [(e.annotator, e.decision, e.reasons, e.note) for e in events] == [
        ("ann", "rejected", ("noise",), "hum all along"),
        ("bob", "accepted", (), None),
        ("ann", "pending_review", (), None),
        ("ann", "accepted", (), None),
    ]
