"""Per-video steps: run one stage on one catalog video and record the outcome.

The stages are one table, `STAGES` (a `Stage` each: name, step, which videos are pending, a
preflight, the version key, and how a flow runs it), in order: download, probe, separate, clip,
fingerprint (for near-duplicate groups at publish time). The CLI, the flows and rebuild all read
it (`stage_named`, `run_stage`); nothing else names a stage.

A step never raises for a bad video: a `StageError` is recorded with its reason code, and any
unforeseen exception is recorded as `internal_error` with its message, so one failing video
never stops a run. The CLI loops over these (`run_stage`); Prefect tasks wrap them one to one.

A step works on its video under the catalog's work lease (`curation.leases`), claimed for its
owner (host, process and run): a video another live worker holds is left alone (`LEFT_LEASED`),
one another run has done meanwhile is not done again (`LEFT_DONE`), and only the holder removes
the temporary files in the video's folders (those a dead owner left).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from curation import clip, dedup, download, leases, loudness, picture, prescreen, probe, separate, speech
from curation.energy import EnergyCurves, read_energy_curves
from curation.faults import infrastructure_fault
from curation.outcomes import LEFT_DONE, LEFT_LEASED, LEFT_LOST, StageTally, StepOutcome
from dvmset.catalog import Catalog
from dvmset.config import Config
from dvmset.errors import ConfigError, InfrastructureError, ReasonCode, StageError
from dvmset.ids import dirname_to_id, id_to_dirname, make_clip_id, split_clip_id
from dvmset.records import ClipLoudness, ClipRecord, ClipStatus, ClipVersions, VideoRecord, VideoStatus
from dvmset.storage import (
    ACCOMPANIMENT_FILE,
    ENERGY_FILE,
    FINGERPRINT_FILE,
    MUSIC_FILE,
    OLD_ANALYSIS_FILE,
    PICTURE_FILE,
    VIDEO_FILE,
    DataRoot,
    remove_stale_temps,
)
from dvmset.store import Storage

log = logging.getLogger(__name__)


Work = Callable[[VideoRecord, leases.Hold], StepOutcome]


def _held_step(
    stage_name: str, work: Work, catalog: Catalog, config: Config, video: VideoRecord, owner: str | None
) -> StepOutcome:
    """Run `work` on the catalog's current record of `video` while holding its work lease for `owner`
    (default: this process), if the video is free and still to do for the stage."""
    stage = stage_named(stage_name)
    stage_version = stage.version_key(config)
    config.data_storage().trim_if_due(int(config.storage.scratch_gib * 2**30))  # an object store's local copies
    with leases.hold(catalog, video.video_id, stage.name, owner or leases.work_owner()) as held:
        if held is None:
            return StepOutcome(video.video_id, video.status, left=LEFT_LEASED)
        still_to_do = stage.to_do(catalog, config, video.video_id)
        if not still_to_do:
            latest = catalog.get_video(video.video_id) or video
            return StepOutcome(video.video_id, latest.status, left=LEFT_DONE)
        current = still_to_do[0]
        try:
            outcome = _guarded(stage_version, lambda: work(current, held), catalog, current, config.data_root, held)
        except leases.LeaseLost as lost:
            log.warning("%s: %s; left to its new owner", stage_version, lost)
            return StepOutcome(video.video_id, current.status, left=LEFT_LOST)
        held.status = outcome.status.value
        return outcome


def _guarded(
    stage_version: str,
    work: Callable[[], StepOutcome],
    catalog: Catalog,
    video: VideoRecord,
    data_root: Path,
    held: leases.Hold,
) -> StepOutcome:
    try:
        return work()
    except (ConfigError, leases.LeaseLost):  # the set-up or the machine is wrong (e.g. no model, store lost),
        raise  # or the video is not ours
    except Exception as exc:  # noqa: BLE001 - the run goes on; the catalog keeps the reason
        fault = infrastructure_fault(exc, data_root)
        if fault is not None:  # the machine's, not the video's: stop, leave the video as it was
            raise InfrastructureError(f"{stage_version} stopped at {video.video_id}: {fault}") from exc
        if isinstance(exc, StageError):  # the video's own fault
            error = exc
        else:
            log.exception("unexpected error in %s for %s", stage_version, video.video_id)
            error = StageError(ReasonCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        held.check()
        status = catalog.mark_error(video.video_id, error, stage_version)
        return StepOutcome(video.video_id, status, error.reason)


def download_step(catalog: Catalog, config: Config, video: VideoRecord, owner: str | None = None) -> StepOutcome:
    """discovered -> downloaded (or failed/skipped)."""

    def work(current: VideoRecord, held: leases.Hold) -> StepOutcome:
        storage = config.data_storage()
        result = download.download_video(current, config.download, storage.data)
        storage.upload(storage.data.raw_dir(current.video_id))
        held.check()
        catalog.mark_downloaded(result, download.STAGE_VERSION)
        return StepOutcome(current.video_id, VideoStatus.DOWNLOADED)

    return _held_step("download", work, catalog, config, video, owner)


def probe_step(catalog: Catalog, config: Config, video: VideoRecord, owner: str | None = None) -> StepOutcome:
    """downloaded -> probed (or failed/skipped)."""

    def work(current: VideoRecord, held: leases.Hold) -> StepOutcome:
        info = probe.probe_media(_media_path(config.data_storage(), current), config.probe)
        held.check()
        catalog.mark_probed(current.video_id, info, probe.STAGE_VERSION)
        return StepOutcome(current.video_id, VideoStatus.PROBED)

    return _held_step("probe", work, catalog, config, video, owner)


def stage_keys(config: Config) -> ClipVersions:
    """The keys (code version + settings hash) the current config gives each audio/clip stage."""
    return ClipVersions(
        separate=_separate_key(config),
        clip=config.clip.version_key(clip.STAGE_VERSION),
        loudness=config.loudness.version_key(loudness.STAGE_VERSION),
        prescreen=config.prescreen.version_key(prescreen.STAGE_VERSION),
    )


def separator_for(config: Config) -> separate.Separator:
    """The configured Demucs model, loaded once per process (raises ModelNotFoundError)."""
    with _SEPARATOR_LOCK:  # threads that start at once load it once
        return _load_separator(config.separate.model, config.model_dir, config.separate.device)


_SEPARATOR_LOCK = threading.Lock()


@functools.cache
def _load_separator(model: str, model_dir: Path | None, device: str | None) -> separate.Separator:
    return separate.load_separator(model, model_dir, device)


def speech_detector_for(config: Config) -> speech.SpeechDetector:
    """Silero VAD, loaded once per process (raises SpeechDetectorNotFoundError). No setting of
    `config` picks it: it runs on the CPU whatever `separate.device` says (one 32 ms chunk at a
    time, a handful of tiny ops each: about 0.65 s of one core per minute of audio)."""
    with _SEPARATOR_LOCK:
        return _load_speech_detector()


@functools.cache
def _load_speech_detector() -> speech.SpeechDetector:
    return speech.load_speech_detector("cpu")


def separate_step(catalog: Catalog, config: Config, video: VideoRecord, owner: str | None = None) -> StepOutcome:
    """probed -> separated: the accompaniment, energy curves and speech probabilities of the whole track."""

    def work(current: VideoRecord, held: leases.Hold) -> StepOutcome:
        storage = config.data_storage()
        stems = _own_folder(storage, storage.data.stems_dir(current.video_id))
        files = separate.separate_file(
            separator_for(config), _media_path(storage, current), stems, config.separate, speech_detector_for(config)
        )
        storage.upload(files.accompaniment_path, files.energy_path)
        held.check()
        key = _separate_key(config)
        catalog.mark_separated(current.video_id, files.model_id, key, stand_in=files.stand_in, models=files.models)
        return StepOutcome(current.video_id, VideoStatus.SEPARATED)

    return _held_step("separate", work, catalog, config, video, owner)


def clip_step(catalog: Catalog, config: Config, video: VideoRecord, owner: str | None = None) -> StepOutcome:
    """separated -> clipped: every clip of the plan cut, normalized and prescreened, each saved
    as soon as it is done. Clips already made under the current keys are kept as they are; where
    only the prescreen changed, only the prescreen runs again."""
    keys = stage_keys(config)

    def work(video: VideoRecord, held: leases.Hold) -> StepOutcome:
        if video.probe is None or video.separate_version is None or video.separator_model_id is None:
            raise StageError(ReasonCode.INTERNAL_ERROR, "video has no probe or separation to clip")
        clip.check_x264_params(config.clip)  # a bad one stops the run
        storage = config.data_storage()
        data = storage.data
        current = ClipVersions(video.separate_version, keys.clip, keys.loudness, keys.prescreen)
        existing = {known.clip_id: known for known in catalog.clips(video.video_id)}
        spans = clip.plan_clip_spans(video.probe.duration_s, config.clip.clip_s, video.probe.fps)
        clip_ids = [make_clip_id(video.video_id, span.start_s) for span in spans]
        _own_clip_folders(storage, video.video_id, clip_ids, set(existing))
        _media_path(storage, video)
        storage.fetch(data.stems_dir(video.video_id) / ACCOMPANIMENT_FILE)
        energy = read_energy_curves(storage.fetch(data.stems_dir(video.video_id) / ENERGY_FILE))

        workers = config.clip.workers
        threads = [_ffmpeg_threads(workers, clips_left=len(spans) - index) for index in range(len(spans))]

        def make(clip_id: str, span: clip.Span, ffmpeg_threads: int) -> ClipRecord | None:
            known = existing.get(clip_id)
            made = _make_clip(data, config, video, clip_id, span, known, current, energy, ffmpeg_threads)
            if made is not None:
                storage.upload(data.clip_dir(clip_id))  # under final keys before the catalog knows the clip
            return made

        pool = ThreadPoolExecutor(workers)
        try:  # in order: a clip is saved once it and every clip before it are done
            for made in pool.map(make, clip_ids, spans, threads):
                if made is not None:
                    held.check()
                    _save_clip(catalog, config, made)
        finally:
            pool.shutdown(cancel_futures=True)  # after a failure, start no further clip
        held.check()
        for retired in catalog.retire_clips(video.video_id, clip_ids):
            shutil.rmtree(data.clip_dir(retired), ignore_errors=True)
            storage.remove(data.clip_dir(retired))
        catalog.mark_clipped(video.video_id, len(spans), keys.clip)
        return StepOutcome(video.video_id, VideoStatus.CLIPPED)

    return _held_step("clip", work, catalog, config, video, owner)


def fingerprint_step(catalog: Catalog, config: Config, video: VideoRecord, owner: str | None = None) -> StepOutcome:
    """clipped -> clipped with a fingerprint: the near-duplicate fingerprint of the downloaded
    picture and the separated accompaniment, saved as `stems/<video>/fingerprint.npz`."""

    def work(current: VideoRecord, held: leases.Hold) -> StepOutcome:
        storage = config.data_storage()
        stems = _own_folder(storage, storage.data.stems_dir(current.video_id))
        accompaniment = storage.fetch(stems / ACCOMPANIMENT_FILE)
        fingerprint = dedup.fingerprint_video(_media_path(storage, current), accompaniment)
        dedup.save_fingerprint(fingerprint, stems / FINGERPRINT_FILE)
        storage.upload(stems / FINGERPRINT_FILE)
        held.check()
        catalog.mark_fingerprinted(current.video_id, dedup.FINGERPRINT_VERSION)
        return StepOutcome(current.video_id, VideoStatus.CLIPPED)

    return _held_step("fingerprint", work, catalog, config, video, owner)


def _save_clip(catalog: Catalog, config: Config, made: ClipRecord) -> None:
    """Save `made`, and reject it automatically for the flags the config says so."""
    catalog.save_clip(made)
    auto = [flag for flag in made.prescreen.flags if flag in config.prescreen.auto_reject]
    if auto:
        catalog.auto_reject(made.clip_id, auto)


def _make_clip(
    data: DataRoot,
    config: Config,
    video: VideoRecord,
    clip_id: str,
    span: clip.Span,
    known: ClipRecord | None,
    versions: ClipVersions,
    energy: EnergyCurves,
    ffmpeg_threads: int,
) -> ClipRecord | None:
    """The clip's record after doing what `known` lacks under `versions` (its ffmpeg run with
    `ffmpeg_threads`); None when nothing is to do."""
    folder = data.clip_dir(clip_id)
    music_path, video_path, picture_path = folder / MUSIC_FILE, folder / VIDEO_FILE, folder / PICTURE_FILE
    files_ok = known is not None and music_path.is_file() and video_path.is_file()
    cut_ok = files_ok and (known.versions.separate, known.versions.clip, known.versions.loudness) == (
        versions.separate,
        versions.clip,
        versions.loudness,
    )
    if cut_ok and known.versions.prescreen == versions.prescreen and known.status is not ClipStatus.RETIRED:
        return None
    if cut_ok:
        gained = known.loudness
        analysis = picture.picture_of(picture_path, video_path)  # saved when cut: no decoding
        music, sample_rate_hz = prescreen.read_music(music_path)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(folder)
        accompaniment = data.stems_dir(video.video_id) / ACCOMPANIMENT_FILE
        samples = clip.cut_music(accompaniment, span, config.clip)
        result = loudness.normalize_to_file(samples, clip.MUSIC_SAMPLE_RATE_HZ, music_path, config.loudness)
        gained = ClipLoudness(
            before_lufs=result.before.integrated_lufs,
            after_lufs=result.after.integrated_lufs,
            true_peak_dbtp=result.after.true_peak_dbtp,
            gain_db=result.gain_db,
            limited=result.limited,
            silent=result.silent,
        )
        analysis = clip.cut_video(
            data.resolve(video.media_path),
            span,
            music_path,
            video_path,
            config.clip,
            fps=video.probe.fps,
            threads=ffmpeg_threads,
        )
        analysis.save(picture_path)
        music, sample_rate_hz = result.samples.T, clip.MUSIC_SAMPLE_RATE_HZ  # what music.flac holds
    (folder / OLD_ANALYSIS_FILE).unlink(missing_ok=True)
    clip_energy = energy.span(span.start_s, span.end_s)
    scores = prescreen.prescreen_clip(analysis, music, sample_rate_hz, clip_energy, config.prescreen)
    return ClipRecord(
        clip_id=clip_id,
        video_id=video.video_id,
        start_s=span.start_s,
        end_s=span.end_s,
        status=ClipStatus.PENDING_REVIEW,
        fps=video.probe.fps,
        video_path=data.relative(video_path),
        music_path=data.relative(music_path),
        separator_model_id=video.separator_model_id,
        loudness=gained,
        prescreen=scores,
        versions=versions,
        stand_in=video.separator_stand_in,
    )


def _ffmpeg_threads(workers: int, clips_left: int) -> int:
    """Threads for a clip's ffmpeg, started with `clips_left` clips (itself included) still to
    start: the cores shared among the clips made at once, so that `workers` clips do not
    oversubscribe the CPU (threads beyond the cores cost 3-7 % more CPU). Clips are equally long
    and start in order, so the last `clips_left < workers` run alone together and share all cores
    (5 clips on 2 workers: the fifth gets both cores instead of leaving one idle)."""
    return max(1, (os.cpu_count() or 1) // max(1, min(workers, clips_left)))


def _media_path(storage: Storage, video: VideoRecord) -> Path:
    """The video's downloaded file, in this machine's data root (fetched from the store when needed)."""
    if video.media_path is None:
        raise StageError(ReasonCode.INTERNAL_ERROR, "video has no downloaded file")
    return storage.fetch(storage.data.resolve(video.media_path))


def _own_clip_folders(storage: Storage, video_id: str, planned: list[str], known: set[str]) -> None:
    """The video's clip folders made ready for the holder of its work lease: the planned clips' local
    temporary files removed; in the store, a dead owner's partial uploads aborted, the objects of every clip
    of this video the catalog does not know (planned or not: a dead owner's) deleted, and those of the clips
    it knows fetched. One listing of objects and one of uploads for the whole video."""
    clips_dir = storage.data.clips_dir
    for clip_id in planned:
        remove_stale_temps(storage.data.clip_dir(clip_id))

    def clip_of(path: Path) -> str | None:
        """The clip id of a path under clips/ when that clip is this video's, else None."""
        clip_id = dirname_to_id(path.relative_to(clips_dir).parts[0])
        try:
            return clip_id if split_clip_id(clip_id)[0] == video_id else None
        except ValueError:  # not a clip folder's name
            return None

    name_prefix = id_to_dirname(video_id) + ":"  # a video whose id extends this one shares it: `clip_of` decides
    storage.clear_partial_uploads(clips_dir, name_prefix, owned=lambda path: clip_of(path) is not None)
    listed = storage.listing(clips_dir, name_prefix)
    clip_of_path = {path: clip_id for path in listed if (clip_id := clip_of(path)) is not None}
    storage.delete([path for path, clip_id in clip_of_path.items() if clip_id not in known])
    storage.fetch_listed({path: listed[path] for path, clip_id in clip_of_path.items() if clip_id in known})


def _own_folder(storage: Storage, folder: Path) -> Path:
    """`folder` cleared of what a dead owner left there (temporary files, and a store's partial
    uploads), for the holder of its video's work lease."""
    remove_stale_temps(folder)
    storage.clear_partial_uploads(folder)
    return folder


Step = Callable[[Catalog, Config, VideoRecord, str | None], StepOutcome]  # (catalog, config, video, owner)
ToDo = Callable[[Catalog, Config, str | None], list[VideoRecord]]  # (catalog, config, only this video id)


def _with_status(status: VideoStatus) -> ToDo:
    def to_do(catalog: Catalog, _config: Config, video_id: str | None) -> list[VideoRecord]:
        return list(catalog.videos(statuses=[status], video_ids=None if video_id is None else [video_id]))

    return to_do


def _to_separate(catalog: Catalog, config: Config, video_id: str | None) -> list[VideoRecord]:
    return catalog.videos_to_separate(_separate_key(config), video_id)


def _to_clip(catalog: Catalog, config: Config, video_id: str | None) -> list[VideoRecord]:
    return catalog.videos_to_clip(stage_keys(config), video_id)


def _to_fingerprint(catalog: Catalog, _config: Config, video_id: str | None) -> list[VideoRecord]:
    return catalog.videos_to_fingerprint(dedup.FINGERPRINT_VERSION, video_id)


def _separate_key(config: Config) -> str:
    return config.separate.version_key(separate.STAGE_VERSION)


def _download_retry_delays_s(config: Config) -> list[float]:
    return [download.backoff_delay_s(attempt, config.download) for attempt in range(config.download.retries)]


def _separate_device(config: Config) -> str:
    return separate.resolve_device(config.separate.device)


def _nothing(_config: Config) -> None:
    return None


@dataclass(frozen=True)
class Stage:
    """One per-video stage, as the CLI, the flows and rebuild run it."""

    name: str
    step: Step  # runs the stage on one video under its work lease and records the outcome
    to_do: ToDo  # the videos the catalog says the stage has to do (by status and version key)
    version_key: Callable[[Config], str]  # code version (+ settings hash): recorded with the work and its errors
    preflight: Callable[[Config], object] = _nothing  # before any video: e.g. load the model (a missing one stops here)
    # the torch device the stage runs on (None: no model); a CUDA device: a flow task holds a slot of its GPU's limit
    device: Callable[[Config], str] | None = None
    retry_delays_s: Callable[[Config], list[float]] | None = None  # a flow task that raised is retried after these

    def pending(self, catalog: Catalog, config: Config) -> list[VideoRecord]:
        """Every video the catalog says this stage has to do."""
        return self.to_do(catalog, config, None)


STAGES: tuple[Stage, ...] = (
    # download and probe are never redone for a changed setting: their key is their code version
    Stage(
        "download",
        download_step,
        _with_status(VideoStatus.DISCOVERED),
        lambda _config: download.STAGE_VERSION,
        retry_delays_s=_download_retry_delays_s,
    ),
    Stage("probe", probe_step, _with_status(VideoStatus.DOWNLOADED), lambda _config: probe.STAGE_VERSION),
    Stage("separate", separate_step, _to_separate, _separate_key, preflight=separator_for, device=_separate_device),
    Stage("clip", clip_step, _to_clip, lambda config: stage_keys(config).clip),
    Stage("fingerprint", fingerprint_step, _to_fingerprint, lambda _config: f"fingerprint/{dedup.FINGERPRINT_VERSION}"),
)


def stage_named(name: str) -> Stage:
    """The stage called `name`; ConfigError naming the stages for another name."""
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise ConfigError(f"unknown stage {name!r}; stages are {', '.join(stage.name for stage in STAGES)}")


def run_stage(
    stage: Stage,
    catalog: Catalog,
    config: Config,
    videos: Iterable[VideoRecord],
    on_outcome: Callable[[StepOutcome], None] = lambda _outcome: None,
    owner: str | None = None,
) -> StageTally:
    """Run `stage` over `videos` in order: its preflight first when there are any, then its step on each,
    holding each video's lease for `owner` (default: this process); `on_outcome` sees each result (e.g. to
    move a progress bar)."""
    videos = list(videos)
    if videos:
        stage.preflight(config)
    tally = StageTally(stage.name)
    for video in videos:
        outcome = stage.step(catalog, config, video, owner)
        tally.add(outcome)
        on_outcome(outcome)
    return tally
