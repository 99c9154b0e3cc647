"""Picture analysis of a clip: how much each frame changes, measured once on small frames and kept.

In: a YUV4MPEG2 stream (4:2:0) of a clip's frames scaled to at most `ANALYSIS_SIDE_PX` on the longer
side (`small_frames_filter`, PySceneDetect's own default size), either from the clip cut's own decode
(`clip.cut_video`) or from decoding a video again (`analyse_picture`). Out: `PictureAnalysis`, two
numbers per pair of consecutive frames:

- `luma_diffs_255`: the mean absolute change of the frame's luma (OpenCV's BGR to gray, 0-255);
- `content_scores`: PySceneDetect `ContentDetector`'s frame score with its default weights, the mean of
  the mean absolute changes of hue, saturation and value (OpenCV's 8-bit HSV).

Neither depends on a threshold, so the analysis is saved beside the clip (`save`, `picture.npz`) and a
change of the prescreen's thresholds decodes nothing. `PictureAnalysis.scene_cuts_s` replays
ContentDetector's decision on the scores: a frame whose score reaches the threshold, through
PySceneDetect's own `FlashFilter` (merge mode, `min_scene_s`), as ContentDetector does (a test holds
the two to the same cuts).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from scenedetect.common import FrameTimecode
from scenedetect.detector import FlashFilter

from dvmset.errors import ReasonCode, StageError
from dvmset.storage import atomic_path
from dvmset.tools import require_tool, stream_tool

ANALYSIS_SIDE_PX = 256  # the longer side of the analysed frames
FORMAT_VERSION = 1  # of what `save` writes; another version is analysed again
_DECODE_TIMEOUT_S = 600.0
_HEADER = "YUV4MPEG2"


@dataclass(frozen=True, eq=False)
class PictureAnalysis:
    """`luma_diffs_255` and `content_scores`: [N - 1] float32, frame k against frame k - 1 (module
    docstring); `fps` the frames' rate."""

    luma_diffs_255: np.ndarray
    content_scores: np.ndarray
    fps: Fraction

    @property
    def frame_count(self) -> int:
        return self.luma_diffs_255.size + 1

    def scene_cuts_s(self, threshold: float, min_scene_s: float) -> tuple[float, ...]:
        """Seconds from the first frame of each frame where ContentDetector with `threshold` and a
        minimum scene length of `min_scene_s` reports a cut."""
        flash = FlashFilter(FlashFilter.Mode.MERGE, float(min_scene_s))
        cuts: list[FrameTimecode] = []
        above = np.concatenate([[False], self.content_scores >= threshold])  # the first frame scores 0
        for index, is_above in enumerate(above.tolist()):
            cuts += flash.filter(FrameTimecode(index, self.fps), is_above)
        return tuple(float(cut.seconds) for cut in cuts)

    def save(self, path: Path) -> Path:
        """Write the analysis to `path` (an `.npz`, a few kB a minute), atomically."""
        meta = json.dumps({"version": FORMAT_VERSION, "fps": [self.fps.numerator, self.fps.denominator]})
        with atomic_path(path) as temp, open(temp, "wb") as handle:  # a file object: np.savez adds no suffix
            np.savez_compressed(
                handle, luma_diffs_255=self.luma_diffs_255, content_scores=self.content_scores, meta=np.asarray(meta)
            )
        return path


_NO_FRAME = PictureAnalysis(np.empty(0, np.float32), np.empty(0, np.float32), Fraction(0))


def load_picture(path: Path) -> PictureAnalysis | None:
    """What `PictureAnalysis.save` wrote to `path`; None when there is no such file or it is unreadable
    or of another `FORMAT_VERSION` (analyse the picture again)."""
    try:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("version") != FORMAT_VERSION:
                return None
            return PictureAnalysis(
                data["luma_diffs_255"].astype(np.float32),
                data["content_scores"].astype(np.float32),
                Fraction(*meta["fps"]),
            )
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
        return None


def small_frames_filter(side_px: int = ANALYSIS_SIDE_PX) -> str:
    """An ffmpeg filter chain: frames scaled (area average) to at most `side_px` on the longer side,
    both sides even, as yuv420p, what `read_y4m_analysis` reads."""
    longer = f"trunc(min(iw,{side_px})/2)*2", f"trunc(min(ih,{side_px})/2)*2"
    return f"scale='if(gte(iw,ih),{longer[0]},-2)':'if(gte(iw,ih),-2,{longer[1]})':flags=area,format=yuv420p"


def read_y4m_analysis(stream: BinaryIO) -> PictureAnalysis:
    """Analyse the YUV4MPEG2 4:2:0 stream `stream` to its end (a stream cut short ends at its last whole
    frame); a stream without a whole frame gives fps 0. ValueError for a header this reader does not know."""
    header = stream.readline()
    if not header:
        return _NO_FRAME
    width, height, fps = parse_y4m_header(header)
    frame_bytes = width * height * 3 // 2
    luma_diffs: list[float] = []
    content: list[float] = []
    previous: tuple[np.ndarray, np.ndarray] | None = None
    while stream.readline().startswith(b"FRAME"):
        data = stream.read(frame_bytes)
        if len(data) < frame_bytes:
            break
        bgr = cv2.cvtColor(np.frombuffer(data, np.uint8).reshape(height * 3 // 2, width), cv2.COLOR_YUV2BGR_I420)
        hsv, luma = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        if previous is not None:
            content.append(sum(cv2.mean(cv2.absdiff(hsv, previous[0]))[:3]) / 3.0)
            luma_diffs.append(cv2.mean(cv2.absdiff(luma, previous[1]))[0])
        previous = hsv, luma
    if previous is None:
        return _NO_FRAME
    return PictureAnalysis(np.asarray(luma_diffs, np.float32), np.asarray(content, np.float32), fps)


def analyse_picture(video_path: Path, timeout_s: float = _DECODE_TIMEOUT_S) -> PictureAnalysis:
    """Decode every frame of `video_path`'s first video stream once, small, and analyse it;
    StageError(DECODE_ERROR) when it cannot be decoded or holds no frame."""
    args = [
        require_tool("ffmpeg"),
        "-nostdin",
        "-v",
        "error",
        "-xerror",  # a corrupt packet fails, not skipped
        "-threads",
        "1",  # the frames are analysed on a second core; frame threads cost ~20 % more CPU
        "-skip_loop_filter",
        "all",  # deblocking: ~15 % of decoding, invisible at this size
        "-i",
        f"file:{video_path}",
        "-map",
        "0:v:0",
        "-vf",
        small_frames_filter(),
        "-fps_mode",
        "passthrough",
        "-f",
        "yuv4mpegpipe",
        "pipe:1",
    ]
    what = f"decoding the picture of {video_path.name}"
    picture = stream_tool(args, timeout_s, ReasonCode.DECODE_ERROR, what, read_y4m_analysis)
    if not picture.fps:
        raise StageError(ReasonCode.DECODE_ERROR, f"{what}: no frame decoded")
    return picture


def picture_of(path: Path, video_path: Path) -> PictureAnalysis:
    """The analysis saved at `path`, or, where there is none of this version, `video_path`'s, saved there."""
    picture = load_picture(path)
    if picture is None:
        picture = analyse_picture(video_path)
        picture.save(path)
    return picture


def parse_y4m_header(header: bytes) -> tuple[int, int, Fraction]:
    """Width, height and frame rate of a YUV4MPEG2 stream header line; ValueError unless 4:2:0, even sizes."""
    tokens = header.decode("ascii", errors="replace").split()
    if not tokens or tokens[0] != _HEADER:
        raise ValueError(f"not a YUV4MPEG2 stream: {header[:40]!r}")
    fields = {token[:1]: token[1:] for token in tokens[1:]}
    width, height = int(fields["W"]), int(fields["H"])
    numerator, _, denominator = fields["F"].partition(":")
    if not fields.get("C", "420").startswith("420") or width % 2 or height % 2:
        raise ValueError(f"expected even-sized 4:2:0 frames, got {' '.join(tokens)}")
    return width, height, Fraction(int(numerator), int(denominator))
