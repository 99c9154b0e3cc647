"""A build whose data root is an object store (moto's S3 server on 127.0.0.1): its stages run as three
machines would (fetch, separate, clip: each in a scratch folder of its own, deleted before the next
starts, so each gets its inputs from the store alone) and give the catalog and the bytes a local build
gives; nothing is written to a local folder named after the URL."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dvmset.storage import VIDEO_FILE
from flows.flows import ingest_flow
from tests.support.flow_builds import catalog_content, discover_corpus, write_config
from tests.support.object_store import BUCKET, s3_server

PREFIX = "run"
MACHINES = {"fetch": ["download", "probe"], "separate": ["separate"], "clip": ["clip", "fingerprint"]}


def store_config(folder: Path, model_dir: Path, endpoint_url: str) -> Path:
    """A build config like `write_config`'s, its data root `s3://<bucket>/run` and a SQLite catalog beside it."""
    path = write_config(folder, model_dir)
    text = path.read_text(encoding="utf-8").replace('data_root = "data"', f'data_root = "s3://{BUCKET}/{PREFIX}"')
    path.write_text(
        f'catalog_url = "sqlite:///{folder / "catalog.sqlite"}"\n{text}[storage]\nendpoint_url = "{endpoint_url}"\n',
        encoding="utf-8",
    )
    return path


def local_files(data_root: Path) -> dict[str, bytes]:
    """The files a build made (raw, stems, clips), by path; a clip's video.mp4 only by being there (x264 in
    the pipeline now and then decides a few frames differently from run to run: bench/README.md)."""
    return {
        str(path.relative_to(data_root)): b"" if path.name == VIDEO_FILE else path.read_bytes()
        for folder in ("raw", "stems", "clips")
        for path in sorted((data_root / folder).rglob("*"))
        if path.is_file()
    }


@pytest.mark.slow
def test_three_machines_over_an_object_store_build_what_one_local_build_does(
    built, model_dir, media, url_list, tmp_path, monkeypatch, prefect_server
):
    monkeypatch.chdir(tmp_path)
    with s3_server(monkeypatch) as s3:
        config_path = store_config(tmp_path / "cluster", model_dir, s3.endpoint_url)
        discover_corpus(config_path, media, url_list)
        for machine, stages in MACHINES.items():
            scratch = tmp_path / f"scratch-{machine}"
            monkeypatch.setenv("DVMSET_STORAGE__SCRATCH_DIR", str(scratch))
            summary = ingest_flow(config=config_path, stages=stages)
            assert {row["stage"] for row in summary["stages"]} == set(stages)
            assert scratch.is_dir()
            shutil.rmtree(scratch)  # the next machine sees only the store
        stored = {
            name: b"" if name.endswith(VIDEO_FILE) else data
            for name, data in s3.objects(PREFIX).items()
            if name.split("/")[0] in {"raw", "stems", "clips"}
        }
    assert catalog_content(config_path) == catalog_content(built.config_path)
    assert stored == local_files(built.config_path.parent / "data")
    assert not any(path.name.startswith("s3:") for path in tmp_path.rglob("*"))
