"""The training loop on tiny random models: exact resume, stage 2 from stage 1, what a checkpoint holds,
the loss going down, refusals, atomic checkpoints and the log."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from model.checkpoint import ModelSpec, TrainingCheckpoint, build_model, load_checkpoint, save_checkpoint
from model.errors import CheckpointError
from model.train import OptimizerSettings
from model.train_log import StepRecord, TrainLog, read_log
from model.train_loop import TrainSettings
from model.train_run import TrainRequest, run_training

SETTINGS = TrainSettings(
    total_steps=4,
    batch_size=4,
    accumulate=2,
    crop_s=2.0,
    seed=5,
    save_every_steps=2,
    optimizer=OptimizerSettings(learning_rate=3e-3, warmup_steps=2),
)


@pytest.fixture
def request_for(training_manifest, tiny_clip_dir, tiny_conditioned_musicgen_dir, tmp_path):
    """`request_for(name, stage, **changes)`: a request training into `tmp_path / name` on the tiny models."""
    data_root, manifest = training_manifest

    def make(name: str, stage: int = 1, **changes) -> TrainRequest:
        request = TrainRequest(
            manifest_path=manifest,
            data_root=data_root.root,
            out_dir=tmp_path / name,
            stage=stage,
            settings=SETTINGS,
            musicgen_model_id=str(tiny_conditioned_musicgen_dir),
            clip_model_id=str(tiny_clip_dir),
            device="cpu",
            progress=False,
        )
        return dataclasses.replace(request, **changes)

    return make


def assert_same_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def losses(path: Path) -> list[tuple[int, float, float]]:
    return [(record.step, record.loss, record.lr) for record in read_log(path / "train_log.csv")]


def test_stage1_and_stage2_resume_bit_identically(request_for):
    straight = run_training(request_for("straight1"))
    assert [record.step for record in straight.records] == [1, 2, 3, 4]

    run_training(request_for("split1", settings=dataclasses.replace(SETTINGS, total_steps=2)))
    assert load_checkpoint(request_for("split1").out_dir / "checkpoint.pt").step == 2
    resumed = run_training(request_for("split1", resume=True))  # fresh model, optimizer, data order
    assert [record.step for record in resumed.records] == [3, 4]
    assert_same_weights(
        load_checkpoint(straight.checkpoint_path).trainable, load_checkpoint(resumed.checkpoint_path).trainable
    )
    assert losses(straight.log_path.parent) == losses(resumed.log_path.parent)  # the same losses, step by step

    stage1 = straight.checkpoint_path
    straight2 = run_training(request_for("straight2", stage=2, init_checkpoint=stage1))
    run_training(
        request_for("split2", stage=2, init_checkpoint=stage1, settings=dataclasses.replace(SETTINGS, total_steps=3))
    )
    resumed2 = run_training(request_for("split2", stage=2, resume=True))
    assert [record.step for record in resumed2.records] == [4]
    trained = load_checkpoint(straight2.checkpoint_path).trainable
    assert_same_weights(trained, load_checkpoint(resumed2.checkpoint_path).trainable)
    assert losses(straight2.log_path.parent) == losses(resumed2.log_path.parent)
    assert any(name.startswith("rhythm.") for name in trained)
    assert not torch.equal(trained["rhythm.projector.weight"], torch.zeros_like(trained["rhythm.projector.weight"]))


def test_a_checkpoint_holds_only_the_trainable_weights_and_stage2_starts_from_stage1(
    request_for, tiny_conditioned_musicgen_dir
):
    result = run_training(request_for("stage1", settings=dataclasses.replace(SETTINGS, total_steps=1)))
    checkpoint = load_checkpoint(result.checkpoint_path)
    spec = checkpoint.spec
    assert spec.stage == 1 and spec.musicgen_model_id == str(tiny_conditioned_musicgen_dir)
    fresh = build_model(dataclasses.replace(spec, stage=2), device="cpu")
    assert fresh.backbone.frame_rate_hz == 25  # the tiny codec's rate, read from the checkpoint's config
    trainable = {name for name, parameter in fresh.named_parameters() if parameter.requires_grad}
    assert set(checkpoint.trainable) == {name for name in trainable if not name.startswith("rhythm.")}
    assert sum(t.numel() for t in checkpoint.trainable.values()) < 0.2 * sum(p.numel() for p in fresh.parameters())
    assert checkpoint.data_order == {"num_clips": 3, "seed": 5, "epoch": 1, "position": 1}  # 4 crops of 3 clips

    stage2 = run_training(
        request_for(
            "stage2",
            stage=2,
            init_checkpoint=result.checkpoint_path,
            settings=dataclasses.replace(SETTINGS, total_steps=1, optimizer=OptimizerSettings(warmup_steps=1)),
        )
    )
    after = load_checkpoint(stage2.checkpoint_path)
    assert after.spec == dataclasses.replace(spec, stage=2)
    assert after.optimizer["param_groups"][0]["lr"] == pytest.approx(1e-5)  # the stage-2 rate
    moved = max((after.trainable[name] - value).abs().max().item() for name, value in checkpoint.trainable.items())
    assert 0 < moved < 1e-4  # one step at 1e-5 from the stage-1 weights, not from a new initialisation


def test_the_loss_goes_down(request_for):
    settings = dataclasses.replace(
        SETTINGS, total_steps=12, save_every_steps=100, optimizer=OptimizerSettings(learning_rate=1e-1, warmup_steps=1)
    )
    records = run_training(request_for("learn", settings=settings)).records
    first, last = sum(r.loss for r in records[:3]) / 3, sum(r.loss for r in records[-3:]) / 3
    assert last < first - 0.04, [round(r.loss, 3) for r in records]


def test_runs_that_cannot_continue_are_refused_before_any_work(request_for, tmp_path):
    run_training(request_for("done", settings=dataclasses.replace(SETTINGS, total_steps=1)))
    with pytest.raises(CheckpointError, match="exists: pass --resume"):
        run_training(request_for("done"))
    with pytest.raises(CheckpointError, match="same data"):
        run_training(request_for("done", resume=True, settings=dataclasses.replace(SETTINGS, batch_size=2)))
    other_rate = dataclasses.replace(SETTINGS, optimizer=OptimizerSettings(learning_rate=1e-3, warmup_steps=2))
    with pytest.raises(CheckpointError, match="same data and learning rates"):
        run_training(request_for("done", resume=True, settings=other_rate))
    with pytest.raises(CheckpointError, match="stage-1 run, not stage 2"):
        run_training(request_for("done", stage=2, resume=True))
    with pytest.raises(CheckpointError, match="MusicGen model"):
        run_training(request_for("done", resume=True, musicgen_model_id="facebook/musicgen-small"))
    with pytest.raises(CheckpointError, match="pass it with --init"):
        run_training(request_for("fresh", stage=2))
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        run_training(request_for("fresh", resume=True))
    assert not (tmp_path / "fresh").exists()


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "run" / "checkpoint.pt"
    spec = ModelSpec("musicgen", "clip", clip_dim=4, stage=1)
    save_checkpoint(path, TrainingCheckpoint(spec, step=1, trainable={"w": torch.ones(2)}))

    def killed(content, target):
        Path(target).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, TrainingCheckpoint(spec, step=2, trainable={"w": torch.zeros(2)}))
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]
    kept = load_checkpoint(path)
    assert kept.step == 1 and kept.spec == spec and torch.equal(kept.trainable["w"], torch.ones(2))

    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_a_resumed_log_drops_the_steps_after_the_checkpoint(tmp_path):
    path = tmp_path / "train_log.csv"
    log = TrainLog(path)
    for step in range(1, 5):
        log.append(StepRecord(step, 1.0 / step, 1e-4, 0.5))
    with path.open("a") as handle:
        handle.write("5,0.1")  # a row cut off by a kill
    assert [r.step for r in read_log(path)] == [1, 2, 3, 4]
    TrainLog(path, keep_through_step=2).append(StepRecord(3, 0.25, 1e-4, 0.5))
    kept = [StepRecord(1, 1.0, 1e-4, 0.5), StepRecord(2, 0.5, 1e-4, 0.5), StepRecord(3, 0.25, 1e-4, 0.5)]
    assert read_log(path) == kept
    assert path.read_text().splitlines()[0] == "step,loss,lr,seconds"


def test_settings_count_steps_from_epochs_and_refuse_uneven_micro_batches():
    assert TrainSettings().steps_for(3571) == 26783  # the paper: 120 epochs of 3,571 clips, 16 a step
    assert TrainSettings(epochs=2, batch_size=4).steps_for(3) == 2
    assert TrainSettings(total_steps=7, epochs=2).steps_for(3) == 7
    assert TrainSettings(batch_size=16, accumulate=4).micro_batch_size == 4
    with pytest.raises(ValueError, match="equal micro-batches"):
        TrainSettings(batch_size=16, accumulate=3)
    with pytest.raises(ValueError, match="at least 1"):
        TrainSettings(total_steps=0)
    with pytest.raises(ValueError, match="epochs"):
        TrainSettings(epochs=0)


def test_the_model_line_puts_the_trainable_parameters_beside_the_papers():
    from model.checkpoint import ModelSpec
    from model.train_run import model_line

    paper = model_line(ModelSpec("facebook/musicgen-medium", "openai/clip-vit-base-patch32", 512, 2), 23_710_000)
    assert paper.endswith("23.71M trainable parameters (the paper: 24.79M on facebook/musicgen-medium)")
    small = model_line(ModelSpec("facebook/musicgen-small", "openai/clip-vit-base-patch32", 512, 1), 6_270_000)
    assert "6.27M" in small and "not the paper's backbone" in small
