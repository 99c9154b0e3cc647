"""Work leases in the catalog: one owner per video at a time, renewed while the work goes on, taken
over once it runs out; the work log. On SQLite, and on PostgreSQL when DVMSET_TEST_PG_URL is set."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta

from dvmset.catalog import Catalog
from dvmset.records import Candidate, SourceKind

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def add_video(catalog: Catalog, video_id: str = "youtube:a") -> str:
    catalog.add_candidates([Candidate(video_id, f"https://example.invalid/{video_id}", SourceKind.URL_LIST, "q")])
    return video_id


def test_a_leased_video_is_refused_to_everyone_else_until_the_lease_runs_out(catalog):
    video = add_video(catalog)
    first = catalog.claim_work(video, "separate", "gpu1:11:run-a", lease_s=60, now=at(0))
    assert (first.owner, first.taken_from) == ("gpu1:11:run-a", None)
    assert catalog.claim_work(video, "separate", "gpu2:22:run-b", lease_s=60, now=at(59)) is None
    assert catalog.claim_work(video, "separate", "gpu1:11:run-a", lease_s=60, now=at(1)) is None  # claims do not nest
    taken = catalog.claim_work(video, "separate", "gpu2:22:run-b", lease_s=60, now=at(60))  # the first worker died
    assert (taken.owner, taken.taken_from) == ("gpu2:22:run-b", "gpu1:11:run-a")
    assert catalog.work_lease(video).owner == "gpu2:22:run-b"
    assert not catalog.renew_work(video, "gpu1:11:run-a", now=at(61))  # the dead owner's lease is gone for good
    assert not catalog.release_work(video, "gpu1:11:run-a", "separated")  # and it logs nothing
    assert catalog.release_work(video, "gpu2:22:run-b", "separated", now=at(90))
    (event,) = catalog.work_events()
    assert (event.video_id, event.stage, event.owner, event.status) == (video, "separate", "gpu2:22:run-b", "separated")
    assert catalog.work_lease(video) is None


def test_a_renewed_lease_outlives_its_first_term_and_a_released_one_is_free_at_once(catalog):
    video = add_video(catalog)
    catalog.claim_work(video, "clip", "cpu1:1:r", lease_s=60, now=at(0))
    assert catalog.renew_work(video, "cpu1:1:r", lease_s=60, now=at(50))
    assert catalog.claim_work(video, "clip", "cpu2:2:r", lease_s=60, now=at(100)) is None
    assert catalog.release_work(video, "cpu1:1:r")  # no status: the step did nothing, nothing is logged
    assert catalog.claim_work(video, "fingerprint", "cpu2:2:r", lease_s=60, now=at(101)) is not None
    assert catalog.work_events() == []
    assert catalog.claim_work(video, "fingerprint", "cpu3:3:r", now=at(102), dead_owner="cpu9:9:r") is None
    taken = catalog.claim_work(video, "fingerprint", "cpu3:3:r", now=at(102), dead_owner="cpu2:2:r")  # known dead
    assert (taken.owner, taken.taken_from) == ("cpu3:3:r", "cpu2:2:r")


def _claim_all(url: str, owner: str, video_ids: list[str]) -> list[str]:
    catalog = Catalog.open(url)
    won = [video for video in video_ids if catalog.claim_work(video, "separate", owner) is not None]
    catalog.close()
    return won


def test_processes_claiming_the_same_videos_at_once_get_each_video_once(catalog_url):
    catalog = Catalog.open(catalog_url)
    videos = [add_video(catalog, f"youtube:v{i}") for i in range(30)]
    catalog.close()
    with ProcessPoolExecutor(max_workers=3) as pool:
        won = list(pool.map(_claim_all, [catalog_url] * 3, ["w1:1:r", "w2:2:r", "w3:3:r"], [videos] * 3))
    assert sorted(video for claimed in won for video in claimed) == sorted(videos)
