"""`dvmset train-rhythm` end to end on a tiny random CLIP over small generated train and test manifests, then
`dvmset train` with the `predicted-odf` rhythm source and the affect features, and music from its checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dvmset.cli.common import ExitCode
from model.checkpoint import load_checkpoint
from model.generate import GenerationSettings, generate_music, load_generator
from model.rhythm_predictor import load_predictor_payload, payload_sha256
from tests.support.model_workdirs import TINY_TRAIN, run_cli, tiny_workdir
from tests.support.training_manifests import write_rhythm_manifests


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A folder with models/tiny/{musicgen,clip}, a data root with train and test manifests, a config naming the
    CLIP model and a small rhythm predictor."""
    tiny_workdir(tmp_path, '[model]\nclip = "tiny/clip"\n[rhythm]\nepochs = 5\nhidden = 8\n')
    write_rhythm_manifests(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_a_trained_rhythm_predictor_drives_a_predicted_odf_run_and_its_music(workdir, one_thread):
    code, output = run_cli("train-rhythm", "--manifest", "manifests/v1", "--epochs", "3")  # the flag over [rhythm]
    assert code == 0, output
    rhythm = workdir / "runs" / "v1" / "rhythm"  # the default output folder
    written = (rhythm / "config.toml").read_text()
    assert "\n[rhythm]\nepochs = 3\n" in written and "hidden = 8" in written and 'clip = "tiny/clip"' in written
    assert "| rhythm predictor |" in output and "| CLIP distance, rescaled |" in output
    report = json.loads((rhythm / "rhythm_report.json").read_text())
    assert (report["train_clips"], report["test"]["predictor"]["clips"], len(report["losses"])) == (3, 2, 3)
    assert report["clip_model_id"] == "tiny/clip" and report["settings"]["use_affect"] is True
    assert report["test"]["predictor"]["onsets"]["onsets"] > 0  # the clicks at the cuts are the music's onsets
    payload = load_predictor_payload(rhythm / "rhythm_predictor.pt")
    assert payload["facts"]["test"] == report["test"] and payload["config"]["use_affect"] is True
    code, output = run_cli("train-rhythm", "--manifest", "manifests/v1", "--epochs", "1")
    assert code == ExitCode.USAGE and "rhythm_predictor.pt exists" in output
    code, output = run_cli(
        "train-rhythm", "--manifest", "manifests/v1", "--config", str(rhythm / "config.toml"), "--out", "again"
    )
    assert code == 0, output
    assert json.loads((workdir / "again" / "rhythm_report.json").read_text())["losses"] == report["losses"]

    code, output = run_cli(
        "train", "--manifest", "manifests/v1", "--stage", "1", "--steps", "2", "--affect", "on", *TINY_TRAIN
    )
    assert code == 0 and "affect features in the semantic condition" in output, output
    stage1 = workdir / "runs" / "v1" / "stage1" / "checkpoint.pt"
    stage2 = [
        "--manifest",
        "manifests/v1",
        "--stage",
        "2",
        "--init",
        str(stage1),
        "--steps",
        "2",
        "--affect",
        "on",
        "--rhythm",
        "predicted-odf",
        *TINY_TRAIN,
    ]
    code, output = run_cli("train", *stage2)
    assert code == ExitCode.USAGE and "needs a rhythm predictor" in output, output
    code, output = run_cli("train", *stage2, "--rhythm-predictor", str(rhythm / "rhythm_predictor.pt"))
    assert code == 0 and "rhythm source predicted-odf" in output, output

    out = workdir / "runs" / "v1" / "stage2"
    checkpoint = load_checkpoint(out / "checkpoint.pt")
    assert (checkpoint.spec.rhythm_source, checkpoint.spec.conditioning.affect) == ("predicted-odf", True)
    sha256 = payload_sha256(payload)
    assert checkpoint.spec.rhythm_predictor_sha256 == payload_sha256(checkpoint.rhythm_predictor) == sha256
    written = (out / "config.toml").read_text()
    assert 'rhythm = "predicted-odf"' in written and 'affect = "on"' in written
    assert f'rhythm_predictor = "{(rhythm / "rhythm_predictor.pt").resolve()}"' in written
    resume = ["--manifest", "manifests/v1", "--stage", "2", "--steps", "3", "--affect", "on", "--resume", *TINY_TRAIN]
    code, output = run_cli("train", *resume)  # the default rhythm source, not the checkpoint's
    assert code == ExitCode.USAGE and "trained with the rhythm source predicted-odf" in output, output

    model, encoder = load_generator(checkpoint, workdir / "models", "cpu")  # the checkpoint alone
    assert model.video_conditions.rhythm_source == "predicted-odf" and model.video_conditions.needs_affect
    video = workdir / "video.mp4"
    settings = GenerationSettings(window_s=2.0, prompt_s=1.0)
    soundtrack = generate_music(model, video, encoder, settings, progress=False)  # computes the video's affect
    assert encoder.model_id == "tiny/clip" and torch.isfinite(soundtrack.waveform).all()
    assert soundtrack.waveform.shape[0] == pytest.approx(3.0 * soundtrack.sampling_rate_hz, abs=400)
