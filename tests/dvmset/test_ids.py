import hashlib

import pytest

from dvmset.ids import (
    dirname_to_id,
    id_to_dirname,
    local_video_id,
    make_clip_id,
    make_video_id,
    split_clip_id,
    split_video_id,
)


def test_video_id_round_trip():
    assert make_video_id("YouTube", "dQw4w9WgXcQ") == "youtube:dQw4w9WgXcQ"
    assert split_video_id("youtube:dQw4w9WgXcQ") == ("youtube", "dQw4w9WgXcQ")


@pytest.mark.parametrize("bad", ["noprefix", ":abc", "you tube:x", "youtube:", "youtube:a b"])
def test_malformed_video_ids_are_refused(bad):
    with pytest.raises(ValueError):
        split_video_id(bad)


def test_clip_id_has_eight_digit_start_ms():
    clip_id = make_clip_id("youtube:abc", 60.0)
    assert clip_id == "youtube:abc:00060000"
    assert split_clip_id(clip_id) == ("youtube:abc", 60.0)
    assert make_clip_id("local:ff", 0.0012) == "local:ff:00000001"
    with pytest.raises(ValueError):
        make_clip_id("youtube:abc", 100_000.0)


def test_clip_id_of_a_platform_id_with_colons():
    clip_id = make_clip_id("generic:a:b", 120.5)
    assert split_clip_id(clip_id) == ("generic:a:b", 120.5)


def test_local_id_is_sha1_of_content(tmp_path):
    a, b, c = tmp_path / "a.mp4", tmp_path / "b copy.mp4", tmp_path / "c.mp4"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    c.write_bytes(b"other bytes")
    assert local_video_id(a) == local_video_id(b) == "local:" + hashlib.sha1(b"same bytes").hexdigest()
    assert local_video_id(a) != local_video_id(c)


@pytest.mark.parametrize("any_id", ["youtube:abc", "generic:a/b?c=d", "local:ff:00060000", "x:ünï code"])
def test_dirnames_are_safe_and_reversible(any_id):
    name = id_to_dirname(any_id)
    assert "/" not in name and " " not in name
    assert dirname_to_id(name) == any_id
