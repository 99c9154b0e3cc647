"""The ingest without a stage barrier (`flows.pipeline`): a video moves on while others are still in an earlier
stage; three runs that follow the catalog on disjoint stages (fetch, separate, clip, as the three deployments)
give the catalog one plain ingest gives; and the rule that ends a following run: nothing more can arrive."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
import yaml

from curation import steps
from dvmset.config import load_config
from dvmset.records import Download, SourceMetadata
from flows import pipeline
from flows.flows import ingest_flow
from flows.pipeline import upstream_of, upstream_work
from tests.support.catalogs import PROBE, cand
from tests.support.flow_builds import catalog_content, copy_of, open_catalog, with_step, write_config

FOLLOW_TIMEOUT_S = 300


def stages(*names: str) -> list[steps.Stage]:
    return [steps.stage_named(name) for name in names]


def test_a_video_is_separated_while_another_is_still_being_probed(built, discovered, tmp_path, monkeypatch):
    config_path = copy_of(discovered, tmp_path / "run")
    separating = threading.Event()
    waited: list[bool] = []
    real_probe, real_separate = steps.stage_named("probe").step, steps.stage_named("separate").step

    def slow_probe(catalog, config, video, owner):  # the web video's probe ends only once a separation began
        if "web_music" in video.url:
            waited.append(separating.wait(timeout=120))
        return real_probe(catalog, config, video, owner)

    def separate(catalog, config, video, owner):
        separating.set()
        return real_separate(catalog, config, video, owner)

    with_step(monkeypatch, "probe", slow_probe)
    with_step(monkeypatch, "separate", separate)
    summary = ingest_flow(config=config_path, workers=2)
    assert waited == [True]  # behind a stage barrier, no separation could start before every probe ended
    assert catalog_content(config_path) == catalog_content(built.config_path)
    assert list(dict.fromkeys(row["stage"] for row in summary["stages"])) == [s.name for s in steps.STAGES]


@pytest.mark.slow
def test_three_following_runs_on_disjoint_stages_give_the_catalog_of_one_ingest(built, discovered, tmp_path):
    config_path = copy_of(discovered, tmp_path / "chained")
    config = load_config(config_path)
    plan = {"clip": ["clip", "fingerprint"], "separate": ["separate"], "fetch": ["download", "probe"]}
    summaries: dict[str, dict] = {}
    errors: list[BaseException] = []

    def follow(name: str, chosen: list[str]) -> None:
        try:
            summaries[name] = ingest_flow(config=config, stages=chosen, workers=2, follow=True, poll_s=0.2)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    threads = [threading.Thread(target=follow, args=item, name=item[0]) for item in plan.items()]
    for thread in threads:  # downstream first: they wait for what upstream brings
        thread.start()
    for thread in threads:
        thread.join(timeout=FOLLOW_TIMEOUT_S)
    assert not [thread.name for thread in threads if thread.is_alive()], "a following run did not end"
    assert errors == []
    assert catalog_content(config_path) == catalog_content(built.config_path)
    for name, chosen in plan.items():
        assert {row["stage"] for row in summaries[name]["stages"]} == set(chosen), name
    separated = [row for row in summaries["separate"]["stages"] if row["status"] == "separated"]
    assert [row["count"] for row in separated] == [2]  # the two good videos, taken up as fetch probed them
    catalog = open_catalog(config_path)
    done = Counter((event.stage, event.video_id) for event in catalog.work_events())
    catalog.close()
    assert set(done.values()) == {1}  # each stage of each video once


def test_upstream_stages_are_those_before_the_last_chosen_one_not_chosen():
    names = lambda chosen: [stage.name for stage in upstream_of(chosen, steps.STAGES)]  # noqa: E731
    assert names(stages("clip", "fingerprint")) == ["download", "probe", "separate"]
    assert names(stages("separate")) == ["download", "probe"]
    assert names(stages("download", "probe")) == []
    assert names(stages("download", "clip")) == ["probe", "separate"]


def test_more_can_arrive_while_an_earlier_stage_has_a_video_pending_or_leased(tmp_path, model_dir):
    config_path = write_config(tmp_path / "run", model_dir)
    config = load_config(config_path)
    catalog = open_catalog(config_path)
    clip_run, separate_run, fetch_run = stages("clip", "fingerprint"), stages("separate"), stages("download", "probe")
    arrive = lambda chosen: upstream_work(catalog, config, chosen).more_can_arrive  # noqa: E731
    assert not arrive(clip_run)  # an empty catalog

    catalog.add_candidates([cand("youtube:a", "q")])  # discovered: pending at download
    assert arrive(clip_run) and arrive(separate_run)
    assert not arrive(fetch_run)  # nothing is before download

    catalog.mark_downloaded(Download("youtube:a", "raw/youtube:a/source.mp4", SourceMetadata()), "download/1")
    catalog.mark_probed("youtube:a", PROBE, "probe/1")  # pending at separate
    assert arrive(clip_run) and not arrive(separate_run)

    catalog.mark_separated("youtube:a", "htdemucs", steps.stage_named("separate").version_key(config))
    assert not arrive(clip_run)  # pending at clip: the clip run's own work

    owner = "another-host:4242:run"  # a worker of another machine: alive while its lease runs
    assert catalog.claim_work("youtube:a", "separate", owner, lease_s=60.0) is not None
    assert arrive(clip_run)  # the separation is recorded, its worker not done yet
    assert upstream_work(catalog, config, clip_run) == pipeline.Upstream(frozenset(), frozenset({"youtube:a"}))
    catalog.release_work("youtube:a", owner, "separated")
    assert not arrive(clip_run)

    assert catalog.claim_work("youtube:a", "separate", owner, lease_s=-1.0) is not None  # ran out: a dead worker
    assert not arrive(clip_run)
    catalog.close()


def test_the_three_chained_deployments_follow_disjoint_stages_that_cover_the_table():
    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "prefect.yaml").read_text(encoding="utf-8"))
    names = ("dvmset-fetch", "dvmset-separate", "dvmset-clip")
    chained = {d["name"]: d for d in spec["deployments"] if d["name"] in names}
    assert {name: d["work_pool"]["name"] for name, d in chained.items()} == {
        "dvmset-fetch": "dvmset-cpu",
        "dvmset-separate": "dvmset-gpu",
        "dvmset-clip": "dvmset-cpu",
    }
    assert all(d["entrypoint"] == "flows/flows.py:ingest_flow" and d["parameters"]["follow"] for d in chained.values())
    covered = [name for d in chained.values() for name in d["parameters"]["stages"]]
    assert covered == [stage.name for stage in steps.STAGES]  # each stage once, in order
    ingest = next(d for d in spec["deployments"] if d["name"] == "dvmset-ingest")
    assert (ingest["parameters"]["stages"], ingest["parameters"]["follow"]) == (None, False)


@pytest.mark.slow
def test_a_following_run_ends_when_upstream_videos_wait_with_nobody_on_them(discovered, tmp_path, monkeypatch):
    config_path = copy_of(discovered, tmp_path / "run")  # every video discovered: pending at download
    catalog = open_catalog(config_path)
    (video_id, *_) = [video.video_id for video in catalog.videos()]
    owner = "another-host:4242:fetch"  # a fetch worker of another machine, downloading one video
    assert catalog.claim_work(video_id, "download", owner, lease_s=600.0) is not None
    polls = threading.Semaphore(0)
    real_upstream_work = pipeline.upstream_work

    def counted(*args):
        polls.release()
        return real_upstream_work(*args)

    monkeypatch.setattr(pipeline, "upstream_work", counted)
    summaries: list[dict] = []
    run = threading.Thread(
        target=lambda: summaries.append(
            ingest_flow(config=config_path, stages=["separate"], follow=True, poll_s=0.1, idle_timeout_s=0.3)
        )
    )
    run.start()
    for _ in range(6):  # polls are poll_s apart: past idle_timeout_s, and the run goes on while fetch works
        assert polls.acquire(timeout=FOLLOW_TIMEOUT_S)
    assert run.is_alive()
    catalog.release_work(video_id, owner, "discovered")  # the fetch worker is gone; its videos stay pending
    run.join(timeout=FOLLOW_TIMEOUT_S)
    assert not run.is_alive(), "a following run waited for ever on upstream videos nobody works on"
    assert summaries and not summaries[0]["stages"]
    assert {video.status.value for video in catalog.videos()} == {"discovered"}
    catalog.close()
