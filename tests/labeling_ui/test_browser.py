"""The labeling app in Debian's headless Chromium (Playwright): one app for the module."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import quote, unquote

import pytest

from dvmset.catalog import Catalog
from dvmset.ids import id_to_dirname
from labeling_ui.app import AppSettings
from labeling_ui.session import ReviewSettings
from labeling_ui.users import Role, add_user, load_users
from tests.support.review_app import CHROMIUM, log_in, on_screen, press_and_wait, start
from tests.support.review_data import EVIL_TITLE, STAND_IN, make_review_data, mark_stand_in

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make system-deps)")
PASSWORDS = {"ann": "pw-ann", "bob": "pw-bob"}


@pytest.fixture(scope="module")
def data(tmp_path_factory, clip_media):
    root = tmp_path_factory.mktemp("review")
    made = make_review_data(root, clip_media)
    add_user(root / "users.toml", "ann", Role.ANNOTATOR, PASSWORDS["ann"])
    add_user(root / "users.toml", "bob", Role.REVIEWER, PASSWORDS["bob"])
    return made, AppSettings(
        made.data_root, made.catalog_url, ReviewSettings(overlap_share=0.0), users=load_users(root / "users.toml")
    )


@pytest.fixture(scope="module")
def app(data):
    blocks, url = start(data[1])
    yield url
    blocks.close()


def test_a_wrong_password_is_refused(browser, app):
    page = log_in(browser, app, "ann", "not-her-password")
    page.get_by_text("Incorrect Credentials").wait_for(timeout=10_000)
    assert page.locator("#dv-video").count() == 0
    page.close()


def test_keyboard_review_undo_and_a_restart_keep_every_event(browser, app, data):
    made, settings = data
    ids = made.clip_ids
    page = log_in(browser, app, "ann", PASSWORDS["ann"])
    assert on_screen(page) == ids[0]
    prefetched = unquote(page.locator("#dv-prefetch-pool video").get_attribute("src"))
    assert prefetched.endswith(f"/{id_to_dirname(ids[1])}/video.mp4")  # the next clip is loading already
    page.evaluate("document.getElementById('dv-video').play()")
    page.keyboard.press(" ")
    assert page.evaluate("document.getElementById('dv-video').paused")  # space: play / pause
    assert page.locator("#dv-reasons input:checked").count() == 1  # the prescreen's flag (non_music), pre-ticked
    page.keyboard.press("1")  # untick it
    press_and_wait(page, "r", "not done: pick at least one reason")  # no reason ticked: nothing written
    assert on_screen(page) == ids[0]
    press_and_wait(page, "a", "accepted")
    assert on_screen(page) == ids[1]
    page.keyboard.press("3")  # non_music is pre-ticked: add static
    assert page.locator("#dv-reasons input:checked").count() == 2
    press_and_wait(page, "r", "rejected")
    assert on_screen(page) == ids[2] and page.locator("#dv-reasons input:checked").count() == 1  # its own flag
    assert not page.get_by_text("more than 5 s of non-music").is_visible()
    page.keyboard.press("?")
    page.get_by_text("more than 5 s of non-music").wait_for()  # the guidelines, opened with ?
    press_and_wait(page, "u", "undone")
    assert on_screen(page) == ids[1]
    page.get_by_role("tab", name="Progress").click()
    page.get_by_text("The progress page is for reviewers.").wait_for()  # ann is an annotator
    page.close()
    expected = [
        (ids[0], "ann", "accepted", ()),
        (ids[1], "ann", "rejected", ("non_music", "static")),
        (ids[1], "ann", "pending_review", ()),
    ]
    restarted, url = start(settings)  # a second app on the same catalog, as after a restart
    try:
        catalog = Catalog.open(made.catalog_url)
        assert [(e.clip_id, e.annotator, e.decision, e.reasons) for e in catalog.label_events()] == expected
        catalog.close()
        again = log_in(browser, url, "ann", PASSWORDS["ann"])
        assert on_screen(again) == ids[1]  # the undone clip is hers again
        again.close()
    finally:
        restarted.close()


def test_an_html_title_is_shown_as_text_and_runs_nothing(browser, app, data):
    page = log_in(browser, app, "bob", PASSWORDS["bob"])
    clip_id = on_screen(page)
    assert clip_id.startswith("youtube:vid0:")  # bob's first clip is from the video with the evil title
    catalog = Catalog.open(data[0].catalog_url)
    assert [c.annotator for c in catalog.claims_on(clip_id)] == ["bob"]  # not one ann holds
    catalog.close()
    assert page.locator("#dv-info .dv-title").text_content() == EVIL_TITLE
    assert page.locator("#dv-info img, #dv-info script, #dv-info b").count() == 0
    assert page.evaluate("window.__pwned") is None
    page.get_by_role("tab", name="Progress").click()
    page.locator("#dv-kappa").wait_for()  # bob is a reviewer
    page.close()


def test_files_outside_the_clips_folder_are_refused(browser, app, data):
    made, _ = data
    clip_file = made.data_root / "clips"
    clip_file = next(clip_file.rglob("video.mp4"))
    shutil.copyfile(clip_file, made.data_root / "outside.mp4")
    page = log_in(browser, app, "ann", PASSWORDS["ann"])
    on_screen(page)

    def status(path: Path | str, request=page.request) -> int:
        return request.get(f"{app}/gradio_api/file={quote(str(path))}").status

    assert status(clip_file) == 200
    for refused in (
        "/etc/passwd",
        made.data_root / "catalog.sqlite",
        made.data_root / "outside.mp4",
        f"{made.data_root}/clips/../catalog.sqlite",
        made.data_root.parent / "users.toml",
    ):
        assert status(refused) == 403, refused
    assert status(clip_file, browser.new_context().request) == 401  # not logged in
    page.close()


def test_a_stand_in_clip_shows_a_red_banner_above_the_player_and_a_real_one_none(browser, tmp_path, clip_media):
    made = make_review_data(tmp_path, clip_media, videos=2, clips_per_video=1)
    mark_stand_in(made.catalog_url, "youtube:vid0")  # the first clip of the queue: made by a stand-in
    blocks, url = start(AppSettings(made.data_root, made.catalog_url, ReviewSettings(overlap_share=0.0)))  # no login
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        assert on_screen(page) == made.clip_ids[0]
        banner = page.locator("#dv-stand-in")
        assert banner.is_visible()
        text = banner.text_content()
        assert STAND_IN.model_id in text and "stand-in separator with random weights" in text
        assert banner.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(220, 38, 38)"  # red
        assert banner.bounding_box()["y"] < page.locator("#dv-video").bounding_box()["y"]  # above the player
        press_and_wait(page, "a", "accepted")
        assert on_screen(page) == made.clip_ids[1]  # a clip of a real separator: no banner
        assert page.locator("#dv-stand-in").count() == 0
        page.close()
    finally:
        blocks.close()


def test_the_next_clip_loads_while_one_plays_and_a_key_puts_that_very_element_on_screen(browser, tmp_path, clip_media):
    made = make_review_data(tmp_path, clip_media, videos=1, clips_per_video=3)
    ids = made.clip_ids
    blocks, url = start(AppSettings(made.data_root, made.catalog_url, ReviewSettings(overlap_share=0.0)))  # no login
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        requested: list[str] = []
        page.on("request", lambda request: requested.append(unquote(request.url)))
        page.goto(url)
        assert on_screen(page) == ids[0]
        shows_its_timeline = "c => document.getElementById('dv-timeline-svg')?.dataset.clip === c"
        page.wait_for_function(shows_its_timeline, arg=ids[0])
        page.wait_for_function("document.querySelector('#dv-prefetch-pool video')?.readyState >= 3")  # buffered
        assert any(url.endswith(f"/{id_to_dirname(ids[1])}/video.mp4") for url in requested)  # before any key
        page.evaluate("document.querySelector('#dv-prefetch-pool video').dataset.mark = 'prefetched'")
        page.keyboard.press("a")
        page.wait_for_function("c => document.getElementById('dv-video')?.dataset.clip === c", arg=ids[1])
        assert page.get_attribute("#dv-video", "data-mark") == "prefetched"  # the buffered element, moved
        assert page.evaluate("document.getElementById('dv-video').readyState") >= 3
        page.wait_for_function(shows_its_timeline, arg=ids[1])
        page.wait_for_function("document.querySelector('#dv-status-line')?.textContent.startsWith('accepted')")
        pool = unquote(page.locator("#dv-prefetch-pool video").get_attribute("src"))
        assert pool.endswith(f"/{id_to_dirname(ids[2])}/video.mp4")  # and the clip after it loads now
        page.close()
    finally:
        blocks.close()
