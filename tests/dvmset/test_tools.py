"""`stream_tool`: a tool's output read while it runs, its failures and timeouts as `StageError`s."""

from __future__ import annotations

import sys

import pytest

from dvmset.errors import ReasonCode, StageError
from dvmset.tools import stream_tool


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_stream_tool_returns_what_the_reader_read_and_drains_the_rest():
    writes = "import sys; sys.stdout.buffer.write(b'x' * 1_000_000)"
    assert stream_tool(_python(writes), 60, ReasonCode.DECODE_ERROR, "writing", lambda out: out.read(10)) == b"x" * 10


def test_stream_tool_failures_and_timeouts_are_stage_errors():
    fails = "import sys; print('bad input', file=sys.stderr); sys.exit(3)"
    with pytest.raises(StageError, match="reading: python.* exited with 3: bad input") as caught:
        stream_tool(_python(fails), 60, ReasonCode.DECODE_ERROR, "reading", lambda out: out.read())
    assert caught.value.reason is ReasonCode.DECODE_ERROR
    sleeps = "import time; time.sleep(60)"
    with pytest.raises(StageError, match="did not finish in 0.5 s"):
        stream_tool(_python(sleeps), 0.5, ReasonCode.DECODE_ERROR, "waiting", lambda out: out.read())
    hangs_after_its_output = "import sys, time; sys.stdout.close(); time.sleep(60)"
    with pytest.raises(StageError, match="did not finish in 0.5 s"):
        stream_tool(_python(hangs_after_its_output), 0.5, ReasonCode.DECODE_ERROR, "waiting", lambda out: out.read())
