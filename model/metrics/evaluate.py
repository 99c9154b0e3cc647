"""Evaluate runs of generated music against a manifest's reference clips: every metric, per clip and per run.

In: `EvalClip`s (from a manifest: `manifest_eval_clips`), runs as {run name: {clip_id: music file}}
(`generated_files` finds a folder's files; `reference_runs` builds the ground-truth and shuffled-music
references), the loaded `MetricModels` and `EvalSettings`. Out: `RunResult` per run: `ClipResult` per
clip (paired metrics, rhythm, beat scores, transitions, beat and tempo agreement) and the clips whose
generated file was missing.

Per clip and run: the generated music is read as mono and resampled (soxr) to each metric's rate:
32 kHz for PANNs (KL, FD), the CLAP extractor's rate (48 kHz), 16 kHz for ImageBind, 22,050 Hz for onsets,
the beat tracker's rate for beats (22,050 Hz for librosa's). The rhythm score pairs the reference clip's
scene changes (detected in its video, once per clip for all runs, or the manifest's `scene_cuts_s`: `settings.scenes`)
with the generated music's beats; scene changes after the end of the generated music are not counted
(it has no beats there). Beat alignment at storyboard transitions (`transitions`) pairs the same scene
changes with the generated music's tracked beats (`model.music_features`), and beat and tempo agreement
(`agreement`) compare its tracked beats and tempo with the reference music's. The exclusion rule leaves a
clip out of both scores of video timing (Rhythm and transitions). The reference music is analysed once per
clip and shared by all runs.
The ImageBind score (when its checkpoint is there) is the cosine of ImageBind's embedding of the reference
clip's video (computed once per clip for all runs) and its audio embedding of the generated music
(`model.metrics.imagebind_inputs` says how each is cut and averaged); without the checkpoint it is None
and `MetricModels.imagebind_unavailable` says why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from dvmset.ids import id_to_dirname
from dvmset.records import ClipStatus
from dvmset.storage import DataRoot
from manifests.schema import ManifestError, manifest_metadata, read_manifest, resolve_media_root
from model.errors import FeatureError
from model.metrics.agreement import BEAT_MATCH_TOLERANCE_S, BEAT_SKIP_S, TEMPO_TOLERANCE, BeatAgreement, beat_agreement
from model.metrics.beats import BIN_S, ONSET_SAMPLE_RATE_HZ, BeatScores, beat_bins, beat_scores, onset_times_s
from model.metrics.clap import DEFAULT_CLAP_MODEL, ClapEncoder, clap_embeddings, load_clap_encoder, paired_cosines
from model.metrics.distribution import paired_kl_divergences
from model.metrics.imagebind import DEFAULT_CHECKPOINT as DEFAULT_IMAGEBIND_CHECKPOINT
from model.metrics.imagebind import ImageBind, checkpoint_path, load_imagebind, missing_weights_reason
from model.metrics.imagebind_inputs import AUDIO_SAMPLE_RATE_HZ as IMAGEBIND_SAMPLE_RATE_HZ
from model.metrics.imagebind_inputs import audio_melspecs, video_views
from model.metrics.panns import DEFAULT_CHECKPOINT, PANNS_SAMPLE_RATE_HZ, Cnn14, load_cnn14, panns_outputs
from model.metrics.rhythm import TOLERANCE_S, RhythmClip, default_beat_tracker, is_stable_visual, rhythm_clip
from model.metrics.scenes import ManifestScenes, SceneSettings, scene_changes_s
from model.metrics.trackers import BeatTracker
from model.metrics.transitions import TRANSITION_TOLERANCE_S, TransitionClip, transition_clip
from model.music_features import ANALYSIS_RATE_HZ, music_features
from model.tokens import MusicAt

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
GROUND_TRUTH_RUN = "ground truth"
SHUFFLED_RUN = "shuffled music"
IMAGEBIND_OFF = "turned off (no ImageBind checkpoint in the settings: --no-imagebind)"
NO_IMAGEBIND_LOADED = "no ImageBind model was loaded"


@dataclass(frozen=True)
class EvalSettings:
    """Protocol choices of an evaluation (all written into the report)."""

    scenes: SceneSettings | ManifestScenes = field(default_factory=SceneSettings)
    beat_tracker: BeatTracker = field(default_factory=default_beat_tracker)
    tolerance_s: float = TOLERANCE_S
    beat_bin_s: float = BIN_S
    panns_checkpoint: str = DEFAULT_CHECKPOINT
    clap_model_id: str = DEFAULT_CLAP_MODEL
    imagebind_checkpoint: str | None = DEFAULT_IMAGEBIND_CHECKPOINT  # None: no ImageBind score
    model_dir: Path | None = None
    device: str = "cpu"
    shuffle_seed: int = 0
    exclude: str = "none"  # `rhythm.EXCLUDE_RULES`: "stable-visual" leaves such clips out of Rhythm and transitions
    transition_tolerance_s: float = TRANSITION_TOLERANCE_S
    beat_match_tolerance_s: float = BEAT_MATCH_TOLERANCE_S
    beat_skip_s: float = BEAT_SKIP_S
    tempo_tolerance: float = TEMPO_TOLERANCE


@dataclass(frozen=True)
class EvalClip:
    """A reference clip: its id, query, video and music files, duration and the manifest's scene cuts."""

    clip_id: str
    query: str | None
    video_path: Path
    music_path: Path
    duration_s: float
    scene_cuts_s: tuple[float, ...] = ()
    static_share: float | None = None  # the prescreen's share of still picture


@dataclass(frozen=True)
class MetricModels:
    """The networks the metrics read; `imagebind` is None when its checkpoint is not there or turned off,
    and `imagebind_unavailable` then says why."""

    panns: Cnn14
    clap: ClapEncoder
    imagebind: ImageBind | None = None
    imagebind_unavailable: str = NO_IMAGEBIND_LOADED


@dataclass(frozen=True, eq=False)
class MusicAnalysis:
    """What every metric needs from one music file."""

    panns_embedding: np.ndarray  # [2048]
    panns_logits: np.ndarray  # [527]
    clap_embedding: np.ndarray  # [P], unit length
    beat_bins: np.ndarray  # [ceil(duration / bin)] bool, onsets per bin
    beats_s: np.ndarray  # beat times of the Rhythm score's beat protocol
    tracked_beats_s: np.ndarray  # `model.music_features`' beats (transitions, beat agreement)
    tempo_bpm: float  # `model.music_features`' tempo
    duration_s: float
    imagebind_embedding: np.ndarray | None = None  # [1024], ImageBind's audio embedding


@dataclass(frozen=True, eq=False)
class ClipResult:
    """One clip of one run: paired metrics against its reference, rhythm and beat scores."""

    clip_id: str
    query: str | None
    kl: float
    clap: float
    imagebind: float | None  # None without an ImageBind model
    rhythm: RhythmClip
    beats: BeatScores
    transitions: TransitionClip
    agreement: BeatAgreement
    generated_embedding: np.ndarray
    reference_embedding: np.ndarray


@dataclass(frozen=True)
class RunResult:
    """One run: its clips' results, the clip ids whose generated music was missing, and the clips whose
    generated music could not be read, with the reason."""

    name: str
    clips: tuple[ClipResult, ...]
    missing: tuple[str, ...]
    unreadable: tuple[tuple[str, str], ...] = ()


def manifest_eval_clips(manifest_path: Path, data_root: DataRoot) -> list[EvalClip]:
    """The accepted clips of a manifest, in its order, their media found where the manifest says
    (`manifests.schema.resolve_media_root`, as the trainer and `manifests check` find them; `data_root`
    for a manifest that records no media root); ManifestError when it has none."""
    table = read_manifest(manifest_path)
    media = DataRoot(resolve_media_root(manifest_path, manifest_metadata(table), default=data_root.root))
    accepted = table.filter(pc.equal(table["decision"], ClipStatus.ACCEPTED.value))
    if accepted.num_rows == 0:
        raise ManifestError(f"{manifest_path}: no accepted clips to evaluate ({table.num_rows} rows)")
    columns = ["clip_id", "query", "video_path", "music_path", "duration_s", "scene_cuts_s", "static_share"]
    return [
        EvalClip(
            row["clip_id"],
            row["query"],
            media.resolve(row["video_path"]),
            media.resolve(row["music_path"]),
            float(row["duration_s"]),
            tuple(row["scene_cuts_s"]),
            row["static_share"],
        )
        for row in accepted.select(columns).to_pylist()
    ]


def excluded_by_rule(clip: EvalClip, settings: EvalSettings) -> bool:
    """True when `settings.exclude` leaves `clip` out of the Rhythm score (`rhythm.STABLE_VISUAL_RULE`,
    on the manifest's prescreen figures); such a clip counts as excluded, as one without scene changes."""
    if settings.exclude == "none":
        return False
    return is_stable_visual(clip.static_share, len(clip.scene_cuts_s), clip.duration_s)


def generated_file(folder: Path, clip_id: str) -> Path | None:
    """`<folder>/<clip id as a file name>.<wav|flac|mp3|ogg>` (`dvmset.ids.id_to_dirname`), if present."""
    for suffix in AUDIO_SUFFIXES:
        candidate = Path(folder) / f"{id_to_dirname(clip_id)}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def generated_files(folder: Path, clips: Sequence[EvalClip]) -> dict[str, Path | None]:
    """{clip_id: its generated music in `folder`, or None when missing}."""
    return {clip.clip_id: generated_file(folder, clip.clip_id) for clip in clips}


def reference_runs(clips: Sequence[EvalClip], seed: int) -> dict[str, dict[str, Path | None]]:
    """The upper and lower references: each clip's own music, and another clip's music (a seeded
    derangement: clips shuffled, then each takes the next one's music). No shuffle under 2 clips."""
    runs: dict[str, dict[str, Path | None]] = {GROUND_TRUTH_RUN: {clip.clip_id: clip.music_path for clip in clips}}
    if len(clips) >= 2:
        order = np.random.default_rng(seed).permutation(len(clips))
        runs[SHUFFLED_RUN] = {
            clips[taker].clip_id: clips[giver].music_path for taker, giver in zip(order, np.roll(order, -1))
        }
    return runs


def load_metric_models(settings: EvalSettings) -> MetricModels:
    """PANNs Cnn14 and CLAP, from local folders or hubs (WeightsNotFoundError when missing), and ImageBind
    when its checkpoint file is there (a missing file is reported, one that does not load is an error)."""
    imagebind, unavailable = None, IMAGEBIND_OFF
    if settings.imagebind_checkpoint is not None:
        path = checkpoint_path(settings.imagebind_checkpoint, settings.model_dir)
        if path.is_file():
            imagebind = load_imagebind(str(path), device=settings.device)
        else:
            unavailable = missing_weights_reason(path.absolute())
    return MetricModels(
        panns=load_cnn14(settings.panns_checkpoint, settings.model_dir, settings.device),
        clap=load_clap_encoder(settings.clap_model_id, settings.model_dir, settings.device),
        imagebind=imagebind,
        imagebind_unavailable=unavailable,
    )


def analyse_music(path: Path, models: MetricModels, settings: EvalSettings) -> MusicAnalysis:
    """Every metric's view of one music file (decoded once, resampled once per metric rate)."""
    music = MusicAt(path)
    panns = panns_outputs(models.panns, [music(PANNS_SAMPLE_RATE_HZ)])
    onset_audio = music(ONSET_SAMPLE_RATE_HZ)
    duration_s = onset_audio.size / ONSET_SAMPLE_RATE_HZ
    rhythm = music_features(music(ANALYSIS_RATE_HZ), ANALYSIS_RATE_HZ)
    return MusicAnalysis(
        panns_embedding=panns.embeddings[0],
        panns_logits=panns.logits[0],
        clap_embedding=clap_embeddings(models.clap, [music(models.clap.sample_rate_hz)])[0],
        beat_bins=beat_bins(onset_times_s(onset_audio, ONSET_SAMPLE_RATE_HZ), duration_s, settings.beat_bin_s),
        beats_s=settings.beat_tracker.beats_s(music(settings.beat_tracker.sample_rate_hz)),
        tracked_beats_s=rhythm.beats_s,
        tempo_bpm=rhythm.tempo_bpm,
        duration_s=duration_s,
        imagebind_embedding=None
        if models.imagebind is None
        else models.imagebind.mean_embedding("audio", audio_melspecs(music(IMAGEBIND_SAMPLE_RATE_HZ))),
    )


def music_to_analyse(clips: Sequence[EvalClip], runs: Mapping[str, Mapping[str, Path | None]]) -> list[Path]:
    """Every distinct music file an evaluation reads: the references, then the runs' files."""
    paths = [clip.music_path for clip in clips] + [path for files in runs.values() for path in files.values() if path]
    return list(dict.fromkeys(paths))


def evaluate_runs(
    clips: Sequence[EvalClip],
    runs: Mapping[str, Mapping[str, Path | None]],
    models: MetricModels,
    settings: EvalSettings,
    on_music: Callable[[Path], None] | None = None,
    on_video: Callable[[Path], None] | None = None,
) -> list[RunResult]:
    """Every run's `RunResult`, in the order of `runs`; each music file is analysed once (then `on_music`
    is called with its path), each reference video's scene changes once (then `on_video` is called with
    its path: scene detection and ImageBind's video embedding are the slow part). A reference that cannot be read
    raises FeatureError; a generated file that cannot be read is recorded in its run and skipped. With an
    ImageBind model, each reference video is embedded once (a video that cannot be read raises FeatureError)."""
    analysed: dict[Path, MusicAnalysis | FeatureError] = {}

    def analysis(path: Path) -> MusicAnalysis | FeatureError:
        if path not in analysed:
            try:
                analysed[path] = analyse_music(path, models, settings)
            except FeatureError as error:
                analysed[path] = error
            if on_music is not None:
                on_music(path)
        return analysed[path]

    references = {}
    for clip in clips:
        reference = analysis(clip.music_path)
        if isinstance(reference, FeatureError):
            raise reference
        references[clip.clip_id] = reference
    changes, videos = {}, {}
    for clip in clips:
        changes[clip.clip_id] = clip_scene_changes_s(clip, settings.scenes)
        videos[clip.clip_id] = clip_video_embedding(clip, models.imagebind)
        if on_video is not None:
            on_video(clip.video_path)
    results = []
    for name, files in runs.items():
        clip_results, missing, unreadable = [], [], []
        for clip in clips:
            path = files.get(clip.clip_id)
            generated = analysis(path) if path is not None else None
            if generated is None:
                missing.append(clip.clip_id)
            elif isinstance(generated, FeatureError):
                unreadable.append((clip.clip_id, generated.message))
            else:
                clip_results.append(
                    _clip_result(
                        clip, references[clip.clip_id], generated, changes[clip.clip_id], videos[clip.clip_id], settings
                    )
                )
        results.append(RunResult(name, tuple(clip_results), tuple(missing), tuple(unreadable)))
    return results


def clip_scene_changes_s(clip: EvalClip, scenes: SceneSettings | ManifestScenes) -> tuple[float, ...]:
    """The clip's scene changes: the manifest's `scene_cuts_s`, or PySceneDetect's on its video."""
    return clip.scene_cuts_s if isinstance(scenes, ManifestScenes) else scene_changes_s(clip.video_path, scenes)


def clip_video_embedding(clip: EvalClip, imagebind: ImageBind | None) -> np.ndarray | None:
    """ImageBind's embedding [1024] of the clip's video (mean over its views), None without a model."""
    return None if imagebind is None else imagebind.mean_embedding("vision", video_views(clip.video_path))


def _clip_result(
    clip: EvalClip,
    reference: MusicAnalysis,
    generated: MusicAnalysis,
    changes_s: Sequence[float],
    video_embedding: np.ndarray | None,
    settings: EvalSettings,
) -> ClipResult:
    excluded = excluded_by_rule(clip, settings)
    audible_changes_s = [] if excluded else [change for change in changes_s if change <= generated.duration_s]
    imagebind = None
    if video_embedding is not None and generated.imagebind_embedding is not None:
        imagebind = float(paired_cosines(video_embedding[None], generated.imagebind_embedding[None])[0])
    return ClipResult(
        clip_id=clip.clip_id,
        query=clip.query,
        kl=float(paired_kl_divergences(reference.panns_logits[None], generated.panns_logits[None])[0]),
        clap=float(paired_cosines(reference.clap_embedding[None], generated.clap_embedding[None])[0]),
        imagebind=imagebind,
        rhythm=rhythm_clip(
            clip.clip_id, audible_changes_s, generated.beats_s, generated.duration_s, settings.tolerance_s
        ),
        beats=beat_scores(reference.beat_bins, generated.beat_bins),
        transitions=transition_clip(
            clip.clip_id,
            audible_changes_s,
            generated.tracked_beats_s,
            min(clip.duration_s, generated.duration_s),
            settings.transition_tolerance_s,
        ),
        agreement=beat_agreement(
            reference.tracked_beats_s,
            generated.tracked_beats_s,
            reference.tempo_bpm,
            generated.tempo_bpm,
            min(reference.duration_s, generated.duration_s),
            settings.beat_match_tolerance_s,
            settings.beat_skip_s,
            settings.tempo_tolerance,
        ),
        generated_embedding=generated.panns_embedding,
        reference_embedding=reference.panns_embedding,
    )
