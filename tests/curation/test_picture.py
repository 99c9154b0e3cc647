"""Picture analysis: the y4m reader against PySceneDetect's own ContentDetector on the same frames, the
saved analysis, decoding errors."""

from __future__ import annotations

import io
import subprocess
from fractions import Fraction

import cv2
import numpy as np
import pytest
from scenedetect.common import FrameTimecode
from scenedetect.detectors import ContentDetector

from curation import picture
from curation.picture import (
    ANALYSIS_SIDE_PX,
    analyse_picture,
    load_picture,
    picture_of,
    read_y4m_analysis,
    small_frames_filter,
)
from curation.samples import VideoSpec, make_music, make_video
from dvmset.errors import ReasonCode, StageError
from dvmset.storage import PICTURE_FILE

FPS = 25
CLIP_S = 12.0


@pytest.fixture(scope="module")
def cuts_y4m(tmp_path_factory) -> bytes:
    """The small frames of a 640x360 picture with a hue jump every 2 s and a flash (3 frames of white)
    at 5 s, as ffmpeg writes them for the reader."""
    folder = tmp_path_factory.mktemp("picture")
    spec = VideoSpec(CLIP_S, width=640, height=360, fps=FPS, audio="none", cut_every_s=2.0)
    video = make_video(folder / "cuts.mp4", spec)
    flash = "drawbox=c=white:t=fill:enable='between(n,125,127)'"
    args = [
        "ffmpeg",
        "-nostdin",
        "-v",
        "error",
        "-i",
        str(video),
        "-vf",
        f"{flash},{small_frames_filter()}",
        "-f",
        "yuv4mpegpipe",
        "pipe:1",
    ]
    return subprocess.run(args, capture_output=True, check=True).stdout


def _bgr_frames(y4m: bytes) -> list[np.ndarray]:
    """The frames of a 4:2:0 y4m stream as BGR, decoded independently of the reader under test."""
    header, _, body = y4m.partition(b"\n")
    width, height = (int(token[1:]) for token in header.split()[1:3])
    size = width * height * 3 // 2
    frames, offset = [], 0
    while offset < len(body):
        offset = body.index(b"\n", offset) + 1  # past "FRAME\n"
        i420 = np.frombuffer(body[offset : offset + size], np.uint8).reshape(height * 3 // 2, width)
        frames.append(cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420))
        offset += size
    return frames


def _content_detector_cuts_s(frames: list[np.ndarray], threshold: float, min_scene_s: float) -> tuple[float, ...]:
    detector = ContentDetector(threshold=threshold, min_scene_len=float(min_scene_s))
    cuts = []
    for index, frame in enumerate(frames):
        cuts += detector.process_frame(FrameTimecode(index, Fraction(FPS)), frame)
    cuts += detector.post_process(FrameTimecode(len(frames) - 1, Fraction(FPS)))
    return tuple(cut.seconds for cut in cuts)


def test_the_reader_sees_every_small_frame_at_its_rate(cuts_y4m):
    analysis = read_y4m_analysis(io.BytesIO(cuts_y4m))
    assert analysis.frame_count == CLIP_S * FPS and analysis.fps == FPS
    assert analysis.luma_diffs_255.shape == analysis.content_scores.shape == (CLIP_S * FPS - 1,)
    assert cuts_y4m.startswith(f"YUV4MPEG2 W{ANALYSIS_SIDE_PX} H144 ".encode())  # 640x360, longer side to 256


@pytest.mark.parametrize(
    ("threshold", "min_scene_s"), [(27.0, 0.6), (27.0, 0.0), (15.0, 0.6), (27.0, 3.0), (200.0, 0.6)]
)
def test_replayed_scene_cuts_are_content_detectors_own(cuts_y4m, threshold, min_scene_s):
    analysis = read_y4m_analysis(io.BytesIO(cuts_y4m))
    expected = _content_detector_cuts_s(_bgr_frames(cuts_y4m), threshold, min_scene_s)
    assert analysis.scene_cuts_s(threshold, min_scene_s) == pytest.approx(expected)


def test_hue_jumps_and_a_flash_give_the_expected_cuts(cuts_y4m):
    analysis = read_y4m_analysis(io.BytesIO(cuts_y4m))
    assert analysis.scene_cuts_s(27.0, 0.6) == pytest.approx([2.0, 4.0, 5.0, 6.0, 8.0, 10.0])  # the flash merges at 5 s
    assert analysis.scene_cuts_s(27.0, 0.0) == pytest.approx([2.0, 4.0, 5.0, 5.12, 6.0, 8.0, 10.0])  # in and out
    assert analysis.luma_diffs_255[124] > 50 and np.median(analysis.luma_diffs_255) < 5  # the flash's first frame


def test_a_stream_cut_short_ends_at_its_last_whole_frame_and_an_empty_one_has_no_frame(cuts_y4m):
    analysis = read_y4m_analysis(io.BytesIO(cuts_y4m[: len(cuts_y4m) // 2]))
    assert 0 < analysis.frame_count < CLIP_S * FPS
    assert read_y4m_analysis(io.BytesIO(b"")).fps == 0
    with pytest.raises(ValueError, match="YUV4MPEG2"):
        read_y4m_analysis(io.BytesIO(b"RIFF....WAVEfmt \n"))
    with pytest.raises(ValueError, match="4:2:0"):
        read_y4m_analysis(io.BytesIO(b"YUV4MPEG2 W256 H144 F25:1 Ip A1:1 C444\n"))


def test_the_analysis_saves_and_loads_and_another_version_is_analysed_again(cuts_y4m, tmp_path, monkeypatch):
    analysis = read_y4m_analysis(io.BytesIO(cuts_y4m))
    path = analysis.save(tmp_path / PICTURE_FILE)
    loaded = load_picture(path)
    np.testing.assert_array_equal(loaded.content_scores, analysis.content_scores)
    np.testing.assert_array_equal(loaded.luma_diffs_255, analysis.luma_diffs_255)
    assert loaded.fps == analysis.fps and loaded.scene_cuts_s(27.0, 0.6) == analysis.scene_cuts_s(27.0, 0.6)
    assert sorted(p.name for p in tmp_path.iterdir()) == [PICTURE_FILE]  # no temp left
    (tmp_path / "broken.npz").write_bytes(b"not an npz")
    assert load_picture(tmp_path / "broken.npz") is None and load_picture(tmp_path / "missing.npz") is None
    monkeypatch.setattr(picture, "FORMAT_VERSION", picture.FORMAT_VERSION + 1)
    assert load_picture(path) is None


def test_picture_of_decodes_only_when_nothing_is_saved(tmp_path, monkeypatch):
    video = make_video(tmp_path / "video.mp4", VideoSpec(3.0, width=160, height=120, audio="none", cut_every_s=1.0))
    decoded = []
    monkeypatch.setattr(picture, "analyse_picture", lambda path: decoded.append(path) or analyse_picture(path))
    first = picture_of(tmp_path / PICTURE_FILE, video)
    second = picture_of(tmp_path / PICTURE_FILE, video)
    assert decoded == [video] and first.frame_count == second.frame_count == 75
    assert second.scene_cuts_s(27.0, 0.6) == pytest.approx([1.0, 2.0])


def test_undecodable_pictures_are_decode_errors(tmp_path):
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n" * 50, encoding="utf-8")
    music = make_music(tmp_path / "music.flac", 1.0)
    for path in (notes, music):  # no video at all; sound without a picture
        with pytest.raises(StageError) as caught:
            analyse_picture(path)
        assert caught.value.reason is ReasonCode.DECODE_ERROR and path.name in caught.value.message
