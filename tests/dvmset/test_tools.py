"""`stream_tool`: a tool's output read while it runs, its failures and timeouts as `StageError`s; the
video durations ffprobe reads, and their errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dvmset.errors import ReasonCode, StageError
from dvmset.tools import stream_tool, video_duration_s, video_packets_duration_s


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_stream_tool_returns_what_the_reader_read_and_drains_the_rest():
    writes = "import sys; sys.stdout.buffer.write(b'x' * 1_000_000)"
    assert stream_tool(_python(writes), 60, ReasonCode.DECODE_ERROR, "writing", lambda out: out.read(10)) == b"x" * 10


def test_stream_tool_failures_and_timeouts_are_stage_errors():
    fails = "import sys; print('bad input', file=sys.stderr); sys.exit(3)"
    with pytest.raises(StageError, match="reading: python.* exited with 3: bad input") as caught:
        stream_tool(_python(fails), 60, ReasonCode.DECODE_ERROR, "reading", lambda out: out.read())
    assert caught.value.reason is ReasonCode.DECODE_ERROR
    sleeps = "import time; time.sleep(60)"
    with pytest.raises(StageError, match="did not finish in 0.5 s"):
        stream_tool(_python(sleeps), 0.5, ReasonCode.DECODE_ERROR, "waiting", lambda out: out.read())
    hangs_after_its_output = "import sys, time; sys.stdout.close(); time.sleep(60)"
    with pytest.raises(StageError, match="did not finish in 0.5 s"):
        stream_tool(_python(hangs_after_its_output), 0.5, ReasonCode.DECODE_ERROR, "waiting", lambda out: out.read())


def _ffmpeg(path, *args: str):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", *args, str(path)], check=True)
    return path


def test_video_durations_from_the_stream_and_from_its_packets(tmp_path):
    video = _ffmpeg(
        tmp_path / "youtube:a.mkv",
        "-i",
        "testsrc2=size=64x36:rate=25:duration=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
    )
    assert video_duration_s(video) == pytest.approx(2.0, abs=0.05)  # Matroska: the container's duration
    assert video_packets_duration_s(video) == pytest.approx(2.0, abs=1e-6)  # 50 frames of 40 ms


def test_video_durations_say_what_is_wrong(tmp_path):
    sound = _ffmpeg(tmp_path / "sound.m4a", "-i", "sine=duration=1", "-c:a", "aac")
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n" * 20, encoding="utf-8")
    cases = [
        (video_duration_s, tmp_path / "missing.mp4", ReasonCode.SOURCE_NOT_FOUND),
        (video_duration_s, sound, ReasonCode.NO_VIDEO_STREAM),
        (video_duration_s, notes, ReasonCode.NOT_MEDIA),
        (video_packets_duration_s, sound, ReasonCode.NO_VIDEO_STREAM),
        (video_packets_duration_s, notes, ReasonCode.NOT_MEDIA),
    ]
    for read, path, reason in cases:
        with pytest.raises(StageError) as caught:
            read(path)
        assert caught.value.reason is reason, (read.__name__, path.name)
