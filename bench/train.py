"""VidMusician training and generation benchmark (issue 7): training tokens/s, peak memory, generation
real-time factor, for a model with random weights.

In: nothing to download. `--size tiny` builds the test fixture's tiny MusicGen (12 decoder layers 24 wide,
4 codebooks of 64 entries at 25 Hz, `tests.model.conftest.save_tiny_musicgen`), saves it and loads it by
path as `dvmset train` does; `--size medium` builds facebook/musicgen-medium's architecture
(`model.architectures.musicgen_config("medium")`: 48 layers 1536 wide, 4 codebooks of 2048 entries at
50 Hz) straight on `--device` with random weights (meant for a GPU: about 6 GB of float32 weights).
The stage-`--stage` VidMusician around it trains on `--clips` random 60 s clips held in memory (codes,
1 fps CLIP embeddings, 50 Hz rhythm curve; the cache reads from disk are not timed).
Out, on stdout (and `--json PATH`):
- trainable parameters by module;
- training: `--steps` optimizer steps of the real `Trainer.train_step` (random `--crop-s` crops, 30 s,
  `--batch` crops a step, 16, in `--accumulate` micro-batches, bf16 autocast on CUDA), after one untimed
  step: seconds a step, music frames/s and tokens/s (frames x codebooks), peak memory;
- generation: `model.generate.generate_from_features` of `--generate-s` seconds (MusicGen's 30 s
  windows, guidance 3, top-k 250, as `dvmset generate`): wall seconds and real-time factor (music
  seconds / wall seconds), peak memory.
Peak memory is the process's `ru_maxrss` (whole run so far) on the CPU and
`torch.cuda.max_memory_allocated` (reset before each part) on CUDA.

    .venv/bin/python bench/train.py                                   # tiny model, CPU, one thread
    .venv/bin/python bench/train.py --device cuda --size medium        # on a GPU
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transformers import MusicgenForConditionalGeneration  # noqa: E402

from model.architectures import musicgen_config  # noqa: E402
from model.backbone import MusicgenBackbone, load_backbone  # noqa: E402
from model.checkpoint import ModelSpec  # noqa: E402
from model.dataset import ClipInputs, TrainingClips  # noqa: E402
from model.features import VisualFeatures  # noqa: E402
from model.generate import GenerationSettings, generate_from_features  # noqa: E402
from model.train import CROP_S, CURVE_RATE_HZ, OptimizerSettings  # noqa: E402
from model.train_loop import PAPER_BATCH_SIZE, Trainer, TrainSettings  # noqa: E402
from model.vidmusician import VidMusician, trainable_parameter_counts  # noqa: E402
from tests.support.tiny_models import TINY_CLIP_EMBED_DIM, TINY_DECODER_WIDTH, save_tiny_musicgen  # noqa: E402

CLIP_S = 60.0  # the dataset's clip length
MEDIUM_CLIP_DIM = 512  # CLIP ViT-B/32's embedding width
MB = 1024 * 1024


DEFAULT_ACCUMULATE = {"tiny": 1, "medium": 4}  # micro-batches of 4 crops of 30 s for the medium model


class RandomClips(TrainingClips):
    """`num_clips` clips of random codes `[K, T]`, 1 fps embeddings and 50 Hz rhythm curve, held in memory;
    cropped by `TrainingClips.crop` like cached clips (nothing is read from a data root)."""

    def __init__(self, backbone: MusicgenBackbone, clip_dim: int, num_clips: int, crop_s: float, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        num_frames = round(CLIP_S * backbone.frame_rate_hz)
        self.clip_ids = [f"random-{index}" for index in range(num_clips)]
        self.codes_rate_hz = backbone.frame_rate_hz
        self.crop_s = crop_s
        codebook_size = int(backbone.model.config.decoder.vocab_size)
        self._inputs = [
            ClipInputs(
                codes=torch.randint(0, codebook_size, (backbone.num_codebooks, num_frames), generator=generator),
                global_embeds=torch.randn(round(CLIP_S), clip_dim, generator=generator),
                rhythm_curve=torch.rand(round(CLIP_S * CURVE_RATE_HZ), generator=generator),
            )
            for _ in range(num_clips)
        ]

    def inputs(self, index: int) -> ClipInputs:
        return self._inputs[index]


def build_model(size: str, device: torch.device, stage: int, workdir: Path) -> tuple[VidMusician, int]:
    """The stage-`stage` VidMusician on a random-weight backbone of `size`, and its CLIP width."""
    torch.manual_seed(0)
    if size == "tiny":
        folder = save_tiny_musicgen(workdir / "tiny-musicgen", num_layers=12, hidden_size=TINY_DECODER_WIDTH)
        backbone, clip_dim = load_backbone(str(folder), device=str(device)), TINY_CLIP_EMBED_DIM
    else:
        with device:
            backbone = MusicgenBackbone(MusicgenForConditionalGeneration(musicgen_config("medium")))
        clip_dim = MEDIUM_CLIP_DIM
    model = VidMusician(backbone, clip_dim)
    if stage == 2:
        model.add_rhythm()
    return model, clip_dim


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / MB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_training(model: VidMusician, clip_dim: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """`args.steps` timed optimizer steps after one untimed step."""
    device = model.backbone.model.device
    clips = RandomClips(model.backbone, clip_dim, args.clips, args.crop_s)
    settings = TrainSettings(
        total_steps=args.steps + 1,
        batch_size=args.batch,
        accumulate=args.accumulate,
        crop_s=args.crop_s,
        optimizer=OptimizerSettings(warmup_steps=1),
    )
    spec = ModelSpec(musicgen_model_id=args.size, clip_model_id="random", clip_dim=clip_dim, stage=args.stage)
    trainer = Trainer(model, spec, clips, settings, workdir)
    trainer.train_step()
    reset_peak_memory(device)
    cpu_started_s, started_s = time.process_time(), time.perf_counter()
    losses = [trainer.train_step().loss for _ in range(args.steps)]
    synchronize(device)
    wall_s, cpu_s = time.perf_counter() - started_s, time.process_time() - cpu_started_s
    frames = args.steps * args.batch * round(args.crop_s * model.backbone.frame_rate_hz)
    return {
        "steps": args.steps,
        "batch": args.batch,
        "accumulate": args.accumulate,
        "crop_s": args.crop_s,
        "seconds_per_step": wall_s / args.steps,
        "cpu_seconds_per_step": cpu_s / args.steps,
        "frames_per_s": frames / wall_s,
        "tokens_per_s": frames * model.backbone.num_codebooks / wall_s,
        "peak_memory_mb": peak_memory_mb(device),
        "last_loss": losses[-1],
    }


def bench_generation(model: VidMusician, clip_dim: int, args: argparse.Namespace) -> dict[str, Any]:
    """Music of `args.generate_s` seconds from random features, as `dvmset generate` makes it."""
    device = model.backbone.model.device
    generator = torch.Generator().manual_seed(1)
    features = VisualFeatures(
        global_embeds_1fps=torch.randn(int(args.generate_s) + 1, clip_dim, generator=generator),
        rhythm_curve_50hz=torch.rand(round(args.generate_s * CURVE_RATE_HZ), generator=generator),
        model_id="random",
    )
    model.eval()
    reset_peak_memory(device)
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        if args.generate_bf16 and device.type == "cuda"
        else contextlib.nullcontext()
    )
    cpu_started_s, started_s = time.process_time(), time.perf_counter()
    with autocast:
        soundtrack = generate_from_features(model, features, args.generate_s, GenerationSettings(), progress=False)
    synchronize(device)
    wall_s, cpu_s = time.perf_counter() - started_s, time.process_time() - cpu_started_s
    return {
        "music_s": soundtrack.duration_s,
        "windows": len(soundtrack.windows),
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "real_time_factor": soundtrack.duration_s / wall_s,
        "bf16_autocast": bool(args.generate_bf16),
        "peak_memory_mb": peak_memory_mb(device),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(DEFAULT_ACCUMULATE), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--stage", type=int, choices=(1, 2), default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps")
    parser.add_argument("--batch", type=int, default=PAPER_BATCH_SIZE, help="crops a step")
    parser.add_argument("--accumulate", type=int, help="micro-batches a step (tiny: 1, medium: 4)")
    parser.add_argument("--crop-s", type=float, default=CROP_S, help="training crop length")
    parser.add_argument("--clips", type=int, default=16, help="random 60 s clips to crop from")
    parser.add_argument("--generate-s", type=float, default=30.0, help="music to generate; 0 skips generation")
    parser.add_argument("--generate-bf16", action="store_true", help="generate under bf16 autocast (CUDA only)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    args.accumulate = args.accumulate or DEFAULT_ACCUMULATE[args.size]
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    report: dict[str, Any] = {"size": args.size, "device": str(device), "stage": args.stage, "threads": args.threads}
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as workdir:
        model, clip_dim = build_model(args.size, device, args.stage, Path(workdir))
        report["trainable_parameters"] = trainable_parameter_counts(model)
        print(f"trainable parameters: {report['trainable_parameters']}", flush=True)
        report["training"] = bench_training(model, clip_dim, args, Path(workdir))
        print_part("training", report["training"])
        if args.generate_s > 0:
            report["generation"] = bench_generation(model, clip_dim, args)
            print_part("generation", report["generation"])
    report["load_average_end"] = os.getloadavg()
    print(f"load average at end: {report['load_average_end']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


def print_part(name: str, figures: dict[str, Any]) -> None:
    shown = ", ".join(
        f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}" for key, value in figures.items()
    )
    print(f"{name}: {shown}", flush=True)


if __name__ == "__main__":
    main()
