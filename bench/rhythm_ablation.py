"""Ablation of the rhythm source on the tiny model (issue 20): VidMusician's CLIP-distance curve against
Diff-V2M's predicted ODF, both trained on the same data and evaluated the same way.

In: nothing to download. The tiny MusicGen of the model tests (12 decoder layers 24 wide, 4 codebooks at
25 Hz, `tests.support.tiny_models`), saved and loaded by path. Data: the marker task of
`tests/model/test_rhythm_learns.py` (`tests.support.marker_task`): 1 s samples whose codebook 0 holds a
marker token at the video's 3 cuts, with a CLIP-distance curve that spikes at the cuts and 1 fps
embeddings that do not say where in the second they are.
Per seed:
- a rhythm predictor trained on 64 synthetic 10 s clips whose music has its strong onsets at the cuts,
  scored on 32 held-out clips beside the CLIP-distance curve rescaled by its least-squares fit on the
  training clips (`model.rhythm_accuracy`, as `dvmset train-rhythm` scores them);
- stage 1 for `--stage1-steps`; from its weights, stage 2 once per rhythm source for `--stage2-steps` on the
  same batches, and stage 1 alone for as many more steps (the reference without a rhythm path);
- each model scored on the same held-out samples: the markers the argmax of codebook 0 places against the
  cuts within +-1 frame (40 ms), +-2 frames (80 ms, within the paper's 0.1 s) and exactly, each recall and
  precision beside its chance level (markers on as many random frames).
Out, on stdout (and `--json PATH`): the predictor's accuracy per seed, one row per seed and model, and the
means over the seeds. Learning rate 1e-2 and no warm-up, as the rhythm-learns test (the paper's 1e-5 does not
move the zero-initialised projector in a few hundred steps).

The real ablation needs DVMSet, CLIP and MusicGen weights and a GPU: README's modeler section has its commands.

    .venv/bin/python bench/rhythm_ablation.py                          # 3 seeds, CPU, one thread
    .venv/bin/python bench/rhythm_ablation.py --seeds 1 --stage2-steps 60
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from statistics import mean
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.backbone import load_backbone  # noqa: E402
from model.rhythm_accuracy import fit_rescale, rhythm_accuracy  # noqa: E402
from model.rhythm_predictor import RhythmPredictor  # noqa: E402
from model.rhythm_train import distance_curves, predicted_curves  # noqa: E402
from model.video_conditions import CLIP_DISTANCE, PREDICTED_ODF  # noqa: E402
from model.vidmusician import VidMusician  # noqa: E402
from tests.support.marker_task import (  # noqa: E402
    CLIP_DIM,
    held_out_samples,
    marker_placement,
    marker_task_examples,
    marker_task_predictor,
    predict_codebook0,
    train_steps,
)
from tests.support.tiny_models import TINY_DECODER_WIDTH, save_tiny_musicgen  # noqa: E402

TOLERANCES_FRAMES = (1, 2, 0)  # 0: on the cut's frame
NO_RHYTHM = "none (stage 1 only)"


def predictor_scores(predictor: RhythmPredictor, seed: int) -> dict[str, Any]:
    """The marker task's predictor of `seed` and the rescaled CLIP-distance baseline on 32 held-out clips."""
    train, held_out = marker_task_examples(64, seed), marker_task_examples(32, seed + 10_000)
    targets = [example.target_odf.numpy() for example in held_out]
    scale, offset = fit_rescale(distance_curves(train), [example.target_odf.numpy() for example in train])
    baseline = [scale * curve + offset for curve in distance_curves(held_out)]
    return {
        "predictor": asdict(rhythm_accuracy(predicted_curves(predictor, held_out), targets)),
        "baseline": asdict(rhythm_accuracy(baseline, targets)),
    }


def score(model: VidMusician, seed: int) -> dict[str, Any]:
    """Marker placement on the seed's held-out samples at each tolerance."""
    held_out = held_out_samples(model.video_conditions, seed=1000 + seed)
    predicted = predict_codebook0(model, held_out)
    cuts = [sample.cuts for sample in held_out]
    return {f"+-{tolerance}": asdict(marker_placement(predicted, cuts, tolerance)) for tolerance in TOLERANCES_FRAMES}


def run_seed(
    seed: int, predictor: RhythmPredictor, musicgen_dir: Path, stage1_steps: int, stage2_steps: int
) -> list[dict[str, Any]]:
    """Stage 1 once, then each rhythm source's stage 2 and the stage-1-only reference, all scored alike."""
    torch.manual_seed(seed)
    stage1 = VidMusician(load_backbone(str(musicgen_dir), device="cpu"), clip_dim=CLIP_DIM)
    train_steps(stage1, 1, stage1_steps, torch.Generator().manual_seed(100 * seed + 1))
    weights = {name: value.clone() for name, value in stage1.trainable_state_dict().items()}
    rows = []
    for source in (CLIP_DISTANCE, PREDICTED_ODF, NO_RHYTHM):
        if source == NO_RHYTHM:
            model, stage = stage1, 1
        else:
            backbone = load_backbone(str(musicgen_dir), device="cpu")
            model = VidMusician(backbone, CLIP_DIM, rhythm_predictor=predictor if source == PREDICTED_ODF else None)
            model.load_trainable_state_dict(weights)
            model.add_rhythm()
            stage = 2
        started = time.perf_counter()
        losses = train_steps(model, stage, stage2_steps, torch.Generator().manual_seed(100 * seed + 2))
        rows.append(
            {
                "seed": seed,
                "source": source,
                "first_loss": losses[0],
                "last_loss": losses[-1],
                "train_s": time.perf_counter() - started,
                **score(model, seed),
            }
        )
    return rows


def placement_cell(placement: dict[str, float]) -> str:
    return (
        f"{placement['recall']:.2f} ({placement['chance_recall']:.2f}) / "
        f"{placement['precision']:.2f} ({placement['chance_precision']:.2f})"
    )


def print_rows(rows: list[dict[str, Any]]) -> None:
    header = " | ".join(f"R (chance) / P (chance) {_within(tolerance)}" for tolerance in TOLERANCES_FRAMES)
    print(f"| seed | rhythm source | last loss | {header} | train s |")
    print("|" + " --- |" * (4 + len(TOLERANCES_FRAMES)))
    for row in rows:
        cells = " | ".join(placement_cell(row[f"+-{tolerance}"]) for tolerance in TOLERANCES_FRAMES)
        print(f"| {row['seed']} | {row['source']} | {row['last_loss']:.4f} | {cells} | {row['train_s']:.1f} |")


def _within(tolerance: int) -> str:
    return f"+-{tolerance} frame{'s' if tolerance > 1 else ''}" if tolerance else "on the frame"


def means(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per source, the mean over seeds of every figure."""
    out = []
    for source in dict.fromkeys(row["source"] for row in rows):
        mine = [row for row in rows if row["source"] == source]
        averaged: dict[str, Any] = {"seed": "mean", "source": source}
        for key in ("first_loss", "last_loss", "train_s"):
            averaged[key] = mean(row[key] for row in mine)
        for tolerance in TOLERANCES_FRAMES:
            name = f"+-{tolerance}"
            averaged[name] = {field: mean(row[name][field] for row in mine) for field in mine[0][name]}
        out.append(averaged)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--stage1-steps", type=int, default=60)
    parser.add_argument("--stage2-steps", type=int, default=120, help="for each rhythm source and the reference")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {"load_average_start": os.getloadavg(), "settings": vars(args) | {"json": None}}
    print(f"load average {report['load_average_start'][0]:.1f}; torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as folder:
        musicgen_dir = save_tiny_musicgen(Path(folder) / "musicgen", num_layers=12, hidden_size=TINY_DECODER_WIDTH)
        report["predictor"], rows = {}, []
        for seed in range(args.seeds):
            predictor = marker_task_predictor(seed)
            scores = report["predictor"][seed] = predictor_scores(predictor, seed)
            for name in ("predictor", "baseline"):
                accuracy, onsets = scores[name], scores[name]["onsets"]
                print(
                    f"seed {seed} rhythm {name}: MSE {accuracy['mse']:.4f}, r {accuracy['correlation']:.3f}, "
                    f"onset recall {onsets['recall']:.3f} (chance {onsets['chance_recall']:.3f}), precision "
                    f"{onsets['precision']:.3f} (chance {onsets['chance_precision']:.3f})"
                )
            rows += run_seed(seed, predictor, musicgen_dir, args.stage1_steps, args.stage2_steps)
    report["rows"], report["means"] = rows, means(rows)
    print("\nmarker placement: recall (chance) / precision (chance) within +-1, +-2 frames and on the frame\n")
    print_rows(rows + report["means"])
    report["load_average_end"] = os.getloadavg()
    print(f"\nload average {report['load_average_end'][0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
