"""The two lease attacks of issue 17 and the heartbeat, in Debian's headless Chromium against a
served app with 2 s leases: a vote is checked on the server against the claims table, and the
voter is the logged-in user of the request, never a session the browser names."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from dvmset.catalog import Catalog
from dvmset.ids import id_to_dirname
from labeling_ui.app import AppSettings, serve
from labeling_ui.session import ReviewSettings
from labeling_ui.users import Role, add_user, load_users
from tests.support.review_app import CHROMIUM, log_in, on_screen, press_and_wait, start
from tests.support.review_data import make_review_data

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make system-deps)")
LEASE_S = 2.0
PASSWORDS = {"ann": "pw-ann", "cat": "pw-cat"}
SET_VISIBILITY = """state => {
  Object.defineProperty(document, "visibilityState", {configurable: true, get: () => state});
  document.dispatchEvent(new Event("visibilitychange"));
}"""


class Made:
    def __init__(self, **fields):
        self.__dict__.update(fields)


@pytest.fixture
def served(tmp_path, clip_media):
    made = Made(**vars(make_review_data(tmp_path, clip_media, videos=2, clips_per_video=3)))
    for name, password in PASSWORDS.items():
        add_user(tmp_path / "users.toml", name, Role.ANNOTATOR, password)
    settings = AppSettings(
        made.data_root,
        made.catalog_url,
        ReviewSettings(lease_s=LEASE_S, overlap_share=0.0),
        users=load_users(tmp_path / "users.toml"),
    )
    blocks, url = start(settings)
    catalog = Catalog.open(made.catalog_url)
    made.settings = settings  # for a restart on the same port
    yield made, blocks, url, catalog
    catalog.close()
    blocks.close()


def test_the_heartbeat_keeps_the_lease_and_a_lost_lease_shows_a_banner_and_refuses_the_vote(browser, served):
    made, _, url, catalog = served
    ann = log_in(browser, url, "ann", PASSWORDS["ann"])
    clip = on_screen(ann)
    time.sleep(3 * LEASE_S)  # idle, tab visible: the heartbeat renews the lease
    assert [c.annotator for c in catalog.claims_on(clip)] == ["ann"]
    assert catalog.claim_next("probe", LEASE_S, 0.0) not in (clip, made.clip_ids[1])  # nobody else can take it
    assert ann.locator("#dv-lease-lost").count() == 0
    ann.evaluate(SET_VISIBILITY, "hidden")  # the tab in the background: no heartbeat
    time.sleep(LEASE_S + 1.0)
    cat = log_in(browser, url, "cat", PASSWORDS["cat"])
    assert on_screen(cat) == clip  # attack (a): the lapsed clip goes to cat
    ann.evaluate(SET_VISIBILITY, "visible")  # back: the heartbeat at once finds the lease lost
    ann.locator("#dv-lease-lost").wait_for(timeout=10_000)
    assert "no longer reserved for you" in ann.locator("#dv-lease-lost").text_content()
    press_and_wait(ann, "a", "NOT SAVED")
    assert [e.annotator for e in catalog.label_events()] == []  # nothing written
    press_and_wait(cat, "a", "accepted")  # the holder's vote lands
    assert [(e.clip_id, e.annotator) for e in catalog.label_events()] == [(clip, "cat")]
    press_and_wait(ann, "s", "skipped")  # ann moves on; the banner goes
    assert ann.locator("#dv-lease-lost").count() == 0 and on_screen(ann) not in (None, clip)
    ann.close()
    cat.close()


def test_a_login_posting_another_logins_session_hash_cannot_vote_on_its_clip(browser, served):
    made, blocks, url, catalog = served
    hashes: list[str] = []
    ann = browser.new_page()
    ann.on(
        "request",
        lambda r: (
            r.method == "POST"
            and "session_hash" in (r.post_data or "")
            and hashes.append(json.loads(r.post_data)["session_hash"])
        ),
    )
    ann.goto(url)
    ann.get_by_label("username").fill("ann")
    ann.get_by_label("password").fill(PASSWORDS["ann"])
    ann.get_by_role("button", name="Login").click()
    clip = on_screen(ann)
    assert hashes
    cat = log_in(browser, url, "cat", PASSWORDS["cat"])
    assert on_screen(cat) != clip
    accept = next((i, f) for i, f in blocks.fns.items() if f.name == "accept")
    body = {"data": [None], "fn_index": accept[0], "trigger_id": accept[1].targets[0][0], "session_hash": hashes[0]}
    answer = cat.request.post(f"{url}/gradio_api/run/predict", data=body)  # attack (b), with cat's own cookie
    assert answer.ok, answer.text()
    assert "another login" in json.dumps(answer.json())  # refused, said in the status line
    assert catalog.label_events() == [] and [c.annotator for c in catalog.claims_on(clip)] == ["ann"]
    anonymous = browser.new_context().request.post(f"{url}/gradio_api/run/predict", data=body)
    assert anonymous.status in (401, 403) and catalog.label_events() == []  # no cookie: no vote at all
    press_and_wait(ann, "a", "accepted")  # ann's own screen is untouched and her vote lands
    assert [(e.clip_id, e.annotator) for e in catalog.label_events()] == [(clip, "ann")]
    ann.close()
    cat.close()


def test_a_restart_says_so_in_a_banner_and_a_new_login_returns_to_the_same_place(browser, served):
    made, blocks, url, catalog = served
    ann = log_in(browser, url, "ann", PASSWORDS["ann"])
    first = on_screen(ann)
    press_and_wait(ann, "a", "accepted")
    second = on_screen(ann)
    assert "1 decided today" in ann.locator("#dv-status").text_content()
    assert ann.locator("#dv-recent .dv-recent-vote").first.get_attribute("data-clip") == first
    blocks.close()  # the server goes down
    ann.locator("#dv-conn[data-kind=connection]").wait_for(timeout=15_000)  # the heartbeat cannot reach it
    assert "Connection lost" in ann.locator("#dv-conn").text_content()
    restarted = serve(made.settings, "127.0.0.1", int(url.rsplit(":", 1)[1]), block=False)  # back, same port
    try:
        # Gradio reloads the page when it sees a new server (the login page: its login is gone),
        # or, if a key is pressed first, the call gets a 401 and the banner offers the reload.
        ann.locator("#dv-conn[data-kind=session], input[type=password]").first.wait_for(timeout=30_000)
        if ann.locator("#dv-login-again").count():
            ann.locator("#dv-login-again").click()
        assert [(e.clip_id, e.decision) for e in catalog.label_events()] == [(first, "accepted")]
        log_in_here(ann, "ann")
        assert on_screen(ann) == second  # the same place
        assert ann.locator("#dv-conn").count() == 0
        assert "1 decided today" in ann.locator("#dv-status").text_content()  # counted from the catalog
        assert ann.locator("#dv-recent .dv-recent-vote").first.get_attribute("data-clip") == first
        press_and_wait(ann, "u", "undone")  # the undo history survived the restart and the reload
        assert on_screen(ann) == first
        assert [e.decision for e in catalog.label_events()] == ["accepted", "pending_review"]
        ann.close()
    finally:
        restarted.close()


def log_in_here(page, name: str) -> None:
    page.get_by_label("username").fill(name)
    page.get_by_label("password").fill(PASSWORDS[name])
    page.get_by_role("button", name="Login").click()


def test_a_key_pressed_after_the_login_ended_says_not_saved_and_a_new_login_returns_to_the_clip(browser, served):
    made, _, url, catalog = served
    ann = log_in(browser, url, "ann", PASSWORDS["ann"])
    clip = on_screen(ann)
    assert ann.request.get(f"{url}/logout", max_redirects=0).status == 302  # every login of ann ends (another tab)
    ann.keyboard.press("a")
    banner = ann.locator("#dv-conn[data-kind=session]")
    banner.wait_for(timeout=10_000)
    assert "NOT saved" in banner.text_content() and catalog.label_events() == []
    ann.locator("#dv-login-again").click()
    log_in_here(ann, "ann")
    assert on_screen(ann) == clip and ann.locator("#dv-conn").count() == 0
    press_and_wait(ann, "a", "accepted")
    assert [(e.clip_id, e.annotator) for e in catalog.label_events()] == [(clip, "ann")]
    ann.close()


def test_a_recent_decision_can_be_changed_from_the_list(browser, served):
    made, _, url, catalog = served
    ann = log_in(browser, url, "ann", PASSWORDS["ann"])
    first = on_screen(ann)
    press_and_wait(ann, "a", "accepted")
    second = on_screen(ann)
    press_and_wait(ann, "a", "accepted")  # the status line said "accepted" already: wait for the second vote
    ann.locator("#dv-recent .dv-recent-vote").nth(1).wait_for()
    third = on_screen(ann)
    assert ann.locator("#dv-recent .dv-recent-vote").count() == 2 and third not in (first, second)
    ann.locator(f'#dv-recent .dv-change-vote[data-clip="{first}"]').click()  # the older one, not the last
    ann.wait_for_function("() => document.querySelector('#dv-status-line')?.textContent.startsWith('reopened')")
    assert on_screen(ann) == first
    press_and_wait(ann, "r", "rejected")  # its flag is pre-ticked: rejected for non_music
    assert on_screen(ann) == third
    assert [(e.clip_id, e.decision, e.reasons) for e in catalog.label_events()] == [
        (first, "accepted", ()),
        (second, "accepted", ()),
        (first, "pending_review", ()),
        (first, "rejected", ("non_music",)),
    ]
    assert "logged in as ann" in ann.locator("#dv-who").text_content()
    ann.locator("#dv-logout").click()  # log out: back to the login form
    ann.get_by_label("username").wait_for()
    ann.close()


def test_o_switches_to_the_sources_own_audio_at_the_same_playhead_and_back(browser, served, clip_media):
    from labeling_ui.original import OriginalAudio

    made, _, url, catalog = served
    source = made.data_root / catalog.get_video("youtube:vid0").media_path  # the first video's download
    source.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(clip_media[0], source)
    original = OriginalAudio(made.data_root)
    assert original.url(catalog.get_clip(made.clip_ids[0]), catalog.get_video("youtube:vid1")) is None  # no source
    ann = log_in(browser, url, "ann", PASSWORDS["ann"])
    clip = on_screen(ann)
    assert clip.startswith("youtube:vid0:")
    deadline = time.monotonic() + 30
    while not original.path(clip).is_file() and time.monotonic() < deadline:
        time.sleep(0.1)  # cut in the background while the clip plays
    ann.wait_for_function("document.getElementById('dv-video').readyState >= 1")
    ann.evaluate("() => { const v = document.getElementById('dv-video'); v.pause(); v.currentTime = 1.5; }")
    ann.keyboard.press("o")
    ann.wait_for_function("document.getElementById('dv-original')?.readyState >= 1")
    heard = ann.evaluate("""() => {
        const v = document.getElementById('dv-video'), a = document.getElementById('dv-original');
        return {src: decodeURIComponent(a.src), at: a.currentTime, video_at: v.currentTime, muted: v.muted}; }""")
    assert heard["src"].endswith(f"/labeling-cache/original/{id_to_dirname(clip)}.m4a") and heard["muted"]
    assert abs(heard["at"] - heard["video_at"]) < 0.3 and abs(heard["at"] - 1.5) < 0.3  # the same playhead
    assert "ORIGINAL" in ann.locator("#dv-audio-mode").text_content()
    ann.keyboard.press("o")  # back to the processed music
    assert ann.evaluate(
        "() => !document.getElementById('dv-video').muted && document.getElementById('dv-original').paused"
    )
    assert "processed" in ann.locator("#dv-audio-mode").text_content()
    ann.close()
