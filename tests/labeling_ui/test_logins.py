"""Login throttling (issue 17): per name and per address a growing delay, then a lock, logged;
the password hash runs off the event loop, so others' requests stay fast meanwhile."""

from __future__ import annotations

import logging
import threading
import time

import httpx
import pytest

from labeling_ui.app import AppSettings
from labeling_ui.logins import LoginLocked, LoginThrottle, ThrottleSettings
from labeling_ui.session import ReviewSettings
from labeling_ui.users import Role, add_user, load_users
from tests.support.review_app import start
from tests.support.review_data import make_review_data

FAST = ThrottleSettings(base_delay_s=0.2, max_delay_s=1.0, lock_s=60.0)


def test_failures_grow_the_delay_then_lock_the_name_and_a_success_forgets_them():
    now = [0.0]
    throttle = LoginThrottle(ThrottleSettings(lock_s=300.0, window_s=900.0), clock=lambda: now[0])
    ann, cat = ("user:ann", "addr:10.0.0.1"), ("user:cat", "addr:10.0.0.1")
    delays = []
    for _ in range(5):
        delays.append(throttle.begin(ann))
        throttle.end(ann, ok=False)
    assert delays == [0.0, 0.0, 0.0, 0.5, 1.0]  # three free, then growing
    with pytest.raises(LoginLocked):
        throttle.begin(ann)  # the 6th attempt: locked, right password or not
    assert throttle.begin(cat) == 2.0  # another name from the same address: the address has 5 failures, it waits
    throttle.end(cat, ok=True)
    now[0] += 301.0  # the lock ran out (the failures are still in the window)
    with pytest.raises(LoginLocked):
        throttle.begin(ann)  # still 5 recent failures: locked again at once
    now[0] += 900.0  # the failures left the window
    assert throttle.begin(ann) == 0.0
    throttle.end(ann, ok=True)
    assert throttle.begin(ann) == 0.0  # a success forgets the name's failures


def test_parallel_guesses_count_while_in_flight():
    throttle = LoginThrottle(ThrottleSettings(lock_after=5))
    keys = ("user:ann", "addr:x")
    for _ in range(5):
        throttle.begin(keys)  # five in flight, none answered yet
    with pytest.raises(LoginLocked):
        throttle.begin(keys)


@pytest.fixture
def served(tmp_path, clip_media):
    made = make_review_data(tmp_path, clip_media, videos=1, clips_per_video=2)
    for name in ("ann", "cat"):
        add_user(tmp_path / "users.toml", name, Role.ANNOTATOR, f"pw-{name}")
    settings = AppSettings(
        made.data_root,
        made.catalog_url,
        ReviewSettings(overlap_share=0.0),
        users=load_users(tmp_path / "users.toml"),
        throttle=FAST,
    )
    blocks, url = start(settings)
    yield blocks, url
    blocks.close()


def log_in(client: httpx.Client, url: str, name: str, password: str) -> httpx.Response:
    return client.post(f"{url}/login", data={"username": name, "password": password})


def test_the_sixth_wrong_password_is_locked_and_logged_and_others_still_log_in(served, caplog):
    _, url = served
    caplog.set_level(logging.WARNING, logger="labeling_ui.logins")
    with httpx.Client(timeout=30) as client:
        waited = []
        for _ in range(5):
            begun = time.monotonic()
            assert log_in(client, url, "ann", "wrong").status_code == 400
            waited.append(time.monotonic() - begun)
        assert waited[3] >= FAST.base_delay_s and waited[4] >= 2 * FAST.base_delay_s  # the 4th and 5th waited
        locked = log_in(client, url, "ann", "pw-ann")  # the right password, too late
        assert locked.status_code == 429 and "try again" in locked.text
        assert log_in(client, url, "cat", "pw-cat").status_code == 200  # another name is not locked
    messages = [record.getMessage() for record in caplog.records]
    assert sum("wrong password for 'ann'" in m for m in messages) == 5
    assert any("login locked" in m and "user:ann" in m for m in messages)


def test_others_requests_are_answered_while_wrong_logins_are_hashed(served):
    blocks, url = served
    login = blocks.auth.__self__  # the app's ThrottledLogin
    real = login.authenticator

    def slow_hash(name: str, password: str) -> bool:  # a blocking hash, much slower than scrypt
        time.sleep(1.0)
        return real(name, password)

    login.authenticator = slow_hash
    cat = httpx.Client(timeout=30)
    assert log_in(cat, url, "cat", "pw-cat").status_code == 200
    finished: dict[str, list[float]] = {"login": [], "other": []}

    def wrong_login(i: int) -> None:
        with httpx.Client(timeout=60) as client:
            assert log_in(client, url, f"guess{i}", "wrong").status_code == 400
        finished["login"].append(time.monotonic())

    guesses = [threading.Thread(target=wrong_login, args=(i,)) for i in range(8)]
    for thread in guesses:
        thread.start()
    time.sleep(0.2)  # the hashes are running
    for _ in range(10):
        assert cat.get(f"{url}/config").status_code == 200
        finished["other"].append(time.monotonic())
    for thread in guesses:
        thread.join()
    cat.close()
    assert len(finished["login"]) == 8
    assert max(finished["other"]) < sorted(finished["login"])[1]  # all ten answered before the 2nd guess was
