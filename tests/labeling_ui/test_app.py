"""The app's handlers called directly (no server, no browser)."""

from __future__ import annotations

import gradio as gr

from dvmset.catalog import Catalog
from dvmset.records import ClipStatus
from labeling_ui.app import AppSettings, LabelingApp
from labeling_ui.session import SessionState


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
    assert [output for i, output in enumerate(outputs) if i != 4] == [gr.skip()] * 6  # the screen stays
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
