"""The rhythm predictor (issue 20, Diff-V2M's idea): its inputs at the ODF rate, the 50 Hz curve it feeds the
rhythm path, its saved file, the accuracy it is scored by, and that it learns where music with onsets at the
cuts has them (`tests.support.synthetic_rhythm`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.dataset import curve_at_frames
from model.errors import CheckpointError
from model.features import VisualFeatures
from model.rhythm_accuracy import OnsetAgreement, fit_rescale, onset_agreement, peak_bins, rhythm_accuracy
from model.rhythm_predictor import (
    PredictorConfig,
    RhythmPredictor,
    distance_at_odf_rate,
    load_predictor_payload,
    odf_curve_50hz,
    payload_sha256,
    predictor_inputs,
    save_predictor,
)
from model.rhythm_train import PredictorSettings, distance_curves, predicted_curves, rhythm_example, train_predictor
from tests.support.synthetic_rhythm import cut_clip

CLIP_DIM = 8


def test_inputs_pool_the_distance_curve_into_tenth_seconds_and_repeat_each_second():
    curve = torch.zeros(100)  # 2 s at 50 Hz
    curve[[4, 12, 99]] = torch.tensor([0.5, 0.25, 0.75])
    embeds = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    affect = torch.tensor([[0.5, 0.5, 50.0, 0.01], [1.0, 0.0, 100.0, 0.05]])
    inputs = predictor_inputs(VisualFeatures(embeds, curve, "test"), affect)
    assert inputs.num_bins == 20
    assert inputs.distance.tolist() == pytest.approx([0.5, 0, 0.25] + [0] * 16 + [0.75])
    assert torch.equal(inputs.semantic, torch.cat([embeds[0].expand(10, 2), embeds[1].expand(10, 2)]))
    torch.testing.assert_close(inputs.affect[15], torch.tensor([1.0, 0.0, 1.0, 0.5]))  # on the model's scales
    assert distance_at_odf_rate(curve, 22)[20:].tolist() == [0, 0]  # past the curve: no change
    assert predictor_inputs(VisualFeatures(embeds, curve, "test"), None, num_bins=3).affect is None


def test_the_odf_reaches_every_position_of_its_bin_on_the_rhythm_paths_grid():
    odf = torch.tensor([0.2, 1.0, 0.0, 0.6])
    assert odf_curve_50hz(odf, 18).tolist() == pytest.approx([0.2] * 5 + [1.0] * 5 + [0.0] * 5 + [0.6] * 3)
    assert odf_curve_50hz(odf, 22)[20:].tolist() == [0, 0]
    # at the tiny codec's 25 Hz, an onset bin covers its cut's frame, and no frame over 2 frames (80 ms) away
    for cut_frame in range(50):
        one_hot = torch.zeros(20)
        one_hot[int(cut_frame / 25 * 10)] = 1.0
        lit = curve_at_frames(odf_curve_50hz(one_hot, 100), 50).nonzero().flatten().tolist()
        assert cut_frame in lit and max(abs(frame - cut_frame) for frame in lit) <= 2, (cut_frame, lit)


def test_a_saved_predictor_loads_as_the_same_predictor_and_a_foreign_file_is_refused(tmp_path):
    torch.manual_seed(0)
    predictor = RhythmPredictor(PredictorConfig(clip_dim=CLIP_DIM, hidden=8, use_affect=False))
    path = save_predictor(tmp_path / "rhythm_predictor.pt", predictor, {"clip_model_id": "tiny/clip"})
    payload = load_predictor_payload(path)
    assert payload["facts"] == {"clip_model_id": "tiny/clip"} and payload["config"]["clip_dim"] == CLIP_DIM
    clip = cut_clip(50, 1, CLIP_DIM, torch.Generator().manual_seed(0))
    inputs = predictor_inputs(clip.features, None)
    reloaded = RhythmPredictor(PredictorConfig(**payload["config"]))
    reloaded.load_state_dict(payload["state"])
    args = (inputs.distance[None], inputs.semantic[None], None)
    assert torch.equal(predictor(*args), reloaded(*args))
    torch.nn.init.zeros_(reloaded.output_layer.bias)
    assert payload_sha256(payload) != payload_sha256({**payload, "state": reloaded.state_dict()})
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a rhythm-predictor/1 file"):
        load_predictor_payload(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="dvmset train-rhythm"):
        load_predictor_payload(tmp_path / "absent.pt")
    with pytest.raises(ValueError, match="affect"):
        RhythmPredictor(PredictorConfig(clip_dim=CLIP_DIM))(*args)


def test_peaks_onsets_and_their_chance_levels():
    assert peak_bins(np.array([0.0, 1.0, 0.2, 0.6, 0.6, 0.1, 0.3])).tolist() == [1, 3]  # 0.3 is under half the range
    assert peak_bins(2 * np.array([0.0, 1.0, 0.2, 0.6, 0.6, 0.1, 0.3]) - 5).tolist() == [1, 3]  # rescaled: the same
    assert peak_bins(np.ones(5)).size == 0
    # clip 1: onsets 2 and 10 of 20 bins, peaks 3 (hit) and 15 (miss); clip 2: onset 5 of 10 bins, no peak
    peaks, onsets = [np.array([3, 15]), np.array([], dtype=int)], [np.array([2, 10]), np.array([5])]
    agreement = onset_agreement(peaks, onsets, [20, 10])
    chance_recall = 2 * (1 - (17 * 16) / (20 * 19)) / 3  # 2 random peaks among 20 bins miss a 3-bin window
    assert agreement == OnsetAgreement(1 / 3, pytest.approx(chance_recall), 1 / 2, 9 / 30, 3, 2)


def test_rhythm_accuracy_and_the_baseline_rescaling():
    target = np.array([0.0, 1.0, 0.1, 0.0, 0.8, 0.0])
    perfect = rhythm_accuracy([target], [target])
    scores = (perfect.mse, perfect.correlation, perfect.onsets.recall, perfect.onsets.precision)
    assert scores == pytest.approx((0, 1, 1, 1))
    flat = rhythm_accuracy([np.full(6, 0.3)], [target])
    assert flat.correlation == 0 and flat.onsets.peaks == 0 and flat.onsets.recall == 0
    assert fit_rescale([target / 4 + 1, np.zeros(2) + 1], [target, np.zeros(2)]) == pytest.approx((4.0, -4.0))
    with pytest.raises(ValueError, match="length"):
        rhythm_accuracy([target[:3]], [target])


@pytest.mark.slow
def test_the_predictor_learns_where_music_that_follows_the_cuts_has_its_onsets(one_thread):
    """Clips of 10 s with 6 cuts; the music's strong onsets are at the cuts, its weaker own onsets anywhere.
    On held-out clips the predictor's peaks find the onsets (recall) and sit on them (precision), far above
    the chance of peaks on random bins."""

    def examples(count: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        clips = [cut_clip(250, 6, CLIP_DIM, generator) for _ in range(count)]
        return [rhythm_example(str(i), c.features, c.affect, c.odf.numpy()) for i, c in enumerate(clips)]

    train, held_out = examples(64, 1), examples(32, 2)
    predictor, losses = train_predictor(train, PredictorSettings(epochs=25, learning_rate=3e-3, hidden=32))
    targets = [example.target_odf.numpy() for example in held_out]
    learned = rhythm_accuracy(predicted_curves(predictor, held_out), targets)
    untrained = rhythm_accuracy(predicted_curves(RhythmPredictor(predictor.config), held_out), targets)
    scale, offset = fit_rescale(distance_curves(train), [example.target_odf.numpy() for example in train])
    baseline = rhythm_accuracy([scale * curve + offset for curve in distance_curves(held_out)], targets)
    print(f"\nlearned: {learned}\nuntrained: {untrained}\nbaseline (CLIP distance, rescaled): {baseline}")

    onsets = learned.onsets
    assert onsets.recall > 0.8 and onsets.precision > 0.8, onsets
    assert onsets.recall > onsets.chance_recall + 0.5 and onsets.precision > onsets.chance_precision + 0.5, onsets
    assert learned.mse < untrained.mse / 3 and learned.correlation > 0.7, learned
    assert losses[-1] < losses[0] / 3
