"""Errors travel between processes (Dask workers) as they were made."""

from __future__ import annotations

import pickle

from dvmset.errors import ProbeError, ReasonCode


def test_a_stage_error_pickles_with_its_reason_and_message():
    error = ProbeError(ReasonCode.NO_AUDIO_STREAM, "the file has no audio stream")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is ProbeError
    assert (again.reason, again.message, str(again)) == (error.reason, error.message, str(error))
