"""The orphan scan of an object-store data root (moto's S3 server on 127.0.0.1): objects under raw/, stems/ and
clips/ that the catalog does not know are found, but never those of a video under a live work lease or
changed too recently; `dvmset orphans` lists them and deletes them with --remove."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from curation import leases
from curation.orphans import find_orphans, remove_orphans
from dvmset.catalog import Catalog
from dvmset.cli.main import app
from dvmset.storage import DataRoot
from dvmset.store import Storage
from tests.support.catalogs import cand, make_clip, separated
from tests.support.object_store import BUCKET, s3_server

KNOWN = (
    "raw/yt:a/source.mp4",
    "raw/yt:a/source.info.json",  # a file beside the downloaded one, in the video's folder
    "stems/yt:a/accompaniment.flac",
    "clips/yt:a:00000000/music.flac",
    "stems/yt:c/accompaniment.flac",  # not separated, but its video is leased: its owner may be about to record it
)
ORPHANS = (
    "clips/not-a-clip/music.flac",
    "clips/yt:a:00060000/music.flac",  # a retired clip's
    "clips/yt:a:00999000/music.flac",  # a clip the catalog never recorded
    "raw/gone:z/source.mp4",  # a video not in the catalog
    "raw/yt:b/source.mp4",  # a video not downloaded
    "stems/yt:b/accompaniment.flac",  # a video not separated
)


@pytest.fixture
def store_run(tmp_path, monkeypatch):
    """A catalog (yt:a separated with a clip at 0 s and a retired one at 60 s, yt:b discovered, yt:c downloaded
    and leased by this process), the objects of KNOWN and ORPHANS in the store, and the Storage over both."""
    with s3_server(monkeypatch) as s3:
        catalog = Catalog.open(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
        separated(catalog, "yt:a")
        catalog.save_clip(make_clip("yt:a", 0.0))
        catalog.save_clip(make_clip("yt:a", 60.0))
        catalog.retire_clips("yt:a", ["yt:a:00000000"])
        catalog.add_candidates([cand("yt:b", "q"), cand("yt:c", "q")])
        assert catalog.claim_work("yt:c", "separate", leases.work_owner()) is not None
        store = s3.store("run")
        for relative in KNOWN + ORPHANS:
            store.fs.pipe_file(store.key(relative), relative.encode())
        yield s3, catalog, Storage(DataRoot(tmp_path / "scratch"), store)
        catalog.close()


def test_orphans_are_the_objects_the_catalog_does_not_know(store_run):
    s3, catalog, storage = store_run
    assert find_orphans(storage, catalog) == []  # all changed just now: an owner may be about to record them
    found = find_orphans(storage, catalog, min_age_s=0.0)
    assert [orphan.relative for orphan in found] == sorted(ORPHANS)
    assert {orphan.folder for orphan in found} == {"raw", "stems", "clips"}
    assert [orphan.size_bytes for orphan in found] == [len(relative) for relative in sorted(ORPHANS)]
    remove_orphans(storage, found)
    assert sorted(s3.objects("run")) == sorted(KNOWN)


def test_the_orphans_command_lists_them_and_removes_them_when_asked(store_run, tmp_path):
    s3, _, storage = store_run
    config = tmp_path / "dvmset.toml"
    config.write_text(
        f'data_root = "s3://{BUCKET}/run"\ncatalog_url = "sqlite:///{tmp_path / "catalog.sqlite"}"\n'
        f'[storage]\nendpoint_url = "{s3.endpoint_url}"\nscratch_dir = "{storage.data.root}"\n',
        encoding="utf-8",
    )
    listed = CliRunner().invoke(app, ["orphans", "--config", str(config), "--min-age-s", "0"])
    assert listed.exit_code == 0, listed.output
    assert all(relative in listed.output for relative in ORPHANS) and "--remove" in listed.output
    assert sorted(s3.objects("run")) == sorted(KNOWN + ORPHANS)  # listing deletes nothing
    removed = CliRunner().invoke(app, ["orphans", "--config", str(config), "--min-age-s", "0", "--remove"])
    assert removed.exit_code == 0, removed.output
    assert f"removed {len(ORPHANS)} objects" in removed.output
    assert sorted(s3.objects("run")) == sorted(KNOWN)


def test_a_local_data_root_has_no_orphans_to_scan(tmp_path):
    config = tmp_path / "dvmset.toml"
    config.write_text(f'data_root = "{tmp_path / "data"}"\n', encoding="utf-8")
    refused = CliRunner().invoke(app, ["orphans", "--config", str(config)])
    assert refused.exit_code == 2 and "is a local folder" in " ".join(refused.output.split())
