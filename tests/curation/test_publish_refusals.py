"""What publish refuses, writing nothing (no folder, no side stored): a video without a current
fingerprint; clips made by a stand-in separator unless allowed, and then the card says so at the top;
a split that would get no rows, with the reason; a catalog with no decision.
"""

from __future__ import annotations

import pickle
import shutil

import pandas as pd
import pytest

from curation.publish import StandInError, publish
from dvmset.catalog import Catalog
from dvmset.config import load_config
from dvmset.errors import PublishError
from dvmset.records import ModelStamp
from tests.support.publish_catalog import LATER, add_video, new_workdir, run_cli


@pytest.mark.slow
def test_a_video_without_a_current_fingerprint_stops_the_publish(published, tmp_path):
    shutil.copytree(published, tmp_path / "work")
    config = load_config(tmp_path / "work" / "dvmset.toml", environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    catalog.mark_fingerprinted("local:b", 0)  # an older fingerprint version
    with pytest.raises(PublishError, match=r"local:b.*dvmset clip"):
        publish(catalog, config, "v0002")
    assert not (tmp_path / "work" / "data" / "manifests" / "v0002").exists()
    catalog.close()


@pytest.mark.slow
def test_stand_in_clips_are_refused_unless_allowed_and_then_the_card_warns_first(published, publish_media, tmp_path):
    card = (published / "data" / "manifests" / "v0001" / "README.md").read_text(encoding="utf-8")
    assert "\nstand_in: false\n" in card and "WARNING" not in card
    assert "| separator | `tiny` | unknown | no |" in card  # the fixture's videos recorded no stamps
    shutil.copytree(published, tmp_path / "work")
    config_path = tmp_path / "work" / "dvmset.toml"
    config = load_config(config_path, environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    stand_in, speech = ModelStamp("tiny-random", "5e" * 32, stand_in=True), ModelStamp("silero_vad", "cd" * 32)
    real = ModelStamp("htdemucs", "ab" * 32)
    (g, g_query, *_), (h, h_query, *_) = LATER
    add_video(catalog, config, publish_media, g, g_query, rejected=["noise"], models=(stand_in, speech))  # 1 rejected
    add_video(catalog, config, publish_media, h, h_query, models=(real, speech))
    catalog.close()
    manifests = tmp_path / "work" / "data" / "manifests"

    code, output = run_cli("publish", "--config", config_path, "--version", "v0002")
    said = " ".join(output.split())
    assert code == 2, output  # a usage error: the flag is missing
    assert "3 clips" in said and "'tiny-random'" in said and "--allow-stand-in" in said and "random weights" in said
    assert not (manifests / "v0002").exists()
    catalog = Catalog.open(config.resolved_catalog_url)
    with pytest.raises(StandInError) as refused:
        publish(catalog, config, "v0002")
    assert (refused.value.reason, refused.value.clips, refused.value.models) == ("stand_in", 3, ("tiny-random",))
    assert isinstance(refused.value, PublishError)
    assert str(pickle.loads(pickle.dumps(refused.value))) == str(refused.value)  # Prefect keeps it in a state
    catalog.close()

    code, output = run_cli("publish", "--config", config_path, "--version", "v0002", "--allow-stand-in")
    assert code == 0, output
    assert "STAND-IN OUTPUT PUBLISHED" in output and "3 clips" in " ".join(output.split())
    both = pd.concat(pd.read_parquet(manifests / "v0002" / f"{side}.parquet") for side in ("train", "test"))
    marked = both[both.stand_in]
    assert set(marked.video_id) == {f"local:{g}"} and set(marked.separator_model_id) == {"tiny-random"}
    card = (manifests / "v0002" / "README.md").read_text(encoding="utf-8")
    front, body = card.split("\n---\n", 1)
    assert "\nstand_in: true" in front
    warning = body.lstrip("\n").split("\n\n", 1)[0]  # the first thing under the front matter, above the title
    assert warning.startswith("> [!WARNING]\n> **STAND-IN OUTPUT, NOT DATA.** 2 of the ")
    assert "(and 1 of the rejected clips counted below)" in warning and "`tiny-random`" in warning
    accepted = len(both) - 2 - 3  # every clip but g's two and h's three came from the fixture's "tiny"
    for line in (
        "| separator | `tiny` | unknown | no |",
        f"| separator | `htdemucs` | `{'ab' * 32}` | no |",
        f"| separator | `tiny-random` | `{'5e' * 32}` | **yes: random weights, not data** |",
        f"| speech detector | `silero_vad` | `{'cd' * 32}` | no |",
    ):
        assert line in card, line
    models = card.split("## Models\n\n", 1)[1].split("\n## ", 1)[0]
    rows = [row.strip("| ").split(" | ") for row in models.splitlines() if row.startswith("| s")]
    totals = {cells[1]: int(cells[-1]) for cells in rows}
    assert totals == {"`tiny`": accepted, "`htdemucs`": 3, "`tiny-random`": 2, "`silero_vad`": 5}


def test_a_split_without_rows_is_refused_with_the_reason(publish_media, tmp_path):
    from curation.publish import EmptySplitError

    workdir = new_workdir(tmp_path, publish_media, [("a", "food")])  # one group: nothing can go to test
    code, output = run_cli("publish", "--config", workdir / "dvmset.toml")
    said = " ".join(output.split())
    assert code == 1, output
    assert "the test split would have no rows" in said
    assert "1 groups on train and 0 on test" in said and "only once it has 2 groups" in said and "'food', has 1" in said
    assert not (workdir / "data" / "manifests" / "v0001").exists()
    config = load_config(workdir / "dvmset.toml", environ={})
    catalog = Catalog.open(config.resolved_catalog_url)
    assert {v.split for v in catalog.videos()} == {None}  # no side stored either
    with pytest.raises(EmptySplitError) as refused:
        publish(catalog, config, "v0001")
    assert str(pickle.loads(pickle.dumps(refused.value))) == str(refused.value)
    catalog.close()


def test_a_publish_with_no_decision_is_refused(tmp_path):
    workdir = tmp_path / "empty"
    workdir.mkdir()
    (workdir / "dvmset.toml").write_text('data_root = "data"\n', encoding="utf-8")
    code, output = run_cli("publish", "--config", workdir / "dvmset.toml")
    assert code == 1 and "the train and test split would have no rows" in " ".join(output.split())
    assert not (workdir / "data" / "manifests" / "v0001").exists()
