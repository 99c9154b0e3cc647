"""The timelines of clips' music measured once, ahead of time and across restarts (`Timelines`)."""

from __future__ import annotations

import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import labeling_ui.timeline as timeline_module
from labeling_ui.timeline import Timelines, measure


@pytest.fixture
def measured(monkeypatch) -> list[str]:
    """The files `measure` decoded, in order."""
    calls: list[str] = []

    def counted(path, silence_dbfs, *args):
        calls.append(path.name)
        return measure(path, silence_dbfs, *args)

    monkeypatch.setattr(timeline_module, "measure", counted)
    return calls


def test_a_timeline_measured_ahead_is_not_measured_again_even_after_a_restart(tmp_path, clip_media, measured):
    music = tmp_path / "a.flac"
    shutil.copyfile(clip_media[1], music)
    with ThreadPoolExecutor(max_workers=1) as workers:
        timelines = Timelines(tmp_path / "cache", -45.0, workers)
        assert not timelines.ready(music)
        timelines.ahead(music)
        workers.submit(lambda: None).result()  # the worker has run what was queued before
        assert timelines.ready(music)
        first = timelines.get(music)
        assert measured == ["a.flac"] and len(first.silent_runs_s) == 1
        restarted = Timelines(tmp_path / "cache", -45.0, workers)  # a new app on the same cache folder
        assert restarted.ready(music) and restarted.get(music) == first
        assert measured == ["a.flac"]
        os.utime(music, ns=(1, 1))  # the file changed: measured again
        assert not restarted.ready(music)
        restarted.get(music)
        assert measured == ["a.flac", "a.flac"]


def test_a_timeline_still_queued_behind_other_work_is_measured_by_the_caller(tmp_path, clip_media, measured):
    music = tmp_path / "b.flac"
    shutil.copyfile(clip_media[1], music)
    release = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as workers:
        workers.submit(release.wait)  # the only worker is busy
        timelines = Timelines(tmp_path / "cache", -45.0, workers)
        timelines.ahead(music)
        assert timelines.get(music).duration_s == pytest.approx(3.0, abs=0.05)  # did not wait for the worker
        release.set()
    assert measured == ["b.flac"]  # the queued measurement was called off


def test_an_unreadable_music_file_raises_and_is_tried_again(tmp_path, clip_media, measured):
    music = tmp_path / "c.flac"
    music.write_bytes(b"not a flac file")
    with ThreadPoolExecutor(max_workers=1) as workers:
        timelines = Timelines(tmp_path / "cache", -45.0, workers)
        with pytest.raises(RuntimeError):
            timelines.get(music)
        shutil.copyfile(clip_media[1], music)
        assert len(timelines.get(music).silent_runs_s) == 1
    assert measured == ["c.flac", "c.flac"]
