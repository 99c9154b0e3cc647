"""The dataset card: counts per split and query, hours, rejections, models, the stand-in warning,
pictures, provenance."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from dvmset.dataset_card import (
    DURATION_PICTURE, LOUDNESS_PICTURE, SEPARATOR_ROLE, SPEECH_ROLE, ModelUse, card_text, histogram_png,
    write_dataset_card,
)  # fmt: skip
from dvmset.manifest import manifest_table
from dvmset.records import ModelStamp, RejectReason
from dvmset.split import Split
from tests.dvmset.test_manifest import CITY2, dataset_rows, make_row, make_video

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CONFIG = '[clip]\nclip_s = 60.0\n\n[search]\nqueries = ["food commercial", "a ```fenced``` query"]\n'


def tables(rows=None):
    rows = rows or dataset_rows()
    return manifest_table(rows[Split.TRAIN]), manifest_table(rows[Split.TEST])


def test_the_card_has_counts_pictures_and_provenance(tmp_path):
    train, test = tables()
    rejections = Counter({RejectReason.NON_MUSIC: 7, "noise": 2})
    code_version = "dvmset 0.1.0 (git 1a2b3c)"
    card = write_dataset_card(
        tmp_path / "v3", train, test, rejections=rejections, config_toml=CONFIG, code_version=code_version
    )
    text = card.read_text()
    assert card.name == "README.md" and text.startswith("---\npretty_name: \"DVMSet v3\"\n")
    assert "  - split: train\n    path: train.parquet\n" in text and "- n<1K\n" in text
    # per split: clips, videos, groups, hours (4 and 2 clips of 3 s)
    assert "| train | 4 | 2 | 2 | 0.00 |" in text and "| test | 2 | 2 | 2 | 0.00 |" in text
    assert "| **total** | 6 |  |  | 0.01 |" in text  # 18 s
    # per query (each video's first query): food 3 train + 1 test, city 1 + 1
    assert "| food commercial | 3 | 1 | 4 |" in text and "| city video guide | 1 | 1 | 2 |" in text
    assert "| non_music | 7 |\n| noise | 2 |" in text
    assert "````toml\n" + CONFIG.rstrip("\n") + "\n````" in text  # a longer fence than the config's
    assert "```text\ndvmset 0.1.0 (git 1a2b3c)\n```" in text
    for picture in (LOUDNESS_PICTURE, DURATION_PICTURE):
        assert f"]({picture})" in text
        assert (tmp_path / "v3" / picture).read_bytes().startswith(PNG_MAGIC)
    written = sorted(path.name for path in (tmp_path / "v3").iterdir())
    assert written == sorted([DURATION_PICTURE, LOUDNESS_PICTURE, "README.md"])


def test_a_clip_without_a_query_and_no_rejections_are_said_plainly():
    rows = dataset_rows()
    rows[Split.TEST].append(make_row(make_video("local:abc", ()), 0.0, "g-local", Split.TEST))
    rows[Split.TEST].append(make_row(CITY2, 3.0, "g-city2", Split.TEST))
    text = card_text("v1", dict(zip(Split, tables(rows))), Counter(), CONFIG, "x")
    assert "| (none) | 0 | 1 | 1 |" in text and "| city video guide | 1 | 2 | 3 |" in text
    assert "No clip was rejected." in text


def test_empty_splits_still_draw_a_picture():
    assert histogram_png([("loudness", "LUFS", {"train": [], "test": []})]).startswith(PNG_MAGIC)


def test_the_card_names_the_models_the_stems_came_from():
    rows = dataset_rows()
    plain = card_text("v1", dict(zip(Split, tables(rows))), Counter(), CONFIG, "x")
    assert "\nstand_in: false\n---\n" in plain and "WARNING" not in plain
    # without recorded models: the separator the rows name, SHA-256 unknown
    assert "| separator | `htdemucs` | unknown | no | 4 | 2 | 6 |" in plain
    models = [
        ModelUse(SPEECH_ROLE, ModelStamp("silero_vad", "cd" * 32), {"train": 4, "test": 2}),
        ModelUse(SEPARATOR_ROLE, ModelStamp("htdemucs", "ab" * 32), {"train": 4, "test": 2}),
    ]
    text = card_text("v1", dict(zip(Split, tables(rows))), Counter(), CONFIG, "x", models=models)
    section = text.split("## Models\n\n", 1)[1].split("\n## ", 1)[0]
    assert "| role | model | SHA-256 | stand-in | train | test | total |" in section
    lines = [line for line in section.splitlines() if line.startswith("| s")]
    assert lines == [
        f"| separator | `htdemucs` | `{'ab' * 32}` | no | 4 | 2 | 6 |",
        f"| speech detector | `silero_vad` | `{'cd' * 32}` | no | 4 | 2 | 6 |",
    ]


def test_stand_in_clips_open_the_card_with_a_warning(tmp_path):
    rows = dataset_rows()
    rows[Split.TRAIN] = [replace(r, separator_model_id="tiny-random-demo", stand_in=True) for r in rows[Split.TRAIN]]
    stand_in = ModelStamp("tiny-random-demo", "5e" * 32, stand_in=True)
    models = [
        ModelUse(SEPARATOR_ROLE, stand_in, {"train": 4}),
        ModelUse(SEPARATOR_ROLE, ModelStamp("htdemucs", "ab" * 32), {"test": 2}),
    ]
    train, test = tables(rows)
    card = write_dataset_card(
        tmp_path / "v2", train, test, rejections=Counter({"noise": 1}), config_toml=CONFIG, code_version="x",
        models=models, stand_in_rejected=1,
    )  # fmt: skip
    text = card.read_text()
    front, body = text.split("\n---\n", 1)
    assert "\nstand_in: true" in front + "\n"
    first = body.lstrip("\n").split("\n\n", 1)[0]  # the first thing under the front matter, above the title
    assert first.startswith("> [!WARNING]\n> **STAND-IN OUTPUT, NOT DATA.** 4 of the 6 clips of this manifest")
    assert "(and 1 of the rejected clips counted below)" in first and "`tiny-random-demo`" in first
    assert "RANDOM weights" in first and "--allow-stand-in" in first
    assert body.index("WARNING") < body.index("# DVMSet v2")
    assert f"| separator | `tiny-random-demo` | `{'5e' * 32}` | **yes: random weights, not data** | 4 | 0 | 4 |" in text
    assert f"| separator | `htdemucs` | `{'ab' * 32}` | no | 0 | 2 | 2 |" in text
