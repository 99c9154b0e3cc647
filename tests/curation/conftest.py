"""Fixtures of the publish tests (tests/curation/test_publish*.py), shared by their modules: the generated
media (`publish_media`: source videos, a re-encoded resized copy of one, one clip's files) and a workdir after
its first publish (`published`: `dvmset publish --version v0001` of FIRST and COPY). Both are made once for the
package's tests; a test that publishes again works on a copy of the workdir.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from curation.samples import VideoSpec, make_video
from dvmset.catalog import Catalog
from dvmset.config import load_config
from dvmset.tools import require_tool
from tests.support.publish_catalog import (
    CLIP_S,
    COPY,
    FIRST,
    LATER,
    MUSIC_RATE_HZ,
    REJECTED,
    SOURCE_S,
    UNDECIDED,
    add_video,
    run_cli,
)


@pytest.fixture(scope="package")
def publish_media(tmp_path_factory) -> Path:
    """Source videos, the copy, and one clip's files (every clip's files are copies of them)."""
    folder = tmp_path_factory.mktemp("publish_media")
    for seed, (name, _query, bpm, cut_s) in enumerate(FIRST + LATER, start=1):  # a picture of its own each
        spec = VideoSpec(SOURCE_S, width=160, height=120, bpm=bpm, cut_every_s=cut_s, pattern_seed=seed)
        make_video(folder / f"{name}.mp4", spec)
    subprocess.run(
        [
            require_tool("ffmpeg"),
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            folder / "a.mp4",
            "-vf",
            "scale=112:84",
            "-af",
            "volume=-3dB",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            "35",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            folder / f"{COPY}.mp4",
        ],
        check=True,
    )
    make_video(folder / "clip.mp4", VideoSpec(CLIP_S, width=64, height=48, audio="none"))
    tone = 0.1 * np.sin(2 * np.pi * 440 * np.arange(int(CLIP_S * MUSIC_RATE_HZ)) / MUSIC_RATE_HZ)
    sf.write(folder / "music.flac", np.stack([tone, tone], axis=1), MUSIC_RATE_HZ)
    return folder


@pytest.fixture(scope="package")
def published(tmp_path_factory, publish_media) -> Path:
    """A workdir (dvmset.toml + data/) after `dvmset publish --version v0001` of FIRST and COPY."""
    workdir = tmp_path_factory.mktemp("published")
    (workdir / "dvmset.toml").write_text('data_root = "data"\n[publish]\nseed = 3\n', encoding="utf-8")
    config = load_config(workdir / "dvmset.toml", environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    for name, query, _bpm, _cut in FIRST:
        add_video(catalog, config, publish_media, name, query, REJECTED.get(name, ()), name in UNDECIDED)
    add_video(catalog, config, publish_media, COPY, "city")
    catalog.close()
    code, output = run_cli("publish", "--config", workdir / "dvmset.toml", "--version", "v0001")
    assert code == 0, output
    assert "v0001" in output
    return workdir
