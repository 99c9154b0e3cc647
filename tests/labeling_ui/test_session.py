"""The review session, media paths, the timeline and the progress page, without a browser."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from dvmset.catalog import Catalog
from dvmset.catalog.decisions import LabelEvent
from dvmset.records import ClipStatus, Role
from labeling_ui.media import FILE_ROUTE, MediaError, MediaRoot
from labeling_ui.session import DecisionError, ReviewSession, ReviewSettings, SessionState
from labeling_ui.stats import cohens_kappa, progress, stats_html
from labeling_ui.timeline import measure, timeline_svg


@pytest.fixture
def catalog(review_data):
    opened = Catalog.open(review_data.catalog_url)
    yield opened
    opened.close()


def test_a_session_shows_the_queue_in_order_with_the_next_clip_claimed(review_data, catalog):
    session = ReviewSession(catalog, ReviewSettings(overlap_share=0.0))
    ids = review_data.clip_ids
    state = session.fill(SessionState(), "ann")
    assert (state.current, state.next) == (ids[0], ids[1])
    state = session.decide(state, "ann", ClipStatus.ACCEPTED)
    state = session.decide(state, "ann", ClipStatus.REJECTED, ["static", "noise"])
    assert (state.current, state.next, state.history) == (ids[2], ids[3], (ids[0], ids[1]))
    events = catalog.label_events()
    assert [(e.clip_id, e.decision, e.reasons) for e in events] == [
        (ids[0], "accepted", ()),
        (ids[1], "rejected", ("noise", "static")),
    ]
    state = session.undo(state, "ann")
    assert (state.current, state.next, state.history) == (ids[1], ids[2], (ids[0],))
    assert catalog.label_events()[-1].decision == "pending_review"
    assert catalog.get_clip(ids[1]).status is ClipStatus.PENDING_REVIEW
    state = session.skip(state, "ann")
    assert (state.current, state.skipped) == (ids[2], (ids[1],))
    assert catalog.claims_on(ids[1]) == []  # skipped: back in the queue for the others


def test_two_annotators_at_once_never_see_the_same_clip(review_data, catalog):
    session = ReviewSession(catalog, ReviewSettings(overlap_share=0.0))
    ann, bob = session.fill(SessionState(), "ann"), session.fill(SessionState(), "bob")
    seen = {"ann": [ann.current, ann.next], "bob": [bob.current, bob.next]}
    while ann.current or bob.current:
        if ann.current:
            ann = session.decide(ann, "ann", ClipStatus.ACCEPTED)
            seen["ann"] += [ann.current, ann.next]
        if bob.current:
            bob = session.decide(bob, "bob", ClipStatus.REJECTED, ["mismatch"])
            seen["bob"] += [bob.current, bob.next]
    ann_clips, bob_clips = set(seen["ann"]) - {None}, set(seen["bob"]) - {None}
    assert not ann_clips & bob_clips
    assert ann_clips | bob_clips == set(review_data.clip_ids)
    assert len(catalog.label_events()) == len(review_data.clip_ids)


def test_a_restarted_session_resumes_the_clips_it_holds(review_data, catalog):
    first = ReviewSession(catalog).fill(SessionState(), "ann")
    again = ReviewSession(catalog).fill(SessionState(), "ann")
    assert {again.current, again.next} == {first.current, first.next}


def test_a_clip_whose_lease_ran_out_and_went_to_someone_else_leaves_the_screen(review_data, catalog):
    session = ReviewSession(catalog, ReviewSettings(lease_s=60.0, overlap_share=0.0))
    state = session.fill(SessionState(), "ann")
    after_the_lease = datetime.now(UTC) + timedelta(days=1)
    assert catalog.claim_next("bob", 60.0, 0.0, now=after_the_lease) == state.current
    again = session.fill(state, "ann")
    assert again.current == state.next and again.next not in (None, state.current)


@pytest.mark.parametrize(
    ("reasons", "note", "message"),
    [([], None, "at least one reason"), (["other"], "  ", "needs a note"), (["loud"], None, "unknown")],
)
def test_a_reject_without_a_proper_reason_is_refused_and_nothing_is_written(catalog, reasons, note, message):
    session = ReviewSession(catalog)
    state = session.fill(SessionState(), "ann")
    with pytest.raises(DecisionError, match=message):
        session.decide(state, "ann", ClipStatus.REJECTED, reasons, note)
    assert catalog.label_events() == []
    with pytest.raises(DecisionError, match="nothing to undo"):
        session.undo(state, "ann")
    assert session.decide(state, "ann", ClipStatus.REJECTED, ["other"], "a dog barks").history == (state.current,)
    assert catalog.label_events()[0].note == "a dog barks"


def test_only_clip_files_under_the_data_root_are_served(review_data, tmp_path):
    media = MediaRoot(review_data.data_root)
    clip = Catalog.open(review_data.catalog_url).get_clip(review_data.clip_ids[0])
    assert media.url(clip.video_path).startswith(FILE_ROUTE + str(media.clips_dir))
    for bad in ("../../etc/passwd", "/etc/passwd", "catalog.sqlite", "clips/missing.mp4"):
        with pytest.raises(MediaError):
            media.path(bad)
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    os.symlink(outside, review_data.data_root / "clips" / "link.mp4")
    with pytest.raises(MediaError, match="not under"):
        media.path("clips/link.mp4")  # a symlink out of the root is followed, then refused


def test_the_timeline_marks_the_silent_gap_and_the_scene_cuts(clip_media):
    timeline = measure(clip_media[1], silence_dbfs=-45.0)
    assert timeline.duration_s == pytest.approx(3.0, abs=0.05)
    assert len(timeline.silent_runs_s) == 1
    start_s, end_s = timeline.silent_runs_s[0]
    assert start_s == pytest.approx(1.0, abs=0.15) and end_s == pytest.approx(2.0, abs=0.15)
    svg = timeline_svg(timeline, [1.0, 2.0], ["non_music", "<b>"])
    assert svg.count('class="dv-silent"') == 1 and svg.count('class="dv-cut"') == 2
    assert "&lt;b&gt;" in svg and "<b>" not in svg


def test_a_reviewer_is_offered_the_disputed_clip_first_and_their_decision_settles_it(review_data, catalog):
    session = ReviewSession(catalog, ReviewSettings(overlap_share=0.0), role_of={"rev": Role.REVIEWER}.get)
    ids = review_data.clip_ids
    disputed = ids[-1]  # the last in the queue
    catalog.add_label(disputed, "ann", ClipStatus.ACCEPTED)
    catalog.add_label(disputed, "bob", ClipStatus.REJECTED, ["noise"], "hiss")
    assert progress(catalog.label_events()).disagreements == (disputed,)
    cat = session.fill(SessionState(), "cat")  # an annotator: the usual queue, never the dispute
    assert (cat.current, cat.next) == (ids[0], ids[1])
    rev = session.fill(SessionState(), "rev")
    assert (rev.current, rev.next) == (disputed, ids[2])  # the dispute first, then the usual queue
    rev = session.decide(rev, "rev", ClipStatus.REJECTED, ["static"])
    assert rev.current == ids[2]
    assert catalog.get_clip(disputed).status is ClipStatus.REJECTED
    assert catalog.decisions()[disputed].annotators == ("rev",)
    assert [(e.annotator, e.role) for e in catalog.label_events()][-1] == ("rev", Role.REVIEWER)
    assert progress(catalog.label_events()).disagreements == ()
    rev = session.undo(rev, "rev")  # the ruling withdrawn: the dispute is back, on rev's screen
    assert rev.current == disputed and catalog.get_clip(disputed).status is ClipStatus.PENDING_REVIEW
    assert progress(catalog.label_events()).disagreements == (disputed,)
    assert catalog.label_events()[-1].role is Role.REVIEWER


def _event(i: int, clip: str, who: str, decision: str, minute: float, role: Role = Role.ANNOTATOR) -> LabelEvent:
    ts = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(minutes=minute)
    return LabelEvent(i, clip, who, decision, (), None, ts, role)


def test_progress_counts_speed_and_agreement():
    events = [
        _event(1, "c1", "ann", "accepted", 0),
        _event(2, "c1", "bob", "accepted", 0.5),
        _event(3, "c2", "ann", "rejected", 1),
        _event(4, "c2", "bob", "accepted", 1.5),
        _event(5, "c3", "ann", "accepted", 2),
        _event(6, "c3", "ann", "pending_review", 2.5),
        _event(7, "c3", "ann", "rejected", 3),
        _event(8, "c3", "bob", "rejected", 3.5),
        _event(9, "c4", "prescreen", "rejected", 4),
    ]
    result = progress(events)
    ann, bob = result.annotators
    assert (ann.name, ann.accepted, ann.rejected, ann.undos) == ("ann", 1, 2, 1)
    assert (bob.name, bob.accepted, bob.rejected) == ("bob", 2, 1)
    assert ann.median_s_per_clip == 60.0 and bob.median_s_per_clip == 90.0
    assert result.overlap_clips == 3 and result.disagreements == ("c2",)
    assert result.kappa == pytest.approx(
        cohens_kappa([("accepted", "accepted"), ("rejected", "accepted"), ("rejected", "rejected")])
    )
    assert result.kappa == pytest.approx(0.4)  # p_o 2/3, p_e 4/9
    assert cohens_kappa([]) is None and cohens_kappa([("accepted", "accepted")]) is None
    page = stats_html(events, {ClipStatus.ACCEPTED: 2, ClipStatus.PENDING_REVIEW: 1, ClipStatus.REJECTED: 1})
    assert "3 of 4 clips decided" in page and "0.40" in page


def test_a_reviewers_ruling_ends_a_disagreement_and_is_not_a_rating_for_the_kappa():
    events = [
        _event(1, "c1", "ann", "accepted", 0),
        _event(2, "c1", "bob", "rejected", 1),
        _event(3, "c2", "ann", "accepted", 2),
        _event(4, "c2", "bob", "accepted", 3),
    ]
    before = progress(events)
    assert before.disagreements == ("c1",) and before.overlap_clips == 2 and before.kappa == pytest.approx(0.0)
    events += [
        _event(5, "c1", "rev", "rejected", 4, Role.REVIEWER),  # rev settles c1
        _event(6, "c3", "ann", "rejected", 5),
        _event(7, "c3", "rev", "accepted", 6, Role.REVIEWER),  # and overrules ann
    ]
    after = progress(events)
    assert after.disagreements == () and after.overlap_clips == 2 and after.kappa == before.kappa
    assert [(a.name, a.accepted, a.rejected) for a in after.annotators] == [("ann", 2, 1), ("bob", 1, 1), ("rev", 1, 1)]
    events.append(_event(8, "c1", "rev", "pending_review", 7, Role.REVIEWER))  # rev's undo
    page = stats_html(events, {ClipStatus.ACCEPTED: 2, ClipStatus.PENDING_REVIEW: 1})
    assert "disagreements: 1" in page and "<li>c1</li>" in page
