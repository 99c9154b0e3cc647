"""The labeling app served on 127.0.0.1 (`start`) and driven in Debian's headless Chromium through Playwright:
a logged-in page (`log_in`), the clip on screen (`on_screen`), a key pressed until the status line says so."""

from __future__ import annotations

from pathlib import Path

from labeling_ui.app import AppSettings, serve
from tests.support.ports import free_port

CHROMIUM = Path("/usr/bin/chromium")


def start(settings: AppSettings) -> tuple[object, str]:
    """The app of `settings` served on a free port without blocking; returns (its Gradio blocks, its URL)."""
    port = free_port()
    return serve(settings, "127.0.0.1", port, block=False), f"http://127.0.0.1:{port}"


def log_in(browser, url: str, name: str, password: str):
    """A new page of `browser` at `url`, logged in as `name`."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.get_by_label("username").fill(name)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    return page


def on_screen(page) -> str:
    """The id of the clip the page's player shows, once there is one."""
    page.wait_for_selector("#dv-video", timeout=30_000)
    return page.get_attribute("#dv-video", "data-clip")


def press_and_wait(page, key: str, verb: str) -> None:
    """Press `key` and wait until the status line starts with `verb`."""
    page.keyboard.press(key)
    page.wait_for_function("v => document.querySelector('#dv-status-line')?.textContent.startsWith(v)", arg=verb)
