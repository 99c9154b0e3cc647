"""The review screen's HTML, without a server: the red banner over a clip whose music a stand-in
separator (random weights) made, and the screen handlers putting it above the player."""

from __future__ import annotations

from dataclasses import replace
from html import escape

from dvmset.catalog import Catalog
from dvmset.records import ModelStamp, SourceKind, VideoRecord, VideoStatus
from dvmset.storage import DataRoot
from labeling_ui.app import AppSettings, LabelingApp
from labeling_ui.session import ReviewSettings, SessionState
from labeling_ui.views import stand_in_html
from tests.support.review_data import STAND_IN, make_review_data, mark_stand_in, review_clip

REAL = ModelStamp("htdemucs", "ab" * 32)
SPEECH = ModelStamp("silero_vad", "cd" * 32)


def video(*models: ModelStamp) -> VideoRecord:
    return VideoRecord(
        video_id="youtube:vid0",
        url="https://example.invalid/0",
        platform="youtube",
        source=SourceKind.PLATFORM_SEARCH,
        status=VideoStatus.CLIPPED,
        separation_models=models,
    )


def test_a_clip_of_a_real_separator_has_no_banner(tmp_path):
    clip = review_clip(DataRoot(tmp_path), "youtube:vid0", 0.0, priority=1.0)
    assert stand_in_html(clip, video(REAL, SPEECH)) == ""
    assert stand_in_html(clip, None) == ""


def test_a_stand_in_clip_has_a_red_banner_that_names_the_model(tmp_path):
    clip = replace(
        review_clip(DataRoot(tmp_path), "youtube:vid0", 0.0, priority=1.0),
        separator_model_id=STAND_IN.model_id,
        stand_in=True,
    )
    banner = stand_in_html(clip, video(STAND_IN, SPEECH))
    assert banner.startswith('<div id="dv-stand-in" role="alert" style="background:#dc2626;color:#fff;')
    assert "<code>tiny-random-demo</code>" in banner and STAND_IN.sha256[:12] in banner
    assert "stand-in separator with random weights" in banner and "not the video's music" in banner
    assert "silero_vad" not in banner  # only the stand-in is named
    # the clip's own mark is enough (a video recorded before its models were), and names are escaped
    odd = replace(clip, separator_model_id="<b>tiny</b>")
    assert f"<code>{escape('<b>tiny</b>')}</code>" in stand_in_html(odd, None) and "<b>" not in stand_in_html(odd, None)
    # a stand-in among the video's models marks the clip even where the clip's own flag is not set
    assert 'id="dv-stand-in"' in stand_in_html(replace(clip, stand_in=False), video(STAND_IN))


def test_the_screen_puts_the_banner_above_the_player_of_stand_in_clips_only(tmp_path, clip_media):
    made = make_review_data(tmp_path, clip_media, videos=2, clips_per_video=1)
    assert mark_stand_in(made.catalog_url, "youtube:vid0") == made.clip_ids[:1]
    catalog = Catalog.open(made.catalog_url)
    app = LabelingApp(AppSettings(made.data_root, made.catalog_url, ReviewSettings(overlap_share=0.0)), catalog)
    request = type("Request", (), {"username": "ann"})()
    outputs = app.start(SessionState(), request)
    assert outputs[0].current == made.clip_ids[0]
    player = outputs[1]
    assert player.startswith('<div id="dv-stand-in"') and player.index("dv-stand-in") < player.index('id="dv-slot"')
    outputs = app.accept(outputs[0], request)
    assert outputs[0].current == made.clip_ids[1]
    assert "dv-stand-in" not in outputs[1] and 'id="dv-slot"' in outputs[1]
    catalog.close()
