"""One rhythm-predictor run from a manifest: what `dvmset train-rhythm` does.

In: a `RhythmRequest`: the manifest version folder (its `train.parquet` trains the predictor, its
`test.parquet` scores it), the data root its paths start from, the output folder, `PredictorSettings`, the
CLIP model id and semantic feature (the trainer's, so a `predicted-odf` run reads the same features), the
local model folder, the device and the resolved config's TOML.
Out: `<out>/rhythm_predictor.pt` (`model.rhythm_predictor.save_predictor`; its facts name the manifest, the
CLIP model, the clips, each epoch's loss and the test scores), `<out>/rhythm_report.json`,
`<out>/rhythm_report.md` and `<out>/config.toml` (the resolved config, when given), and a `RhythmResult`.

Steps: the accepted clips of both splits; their CLIP features (computed and cached on first use,
`model.dataset.ensure_cached`), their music's rhythm features and their video structure
(`ensure_rhythm_cached`); one `RhythmExample` a clip; the predictor, trained on the train split; on the test
split, the predictor's curves and the baseline's, scored against the music's ODF (`model.rhythm_accuracy`).
The baseline is VidMusician's CLIP-distance curve itself at the ODF rate (`distance_at_odf_rate`), rescaled
by the scale and offset that fit it best to the ODF over the train split (`fit_rescale`).
A folder that holds a predictor already is refused (CheckpointError) before any work.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from dvmset.storage import DataRoot, atomic_write_text
from manifests.schema import manifest_path
from manifests.split import Split
from model.dataset import ManifestClip, ensure_cached, ensure_rhythm_cached, manifest_clips
from model.errors import CheckpointError
from model.features import DEFAULT_CLIP_MODEL_ID, load_cached_visual_features
from model.music_features import ODF_RATE_HZ, load_cached_music_features
from model.rhythm_accuracy import PEAK_THRESHOLD, TOLERANCE_BINS, RhythmAccuracy, fit_rescale, rhythm_accuracy
from model.rhythm_predictor import save_predictor
from model.rhythm_train import (
    PredictorSettings,
    RhythmExample,
    distance_curves,
    predicted_curves,
    rhythm_example,
    train_predictor,
)
from model.train_run import RUN_CONFIG_FILE
from model.video_structure import load_cached_video_structure

PREDICTOR_FILE = "rhythm_predictor.pt"
REPORT_JSON = "rhythm_report.json"
REPORT_MARKDOWN = "rhythm_report.md"
PROTOCOL = (
    f"target: the music's low-resolution ODF (model.music_features, {ODF_RATE_HZ:g} Hz, max-pooled onset strength "
    f"divided by the clip's largest bin); onsets: local maxima at least {PEAK_THRESHOLD:g} of a curve's range above "
    f"its minimum, matched within {TOLERANCE_BINS} bin ({TOLERANCE_BINS / ODF_RATE_HZ * 1000:.0f} ms); chance: "
    "recall had each clip's peaks fallen on as many random bins, precision of a random bin; correlation: the mean "
    "over clips of Pearson's r; baseline: VidMusician's CLIP-distance curve max-pooled to the ODF's bins, rescaled "
    "by the least-squares scale and offset fit on the train split"
)


@dataclass(frozen=True)
class RhythmRequest:
    manifest_dir: Path
    data_root: Path
    out_dir: Path
    settings: PredictorSettings = PredictorSettings()
    clip_model_id: str | None = None  # None: the trainer's default CLIP
    semantic_feature: str = "image_embeds"
    model_dir: Path | None = None
    device: str | None = None
    progress: bool = True
    run_config: str | None = None  # the resolved config's TOML, written beside the predictor as `RUN_CONFIG_FILE`


@dataclass(frozen=True)
class RhythmResult:
    predictor: RhythmAccuracy  # on the test split
    baseline: RhythmAccuracy  # the CLIP-distance curve, rescaled, on the test split
    baseline_rescale: tuple[float, float]  # (scale, offset)
    train_clips: int
    losses: list[float]
    predictor_path: Path
    report_path: Path
    config_path: Path | None  # None: no resolved config was given


def run_rhythm_training(request: RhythmRequest) -> RhythmResult:
    """Train and score a rhythm predictor as `request` says (see the module docstring)."""
    out_dir = Path(request.out_dir)
    if (out_dir / PREDICTOR_FILE).exists():
        raise CheckpointError(f"{out_dir / PREDICTOR_FILE} exists: pass another output folder (--out)")
    data_root = DataRoot(Path(request.data_root))
    clip_model_id = request.clip_model_id or DEFAULT_CLIP_MODEL_ID
    splits = {side: manifest_clips(manifest_path(request.manifest_dir, side), data_root) for side in Split}
    every_clip = splits[Split.TRAIN] + splits[Split.TEST]
    ensure_cached(data_root, [c.clip_id for c in every_clip], clip_model_id, None, request.model_dir, request.device)
    ensure_rhythm_cached(data_root, every_clip, clip_model_id, progress=request.progress)
    examples = {
        side: _examples(data_root, clips, clip_model_id, request.semantic_feature) for side, clips in splits.items()
    }
    predictor, losses = train_predictor(
        examples[Split.TRAIN], request.settings, request.semantic_feature, request.device
    )
    targets = {side: [example.target_odf.numpy() for example in examples[side]] for side in Split}
    scale, offset = fit_rescale(distance_curves(examples[Split.TRAIN]), targets[Split.TRAIN])
    baseline_curves = [scale * curve + offset for curve in distance_curves(examples[Split.TEST])]
    result = RhythmResult(
        predictor=rhythm_accuracy(predicted_curves(predictor, examples[Split.TEST]), targets[Split.TEST]),
        baseline=rhythm_accuracy(baseline_curves, targets[Split.TEST]),
        baseline_rescale=(scale, offset),
        train_clips=len(examples[Split.TRAIN]),
        losses=losses,
        predictor_path=out_dir / PREDICTOR_FILE,
        report_path=out_dir / REPORT_MARKDOWN,
        config_path=None if request.run_config is None else out_dir / RUN_CONFIG_FILE,
    )
    report = _report(result, request, clip_model_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_predictor(result.predictor_path, predictor, report)
    atomic_write_text(out_dir / REPORT_JSON, json.dumps(report, indent=2) + "\n")
    atomic_write_text(result.report_path, report_markdown(result, Path(request.manifest_dir).name))
    if result.config_path is not None and request.run_config is not None:
        atomic_write_text(result.config_path, request.run_config)
    return result


def report_markdown(result: RhythmResult, manifest_version: str) -> str:
    """The test-split table: the predictor beside the rescaled CLIP-distance baseline, with chance levels."""
    rows = [
        "| curve | MSE ↓ | correlation ↑ | onset recall ↑ (chance) | onset precision ↑ (chance) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, accuracy in (("rhythm predictor", result.predictor), ("CLIP distance, rescaled", result.baseline)):
        onsets = accuracy.onsets
        rows.append(
            f"| {name} | {accuracy.mse:.4f} | {accuracy.correlation:.3f} | {onsets.recall:.3f} "
            f"({onsets.chance_recall:.3f}) | {onsets.precision:.3f} ({onsets.chance_precision:.3f}) |"
        )
    scale, offset = result.baseline_rescale
    return (
        f"# Rhythm predictor, manifest {manifest_version}\n\nTest split: {result.predictor.clips} clips, "
        f"{result.predictor.onsets.onsets} onsets; trained on {result.train_clips} clips for {len(result.losses)} "
        f"epochs (last loss {result.losses[-1]:.4f}).\n\n" + "\n".join(rows) + "\n\n"
        f"Baseline rescaled as {scale:.4f} x distance + {offset:.4f}.\n\nProtocol: {PROTOCOL}.\n"
    )


def _examples(
    data_root: DataRoot, clips: list[ManifestClip], clip_model_id: str, semantic_feature: str
) -> list[RhythmExample]:
    """The cached features of each clip (cached by `ensure_cached` and `ensure_rhythm_cached`) as examples."""
    examples = []
    for clip in clips:
        features = load_cached_visual_features(data_root, clip.clip_id, clip_model_id)
        structure = load_cached_video_structure(data_root, clip.clip_id, clip_model_id)
        music = load_cached_music_features(data_root, clip.clip_id)
        affect = torch.from_numpy(structure.affect)
        examples.append(rhythm_example(clip.clip_id, features, affect, music.odf, semantic_feature))
    return examples


def _report(result: RhythmResult, request: RhythmRequest, clip_model_id: str) -> dict[str, Any]:
    return {
        "manifest_dir": str(Path(request.manifest_dir).resolve()),
        "clip_model_id": clip_model_id,
        "semantic_feature": request.semantic_feature,
        "settings": asdict(request.settings),
        "train_clips": result.train_clips,
        "losses": [float(loss) for loss in result.losses],
        "test": {"predictor": asdict(result.predictor), "baseline": asdict(result.baseline)},
        "baseline_rescale": {"scale": result.baseline_rescale[0], "offset": result.baseline_rescale[1]},
        "protocol": PROTOCOL,
    }
