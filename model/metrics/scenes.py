"""Scene changes of a video by PySceneDetect, with a named, configurable detector, or from the manifest.

In: a video file and `SceneSettings` (detector name, threshold, minimum scene length in frames).
Out: the scene-change times in seconds from the first frame (the start of every scene but the first).
`ManifestScenes` says instead that the manifest's `scene_cuts_s` (the curation prescreen's) are used,
with what the prescreen ran (`manifest_scenes` reads its settings from the config the manifest recorded).

The video is decoded by PySceneDetect's own OpenCV backend (`scenedetect.detect`), which downscales
frames to about 256 px wide as the `scenedetect` command does; the curation prescreen decodes with
ffmpeg instead but runs the same `ContentDetector` with the same defaults. A threshold of None means
the detector's own default, which `SceneSettings.protocol()` writes down so a report says what ran.
"""

from __future__ import annotations

import inspect
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from scenedetect import VideoOpenFailure, detect
from scenedetect.detectors import AdaptiveDetector, ContentDetector, HashDetector, HistogramDetector

from dvmset.config import PrescreenConfig
from dvmset.errors import ReasonCode
from manifests.schema import ManifestError, manifest_metadata, read_manifest
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
            "scene_source": "detected in each reference video",
            "scene_detector": f"PySceneDetect {detector_class.__name__}",
            "scene_threshold": self.effective_threshold,
            "scene_threshold_parameter": keyword,
            "min_scene_frames": self.min_scene_frames,
            "scene_backend": "opencv",
        }


@dataclass(frozen=True)
class ManifestScenes:
    """Scene changes from the manifest's `scene_cuts_s`, not detected again. `detector` says what this code's
    curation prescreen runs; `threshold` and `min_scene_s` are the prescreen settings of the config the
    manifest recorded, `code_version` the code that built it (None when not recorded)."""

    detector: str
    threshold: float | None = None
    min_scene_s: float | None = None
    code_version: str | None = None

    def protocol(self) -> dict[str, object]:
        """What a report records about where the scene changes came from."""
        unrecorded = "not recorded in the manifest"
        return {
            "scene_source": "manifest: each clip's scene_cuts_s, from the curation prescreen",
            "scene_detector": self.detector,
            "scene_threshold": unrecorded if self.threshold is None else self.threshold,
            "min_scene_s": unrecorded if self.min_scene_s is None else self.min_scene_s,
            "scene_cuts_code_version": unrecorded if self.code_version is None else self.code_version,
            "scene_detector_settings": "the evaluation's detector, threshold and minimum scene length do not apply",
        }


def manifest_scenes(manifest_path: Path, detector: str) -> ManifestScenes:
    """`ManifestScenes` of a manifest: `detector` (what the prescreen runs) and the prescreen's scene threshold
    and minimum scene length from the config stored in the manifest's metadata, and the code version stored
    there; ManifestError when that config cannot be read."""
    metadata = manifest_metadata(read_manifest(manifest_path))
    config_text, code_version = metadata.get("config"), metadata.get("code_version")
    if config_text is None:
        return ManifestScenes(detector, code_version=code_version)
    try:
        prescreen = PrescreenConfig.model_validate(tomllib.loads(config_text).get("prescreen", {}))
    except (tomllib.TOMLDecodeError, ValidationError, TypeError) as error:
        raise ManifestError(f"{manifest_path}: the config recorded in its metadata cannot be read: {error}") from error
    return ManifestScenes(detector, prescreen.scene_threshold, prescreen.min_scene_s, code_version)


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
