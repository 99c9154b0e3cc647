"""Fixtures of the manifest tests: a tiny test-pattern video that the published media copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.manifest_rows import CLIP_S, make_test_video


@pytest.fixture(scope="module")
def video_template(tmp_path_factory) -> Path:
    """A `CLIP_S` lavfi test pattern, made once per module."""
    return make_test_video(tmp_path_factory.mktemp("template") / "video.mp4", CLIP_S)
