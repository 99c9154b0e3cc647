"""Fixtures of the labeling app's tests: clip media made once, a review catalog per test
(the builders are in `tests/support/review_data.py`), and headless Chromium for a module."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation.samples import VideoSpec, make_music, make_video
from tests.support.review_app import CHROMIUM
from tests.support.review_data import ReviewData, make_review_data


@pytest.fixture(scope="session")
def clip_media(tmp_path_factory) -> tuple[Path, Path]:
    """One short clip video and its music (with a silent gap), made once and linked into every clip."""
    folder = tmp_path_factory.mktemp("clip-media")
    video = make_video(folder / "video.mp4", VideoSpec(3.0, width=160, height=120, cut_every_s=1.0))
    music = make_music(folder / "music.flac", 3.0, gap_s=(1.0, 2.0))
    return video, music


@pytest.fixture
def review_data(tmp_path, clip_media) -> ReviewData:
    return make_review_data(tmp_path, clip_media)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless and free to autoplay, launched through Playwright for one test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--autoplay-policy=no-user-gesture-required"]
        )
        yield launched
        launched.close()
