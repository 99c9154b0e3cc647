"""Trainable parameters of VidMusician (stage 2) by backbone and conditioning sizes, beside the paper's 24.79M.

In: the published MusicGen architectures (`model.architectures`: small, medium, large), built on the meta
device (no weights, no memory), and a grid of the sizes the paper leaves open: the semantic feature's
width (512: CLIP ViT-B/32's projected `image_embeds`; 768: its CLS token, as the paper's equation has it),
the T5 LoRA rank and its target projections. Out: a table on stdout, one row per setting, with the total
and its distance from 24.79M; rows within 1 % are marked.

    .venv/bin/python bench/parameters.py [--sizes small medium large]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from transformers import MusicgenForConditionalGeneration

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.architectures import MUSICGEN_DECODERS, musicgen_config  # noqa: E402
from model.backbone import MusicgenBackbone  # noqa: E402
from model.vidmusician import ConditioningConfig, VidMusician, trainable_parameter_counts  # noqa: E402

PAPER_TRAINABLE = 24.79e6
FEATURE_WIDTHS = {"image_embeds": 512, "cls": 768}
LORA_RANKS = (8, 16, 32)
LORA_TARGETS = (("q", "v"), ("q", "k", "v", "o"))


def count(size: str, clip_dim: int, rank: int, targets: tuple[str, ...]) -> dict[str, int]:
    """Trainable parameters by module of the stage-2 model on the meta device."""
    with torch.device("meta"):
        backbone = MusicgenBackbone(MusicgenForConditionalGeneration(musicgen_config(size)))
        model = VidMusician(
            backbone, clip_dim, ConditioningConfig(lora_rank=rank, lora_alpha=2.0 * rank, lora_targets=targets)
        )
        model.add_rhythm()
    return trainable_parameter_counts(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(MUSICGEN_DECODERS), choices=list(MUSICGEN_DECODERS))
    args = parser.parse_args()
    table = Table(title="VidMusician stage-2 trainable parameters (the paper: 24.79M on musicgen-medium)")
    for column in ("backbone", "semantic feature", "LoRA", "E", "LoRA params", "P", "O + L_j", "total", "vs paper"):
        table.add_column(column, justify="right")
    for size, (feature, width), rank, targets in itertools.product(
        args.sizes, FEATURE_WIDTHS.items(), LORA_RANKS, LORA_TARGETS
    ):
        counts = count(size, width, rank, targets)
        off = counts["total"] / PAPER_TRAINABLE - 1.0
        mark = " *" if abs(off) <= 0.01 else ""
        table.add_row(
            f"musicgen-{size}",
            f"{feature} ({width})",
            f"r{rank} {','.join(targets)}",
            f"{counts['embedding_manager'] / 1e6:.2f}M",
            f"{counts['t5_lora'] / 1e6:.2f}M",
            f"{counts['projector'] / 1e6:.2f}M",
            f"{(counts['rhythm_projector'] + counts['rhythm_layers']) / 1e6:.2f}M",
            f"{counts['total'] / 1e6:.2f}M",
            f"{100 * off:+.1f} %{mark}",
        )
    Console(width=140).print(table)
    print("* within 1 % of the paper's 24.79M")


if __name__ == "__main__":
    main()
