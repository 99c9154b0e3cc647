"""Conversions between catalog rows and records; used by the catalog package alone."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from dvmset.errors import ReasonCode
from dvmset.records import (
    ClipLoudness,
    ClipRecord,
    ClipStatus,
    ClipVersions,
    ErrorInfo,
    ModelStamp,
    PrescreenFlag,
    PrescreenScores,
    ProbeInfo,
    SourceKind,
    SourceMetadata,
    VideoRecord,
    VideoStatus,
)


def now() -> datetime:
    return datetime.now(UTC)


def video_from_row(row: Any, queries: tuple[str, ...]) -> VideoRecord:
    probe = json_value(row["probe"])
    return VideoRecord(
        video_id=row["video_id"],
        url=row["url"],
        platform=row["platform"],
        source=SourceKind(row["source"]),
        status=VideoStatus(row["status"]),
        queries=queries,
        metadata=SourceMetadata(
            title=row["title"],
            channel=row["channel"],
            upload_date=row["upload_date"],
            duration_s=row["duration_s"],
            license=row["license"],
            webpage_url=row["webpage_url"],
            extractor=row["extractor"],
        ),
        media_path=row["media_path"],
        probe=ProbeInfo(**probe) if probe else None,
        error=ErrorInfo(ReasonCode(row["error_reason"]), row["error_message"] or "") if row["error_reason"] else None,
        stage_version=row["stage_version"],
        updated_at=row["updated_at"],
        separator_model_id=row["separator_model_id"],
        separate_version=row["separate_version"],
        separator_stand_in=bool(row["separator_stand_in"]),
        separation_models=tuple(ModelStamp(**stamp) for stamp in json_value(row["separation_models"]) or ()),
        clip_count=row["clip_count"],
        fingerprint_version=row["fingerprint_version"],
        group_id=row["group_id"],
        split=row["split"],
    )


def clip_values(clip: ClipRecord) -> dict[str, Any]:
    """The columns of a clip row other than its id and status."""
    loud, scores = clip.loudness, clip.prescreen
    return {
        "video_id": clip.video_id,
        "start_s": clip.start_s,
        "end_s": clip.end_s,
        "fps": clip.fps,
        "video_path": clip.video_path,
        "music_path": clip.music_path,
        "separator_model_id": clip.separator_model_id,
        "stand_in": clip.stand_in,
        "separate_version": clip.versions.separate,
        "clip_version": clip.versions.clip,
        "loudness_version": clip.versions.loudness,
        "prescreen_version": clip.versions.prescreen,
        "stage_version": clip.versions.prescreen,
        "loudness_before_lufs": _finite_or_none(loud.before_lufs),
        "loudness_lufs": _finite_or_none(loud.after_lufs),
        "true_peak_dbtp": _finite_or_none(loud.true_peak_dbtp),
        "gain_db": loud.gain_db,
        "limited": loud.limited,
        "silent": loud.silent,
        "silence_s": scores.silence_s,
        "longest_silence_s": scores.longest_silence_s,
        "speech_s": scores.speech_s,
        "non_music_s": scores.non_music_s,
        "static_share": scores.static_share,
        "noise_score": scores.noise_score,
        "scene_cuts_s": list(scores.scene_cuts_s),
        "flags": [flag.value for flag in scores.flags],
        "priority": scores.priority,
        "error_reason": None,
        "error_message": None,
        "updated_at": now(),
    }


def _finite_or_none(value: float) -> float | None:
    """-inf (the loudness of silence) is stored as NULL: not every database keeps infinities."""
    return value if math.isfinite(value) else None


def json_value(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value  # some drivers hand JSON back as text


def clip_from_row(row: Any) -> ClipRecord:
    def db(value: float | None) -> float:
        return -math.inf if value is None else value

    return ClipRecord(
        clip_id=row["clip_id"],
        video_id=row["video_id"],
        start_s=row["start_s"],
        end_s=row["end_s"],
        status=ClipStatus(row["status"]),
        fps=row["fps"],
        video_path=row["video_path"],
        music_path=row["music_path"],
        separator_model_id=row["separator_model_id"],
        loudness=ClipLoudness(
            before_lufs=db(row["loudness_before_lufs"]),
            after_lufs=db(row["loudness_lufs"]),
            true_peak_dbtp=db(row["true_peak_dbtp"]),
            gain_db=row["gain_db"],
            limited=row["limited"],
            silent=row["silent"],
        ),
        prescreen=PrescreenScores(
            silence_s=row["silence_s"],
            longest_silence_s=row["longest_silence_s"],
            speech_s=row["speech_s"],
            non_music_s=row["non_music_s"],
            static_share=row["static_share"],
            noise_score=row["noise_score"],
            scene_cuts_s=tuple(json_value(row["scene_cuts_s"])),
            flags=tuple(PrescreenFlag(f) for f in json_value(row["flags"])),
            priority=row["priority"],
        ),
        versions=ClipVersions(
            separate=row["separate_version"],
            clip=row["clip_version"],
            loudness=row["loudness_version"],
            prescreen=row["prescreen_version"],
        ),
        updated_at=row["updated_at"],
        stand_in=bool(row["stand_in"]),
    )
