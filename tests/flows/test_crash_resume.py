"""Crash and resume: `dvmset build` SIGKILLed (with its whole process group, ffmpeg included) at
two points of a run, then run to its end, leaves what one uninterrupted build leaves.

The kill points are read from the catalog and the data root while the build runs: the first
video recorded `separated`, then (in the second run) the first clip file under its final name.
The runs report to the session's real Prefect server; they separate on the CPU, so they hold no
GPU slot (a SIGKILL in a separation on a GPU would hold that slot until its lease expires).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import soundfile as sf

from curation.probe import probe_media
from dvmset.config import load_config
from dvmset.records import VideoStatus
from dvmset.storage import MUSIC_FILE, DataRoot, is_temp_name
from tests.flows.processes import kill_group, process_group, run_checked, wait_until
from tests.support.flow_builds import LABEL, catalog_content, open_catalog, write_config

FINISHED = (VideoStatus.FAILED, VideoStatus.SKIPPED)


def first_separated(config_path: Path) -> Callable[[], bool]:
    """Whether a video is recorded `separated` (the catalog starts empty)."""

    def reached() -> bool:
        catalog = open_catalog(config_path)
        try:
            return any(video.status is VideoStatus.SEPARATED for video in catalog.videos())
        finally:
            catalog.close()

    return reached


def clip_files(config_path: Path) -> set[Path]:
    return set((config_path.parent / "data" / "clips").glob(f"*/{MUSIC_FILE}"))


def first_new_clip_file(config_path: Path) -> Callable[[], bool]:
    """Whether a clip file appeared under its final name since this was called."""
    before = clip_files(config_path)
    return lambda: bool(clip_files(config_path) - before)


def done_work(config_path: Path) -> dict[str, object]:
    """What the catalog says is done, keyed by what would change were it done again: the row of each
    failed or skipped video, and the modification time of each downloaded file, each separated
    video's stems and each saved clip's files."""
    data = DataRoot(config_path.parent / "data")
    catalog = open_catalog(config_path)
    done: dict[str, object] = {}
    files: list[Path] = []
    for video in catalog.videos():
        if video.status in FINISHED:
            done[video.video_id] = (video.status, video.stage_version, video.updated_at)
        if video.media_path is not None:
            files.append(data.resolve(video.media_path))
        if video.separate_version is not None:
            files += [path for path in data.stems_dir(video.video_id).iterdir() if not is_temp_name(path)]
    for clip in catalog.clips():
        files += [data.resolve(clip.music_path), data.resolve(clip.video_path)]
    catalog.close()
    return done | {data.relative(path): path.stat().st_mtime_ns for path in files}


def final_files(config_path: Path) -> set[str]:
    root = config_path.parent / "data"
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and not is_temp_name(path) and not path.name.startswith("catalog.sqlite")
    }


@pytest.mark.slow
def test_a_build_killed_twice_resumes_to_what_an_uninterrupted_build_makes(
    built, real_server, tmp_path, model_dir, media, url_list
):
    config_path = write_config(tmp_path / "run", model_dir)
    open_catalog(config_path).close()  # an empty catalog to poll from the start
    build = [
        sys.executable,
        "-m",
        "dvmset",
        "build",
        "--config",
        str(config_path),
        "--folder",
        str(media),
        "--urls",
        str(url_list),
        "--label",
        LABEL,
        "--workers",
        "2",
    ]
    done_at_kills = []
    for point, kill_point in (("a separated video", first_separated), ("a new clip file", first_new_clip_file)):
        reached = kill_point(config_path)
        with process_group(build, real_server.environ, tmp_path / "build.log") as running:
            wait_until(reached, point, 240, running)  # fails if the build ended first
            kill_group(running)
        done_at_kills.append(done_work(config_path))
    assert catalog_content(config_path) != catalog_content(built.config_path)  # work was left to do
    finished = run_checked(build, real_server.environ, 300, exit_code=1)  # the corpus's two failed videos remain
    assert "Failed videos in the catalog" in finished

    assert catalog_content(config_path) == catalog_content(built.config_path)  # ids, spans, statuses, versions
    assert final_files(config_path) == final_files(built.config_path)  # no stray file under a final name
    assert not [path for path in (config_path.parent / "data").rglob("*") if is_temp_name(path)]  # cleaned up
    done = done_work(config_path)
    for done_then in done_at_kills:
        assert {key: done[key] for key in done_then} == done_then  # nothing done before a kill was done again
    config = load_config(config_path)
    data = DataRoot(config.data_root)
    for clip in open_catalog(config_path).clips():  # whole files: they decode to the clip's length
        duration_s = clip.end_s - clip.start_s
        assert sf.info(str(data.resolve(clip.music_path))).duration == pytest.approx(duration_s, abs=0.05)
        assert probe_media(data.resolve(clip.video_path), config.probe).duration_s == pytest.approx(duration_s, abs=0.1)
