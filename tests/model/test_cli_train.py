"""`dvmset train` end to end on tiny random MusicGen and CLIP saved in a local model folder, over a small
generated manifest: stage 1, stage 2 from its checkpoint, an exact resume, the clear missing-model error."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dvmset.cli.common import ExitCode
from model.train_log import read_log
from tests.support.model_workdirs import run_cli, tiny_workdir
from tests.support.training_manifests import write_training_manifest

SMALL_RUN = ["--batch-size", "4", "--accumulate", "2", "--crop-s", "2", "--warmup-steps", "1", "--seed", "3"]


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A folder with models/tiny/{musicgen,clip}, a data root with a train manifest and a config naming both."""
    tiny_workdir(tmp_path)
    write_training_manifest(tmp_path, num_accepted=3)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def train_args(*args: str, manifest: str = "manifests/v1/train.parquet") -> list[str]:
    return ["train", "--manifest", manifest, *SMALL_RUN, "--musicgen", "tiny/musicgen", "--clip", "tiny/clip", *args]


def train(*args: str) -> tuple[int, str]:
    """`dvmset train` in this process: (exit code, output with its line breaks undone)."""
    return run_cli(*train_args(*args))


def steps_losses_rates(out_dir: Path) -> list[tuple[int, float, float]]:
    return [(record.step, record.loss, record.lr) for record in read_log(out_dir / "train_log.csv")]


def test_train_stage1_then_stage2_with_an_exact_resume(workdir):
    code, output = train("--stage", "1", "--steps", "8", "--learning-rate", "0.1")
    assert code == 0, output
    stage1 = workdir / "runs" / "v1" / "stage1"  # the default output folder
    assert "3 clips (3 features and 3 codes computed), 8 steps this run, at step 8" in output
    assert "VidMusician stage 1 on tiny/musicgen with tiny/clip: " in output
    assert "(the paper: 24.79M on facebook/musicgen-medium); tiny/musicgen is not the paper's backbone" in output
    records = read_log(stage1 / "train_log.csv")
    assert [r.step for r in records] == list(range(1, 9))
    assert records[-1].loss < records[0].loss - 0.02
    assert (stage1 / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    init = ["--stage", "2", "--init", str(stage1 / "checkpoint.pt")]
    code, output = train(*init, "--steps", "4", "--out", "straight")
    assert code == 0, output
    assert "(0 features and 0 codes computed)" in output  # the caches of stage 1 are reused
    code, output = train(*init, "--steps", "2", "--out", "split")
    assert code == 0 and "at step 2" in output, output
    resumed = subprocess.run(  # a fresh process; one thread, as in this one (sums in other orders round apart)
        [sys.executable, "-m", "dvmset", *train_args("--stage", "2", "--steps", "4", "--out", "split", "--resume")],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "300"},
    )
    assert resumed.returncode == 0 and "2 steps this run, at step 4" in " ".join(resumed.stdout.split()), resumed
    assert steps_losses_rates(workdir / "split") == steps_losses_rates(workdir / "straight")  # as if never stopped

    code, output = train("--stage", "2", "--steps", "4", "--out", "split")
    assert code == ExitCode.USAGE and "exists: pass --resume" in output


def test_a_missing_model_is_a_clear_configuration_error(workdir):
    code, output = train("--stage", "1", "--steps", "1", "--musicgen", "tiny/absent")
    assert code == ExitCode.CONFIG, output
    assert "'tiny/absent' could not be loaded" in output
    assert f"the local folder {workdir / 'models' / 'tiny' / 'absent'} (absent)" in output
    assert "DVMSET_MODEL_DIR" in output
    assert not (workdir / "data" / "features").exists()  # it stopped before working on any clip

    code, output = train("--stage", "1", "--steps", "1", "--clip", "tiny/no-clip")
    assert code == ExitCode.CONFIG and "'tiny/no-clip' could not be loaded" in output, output


def test_stage2_without_a_stage1_checkpoint_is_a_usage_error(workdir):
    code, output = train("--stage", "2", "--steps", "1")
    assert code == ExitCode.USAGE and "pass it with --init" in output


def test_the_manifest_version_folder_is_taken_as_its_train_split(workdir):
    code, output = run_cli(*train_args("--stage", "1", "--steps", "1", manifest="manifests/v1"))
    assert code == 0, output
    assert (workdir / "runs" / "v1" / "stage1" / "checkpoint.pt").is_file()  # named after the version, as before


def test_a_run_writes_its_resolved_config_and_that_config_repeats_it_bit_for_bit(workdir, tmp_path_factory):
    (workdir / "run.toml").write_text('data_root = "data"\nmodel_dir = "models"\n[model]\nlora_rank = 4\n')
    code, output = train("--stage", "1", "--steps", "3", "--learning-rate", "0.05", "--out", "first", "-c", "run.toml")
    assert code == 0, output
    written = (workdir / "first" / "config.toml").read_text()
    model, train_section = (written.split(f"\n[{name}]\n")[1].split("\n[")[0] for name in ("model", "train"))
    assert 'musicgen = "tiny/musicgen"' in model and 'clip = "tiny/clip"' in model and "lora_rank = 4" in model
    assert "steps = 3" in train_section and "learning_rate = 0.05" in train_section and "lora" not in train_section
    assert f'data_root = "{workdir / "data"}"' in written  # absolute: the file works from any folder

    elsewhere = tmp_path_factory.mktemp("elsewhere")
    result = subprocess.run(  # from another folder, with nothing but the run's config and the manifest
        [
            sys.executable,
            "-m",
            "dvmset",
            "train",
            "--manifest",
            str(workdir / "manifests" / "v1"),
            "--stage",
            "1",
            "--config",
            str(workdir / "first" / "config.toml"),
            "--out",
            str(workdir / "again"),
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "300"},
    )
    assert result.returncode == 0, result.stderr
    assert steps_losses_rates(workdir / "again") == steps_losses_rates(workdir / "first")
    first, again = (torch.load(workdir / run / "checkpoint.pt", weights_only=False) for run in ("first", "again"))
    assert all(torch.equal(first["trainable"][key], again["trainable"][key]) for key in first["trainable"])


def test_conditioning_sizes_come_from_the_config_and_a_resume_keeps_them(workdir, caplog):
    from dvmset.storage import DataRoot
    from manifests.schema import read_manifest
    from model.checkpoint import load_checkpoint
    from model.features import load_cached_visual_features
    from model.generate import Window, window_conditions
    from model.video_conditions import VideoConditions

    (workdir / "cls.toml").write_text(
        'data_root = "data"\nmodel_dir = "models"\n[model]\nsemantic_feature = "cls"\nlora_rank = 4\n'
        'lora_targets = ["q", "k", "v", "o"]\n'
    )
    code, output = train("--stage", "1", "--steps", "2", "--out", "cls", "--config", "cls.toml")
    assert code == 0, output
    checkpoint = load_checkpoint(workdir / "cls" / "checkpoint.pt")
    conditioning = checkpoint.spec.conditioning
    assert (conditioning.semantic_feature, conditioning.lora_rank) == ("cls", 4)
    assert conditioning.lora_targets == ("q", "k", "v", "o")
    clip_id = read_manifest(workdir / "manifests" / "v1" / "train.parquet")["clip_id"][0].as_py()
    features = load_cached_visual_features(DataRoot(workdir / "data"), clip_id, "tiny/clip")
    assert checkpoint.spec.clip_dim == features.cls_1fps.shape[-1] != features.global_embeds_1fps.shape[-1]
    semantic = VideoConditions("cls").semantic(features)  # what generation feeds
    embeds, _curve = window_conditions(semantic, features.rhythm_curve_50hz, Window(0, 0, 25), 25.0)
    assert torch.equal(embeds[0], features.cls_1fps[:1])
    code, output = train("--stage", "1", "--steps", "3", "--out", "cls", "--resume")  # without the config
    assert code == ExitCode.USAGE and "trained with the conditioning" in output
    code, output = train("--stage", "1", "--steps", "3", "--out", "cls", "--resume", "--config", "cls.toml")
    assert code == 0 and "at step 3" in output, output
    legacy = workdir / "cls" / "legacy.toml"  # its config as the version before [model] wrote it: all under [train]
    legacy.write_text(before_the_model_section((workdir / "cls" / "config.toml").read_text()))
    with caplog.at_level(logging.WARNING, logger="dvmset.config"):
        code, output = train("--stage", "1", "--steps", "4", "--out", "cls", "--resume", "--config", str(legacy))
    assert code == 0 and "at step 4" in output, output
    moved = "musicgen, clip, semantic_feature, embedding_layers, lora_rank, lora_alpha, lora_targets, rhythm, affect"
    warning = f"{legacy}: {moved} belong to the [model] section now: read from [train] this time; move them to [model]"
    assert caplog.messages == [warning]


def before_the_model_section(toml_text: str) -> str:
    """A resolved config as written before the [model] section: its keys under [train]."""
    blocks = {block.split("]\n")[0]: block for block in ("\n" + toml_text).split("\n[")}
    model_lines = blocks.pop("model").split("\n", 1)[1]
    del blocks["rhythm"]  # no [rhythm] section either
    blocks["train"] = blocks["train"].rstrip("\n") + "\n" + model_lines
    return "\n[".join(blocks.values()).lstrip("\n")


def test_the_cpu_smoke_preset_says_it_is_not_the_papers_setup_and_flags_still_win(workdir):
    code, output = train("--stage", "1", "--preset", "cpu-smoke", "--out", "smoke")  # train() names the tiny models
    assert code == 0, output
    assert "preset cpu-smoke: NOT the paper's setup" in output and "4 steps this run, at step 4" in output
    written = (workdir / "smoke" / "config.toml").read_text()
    assert "steps = 4" in written and "save_every = 2" in written  # the preset's
    assert "batch_size = 4" in written and 'musicgen = "tiny/musicgen"' in written  # flags win over the preset
    code, output = train("--stage", "1", "--preset", "gpu-huge", "--out", "huge")
    assert code == ExitCode.USAGE and "presets are cpu-smoke" in output
