"""Faults that are not a video's, and set-up mistakes, through the build as a data engineer runs it:
a full disk stops `dvmset build` with exit code 6 and a plain rerun finishes the job (and reports
the failed videos still in the catalog); a deployment run without a config stops before it writes
into the checkout."""

from __future__ import annotations

import errno
import sys

import pytest

from curation import steps
from curation.samples import VideoSpec, make_video
from dvmset.cli import main as cli
from dvmset.cli.common import ExitCode
from dvmset.errors import ConfigError
from flows.flows import ingest_flow
from tests.support.flow_builds import open_catalog, write_config

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_a_full_disk_stops_the_build_and_a_rerun_after_freeing_space_finishes_it(
    tmp_path, model_dir, monkeypatch, capsys
):
    folder = tmp_path / "media"
    make_video(folder / "music.mp4", VideoSpec(12.0, bpm=100, cut_every_s=4.0))
    (folder / "notes.mp4").write_text("not a video\n" * 50, encoding="utf-8")
    config_path = write_config(tmp_path / "run", model_dir)
    monkeypatch.setattr(sys, "argv", ["dvmset", "build", "--config", str(config_path), "--folder", str(folder)])

    def disk_full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(config_path.parent / "data" / "stems"))

    with monkeypatch.context() as full:
        full.setattr(steps.separate, "separate_file", disk_full)
        with pytest.raises(SystemExit) as stopped:
            cli.main()
    assert stopped.value.code == ExitCode.INFRASTRUCTURE
    assert "no space left" in capsys.readouterr().err
    assert statuses(config_path) == [("failed", "not_media"), ("probed", None)]  # the good video as it was

    with pytest.raises(SystemExit) as rerun:  # space freed: the same command goes on
        cli.main()
    assert statuses(config_path) == [("clipped", None), ("failed", "not_media")]
    assert rerun.value.code == ExitCode.ITEMS_FAILED  # it failed none, but a failed video remains
    printed = capsys.readouterr().out
    assert "Failed videos in the catalog" in printed and "not_media" in printed


def statuses(config_path) -> list[tuple[str, str | None]]:
    catalog = open_catalog(config_path)
    try:
        return sorted((v.status.value, v.error.reason.value if v.error else None) for v in catalog.videos())
    finally:
        catalog.close()


def test_a_deployment_run_without_a_config_stops_before_writing_into_the_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the worker's checkout, with no dvmset.toml
    monkeypatch.delenv("DVMSET_CONFIG", raising=False)
    monkeypatch.delenv("DVMSET_DATA_ROOT", raising=False)
    monkeypatch.setenv("PREFECT__RUNTIME__DEPLOYMENT__ID", "6d1f3c1e-0000-4000-8000-000000000001")
    with pytest.raises(ConfigError, match=r"--param config=/path/to/dvmset.toml") as stopped:
        ingest_flow(stages=["probe"])
    assert "\n" not in str(stopped.value)
    assert list(tmp_path.iterdir()) == []
