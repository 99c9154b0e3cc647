"""Clip stage: the span planner (no media), and cut_music + cut_video on ffmpeg-generated videos."""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from curation.clip import MUSIC_SAMPLE_RATE_HZ, Span, check_x264_params, cut_music, cut_video, plan_clip_spans
from curation.picture import PictureAnalysis, analyse_picture
from curation.samples import VideoSpec, make_video
from dvmset.config import ClipConfig
from dvmset.errors import ConfigError, ReasonCode, StageError
from dvmset.ids import make_clip_id
from dvmset.storage import DataRoot

FPS = 25
SOURCE_S = 130.0
SMALL = (320, 240)
SETTINGS = ClipConfig(x264_params="")  # at most 480 rows, x264 superfast with the preset's own options


# --- planner -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration_s", "expected"),
    [
        (150.0, [Span(0.0, 60.0), Span(60.0, 120.0)]),
        (120.0, [Span(0.0, 60.0), Span(60.0, 120.0)]),
        (59.9, []),
        (60.0, [Span(0.0, 60.0)]),
    ],
)
def test_plan_keeps_whole_clips_and_drops_the_remainder(duration_s, expected):
    assert plan_clip_spans(duration_s) == expected


@pytest.mark.parametrize("duration_s", [0.0, -5.0, math.nan, math.inf])
def test_plan_of_a_meaningless_duration_is_empty(duration_s):
    assert plan_clip_spans(duration_s) == []
    assert plan_clip_spans(duration_s, fps=25.0) == []


def test_plan_snaps_to_whole_frames():
    fps = 29.97
    spans = plan_clip_spans(125.37, fps=fps)
    assert len(spans) == 2
    assert spans[0].start_s == 0.0
    assert spans[1].start_s == spans[0].end_s  # consecutive, no gap, no overlap
    for span in spans:
        for frames in (span.start_s * fps, span.end_s * fps, span.duration_s * fps):
            assert frames == pytest.approx(round(frames), abs=1e-6)
        assert abs(span.duration_s - 60.0) <= 1 / fps
        assert span.end_s <= 125.37


def test_plan_with_fps_never_runs_past_the_end():
    # 119.99 s at 25 fps is 2999 frames: one 1500-frame clip fits, not two
    assert plan_clip_spans(119.99, fps=25.0) == [Span(0.0, 60.0)]


@pytest.mark.parametrize(("clip_s", "fps"), [(0.0, None), (-1.0, None), (60.0, 0.0), (60.0, math.nan)])
def test_plan_refuses_a_bad_clip_length_or_frame_rate(clip_s, fps):
    with pytest.raises(ValueError):
        plan_clip_spans(100.0, clip_s=clip_s, fps=fps)


# --- helpers over ffprobe / ffmpeg ---------------------------------------------------------


def _stream(path: Path, selector: str, count_frames: bool = False) -> dict:
    args = ["ffprobe", "-v", "error", "-select_streams", selector, "-show_streams", "-of", "json"]
    if count_frames:
        args.append("-count_frames")
    done = subprocess.run([*args, str(path)], capture_output=True, text=True, check=True)
    (stream,) = json.loads(done.stdout)["streams"]
    return stream


def _gray_frames(path: Path, select: str, size: tuple[int, int]) -> np.ndarray:
    """Decoded frames that `select` (an ffmpeg select expression) picks, as `[N, H, W]` floats."""
    args = ["ffmpeg", "-v", "error", "-i", str(path), "-vf", f"select='{select}',format=gray"]
    args += ["-fps_mode", "passthrough", "-f", "rawvideo", "-"]
    raw = subprocess.run(args, capture_output=True, check=True).stdout
    width, height = size
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width).astype(np.float64)


def _audio_f32(path: Path) -> np.ndarray:
    """The first audio stream decoded as float (no clipping of its own), `[T, C]`."""
    args = ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "f32le", "-"]
    raw = subprocess.run(args, capture_output=True, check=True).stdout
    channels = int(_stream(path, "a:0")["channels"])
    return np.frombuffer(raw, np.float32).reshape(-1, channels)


@dataclass(frozen=True)
class ClipFiles:
    video_path: Path
    music_path: Path
    picture: PictureAnalysis


def _cut(video: Path, music: Path, span: Span, out_dir: Path, fps: float = FPS) -> ClipFiles:
    """Both cuts, as the clip step runs them: the music first, then the picture over it."""
    samples = cut_music(music, span, SETTINGS)
    assert samples.dtype == np.float32 and samples.shape == (round(span.duration_s * MUSIC_SAMPLE_RATE_HZ), 2)
    out_dir.mkdir(parents=True, exist_ok=True)
    music_path = out_dir / "music.flac"
    sf.write(music_path, samples, MUSIC_SAMPLE_RATE_HZ, subtype="PCM_24")  # what the loudness stage writes
    picture = cut_video(video, span, music_path, out_dir / "video.mp4", SETTINGS, fps=fps)
    return ClipFiles(out_dir / "video.mp4", music_path, picture)


# --- a 130 s source cut into two clips (made once) -----------------------------------------


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("src") / "source.mp4", VideoSpec(SOURCE_S, cut_every_s=4.0))


@pytest.fixture(scope="module")
def clips(source, tmp_path_factory) -> list[ClipFiles]:
    data = DataRoot(tmp_path_factory.mktemp("data"))
    spans = plan_clip_spans(SOURCE_S, fps=FPS)
    assert spans == [Span(0.0, 60.0), Span(60.0, 120.0)]
    return [_cut(source, source, span, data.clip_dir(make_clip_id("local:abc", span.start_s))) for span in spans]


@pytest.mark.slow
def test_each_clip_has_exactly_1500_frames_and_lasts_60_s(clips):
    assert len(clips) == 2
    for clip in clips:
        video = _stream(clip.video_path, "v:0", count_frames=True)
        assert int(video["nb_read_frames"]) == 60 * FPS
        assert abs(float(video["duration"]) - 60.0) <= 1 / FPS
        assert (video["codec_name"], video["pix_fmt"]) == ("h264", "yuv420p")
        audio = _stream(clip.video_path, "a:0")
        assert (audio["codec_name"], int(audio["sample_rate"]), int(audio["channels"])) == ("aac", 44100, 2)
        assert abs(float(audio["duration"]) - 60.0) <= 1 / FPS


@pytest.mark.slow
def test_second_clip_starts_on_the_source_frame_at_60_s(source, clips):
    first = _gray_frames(clips[1].video_path, "eq(n,0)", SMALL)[0]
    around = _gray_frames(source, "between(n,1495,1505)", SMALL)  # source frames 1495..1505
    differences = [np.abs(first - frame).mean() for frame in around]
    assert 1495 + int(np.argmin(differences)) == 1500
    assert differences[5] < 2.0  # only re-encoding noise


def test_a_start_between_keyframes_is_frame_accurate(source, tmp_path):
    # the source has a keyframe every second; 61.48 s is frame 1537, 12 frames past one
    files = _cut(source, source, Span(61.48, 62.48), tmp_path / "clip")
    clip = _gray_frames(files.video_path, "1", SMALL)
    assert len(clip) == FPS
    around = _gray_frames(source, "between(n,1530,1545)", SMALL)
    differences = [np.abs(clip[0] - frame).mean() for frame in around]
    assert 1530 + int(np.argmin(differences)) == 1537


def test_timestamps_a_hair_early_still_give_the_frame_at_the_start(tmp_path):
    # a capture clock's jitter: every frame but the first 2 ms before its nominal n / 25 s
    even = make_video(tmp_path / "even.mp4", VideoSpec(3.0, audio="silence"))
    jittered = tmp_path / "jittered.mp4"
    retime = "settb=1/90000,setpts=(N/25-0.002*gt(N\\,0))/TB"
    args = ["ffmpeg", "-v", "error", "-i", str(even), "-vf", retime, "-fps_mode", "passthrough"]
    args += ["-enc_time_base", "1/90000", "-c:v", "libx264", "-preset", "ultrafast", "-an", str(jittered)]
    subprocess.run(args, check=True, capture_output=True)
    files = _cut(jittered, even, Span(37 / FPS, 47 / FPS), tmp_path / "clip")
    clip = _gray_frames(files.video_path, "1", SMALL)
    assert len(clip) == 10
    source = _gray_frames(jittered, "between(n,30,45)", SMALL)
    differences = [np.abs(clip[0] - frame).mean() for frame in source]
    assert 30 + int(np.argmin(differences)) == 37


@pytest.mark.slow
def test_a_small_video_keeps_its_size_and_leaves_no_temp_files(clips):
    for clip in clips:
        video = _stream(clip.video_path, "v:0")
        assert (int(video["width"]), int(video["height"])) == SMALL
        assert sorted(path.name for path in clip.video_path.parent.iterdir()) == ["music.flac", "video.mp4"]


@pytest.mark.slow
def test_the_cut_analyses_its_own_frames_as_a_decode_of_the_clip_would(clips):
    cut = clips[1].picture  # 60 .. 120 s of a picture that cuts every 4 s
    decoded = analyse_picture(clips[1].video_path)
    assert cut.frame_count == decoded.frame_count == 60 * FPS and cut.fps == decoded.fps == FPS
    assert cut.scene_cuts_s(27.0, 0.6) == pytest.approx([4.0 * k for k in range(1, 15)], abs=0.5 / FPS)
    np.testing.assert_allclose(cut.scene_cuts_s(27.0, 0.6), decoded.scene_cuts_s(27.0, 0.6), atol=1.01 / FPS)
    np.testing.assert_allclose(cut.luma_diffs_255, decoded.luma_diffs_255, atol=2.0)  # before and after x264


# --- channels, audio files, picture size, failures ------------------------------------------


def test_surround_is_down_mixed_to_stereo_without_clipping(tmp_path):
    source = make_video(tmp_path / "five_one.mp4", VideoSpec(3.0, channels=6))
    assert int(_stream(source, "a:0")["channels"]) == 6
    files = _cut(source, source, Span(0.5, 2.5), tmp_path / "clip")
    music, rate_hz = sf.read(files.music_path)
    assert music.shape == (2 * 44100, 2) and rate_hz == 44100
    muxed = _audio_f32(files.video_path)
    assert muxed.shape[1] == 2
    # every channel carries the same full-level music: an unscaled matrix (1 + 0.707 + 0.707) would clip
    for audio in (music, muxed):
        assert 0.3 < np.abs(audio).max() < 0.99
        assert np.abs(audio[:, 0] - audio[:, 1]).max() < 0.01


def test_mono_becomes_the_same_signal_on_both_channels(tmp_path):
    source = make_video(tmp_path / "mono.mp4", VideoSpec(3.0, channels=1))
    files = _cut(source, source, Span(0.5, 2.5), tmp_path / "clip")
    music, _ = sf.read(files.music_path)
    assert music.shape == (2 * 44100, 2)
    assert np.array_equal(music[:, 0], music[:, 1])
    assert np.sqrt(np.mean(music**2)) > 0.05  # the music, not silence
    assert int(_stream(files.video_path, "a:0")["channels"]) == 2


def _wav_with_click(path: Path, duration_s: float, click_s: float, rate_hz: int = 48000) -> Path:
    samples = np.zeros(round(duration_s * rate_hz), np.float32)
    samples[round(click_s * rate_hz)] = 0.9
    sf.write(path, samples, rate_hz)
    return path


def test_music_from_a_wav_stem_is_resampled_and_sample_accurate(tmp_path):
    video = make_video(tmp_path / "video.mp4", VideoSpec(3.0, audio="silence"))
    stem = _wav_with_click(tmp_path / "accompaniment.wav", 3.0, click_s=1.7)
    files = _cut(video, stem, Span(0.5, 2.5), tmp_path / "clip")
    music, rate_hz = sf.read(files.music_path)
    assert rate_hz == MUSIC_SAMPLE_RATE_HZ and music.shape == (2 * 44100, 2)
    assert abs(int(np.argmax(np.abs(music[:, 0]))) - round(1.2 * 44100)) <= 2
    assert np.array_equal(music[:, 0], music[:, 1])


def test_music_that_ends_early_is_padded_to_the_exact_length(tmp_path):
    video = make_video(tmp_path / "video.mp4", VideoSpec(3.0, audio="silence"))
    stem = _wav_with_click(tmp_path / "accompaniment.wav", 2.0, click_s=1.0)
    files = _cut(video, stem, Span(0.5, 2.5), tmp_path / "clip")
    assert sf.info(files.music_path).frames == 2 * 44100


def test_a_1080p_video_is_scaled_down_to_480p_by_default(tmp_path):
    source = make_video(tmp_path / "hd.mp4", VideoSpec(62.0, width=1920, height=1080, fps=2, audio="silence"))
    (span,) = plan_clip_spans(62.0, fps=2)
    files = _cut(source, source, span, tmp_path / "clip", fps=2)
    video = _stream(files.video_path, "v:0", count_frames=True)
    assert (int(video["width"]), int(video["height"])) == (854, 480)
    assert int(video["nb_read_frames"]) == 120


def test_the_video_carries_the_music_file_it_is_given(source, tmp_path):
    stem = _wav_with_click(tmp_path / "music.wav", 2.0, click_s=0.4, rate_hz=44100)
    cut_video(source, Span(10.0, 12.0), stem, tmp_path / "video.mp4", SETTINGS, fps=FPS)
    muxed = _audio_f32(tmp_path / "video.mp4")
    # the click at 0.4 s of the music file, not the source's music at 10.4 s (AAC adds a little delay)
    assert abs(int(np.argmax(np.abs(muxed[:, 0]))) - round(0.4 * 44100)) < 0.01 * 44100


def test_x264_params_reach_the_encoder(source, tmp_path):
    """x264 writes its settings into the stream (an SEI message): the preset's, changed by x264_params."""
    stem = _wav_with_click(tmp_path / "music.wav", 2.0, click_s=0.4, rate_hz=44100)
    plain, tuned = tmp_path / "plain.mp4", tmp_path / "tuned.mp4"
    cut_video(source, Span(0.0, 2.0), stem, plain, ClipConfig(x264_preset="superfast", x264_params=""), fps=FPS)
    tuned_settings = ClipConfig(x264_preset="superfast", x264_params="mbtree=1:rc-lookahead=7")
    cut_video(source, Span(0.0, 2.0), stem, tuned, tuned_settings, fps=FPS)
    assert b" mbtree=0 " in plain.read_bytes() and b" rc_lookahead=" not in plain.read_bytes()
    assert b" mbtree=1 " in tuned.read_bytes() and b" rc_lookahead=7 " in tuned.read_bytes()


def test_x264_params_that_x264_rejects_are_a_config_error():
    check_x264_params(ClipConfig(x264_preset="superfast", x264_params="mbtree=1:rc-lookahead=10"))
    with pytest.raises(ConfigError, match="x264 rejects bogus = 1, rc-lookahead = ten"):
        check_x264_params(ClipConfig(x264_preset="superfast", x264_params="bogus=1:rc-lookahead=ten"))


@pytest.mark.parametrize("which", ["music", "video"])
def test_a_failed_cut_raises_decode_error_and_leaves_no_file(source, tmp_path, which):
    notes = tmp_path / "notes.wav"
    notes.write_text("These are meeting notes, not music.\n" * 20, encoding="utf-8")
    out_dir = tmp_path / "clip"
    out_dir.mkdir()
    with pytest.raises(StageError) as caught:
        if which == "music":
            cut_music(notes, Span(0.0, 60.0), SETTINGS)
        else:
            cut_video(source, Span(0.0, 60.0), notes, out_dir / "video.mp4", SETTINGS, fps=FPS)
    assert caught.value.reason is ReasonCode.DECODE_ERROR
    assert "notes.wav" in caught.value.message  # ffmpeg's own words about the file
    assert list(out_dir.iterdir()) == []
