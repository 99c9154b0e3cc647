"""Run summaries and runner checks: plain data and markdown, without a Prefect server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from curation import steps
from curation.outcomes import Failure, StageTally, StepOutcome
from curation.publish import PublishResult
from dvmset.config import Config, DownloadConfig
from dvmset.errors import ConfigError, ReasonCode
from dvmset.records import VideoStatus
from flows.runners import check_runner
from flows.summary import CountRow, RunSummary, SourceRow, artifact_key
from flows.tasks import task_for
from manifests.split import Split


def probe_tally() -> StageTally:
    tally = StageTally("probe")
    tally.add(StepOutcome("local:a", VideoStatus.PROBED))
    tally.add(StepOutcome("local:b", VideoStatus.FAILED, ReasonCode.NOT_MEDIA))
    tally.add(StepOutcome("local:c", VideoStatus.SKIPPED, ReasonCode.TOO_SHORT))
    tally.add_error("local:d", OSError("disk | full\nnow"))
    return tally


def test_a_tally_counts_by_status_and_reason_and_keeps_each_failure():
    tally = probe_tally()
    assert tally.total == 4
    assert tally.line() == "probe: 4 videos -> error/OSError 1, failed/not_media 1, probed 1, skipped/too_short 1"
    assert [(f.video_id, f.status, f.reason) for f in tally.failures] == [
        ("local:b", "failed", "not_media"),
        ("local:c", "skipped", "too_short"),
        ("local:d", "error", "OSError"),
    ]


def test_a_summary_round_trips_through_plain_data_and_chains_runs():
    first = RunSummary(sources=(SourceRow("folder /x", 3, 2),), catalog=(CountRow("catalog", "discovered", "", 2),))
    second = RunSummary(
        stages=(CountRow("probe", "failed", "not_media", 1),),
        failures=(Failure("probe", "local:b", "failed", "not_media", "ffprobe cannot read it"),),
        catalog=(CountRow("catalog", "failed", "not_media", 1),),
    )
    both = first.then(second)
    assert both.sources == first.sources and both.stages == second.stages and both.catalog == second.catalog
    assert RunSummary.from_dict(both.as_dict()) == both
    assert both.failed_videos == 1 and both.failed_sources == 0


def test_the_markdown_lists_stages_and_failures_with_escaped_cells():
    summary = RunSummary(
        stages=(CountRow("probe", "error", "OSError", 1),),
        failures=(Failure("probe", "local:d", "error", "OSError", "disk | full\nnow"),),
    )
    text = summary.markdown("DVMSet ingest")
    assert text.startswith("# DVMSet ingest\n")
    assert "| stage | status | reason | videos |\n|---|---|---|---|\n| probe | error | OSError | 1 |" in text
    assert "| probe | local:d | error | OSError | disk \\| full now |" in text
    assert "Nothing to do" in RunSummary().markdown("again")


def test_skipped_videos_are_not_failures_of_the_run():
    summary = RunSummary(failures=(Failure("probe", "local:c", "skipped", "too_short", "3 s"),))
    assert summary.failed_videos == 0


def test_a_video_left_to_another_run_is_counted_apart_and_is_no_failure():
    tally = StageTally("separate")
    tally.add(StepOutcome("local:a", VideoStatus.SEPARATED))
    tally.add(StepOutcome("local:b", VideoStatus.PROBED, left="leased"))
    assert tally.line() == "separate: 2 videos -> left/leased 1, separated 1"
    assert tally.failures == []


def test_failed_videos_left_in_the_catalog_are_listed_and_counted_after_a_run_that_failed_none():
    earlier = Failure("probe/1", "local:b", "failed", "not_media", "ffprobe cannot read it")
    summary = RunSummary(
        stages=(CountRow("separate", "separated", "", 1),),
        catalog=(CountRow("catalog", "failed", "not_media", 3),),
        still_failed=(earlier,),
    )
    assert (summary.failed_videos, summary.failed_in_catalog) == (0, 3)
    text = summary.markdown("DVMSet build")
    assert "## Failed videos in the catalog" in text and "3 videos are `failed`" in text and "--retry-failed" in text
    assert "| probe/1 | local:b | failed | not_media | ffprobe cannot read it |" in text
    assert RunSummary.from_dict(summary.as_dict()) == summary
    assert RunSummary().then(summary).still_failed == (earlier,)
    assert "Failed videos" not in RunSummary(catalog=(CountRow("catalog", "clipped", "", 2),)).markdown("x")


def test_the_artifact_key_names_the_data_root_and_the_run_in_the_characters_prefect_allows():
    key = artifact_key("build", "/srv/DVMSet data/root", "crimson-otter")
    assert key.startswith("dvmset-build-srv-dvmset-data-root-") and key.endswith("-crimson-otter")
    assert re.fullmatch(r"[a-z0-9-]+", key)
    assert artifact_key("build", "/srv/other/root", "crimson-otter") != artifact_key(
        "build", "/srv/other-root", "crimson-otter"
    )


def test_sqlite_is_refused_behind_a_dask_scheduler_but_not_on_a_local_cluster():
    api = "http://prefect.internal:4200/api"
    with pytest.raises(ConfigError, match="PostgreSQL"):
        check_runner("dask", "tcp://10.0.0.5:8786", 4, "sqlite", api)
    check_runner("dask", None, 2, "sqlite", None)
    check_runner("dask", "tcp://10.0.0.5:8786", 4, "postgresql", api)
    with pytest.raises(ConfigError, match="runner"):
        check_runner("spark", None, 2, "sqlite", None)
    with pytest.raises(ConfigError, match="workers"):
        check_runner("local", None, 0, "sqlite", None)


@pytest.mark.parametrize(
    "api_url", [None, "http://127.0.0.1:4200/api", "http://localhost:4200/api", "http://[::1]:4200/api"]
)
def test_a_dask_scheduler_needs_a_prefect_api_other_machines_reach(api_url):
    with pytest.raises(ConfigError, match="PREFECT_API_URL=http://<its host>:4200/api") as refused:
        check_runner("dask", "tcp://10.0.0.5:8786", 4, "postgresql", api_url)
    assert "\n" not in str(refused.value)
    check_runner("dask", None, 4, "postgresql", api_url)  # a LocalCluster runs on this machine


def test_downloads_retry_with_the_configured_exponential_back_off_and_other_stages_do_not():
    config = Config(download=DownloadConfig(retries=3, backoff_base_s=2.0, backoff_max_s=5.0))
    download, separate = steps.stage_named("download"), steps.stage_named("separate")
    task = task_for(download, config)
    assert (task.name, task.retries, task.retry_delay_seconds) == ("download", 3, [2.0, 4.0, 5.0])
    assert task_for(download, Config(download=DownloadConfig(retries=0))).retries == 0
    assert (task_for(separate, config).name, task_for(separate, config).retries) == ("separate", 0)


def test_a_publish_gives_one_row_per_side_and_lists_withheld_videos_without_failing_the_run():
    result = PublishResult(
        version="v0002",
        manifest_dir=Path("/data/manifests/v0002"),
        clips={Split.TRAIN: 5, Split.TEST: 1},
        videos={Split.TRAIN: 3, Split.TEST: 1},
        rejected_clips=2,
        groups=4,
        newly_published_videos=4,
        merges=(),
        withheld_video_ids=("local:w",),
    )
    summary = RunSummary.of_publish(result)
    assert [(r.version, r.split, r.clips, r.videos, r.error) for r in summary.published] == [
        ("v0002", "train", 5, 3, ""),
        ("v0002", "test", 1, 1, ""),
    ]
    assert [(f.stage, f.video_id, f.status) for f in summary.failures] == [("publish", "local:w", "withheld")]
    assert summary.failed_videos == 0
    assert "| v0002 | train | 5 | 3 | /data/manifests/v0002 |  |" in summary.markdown("DVMSet publish")
    assert RunSummary.from_dict(summary.as_dict()) == summary
