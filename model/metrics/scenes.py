"""Scene changes of a video by PySceneDetect, with a named, configurable detector.

In: a video file and `SceneSettings` (detector name, threshold, minimum scene length in frames).
Out: the scene-change times in seconds from the first frame (the start of every scene but the first).

The video is decoded by PySceneDetect's own OpenCV backend (`scenedetect.detect`), which downscales
frames to about 256 px wide as the `scenedetect` command does; the curation prescreen decodes with
ffmpeg instead but runs the same `ContentDetector` with the same defaults. A threshold of None means
the detector's own default, which `SceneSettings.protocol()` writes down so a report says what ran.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

from scenedetect import VideoOpenFailure, detect
from scenedetect.detectors import AdaptiveDetector, ContentDetector, HashDetector, HistogramDetector

from dvmset.errors import ReasonCode
from model.errors import FeatureError

# detector name -> (class, the keyword its threshold goes to)
DETECTORS = {
    "content": (ContentDetector, "threshold"),
    "adaptive": (AdaptiveDetector, "adaptive_threshold"),
    "histogram": (HistogramDetector, "threshold"),
    "hash": (HashDetector, "threshold"),
}
DEFAULT_MIN_SCENE_FRAMES = 15  # PySceneDetect's default


@dataclass(frozen=True)
class SceneSettings:
    """Which PySceneDetect detector finds the scene changes; `threshold` None is the detector's default."""

    detector: str = "content"
    threshold: float | None = None
    min_scene_frames: int = DEFAULT_MIN_SCENE_FRAMES

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown scene detector {self.detector!r}; one of {', '.join(DETECTORS)}")
        if self.min_scene_frames < 1:
            raise ValueError(f"min_scene_frames must be at least 1, got {self.min_scene_frames}")

    @property
    def effective_threshold(self) -> float:
        """The threshold the detector runs with (the given one, else the detector's default)."""
        if self.threshold is not None:
            return float(self.threshold)
        detector_class, keyword = DETECTORS[self.detector]
        return float(inspect.signature(detector_class.__init__).parameters[keyword].default)

    def protocol(self) -> dict[str, object]:
        """What a report records about the scene detection."""
        detector_class, keyword = DETECTORS[self.detector]
        return {
            "scene_detector": f"PySceneDetect {detector_class.__name__}",
            "scene_threshold": self.effective_threshold,
            "scene_threshold_parameter": keyword,
            "min_scene_frames": self.min_scene_frames,
            "scene_backend": "opencv",
        }


def scene_changes_s(video_path: Path, settings: SceneSettings) -> tuple[float, ...]:
    """The scene-change times (seconds, ascending) of `video_path`; FeatureError(DECODE_ERROR) when it
    cannot be opened."""
    detector_class, keyword = DETECTORS[settings.detector]
    detector = detector_class(**{keyword: settings.effective_threshold, "min_scene_len": settings.min_scene_frames})
    try:
        scenes = detect(str(video_path), detector)
    except (VideoOpenFailure, OSError) as error:
        raise FeatureError(ReasonCode.DECODE_ERROR, f"PySceneDetect cannot open {video_path}: {error}") from error
    return tuple(float(start.seconds) for start, _ in scenes[1:])
