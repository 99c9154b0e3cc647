"""The rhythm score: hits within the tolerance, chance level, exclusions, and generated media end to end."""

from __future__ import annotations

import numpy as np
import pytest

from model.metrics.rhythm import (
    RhythmClip,
    chance_recall,
    music_beats_s,
    rhythm_clip,
    scene_change_hits,
    summarize_rhythm,
)
from model.metrics.scenes import SceneSettings, scene_changes_s
from tests.support.generated_media import BEAT_PERIOD_S, DRUM_RATE_HZ, drums, write_cut_video

CLIP_S = 8.0


def test_hits_count_beats_within_the_tolerance_either_side():
    beats = [0.5, 1.0, 3.08, 5.2]
    assert scene_change_hits([1.05, 3.0, 5.0, 7.0], beats, tolerance_s=0.1) == 2  # 1.05 and 3.0 (0.08 away)
    assert scene_change_hits([1.1], beats, tolerance_s=0.1) == 1  # the bound counts
    assert scene_change_hits([1.11], beats, tolerance_s=0.1) == 0
    assert scene_change_hits([1.0], [], tolerance_s=0.1) == 0


def test_chance_recall_is_the_share_of_time_near_a_beat():
    assert chance_recall([1.0, 2.0, 3.0], 4.0, tolerance_s=0.1) == pytest.approx(0.6 / 4.0)
    assert chance_recall([0.0, 0.05], 1.0, tolerance_s=0.1) == pytest.approx(0.15)  # overlap counted once, cut at 0


def test_scene_changes_at_random_times_score_the_chance_level():
    """A half-beat shift is the worst case (every cut as far from a beat as it can be: recall 0); cuts that
    ignore the beat land near a beat as often as the chance level says."""
    beats_s = np.arange(0.0, 60.0, 0.5)
    cuts_s = np.sort(np.random.default_rng(7).uniform(0.0, 60.0, 2000))
    chance = chance_recall(beats_s, 60.0, tolerance_s=0.1)
    assert chance == pytest.approx(0.4, abs=0.005)  # 0.2 s of every 0.5 s beat
    assert scene_change_hits(cuts_s, beats_s, tolerance_s=0.1) / cuts_s.size == pytest.approx(chance, abs=0.03)
    assert scene_change_hits(beats_s + 0.25, beats_s, tolerance_s=0.1) == 0


def test_summary_excludes_clips_without_scene_changes_and_pools_the_rest():
    clips = [
        RhythmClip("a", scene_changes=4, hits=4, beats=10, chance_recall=0.4),
        RhythmClip("b", scene_changes=1, hits=0, beats=10, chance_recall=0.2),
        RhythmClip("c", scene_changes=0, hits=0, beats=10, chance_recall=0.4),
    ]
    summary = summarize_rhythm(clips)
    assert (summary.scored_clips, summary.excluded_clips) == (2, 1)
    assert summary.mean_recall == pytest.approx(0.5)  # (1.0 + 0.0) / 2
    assert summary.pooled_recall == pytest.approx(4 / 5)
    assert summary.mean_chance_recall == pytest.approx(0.3)
    assert summarize_rhythm([clips[2]]).mean_recall is None


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    return write_cut_video(tmp_path_factory.mktemp("rhythm") / "cuts.mp4", CLIP_S)  # cuts at 2, 4, 6 s


def test_beats_on_the_cuts_score_one_and_half_a_beat_late_drops_to_chance_or_below(cut_video):
    changes = scene_changes_s(cut_video, SceneSettings())
    assert changes == pytest.approx((2.0, 4.0, 6.0), abs=0.05)
    on_cuts = rhythm_clip("on", changes, music_beats_s(drums(CLIP_S, 0.0), DRUM_RATE_HZ), CLIP_S)
    late = rhythm_clip("late", changes, music_beats_s(drums(CLIP_S, BEAT_PERIOD_S / 2), DRUM_RATE_HZ), CLIP_S)
    assert on_cuts.recall == 1.0
    assert late.recall <= late.chance_recall  # chance: 2 x 0.1 s of every 0.5 s beat, about 0.4
    assert 0.3 < late.chance_recall < 0.5


def test_a_video_without_cuts_is_excluded(tmp_path):
    still = write_cut_video(tmp_path / "still.mp4", 4.0, cuts=False)
    changes = scene_changes_s(still, SceneSettings())
    clip = rhythm_clip("still", changes, music_beats_s(drums(4.0, 0.0), DRUM_RATE_HZ), 4.0)
    assert changes == () and clip.recall is None
    assert summarize_rhythm([clip]).excluded_clips == 1


def test_scene_settings_record_the_detector_default_and_refuse_unknown_detectors():
    assert SceneSettings().protocol()["scene_threshold"] == 27.0  # ContentDetector's default
    assert SceneSettings("adaptive", 2.5).protocol()["scene_threshold_parameter"] == "adaptive_threshold"
    with pytest.raises(ValueError, match="unknown scene detector"):
        SceneSettings("nonsense")


def test_the_stable_visual_rule_takes_still_pictures_and_rare_cuts():
    from model.metrics.rhythm import is_stable_visual

    assert is_stable_visual(0.6, 10, 60.0)  # still most of the time
    assert is_stable_visual(0.1, 1, 60.0)  # one cut a minute
    assert not is_stable_visual(0.1, 2, 60.0) and not is_stable_visual(None, 1, 20.0)  # 2 a minute; 3 a minute
    assert is_stable_visual(None, 0, 10.0)
