"""What VidMusician is conditioned on, from a clip's video features: the trainer's `rhythm` and `affect` options.

In: a clip's `VisualFeatures` (`model.features`) and, where an option reads it, its per-second affect
`[T1, 4]` as `model.video_structure` computes it. Out, by `VideoConditions`:
- `semantic` `[T1, D]`, or `[T1, D + 4]` with `affect` on: the 1 fps CLIP embeddings (`semantic_feature`)
  with each second's scaled affect (`model.video_structure.scaled_affect`) appended. Diff-V2M conditions on
  emotional features of the video beside the semantic ones; here they join the semantic condition V_S and
  reach the decoder through the same embedding manager, T5 and projector (stage 1).
- `rhythm_curve_50hz` `[T50]`, one value per 50 Hz decoder position, by the rhythm source:
  `clip-distance` (VidMusician, the default): the CLIP patch-distance curve itself (Algorithm 1);
  `predicted-odf` (Diff-V2M's idea): a trained `RhythmPredictor`'s low-resolution ODF of the music the
  video should have, on the 50 Hz grid (`model.rhythm_predictor.odf_curve_50hz`), as long as the
  distance curve. Both feed the same zero/identity-initialised in-attention path (`RhythmConditioner`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.errors import ConditioningError
from model.features import VisualFeatures
from model.rhythm_predictor import RhythmPredictor, odf_curve_50hz, predict_odf, predictor_inputs
from model.video_structure import AFFECT_COLUMNS, scaled_affect

CLIP_DISTANCE = "clip-distance"
PREDICTED_ODF = "predicted-odf"
RHYTHM_SOURCES = (CLIP_DISTANCE, PREDICTED_ODF)
AFFECT_DIM = len(AFFECT_COLUMNS)


@dataclass(frozen=True, eq=False)
class VideoConditions:
    """The conditions of one model: its semantic feature, whether it reads the affect, and its rhythm
    predictor (None: the rhythm source is the CLIP-distance curve)."""

    semantic_feature: str = "image_embeds"
    affect: bool = False
    predictor: RhythmPredictor | None = None

    @property
    def rhythm_source(self) -> str:
        return CLIP_DISTANCE if self.predictor is None else PREDICTED_ODF

    @property
    def needs_affect(self) -> bool:
        """Whether `semantic` or `rhythm_curve_50hz` reads the affect rows."""
        return self.affect or (self.predictor is not None and self.predictor.config.use_affect)

    def semantic(self, features: VisualFeatures, affect: torch.Tensor | None = None) -> torch.Tensor:
        """The semantic condition `[T1, D]`, or `[T1, D + 4]` with affect (a missing last affect row repeats
        the one before)."""
        embeds = features.semantic(self.semantic_feature).float()
        if not self.affect:
            return embeds
        rows = scaled_affect(self._affect(affect))
        index = torch.clamp(torch.arange(embeds.shape[0]), max=rows.shape[0] - 1)
        return torch.cat([embeds, rows[index]], dim=-1)

    def rhythm_curve_50hz(self, features: VisualFeatures, affect: torch.Tensor | None = None) -> torch.Tensor:
        """The rhythm condition `[T50]` (T50: the length of the CLIP-distance curve) from the rhythm source."""
        curve = features.rhythm_curve_50hz.float()
        if self.predictor is None:
            return curve
        predictor_affect = self._affect(affect) if self.predictor.config.use_affect else None
        inputs = predictor_inputs(features, predictor_affect, self.predictor.config.semantic_feature)
        return odf_curve_50hz(predict_odf(self.predictor, inputs), curve.shape[0])

    def _affect(self, affect: torch.Tensor | None) -> torch.Tensor:
        if affect is None or len(affect) == 0:
            raise ConditioningError("these conditions read the video's affect features, and none were given")
        return torch.as_tensor(affect)
