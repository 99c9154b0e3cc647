"""The app's handlers called directly (no server, no browser)."""

from __future__ import annotations

import gradio as gr

from dvmset.catalog import Catalog
from dvmset.records import ClipStatus, Role
from labeling_ui.app import AppSettings, LabelingApp
from labeling_ui.session import ReviewSettings, SessionState
from labeling_ui.users import User
from tests.support.review_data import EVIL_TITLE


def test_a_decision_the_catalog_could_not_save_is_not_acknowledged(review_data, monkeypatch):
    catalog = Catalog.open(review_data.catalog_url)
    app = LabelingApp(AppSettings(review_data.data_root, review_data.catalog_url), catalog)
    request = type("Request", (), {"username": "ann"})()
    state = app.start(SessionState(), request)[0]

    def database_down(*args, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(catalog, "add_label", database_down)
    outputs = app.accept(state, request)
    assert "NOT SAVED" in outputs[4]
    assert [output for i, output in enumerate(outputs) if i != 4] == [gr.skip()] * 8  # the screen stays
    monkeypatch.undo()
    saved = app.accept(state, request)
    assert saved[0].current == state.next and "accepted" in saved[4]
    assert [e.decision for e in catalog.label_events()] == [ClipStatus.ACCEPTED.value]
    catalog.close()


def test_without_logins_everyone_is_the_default_annotator_and_sees_progress(review_data):
    catalog = Catalog.open(review_data.catalog_url)
    app = LabelingApp(AppSettings(review_data.data_root, review_data.catalog_url, default_annotator="solo"), catalog)
    anonymous = type("Request", (), {"username": None})()
    state = app.start(SessionState(), anonymous)[0]
    app.reject(state, ["noise"], "", anonymous)
    assert [(e.annotator, e.reasons) for e in catalog.label_events()] == [("solo", ("noise",))]
    assert "1 of 12 clips decided" in app.stats(anonymous)
    catalog.close()


def as_user(name: str):
    return type("Request", (), {"username": name})()


def test_a_reviewer_sees_the_disputed_votes_first_and_settles_the_dispute(review_data):
    users = {
        name: User(name, role, "scrypt$unused")
        for name, role in (("ann", Role.ANNOTATOR), ("bob", Role.ANNOTATOR), ("rev", Role.REVIEWER))
    }
    settings = AppSettings(
        review_data.data_root, review_data.catalog_url, ReviewSettings(overlap_share=0.0), users=users
    )
    catalog = Catalog.open(review_data.catalog_url)
    app = LabelingApp(settings, catalog)
    disputed = review_data.clip_ids[-1]
    catalog.add_label(disputed, "ann", ClipStatus.ACCEPTED)
    catalog.add_label(disputed, "bob", ClipStatus.REJECTED, ["other"], note=EVIL_TITLE)
    assert "disagreements: 1" in app.stats(as_user("rev"))

    annotator_screen = app.start(SessionState(), as_user("ann"))
    assert annotator_screen[0].current != disputed and "dv-votes" not in annotator_screen[3]  # no votes for annotators
    state, _, _, facts, *_ = app.start(SessionState(), as_user("rev"))
    assert state.current == disputed and "disputed" in facts
    assert "bob (annotator)" in facts and "ann (annotator)" in facts
    assert "<script>" not in facts and "&lt;script&gt;" in facts  # a note is shown as text

    settled = app.reject(state, ["mismatch"], "", as_user("rev"))
    assert settled[0].current != disputed and "rejected: video 2 (180-240 s, " in settled[4] and disputed in settled[4]
    assert catalog.get_clip(disputed).status is ClipStatus.REJECTED
    assert [(e.annotator, e.role) for e in catalog.label_events()][-1] == ("rev", Role.REVIEWER)
    assert "disagreements: 0" in app.stats(as_user("rev"))
    catalog.close()


def test_the_next_clips_timeline_is_measured_while_a_clip_is_on_screen(review_data):
    catalog = Catalog.open(review_data.catalog_url)
    app = LabelingApp(AppSettings(review_data.data_root, review_data.catalog_url), catalog)
    ids = review_data.clip_ids
    state, _, timeline, *_ = app.start(SessionState(), as_user("ann"))
    assert f'id="dv-timeline-pending" data-clip="{ids[0]}"' in timeline  # not measured yet: the page asks for it
    assert f'data-clip="{ids[0]}"' in app.timeline(state, as_user("ann"))  # the SVG, once measured
    assert app.timeline(state, as_user("bob")) == gr.skip()  # another login's screen: nothing
    app._prefetch.submit(lambda: None).result()  # the background work queued so far is done
    assert app.timelines.ready(app.media.path(catalog.get_clip(ids[1]).music_path))
    state, _, timeline, *_ = app.accept(state, as_user("ann"))
    assert state.current == ids[1] and 'id="dv-timeline-svg"' in timeline and f'data-clip="{ids[1]}"' in timeline
    catalog.close()
