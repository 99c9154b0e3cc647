"""Typed configuration: one TOML file plus `DVMSET_*` environment overrides.

Lookup order for the file: an explicit path, `$DVMSET_CONFIG`, `./dvmset.toml`, else the
embedded defaults alone. Environment overrides win over the file:
`DVMSET_DATA_ROOT=/data`, `DVMSET_CATALOG_URL=postgresql+psycopg://...`,
`DVMSET_DOWNLOAD__RATE_LIMIT=2M` (a double underscore descends into a section).
Relative paths in a file are taken relative to that file's folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tomllib
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from dvmset.errors import ConfigError
from dvmset.records import PrescreenFlag
from dvmset.storage import DataRoot
from dvmset.store import Storage, check_store_url, default_scratch_dir, is_store_url, storage_for

ENV_PREFIX = "DVMSET_"
log = logging.getLogger(__name__)
DEFAULT_FILE_NAME = "dvmset.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Runtime:
    """`Annotated` marker of a stage setting that says how the stage runs (where, how long, how many at
    once), not what it makes: it stays out of the stage's version key, so changing it redoes no work."""


RUNTIME = Runtime()


class _StageSection(_Section):
    """The settings of a stage whose output they decide: its version key hashes them all but those
    marked `RUNTIME`. (download and probe are never redone for a setting: their key is the code version.)"""

    def version_key(self, code_version: str) -> str:
        """`"loudness/1" -> "loudness/1+3f9a0c2e"`: the stage's code version plus a hash of the settings
        that change its output, so a rerun redoes exactly the work a change affects."""
        fields = type(self).model_fields
        runtime = {name for name, field in fields.items() if any(isinstance(m, Runtime) for m in field.metadata)}
        canonical = json.dumps(self.model_dump(mode="json", exclude=runtime), sort_keys=True)
        return f"{code_version}+{hashlib.sha1(canonical.encode()).hexdigest()[:8]}"


class SearchConfig(_Section):
    queries_file: Path | None = None  # None: the bundled curation/data/queries.toml
    platforms: tuple[str, ...] = ("youtube",)
    results_per_query: int = Field(20, ge=1, le=1000)
    socket_timeout_s: float = Field(15.0, gt=0)
    proxy: str | None = None

    @field_validator("platforms", mode="before")
    @classmethod
    def _split_platforms(cls, value: Any) -> Any:
        return _split_list(value)


class DownloadConfig(_Section):
    # clips are 480p: a 1080p source costs 2.3x the decoding of a 720p one per clip, for no gain
    max_height: int = Field(720, ge=144)
    min_duration_s: float = Field(60.0, ge=0)
    max_duration_s: float = Field(3 * 3600.0, gt=0)
    retries: int = Field(3, ge=0, le=20)
    backoff_base_s: float = Field(2.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    socket_timeout_s: float = Field(30.0, gt=0)
    cookies_file: Path | None = None
    rate_limit: str | None = None  # bytes/s as yt-dlp writes it: "500K", "4.2M"
    sleep_requests_s: float = Field(0.0, ge=0)  # pause between a video's HTTP requests
    sleep_interval_s: float = Field(0.0, ge=0)  # pause before each download
    max_sleep_interval_s: float = Field(0.0, ge=0)  # random pause up to this (>= sleep_interval_s)
    proxy: str | None = None


class ProbeConfig(_Section):
    min_duration_s: float = Field(60.0, ge=0)  # shorter than one clip: skipped as too_short
    decode_check_s: float = Field(3.0, gt=0)  # seconds decoded at the start and at the end
    timeout_s: float = Field(120.0, gt=0)


class SeparateConfig(_StageSection):
    model: str = "htdemucs"  # a Demucs model name, looked up in model_dir or Demucs' remote repos
    device: Annotated[str | None, RUNTIME] = None  # "cuda", "cuda:1", "cpu"; None: CUDA when available, else CPU
    chunk_s: float = Field(60.0, gt=0)  # tracks are separated in windows of chunk_s + overlap_s
    overlap_s: float = Field(5.0, ge=0)  # cross-faded between windows
    frame_s: float = Field(0.1, gt=0)  # hop of the vocals/accompaniment energy curves
    decode_timeout_s: Annotated[float, RUNTIME] = Field(900.0, gt=0)
    # torch CPU threads per separation, whatever runs it (a thread pool, a Dask worker): the thread count
    # decides the order of float sums, so one fixed value gives the same bytes on every runner (on one CPU)
    threads: Annotated[int, RUNTIME] = Field(1, ge=1)


X264Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"]


class ClipConfig(_StageSection):
    clip_s: float = Field(60.0, gt=0)  # the remainder shorter than a clip is dropped
    # clips are re-encoded to at most this many rows: 480 is over twice what the model reads (224) and
    # fine to review; 720 takes ~1.5x the CPU (bench/stages.py: 8.5x instead of 10.5x real time on 2 cores)
    max_height: int = Field(480, ge=144)
    # superfast + mb-tree over 10 frames of lookahead (bench/stages.py, 720p): the file size and SSIM of
    # veryfast at about 62 % of its x264 CPU; "ultrafast" costs half again but makes ~2x larger files.
    x264_preset: X264Preset = "superfast"  # faster presets: less CPU, larger files
    # x264 options on top of the preset (x264's own `key=value:key=value`); "" keeps the preset's own
    x264_params: str = Field("mbtree=1:rc-lookahead=10", pattern=r"^([a-z0-9-]+=[^:=\s]+(:[a-z0-9-]+=[^:=\s]+)*)?$")
    crf: int = Field(23, ge=0, le=51)  # x264 constant rate factor: lower is better and larger
    workers: Annotated[int, RUNTIME] = Field(2, ge=1)  # clips of one video made at once (each ~0.4 GB at the peak)
    timeout_s: Annotated[float, RUNTIME] = Field(600.0, gt=0)  # per ffmpeg run


class LoudnessConfig(_StageSection):
    target_lufs: float = Field(-14.0, le=0)  # ITU-R BS.1770 integrated loudness of every clip
    true_peak_ceiling_dbtp: float = Field(-1.0, le=0)
    silence_lufs: float = Field(-70.0, le=0)  # quieter clips are flagged silent and left unchanged


class PrescreenConfig(_StageSection):
    silence_dbfs: float = Field(-45.0, le=0)  # a 0.1 s frame of the normalized music under this is silent
    # speech: Silero VAD's probabilities (of the vocals stem, every 32 ms) under Silero's own rules
    speech_threshold: float = Field(0.5, gt=0, lt=1)  # speech starts at this probability (ends under it - 0.15)
    min_speech_s: float = Field(0.25, ge=0)  # shorter bursts of speech are dropped
    min_speech_gap_s: float = Field(0.1, ge=0)  # a pause must last this long to end a stretch of speech
    speech_pad_s: float = Field(0.03, ge=0)  # each stretch of speech is widened by this on both sides
    static_diff: float = Field(1.0, ge=0)  # mean absolute luma change (0-255) under which frames are static
    scene_threshold: float = Field(27.0, gt=0)  # PySceneDetect ContentDetector threshold
    min_scene_s: float = Field(0.5, gt=0)  # shortest scene PySceneDetect reports
    max_non_music_s: float = Field(5.0, ge=0)  # flag non_music above this (the paper's criterion)
    max_static_share: float = Field(0.5, ge=0, le=1)  # flag static above this share of the clip
    max_noise_score: float = Field(0.35, ge=0, le=1)  # flag noise above this spectral flatness
    auto_reject: tuple[PrescreenFlag, ...] = ()  # flags that reject a clip without review (off by default)

    @field_validator("auto_reject", mode="before")
    @classmethod
    def _split_flags(cls, value: Any) -> Any:
        return _split_list(value)


class PublishConfig(_Section):
    test_share: float = Field(0.07, gt=0, le=0.5)  # target share of clips in test (the paper: 268 / 3,839)
    min_groups_per_query: int = Field(2, ge=2)  # queries with this many groups get both splits
    seed: int = 0  # salts the order new groups are assigned in


class ModelConfig(_Section):
    """The network VidMusician trains and generates with: what changes its shape or its inputs (`dvmset train`,
    `train-rhythm` and `generate` read it; their flags override it). The defaults are the paper's; model ids
    None: the model code's defaults (facebook/musicgen-medium, openai/clip-vit-base-patch32)."""

    musicgen: str | None = None  # MusicGen hub id or folder
    clip: str | None = None  # CLIP hub id or folder
    # conditioning sizes the paper leaves open (bench/parameters.py: cls + lora_rank 32 lands on its 24.79M)
    semantic_feature: Literal["image_embeds", "cls"] = "image_embeds"  # CLIP's projected CLS, or the CLS token
    embedding_layers: int = Field(2, ge=1)  # linear layers of the embedding manager
    lora_rank: int = Field(8, ge=1)
    lora_alpha: float = Field(16.0, gt=0)
    lora_targets: tuple[str, ...] = ("q", "v")  # T5 attention projections that get LoRA adapters
    # Diff-V2M's ideas as options (model/video_conditions.py): stage 2's rhythm source, and the affect features
    rhythm: Literal["clip-distance", "predicted-odf"] = "clip-distance"  # VidMusician's curve, or a predicted ODF
    rhythm_predictor: Path | None = None  # for predicted-odf: the rhythm_predictor.pt `dvmset train-rhythm` wrote
    affect: Literal["off", "on"] = "off"  # on: each second's affect features join the semantic condition

    @field_validator("lora_targets", mode="before")
    @classmethod
    def _split_targets(cls, value: Any) -> Any:
        return _split_list(value)


class TrainConfig(_Section):
    """How `dvmset train` optimizes the [model] (its flags override these); the defaults are the paper's."""

    steps: int | None = Field(None, ge=1)  # optimizer steps in all; None: `epochs` passes over the clips
    epochs: float = Field(120.0, gt=0)
    batch_size: int = Field(16, ge=1)
    accumulate: int = Field(1, ge=1)  # micro-batches a step is split into
    crop_s: float = Field(30.0, gt=0)
    seed: int = 0
    save_every: int = Field(500, ge=1)  # steps between checkpoints
    learning_rate: float | None = Field(None, gt=0)  # None: the stage's (1e-4 stage 1, 1e-5 stage 2)
    warmup_steps: int = Field(6000, ge=1)
    device: str | None = None  # None: CUDA when there is one


class RhythmConfig(_Section):
    """`dvmset train-rhythm`'s settings (its flags override them): the rhythm predictor's sizes and training
    (Diff-V2M's idea). It reads the CLIP features [model] names (`clip`, `semantic_feature`)."""

    epochs: int = Field(100, ge=1)  # passes over the train split's clips
    batch_size: int = Field(16, ge=1)  # whole clips per step
    learning_rate: float = Field(1e-3, gt=0)  # AdamW, constant
    weight_decay: float = Field(0.01, ge=0)
    hidden: int = Field(64, ge=1)  # channels of the temporal convolutions
    layers: int = Field(3, ge=1)  # dilated convolution blocks (3: +-1.4 s of context)
    affect: bool = True  # the predictor also reads the per-second affect features
    seed: int = 0  # initial weights and clip order
    device: str | None = None  # None: the CPU


class EvaluateConfig(_Section):
    """`dvmset evaluate`'s protocol and metric models (its flags override them); the defaults are the
    paper's (section 5.2). Every choice is written into the report, and the resolved config beside it."""

    references: bool = True  # also score the ground-truth music and music shuffled across clips
    shuffle_seed: int = 0
    scenes: Literal["detect", "manifest"] = "detect"  # PySceneDetect on each video, or the manifest's scene_cuts_s
    scene_detector: Literal["content", "adaptive", "histogram", "hash"] = "content"
    scene_threshold: float | None = Field(None, gt=0)  # None: the detector's own default
    min_scene_frames: int = Field(15, ge=1)
    beats: str = "onsets-d2m"  # the Rhythm score's beats: onsets-d2m, onsets-loris, beat_track, plp, or module:function
    tolerance_s: float = Field(0.1, ge=0)  # a beat this close hits a scene change (Rhythm)
    exclude: Literal["none", "stable-visual"] = "none"  # clips left out of the scores of video timing
    beat_bin_s: float = Field(1.0, ge=0.01)  # onset bin of BCS/BHS
    transition_tolerance_s: float = Field(0.1, ge=0)  # storyboard transitions against tracked beats
    beat_match_tolerance_s: float = Field(0.07, gt=0)  # beat F-measure window (mir_eval's 70 ms)
    beat_skip_s: float = Field(5.0, ge=0)  # beats before this are left out of the F-measure (as mir_eval)
    tempo_tolerance: float = Field(0.04, gt=0, lt=1)  # relative tempo error that still agrees
    panns: str = "Cnn14_mAP=0.431.pth"  # PANNs Cnn14 checkpoint file or name
    clap: str = "laion/larger_clap_music"  # CLAP hub id or folder
    imagebind: str = "imagebind/imagebind_huge.pth"  # relative: under the model folder when not here
    imagebind_score: bool = True  # False: leave the ImageBind score out
    device: str = "cpu"


class StorageConfig(_Section):
    """Where the data root's files live when `data_root` is an object-store URL (`dvmset.store`)."""

    url: str | None = None  # set from data_root = "s3://bucket/prefix"; None: the data root is a local folder
    endpoint_url: str | None = None  # an S3-compatible server (MinIO, GCS interop); None: the SDK's own (AWS)
    scratch_dir: Path | None = None  # this machine's working copy; None: ~/.cache/dvmset/scratch/<bucket>/<prefix>
    scratch_gib: float = Field(100.0, gt=0)  # copies used longest ago are removed past this size (`Storage.trim`)


class Config(_Section):
    data_root: Path = Path("data")  # a local folder, or an object-store URL (see StorageConfig)
    catalog_url: str | None = None  # None: SQLite at <data_root>/catalog.sqlite
    model_dir: Path | None = None
    storage: StorageConfig = StorageConfig()
    search: SearchConfig = SearchConfig()
    download: DownloadConfig = DownloadConfig()
    probe: ProbeConfig = ProbeConfig()
    separate: SeparateConfig = SeparateConfig()
    clip: ClipConfig = ClipConfig()
    loudness: LoudnessConfig = LoudnessConfig()
    prescreen: PrescreenConfig = PrescreenConfig()
    publish: PublishConfig = PublishConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    rhythm: RhythmConfig = RhythmConfig()

    @model_validator(mode="before")
    @classmethod
    def _model_keys_out_of_train(cls, data: Any, info: ValidationInfo) -> Any:
        return _move_model_keys(data, (info.context or {}).get("source", "the config"))

    @model_validator(mode="before")
    @classmethod
    def _store_url_out_of_data_root(cls, data: Any) -> Any:
        return _move_store_url(data)

    @property
    def resolved_catalog_url(self) -> str:
        """The SQLAlchemy URL of the catalog (SQLite under the data root by default)."""
        if self.catalog_url:
            return self.catalog_url
        return f"sqlite:///{DataRoot(self.data_root).catalog_path.resolve()}"

    def data_storage(self) -> Storage:
        """The data root's files: the local folder, backed by the object store `storage.url` names."""
        return storage_for(self.data_root, self.storage.url, self.storage.endpoint_url)


def _move_model_keys(data: Any, source: str) -> Any:
    """`data` with the [model] keys that a config written before [model] existed has under [train] moved
    into [model], said in one warning line; ValueError when a key is under both."""
    train, model = (data.get(name) if isinstance(data, dict) else None for name in ("train", "model"))
    moved = [key for key in train if key in ModelConfig.model_fields] if isinstance(train, dict) else []
    if not moved or not isinstance(model, dict | None):
        return data
    both = [key for key in moved if key in (model or {})]
    if both:
        raise ValueError(
            f"{', '.join(both)} set under both [train] (where configs before [model] had it) and "
            "[model]: keep the one under [model]"
        )
    log.warning(
        "%s: %s belong to the [model] section now: read from [train] this time; move them to [model]",
        source,
        ", ".join(moved),
    )
    kept = {key: value for key, value in train.items() if key not in moved}
    return {**data, "train": kept, "model": {**(model or {}), **{key: train[key] for key in moved}}}


def _move_store_url(data: Any) -> Any:
    """`data` with an object-store `data_root` ("s3://bucket/prefix") moved to `storage.url`, and the
    data root set to this machine's scratch folder (`storage.scratch_dir`, else one under
    ~/.cache/dvmset/scratch named after the URL). ValueError for a URL that carries credentials, or a
    store without a catalog of its own (the default SQLite file would stay on one machine)."""
    root = data.get("data_root") if isinstance(data, dict) else None
    if not isinstance(root, str) or not is_store_url(root):
        return data
    url = check_store_url(root)
    if not data.get("catalog_url"):
        raise ValueError(
            f"data_root {url} is an object store: set catalog_url too (PostgreSQL, e.g. "
            "postgresql+psycopg://user@host/dvmset, for runs across machines): the default SQLite catalog "
            "would stay on this machine"
        )
    storage = dict(data.get("storage") or {})
    storage["url"] = url
    scratch = storage.get("scratch_dir") or default_scratch_dir(url)
    return {**data, "data_root": scratch, "storage": storage}


def override_section(config: Config, section: str, overrides: Mapping[str, Any]) -> Config:
    """`config` with `overrides` over its `section` (a command's flags over its section); ConfigError
    when one is out of range."""
    current = getattr(config, section)
    try:
        updated = type(current).model_validate({**current.model_dump(), **overrides})
    except ValidationError as exc:
        raise ConfigError(f"invalid {section} settings: {exc}") from exc
    return config.model_copy(update={section: updated})


def portable(config: Config) -> Config:
    """`config` with absolute data and model folders (and rhythm predictor file), so that its TOML repeats a run
    from any folder."""
    absolute: dict[str, Any] = {"data_root": config.data_root.resolve()}
    if config.model_dir is not None:
        absolute["model_dir"] = config.model_dir.resolve()
    predictor = config.model.rhythm_predictor
    if predictor is not None:
        absolute["model"] = config.model.model_copy(update={"rhythm_predictor": predictor.resolve()})
    return config.model_copy(update=absolute)


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


_NOT_SETTINGS = {f"{ENV_PREFIX}CONFIG", f"{ENV_PREFIX}WEIGHTS_CACHE"}  # variables that are not config keys


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """`DVMSET_A__B=v` -> `{"a": {"b": v}}`; JSON values (lists, numbers) are decoded when they parse."""
    overrides: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key in _NOT_SETTINGS or key.startswith(f"{ENV_PREFIX}TEST_"):
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        try:
            value: Any = json.loads(raw) if raw[:1] in "[{" else raw
        except json.JSONDecodeError:
            value = raw
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return overrides


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_PATH_KEYS = {
    (): ("data_root", "model_dir"),
    ("storage",): ("scratch_dir",),
    ("search",): ("queries_file",),
    ("download",): ("cookies_file",),
    ("model",): ("rhythm_predictor",),
    ("train",): ("rhythm_predictor",),  # [train]: configs before [model]
}


def _anchor_paths(data: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Make the file's relative path settings relative to the file's folder."""
    data = dict(data)
    for section, keys in _PATH_KEYS.items():
        node = data
        for part in section:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        for key in keys:
            value = node.get(key)
            if isinstance(value, str) and value and not is_store_url(value) and not Path(value).is_absolute():
                node[key] = str(base_dir / node[key])
    return data


def find_config_file(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    """The config file to read, or None for embedded defaults. An explicit path must exist."""
    candidate = explicit or (Path(environ[f"{ENV_PREFIX}CONFIG"]) if environ.get(f"{ENV_PREFIX}CONFIG") else None)
    if candidate is not None:
        if not candidate.is_file():
            raise ConfigError(f"config file {candidate} does not exist")
        return candidate
    local = Path.cwd() / DEFAULT_FILE_NAME
    return local if local.is_file() else None


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the config file (see module doc) and apply environment overrides."""
    environ = os.environ if environ is None else environ
    file_path = find_config_file(path, environ)
    data: dict[str, Any] = {}
    if file_path is not None:
        try:
            data = tomllib.loads(file_path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {file_path}: {exc}") from exc
        data = _anchor_paths(data, file_path.parent.resolve())
    data = _merge(data, _env_overrides(environ))
    context = {"source": str(file_path or f"the {ENV_PREFIX}* environment")}  # named by a warning
    try:
        return Config.model_validate(data, context=context)
    except ValidationError as exc:
        source = file_path or "embedded defaults"
        raise ConfigError(f"invalid configuration ({source} + {ENV_PREFIX}* environment):\n{_reasons(exc)}") from None


def _reasons(exc: ValidationError) -> str:
    """One line per invalid setting (`section.key: why`), never the values given (a URL may hold a secret)."""
    return "\n".join(
        f"  {'.'.join(str(part) for part in error['loc']) or 'config'}: {error['msg']}" for error in exc.errors()
    )


# what `dvmset init` writes: every key with its default and a comment (dvmset/starter_config.toml)
STARTER_CONFIG = files("dvmset").joinpath("starter_config.toml").read_text(encoding="utf-8")


def config_toml(config: Config) -> str:
    """The whole config as TOML text that `load_config` reads back to an equal config (unset
    optional settings are left out; paths are written as given)."""
    lines: list[str] = []
    sections: list[str] = []
    for name, value in config.model_dump(mode="json").items():
        if isinstance(value, dict):
            body = [f"{key} = {json.dumps(item)}" for key, item in value.items() if item is not None]
            sections.append("\n".join([f"[{name}]", *body]))
        elif value is not None:
            lines.append(f"{name} = {json.dumps(value)}")
    return "\n\n".join(["\n".join(lines), *sections]) + "\n"
