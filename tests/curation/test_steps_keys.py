"""The stage table and its version keys, pinned: the same settings give the same keys, byte for byte,
whatever the code around them becomes, so an existing catalog is never rebuilt by a refactoring.
No media."""

from __future__ import annotations

import pytest

from curation import steps
from dvmset.config import ClipConfig, Config, SeparateConfig
from dvmset.errors import ConfigError
from dvmset.records import ClipVersions

DEFAULT_KEYS = ClipVersions(
    separate="separate/2+48d57852",
    clip="clip/2+addcd11e",
    loudness="loudness/1+658750b8",
    prescreen="prescreen/3+f75aa923",
)


def test_the_default_config_gives_the_keys_it_always_gave():
    assert steps.stage_keys(Config()) == DEFAULT_KEYS


def test_settings_of_how_a_stage_runs_leave_its_key_alone_and_those_of_what_it_makes_change_it():
    runs_elsewhere = Config(
        separate=SeparateConfig(device="cuda", threads=4, decode_timeout_s=10.0),
        clip=ClipConfig(workers=7, timeout_s=5.0),
    )
    assert steps.stage_keys(runs_elsewhere) == DEFAULT_KEYS
    makes_other = Config(separate=SeparateConfig(model="other"), clip=ClipConfig(clip_s=10.0))
    assert steps.stage_keys(makes_other) == ClipVersions(
        separate="separate/2+42f44ec0",
        clip="clip/2+d196415a",
        loudness=DEFAULT_KEYS.loudness,
        prescreen=DEFAULT_KEYS.prescreen,
    )


def test_the_table_lists_the_stages_in_order_each_with_the_key_it_always_recorded():
    assert {stage.name: stage.version_key(Config()) for stage in steps.STAGES} == {
        "download": "download/1",
        "probe": "probe/1",
        "separate": DEFAULT_KEYS.separate,
        "clip": DEFAULT_KEYS.clip,
        "fingerprint": "fingerprint/2",
    }
    assert [stage.name for stage in steps.STAGES] == ["download", "probe", "separate", "clip", "fingerprint"]
    assert [stage.name for stage in steps.STAGES if stage.device is not None] == ["separate"]
    assert steps.stage_named("clip").step is steps.clip_step
    with pytest.raises(ConfigError, match="unknown stage 'split'; stages are download, probe, separate, clip"):
        steps.stage_named("split")
