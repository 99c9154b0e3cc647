import logging
from pathlib import Path

import pytest

from dvmset.config import STARTER_CONFIG, Config, ModelConfig, RhythmConfig, TrainConfig, load_config
from dvmset.errors import ConfigError


def test_embedded_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config == Config()
    assert config.resolved_catalog_url == f"sqlite:///{(tmp_path / 'data' / 'catalog.sqlite')}"


def test_starter_config_parses_to_the_defaults(tmp_path):
    path = tmp_path / "dvmset.toml"
    path.write_text(STARTER_CONFIG)
    config = load_config(path, environ={})
    assert config.data_root == tmp_path / "data"  # relative to the file's folder
    assert config.model_copy(update={"data_root": Path("data")}) == Config()


def test_environment_overrides_win_over_the_file(tmp_path):
    path = tmp_path / "dvmset.toml"
    path.write_text('data_root = "d"\n[download]\nretries = 5\nrate_limit = "1M"\n')
    environ = {
        "DVMSET_DATA_ROOT": "/srv/dvmset",
        "DVMSET_DOWNLOAD__RETRIES": "7",
        "DVMSET_SEARCH__PLATFORMS": "youtube,bilibili",
        "DVMSET_CATALOG_URL": "postgresql+psycopg://u@h/db",
        "DVMSET_TEST_PG_URL": "ignored",
        "DVMSET_WEIGHTS_CACHE": "/tmp/weights",  # where real weights are cached: not a setting
    }
    config = load_config(path, environ=environ)
    assert config.data_root == Path("/srv/dvmset")
    assert config.download.retries == 7
    assert config.download.rate_limit == "1M"
    assert config.search.platforms == ("youtube", "bilibili")
    assert config.resolved_catalog_url == "postgresql+psycopg://u@h/db"


def test_config_file_from_environment(tmp_path):
    path = tmp_path / "elsewhere.toml"
    path.write_text("[probe]\nmin_duration_s = 30\n")
    assert load_config(environ={"DVMSET_CONFIG": str(path)}).probe.min_duration_s == 30


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[download]\nretries = -1\n", "retries"),
        ("[download]\nretires = 3\n", "retires"),
        ("data_root = [\n", "cannot read"),
        ('[clip]\nx264_params = "mbtree 1"\n', "x264_params"),
    ],
)
def test_invalid_config_names_the_problem(tmp_path, text, needle):
    path = tmp_path / "dvmset.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_config(path, environ={})


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})


def test_config_toml_reads_back_to_the_same_config(tmp_path):
    from dvmset.config import PublishConfig, config_toml

    config = Config(data_root=tmp_path / "data", publish=PublishConfig(test_share=0.1, seed=7))
    (tmp_path / "dvmset.toml").write_text(config_toml(config), encoding="utf-8")
    assert load_config(tmp_path / "dvmset.toml", environ={}) == config
    assert "[publish]\ntest_share = 0.1" in config_toml(config)


def test_the_evaluate_section_takes_overrides_and_reads_back(tmp_path):
    from dvmset.config import config_toml, override_section, portable

    assert "\n[evaluate]" in STARTER_CONFIG
    flags = {"beats": "beat_track", "imagebind_score": False}
    config = override_section(Config(data_root=Path("d")), "evaluate", flags)
    evaluate = config.evaluate
    assert (evaluate.beats, evaluate.imagebind_score, evaluate.tolerance_s) == ("beat_track", False, 0.1)
    with pytest.raises(ConfigError, match="(?s)invalid evaluate settings.*exclude"):
        override_section(config, "evaluate", {"exclude": "landscapes"})
    (tmp_path / "run.toml").write_text(config_toml(portable(config)), encoding="utf-8")
    absolute = config.model_copy(update={"data_root": Path("d").resolve()})
    assert load_config(tmp_path / "run.toml", environ={}) == absolute


def test_the_model_sections_rhythm_options_read_their_predictor_relative_to_the_file(tmp_path):
    path = tmp_path / "dvmset.toml"
    path.write_text('[model]\nrhythm = "predicted-odf"\nrhythm_predictor = "runs/v1/rhythm.pt"\naffect = "on"\n')
    model = load_config(path, environ={}).model
    assert (model.rhythm, model.affect, model.rhythm_predictor) == (
        "predicted-odf",
        "on",
        tmp_path / "runs/v1/rhythm.pt",
    )
    path.write_text('[model]\nrhythm = "odf"\n')
    with pytest.raises(ConfigError, match="rhythm"):
        load_config(path, environ={})


def test_the_starter_config_writes_the_modelers_sections_with_a_comment_per_key():
    sections = {"model": [], "train": [], "rhythm": []}
    current = None
    for line in STARTER_CONFIG.splitlines():
        if line.startswith("["):
            current = line[1 : line.index("]")]
        elif current in sections and line.lstrip("# ")[:1].isalpha() and " = " in line:
            sections[current].append(line)
    assert [line.split(" = ")[0].lstrip("# ") for line in sections["model"]] == list(ModelConfig.model_fields)
    for name, section in (("train", TrainConfig), ("rhythm", RhythmConfig)):
        assert sorted(line.split(" = ")[0].lstrip("# ") for line in sections[name]) == sorted(section.model_fields)
    assert all("  # " in line for lines in sections.values() for line in lines)


def test_a_config_written_before_the_model_section_still_loads_with_a_warning(tmp_path, caplog):
    path = tmp_path / "config.toml"  # a resolved run config of the previous version: model keys under [train]
    path.write_text('[train]\nmusicgen = "tiny/musicgen"\nlora_rank = 32\nsteps = 3\nrhythm_predictor = "p.pt"\n')
    with caplog.at_level(logging.WARNING, logger="dvmset.config"):
        config = load_config(path, environ={})
    assert (config.model.musicgen, config.model.lora_rank, config.train.steps) == ("tiny/musicgen", 32, 3)
    assert config.model.rhythm_predictor == tmp_path / "p.pt"  # still relative to the file
    [warning] = caplog.messages
    assert warning == (
        f"{path}: musicgen, lora_rank, rhythm_predictor belong to the [model] section now: read from "
        "[train] this time; move them to [model]"
    )
    assert load_config(environ={"DVMSET_TRAIN__LORA_RANK": "16"}).model.lora_rank == 16  # old environment names too

    path.write_text("[train]\nlora_rank = 32\n[model]\nlora_rank = 16\n")
    with pytest.raises(ConfigError, match=r"lora_rank set under both \[train\] .* and \[model\]"):
        load_config(path, environ={})


def test_the_rhythm_section_takes_overrides_and_a_resolved_config_reads_back_with_the_model_section(tmp_path):
    from dvmset.config import config_toml, override_section, portable

    config = override_section(Config(data_root=Path("d")), "rhythm", {"epochs": 3, "affect": False})
    config = override_section(
        config, "model", {"semantic_feature": "cls", "lora_targets": "q,k,v,o", "rhythm_predictor": Path("p.pt")}
    )
    assert (config.rhythm.epochs, config.rhythm.affect, config.model.lora_targets) == (3, False, ("q", "k", "v", "o"))
    with pytest.raises(ConfigError, match="(?s)invalid rhythm settings.*hidden"):
        override_section(config, "rhythm", {"hidden": 0})
    text = config_toml(portable(config))
    assert "\n[model]\n" in text and "\n[rhythm]\n" in text
    (tmp_path / "run.toml").write_text(text, encoding="utf-8")
    loaded = load_config(tmp_path / "run.toml", environ={})
    assert loaded == portable(config) and loaded.model.rhythm_predictor == Path("p.pt").resolve()
