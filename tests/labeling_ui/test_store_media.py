"""The labeling app over an object-store data root: a clip's files are fetched from the store into this
machine's scratch folder on first use and served from there, with the same path checks as a local root."""

from __future__ import annotations

import pytest

from dvmset.catalog import Catalog
from dvmset.storage import DataRoot
from dvmset.store import Storage
from labeling_ui.app import AppSettings, LabelingApp
from labeling_ui.media import MediaError
from labeling_ui.session import SessionState
from tests.support.object_store import s3_server


def test_clips_in_the_store_are_served_from_a_scratch_folder_that_started_empty(review_data, tmp_path, monkeypatch):
    with s3_server(monkeypatch) as s3:
        store = s3.store("labeling")
        Storage(DataRoot(review_data.data_root), store).upload(DataRoot(review_data.data_root).clips_dir)
        scratch = tmp_path / "scratch"
        catalog = Catalog.open(review_data.catalog_url)
        app = LabelingApp(AppSettings(scratch, review_data.catalog_url, store=store), catalog)
        request = type("Request", (), {"username": "ann"})()
        outputs = app.start(SessionState(), request)
        assert str(scratch / "clips") in str(outputs[1])  # the player plays the fetched copy
        for clip in catalog.clips():
            for relative in (clip.video_path, clip.music_path):
                served = app.media.path(relative)
                assert served.is_relative_to(scratch.resolve() / "clips")
                assert served.read_bytes() == (review_data.data_root / relative).read_bytes()
        with pytest.raises(MediaError, match="not under the data root's clips folder"):
            app.media.path("catalog.sqlite")
        with pytest.raises(MediaError, match="leaves the data root"):
            app.media.path("../../etc/passwd")
        assert not (scratch / "catalog.sqlite").exists()
        catalog.close()
