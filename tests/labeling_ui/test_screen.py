"""What the annotator sees beside the clip (issue 17, Build 5): who is logged in and a log-out
link, clips left and done today, each score beside its threshold with the ones past it in red."""

from __future__ import annotations

from dataclasses import replace

from dvmset.catalog import Catalog
from dvmset.records import Role
from labeling_ui.app import AppSettings, LabelingApp
from labeling_ui.session import ReviewSettings, SessionState
from labeling_ui.users import User
from labeling_ui.views import Thresholds, info_html


def as_user(name: str):
    return type("Request", (), {"username": name})()


def test_the_bar_says_who_is_logged_in_what_is_left_and_what_was_done_today(review_data):
    catalog = Catalog.open(review_data.catalog_url)
    users = {"ann": User("ann", Role.ANNOTATOR, "scrypt$unused")}
    app = LabelingApp(
        AppSettings(review_data.data_root, review_data.catalog_url, ReviewSettings(overlap_share=0.0), users=users),
        catalog,
    )
    state, *_, who = app.start(SessionState(), as_user("ann"))
    assert "logged in as <b>ann</b> (annotator)" in who and 'href="/logout"' in who
    assert '<span id="dv-left">12</span> clips left' in who and '<span id="dv-done-today">0</span> done today' in who
    state, *_, who = app.accept(state, as_user("ann"))
    assert '<span id="dv-left">11</span>' in who and '<span id="dv-done-today">1</span>' in who
    again = app.start(SessionState(), as_user("ann"))  # a reload: counted from the catalog
    assert again[0].decided == 1 and again[0].history == (review_data.clip_ids[0],)
    assert '<span id="dv-done-today">1</span>' in again[-1] and "dv-recent-vote" in again[4]
    solo = LabelingApp(AppSettings(review_data.data_root, review_data.catalog_url), catalog)
    assert "logout" not in solo.start(SessionState(), as_user(None))[-1]  # no logins: nothing to log out of
    catalog.close()


def test_each_score_is_shown_beside_its_threshold_and_the_ones_past_it_are_red(review_data):
    catalog = Catalog.open(review_data.catalog_url)
    clip = catalog.get_clip(review_data.clip_ids[0])
    noisy = replace(clip, prescreen=replace(clip.prescreen, noise_score=0.5))
    page = info_html(noisy, catalog.get_video(clip.video_id), Thresholds(max_noise_score=0.35, target_lufs=-14.0))
    assert "0.50 (flag over 0.35)" in page and 'class="dv-noise dv-over"' in page
    assert "1.0 s (flag over 5 s)" in page and 'class="dv-non-music"' in page  # under its limit: plain
    assert "-14.0 LUFS (target -14)" in page and 'class="dv-loudness"' in page
    assert 'class="dv-loudness dv-over"' in info_html(clip, None, Thresholds(target_lufs=-23.0))
    catalog.close()
