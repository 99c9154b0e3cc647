"""Training data: the resumable seeded data order, padded batches, manifests' accepted clips, input caching."""

from __future__ import annotations

import dataclasses

import pyarrow.parquet as pq
import pytest
import torch

from manifests.schema import ManifestError, write_manifest
from model.dataset import (
    DataOrder,
    Sample,
    TrainingClips,
    collate,
    curve_at_frames,
    ensure_cached,
    ensure_rhythm_cached,
    manifest_clips,
)
from model.errors import FeatureError
from model.features import load_cached_visual_features
from model.tokens import apply_delay_pattern, load_cached_music_codes
from model.train import ClipCrop
from model.video_conditions import AFFECT_DIM, VideoConditions
from tests.support.manifest_rows import rows_of
from tests.support.tiny_models import TINY_NUM_CODEBOOKS
from tests.support.training_manifests import write_training_manifest

PAD = 64


def accepted_ids(manifest, data_root) -> list[str]:
    return [clip.clip_id for clip in manifest_clips(manifest, data_root)]


def test_every_epoch_is_a_seeded_permutation_of_all_clips():
    order = DataOrder(num_clips=7, seed=3)
    epochs = [[sample.index for sample in order.take(7)] for _ in range(3)]
    assert all(sorted(epoch) == list(range(7)) for epoch in epochs)
    assert len({tuple(epoch) for epoch in epochs}) == 3  # reshuffled every epoch
    assert [s.index for s in DataOrder(7, seed=3).take(21)] == sum(epochs, [])
    assert [s.index for s in DataOrder(7, seed=4).take(21)] != sum(epochs, [])
    assert order.epoch == 3 and order.position == 0


def test_a_restored_order_replays_the_same_samples_and_crop_seeds():
    straight = DataOrder(num_clips=5, seed=1)
    first = straight.take(8)  # into the second epoch
    state = straight.state_dict()
    rest = straight.take(9)

    restored = DataOrder.from_state_dict(state)
    assert restored.take(9) == rest
    assert DataOrder(5, seed=1).take(17) == first + rest
    assert len({sample.crop_seed for sample in first + rest}) == 17  # each draw crops anew


def test_the_data_order_refuses_impossible_states():
    with pytest.raises(ValueError, match="at least one clip"):
        DataOrder(num_clips=0)
    with pytest.raises(ValueError, match="outside an epoch"):
        DataOrder(num_clips=3, position=3)


def crop(frames: int, seconds: int, value: int, curve_rate_factor: int = 1) -> ClipCrop:
    return ClipCrop(
        codes=torch.full((TINY_NUM_CODEBOOKS, frames), value, dtype=torch.int16),
        global_embeds=torch.full((seconds, 5), float(value)),
        rhythm_curve=torch.arange(frames * curve_rate_factor, dtype=torch.float32),
        start_s=0.0,
    )


def test_collate_pads_codes_with_the_pad_id_and_masks_missing_seconds():
    batch = collate([crop(6, 2, value=3), crop(4, 1, value=5)], PAD)
    assert batch.global_embeds.shape == (2, 2, 5) and batch.global_mask.tolist() == [[1, 1], [1, 0]]
    assert torch.all(batch.global_embeds[1, 1] == 0)
    assert batch.labels.shape == (2, 6 + TINY_NUM_CODEBOOKS - 1, TINY_NUM_CODEBOOKS)
    assert batch.labels.dtype == torch.long
    short_codes = torch.full((1, TINY_NUM_CODEBOOKS, 6), PAD)
    short_codes[..., :4] = 5
    assert torch.equal(batch.labels[1], apply_delay_pattern(short_codes, PAD)[0].T)
    assert (batch.labels[1] != PAD).sum() == 4 * TINY_NUM_CODEBOOKS  # padding carries no loss
    assert batch.rhythm_curve.tolist() == [[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 0, 0]]
    assert batch.num_frames == 10
    assert set(batch.model_inputs(with_rhythm=False)) == {"global_embeds", "global_mask", "labels"}
    assert torch.equal(batch.model_inputs(with_rhythm=True)["rhythm_curve"], batch.rhythm_curve)


def test_the_curve_is_max_pooled_to_a_coarser_codec_so_cuts_survive():
    curve = torch.zeros(10)
    curve[5] = 0.9  # a cut on an odd 50 Hz entry
    assert curve_at_frames(curve, 5).tolist() == pytest.approx([0, 0, 0.9, 0, 0])
    assert curve_at_frames(curve, 10) is curve
    batch = collate([crop(4, 1, value=1, curve_rate_factor=2)], PAD)
    assert batch.rhythm_curve.tolist() == [[1, 3, 5, 7]]


def test_manifest_clips_are_the_accepted_ones(training_manifest):
    data_root, manifest = training_manifest
    table = pq.read_table(manifest)
    accepted = [row["clip_id"] for row in table.to_pylist() if row["decision"] == "accepted"]
    assert len(accepted) == 3 and table.num_rows == 4
    assert accepted_ids(manifest, data_root) == accepted


def test_a_manifest_without_accepted_clips_or_with_moved_media_is_refused(tmp_path, training_manifest):
    data_root, manifest = training_manifest
    rows = rows_of(pq.read_table(manifest))
    rejected_only = write_manifest([row for row in rows if row.decision != "accepted"], tmp_path / "rejected.parquet")
    with pytest.raises(ManifestError, match="no accepted clips"):
        accepted_ids(rejected_only, data_root)
    moved = write_manifest([dataclasses.replace(rows[0], video_path="elsewhere/video.mp4")], tmp_path / "moved.parquet")
    with pytest.raises(ManifestError, match="video_path 'elsewhere/video.mp4'"):
        accepted_ids(moved, data_root)


def test_ensure_cached_computes_missing_inputs_once(tmp_path, tiny_clip_dir, tiny_musicgen_dir, monkeypatch):
    data_root, manifest = write_training_manifest(tmp_path, num_accepted=2)
    clip_ids = accepted_ids(manifest, data_root)
    clips = TrainingClips(data_root, clip_ids, str(tiny_clip_dir), str(tiny_musicgen_dir), codes_rate_hz=25, crop_s=2)
    with pytest.raises(FeatureError, match="not cached"):
        clips.inputs(0)

    report = ensure_cached(data_root, clip_ids, str(tiny_clip_dir), str(tiny_musicgen_dir), device="cpu")
    assert (report.features_computed, report.codes_computed) == (2, 2)
    for clip_id in clip_ids:
        features = load_cached_visual_features(data_root, clip_id, str(tiny_clip_dir))
        assert features.global_embeds_1fps.shape[0] == 3 and features.rhythm_curve_50hz.shape == (150,)
        assert load_cached_music_codes(data_root, clip_id, str(tiny_musicgen_dir)).shape == (TINY_NUM_CODEBOOKS, 75)

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded although every input is cached")

    monkeypatch.setattr("model.dataset.load_clip_encoder", no_model)
    monkeypatch.setattr("model.dataset.load_audio_codec", no_model)
    report = ensure_cached(data_root, clip_ids, str(tiny_clip_dir), str(tiny_musicgen_dir), device="cpu")
    assert (report.features_computed, report.codes_computed) == (0, 0)

    sample = Sample(index=1, crop_seed=12345)
    first, again = clips.crop(sample), clips.crop(sample)
    assert first.codes.shape == (TINY_NUM_CODEBOOKS, 50) and first.rhythm_curve.shape == (100,)
    assert first.global_embeds.shape == (2, features.global_embeds_1fps.shape[1])
    assert first.start_s == again.start_s and torch.equal(first.codes, again.codes)
    starts = {clips.crop(Sample(1, seed)).start_s for seed in range(20)}
    assert starts == {0.0, 1.0}  # a 2 s window of a 3 s clip starts on a whole second


def test_the_music_rhythm_features_and_the_affect_reach_the_loader(tmp_path, tiny_clip_dir, tiny_musicgen_dir):
    data_root, manifest = write_training_manifest(tmp_path, num_accepted=2)
    clips = manifest_clips(manifest, data_root)
    assert [(clip.duration_s, clip.scene_cuts_s) for clip in clips] == [(3.0, (0.8, 2.4))] * 2  # the rows' own
    clip_ids = [clip.clip_id for clip in clips]
    ensure_cached(data_root, clip_ids, str(tiny_clip_dir), str(tiny_musicgen_dir), device="cpu")
    loader = TrainingClips(
        data_root,
        clip_ids,
        str(tiny_clip_dir),
        str(tiny_musicgen_dir),
        codes_rate_hz=25,
        crop_s=2,
        conditions=VideoConditions(affect=True),
    )
    with pytest.raises(FeatureError, match="music features of .* are not cached"):
        loader.music(0)
    with pytest.raises(FeatureError, match="video structure of .* is not cached"):
        loader.inputs(0)

    report = ensure_rhythm_cached(data_root, clips, str(tiny_clip_dir), progress=False)
    assert (report.music_computed, report.structures_computed) == (2, 2)
    assert ensure_rhythm_cached(data_root, clips, str(tiny_clip_dir), progress=False).music_computed == 0
    music, affect = loader.music(1), loader.affect(1)
    assert music.odf.shape == (30,) and music.tempogram.shape[0] == 3 and affect.shape == (3, AFFECT_DIM)
    features = load_cached_visual_features(data_root, clip_ids[1], str(tiny_clip_dir))
    inputs = loader.inputs(1)
    assert inputs.global_embeds.shape == (3, features.global_embeds_1fps.shape[1] + AFFECT_DIM)
    scaled = affect * torch.tensor([1.0, 1.0, 0.01, 10.0])  # colourfulness / 100, motion x 10
    torch.testing.assert_close(inputs.global_embeds[:, -AFFECT_DIM:], scaled)
    assert torch.equal(inputs.rhythm_curve, features.rhythm_curve_50hz)  # clip-distance: the CLIP curve itself


def test_the_loader_resolves_media_where_the_manifest_says_from_any_folder(tmp_path, training_manifest, monkeypatch):
    """The trainer reads media paths from the manifest's recorded media root (`resolve_media_root`, as
    `manifests check` and `export-jsonl` do), whatever the working folder; one that records another
    root than the data root whose caches it reads is refused."""
    import os

    from manifests.schema import MEDIA_ROOT_KEY, media_root_of

    data_root, manifest = training_manifest
    table = pq.read_table(manifest)
    rows = rows_of(table)
    accepted = [row.clip_id for row in rows if row.decision == "accepted"]
    folder = tmp_path / "manifests" / "v9"
    recorded = write_manifest(rows, folder / "train.parquet", {MEDIA_ROOT_KEY: media_root_of(folder, data_root.root)})
    elsewhere = tmp_path / "a" / "b"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    relative = os.path.relpath(recorded, elsewhere)
    assert accepted_ids(type(recorded)(relative), data_root) == accepted
    other = write_manifest(rows, tmp_path / "other" / "train.parquet", {MEDIA_ROOT_KEY: "../somewhere-else"})
    with pytest.raises(ManifestError, match="the model reads"):
        accepted_ids(other, data_root)
