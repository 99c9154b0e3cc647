"""A small catalog of generated videos for the publish tests: clip files, fingerprints and label events
written directly, standing for what the stages would record.

In: a config (its data root and catalog), the folder of generated media (each source video `<name>.mp4`,
`clip.mp4` and `music.flac`, whose copies are every clip's files), a video's name and query. Out: a clipped,
fingerprinted video in the catalog with `CLIPS_PER_VIDEO` clips and their labels (`add_video`); a fresh
workdir holding such videos (`new_workdir`); the clip ids a publish should accept (`expected_accepted`);
the exit code and output of a `dvmset` command (`run_cli`). The fixtures over them: tests/curation/conftest.py.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from curation import steps
from dvmset.catalog import Catalog, tables
from dvmset.cli.main import app
from dvmset.config import Config, load_config
from dvmset.ids import make_clip_id
from dvmset.records import (
    Candidate,
    ClipLoudness,
    ClipRecord,
    ClipStatus,
    ClipVersions,
    Download,
    ModelStamp,
    PrescreenScores,
    ProbeInfo,
    SourceKind,
    SourceMetadata,
    VideoStatus,
)
from dvmset.storage import ACCOMPANIMENT_FILE, DataRoot
from dvmset.tools import require_tool

CLIP_S = 2.0
CLIPS_PER_VIDEO = 3
SOURCE_S = 8.0
MUSIC_RATE_HZ = 8000
VERSIONS = ClipVersions("separate/1+t", "clip/1+t", "loudness/1+t", "prescreen/1+t")
# (name, query, bpm, hue cut every s): every video differs from every other in picture and sound
FIRST = [
    ("a", "food", 80, 1.5),
    ("b", "food", 100, 2.5),
    ("c", "food", 125, 3.5),
    ("d", "city", 150, 2.0),
    ("e", "city", 175, 3.0),
    ("f", "city", 95, None),
]
LATER = [("g", "food", 140, 1.0), ("h", "city", 115, 4.5)]
COPY = "a_copy"  # a re-encoded, resized copy of "a", found by the other query
REJECTED = {"b": ["noise"], "e": ["non_music", "static"]}  # the first clip of these is rejected
UNDECIDED = {"c", "d"}  # the last clip of these has no label


def run_cli(*args: str | Path):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    return result.exit_code, result.output


def add_video(
    catalog: Catalog,
    config: Config,
    media: Path,
    name: str,
    query: str,
    rejected=(),
    undecided=False,
    models: tuple[ModelStamp, ...] = (),
) -> None:
    """A clipped video with CLIPS_PER_VIDEO clips on disk, fingerprinted by the real step, and
    label events: every clip accepted, but the first rejected for `rejected` and the last unlabelled
    when `undecided`. `models`: the separator (first) and speech detector recorded for its stems;
    a stand-in separator marks the video and its clips as stand-in output."""
    data, video_id = DataRoot(config.data_root), f"local:{name}"
    raw = data.raw_dir(video_id)
    raw.mkdir(parents=True)
    shutil.copy(media / f"{name}.mp4", raw / "source.mp4")
    stems = data.stems_dir(video_id)
    stems.mkdir(parents=True)
    subprocess.run(
        [
            require_tool("ffmpeg"),
            "-nostdin",
            "-v",
            "error",
            "-i",
            raw / "source.mp4",
            "-vn",
            stems / ACCOMPANIMENT_FILE,
        ],
        check=True,
    )
    catalog.add_candidates([Candidate(video_id, str(raw / "source.mp4"), SourceKind.LOCAL_FOLDER, query, title=name)])
    catalog.mark_downloaded(
        Download(video_id, data.relative(raw / "source.mp4"), SourceMetadata(title=name)), "download/1"
    )
    catalog.mark_probed(video_id, ProbeInfo(SOURCE_S, 1, "mp4", "h264", 160, 120, 25.0, "aac", 44100, 2), "probe/1")
    separator = models[0].model_id if models else "tiny"
    stand_in = bool(models) and models[0].stand_in
    catalog.mark_separated(video_id, separator, VERSIONS.separate, stand_in=stand_in, models=models)
    for n in range(CLIPS_PER_VIDEO):
        clip_id = make_clip_id(video_id, n * CLIP_S)
        folder = data.clip_dir(clip_id)
        folder.mkdir(parents=True)
        shutil.copy(media / "clip.mp4", folder / "video.mp4")
        shutil.copy(media / "music.flac", folder / "music.flac")
        catalog.save_clip(
            ClipRecord(
                clip_id=clip_id,
                video_id=video_id,
                start_s=n * CLIP_S,
                end_s=(n + 1) * CLIP_S,
                status=ClipStatus.PENDING_REVIEW,
                fps=25.0,
                video_path=data.relative(folder / "video.mp4"),
                music_path=data.relative(folder / "music.flac"),
                separator_model_id=separator,
                stand_in=stand_in,
                loudness=ClipLoudness(-20.0 - n, -14.0, -1.5, 6.0, False, False),
                prescreen=PrescreenScores(0.0, 0.0, 0.0, 0.0, 0.1, 0.1, (1.0,), (), 0.5),
                versions=VERSIONS,
            )
        )
        if n == CLIPS_PER_VIDEO - 1 and undecided:
            continue
        decision, reasons = ("rejected", list(rejected)) if n == 0 and rejected else ("accepted", [])
        with catalog.engine.begin() as conn:
            conn.execute(
                tables.labels.insert().values(
                    clip_id=clip_id,
                    annotator="ann",
                    decision=decision,
                    reasons=reasons,
                    note=None,
                    ts=datetime.now(UTC),
                )
            )
    catalog.mark_clipped(video_id, CLIPS_PER_VIDEO, VERSIONS.clip)
    outcome = steps.fingerprint_step(catalog, config, catalog.get_video(video_id))
    assert outcome.status is VideoStatus.CLIPPED and outcome.reason is None


def expected_accepted(names) -> set[str]:
    ids = set()
    for name in names:
        first = 1 if name in REJECTED else 0
        last = CLIPS_PER_VIDEO - 1 if name in UNDECIDED else CLIPS_PER_VIDEO
        ids |= {make_clip_id(f"local:{name}", n * CLIP_S) for n in range(first, last)}
    return ids


def new_workdir(tmp_path: Path, media: Path, videos) -> Path:
    workdir = tmp_path / "fresh"
    workdir.mkdir()
    (workdir / "dvmset.toml").write_text('data_root = "data"\n[publish]\nseed = 3\n', encoding="utf-8")
    config = load_config(workdir / "dvmset.toml", environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    for name, query in videos:
        add_video(catalog, config, media, name, query)
    catalog.close()
    return workdir
