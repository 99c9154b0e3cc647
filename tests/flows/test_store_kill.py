"""kill -9 of a worker in the middle of an upload to an object-store data root (moto's S3 server on
127.0.0.1): the clip stage runs in a process whose clip-file uploads after the first each start a multipart
upload and stop there (one, or one per clip thread); the process is SIGKILLed; a rerun on another scratch
folder (another machine) takes the video over, aborts the partial uploads, removes the objects of the video's
clips the catalog never recorded (those of its present plan and of an older one, not those of another video
whose id starts with its id), and finishes: every object under clips/ is a file of a clip in the catalog, and
every clip's files are in the store."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curation.search import scan_folder
from dvmset.catalog import Catalog
from dvmset.cli.main import app
from dvmset.config import load_config
from dvmset.ids import id_to_dirname, make_clip_id
from dvmset.records import ClipStatus, VideoStatus
from dvmset.storage import MUSIC_FILE, PICTURE_FILE, VIDEO_FILE
from tests.flows.processes import clean_environ, process_group, wait_until
from tests.support.flow_builds import LABEL, write_store_config
from tests.support.object_store import BUCKET, CREDENTIALS, NO_CREDENTIALS, s3_server

# the clip stage, with every clip-file upload after the first stopped half way (a multipart upload begun)
HALTING_CHILD = """
import os, sys, time
from pathlib import Path
from dvmset import store

real_upload, uploaded = store.ObjectStore.upload, []

def upload(self, local, relative):
    if relative.startswith("clips/") and uploaded:
        bucket, _, key = self.key(relative).partition("/")
        begun = self.fs.call_s3("create_multipart_upload", Bucket=bucket, Key=key)
        self.fs.call_s3(
            "upload_part", Bucket=bucket, Key=key, UploadId=begun["UploadId"], PartNumber=1, Body=local.read_bytes()
        )
        Path(os.environ["HALTED"]).write_text(relative)
        time.sleep(600)
    real_upload(self, local, relative)
    uploaded.append(relative)

store.ObjectStore.upload = upload
from dvmset.cli.main import main
sys.argv = ["dvmset", *sys.argv[1:]]
main()
"""


def run(*args: str) -> None:
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_a_worker_killed_mid_upload_leaves_no_orphan_objects_and_loses_nothing(model_dir, media, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with s3_server(monkeypatch) as s3:
        catalog_url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
        config_path = write_store_config(tmp_path, model_dir, f"s3://{BUCKET}/run", catalog_url, s3.endpoint_url)
        catalog = Catalog.open(load_config(config_path).resolved_catalog_url)
        catalog.add_candidates([hit for hit in scan_folder(media, LABEL) if hit.title == "music"])  # 21 s: 2 clips
        monkeypatch.setenv("DVMSET_STORAGE__SCRATCH_DIR", str(tmp_path / "scratch-fetch"))
        run("download", "--config", config_path)
        run("separate", "--config", config_path, "--no-clips")
        halted = tmp_path / "halted"
        environ = clean_environ(
            "store-kill",
            **CREDENTIALS,
            **NO_CREDENTIALS,
            HALTED=str(halted),
            DVMSET_STORAGE__SCRATCH_DIR=str(tmp_path / "scratch-killed"),
        )
        child = tmp_path / "child.py"
        child.write_text(HALTING_CHILD, encoding="utf-8")
        args = [sys.executable, str(child), "clip", "--config", str(config_path)]
        with process_group(args, environ, tmp_path / "child.log") as process:
            wait_until(halted.exists, "a halted upload", timeout_s=300, process=process)
        store = s3.store("run")
        bucket = store.key("").partition("/")[0]
        halted_uploads = store.fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])
        assert halted_uploads  # one, or one per clip thread that reached an upload before the kill
        assert all(upload["Key"].startswith(store.key("clips/").partition("/")[2]) for upload in halted_uploads)
        assert not list(catalog.clips())  # the catalog never heard of the first clip, whose file was uploaded
        assert store.files("clips")  # ... so that object is an orphan, until the video's next holder
        (video_id,) = [video.video_id for video in catalog.videos()]
        unplanned = f"clips/{id_to_dirname(make_clip_id(video_id, 999.0))}/{MUSIC_FILE}"  # a clip of an older plan
        other_video = f"clips/{id_to_dirname(make_clip_id(video_id + ':b', 0.0))}/{MUSIC_FILE}"  # its id extends ours
        for relative in (unplanned, other_video):
            store.fs.pipe_file(store.key(relative), b"left by a dead owner")
        other_upload = store.key(other_video.replace(MUSIC_FILE, VIDEO_FILE)).partition("/")[2]
        store.fs.call_s3("create_multipart_upload", Bucket=bucket, Key=other_upload)  # alive, on another machine
        monkeypatch.setenv("DVMSET_STORAGE__SCRATCH_DIR", str(tmp_path / "scratch-rerun"))
        run("clip", "--config", config_path)
        uploads = store.fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])
        assert [upload["Key"] for upload in uploads] == [other_upload]
        clips = [clip for clip in catalog.clips() if clip.status is not ClipStatus.RETIRED]
        expected = {f"clips/{Path(clip.video_path).parent.name}/{name}" for clip in clips for name in FILES}
        assert set(store.files("clips")) == expected | {other_video} and clips  # not the other video's to remove
        videos = {video.video_id: video for video in catalog.videos()}
        assert {videos[clip.video_id].status for clip in clips} == {VideoStatus.CLIPPED}
        assert all(videos[clip.video_id].clip_count == len(clips) for clip in clips)
        catalog.close()


FILES = (MUSIC_FILE, PICTURE_FILE, VIDEO_FILE)
