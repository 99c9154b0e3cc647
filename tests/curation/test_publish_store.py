"""Publish with an object-store data root (moto's S3 server on 127.0.0.1), from a scratch folder that starts
empty: the versions published before, the fingerprints and the clip files come from the store, and the new
version is uploaded under its final keys, with the rows a local publish writes; its release is uploaded too."""

from __future__ import annotations

import shutil

import pandas as pd

from dvmset.storage import DataRoot
from dvmset.store import Storage
from tests.support.object_store import BUCKET, s3_server
from tests.support.publish_catalog import run_cli


def test_a_publish_over_the_store_sees_earlier_versions_and_uploads_the_new_one(published, tmp_path, monkeypatch):
    workdir = tmp_path / "local"
    shutil.copytree(published, workdir)
    data = DataRoot(workdir / "data")
    with s3_server(monkeypatch) as s3:
        Storage(data, s3.store("run")).upload(data.root / "stems", data.clips_dir, data.manifests_dir)
        config = tmp_path / "remote.toml"
        config.write_text(
            f'data_root = "s3://{BUCKET}/run"\ncatalog_url = "sqlite:///{data.catalog_path}"\n'
            f'[storage]\nendpoint_url = "{s3.endpoint_url}"\nscratch_dir = "scratch"\n[publish]\nseed = 3\n',
            encoding="utf-8",
        )
        code, output = run_cli("publish", "--config", config, "--force")
        assert code == 0, output
        assert "v0002" in output  # v0001 was seen in the store
        code, output = run_cli("release", "v0002", "--config", config)
        assert code == 0, output
        stored = s3.objects("run")
    assert "releases/v0002/clips.parquet" in stored
    scratch = DataRoot(tmp_path / "scratch")
    for side in ("train", "test"):
        key = f"manifests/v0002/{side}.parquet"
        assert stored[key] == (scratch.manifests_dir / "v0002" / f"{side}.parquet").read_bytes()
        new = pd.read_parquet(scratch.manifests_dir / "v0002" / f"{side}.parquet")
        old = pd.read_parquet(data.manifests_dir / "v0001" / f"{side}.parquet")
        pd.testing.assert_frame_equal(new, old)
    assert any(key.startswith("manifests/v0002/") and key.endswith(".md") for key in stored)  # the card
    assert not any(".tmp-" in key for key in stored)
