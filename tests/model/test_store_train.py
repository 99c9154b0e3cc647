"""`dvmset train` with an object-store data root (moto's S3 server on 127.0.0.1): the manifest given by its
URL is fetched with its clips into an empty scratch folder, and the run's losses are those of the same run
over the local data root, bit for bit."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from dvmset.cli.main import app
from dvmset.storage import DataRoot
from dvmset.store import Storage
from model.train_log import read_log
from tests.support.object_store import BUCKET, s3_server
from tests.support.tiny_models import TINY_DECODER_WIDTH, save_tiny_clip, save_tiny_musicgen
from tests.support.training_manifests import write_training_manifest

RUN = ["--stage", "1", "--steps", "2", "--batch-size", "2", "--crop-s", "2", "--warmup-steps", "1", "--seed", "3"]
MODELS = ["--musicgen", "tiny/musicgen", "--clip", "tiny/clip"]


def losses(config: Path, manifest: str, out_dir: Path) -> list[float]:
    result = CliRunner().invoke(
        app, ["train", "--config", str(config), "--manifest", manifest, "--out", str(out_dir), *RUN, *MODELS]
    )
    assert result.exit_code == 0, result.output
    return [record.loss for record in read_log(out_dir / "train_log.csv")]


def test_training_from_the_store_reads_what_a_local_root_holds(tmp_path, monkeypatch):
    save_tiny_musicgen(tmp_path / "models" / "tiny" / "musicgen", num_layers=8, hidden_size=TINY_DECODER_WIDTH)
    save_tiny_clip(tmp_path / "models" / "tiny" / "clip")
    data_root, _ = write_training_manifest(tmp_path, num_accepted=3)
    shutil.copytree(tmp_path / "manifests", data_root.manifests_dir)  # published under the data root
    local = tmp_path / "local.toml"
    local.write_text(f'data_root = "data"\nmodel_dir = "{tmp_path / "models"}"\n')
    expected = losses(local, str(data_root.manifests_dir / "v1"), tmp_path / "runs-local")
    with s3_server(monkeypatch) as s3:
        Storage(DataRoot(data_root.root), s3.store("run")).upload(data_root.manifests_dir, data_root.clips_dir)
        remote = tmp_path / "remote.toml"
        remote.write_text(
            f'data_root = "s3://{BUCKET}/run"\ncatalog_url = "sqlite:///{tmp_path / "c.sqlite"}"\n'
            f'model_dir = "{tmp_path / "models"}"\n[storage]\nendpoint_url = "{s3.endpoint_url}"\n'
            'scratch_dir = "scratch"\n'
        )
        got = losses(remote, f"s3://{BUCKET}/run/manifests/v1", tmp_path / "runs-store")
    assert got == expected and len(got) == 2
    scratch = DataRoot(tmp_path / "scratch")
    assert sorted(path.name for path in scratch.clips_dir.rglob("*.*")) == ["music.flac"] * 3 + ["video.mp4"] * 3
