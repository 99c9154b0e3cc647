"""The `dvmset` command line end to end, as a script would run it (a subprocess, exit codes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from curation.samples import SAMPLE_EXPECTATIONS
from dvmset.catalog import Catalog
from dvmset.cli.curate import DEMO_SEPARATOR
from dvmset.config import load_config
from dvmset.records import ClipStatus, VideoStatus


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DVMSET_")} | env
    return subprocess.run(
        [sys.executable, "-m", "dvmset", *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=600
    )


def open_catalog(workdir: Path) -> Catalog:
    return Catalog.open(load_config(workdir / "dvmset.toml", environ={}).resolved_catalog_url)


@pytest.mark.slow
def test_demo_runs_offline_and_explains_every_bad_file(tmp_path):
    prefect = {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    prefect["DVMSET_WEIGHTS_CACHE"] = str(tmp_path / "no-weights")  # the stand-in path (real weights: test_real_media)
    result = run(["demo", "--workdir", "demo"], tmp_path, **prefect)
    assert result.returncode == 0, result.stderr
    assert "Beginning flow run" in result.stderr  # the build flow, on Prefect's temporary local server
    assert "Failures" in result.stdout and "Catalog after the run" in result.stdout
    for _name, (_status, reason) in SAMPLE_EXPECTATIONS.items():
        assert reason is None or reason in result.stdout  # every bad file is listed with its reason
    catalog = open_catalog(tmp_path / "demo")
    by_title = {v.metadata.title: v for v in catalog.videos()}
    for name, (status, reason) in SAMPLE_EXPECTATIONS.items():
        video = by_title[Path(name).stem]
        status = VideoStatus.CLIPPED.value if status == VideoStatus.PROBED.value else status  # good ones go on
        assert (video.status.value, video.error.reason.value if video.error else None) == (status, reason), name
    clips = catalog.clips()
    assert clips and {c.status for c in clips} == {ClipStatus.PENDING_REVIEW}
    assert all((tmp_path / "demo" / "data" / c.video_path).is_file() for c in clips)
    assert "review queue" in result.stdout.lower()
    said = " ".join(
        result.stdout.split()
    )  # no weights in its empty cache: the stand-in ran, and every clip and line says so
    assert {(c.stand_in, c.separator_model_id) for c in clips} == {(True, DEMO_SEPARATOR)}
    assert f"separator: {DEMO_SEPARATOR} (STAND-IN with RANDOM weights, SHA-256 " in said
    assert f"{len(clips)} of {len(clips)} clips are stand-in output" in said
    # a second run finds nothing new and redoes nothing
    before = {v.video_id: v.updated_at for v in catalog.videos()}
    again = run(["demo", "--workdir", "demo"], tmp_path, **prefect)
    assert again.returncode == 0, again.stderr
    assert "0 new videos" in again.stdout
    assert {v.video_id: v.updated_at for v in catalog.videos()} == before


def test_init_writes_a_config_once(tmp_path):
    assert run(["init"], tmp_path).returncode == 0
    assert (tmp_path / "dvmset.toml").is_file()
    second = run(["init"], tmp_path)
    assert second.returncode == 2 and "--force" in second.stderr


def test_build_options_of_the_publish_step_need_publish(tmp_path):
    for option in (["--version", "v0001"], ["--allow-stand-in"]):
        result = run(["build", "--folder", str(tmp_path), *option], tmp_path)
        assert result.returncode == 2 and "need --publish" in result.stderr


def test_invalid_config_exits_3_with_the_reason(tmp_path):
    (tmp_path / "dvmset.toml").write_text("[download]\nretries = -4\n")
    result = run(["status"], tmp_path)
    assert result.returncode == 3
    assert "retries" in result.stderr and "Traceback" not in result.stderr


def test_offline_search_exits_4_with_a_reason_code(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run(
        ["discover", "-q", "food commercial", "-q", "city video guide"],
        tmp_path,
        DVMSET_SEARCH__PROXY=f"http://127.0.0.1:{port}",
    )
    assert result.returncode == 4, result.stderr
    assert "network_unreachable" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_url_list_with_a_dead_url(tmp_path, http_server, served_video):
    urls = tmp_path / "urls.txt"
    good = http_server.url(served_video.name)
    urls.write_text(f"{good}\tfood commercial\n{http_server.url('gone.mp4')}\tfood commercial\n")
    assert run(["discover", "--urls", str(urls)], tmp_path).returncode == 0
    result = run(["download"], tmp_path, DVMSET_DOWNLOAD__RETRIES="0")
    assert result.returncode == 1  # one video failed in this run
    assert "unavailable 1" in result.stdout
    catalog = Catalog.open(load_config(environ={"DVMSET_DATA_ROOT": str(tmp_path / "data")}).resolved_catalog_url)
    statuses = {v.url: (v.status.value, v.error.reason.value if v.error else None) for v in catalog.videos()}
    assert statuses == {good: ("probed", None), http_server.url("gone.mp4"): ("failed", "unavailable")}
    table = run(["status", "--by-query"], tmp_path)
    assert table.returncode == 0 and "food commercial" in table.stdout and "unavailable" in table.stdout


@pytest.fixture
def served_video(http_server):
    from curation.samples import VideoSpec, make_video

    return make_video(http_server.root / "good.mp4", VideoSpec(65.0))


def test_a_machine_fault_has_an_exit_code_of_its_own(monkeypatch, capsys):
    from dvmset.cli import main as cli
    from dvmset.cli.common import ExitCode
    from dvmset.errors import InfrastructureError

    def disk_full() -> None:
        raise InfrastructureError("separate/2 stopped at local:x: no space left (/data); free space, then run again")

    monkeypatch.setattr(cli, "app", disk_full)
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    assert stopped.value.code == ExitCode.INFRASTRUCTURE == 6
    assert "no space left" in capsys.readouterr().err
