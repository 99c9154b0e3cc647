import hashlib
import socket

import pytest
import yt_dlp

from curation import search
from dvmset.config import SearchConfig
from dvmset.errors import ConfigError, ReasonCode, SearchError
from dvmset.records import SourceKind


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_bundled_queries_cover_the_paper():
    queries = search.load_queries()
    assert len(queries) == 47 == len(set(queries))  # the paper reports 47 queries
    assert {"food commercial", "opening title sequence", "city video guide"} <= set(queries)


def test_queries_file_is_editable(tmp_path):
    path = tmp_path / "q.toml"
    path.write_text('[mine]\nqueries = ["a", "b", "a"]\n[more]\nqueries = ["c"]\n')
    assert search.load_queries(path) == ["a", "b", "c"]
    path.write_text('[mine]\nquery = "a"\n')
    with pytest.raises(ConfigError, match="needs a 'queries' list"):
        search.load_queries(path)


def test_search_prefixes_plug_in_by_platform_name():
    assert search.search_prefix("youtube") == "ytsearch"
    assert search.search_prefix("bilibili") == "bilisearch"
    assert search.search_prefix("scsearch") == "scsearch"
    with pytest.raises(ConfigError, match="unknown search platform"):
        search.search_prefix("myspace")


def test_search_while_offline_fails_fast_with_a_reason(monkeypatch):
    # A proxy on a closed local port stands for a machine without network: every request is refused.
    cfg = SearchConfig(proxy=f"http://127.0.0.1:{closed_port()}", socket_timeout_s=5)
    with pytest.raises(SearchError) as caught:
        search.search_platform("food commercial", "youtube", cfg)
    assert caught.value.reason is ReasonCode.NETWORK_UNREACHABLE
    assert "food commercial" in caught.value.message and "please report" not in caught.value.message
    # the loop over queries stops at the first unreachable network instead of trying them all
    calls = []
    monkeypatch.setattr(yt_dlp.YoutubeDL, "extract_info", _counting(yt_dlp.YoutubeDL.extract_info, calls))
    found, failures = search.search_queries(["q1", "q2", "q3"], cfg)
    assert found == [] and len(failures) == 1 and len(calls) == 1


def _counting(method, calls):
    def wrapper(self, *args, **kwargs):
        calls.append(args[0])
        return method(self, *args, **kwargs)

    return wrapper


def test_search_results_become_candidates(monkeypatch):
    canned = {
        "entries": [
            {
                "id": "abcdefghijk",
                "ie_key": "Youtube",
                "url": "https://www.youtube.com/watch?v=abcdefghijk",
                "title": "Food ad",
                "duration": 61.5,
            },
            {"id": "bcdefghijkl", "ie_key": "Youtube", "url": "https://www.youtube.com/watch?v=bcdefghijkl"},
            None,
        ]
    }
    asked = []
    monkeypatch.setattr(yt_dlp.YoutubeDL, "extract_info", lambda self, url, download: asked.append(url) or canned)
    found = search.search_platform("food commercial", "youtube", SearchConfig(results_per_query=7))
    assert asked == ["ytsearch7:food commercial"]
    assert [c.video_id for c in found] == ["youtube:abcdefghijk", "youtube:bcdefghijkl"]
    assert found[0].duration_s == 61.5 and found[0].title == "Food ad"
    assert {c.source for c in found} == {SourceKind.PLATFORM_SEARCH} and {c.query for c in found} == {"food commercial"}


def test_url_list(tmp_path):
    path = tmp_path / "urls.txt"
    path.write_text(
        "# a comment\n\nhttps://www.youtube.com/watch?v=dQw4w9WgXcQ\tfood commercial\n"
        "https://youtu.be/dQw4w9WgXcQ\nhttp://127.0.0.1:8000/clip.mp4\n"
    )
    found = search.read_url_list(path)
    expected_generic = "generic:" + hashlib.sha1(b"http://127.0.0.1:8000/clip.mp4").hexdigest()[:16]
    assert [c.video_id for c in found] == ["youtube:dQw4w9WgXcQ", "youtube:dQw4w9WgXcQ", expected_generic]
    assert [c.query for c in found] == ["food commercial", "list:urls.txt", "list:urls.txt"]
    path.write_text("not a url\n")
    with pytest.raises(SearchError, match="not a URL"):
        search.read_url_list(path)
    with pytest.raises(SearchError) as caught:
        search.read_url_list(tmp_path / "missing.txt")
    assert caught.value.reason is ReasonCode.SOURCE_NOT_FOUND


def test_folder_scan_is_recursive_and_dedups_by_content(tmp_path):
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "a.mp4").write_bytes(b"one")
    (tmp_path / "deep" / "er" / "Café №1.MKV").write_bytes(b"two")
    (tmp_path / "deep" / "copy of a.mp4").write_bytes(b"one")
    (tmp_path / "notes.txt").write_bytes(b"text")
    (tmp_path / ".hidden" / "x.mp4").write_bytes(b"three")
    (tmp_path / ".a.mp4.tmp-1-abc").write_bytes(b"partial")
    found = search.scan_folder(tmp_path, "my label")
    assert sorted(c.title for c in found) == ["Café №1", "a", "copy of a"]
    assert len({c.video_id for c in found}) == 2
    assert all(c.video_id.startswith("local:") and c.query == "my label" for c in found)
    assert search.scan_folder(tmp_path)[0].query == f"folder:{tmp_path.name}"
    with pytest.raises(SearchError, match="is not a folder"):
        search.scan_folder(tmp_path / "a.mp4")
