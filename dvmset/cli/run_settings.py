"""The settings of the modeler's commands (`train`, `train-rhythm`, `evaluate`): the config file with a command's
flags laid over its sections ([model], [train], [rhythm], [evaluate]).

Each of those commands writes the resolved config (`config_toml(portable(config))`: absolute data and model
folders) beside its output; `--config` with that file repeats the run from any folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from dvmset.cli.common import ExitCode, fail
from dvmset.config import Config, load_config, override_section
from dvmset.errors import ConfigError

Flags = Mapping[str, Mapping[str, object]]  # section -> key -> value (None: not given)


def configured(
    config_path: Path | None, flags: Flags, preset: Flags | None = None, data_root: Path | None = None
) -> Config:
    """The config of `config_path` (`load_config`) with each section's `preset` values, then its given flags,
    over it, and `data_root` when given; exits with the configuration's exit code (3) when the file or a
    value is invalid."""
    preset = preset or {}
    try:
        config = load_config(config_path)
        for section in {**preset, **flags}:
            given = {key: value for key, value in flags.get(section, {}).items() if value is not None}
            config = override_section(config, section, {**preset.get(section, {}), **given})
    except ConfigError as exc:
        raise fail(ExitCode.CONFIG, str(exc)) from exc
    return config if data_root is None else config.model_copy(update={"data_root": data_root})
