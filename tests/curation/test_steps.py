"""The per-video steps end to end on a local folder: download -> probe -> separate -> clip -> fingerprint.

A tiny random-weight Demucs (8 kHz) stands in for htdemucs; clips are 10 s so that a 21 s
video gives two of them. Reruns are checked by file modification times: work that a changed
setting does not reach must not be redone.
"""

from __future__ import annotations

import errno
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from curation import dedup, faults, separate, steps
from curation.outcomes import LEFT_DONE, LEFT_LEASED, StageTally, StepOutcome
from curation.samples import VideoSpec, make_video
from curation.search import scan_folder
from dvmset.catalog import Catalog
from dvmset.config import ClipConfig, Config, LoudnessConfig, PrescreenConfig, ProbeConfig, SeparateConfig
from dvmset.errors import ConfigError, InfrastructureError
from dvmset.ids import make_clip_id
from dvmset.records import ClipStatus, PrescreenFlag, VideoStatus
from dvmset.storage import ACCOMPANIMENT_FILE, FINGERPRINT_FILE, PICTURE_FILE, DataRoot, temp_name_for

MODEL = "tiny-random"


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("media")
    make_video(folder / "music.mp4", VideoSpec(21.0, cut_every_s=3.0))
    (folder / "notes.mp4").write_text("not a video\n" * 50, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    separate.save_tiny_model(folder, MODEL, sample_rate_hz=8000)
    return folder


def make_config(data_root: Path, model_dir: Path) -> Config:
    return Config(
        data_root=data_root,
        model_dir=model_dir,
        probe=ProbeConfig(min_duration_s=5.0),
        separate=SeparateConfig(model=MODEL, chunk_s=8.0, overlap_s=1.0),
        clip=ClipConfig(clip_s=10.0),
    )


@pytest.fixture(scope="module")
def discovered(tmp_path_factory, media, model_dir) -> Path:
    """A data root whose catalog holds the media folder's videos, all `discovered`."""
    config = make_config(tmp_path_factory.mktemp("discovered") / "data", model_dir)
    catalog = Catalog.open(config.resolved_catalog_url)
    catalog.add_candidates(scan_folder(media, "test"))
    catalog.close()
    return config.data_root


@pytest.fixture(scope="module")
def finished(tmp_path_factory, discovered, model_dir) -> Path:
    """A data root after one whole run with the test config."""
    config = make_config(tmp_path_factory.mktemp("finished") / "data", model_dir)
    shutil.copytree(discovered, config.data_root)
    catalog = Catalog.open(config.resolved_catalog_url)
    run_all(catalog, config)
    catalog.close()
    return config.data_root


def open_copy(source: Path, tmp_path: Path, model_dir: Path):
    shutil.copytree(source, tmp_path / "data")
    config = make_config(tmp_path / "data", model_dir)
    catalog = Catalog.open(config.resolved_catalog_url)
    yield catalog, config
    catalog.close()


@pytest.fixture
def done(tmp_path, model_dir, finished):
    """(catalog, config) over a copy of the data root after one whole run."""
    yield from open_copy(finished, tmp_path, model_dir)


@pytest.fixture
def fresh(tmp_path, model_dir, discovered):
    """(catalog, config) over a copy of the data root before any stage ran."""
    yield from open_copy(discovered, tmp_path, model_dir)


def run_all(catalog: Catalog, config: Config) -> dict[str, StageTally]:
    """Every stage once, over what the catalog says is to do, as `dvmset` runs them."""
    return run_named(catalog, config, *(stage.name for stage in steps.STAGES))


def run_named(catalog: Catalog, config: Config, *names: str) -> dict[str, StageTally]:
    """The stages called `names`, in that order, each over what the catalog says it has to do."""
    tallies = {}
    for name in names:
        stage = steps.stage_named(name)
        tallies[name] = steps.run_stage(stage, catalog, config, stage.pending(catalog, config))
    return tallies


def mtimes(config: Config) -> dict[str, int]:
    root = Path(config.data_root)
    return {
        path.relative_to(root).as_posix(): path.stat().st_mtime_ns
        for sub in ("stems", "clips")
        for path in (root / sub).rglob("*")
        if path.is_file()
    }


def the_video(catalog: Catalog):
    (video,) = [v for v in catalog.videos() if v.status is not VideoStatus.FAILED]
    return video


def test_a_video_becomes_two_scored_clips_and_a_bad_file_does_not_stop_the_run(fresh):
    catalog, config = fresh
    summaries = run_all(catalog, config)
    assert summaries["probe"].counts == {("probed", ""): 1, ("failed", "not_media"): 1}
    video = the_video(catalog)
    keys = steps.stage_keys(config)
    assert (video.status, video.clip_count, video.separator_model_id) == (VideoStatus.CLIPPED, 2, MODEL)
    assert video.fingerprint_version == dedup.FINGERPRINT_VERSION
    assert (DataRoot(config.data_root).stems_dir(video.video_id) / FINGERPRINT_FILE).is_file()
    assert video.separate_version == keys.separate
    clips = catalog.clips(video.video_id)
    assert [(c.start_s, c.end_s) for c in clips] == [(0.0, 10.0), (10.0, 20.0)]
    data = DataRoot(config.data_root)
    for clip in clips:
        assert clip.status is ClipStatus.PENDING_REVIEW
        assert clip.versions == keys and clip.separator_model_id == MODEL
        assert data.resolve(clip.video_path).is_file() and data.resolve(clip.music_path).is_file()
        saved = steps.picture.load_picture(data.resolve(clip.video_path).with_name(PICTURE_FILE))
        assert saved.frame_count == 10 * saved.fps  # what the prescreen scored, kept for a rerun
        # the tiny model's noise has sharp peaks: the limiter may leave it a little under target
        assert -14.0 - (2.0 if clip.loudness.limited else 0.5) < clip.loudness.after_lufs < -13.5
        assert clip.loudness.true_peak_dbtp <= -1.0 + 1e-6
    # the source's picture cuts every 3 s: at 3, 6, 9 s into the first clip, 2, 5, 8 s into the second
    assert [[round(t, 2) for t in c.prescreen.scene_cuts_s] for c in clips] == [[3.0, 6.0, 9.0], [2.0, 5.0, 8.0]]


def test_a_rerun_does_nothing(done):
    catalog, config = done
    before = mtimes(config)
    assert all(not stage.pending(catalog, config) for stage in steps.STAGES)
    summaries = run_all(catalog, config)
    assert all(summary.total == 0 for summary in summaries.values())
    assert mtimes(config) == before


def test_a_prescreen_setting_reruns_only_the_prescreen(done, monkeypatch):
    catalog, config = done
    before = mtimes(config)
    stricter = config.model_copy(update={"prescreen": PrescreenConfig(max_noise_score=0.0)})
    monkeypatch.setattr(steps.picture, "analyse_picture", lambda path: pytest.fail(f"{path} decoded again"))
    summaries = run_all(catalog, stricter)
    assert (summaries["separate"].total, summaries["clip"].total) == (0, 1)
    assert mtimes(config) == before  # no file rewritten
    for clip in catalog.clips():
        assert PrescreenFlag.NOISE in clip.prescreen.flags
        assert clip.versions == steps.stage_keys(stricter)


def test_a_clip_without_a_saved_picture_analysis_is_decoded_once_for_the_prescreen(done):
    catalog, config = done
    data = DataRoot(config.data_root)
    clip = catalog.clips()[0]
    folder = data.resolve(clip.video_path).parent
    (folder / PICTURE_FILE).unlink()
    (folder / "analysis.mp4").write_bytes(b"what clip/2 wrote")  # replaced by picture.npz
    run_all(catalog, config.model_copy(update={"prescreen": PrescreenConfig(scene_threshold=26.0)}))
    assert sorted(path.name for path in folder.iterdir()) == ["music.flac", "picture.npz", "video.mp4"]
    assert catalog.clips()[0].prescreen.scene_cuts_s == pytest.approx(clip.prescreen.scene_cuts_s, abs=0.05)


def test_a_loudness_setting_remakes_the_clips_but_not_the_separation(done):
    catalog, config = done
    before = mtimes(config)
    quieter = config.model_copy(update={"loudness": LoudnessConfig(target_lufs=-20.0)})
    run_all(catalog, quieter)
    after = mtimes(config)
    assert {k: v for k, v in after.items() if k.startswith("stems/")} == {
        k: v for k, v in before.items() if k.startswith("stems/")
    }
    assert all(after[k] != v for k, v in before.items() if k.startswith("clips/"))
    assert all(-22.0 < c.loudness.after_lufs < -19.5 for c in catalog.clips())


def test_another_separator_redoes_everything(done, model_dir):
    catalog, config = done
    before = mtimes(config)
    separate.save_tiny_model(model_dir, "tiny-other", sample_rate_hz=8000, seed=1)
    other = config.model_copy(update={"separate": config.separate.model_copy(update={"model": "tiny-other"})})
    run_all(catalog, other)
    after = mtimes(config)
    assert all(after[k] != v for k, v in before.items())
    assert {c.separator_model_id for c in catalog.clips()} == {"tiny-other"}


def test_another_clip_length_retires_clips_the_plan_no_longer_makes(done):
    catalog, config = done
    longer = config.model_copy(update={"clip": ClipConfig(clip_s=15.0)})
    run_all(catalog, longer)
    video = the_video(catalog)
    clips = {c.start_s: c for c in catalog.clips(video.video_id)}
    assert {s: c.status for s, c in clips.items()} == {0.0: ClipStatus.PENDING_REVIEW, 10.0: ClipStatus.RETIRED}
    assert clips[0.0].end_s == 15.0 and video.clip_count == 1
    assert not DataRoot(config.data_root).resolve(clips[10.0].video_path).exists()


def test_auto_reject_is_off_by_default_and_rejects_flagged_clips_when_on(done):
    catalog, config = done
    assert {c.status for c in catalog.clips()} == {ClipStatus.PENDING_REVIEW}
    strict = PrescreenConfig(max_noise_score=0.0, auto_reject=(PrescreenFlag.NOISE,))
    run_all(catalog, config.model_copy(update={"prescreen": strict}))
    assert {c.status for c in catalog.clips()} == {ClipStatus.REJECTED}


def test_a_run_killed_between_clips_resumes_without_redoing_the_first(fresh, monkeypatch):
    catalog, config = fresh
    original = steps.loudness.normalize_to_file
    data = DataRoot(config.data_root)
    seconds = {data.clip_dir(make_clip_id(video.video_id, 10.0)) for video in catalog.videos()}

    def dies_on_the_second_clip(samples, sample_rate_hz, out_path, settings):
        if out_path.parent in seconds:  # clips are made in parallel: pick it by name, not by order
            raise KeyboardInterrupt  # like a kill: nothing records it
        return original(samples, sample_rate_hz, out_path, settings)

    monkeypatch.setattr(steps.loudness, "normalize_to_file", dies_on_the_second_clip)
    with pytest.raises(KeyboardInterrupt):
        run_all(catalog, config)
    video = the_video(catalog)
    assert video.status is VideoStatus.SEPARATED
    assert len(catalog.clips(video.video_id)) == 1
    (saved,) = catalog.clips(video.video_id)
    kept = {k: v for k, v in mtimes(config).items() if k.startswith("stems/") or saved.clip_id in k}
    monkeypatch.setattr(steps.loudness, "normalize_to_file", original)
    run_all(catalog, config)
    assert {k: v for k, v in mtimes(config).items() if k in kept} == kept  # separation and first clip not redone
    assert the_video(catalog).status is VideoStatus.CLIPPED and len(catalog.clips()) == 2


def test_a_missing_model_stops_the_run_without_marking_videos(fresh, tmp_path):
    catalog, config = fresh
    missing = config.model_copy(update={"model_dir": tmp_path / "empty", "separate": SeparateConfig(model="nowhere")})
    (tmp_path / "empty").mkdir()
    run_named(catalog, missing, "download", "probe")
    with pytest.raises(ConfigError, match="nowhere"):  # its preflight loads the model: no video is touched
        run_named(catalog, missing, "separate")
    assert the_video(catalog).status is VideoStatus.PROBED


def test_a_full_disk_stops_the_run_leaves_the_video_as_it_was_and_a_rerun_goes_on(fresh, monkeypatch):
    catalog, config = fresh
    run_named(catalog, config, "download", "probe")
    stage = steps.stage_named("separate")
    videos = stage.pending(catalog, config)
    original = steps.separate.separate_file

    def disk_full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(config.data_root / "stems" / "x.flac"))

    monkeypatch.setattr(steps.separate, "separate_file", disk_full)
    with pytest.raises(InfrastructureError, match="no space left"):
        steps.run_stage(stage, catalog, config, videos)
    assert the_video(catalog).status is VideoStatus.PROBED and the_video(catalog).error is None

    def libsndfile_says_system_error(*_args, **_kwargs):  # no errno: the free space tells
        raise RuntimeError("LibsndfileError: System error.")

    monkeypatch.setattr(steps.separate, "separate_file", libsndfile_says_system_error)
    monkeypatch.setattr(
        faults.shutil, "disk_usage", lambda _path: shutil._ntuple_diskusage(10**9, 10**9 - 10**6, 10**6)
    )
    with pytest.raises(InfrastructureError, match="is full"):
        steps.run_stage(stage, catalog, config, videos)
    assert the_video(catalog).status is VideoStatus.PROBED
    monkeypatch.undo()  # space freed: the same videos go on
    assert steps.separate.separate_file is original
    assert run_named(catalog, config, "separate")["separate"].failed == 0
    assert the_video(catalog).status is VideoStatus.SEPARATED


def test_an_unexpected_error_with_room_on_the_disk_is_still_the_videos(tmp_path):
    assert faults.infrastructure_fault(RuntimeError("boom"), tmp_path) is None
    assert faults.infrastructure_fault(PermissionError(errno.EACCES, "denied", "/elsewhere/a.mp4"), tmp_path) is None
    inside = PermissionError(errno.EACCES, "denied", str(tmp_path / "clips" / "a.flac"))
    assert "permission denied" in faults.infrastructure_fault(inside, tmp_path)
    assert "read-only" in faults.infrastructure_fault(OSError(errno.EROFS, "Read-only file system"), tmp_path)


def test_a_leased_video_is_left_alone_and_a_dead_owners_lease_and_temp_files_are_taken_over(fresh):
    catalog, config = fresh
    run_named(catalog, config, "download", "probe")
    step = steps.stage_named("separate").step
    (video,) = steps.stage_named("separate").pending(catalog, config)
    stems = DataRoot(config.data_root).stems_dir(video.video_id)
    stems.mkdir(parents=True)
    half_written = temp_name_for(stems / ACCOMPANIMENT_FILE)
    half_written.write_bytes(b"half a file")
    catalog.claim_work(video.video_id, "separate", "gpu1:99:other-run")  # a live worker has it
    assert step(catalog, config, video, None).left == LEFT_LEASED
    assert half_written.exists() and the_video(catalog).status is VideoStatus.PROBED  # its file stays
    catalog.release_work(video.video_id, "gpu1:99:other-run")
    died_at = datetime.now(UTC) - timedelta(minutes=10)
    catalog.claim_work(video.video_id, "separate", "gpu1:98:dead-run", lease_s=60.0, now=died_at)
    outcome = step(catalog, config, video, "cpu1:7:this-run")  # its lease ran out: taken over
    assert (outcome.status, outcome.left) == (VideoStatus.SEPARATED, None)
    assert not half_written.exists() and catalog.work_lease(video.video_id) is None
    assert step(catalog, config, video, None).left == LEFT_DONE  # a stale list: not separated twice
    (event,) = catalog.work_events("separate")
    assert (event.video_id, event.owner, event.status) == (video.video_id, "cpu1:7:this-run", "separated")
    tally = StageTally("separate")
    tally.add(StepOutcome(video.video_id, VideoStatus.PROBED, left=LEFT_LEASED))
    assert (tally.line(), tally.failed, tally.failures) == ("separate: 1 videos -> left/leased 1", 0, [])
