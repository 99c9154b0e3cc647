"""Work folders for the model CLI tests (`dvmset train`, `train-rhythm`, `generate`): the tiny random
MusicGen and CLIP under `models/tiny/`, a `dvmset.toml`, and `dvmset` run in this process."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from dvmset.cli.main import app
from tests.support.tiny_models import TINY_DECODER_WIDTH, save_tiny_clip, save_tiny_musicgen

TINY_TRAIN = (  # `dvmset train`'s flags for a small run on the tiny models
    "--batch-size",
    "2",
    "--crop-s",
    "2",
    "--warmup-steps",
    "1",
    "--musicgen",
    "tiny/musicgen",
    "--clip",
    "tiny/clip",
)


def tiny_workdir(folder: Path, config: str = "") -> Path:
    """`folder` with `models/tiny/{musicgen,clip}` and a `dvmset.toml` naming `data` and `models`, then
    `config` (more TOML); returns `folder`."""
    save_tiny_musicgen(folder / "models" / "tiny" / "musicgen", num_layers=8, hidden_size=TINY_DECODER_WIDTH)
    save_tiny_clip(folder / "models" / "tiny" / "clip")
    (folder / "dvmset.toml").write_text('data_root = "data"\nmodel_dir = "models"\n' + config)
    return folder


def run_cli(*args: str) -> tuple[int, str]:
    """`dvmset` in this process: (exit code, output with its line breaks undone)."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "300"})
    return result.exit_code, " ".join(result.output.split())
