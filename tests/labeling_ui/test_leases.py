"""Every vote is checked against the catalog's claims (issue 17): a lease that ran out or went to
someone else, or another login's session, is refused and nothing is written. Handlers called
directly (no server, no browser); the browser attacks are in `test_browser_leases.py`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import gradio as gr
import pytest

from dvmset.catalog import Catalog
from dvmset.catalog.review import ClaimLost
from dvmset.records import ClipStatus, Role
from labeling_ui.app import AppSettings, LabelingApp
from labeling_ui.session import ReviewSettings, SessionState
from labeling_ui.users import User


def as_user(name: str):
    return type("Request", (), {"username": name})()


@pytest.fixture
def app(review_data):
    users = {name: User(name, Role.ANNOTATOR, "scrypt$unused") for name in ("ann", "bob")}
    catalog = Catalog.open(review_data.catalog_url)
    made = LabelingApp(
        AppSettings(
            review_data.data_root, review_data.catalog_url, ReviewSettings(lease_s=60.0, overlap_share=0.0), users=users
        ),
        catalog,
    )
    yield made
    catalog.close()


def test_a_vote_after_the_lease_went_to_another_annotator_is_refused_with_a_banner(app):
    ann = app.start(SessionState(), as_user("ann"))[0]
    after_the_lease = datetime.now(UTC) + timedelta(minutes=5)
    assert app.catalog.claim_next("bob", 60.0, 0.0, now=after_the_lease) == ann.current  # bob got ann's clip
    outputs = app.accept(ann, as_user("ann"))
    assert "NOT SAVED" in outputs[4] and "another annotator" in outputs[4]
    assert "dv-lease-lost" in outputs[7]  # the banner above the player
    assert app.catalog.label_events() == []  # nothing written
    assert "dv-lease-lost" in app.heartbeat(ann, as_user("ann"))
    assert [c.annotator for c in app.catalog.claims_on(ann.current)] == ["bob"]
    bob = app.start(SessionState(), as_user("bob"))[0]
    assert bob.current == ann.current and "accepted" in app.accept(bob, as_user("bob"))[4]
    assert [(e.annotator, e.clip_id) for e in app.catalog.label_events()] == [("bob", ann.current)]


def test_a_vote_after_the_lease_ran_out_unused_is_refused_too(review_data):
    catalog = Catalog.open(review_data.catalog_url)
    app = LabelingApp(
        AppSettings(review_data.data_root, review_data.catalog_url, ReviewSettings(lease_s=0.3, overlap_share=0.0)),
        catalog,
    )
    state = app.start(SessionState(), as_user("ann"))[0]
    time.sleep(0.5)  # no heartbeat: the lease runs out
    outputs = app.reject(state, ["noise"], "", as_user("ann"))
    assert "NOT SAVED" in outputs[4] and "ran out" in outputs[4] and "dv-lease-lost" in outputs[7]
    assert catalog.label_events() == []
    catalog.close()


def test_the_heartbeat_keeps_a_short_lease_alive(review_data):
    catalog = Catalog.open(review_data.catalog_url)
    app = LabelingApp(
        AppSettings(review_data.data_root, review_data.catalog_url, ReviewSettings(lease_s=0.6, overlap_share=0.0)),
        catalog,
    )
    state = app.start(SessionState(), as_user("ann"))[0]
    for _ in range(6):  # 1.2 s, twice the lease
        time.sleep(0.2)
        assert app.heartbeat(state, as_user("ann")) == ""
    assert catalog.claim_next("bob", 0.6, 0.0, skip={state.next}) not in (state.current, state.next)
    assert "accepted" in app.accept(state, as_user("ann"))[4]
    assert [e.annotator for e in catalog.label_events()] == ["ann"]
    assert app.heartbeat(state, as_user("ann")) == ""  # a late heartbeat of the voted screen: no false banner
    catalog.close()


def test_another_login_cannot_act_on_a_session_it_does_not_own(app):
    ann = app.start(SessionState(), as_user("ann"))[0]
    assert ann.annotator == "ann"
    for act in (
        lambda who: app.accept(ann, who),
        lambda who: app.reject(ann, ["noise"], "", who),
        lambda who: app.skip(ann, who),
        lambda who: app.start(ann, who),
    ):
        outputs = act(as_user("bob"))
        assert "another login" in outputs[4]
        assert [output for i, output in enumerate(outputs) if i != 4] == [gr.skip()] * 8  # ann's screen stays
    forged = SessionState(annotator="bob", current=ann.current)  # a state that names ann's clip
    assert "NOT SAVED" in app.accept(forged, as_user("bob"))[4]
    assert "NOT SAVED" in app.undo(SessionState(annotator="bob", history=(ann.current,)), as_user("bob"))[4]
    assert app.catalog.label_events() == []
    assert [c.annotator for c in app.catalog.claims_on(ann.current)] == ["ann"]
    assert "accepted" in app.accept(ann, as_user("ann"))[4]  # ann's own vote still lands


def test_the_catalog_checks_the_claim_in_the_vote_transaction(review_data):
    catalog = Catalog.open(review_data.catalog_url)
    clip = catalog.claim_next("ann", 60.0, 0.0)
    with pytest.raises(ClaimLost, match="not reserved for bob"):
        catalog.add_label(clip, "bob", ClipStatus.ACCEPTED, require_claim=True)
    with pytest.raises(ClaimLost, match="no vote"):
        catalog.add_label(clip, "ann", ClipStatus.PENDING_REVIEW, require_claim=True)
    assert catalog.label_events() == [] and catalog.get_clip(clip).status is ClipStatus.PENDING_REVIEW
    catalog.add_label(clip, "ann", ClipStatus.ACCEPTED, require_claim=True)
    with pytest.raises(ClaimLost):  # a second vote on a closed claim
        catalog.add_label(clip, "ann", ClipStatus.REJECTED, ["noise"], require_claim=True)
    catalog.add_label(clip, "ann", ClipStatus.PENDING_REVIEW, require_claim=True)  # her undo reopens it
    assert [e.decision for e in catalog.label_events()] == ["accepted", "pending_review"]
    catalog.close()
