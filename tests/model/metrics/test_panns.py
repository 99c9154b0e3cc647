"""PANNs Cnn14: the published parameter names, checkpoint round trip, the STFT front end, missing weights."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from model.errors import WeightsNotFoundError
from model.metrics.panns import HOP_SAMPLES, WINDOW_SAMPLES, Cnn14, load_cnn14, panns_outputs, resolve_checkpoint
from tests.support.tiny_models import TINY_CNN14_CLASSES, TINY_CNN14_WIDTHS

# a few keys of the published Cnn14_mAP=0.431.pth state dict, with their shapes
PUBLISHED_SHAPES = {
    "spectrogram_extractor.stft.conv_real.weight": (513, 1, 1024),
    "spectrogram_extractor.stft.conv_imag.weight": (513, 1, 1024),
    "logmel_extractor.melW": (513, 64),
    "bn0.running_var": (64,),
    "conv_block1.conv1.weight": (64, 1, 3, 3),
    "conv_block6.bn2.num_batches_tracked": (),
    "fc1.weight": (2048, 2048),
    "fc_audioset.weight": (527, 2048),
}


def test_the_full_architecture_has_the_published_keys_and_size():
    state = Cnn14().state_dict()
    assert {key: tuple(state[key].shape) for key in PUBLISHED_SHAPES} == PUBLISHED_SHAPES
    assert len(state) == 84
    assert sum(p.numel() for p in Cnn14().parameters()) == pytest.approx(81.8e6, rel=0.01)  # incl. STFT kernels


def test_a_saved_checkpoint_loads_with_its_widths_and_gives_embeddings_and_logits(tiny_cnn14_path):
    model = load_cnn14(str(tiny_cnn14_path))
    assert not model.training
    audio = np.random.default_rng(0).standard_normal(32_000).astype(np.float32)
    outputs = panns_outputs(model, [audio, audio[:16_000]])
    assert outputs.embeddings.shape == (2, TINY_CNN14_WIDTHS[-1])
    assert outputs.logits.shape == (2, TINY_CNN14_CLASSES)
    again = panns_outputs(model, [audio])
    assert np.array_equal(again.logits[0], outputs.logits[0])  # deterministic at inference


def test_the_front_end_is_the_power_stft_and_log_mel():
    model = Cnn14((4, 4, 4, 4, 4, 4), 3)
    audio = np.random.default_rng(1).standard_normal(8_000).astype(np.float32)
    power = model.spectrogram_extractor(torch.tensor(audio[None]))[0, 0].numpy()
    spectrum = librosa.stft(audio, n_fft=WINDOW_SAMPLES, hop_length=HOP_SAMPLES, window="hann", pad_mode="reflect")
    expected = np.abs(spectrum) ** 2
    assert np.allclose(power, expected.T, rtol=1e-3, atol=1e-3 * expected.max())


def test_a_missing_checkpoint_says_where_it_looked(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="zenodo.org") as caught:
        resolve_checkpoint("Cnn14_mAP=0.431.pth", tmp_path / "models")
    assert str(tmp_path / "models" / "panns" / "Cnn14_mAP=0.431.pth") in str(caught.value)


def test_a_checkpoint_found_in_the_model_folder(tiny_cnn14_path, tmp_path):
    (tmp_path / "panns").mkdir()
    (tmp_path / "panns" / tiny_cnn14_path.name).write_bytes(tiny_cnn14_path.read_bytes())
    assert resolve_checkpoint(tiny_cnn14_path.name, tmp_path) == tmp_path / "panns" / tiny_cnn14_path.name


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    bogus = tmp_path / "bogus.pth"
    torch.save({"weights": torch.zeros(2)}, bogus)
    with pytest.raises(WeightsNotFoundError, match="not a PANNs Cnn14 checkpoint"):
        load_cnn14(str(bogus))
