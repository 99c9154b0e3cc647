"""Errors of the model package: missing weights, clips whose media cannot be read, conditioning misfits.

`WeightsNotFoundError` is about the machine (fix it, then re-run);
`FeatureError` is about one clip and carries a `ReasonCode`, like every stage error;
`ConditioningError` is a programming or configuration error (a condition that does not fit the model);
`CheckpointError` is about a training checkpoint file or a resume that does not fit it.
"""

from __future__ import annotations

from dvmset.errors import DvmsetError, StageError


class WeightsNotFoundError(DvmsetError):
    """Pretrained weights could not be loaded; the message names the model id, where it was looked
    for (local folders, the Hugging Face cache) and how to provide it."""


class FeatureError(StageError):
    """A clip's video or music could not be turned into features or tokens."""


class ConditioningError(DvmsetError):
    """The conditioning does not fit the backbone or the batch (rhythm condition too short, a batch of
    the wrong size, no layer to adapt)."""


class CheckpointError(DvmsetError):
    """A training checkpoint is missing, unreadable, of another format, or does not fit the run that
    wants to continue from it (another stage, model or data settings)."""
