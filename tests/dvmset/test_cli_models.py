"""`dvmset models list|check|pull` in this process (typer's CliRunner), over a temporary model folder holding
tiny models in the real formats; no hub is reached (HF_HUB_OFFLINE, or a closed local port as the hub)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import huggingface_hub.constants
import pytest
from typer.testing import CliRunner

from curation.separate import save_tiny_model
from dvmset import model_registry, models, reachability
from dvmset.cli.common import ExitCode
from dvmset.cli.main import app


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A config whose model folder holds a tiny Demucs `tiny-random` (the configured separator); empty caches."""
    save_tiny_model(tmp_path / "models", "tiny-random")
    (tmp_path / "dvmset.toml").write_text('model_dir = "models"\n\n[separate]\nmodel = "tiny-random"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the dvmset weights cache moves with it
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # ~/panns_data
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


def invoke(*args: str) -> tuple[int, str]:
    """`dvmset` in this process: (exit code, output with its line breaks undone)."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "300", "DVMSET_MODEL_DIR": None})
    return result.exit_code, " ".join(result.output.split())


def listed(*args: str) -> dict[str, dict]:
    result = CliRunner().invoke(app, ["models", "list", "--json", *args], env={"DVMSET_MODEL_DIR": None})
    assert result.exit_code == 0, result.output
    return {row["key"]: row for row in json.loads(result.output)}


def test_list_shows_what_is_present_and_what_is_missing(workdir):
    rows = listed()
    assert list(rows) == list(model_registry.REGISTRY)
    demucs = rows["demucs"]
    assert demucs["id"] == "tiny-random" and demucs["default_id"] == "htdemucs"
    assert (demucs["found_in"], demucs["found"]) == ("model folder", str(workdir / "models"))
    for key in ("musicgen", "clip", "clap", "panns", "imagebind"):
        assert rows[key]["found"] is None, key
        assert str(workdir / "models") in rows[key]["provide"]  # which folder to put it in
    assert rows["panns"]["checksum"] == "md5:541141fa2ee191a88f24a3219fff024e (Cnn14_mAP=0.431.pth)"
    silero = models.find("silero-vad", "silero-vad", None)  # the installed package, or how to install it
    assert rows["silero-vad"]["found"] == (str(silero.path) if silero else None)
    assert listed("--id", "musicgen=facebook/musicgen-medium")["musicgen"]["size_bytes"] > 5e9
    code, output = invoke("models", "list")
    assert code == 0 and "tiny-random" in output and "missing" in output and "CC-BY-NC-4.0" in output


def test_check_loads_a_present_model_with_its_stages_loader(workdir):
    code, output = invoke("models", "check", "demucs")
    assert code == 0, output
    assert "ok demucs tiny-random" in output and "STAND-IN with RANDOM weights" in output
    assert "sha256" in output and "(in its file name) ok" in output  # the {sig}-{checksum}.th name, verified


def test_check_fails_naming_the_missing_file_and_the_folder(workdir):
    (workdir / "dvmset.toml").write_text('model_dir = "models"\n')  # the default separator: htdemucs
    code, output = invoke("models", "check", "demucs", "clip")
    assert code == ExitCode.CONFIG
    assert "demucs (htdemucs) is missing" in output and "955717e8-8726e21a.th" in output
    assert f"into {workdir / 'models'}" in output
    assert "clip (openai/clip-vit-base-patch32) is missing" in output
    assert f"--local-dir {workdir / 'models'}/openai/clip-vit-base-patch32" in output


def test_check_refuses_a_file_whose_published_checksum_differs(workdir):
    from model.metrics.panns import Cnn14, save_cnn14

    save_cnn14(Cnn14((4, 4, 4, 4, 4, 4), 3), workdir / "models" / "panns" / "Cnn14_mAP=0.431.pth")
    code, output = invoke("models", "check", "panns")
    assert code == ExitCode.CONFIG and "md5 541141fa2ee191a88f24a3219fff024e" in output and "MISMATCH" in output


def test_check_loads_a_hub_model_from_the_model_folder(workdir):
    from tests.support.tiny_models import save_tiny_clip

    save_tiny_clip(workdir / "models" / "openai" / "clip-vit-base-patch32")
    code, output = invoke("models", "check", "clip")
    assert code == 0, output
    assert "ok clip openai/clip-vit-base-patch32 (model folder" in output and "no published checksum" in output


def test_pull_offline_fails_at_once_with_one_line(workdir):
    result = CliRunner().invoke(app, ["models", "pull", "clip", "panns"], env={"COLUMNS": "300"})
    assert result.exit_code == ExitCode.SOURCE
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "cannot fetch clip, panns: this machine is offline (HF_HUB_OFFLINE is set)" in lines[0]


def test_pull_with_an_unreachable_hub_says_which_host(workdir, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    reachability.forget_reachability()
    try:
        code, output = invoke("models", "pull", "musicgen")
    finally:
        reachability.forget_reachability()
    assert code == ExitCode.SOURCE and f"this machine is offline (127.0.0.1:{port} cannot be reached" in output


def test_pull_skips_what_is_here_and_refuses_unknown_models(workdir):
    code, output = invoke("models", "pull", "demucs")
    assert code == 0 and "demucs (tiny-random): already here" in output
    code, output = invoke("models", "pull", "nosuch")
    assert code == ExitCode.USAGE and "unknown model nosuch" in output
    code, output = invoke("models", "list", "--id", "musicgen")
    assert code == ExitCode.USAGE and "KEY=ID" in output
