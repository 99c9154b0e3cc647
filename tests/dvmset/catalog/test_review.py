"""Review claims (schema version 4): the per-annotator queue, leases, overlap, undo; reviewers
(schema version 5): disputed clips first in a reviewer's queue, and their ruling."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from dvmset import catalog as catalog_module
from dvmset.catalog import Catalog, tables
from dvmset.catalog.review import REVIEW_SLOT, overlap_slots
from dvmset.records import ClipStatus, Role
from tests.support.catalogs import downgrade, make_clip, separated

T0 = datetime(2030, 1, 1, tzinfo=UTC)  # every claim below passes its own clock
LEASE_S = 600.0


def add_clips(catalog: Catalog, priorities: list[float], video_id: str = "youtube:a") -> list[str]:
    separated(catalog, video_id)
    made = [make_clip(video_id, 60.0 * i, priority=priority) for i, priority in enumerate(priorities)]
    for clip in made:
        catalog.save_clip(clip)
    return [clip.clip_id for clip in made]


def claim(
    catalog: Catalog, annotator: str, at: datetime = T0, overlap_share: float = 0.0, skip=(), reviewer=False
) -> str | None:
    return catalog.claim_next(annotator, LEASE_S, overlap_share, skip=skip, now=at, reviewer=reviewer)


def test_the_queue_is_by_priority_then_id_and_two_annotators_never_share_a_clip(catalog):
    ids = add_clips(catalog, [0.5, 2.0, 0.5, 1.0])
    first = [claim(catalog, "ann"), claim(catalog, "bob", skip=()), claim(catalog, "ann", skip={ids[1]})]
    assert first == [ids[1], ids[3], ids[0]]
    assert claim(catalog, "bob", skip={ids[3]}) == ids[2]
    assert claim(catalog, "cat") is None  # every clip is held
    assert [c.annotator for c in catalog.claims_on(ids[1])] == ["ann"]


def test_annotators_claiming_at_once_get_disjoint_clips(catalog_url):
    setup = Catalog.open(catalog_url)
    ids = add_clips(setup, [float(i % 3) for i in range(24)])
    setup.close()

    def claim_all(annotator: str) -> list[str]:
        own = Catalog.open(catalog_url)  # one engine per annotator, as two app processes would have
        got: list[str] = []
        while (clip_id := claim(own, annotator, skip=got)) is not None:
            got.append(clip_id)
        own.close()
        return got

    with ThreadPoolExecutor(max_workers=4) as pool:
        shares = list(pool.map(claim_all, ["ann", "bob", "cat", "dan"]))
    claimed = [clip_id for share in shares for clip_id in share]
    assert sorted(claimed) == sorted(ids)  # every clip once, none twice


def test_an_open_claim_comes_back_to_its_holder_first(catalog):
    ids = add_clips(catalog, [1.0, 2.0])
    assert claim(catalog, "ann") == ids[1]
    assert claim(catalog, "ann") == ids[1]  # e.g. after a restart: the same clip again
    assert claim(catalog, "ann", skip={ids[1]}) == ids[0]  # the prefetched next one


def test_an_expired_lease_returns_the_clip_and_a_vote_keeps_it(catalog):
    ids = add_clips(catalog, [2.0, 1.0])
    assert claim(catalog, "ann") == ids[0]
    assert claim(catalog, "bob", at=T0 + timedelta(seconds=LEASE_S - 1)) == ids[1]
    later = T0 + timedelta(seconds=LEASE_S + 1)
    assert claim(catalog, "cat", at=later) == ids[0]  # ann's lease ran out unused
    assert [c.annotator for c in catalog.claims_on(ids[0])] == ["cat"]
    catalog.add_label(ids[1], "bob", ClipStatus.ACCEPTED)  # a vote closes bob's claim for good
    much_later = T0 + timedelta(days=30)
    assert claim(catalog, "dan", at=much_later) == ids[0]  # cat's lease ran out too; bob's vote stays
    assert claim(catalog, "eve", at=much_later) is None


def test_renewing_keeps_a_lease_alive_and_reports_lost_ones(catalog):
    ids = add_clips(catalog, [2.0, 1.0])
    assert claim(catalog, "ann") == ids[0] and claim(catalog, "ann", skip={ids[0]}) == ids[1]
    assert catalog.renew_claims("ann", [ids[0]], LEASE_S, now=T0 + timedelta(seconds=LEASE_S - 1)) == {ids[0]}
    later = T0 + timedelta(seconds=LEASE_S + 1)
    assert claim(catalog, "bob", at=later) == ids[1]  # ids[0] was renewed, ids[1] was not
    assert catalog.renew_claims("ann", ids, LEASE_S, now=later) == {ids[0]}
    assert catalog.renew_claims("ann", [], LEASE_S) == set()


def test_a_released_clip_goes_to_the_next_annotator(catalog):
    ids = add_clips(catalog, [1.0])
    assert claim(catalog, "ann") == ids[0]
    assert catalog.release_claim(ids[0], "ann") and not catalog.release_claim(ids[0], "ann")
    assert claim(catalog, "bob") == ids[0]


def test_overlap_clips_go_to_two_annotators_and_no_more(catalog):
    ids = add_clips(catalog, [1.0, 1.0])
    assert claim(catalog, "ann", overlap_share=1.0) == ids[0]
    catalog.add_label(ids[0], "ann", ClipStatus.ACCEPTED)
    assert catalog.get_clip(ids[0]).status is ClipStatus.ACCEPTED
    assert claim(catalog, "bob", overlap_share=1.0) == ids[0]  # decided, but its second slot is free
    assert claim(catalog, "cat", overlap_share=1.0) == ids[1]
    assert claim(catalog, "dan", overlap_share=1.0) == ids[1]
    assert claim(catalog, "eve", overlap_share=1.0) is None
    assert [(c.slot, c.annotator, c.done) for c in catalog.claims_on(ids[0])] == [(0, "ann", True), (1, "bob", False)]


def test_the_overlap_share_is_a_stable_hash_of_the_clip_id():
    clip_ids = [f"youtube:v{i}:{i * 60000:08d}" for i in range(2000)]
    two = [c for c in clip_ids if overlap_slots(c, 0.1) == 2]
    assert 150 < len(two) < 250  # about 10 %
    assert two == [c for c in clip_ids if overlap_slots(c, 0.1) == 2]
    assert set(two) <= {c for c in clip_ids if overlap_slots(c, 0.3) == 2}  # a larger share keeps them
    assert all(overlap_slots(c, 0.0) == 1 for c in clip_ids) and all(overlap_slots(c, 1.0) == 2 for c in clip_ids)


def test_undo_appends_an_event_and_gives_the_clip_back_to_its_annotator(catalog):
    ids = add_clips(catalog, [2.0, 1.0])
    assert claim(catalog, "ann") == ids[0]
    catalog.add_label(ids[0], "ann", ClipStatus.REJECTED, ["noise", "static"])
    assert claim(catalog, "ann") == ids[1]
    catalog.add_label(ids[0], "ann", ClipStatus.PENDING_REVIEW, lease_s=LEASE_S)
    assert [e.decision for e in catalog.label_events()] == ["rejected", "pending_review"]
    assert catalog.get_clip(ids[0]).status is ClipStatus.PENDING_REVIEW
    assert [(c.annotator, c.done) for c in catalog.claims_on(ids[0])] == [("ann", False)]
    undone_at = catalog.label_events()[-1].ts.replace(tzinfo=UTC)  # the undo renewed ann's lease from then
    assert claim(catalog, "bob", at=undone_at) is None
    assert claim(catalog, "ann", skip={ids[1]}) == ids[0]


def test_clips_decided_without_the_queue_and_retired_clips_are_not_offered(catalog):
    ids = add_clips(catalog, [3.0, 2.0, 1.0])
    catalog.auto_reject(ids[0], [])
    catalog.retire_clips("youtube:a", keep_clip_ids=ids[:2])
    assert claim(catalog, "ann") == ids[1]
    assert claim(catalog, "bob") is None


def test_a_version_3_catalog_gets_the_claims_table(catalog_url):
    first = Catalog.open(catalog_url)
    ids = add_clips(first, [1.0])
    first.close()
    engine = sa.create_engine(catalog_url)
    with engine.begin() as conn:
        tables.claims.drop(conn)
    engine.dispose()
    downgrade(catalog_url, 3, [])
    migrated = Catalog.open(catalog_url)
    assert migrated.schema_version() == catalog_module.SCHEMA_VERSION
    assert claim(migrated, "ann") == ids[0]
    migrated.close()


def test_a_reviewer_gets_the_disputed_clips_first_and_their_vote_settles_them(catalog):
    ids = add_clips(catalog, [4.0, 3.0, 2.0, 1.0])
    for annotator in ("ann", "bob"):  # both review ids[2] (two slots) and disagree on it
        assert claim(catalog, annotator, overlap_share=1.0, skip=ids[:2]) == ids[2]
    catalog.add_label(ids[2], "ann", ClipStatus.ACCEPTED)
    catalog.add_label(ids[2], "bob", ClipStatus.REJECTED, ["noise"], "hiss")
    catalog.add_label(ids[3], "ann", ClipStatus.ACCEPTED)  # outside the queue: a dispute without claims
    catalog.add_label(ids[3], "cat", ClipStatus.REJECTED, ["static"])
    assert catalog.get_clip(ids[2]).status is ClipStatus.PENDING_REVIEW
    assert catalog.open_disputes() == [ids[2], ids[3]]
    assert claim(catalog, "dan") == ids[0]  # an annotator's queue skips the disputes ...
    assert claim(catalog, "dan", skip=ids[:2]) is None  # ... even those with free slots
    assert claim(catalog, "rev", reviewer=True) == ids[2]  # a reviewer's starts with them
    assert claim(catalog, "rae", reviewer=True) == ids[3]  # one reviewer a dispute
    assert claim(catalog, "rae", reviewer=True, skip={ids[3]}) == ids[1]  # then the usual queue
    assert [(c.slot, c.annotator) for c in catalog.claims_on(ids[2])] == [(0, "ann"), (1, "bob"), (REVIEW_SLOT, "rev")]

    catalog.add_label(ids[2], "rev", ClipStatus.REJECTED, ["static"], role=Role.REVIEWER)
    assert catalog.get_clip(ids[2]).status is ClipStatus.REJECTED
    decision = catalog.decisions()[ids[2]]
    assert (decision.annotators, [r.value for r in decision.reasons]) == (("rev",), ["static"])
    assert catalog.label_events()[-1].role is Role.REVIEWER
    assert [(v.annotator, v.role) for v in catalog.clip_votes(ids[2])] == [
        ("ann", Role.ANNOTATOR),
        ("bob", Role.ANNOTATOR),
        ("rev", Role.REVIEWER),
    ]
    assert catalog.open_disputes() == [ids[3]]

    catalog.add_label(ids[2], "rev", ClipStatus.PENDING_REVIEW, lease_s=LEASE_S, role=Role.REVIEWER)  # an undo
    assert catalog.get_clip(ids[2]).status is ClipStatus.PENDING_REVIEW
    assert catalog.open_disputes() == [ids[2], ids[3]]
    assert claim(catalog, "rev", reviewer=True) == ids[2]  # the reopened claim is rev's again

    catalog.add_label(ids[3], "rae", ClipStatus.ACCEPTED, role=Role.REVIEWER)
    catalog.add_label(ids[3], "rev", ClipStatus.REJECTED, ["static"], role=Role.REVIEWER)
    assert catalog.get_clip(ids[3]).status is ClipStatus.PENDING_REVIEW  # reviewers tied: undecided,
    assert catalog.open_disputes() == [ids[2], ids[3]]  # and back in the reviewers' queue,
    assert claim(catalog, "rae", reviewer=True, skip={ids[2]}) != ids[3]  # not for those who ruled on it
    assert claim(catalog, "ray", reviewer=True) == ids[3]  # ids[2]'s review slot is rev's: a new reviewer
    assert [c.slot for c in catalog.claims_on(ids[3])] == [REVIEW_SLOT, REVIEW_SLOT + 1]  # takes the next one
    catalog.add_label(ids[3], "ray", ClipStatus.REJECTED, ["noise"], role=Role.REVIEWER)
    decision = catalog.decisions()[ids[3]]  # and breaks the tie: two of three reviewers reject
    assert (decision.status, decision.annotators) == (ClipStatus.REJECTED, ("ray", "rev"))
    assert [r.value for r in decision.reasons] == ["noise", "static"]
    assert catalog.open_disputes() == [ids[2]]


def test_a_version_4_catalog_keeps_its_label_events_as_annotator_votes(catalog_url):
    first = Catalog.open(catalog_url)
    ids = add_clips(first, [1.0])
    first.add_label(ids[0], "ann", ClipStatus.ACCEPTED)
    first.add_label(ids[0], "bob", ClipStatus.REJECTED, ["noise"])
    first.close()
    downgrade(catalog_url, 4, [])
    engine = sa.create_engine(catalog_url)
    with engine.connect() as conn:
        assert "role" not in {column["name"] for column in sa.inspect(conn).get_columns("labels")}
    engine.dispose()
    migrated = Catalog.open(catalog_url)
    assert migrated.schema_version() == catalog_module.SCHEMA_VERSION
    assert [(e.annotator, e.role) for e in migrated.label_events()] == [
        ("ann", Role.ANNOTATOR),
        ("bob", Role.ANNOTATOR),
    ]
    assert migrated.open_disputes() == ids
    migrated.add_label(ids[0], "rev", ClipStatus.ACCEPTED, role=Role.REVIEWER)
    assert migrated.get_clip(ids[0]).status is ClipStatus.ACCEPTED
    migrated.close()
