"""Training data for VidMusician: a manifest's accepted clips -> random aligned crops -> padded batches.

In: a manifest Parquet file (`manifests.schema`; its media paths start at the data root), the CLIP and
MusicGen model ids whose cached inputs are read (`features/<clip_id>/`, see `model.features` and
`model.tokens`; `ensure_cached` computes the missing ones once, with progress bars), and the model's
`VideoConditions` (`model.video_conditions`: semantic feature, affect, rhythm source). The rhythm
representations of the music (`model.music_features`) and the video's structure and affect
(`model.video_structure`) are cached by `ensure_rhythm_cached` and read per clip by `TrainingClips.music`
and `TrainingClips.affect`.
Out, per optimizer step: `TrainingBatch`es of random crops (`model.train.crop_clip`), padded:
- global_embeds `[B, N, D]` and global_mask `[B, N]` (1 = a real second of the crop): the semantic condition
  (with `affect` on, D includes the 4 affect columns);
- labels `[B, T + K - 1, K]`: the crop's codes `[K, T]`, padded with the pad id to the longest crop and
  laid out by MusicGen's delay pattern (the pad id carries no loss);
- rhythm_curve `[B, T]`: the rhythm source's 50 Hz curve brought to the codes' frame rate (max-pooled, so a
  cut survives a coarser codec; unchanged for MusicGen's 50 Hz), 0 (no visual change) past a crop's end.

`DataOrder` is the data order: epoch after epoch, a seeded permutation of the clips, read in order.
Its state is (seed, epoch, position), and each sample's crop comes from a generator seeded by that
sample's (seed, epoch, position), so a restored order replays exactly the samples and crops that an
uninterrupted run would have seen.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.compute as pc
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from dvmset.errors import ReasonCode
from dvmset.records import ClipStatus
from dvmset.storage import DataRoot
from manifests.schema import ManifestError, manifest_metadata, read_manifest, resolve_media_root
from model.errors import FeatureError
from model.features import load_cached_visual_features, load_clip_encoder, visual_features_for_clips
from model.music_features import MusicFeatures, clip_music_features, load_cached_music_features
from model.tokens import (
    apply_delay_pattern,
    load_audio_codec,
    load_cached_music_codes,
    music_codes_for_clips,
)
from model.train import CROP_S, ClipCrop, crop_clip
from model.video_conditions import VideoConditions
from model.video_structure import clip_video_structure, load_cached_video_structure

PAPER_CONDITIONS = VideoConditions()  # the paper's conditions (frozen): the dataset's default


@dataclass(frozen=True)
class Sample:
    """One draw of the data order: the clip's index and the seed of its random crop."""

    index: int
    crop_seed: int


@dataclass
class DataOrder:
    """Seeded epochs of shuffled clip indices, resumable from `state_dict()` (see the module docstring)."""

    num_clips: int
    seed: int = 0
    epoch: int = 0
    position: int = 0
    _permutation: tuple[int, list[int]] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.num_clips < 1:
            raise ValueError("the data order needs at least one clip")
        if not 0 <= self.position < self.num_clips:
            raise ValueError(f"position {self.position} is outside an epoch of {self.num_clips} clips")

    def take(self, count: int) -> list[Sample]:
        """The next `count` samples (crossing into the next epoch when this one ends)."""
        samples = []
        for _ in range(count):
            samples.append(Sample(self._epoch_permutation()[self.position], self._crop_seed()))
            self.position += 1
            if self.position == self.num_clips:
                self.epoch, self.position = self.epoch + 1, 0
        return samples

    def state_dict(self) -> dict[str, int]:
        return {"num_clips": self.num_clips, "seed": self.seed, "epoch": self.epoch, "position": self.position}

    @classmethod
    def from_state_dict(cls, state: dict[str, int]) -> DataOrder:
        return cls(state["num_clips"], state["seed"], state["epoch"], state["position"])

    def _epoch_permutation(self) -> list[int]:
        if self._permutation is None or self._permutation[0] != self.epoch:
            generator = torch.Generator().manual_seed(_mix(self.seed, self.epoch))
            self._permutation = (self.epoch, torch.randperm(self.num_clips, generator=generator).tolist())
        return self._permutation[1]

    def _crop_seed(self) -> int:
        return _mix(self.seed, self.epoch, self.position)


@dataclass(frozen=True)
class ClipInputs:
    """One clip's model inputs: codes `[K, T]`, the semantic condition global_embeds `[T1, D]` and the
    rhythm_curve `[T50]`."""

    codes: torch.Tensor
    global_embeds: torch.Tensor
    rhythm_curve: torch.Tensor


class TrainingClips:
    """The cached inputs of a list of clips, read from the data root on demand, and their random crops."""

    def __init__(
        self,
        data_root: DataRoot,
        clip_ids: Sequence[str],
        clip_model_id: str,
        musicgen_model_id: str,
        codes_rate_hz: float,
        crop_s: float = CROP_S,
        conditions: VideoConditions = PAPER_CONDITIONS,
    ):
        if not clip_ids:
            raise ValueError("no clips to train on")
        self.data_root = data_root
        self.clip_ids = list(clip_ids)
        self.clip_model_id = clip_model_id
        self.musicgen_model_id = musicgen_model_id
        self.codes_rate_hz = codes_rate_hz
        self.crop_s = crop_s
        self.conditions = conditions

    def __len__(self) -> int:
        return len(self.clip_ids)

    def inputs(self, index: int) -> ClipInputs:
        """The codes of clip `index` and its conditions (`self.conditions`) from its cached features;
        FeatureError when an input they need is not cached."""
        clip_id = self.clip_ids[index]
        features = load_cached_visual_features(self.data_root, clip_id, self.clip_model_id)
        codes = load_cached_music_codes(self.data_root, clip_id, self.musicgen_model_id)
        if features is None or codes is None:
            what = "CLIP features" if features is None else "MusicGen codes"
            raise FeatureError(ReasonCode.SOURCE_NOT_FOUND, f"{what} of {clip_id} are not cached (run ensure_cached)")
        affect = self.affect(index) if self.conditions.needs_affect else None
        curve = self.conditions.rhythm_curve_50hz(features, affect)
        return ClipInputs(codes, self.conditions.semantic(features, affect), curve)

    def affect(self, index: int) -> torch.Tensor:
        """The cached per-second affect `[T1, 4]` of clip `index` (`model.video_structure`); FeatureError when
        it is not cached (`ensure_rhythm_cached`)."""
        structure = load_cached_video_structure(self.data_root, self.clip_ids[index], self.clip_model_id)
        if structure is None:
            message = f"the video structure of {self.clip_ids[index]} is not cached (run ensure_rhythm_cached)"
            raise FeatureError(ReasonCode.SOURCE_NOT_FOUND, message)
        return torch.from_numpy(structure.affect)

    def music(self, index: int) -> MusicFeatures:
        """The cached rhythm representations of clip `index`'s music (ODF, tempogram, mel, beats); FeatureError
        when they are not cached (`ensure_rhythm_cached`)."""
        features = load_cached_music_features(self.data_root, self.clip_ids[index])
        if features is None:
            message = f"the music features of {self.clip_ids[index]} are not cached (run ensure_rhythm_cached)"
            raise FeatureError(ReasonCode.SOURCE_NOT_FOUND, message)
        return features

    def crop(self, sample: Sample) -> ClipCrop:
        """The random crop of `sample` (the same sample always gives the same crop)."""
        inputs = self.inputs(sample.index)
        generator = torch.Generator().manual_seed(sample.crop_seed)
        return crop_clip(
            inputs.codes, inputs.global_embeds, inputs.rhythm_curve, self.codes_rate_hz, generator, self.crop_s
        )


@dataclass(frozen=True)
class TrainingBatch:
    """Padded crops (see the module docstring for the shapes)."""

    global_embeds: torch.Tensor
    global_mask: torch.Tensor
    labels: torch.Tensor
    rhythm_curve: torch.Tensor
    num_frames: int  # real (unpadded) music frames in the batch, summed over its crops

    def to(self, device: torch.device) -> TrainingBatch:
        return TrainingBatch(
            self.global_embeds.to(device),
            self.global_mask.to(device),
            self.labels.to(device),
            self.rhythm_curve.to(device),
            self.num_frames,
        )

    def model_inputs(self, with_rhythm: bool) -> dict[str, torch.Tensor]:
        """Keyword arguments of `VidMusician.forward` (the curve only for the stage-2 model)."""
        inputs = {"global_embeds": self.global_embeds, "global_mask": self.global_mask, "labels": self.labels}
        return {**inputs, "rhythm_curve": self.rhythm_curve} if with_rhythm else inputs


def collate(crops: Sequence[ClipCrop], pad_token_id: int) -> TrainingBatch:
    """Crops -> one padded `TrainingBatch`."""
    num_frames = max(crop.codes.shape[-1] for crop in crops)
    num_seconds = max(crop.global_embeds.shape[0] for crop in crops)
    num_codebooks, clip_dim = crops[0].codes.shape[0], crops[0].global_embeds.shape[-1]
    codes = torch.full((len(crops), num_codebooks, num_frames), pad_token_id, dtype=torch.long)
    embeds = torch.zeros(len(crops), num_seconds, clip_dim, dtype=torch.float32)
    mask = torch.zeros(len(crops), num_seconds, dtype=torch.long)
    curve = torch.zeros(len(crops), num_frames, dtype=torch.float32)
    for row, crop in enumerate(crops):
        frames, seconds = crop.codes.shape[-1], crop.global_embeds.shape[0]
        codes[row, :, :frames] = crop.codes
        embeds[row, :seconds] = crop.global_embeds
        mask[row, :seconds] = 1
        curve[row, :frames] = curve_at_frames(crop.rhythm_curve.float(), frames)
    labels = apply_delay_pattern(codes, pad_token_id).transpose(1, 2).contiguous()
    return TrainingBatch(embeds, mask, labels, curve, sum(crop.codes.shape[-1] for crop in crops))


def curve_at_frames(curve: torch.Tensor, num_frames: int) -> torch.Tensor:
    """A rhythm curve `[T50]` -> `[num_frames]`: unchanged at equal length, else max-pooled (or repeated)."""
    if curve.shape[0] == num_frames:
        return curve
    return F.adaptive_max_pool1d(curve[None, None], num_frames)[0, 0]


@dataclass(frozen=True)
class ManifestClip:
    """An accepted clip of a manifest: its id, length and scene cuts (seconds from its start)."""

    clip_id: str
    duration_s: float
    scene_cuts_s: tuple[float, ...]


def manifest_clips(manifest_path: Path, data_root: DataRoot) -> list[ManifestClip]:
    """The accepted clips of a manifest, in its order. Its media paths start where the manifest says
    (`manifests.schema.resolve_media_root`: its recorded `media_root`, the same from any working
    folder; `data_root` for a manifest that records none). ManifestError when it has none, or when a
    clip's media is not where the feature caches read it (`clips/<clip_id>/video.mp4`, `music.flac`
    under `data_root`)."""
    table = read_manifest(manifest_path)
    media = DataRoot(resolve_media_root(manifest_path, manifest_metadata(table), default=data_root.root))
    accepted = table.filter(pc.equal(table["decision"], ClipStatus.ACCEPTED.value))
    if accepted.num_rows == 0:
        raise ManifestError(f"{manifest_path}: no accepted clips to train on ({table.num_rows} rows)")
    rows = accepted.select(["clip_id", "video_path", "music_path", "duration_s", "scene_cuts_s"]).to_pylist()
    for row in rows:
        clip_id = row["clip_id"]
        read = {"video_path": data_root.clip_video_path(clip_id), "music_path": data_root.clip_music_path(clip_id)}
        for column, path in read.items():
            if media.resolve(row[column]) != Path(os.path.abspath(path)):
                raise ManifestError(
                    f"{manifest_path}: clip {clip_id} has {column} {row[column]!r}; the model reads "
                    f"{path.name} from its clip folder {path.parent}"
                )
    return [ManifestClip(row["clip_id"], row["duration_s"], tuple(row["scene_cuts_s"])) for row in rows]


@dataclass(frozen=True)
class CacheReport:
    """How many clips `ensure_cached` had to compute, per kind."""

    features_computed: int
    codes_computed: int


def ensure_cached(
    data_root: DataRoot,
    clip_ids: Sequence[str],
    clip_model_id: str,
    musicgen_model_id: str | None,
    model_dir: Path | None = None,
    device: str | None = None,
) -> CacheReport:
    """Compute and cache the MusicGen codes (none for `musicgen_model_id` None), then the CLIP features,
    that are not cached yet. A model is loaded only when some clip needs it, and before any clip is worked
    on (raises `WeightsNotFoundError` when it cannot be). The codes come first: they are quick, and their
    model is the backbone's."""
    missing_codes = (
        []
        if musicgen_model_id is None
        else [c for c in clip_ids if load_cached_music_codes(data_root, c, musicgen_model_id) is None]
    )
    if missing_codes:
        music_codes_for_clips(data_root, missing_codes, load_audio_codec(musicgen_model_id, model_dir, device))
    missing_features = [c for c in clip_ids if load_cached_visual_features(data_root, c, clip_model_id) is None]
    if missing_features:
        visual_features_for_clips(data_root, missing_features, load_clip_encoder(clip_model_id, model_dir, device))
    return CacheReport(len(missing_features), len(missing_codes))


@dataclass(frozen=True)
class RhythmCacheReport:
    """How many clips `ensure_rhythm_cached` had to compute, per kind."""

    music_computed: int
    structures_computed: int


def ensure_rhythm_cached(
    data_root: DataRoot, clips: Sequence[ManifestClip], clip_model_id: str, music: bool = True, progress: bool = True
) -> RhythmCacheReport:
    """Compute and cache the music's rhythm representations (`model.music_features`; not with `music` False)
    and the video's structure and affect (`model.video_structure`, from the manifest's scene cuts) of the
    clips that lack them. The clips' CLIP features must be cached (`ensure_cached`): the storyboard pools them."""
    missing_music = [c for c in clips if music and load_cached_music_features(data_root, c.clip_id) is None]
    for clip in tqdm(missing_music, desc="music rhythm features", unit="clip", disable=not progress):
        clip_music_features(data_root, clip.clip_id)
    missing = [c for c in clips if load_cached_video_structure(data_root, c.clip_id, clip_model_id) is None]
    for clip in tqdm(missing, desc="video structure", unit="clip", disable=not progress):
        features = load_cached_visual_features(data_root, clip.clip_id, clip_model_id)
        if features is None:
            message = f"CLIP features of {clip.clip_id} are not cached (run ensure_cached first)"
            raise FeatureError(ReasonCode.SOURCE_NOT_FOUND, message)
        clip_video_structure(
            data_root,
            clip.clip_id,
            clip.scene_cuts_s,
            clip.duration_s,
            features.global_embeds_1fps.numpy(),
            clip_model_id,
        )
    return RhythmCacheReport(len(missing_music), len(missing))


def _mix(*numbers: int) -> int:
    """A stable 63-bit seed from integers (the same on every machine and Python version)."""
    digest = hashlib.blake2b(":".join(map(str, numbers)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1
