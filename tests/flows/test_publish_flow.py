"""The publish flow, alone and as the build flow's last step, over the built corpus with its clips accepted.

The corpus is separated by the tiny random-weight stand-in Demucs, so its clips are stand-in
output: publishing them is refused unless `allow_stand_in` is set, which these tests then set."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

from dvmset.errors import ConfigError, PublishError
from dvmset.records import ClipStatus
from flows.flows import build_flow, publish_flow
from tests.support.flow_builds import LABEL, MODEL, copy_of, open_catalog

pytestmark = pytest.mark.usefixtures("prefect_server")


def reviewed_copy(built, target: Path) -> Path:
    """A copy of the built corpus whose clips an annotator accepted; returns its config path. Its two
    videos have a query each, so no query has the 2 groups that put one on the test side by rule; a
    test share of one half puts the second on test (a publish with an empty split is refused)."""
    config_path = copy_of(built.config_path.parent, target)
    with open(config_path, "a", encoding="utf-8") as config:
        config.write("[publish]\ntest_share = 0.5\n")
    catalog = open_catalog(config_path)
    for clip in catalog.clips():
        catalog.add_label(clip.clip_id, "ann", ClipStatus.ACCEPTED)
    catalog.close()
    return config_path


def published_rows(summary: dict) -> dict[str, tuple]:
    return {row["split"]: (row["version"], row["clips"], row["videos"], row["error"]) for row in summary["published"]}


def build_artifact(flow_run_id: UUID) -> str:
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(like_="dvmset-build-"), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
            )
        )
    return artifact.data


def test_publish_writes_the_next_version_and_refuses_to_overwrite_it(built, tmp_path):
    config_path = reviewed_copy(built, tmp_path / "run")
    refused = publish_flow(config=config_path, return_state=True)  # stand-in clips, not allowed
    assert refused.is_failed() and "Traceback" not in refused.message
    assert "3 clips" in refused.message and repr(MODEL) in refused.message and "allow_stand_in" in refused.message
    assert not (config_path.parent / "data" / "manifests").exists()
    summary = publish_flow(config=config_path, allow_stand_in=True)
    rows = published_rows(summary)
    assert set(rows) == {"train", "test"}
    assert {version for version, *_ in rows.values()} == {"v0001"}
    assert sum(clips for _v, clips, _n, _e in rows.values()) == 3 and sum(n for _v, _c, n, _e in rows.values()) == 2
    manifests = config_path.parent / "data" / "manifests" / "v0001"
    assert sum(len(pd.read_parquet(manifests / f"{side}.parquet")) for side in rows) == 3
    assert "\nstand_in: true\n" in (manifests / "README.md").read_text(encoding="utf-8")
    sides = [video.split for video in open_catalog(config_path).videos() if video.clip_count]
    assert sorted(sides) == sorted(side for side, (_v, _c, videos, _e) in rows.items() for _ in range(videos))

    state = publish_flow(config=config_path, version="v0001", allow_stand_in=True, return_state=True)
    assert state.is_failed()
    assert "v0001" in state.message and "exists" in state.message and "Traceback" not in state.message
    with pytest.raises(PublishError, match="exists"):
        publish_flow(config=config_path, version="v0001", allow_stand_in=True)

    unchanged = published_rows(publish_flow(config=config_path, allow_stand_in=True))  # nothing new
    assert list(unchanged) == [""] and unchanged[""][:3] == ("v0002", 0, 0) and "v0001" in unchanged[""][3]
    assert not (manifests.parent / "v0002").exists()
    forced = published_rows(publish_flow(config=config_path, allow_stand_in=True, force=True))
    assert {version for version, *_ in forced.values()} == {"v0002"} and (manifests.parent / "v0002").is_dir()


def test_the_build_publishes_at_the_end_when_asked(built, tmp_path, media, url_list):
    config_path = reviewed_copy(built, tmp_path / "run")
    sources = {"config": config_path, "folder": str(media), "urls": str(url_list), "label": LABEL}
    refused = build_flow(**sources, publish=True, version="first", return_state=True)  # stand-in clips
    assert refused.is_failed() and refused.message.startswith("publish failed: ") and "stand-in" in refused.message
    summary = build_flow(**sources, publish=True, version="first", allow_stand_in=True)
    assert summary["stages"] == []  # everything was built already: only the publish is new
    assert {version for version, *_ in published_rows(summary).values()} == {"first"}
    assert (config_path.parent / "data" / "manifests" / "first" / "README.md").is_file()

    state = build_flow(**sources, publish=True, version="first", allow_stand_in=True, return_state=True)
    assert state.is_failed() and state.message.startswith("publish failed: ") and "exists" in state.message
    artifact = build_artifact(state.state_details.flow_run_id)
    assert "## Published" in artifact and "exists" in artifact and "## Catalog after the run" in artifact


def test_a_version_without_publish_is_a_set_up_error(tmp_path):
    with pytest.raises(ConfigError, match="without publish"):
        build_flow(folder=str(tmp_path), version="v9")
