"""The object-store data root (`dvmset.store`) against moto's S3 server on 127.0.0.1: URLs and scratch
folders, fetch and upload under final keys, orphan clean-up by the lease holder, and the
one-line errors for a store that cannot be used."""

from __future__ import annotations

import os
import time

import pytest

from dvmset import store
from dvmset.config import load_config
from dvmset.errors import ConfigError
from dvmset.storage import DataRoot
from dvmset.store import ObjectStore, Storage, StoreError, check_store_url, default_scratch_dir, is_store_url
from tests.support.object_store import BUCKET, s3_server


@pytest.fixture
def s3(monkeypatch):
    with s3_server(monkeypatch) as server:
        yield server


def test_urls_are_told_from_paths_and_scratch_folders_are_named_after_them():
    assert is_store_url("s3://bucket/prefix") and is_store_url("gs://b/p")
    assert not is_store_url("data") and not is_store_url("/srv/data") and not is_store_url("file:///srv/data")
    assert check_store_url("s3://bucket/prefix/") == "s3://bucket/prefix"
    with pytest.raises(ValueError, match="carries credentials"):
        check_store_url("s3://AKIA:secret@bucket/prefix")
    with pytest.raises(ValueError, match="names no bucket"):
        check_store_url("s3:///prefix")
    scratch = default_scratch_dir("s3://bucket/a/b")
    assert scratch.parent.name == "bucket" and scratch.name.startswith("a-b-")
    assert default_scratch_dir("s3://bucket/a/c") != scratch


def test_an_object_store_data_root_works_in_a_scratch_folder_and_needs_its_own_catalog(tmp_path):
    (tmp_path / "dvmset.toml").write_text('data_root = "s3://bucket/run"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="set catalog_url too") as refused:
        load_config(tmp_path / "dvmset.toml", environ={})
    assert "s3:/bucket" not in str(refused.value)
    (tmp_path / "dvmset.toml").write_text(
        'data_root = "s3://bucket/run"\ncatalog_url = "sqlite:////tmp/c.sqlite"\n[storage]\nscratch_dir = "scratch"\n',
        encoding="utf-8",
    )
    config = load_config(tmp_path / "dvmset.toml", environ={})
    assert config.storage.url == "s3://bucket/run"
    assert config.data_root == tmp_path / "scratch"  # relative to the config file, as every path setting
    assert not (tmp_path / "s3:").exists()


def test_a_url_with_credentials_is_refused_without_repeating_them(tmp_path):
    (tmp_path / "dvmset.toml").write_text('data_root = "s3://AKIAXYZ:topsecret@bucket/run"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="carries credentials") as refused:
        load_config(tmp_path / "dvmset.toml", environ={})
    assert "topsecret" not in str(refused.value) and "AKIAXYZ" not in str(refused.value)


def test_upload_then_fetch_into_another_machines_scratch(s3, tmp_path):
    store = s3.store("run")
    here, there = Storage(DataRoot(tmp_path / "here"), store), Storage(DataRoot(tmp_path / "there"), store)
    folder = here.data.clip_dir("v1_000000")
    folder.mkdir(parents=True)
    (folder / "music.flac").write_bytes(b"music" * 100)
    (folder / "video.mp4").write_bytes(b"video" * 100)
    (folder / ".video.mp4.tmp-1-abc").write_bytes(b"half")  # a temporary file is never uploaded
    here.upload(folder)
    assert s3.objects("run") == {
        "clips/v1_000000/music.flac": b"music" * 100,
        "clips/v1_000000/video.mp4": b"video" * 100,
    }
    fetched = there.fetch_folder(there.data.clip_dir("v1_000000"))
    assert sorted(path.name for path in fetched.iterdir()) == ["music.flac", "video.mp4"]
    assert (fetched / "music.flac").read_bytes() == b"music" * 100
    inode = (fetched / "music.flac").stat().st_ino
    there.fetch(fetched / "music.flac")  # current: not downloaded again (a download renames a new file into place)
    assert (fetched / "music.flac").stat().st_ino == inode
    (folder / "music.flac").write_bytes(b"other" * 200)  # remade on the first machine
    here.upload(folder / "music.flac")
    assert there.fetch(fetched / "music.flac").read_bytes() == b"other" * 200
    assert (fetched / "music.flac").stat().st_ino != inode
    there.remove(there.data.clip_dir("v1_000000"))
    assert s3.objects("run") == {}


def test_a_folder_prefix_does_not_reach_its_longer_siblings(s3, tmp_path):
    storage = Storage(DataRoot(tmp_path), s3.store("run"))
    for name in ("v1_000000", "v1_0000001"):
        storage.data.clip_dir(name).mkdir(parents=True)
        (storage.data.clip_dir(name) / "music.flac").write_bytes(name.encode())
        storage.upload(storage.data.clip_dir(name))
    storage.remove(storage.data.clip_dir("v1_000000"))
    assert list(s3.objects("run")) == ["clips/v1_0000001/music.flac"]


def test_the_lease_holder_aborts_a_killed_multipart_upload(s3):
    store = s3.store("run")
    bucket, _, key = store.key("stems/v1/accompaniment.flac").partition("/")
    store.fs.call_s3("create_multipart_upload", Bucket=bucket, Key=key)
    assert store.clear_partial_uploads("stems/v2/") == 0  # another video's folder: not touched
    assert store.clear_partial_uploads("stems/v1/") == 1
    assert store.fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", []) == []


def test_only_owned_partial_uploads_under_a_prefix_are_aborted(s3):
    store = s3.store("run")
    bucket = store.key("").partition("/")[0]
    for relative in ("clips/a:00000000/video.mp4", "clips/a:b:00000000/video.mp4"):
        store.fs.call_s3("create_multipart_upload", Bucket=bucket, Key=store.key(relative).partition("/")[2])
    assert store.clear_partial_uploads("clips/a:", owned=lambda relative: relative.startswith("clips/a:0")) == 1
    uploads = store.fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])
    assert [upload["Key"] for upload in uploads] == [store.key("clips/a:b:00000000/video.mp4").partition("/")[2]]


def test_many_files_are_fetched_from_one_listing_without_a_request_each(s3, tmp_path, monkeypatch):
    here, there = (
        Storage(DataRoot(tmp_path / "here"), s3.store("run")),
        Storage(DataRoot(tmp_path / "there"), s3.store("run")),
    )
    for name in ("a:00000000", "a:00060000", "b:00000000"):
        here.data.clip_dir(name).mkdir(parents=True)
        (here.data.clip_dir(name) / "music.flac").write_bytes(name.encode())
        here.upload(here.data.clip_dir(name))
    assert list(here.listing(here.data.clips_dir, "a:")) == [
        here.data.clip_music_path(f"a:{start}") for start in ("00000000", "00060000")
    ]

    def no_head(*args, **kwargs):
        raise AssertionError("a request for one object")

    monkeypatch.setattr(ObjectStore, "info", no_head)
    wanted = [
        there.data.clip_music_path("a:00060000"),
        there.data.clip_music_path("b:00000000"),
        there.data.clip_music_path("gone:00000000"),
    ]
    listed = there.listed(wanted)
    assert sorted(listed) == sorted(wanted[:2])  # an object the store lacks is not listed
    done = []
    there.fetch_listed(listed, done=lambda: done.append(1))
    assert [path.read_bytes() for path in wanted[:2]] == [b"a:00060000", b"b:00000000"] and len(done) == 2
    assert not there.data.clip_music_path("a:00000000").exists()  # listed, but not wanted


def test_a_store_that_cannot_be_used_says_how_to_fix_it(s3, monkeypatch):
    with pytest.raises(ConfigError, match="does not exist; create it first"):
        ObjectStore(f"s3://no-such-bucket-{os.getpid()}/run", s3.endpoint_url).check()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store._filesystem.cache_clear()
    try:
        with pytest.raises(ConfigError, match="no usable credentials.*AWS_ACCESS_KEY_ID"):
            s3.store("run").check()
    finally:
        store._filesystem.cache_clear()


def test_a_lost_store_is_the_machines_fault_not_the_videos(tmp_path):
    storage = Storage(DataRoot(tmp_path), ObjectStore(f"s3://{BUCKET}/run", "http://127.0.0.1:9"))  # no server
    path = tmp_path / "clips" / "a" / "music.flac"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    with pytest.raises(StoreError, match="failed"):
        storage.upload(path)


def test_trim_removes_the_copies_used_longest_ago_and_never_a_recent_one(s3, tmp_path):
    storage = Storage(DataRoot(tmp_path), s3.store("run"))
    now = time.time()
    ages_s = {"raw/a/source.mp4": 9000, "clips/c1/music.flac": 8000, "features/c1/f.st": 7200, "clips/c2/x": 10}
    for relative, age_s in ages_s.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1000)
        os.utime(path, (now - age_s, now - age_s))
    (tmp_path / "catalog.sqlite").write_bytes(b"x" * 5000)  # not a copy: never trimmed
    assert storage.trim(max_bytes=2500) == 2000  # the two used longest ago
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "catalog.sqlite",
        "clips/c2/x",
        "features/c1/f.st",
    ]
    assert storage.trim(max_bytes=0) == 1000  # the recent one stays, whatever the size
    assert Storage(DataRoot(tmp_path)).trim(max_bytes=0) == 0  # a local data root is the data: never trimmed
