"""Probe stage: is a downloaded file a usable video with music, and what is in it?

In: the path of a media file and a `ProbeConfig`. Out: a `ProbeInfo` (duration, size, container,
video codec, picture size, frame rate, audio codec, sample rate, channels and layout), or a
`ProbeError` whose reason code says why not. Checks, in order:

1. the file exists (`source_not_found`) and is not empty (`empty_file`);
2. ffprobe reads it (`not_media`; `truncated` for an MP4 whose index never arrived);
3. its size matches what its streams' bit rates and durations declare (`truncated`);
4. it has a video stream, cover pictures aside (`no_video_stream`), and an audio stream
   (`no_audio_stream`; any channel count, 5.1 included);
5. it lasts at least `min_duration_s` (`too_short`);
6. `decode_check_s` seconds decode without error at the start (`decode_error`), and the last
   `decode_check_s + 1` seconds decode without error up to the declared end (`truncated`).

`parse_ffprobe` (steps 2 to 5 on ffprobe's JSON) and `classify_ffprobe_failure` are pure.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dvmset.config import ProbeConfig
from dvmset.errors import ProbeError, ReasonCode
from dvmset.records import ProbeInfo
from dvmset.tools import require_tool

STAGE_VERSION = "probe/1"

# ISO base media (MP4, MOV, M4A) top-level boxes a file can start with
_ISO_BMFF_START_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide"})
_TEXT_FORMATS = frozenset({"tty"})  # ffmpeg's ANSI-art demuxer: what a text file probes as
_MIN_SIZE_FRACTION = 0.8  # a file smaller than this share of bit rate x duration was cut off
_END_SLACK_S = 1.0  # decoding may end this much before the declared duration
_OUT_TIME_RE = re.compile(r"^out_time_us=(\d+)$", re.MULTILINE)


def probe_media(path: Path, cfg: ProbeConfig) -> ProbeInfo:
    """ffprobe `path`, then decode its start and its end. Raises `ProbeError` (see module doc)."""
    size_bytes = _checked_size_bytes(path)
    info = parse_ffprobe(_run_ffprobe(path, cfg.timeout_s), size_bytes, cfg.min_duration_s)
    _check_decodes(path, info.duration_s, cfg)
    return info


def parse_ffprobe(data: Mapping[str, Any], size_bytes: int, min_duration_s: float) -> ProbeInfo:
    """ffprobe's `-show_format -show_streams` JSON -> `ProbeInfo`, or `ProbeError` for steps 2-5.

    `fps` is 0.0 where the video stream declares no frame rate.
    """
    fmt = data.get("format") or {}
    streams: list[Mapping[str, Any]] = data.get("streams") or []
    container = fmt.get("format_name")
    if not container or not streams:
        raise ProbeError(ReasonCode.NOT_MEDIA, f"ffprobe found {'no streams' if container else 'no known format'}")
    if container in _TEXT_FORMATS:
        raise ProbeError(ReasonCode.NOT_MEDIA, f"ffprobe reads it as text ({container}), not as media")
    duration_s = _duration_s(fmt, streams)
    _check_not_cut_off(size_bytes, duration_s, streams)
    video = _first_stream(streams, "video")
    if video is None:
        raise ProbeError(ReasonCode.NO_VIDEO_STREAM, f"no video stream (found: {_describe(streams)})")
    audio = _first_stream(streams, "audio")
    if audio is None:
        raise ProbeError(ReasonCode.NO_AUDIO_STREAM, f"no audio stream (found: {_describe(streams)})")
    if duration_s < min_duration_s:
        raise ProbeError(
            ReasonCode.TOO_SHORT, f"duration {duration_s:.1f} s is shorter than one {min_duration_s:g} s clip"
        )
    return ProbeInfo(
        duration_s=duration_s,
        size_bytes=size_bytes,
        container=container,
        video_codec=video.get("codec_name", "unknown"),
        width=int(video.get("width", 0)),
        height=int(video.get("height", 0)),
        fps=_ratio(video.get("avg_frame_rate")) or _ratio(video.get("r_frame_rate")) or 0.0,
        audio_codec=audio.get("codec_name", "unknown"),
        sample_rate_hz=int(audio.get("sample_rate", 0)),
        channels=int(audio.get("channels", 0)),
        channel_layout=audio.get("channel_layout"),
    )


def classify_ffprobe_failure(stderr: str, head: bytes) -> ProbeError:
    """The error for a file ffprobe cannot open, from its stderr and the file's first 8 bytes.

    ffmpeg's MP4 demuxer says "moov atom not found" for any file named `.mp4`, text included;
    only a file that starts with an MP4 box is an MP4 whose index (written last) never arrived.
    """
    if "moov atom not found" in stderr and head[4:8] in _ISO_BMFF_START_BOXES:
        return ProbeError(ReasonCode.TRUNCATED, "an MP4 without its index (moov atom not found): cut off")
    return ProbeError(ReasonCode.NOT_MEDIA, f"ffprobe cannot read it: {_last_line(stderr)}")


def _checked_size_bytes(path: Path) -> int:
    if not path.exists():
        raise ProbeError(ReasonCode.SOURCE_NOT_FOUND, f"{path} does not exist")
    if not path.is_file():
        raise ProbeError(ReasonCode.NOT_MEDIA, f"{path} is not a regular file")
    size_bytes = path.stat().st_size
    if size_bytes == 0:
        raise ProbeError(ReasonCode.EMPTY_FILE, f"{path} is empty (0 bytes)")
    return size_bytes


def _duration_s(fmt: Mapping[str, Any], streams: Sequence[Mapping[str, Any]]) -> float:
    """The container's duration, else the longest stream's."""
    declared = _float(fmt.get("duration"))
    if declared is None:
        stream_durations = [d for d in (_float(s.get("duration")) for s in streams) if d is not None]
        declared = max(stream_durations, default=None)
    if declared is None:
        raise ProbeError(ReasonCode.NOT_MEDIA, "neither the container nor any stream declares a duration")
    return declared


def _check_not_cut_off(size_bytes: int, duration_s: float, streams: Sequence[Mapping[str, Any]]) -> None:
    """Streams that declare a bit rate (MP4 does, from its index) must fit in the file."""
    declared_bytes = sum(
        bit_rate_bps / 8 * (_float(s.get("duration")) or duration_s)
        for s in streams
        if (bit_rate_bps := _float(s.get("bit_rate")))
    )
    if size_bytes < _MIN_SIZE_FRACTION * declared_bytes:
        raise ProbeError(
            ReasonCode.TRUNCATED,
            f"{size_bytes} bytes, but its streams declare {declared_bytes:.0f} bytes over {duration_s:.1f} s: cut off",
        )


def _first_stream(streams: Sequence[Mapping[str, Any]], codec_type: str) -> Mapping[str, Any] | None:
    """The first stream of a type; cover pictures (disposition attached_pic) are not video."""
    for stream in streams:
        if stream.get("codec_type") == codec_type and not (stream.get("disposition") or {}).get("attached_pic"):
            return stream
    return None


def _describe(streams: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(
        f"{s.get('codec_type', '?')} {s.get('codec_name', '?')}"
        + (" (cover picture)" if (s.get("disposition") or {}).get("attached_pic") else "")
        for s in streams
    )


def _float(value: Any) -> float | None:
    """ffprobe numbers come as strings, or as "N/A"."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _ratio(value: Any) -> float | None:
    """ "30000/1001" -> 29.97; None for "0/0", absent or malformed."""
    numerator, _, denominator = str(value).partition("/")
    num, den = _float(numerator), _float(denominator or "1")
    return num / den if num and den else None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _run(args: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(args, capture_output=True, encoding="utf-8", errors="replace", timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise ProbeError(ReasonCode.DECODE_ERROR, f"{Path(args[0]).name} did not finish in {timeout_s:g} s") from exc


def _run_ffprobe(path: Path, timeout_s: float) -> dict[str, Any]:
    args = [require_tool("ffprobe"), "-v", "error", "-of", "json", "-show_format", "-show_streams", f"file:{path}"]
    done = _run(args, timeout_s)
    if done.returncode != 0:
        with path.open("rb") as file:
            raise classify_ffprobe_failure(done.stderr, file.read(8))
    return json.loads(done.stdout)


def _check_decodes(path: Path, duration_s: float, cfg: ProbeConfig) -> None:
    _decoded_s(path, 0.0, cfg.decode_check_s, cfg.timeout_s, ReasonCode.DECODE_ERROR)
    end_start_s = max(0.0, duration_s - cfg.decode_check_s - 1.0)  # decode_check_s + 1 s to the end
    decoded_end_s = end_start_s + _decoded_s(path, end_start_s, None, cfg.timeout_s, ReasonCode.TRUNCATED)
    if decoded_end_s < duration_s - _END_SLACK_S:
        raise ProbeError(
            ReasonCode.TRUNCATED, f"decoding stops at {decoded_end_s:.1f} s of a declared {duration_s:.1f} s"
        )


def _decoded_s(path: Path, start_s: float, length_s: float | None, timeout_s: float, reason: ReasonCode) -> float:
    """Decode the first video and audio streams from `start_s` for `length_s` (None: to the end).

    Returns the seconds decoded; a decoding error raises `ProbeError(reason)`. `0:V:0` is the
    first video stream that is not a cover picture, as in `parse_ffprobe`.
    """
    args = [require_tool("ffmpeg"), "-nostdin", "-v", "error", "-xerror", "-nostats", "-progress", "pipe:1"]
    args += ["-ss", f"{start_s:.3f}"] + (["-t", f"{length_s:.3f}"] if length_s is not None else [])
    args += ["-i", f"file:{path}", "-map", "0:V:0", "-map", "0:a:0", "-f", "null", "-"]
    done = _run(args, timeout_s)
    if done.returncode != 0:
        window = f"{start_s:.1f}-{start_s + length_s:.1f} s" if length_s is not None else f"{start_s:.1f} s to the end"
        raise ProbeError(reason, f"decoding {window} fails: {_last_line(done.stderr)}")
    return decoded_s_from_progress(done.stdout)


def decoded_s_from_progress(progress: str) -> float:
    """The last `out_time_us` of ffmpeg's `-progress` output, in seconds (0.0 if none)."""
    out_times_us = _OUT_TIME_RE.findall(progress)
    return int(out_times_us[-1]) / 1e6 if out_times_us else 0.0
