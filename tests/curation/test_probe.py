"""Probe stage: the sample folder end to end, the pure ffprobe parser, and the decode check."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from curation.probe import classify_ffprobe_failure, decoded_s_from_progress, parse_ffprobe, probe_media
from curation.samples import SAMPLE_EXPECTATIONS, make_sample_folder
from dvmset.config import ProbeConfig
from dvmset.errors import ProbeError, ReasonCode
from dvmset.records import ProbeInfo
from dvmset.tools import MissingToolError

CFG = ProbeConfig()  # min_duration_s 60, decode_check_s 3


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("probe_samples")
    assert make_sample_folder(folder) == SAMPLE_EXPECTATIONS
    return folder


@pytest.mark.parametrize(("name", "expected"), list(SAMPLE_EXPECTATIONS.items()), ids=list(SAMPLE_EXPECTATIONS))
@pytest.mark.slow
def test_sample_folder(samples, name, expected):
    status, reason = expected
    path = samples / name
    if status == "probed":
        info = probe_media(path, CFG)
        assert 65.0 <= info.duration_s <= 70.1
        assert info.size_bytes == path.stat().st_size
        assert (info.video_codec, info.width, info.height, info.fps) == ("h264", 320, 240, 25.0)
        assert (info.audio_codec, info.sample_rate_hz) == ("aac", 44100)
        assert "mp4" in info.container
        expected_channels = (6, "5.1") if name.startswith("surround/") else (2, "stereo")
        assert (info.channels, info.channel_layout) == expected_channels
        return
    with pytest.raises(ProbeError) as caught:
        probe_media(path, CFG)
    assert caught.value.reason == ReasonCode(reason), caught.value.message
    assert caught.value.reason.is_skip == (status == "skipped")


def test_missing_file_is_source_not_found(tmp_path):
    with pytest.raises(ProbeError) as caught:
        probe_media(tmp_path / "gone.mp4", CFG)
    assert caught.value.reason == ReasonCode.SOURCE_NOT_FOUND


def _video(**extra):
    return {"codec_type": "video", "codec_name": "h264", "width": 1280, "height": 720, "avg_frame_rate": "25/1"} | extra


def _audio(**extra):
    stereo = {"channels": 2, "channel_layout": "stereo"}
    return {"codec_type": "audio", "codec_name": "aac", "sample_rate": "48000"} | stereo | extra


COVER = {"codec_type": "video", "codec_name": "mjpeg", "width": 600, "height": 600, "disposition": {"attached_pic": 1}}
MP4 = {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "90.000000"}


@pytest.mark.parametrize(
    ("data", "size_bytes", "expected"),
    [
        pytest.param(
            {"format": MP4, "streams": [_video(), _audio()]},
            10_000,
            {
                "duration_s": 90.0,
                "size_bytes": 10_000,
                "container": MP4["format_name"],
                "video_codec": "h264",
                "width": 1280,
                "height": 720,
                "fps": 25.0,
                "audio_codec": "aac",
                "sample_rate_hz": 48000,
                "channels": 2,
                "channel_layout": "stereo",
            },
            id="plain",
        ),
        pytest.param(
            {
                "format": {"format_name": "matroska,webm"},
                "streams": [
                    _video(avg_frame_rate="0/0", r_frame_rate="30000/1001", duration="61.5"),
                    _audio(codec_name="opus", channels=6, channel_layout="5.1(side)", duration="62.25"),
                ],
            },
            10_000,
            {"duration_s": 62.25, "fps": pytest.approx(29.97, abs=0.01), "channels": 6, "channel_layout": "5.1(side)"},
            id="5.1-r_frame_rate-longest-stream-duration",
        ),
        pytest.param(
            {"format": MP4, "streams": [COVER, _video(codec_name="vp9"), _audio()]},
            10_000,
            {"video_codec": "vp9", "width": 1280},
            id="cover-picture-is-not-the-video",
        ),
        pytest.param(
            {"format": MP4, "streams": [_audio(), COVER]}, 10_000, ReasonCode.NO_VIDEO_STREAM, id="cover-only"
        ),
        pytest.param({"format": MP4, "streams": [_video()]}, 10_000, ReasonCode.NO_AUDIO_STREAM, id="no-audio"),
        pytest.param({"format": {}, "streams": []}, 10_000, ReasonCode.NOT_MEDIA, id="no-format"),
        pytest.param({"format": MP4, "streams": []}, 10_000, ReasonCode.NOT_MEDIA, id="no-streams"),
        pytest.param(
            {"format": {"format_name": "tty", "duration": "90"}, "streams": [_video(codec_name="ansi")]},
            10_000,
            ReasonCode.NOT_MEDIA,
            id="text-file",
        ),
        pytest.param(
            {"format": {"format_name": "h264"}, "streams": [_video(), _audio()]},
            10_000,
            ReasonCode.NOT_MEDIA,
            id="no-duration",
        ),
        pytest.param(
            # 1 Mbit/s over 90 s declares 11.25 MB; 5 MB came: cut off (checked before the missing audio)
            {"format": MP4, "streams": [_video(bit_rate="1000000")]},
            5_000_000,
            ReasonCode.TRUNCATED,
            id="size-below-bit-rates",
        ),
        pytest.param(
            {"format": MP4, "streams": [_video(bit_rate="1000000"), _audio()]},
            10_000_000,
            {"duration_s": 90.0},
            id="size-within-bit-rates",
        ),
        pytest.param(
            {"format": {**MP4, "duration": "59.9"}, "streams": [_video(), _audio()]},
            10_000,
            ReasonCode.TOO_SHORT,
            id="too-short",
        ),
    ],
)
def test_parse_ffprobe(data, size_bytes, expected):
    if isinstance(expected, ReasonCode):
        with pytest.raises(ProbeError) as caught:
            parse_ffprobe(data, size_bytes, min_duration_s=60.0)
        assert caught.value.reason == expected
        return
    info = parse_ffprobe(data, size_bytes, min_duration_s=60.0)
    assert isinstance(info, ProbeInfo)
    assert {field: getattr(info, field) for field in expected} == expected


def test_too_short_message_says_what_was_found():
    with pytest.raises(ProbeError, match=r"duration 5\.0 s is shorter than one 60 s clip"):
        parse_ffprobe({"format": {**MP4, "duration": "5.0"}, "streams": [_video(), _audio()]}, 10_000, 60.0)


NO_MOOV = "[mov] moov atom not found\nx.mp4: Invalid data found when processing input"


@pytest.mark.parametrize(
    ("stderr", "head", "expected"),
    [
        (NO_MOOV, b"\0\0\0\x20ftypisom", ReasonCode.TRUNCATED),
        (NO_MOOV, b"These ar", ReasonCode.NOT_MEDIA),
        ("x.bin: Invalid data found when processing input", b"\x8a\x13\x00\x7f\x01\x02\x03\x04", ReasonCode.NOT_MEDIA),
    ],
    ids=["mp4-without-index", "text-named-mp4", "random-bytes"],
)
def test_classify_ffprobe_failure(stderr, head, expected):
    assert classify_ffprobe_failure(stderr, head).reason == expected


def test_decoded_s_from_progress():
    progress = "out_time_us=500000\nprogress=continue\nout_time_us=N/A\nout_time_us=4015873\nprogress=end\n"
    assert decoded_s_from_progress(progress) == pytest.approx(4.015873)
    assert decoded_s_from_progress("out_time_us=N/A\nprogress=end\n") == 0.0


def _overwrite(source: Path, target: Path, start_fraction: float, end_fraction: float) -> Path:
    data = bytearray(source.read_bytes())
    start, end = int(len(data) * start_fraction), int(len(data) * end_fraction)
    data[start:end] = random.Random(0).randbytes(end - start)
    target.write_bytes(bytes(data))
    return target


@pytest.mark.slow
def test_garbage_near_the_end_is_truncated(samples, tmp_path):
    # good_music_cuts.mp4 is 65 s with its index up front (faststart) and audio/video interleaved,
    # so bytes 95.5-97.5 % hold about 62-63.5 s: inside the end window (61 s to the end).
    # Size and index are intact, so only the decode check can see it. Errors in the end window
    # give TRUNCATED by design: a tail that is missing and one that is junk (a download that
    # stopped in a preallocated file) look the same there, and a re-download is the cure.
    path = _overwrite(samples / "good_music_cuts.mp4", tmp_path / "junk_tail.mp4", 0.955, 0.975)
    with pytest.raises(ProbeError) as caught:
        probe_media(path, CFG)
    assert caught.value.reason == ReasonCode.TRUNCATED
    assert "61.0 s to the end" in caught.value.message


@pytest.mark.slow
def test_garbage_at_the_start_is_a_decode_error(samples, tmp_path):
    # bytes 2-3 % hold about 1.0-1.6 s (the index takes the first ~0.6 %): inside the first 3 s
    path = _overwrite(samples / "good_music_cuts.mp4", tmp_path / "junk_head.mp4", 0.02, 0.03)
    with pytest.raises(ProbeError) as caught:
        probe_media(path, CFG)
    assert caught.value.reason == ReasonCode.DECODE_ERROR


@pytest.mark.slow
def test_cut_off_file_without_bit_rates_ends_early(samples, tmp_path):
    # Matroska declares a duration but no stream bit rates, so the size check cannot see the cut;
    # decoding from 61 s finds no data at all ("decoding stops at 61.0 s of a declared 65.0 s").
    whole = tmp_path / "whole.mkv"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(samples / "good_music_cuts.mp4"), "-c", "copy", str(whole)],
        check=True,
        timeout=60,
    )
    assert probe_media(whole, CFG).container == "matroska,webm"
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.9)])
    with pytest.raises(ProbeError, match="decoding stops at") as caught:
        probe_media(cut, CFG)
    assert caught.value.reason == ReasonCode.TRUNCATED


@pytest.mark.slow
def test_missing_tools_name_the_debian_package(samples, monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "ffprobe" else real_which(name))
    with pytest.raises(
        MissingToolError, match=r"ffprobe is not installed or not on PATH \(Debian: apt-get install ffmpeg\)"
    ):
        probe_media(samples / "good_music_cuts.mp4", CFG)
