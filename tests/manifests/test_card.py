"""The dataset card: Hugging Face front matter (configs that `datasets` reads, licence, task and
size categories), counts per split and query, the split rule, the column dictionary, licences,
rejections, models, the stand-in warning, pictures, provenance without local paths; and the card
rendered to HTML and screenshotted in headless Chromium."""

from __future__ import annotations

import os
import random
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from PIL import Image

from dvmset.config import Config, config_toml
from dvmset.records import ModelStamp, RejectReason
from manifests.card import (
    CARD_FILE,
    SEPARATOR_ROLE,
    SPEECH_ROLE,
    TASK_CATEGORIES,
    ModelUse,
    card_text,
    hub_license,
    redact_local_paths,
    write_dataset_card,
)
from manifests.card_picture_files import DURATION_PICTURE, LOUDNESS_PICTURE, REVIEW_PICTURE, SCENE_CUT_PICTURE
from manifests.card_pictures import bar_png, histogram_png, histogram_range
from manifests.schema import COLUMN_DOCS, MANIFEST_SCHEMA, manifest_path, manifest_table, write_manifest
from manifests.split import Split
from tests.support.manifest_rows import CITY2, dataset_rows, make_row, make_video

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOT = REPO / "manifests" / "card-screenshot.png"  # README's picture of a card
PICTURES = [LOUDNESS_PICTURE, DURATION_PICTURE, SCENE_CUT_PICTURE, REVIEW_PICTURE]
# the Hub's size buckets (huggingface.co/docs/hub/datasets-cards)
HUB_SIZE_CATEGORIES = {"n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B"}
# the Hub's task ids near this dataset (@huggingface/tasks 0.21.54, src/pipelines.ts)
HUB_TASKS = {"text-to-audio", "audio-to-audio", "audio-classification", "video-classification", "any-to-any"}

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
    assert card.name == "README.md" and text.startswith('---\npretty_name: "DVMSet v3"\n')
    assert "  - split: train\n    path: train.parquet\n" in text and "- n<1K\n" in text
    # per split: clips, videos, groups, hours (4 and 2 clips of 3 s)
    assert "| train | 4 | 2 | 2 | 0.00 |" in text and "| test | 2 | 2 | 2 | 0.00 |" in text
    assert "| **total** | 6 |  |  | 0.01 |" in text  # 18 s
    # per query (each video's first query): food 3 train + 1 test, city 1 + 1
    assert "| food commercial | 3 | 1 | 4 |" in text and "| city video guide | 1 | 1 | 2 |" in text
    assert "| non_music | 7 |\n| noise | 2 |" in text
    assert "````toml\n" + CONFIG.rstrip("\n") + "\n````" in text  # a longer fence than the config's
    assert "```text\ndvmset 0.1.0 (git 1a2b3c)\n```" in text
    for picture in PICTURES:
        assert f"]({picture})" in text
        assert (tmp_path / "v3" / picture).read_bytes().startswith(PNG_MAGIC)
    written = sorted(path.name for path in (tmp_path / "v3").iterdir())
    assert written == sorted([*PICTURES, "README.md"])


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
        tmp_path / "v2",
        train,
        test,
        rejections=Counter({"noise": 1}),
        config_toml=CONFIG,
        code_version="x",
        models=models,
        stand_in_rejected=1,
    )
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


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("\n---\n", 1)[0].removeprefix("---\n"))


def test_the_front_matter_follows_the_hubs_conventions():
    rows = dataset_rows()
    no_licence = replace(make_row(make_video("local:abc", ()), 0.0, "g-local", Split.TEST), license=None)
    rows[Split.TEST].append(no_licence)
    meta = front_matter(card_text("v7", dict(zip(Split, tables(rows))), Counter(), CONFIG, "x"))
    assert meta["configs"] == [
        {
            "config_name": "default",
            "data_files": [{"split": "train", "path": "train.parquet"}, {"split": "test", "path": "test.parquet"}],
        }
    ]
    assert meta["pretty_name"] == "DVMSet v7" and meta["size_categories"] == ["n<1K"]
    assert meta["size_categories"][0] in HUB_SIZE_CATEGORIES
    assert meta["task_categories"] == list(TASK_CATEGORIES) and set(TASK_CATEGORIES) <= HUB_TASKS
    assert {"music", "video", "video-to-music"} <= set(meta["tags"]) and meta["stand_in"] is False
    # the fixture's videos say "cc-by" (no Hub id) and one says nothing: other, with the licences counted
    assert meta["license"] == "other" and meta["license_name"] == "source-video-licences"
    assert meta["source_licenses"] == [{"license": "cc-by", "videos": 4}, {"license": "unknown", "videos": 1}]


def test_one_licence_the_hub_knows_is_the_cards_licence_and_licences_are_counted():
    youtube_cc = "Creative Commons Attribution license (reuse allowed)"
    assert hub_license(youtube_cc) == "cc-by-3.0" and hub_license("CC-BY-4.0") == "cc-by-4.0"
    assert hub_license("Standard YouTube License") is None and hub_license(None) is None
    rows = {side: [replace(row, license=youtube_cc) for row in side_rows] for side, side_rows in dataset_rows().items()}
    text = card_text("v1", dict(zip(Split, tables(rows))), Counter(), CONFIG, "x")
    assert front_matter(text)["license"] == "cc-by-3.0" and "source_licenses" not in front_matter(text)
    assert f"| {youtube_cc} | cc-by-3.0 | 4 | 6 |" in text  # videos, clips
    rows[Split.TEST][0] = replace(rows[Split.TEST][0], license=None)
    text = card_text("v1", dict(zip(Split, tables(rows))), Counter(), CONFIG, "x")
    assert front_matter(text)["license"] == "other"
    assert f"| {youtube_cc} | cc-by-3.0 | 3 | 5 |" in text and "| unknown | unknown | 1 | 1 |" in text


def test_every_schema_column_has_a_description_in_the_column_dictionary():
    assert set(COLUMN_DOCS) == set(MANIFEST_SCHEMA.names)
    assert all(COLUMN_DOCS[name].strip() for name in MANIFEST_SCHEMA.names)
    text = card_text("v1", dict(zip(Split, tables())), Counter(), CONFIG, "x")
    section = text.split("## Columns\n\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| `")]
    assert [line.split(" | ")[0].removeprefix("| ").strip("`") for line in lines] == MANIFEST_SCHEMA.names
    assert f"| `query` | `string` | yes | {COLUMN_DOCS['query']} |" in lines
    assert f"| `queries` | `list<string>` | no | {COLUMN_DOCS['queries']} |" in lines
    assert f"| `scene_cuts_s` | `list<double>` | no | {COLUMN_DOCS['scene_cuts_s']} |" in lines


def test_the_config_block_holds_no_local_path():
    config = Config(
        data_root=Path("/home/alice/dvmset-data"),
        model_dir=Path("/srv/models"),
        catalog_url="sqlite:////home/alice/catalog.sqlite",
    )
    config = config.model_copy(
        update={
            "search": config.search.model_copy(update={"queries_file": Path("/home/alice/q.toml")}),
            "publish": config.publish.model_copy(update={"seed": 3}),
        }
    )
    toml_text = config_toml(config)
    assert "/home/alice" in toml_text and "/srv/models" in toml_text
    text = card_text("v1", dict(zip(Split, tables())), Counter(), toml_text, "x")
    assert "/home/alice" not in text and "/srv" not in text
    assert "# data_root = <redacted: a local path or private address>" in text
    assert "seed = 3" in text and "test_share = 0.07" in text  # the rest stays
    assert redact_local_paths('model = "C:\\\\models\\\\htdemucs"\nname = "~/x"\nkeep = "rel/path"\n') == (
        'model = "<local path>"\nname = "<local path>"\nkeep = "rel/path"\n'
    )


def test_the_split_rule_is_stated_with_the_configs_settings():
    toml_text = config_toml(Config().model_copy(update={"publish": Config().publish.model_copy(update={"seed": 5})}))
    text = card_text("v1", dict(zip(Split, tables())), Counter(), toml_text, "x")
    rule = text.split("## Splits\n\n", 1)[1].split("\n## ", 1)[0]
    assert "by source video and by near-duplicate group" in rule
    assert "`test_share` = 0.07" in rule and "`min_groups_per_query` = 2" in rule and "Seed: 5." in rule
    assert "Every query has clips on both sides." in rule
    rows = dataset_rows()
    rows[Split.TRAIN].append(make_row(make_video("youtube:solo", ("solo query",)), 0.0, "g-solo", Split.TRAIN))
    text = card_text("v1", dict(zip(Split, tables(rows))), Counter(), toml_text, "x")
    assert (
        "Queries whose clips are on one side only (too few groups, or all published there before): "
        "solo query (train)." in text
    )


def test_nearly_equal_values_get_a_readable_range():
    assert histogram_range([60.0, 60.006, 59.999]) == pytest.approx((58.80245, 61.20255))
    assert histogram_range([0.0, 0.0]) == (-0.5, 0.5)  # no scene cuts at all
    assert histogram_range([-14.0, -14.01]) == pytest.approx((-14.505, -13.505))
    assert histogram_range([30.0, 95.0, 600.0]) is None and histogram_range([]) is None
    assert histogram_png([("clips", "duration (seconds)", {"train": [60.0, 60.006]})]).startswith(PNG_MAGIC)
    assert bar_png("review outcome", {"accepted": 5, "rejected: noise": 2}).startswith(PNG_MAGIC)
    assert bar_png("review outcome", {}).startswith(PNG_MAGIC)


def publish_folder(folder: Path, rows=None, **card) -> Path:
    """A manifest folder as publish writes it: both Parquet files, the card and its pictures."""
    rows = rows or dataset_rows()
    for side in Split:
        write_manifest(rows[side], manifest_path(folder, side), {"manifest_version": folder.name})
    train, test = tables(rows)
    card = {"rejections": Counter({"non_music": 3, "noise": 1}), "rejected_clips": 4, "config_toml": CONFIG, **card}
    write_dataset_card(folder, train, test, code_version="dvmset 0.1.0", **card)
    return folder


def test_datasets_reads_both_splits_from_the_cards_own_configs(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    folder = publish_folder(tmp_path / "v1")
    # a decoy that the folder's file-name conventions would read as a third split, and the card's
    # PNGs that would make it an image folder: only the card's configs keep both out
    shutil.copy(manifest_path(folder, Split.TEST), folder / "validation.parquet")
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    assert sorted(loaded) == ["test", "train"]
    assert (loaded["train"].num_rows, loaded["test"].num_rows) == (4, 2)
    assert loaded["train"].column_names == MANIFEST_SCHEMA.names
    assert set(loaded["test"]["split"]) == {"test"}


def sample_dataset(seed: int = 0) -> tuple[dict[Split, list], dict[str, float]]:
    """A small published dataset that looks like a real one (for the screenshot): 60 s clips of
    14 videos over 3 queries, spread loudness and scene cuts; and the videos' durations."""
    rng = random.Random(seed)
    rows: dict[Split, list] = {side: [] for side in Split}
    durations = {}
    for index in range(14):
        query = ("food commercial", "opening title sequence", "city video guide")[index % 3]
        side = Split.TEST if index in (3, 7, 11) else Split.TRAIN
        video = make_video(f"youtube:video{index:02d}", (query,))
        durations[video.video_id] = duration = rng.uniform(65.0, 420.0)
        for start in range(0, int(duration // 60) * 60, 60):
            row = make_row(video, float(start), f"g-{index:02d}", side)
            cuts = tuple(sorted(rng.uniform(0, 60) for _ in range(rng.randint(2, 40))))
            before = rng.gauss(-20.0, 4.0)
            rows[side].append(
                replace(
                    row,
                    end_s=start + 60.0,
                    duration_s=60.0 + rng.uniform(-0.004, 0.004),
                    scene_cuts_s=cuts,
                    loudness_before_lufs=before,
                    gain_db=-14.0 - before,
                    loudness_lufs=-14.0 + rng.uniform(-0.05, 0.05),
                )
            )
    return rows, durations


def render_card_html(card: Path) -> str:
    """The card as a standalone HTML page: its front matter as a block above the Markdown body,
    rendered with Python-Markdown (tables, fenced code), pictures beside it."""
    markdown = pytest.importorskip("markdown")
    front, body = card.read_text(encoding="utf-8").removeprefix("---\n").split("\n---\n", 1)
    html = markdown.markdown(body, extensions=["tables", "fenced_code"])
    escaped = front.replace("&", "&amp;").replace("<", "&lt;")
    style = (
        "body{font-family:sans-serif;max-width:980px;margin:24px auto;color:#1f2328;font-size:15px;line-height:1.5}"
        "table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #d0d7de;padding:3px 8px;font-size:13px}"
        "th{background:#f6f8fa}code{background:#f6f8fa;padding:1px 4px;border-radius:4px;font-size:12px}"
        "pre{background:#f6f8fa;padding:10px;overflow:auto;font-size:12px}pre code{padding:0}"
        "blockquote{border-left:4px solid #d1242f;margin:0;padding:4px 12px;background:#fff5f5}"
        "img{max-width:100%;border:1px solid #eee}h1,h2{border-bottom:1px solid #d8dee4}"
        ".meta{border:1px solid #d0d7de;border-radius:6px}.meta b{display:block;padding:4px 10px;background:#f6f8fa}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head><body>"
        f"<div class='meta'><b>YAML front matter</b><pre>{escaped}</pre></div>{html}</body></html>"
    )


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make system-deps)")
@pytest.mark.slow
def test_the_card_renders_in_chromium(tmp_path):
    """Render a card to HTML and screenshot it in headless Chromium; with
    DVMSET_WRITE_DOCS_SCREENSHOT=1 the picture replaces README's `manifests/card-screenshot.png`."""
    sync_api = pytest.importorskip("playwright.sync_api")
    rows, durations = sample_dataset()
    clips = {side.value: len(side_rows) for side, side_rows in rows.items()}
    models = [
        ModelUse(SEPARATOR_ROLE, ModelStamp("htdemucs", "ab" * 32), clips),
        ModelUse(SPEECH_ROLE, ModelStamp("silero_vad", "cd" * 32), clips),
    ]
    folder = publish_folder(
        tmp_path / "v0001",
        rows,
        models=models,
        config_toml=config_toml(Config(data_root=Path("/home/alice/data"))),
        video_durations_s=durations,
        rejections=Counter({"non_music": 7, "noise": 3, "static": 2, "mismatch": 1}),
        rejected_clips=11,
    )
    page_file = folder / "card.html"
    page_file.write_text(render_card_html(folder / CARD_FILE), encoding="utf-8")
    shot = tmp_path / "card.png"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1040, "height": 900})
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            assert page.locator("h1").first.inner_text() == "DVMSet v0001"
            assert page.locator("table").count() == 6  # splits, queries, columns, licences, rejections, models
            images = page.locator("img")
            assert images.count() == len(PICTURES)
            widths = [images.nth(i).evaluate("img => img.naturalWidth") for i in range(images.count())]
            assert all(width > 0 for width in widths), widths  # every picture loaded
            assert "/home/alice" not in page.content()
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.read_bytes().startswith(PNG_MAGIC)
    if os.environ.get("DVMSET_WRITE_DOCS_SCREENSHOT") == "1":  # 256 colours: a third of the bytes, as sharp
        Image.open(shot).convert("RGB").quantize(256).save(DOCS_SCREENSHOT, optimize=True)
