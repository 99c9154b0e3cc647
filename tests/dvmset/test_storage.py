import pytest

from dvmset.storage import DataRoot, atomic_path, atomic_write_text, is_temp_name, remove_stale_temps


def test_layout(tmp_path):
    root = DataRoot(tmp_path)
    assert root.raw_dir("youtube:abc") == tmp_path / "raw" / "youtube:abc"
    assert root.clip_dir("youtube:abc:00060000") == tmp_path / "clips" / "youtube:abc:00060000"
    assert root.stems_dir("generic:a/b").parent == tmp_path / "stems"
    assert root.relative(tmp_path / "raw" / "x" / "f.mp4") == "raw/x/f.mp4"
    assert root.resolve("raw/x/f.mp4") == tmp_path / "raw" / "x" / "f.mp4"


def test_the_layout_names_are_the_published_ones(tmp_path):
    """Catalogs and manifests store these paths: renaming one orphans every existing data root."""
    root = DataRoot(tmp_path)
    clip = root.clip_dir("youtube:abc:00060000")
    assert (root.clip_video_path("youtube:abc:00060000"), root.clip_music_path("youtube:abc:00060000")) == (
        clip / "video.mp4",
        clip / "music.flac",
    )
    assert (root.manifests_dir, root.releases_dir, root.catalog_path) == (
        tmp_path / "manifests",
        tmp_path / "releases",
        tmp_path / "catalog.sqlite",
    )
    assert root.labeling_cache_dir("original") == tmp_path / "labeling-cache" / "original"


@pytest.mark.parametrize("escape", ["../outside", "raw/../../etc/passwd", "/etc/passwd"])
def test_resolve_refuses_paths_outside_the_root(tmp_path, escape):
    with pytest.raises(ValueError, match="leaves the data root"):
        DataRoot(tmp_path / "root").resolve(escape)


def test_atomic_write_leaves_no_half_file_on_error(tmp_path):
    final = tmp_path / "sub" / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(final) as temp:
            temp.write_text("half")
            assert is_temp_name(temp)
            raise RuntimeError("killed")
    assert not final.exists()
    assert list((tmp_path / "sub").iterdir()) == []


def test_atomic_write_replaces(tmp_path):
    final = tmp_path / "out.txt"
    atomic_write_text(final, "one")
    atomic_write_text(final, "two")
    assert final.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_remove_stale_temps(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / ".clip.mp4.tmp-123-abcd1234").write_text("partial")
    (tmp_path / "a" / "clip.mp4").write_text("done")
    assert remove_stale_temps(tmp_path) == 1
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["clip.mp4"]
