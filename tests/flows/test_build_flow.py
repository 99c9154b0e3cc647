"""The build flow in-process on Prefect's local test server, over a corpus of good and bad inputs."""

from __future__ import annotations

from collections import Counter
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

import flows.flows
from curation import steps
from dvmset.errors import ConfigError
from flows import context, gpu
from flows.flows import build_flow, ingest_flow
from flows.summary import artifact_key
from tests.support.flow_builds import LABEL, catalog_content, copy_of, file_times, open_catalog, with_step, write_config

pytestmark = pytest.mark.usefixtures("prefect_server")


CURATION_STAGES = ("download", "probe", "separate", "clip")  # the stages these tests expect counts of


def counted(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[tuple]:
    """The calls of `module.name` from now on, which still does its work."""
    calls: list[tuple] = []
    real = getattr(module, name)

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def rows(summary: dict, part: str) -> set[tuple]:
    return {tuple(row.values()) for row in summary[part] if row.get("stage", "") in CURATION_STAGES}


def test_the_build_completes_with_the_expected_catalog(built):
    videos, clips = catalog_content(built.config_path)
    assert sorted((status, reason, count) for _id, status, reason, count, _model in videos) == [
        ("clipped", None, 1),
        ("clipped", None, 2),
        ("failed", "not_media", None),
        ("failed", "unavailable", None),
        ("skipped", "too_short", None),
    ]
    assert sorted((status, start_s, end_s) for _id, status, start_s, end_s, _v in clips) == [
        ("pending_review", 0.0, 10.0),
        ("pending_review", 0.0, 10.0),
        ("pending_review", 10.0, 20.0),
    ]
    assert [row["error"] for row in built.summary["sources"]] == ["", ""]  # the folder and the URL list
    assert sum(row["new_videos"] for row in built.summary["sources"]) == 5


def test_the_summary_counts_each_stage_and_lists_each_failure_with_its_reason(built):
    assert rows(built.summary, "stages") == {
        ("download", "downloaded", "", 4),
        ("download", "failed", "unavailable", 1),
        ("probe", "probed", "", 2),
        ("probe", "failed", "not_media", 1),
        ("probe", "skipped", "too_short", 1),
        ("separate", "separated", "", 2),
        ("clip", "clipped", "", 2),
    }
    failures = {(f["stage"], f["status"], f["reason"]) for f in built.summary["failures"]}
    assert failures == {
        ("download", "failed", "unavailable"),
        ("probe", "failed", "not_media"),
        ("probe", "skipped", "too_short"),
    }
    assert all(f["message"] and f["video_id"] for f in built.summary["failures"])
    missing = next(f for f in built.summary["failures"] if f["reason"] == "unavailable")
    assert "404" in missing["message"]


def test_separation_on_a_gpu_holds_a_slot_of_that_gpus_limit_made_for_it_and_gives_it_back(built):
    limit = gpu.gpu_limit_name("cuda:0")  # gpu-<this host>-cuda:0, made by the first separation
    assert {names for names, _kwargs in built.gpu_calls} == {limit}  # taken once or twice for the two separations
    assert {kwargs["lease_duration"] for _names, kwargs in built.gpu_calls} == {gpu.GPU_LEASE_S}  # frees soon
    with get_client(sync_client=True) as client:
        made = client.read_global_concurrency_limit_by_name(limit)
    assert (made.limit, made.active_slots) == (gpu.GPU_SLOTS, 0)


def test_the_summary_is_a_markdown_artifact_of_the_run_keyed_by_data_root_and_run(built):
    data_root = str((built.config_path.parent / "data").resolve())
    with get_client(sync_client=True) as client:
        run_name = client.read_flow_run(UUID(built.flow_run_id)).name
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[artifact_key("build", data_root, run_name)]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(built.flow_run_id)]),
            )
        )
    assert artifact.type == "markdown"
    assert artifact.data.startswith(f"# DVMSet build: {data_root}, run {run_name}\n")
    assert "| probe | failed | not_media | 1 |" in artifact.data
    for failure in built.summary["failures"]:
        assert (
            f"| {failure['stage']} | {failure['video_id']} | {failure['status']} | {failure['reason']} |"
            in artifact.data
        )


def test_a_rerun_does_no_work_and_reads_its_config_and_checks_its_runner_once(
    built, tmp_path, media, url_list, monkeypatch
):
    config_path = copy_of(built.config_path.parent, tmp_path / "again")
    before = catalog_content(config_path), file_times(config_path)
    loads, checks = counted(monkeypatch, context, "load_config"), counted(monkeypatch, flows.flows, "check_runner")
    summary = build_flow(config=config_path, folder=str(media), urls=str(url_list), label=LABEL)
    assert (len(loads), len(checks)) == (1, 1)  # at the build's entry; its subflows and tasks get the object
    assert summary["stages"] == [] and summary["failures"] == []
    assert sum(row["new_videos"] for row in summary["sources"]) == 0
    assert (catalog_content(config_path), file_times(config_path)) == before
    assert file_times(config_path) == built.file_times  # the copy keeps the first run's files, untouched


def test_retry_failed_sends_the_failed_videos_back_and_only_those(built, tmp_path):
    config_path = copy_of(built.config_path.parent, tmp_path / "retry")
    summary = ingest_flow(config=config_path, retry_failed=True)
    assert rows(summary, "stages") == {("download", "failed", "unavailable", 1), ("probe", "failed", "not_media", 1)}
    assert catalog_content(config_path) == catalog_content(built.config_path)  # they fail again, for the same reasons


def test_a_task_that_raises_is_retried_with_the_configured_back_off(discovered, tmp_path, monkeypatch, model_dir):
    config_path = copy_of(discovered, tmp_path / "run")
    write_config(config_path.parent, model_dir, download_retries=1)
    calls: list[str] = []
    real_step = steps.stage_named("download").step

    def catalog_away_once(catalog, config, video, owner):
        calls.append(video.video_id)
        if calls.count(video.video_id) == 1:
            raise OSError("catalog unreachable")
        return real_step(catalog, config, video, owner)

    with_step(monkeypatch, "download", catalog_away_once)
    summary = ingest_flow(config=config_path, stages=["download"])
    assert sorted(Counter(calls).values()) == [2] * 5  # each video: the failed try and one retry
    assert rows(summary, "stages") == {("download", "downloaded", "", 4), ("download", "failed", "unavailable", 1)}


def test_a_task_that_keeps_raising_is_listed_and_the_flow_completes(discovered, tmp_path, monkeypatch):
    config_path = copy_of(discovered, tmp_path / "run")

    def broken(catalog, config, video, owner):
        raise OSError("disk on fire")

    with_step(monkeypatch, "probe", broken)
    summary = ingest_flow(config=config_path, stages=["download", "probe"])
    assert ("probe", "error", "OSError", 4) in rows(summary, "stages")
    assert {f["message"] for f in summary["failures"] if f["stage"] == "probe"} == {"disk on fire"}
    catalog = open_catalog(config_path)
    assert {v.status.value for v in catalog.videos()} == {"downloaded", "failed"}  # a rerun will probe them


def test_a_missing_model_fails_the_flow_before_any_video_is_marked(discovered, tmp_path, model_dir):
    config_path = copy_of(discovered, tmp_path / "run")
    ingest_flow(config=config_path, stages=["download", "probe"])
    write_config(config_path.parent, model_dir, model="nowhere")
    with pytest.raises(ConfigError, match="nowhere"):
        ingest_flow(config=config_path, stages=["separate"])
    catalog = open_catalog(config_path)
    assert sorted(v.status.value for v in catalog.videos()) == ["failed", "failed", "probed", "probed", "skipped"]


def test_a_set_up_error_in_a_task_is_not_retried_and_fails_the_flow(discovered, tmp_path, monkeypatch, model_dir):
    config_path = copy_of(discovered, tmp_path / "run")
    write_config(config_path.parent, model_dir, download_retries=2)
    calls: list[str] = []

    def no_cookies(catalog, config, video, owner):
        calls.append(video.video_id)
        raise ConfigError("cookies file missing")

    with_step(monkeypatch, "download", no_cookies)
    with pytest.raises(ConfigError, match="cookies"):
        ingest_flow(config=config_path, stages=["download"])
    assert len(calls) == 5  # once per video, no retries
