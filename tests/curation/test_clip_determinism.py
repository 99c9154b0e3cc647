"""cut_video gives the same bytes every run, also with several cuts at once sharing the CPU (as the clip step
makes them): x264's own lookahead thread, its default with frame threads, let MB-tree code a stretch of
frames differently with thread timing (bench/README.md, compare_builds.py).

The load is made here, not waited for: twelve cuts of one 480p span, six at once in threads of this process,
each ffmpeg with two threads (more threads than a 2-core runner's cores). With x264's threaded lookahead, 10
of 11 such runs on a 2-core machine gave 2 to 5 versions of the 12 files (the race is rare per frame, so this
test can miss it, never flag it falsely); nothing here depends on time.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from curation.clip import Span, cut_video
from curation.samples import VideoSpec, make_music, make_video
from dvmset.config import ClipConfig

FPS = 25
SOURCE = VideoSpec(17.0, width=854, height=480, bpm=100, cut_every_s=6.0)  # 480p: no scaling, many macroblocks
SPAN = Span(0.0, 16.0)  # a keyframe (frame 250) and a stretch of frames after it
CUTS = 12
AT_ONCE = 6
THREADS = 2  # frame threads: x264 would start its lookahead thread


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("clip_determinism")
    return make_video(folder / "source.mp4", SOURCE), make_music(folder / "music.flac", SOURCE.duration_s)


@pytest.mark.slow
def test_cuts_made_at_once_give_the_same_bytes(media, tmp_path):
    source, music = media
    settings = ClipConfig()  # the default x264 settings: superfast with MB-tree over 10 frames of lookahead

    def cut(index: int) -> str:
        out = tmp_path / f"clip{index}.mp4"
        cut_video(source, SPAN, music, out, settings, fps=FPS, threads=THREADS)
        return hashlib.sha256(out.read_bytes()).hexdigest()

    with ThreadPoolExecutor(AT_ONCE) as pool:
        digests = list(pool.map(cut, range(CUTS)))

    versions = {digest: digests.count(digest) for digest in digests}
    assert len(versions) == 1, f"{CUTS} cuts of one span came out in {len(versions)} versions: {versions}"
