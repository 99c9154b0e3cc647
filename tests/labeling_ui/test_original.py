"""The source's own audio for the original/processed toggle: copied where browsers play it in MP4, else AAC."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace

import pytest

from dvmset.catalog import Catalog
from dvmset.storage import is_temp_name
from labeling_ui.original import OriginalAudio


def audio_of(path) -> tuple[str, int, float]:
    """(codec, channels, duration) of a file's only stream, an audio one."""
    shown = "stream=codec_name,codec_type,channels:format=duration"
    probed = json.loads(
        subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", shown, "-of", "json", str(path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert [stream["codec_type"] for stream in probed["streams"]] == ["audio"]
    stream = probed["streams"][0]
    return stream["codec_name"], stream["channels"], float(probed["format"]["duration"])


@pytest.mark.parametrize("codec, probed, channels", [("aac", "aac", 1), ("libvorbis", "vorbis", 2)])
def test_the_clips_span_of_the_sources_audio_is_cut_once(review_data, clip_media, tmp_path, codec, probed, channels):
    catalog = Catalog.open(review_data.catalog_url)
    clip = catalog.get_clip(review_data.clip_ids[0])
    video = catalog.get_video(clip.video_id)
    catalog.close()
    video = replace(video, probe=replace(video.probe, audio_codec=probed, channels=1))
    made = tmp_path / f"source.{'mp4' if codec == 'aac' else 'mkv'}"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            str(clip_media[0]),
            "-c:v",
            "copy",
            "-ac",
            "1",
            "-c:a",
            codec,
            str(made),
        ],
        check=True,
    )
    source = review_data.data_root / video.media_path
    source.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(made, source)
    clip = replace(clip, start_s=1.0, end_s=2.5)  # a span of the 3 s source
    original = OriginalAudio(review_data.data_root)
    cut = original.ensure(clip, video)
    assert cut == original.path(clip.clip_id) and not any(is_temp_name(path) for path in cut.parent.iterdir())
    assert audio_of(cut)[:2] == ("aac", channels)  # the mono AAC copied as it is; Vorbis encoded to stereo AAC
    duration_s = audio_of(cut)[2]
    assert duration_s == pytest.approx(1.5, abs=0.1)
    made_at = cut.stat().st_mtime_ns
    assert original.ensure(clip, video) == cut and cut.stat().st_mtime_ns == made_at  # once
