"""The download stage against a real HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from curation import download
from curation.download import backoff_delay_s, download_video, duration_rejection, reason_for, ytdlp_params
from curation.samples import VideoSpec, make_video
from dvmset.config import DownloadConfig
from dvmset.errors import ConfigError, DownloadError, ReasonCode
from dvmset.records import SourceKind, VideoRecord, VideoStatus
from dvmset.storage import DataRoot, is_temp_name

FAST = DownloadConfig(backoff_base_s=0.0)


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("served")
    make_video(folder / "a.mp4", VideoSpec(duration_s=65))
    for alias in ("flaky.mp4", "cut.mp4", "page.mp4"):
        os.link(folder / "a.mp4", folder / alias)
    return folder


@pytest.fixture(scope="module")
def server(media_dir, serve_folder):
    with serve_folder(media_dir) as running:
        yield running


@pytest.fixture
def root(tmp_path) -> DataRoot:
    return DataRoot(tmp_path / "data").ensure()


def url_video(url: str) -> VideoRecord:
    return VideoRecord(
        video_id="generic:abc123",
        url=url,
        platform="generic",
        source=SourceKind.URL_LIST,
        status=VideoStatus.DISCOVERED,
    )


def local_video(path: Path) -> VideoRecord:
    return VideoRecord(
        video_id="local:0123abcd",
        url=str(path),
        platform="local",
        source=SourceKind.LOCAL_FOLDER,
        status=VideoStatus.DISCOVERED,
    )


def files_under(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def json_ld_page(folder: Path, name: str, media_url: str, duration: str) -> str:
    """An HTML page whose schema.org VideoObject gives yt-dlp a duration before any media request."""
    video_object = {
        "@context": "https://schema.org",
        "@type": "VideoObject",
        "name": f"Page {name}",
        "contentUrl": media_url,
        "encodingFormat": "video/mp4",
        "duration": duration,
        "uploadDate": "2024-05-01",
        "author": {"@type": "Person", "name": "Some Channel"},
    }
    script = f'<script type="application/ld+json">{json.dumps(video_object)}</script>'
    (folder / name).write_text(f"<html><head><title>x</title>{script}</head><body></body></html>", encoding="utf-8")
    return f"/{name}"


# --- URLs through yt-dlp -------------------------------------------------------------------------


def test_url_download_lands_in_raw_dir_and_a_second_run_stays_offline(server, media_dir, root):
    url = server.url("/a.mp4")
    stale = root.raw_dir("generic:abc123") / ".source.tmp-999-deadbeef.mp4.part"  # left by a killed run
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a file")
    result = download_video(url_video(url), FAST, root)

    assert result.video_id == "generic:abc123"
    assert result.media_path == "raw/generic:abc123/source.mp4"
    assert root.resolve(result.media_path).read_bytes() == (media_dir / "a.mp4").read_bytes()
    assert result.metadata.extractor == "generic" and result.metadata.webpage_url == url
    assert result.metadata.title == "a"
    assert files_under(root.raw_dir("generic:abc123")) == ["metadata.json", "source.mp4"]
    assert "generic a" in (root.state_dir / "yt-dlp-archive.txt").read_text().splitlines()

    requests_before = server.total_requests()
    assert download_video(url_video(url), FAST, root) == result
    assert server.total_requests() == requests_before


def test_page_metadata_is_kept(server, media_dir, root):
    page = json_ld_page(media_dir, "fine.html", server.url("/page.mp4"), "PT65S")
    result = download_video(url_video(server.url(page)), FAST, root)

    meta = result.metadata
    assert (meta.title, meta.channel, meta.upload_date) == ("Page fine.html", "Some Channel", "20240501")
    assert meta.duration_s == 65
    assert meta.webpage_url == server.url(page) and meta.extractor == "generic"
    assert root.resolve(result.media_path).read_bytes() == (media_dir / "page.mp4").read_bytes()


@pytest.mark.parametrize(("duration", "reason"), [("PT10S", ReasonCode.TOO_SHORT), ("PT5H", ReasonCode.TOO_LONG)])
def test_known_duration_out_of_range_is_rejected_before_downloading(server, media_dir, root, duration, reason):
    media_path = f"/never-{duration}.mp4"
    page = json_ld_page(media_dir, f"{duration}.html", server.url(media_path), duration)

    with pytest.raises(DownloadError) as caught:
        download_video(url_video(server.url(page)), FAST, root)
    assert caught.value.reason is reason
    assert server.requests(page) == 1 and server.requests(media_path) == 0
    assert files_under(root.raw_dir("generic:abc123")) == []


def test_dead_url_is_unavailable_tried_once_and_leaves_no_file(server, root):
    sleeps: list[float] = []
    with pytest.raises(DownloadError) as caught:
        download_video(url_video(server.url("/gone.mp4")), DownloadConfig(retries=3), root, sleep=sleeps.append)
    assert caught.value.reason is ReasonCode.UNAVAILABLE
    assert "404" in caught.value.message and "\x1b[" not in caught.value.message
    assert server.requests("/gone.mp4") == 1 and sleeps == []
    assert files_under(root.raw_dir("generic:abc123")) == []


def test_closed_port_is_network_unreachable(root):
    sleeps: list[float] = []
    url = f"http://127.0.0.1:{closed_port()}/a.mp4"
    with pytest.raises(DownloadError) as caught:
        download_video(url_video(url), DownloadConfig(retries=3), root, sleep=sleeps.append)
    assert caught.value.reason is ReasonCode.NETWORK_UNREACHABLE
    assert "refused" in caught.value.message and sleeps == []


def test_transient_errors_are_retried_with_backoff(server, media_dir, root):
    server.fail_next("/flaky.mp4", 503, 503)
    sleeps: list[float] = []
    cfg = DownloadConfig(retries=3, backoff_base_s=0.5)

    result = download_video(url_video(server.url("/flaky.mp4")), cfg, root, sleep=sleeps.append)

    assert sleeps == [0.5, 1.0]
    assert server.requests("/flaky.mp4") >= 3  # two answered 503, then the file was served
    assert root.resolve(result.media_path).read_bytes() == (media_dir / "flaky.mp4").read_bytes()


def test_rate_limiting_after_all_retries_is_blocked(server, root):
    server.fail_next("/busy.mp4", 429, 429, 429)
    sleeps: list[float] = []
    cfg = DownloadConfig(retries=2, backoff_base_s=1.0)

    with pytest.raises(DownloadError) as caught:
        download_video(url_video(server.url("/busy.mp4")), cfg, root, sleep=sleeps.append)

    assert caught.value.reason is ReasonCode.BLOCKED
    assert "gave up after 3 attempts" in caught.value.message
    assert sleeps == [1.0, 2.0] and server.requests("/busy.mp4") == 3


def test_cut_off_transfer_leaves_no_final_named_file(server, root):
    server.truncate("/cut.mp4")
    with pytest.raises(DownloadError):
        download_video(url_video(server.url("/cut.mp4")), FAST, root)
    assert files_under(root.raw_dir("generic:abc123")) == []  # neither source.* nor temporary leftovers


def test_archived_video_without_its_file_says_so(server, root):
    url = server.url("/a.mp4")
    first = download_video(url_video(url), FAST, root)
    root.resolve(first.media_path).unlink()

    requests_before = server.total_requests()
    with pytest.raises(DownloadError, match="download archive") as caught:
        download_video(url_video(url), FAST, root)
    assert caught.value.reason is ReasonCode.DOWNLOAD_ERROR
    assert server.total_requests() - requests_before == 1  # the page was read, the file not fetched again


def test_bad_rate_limit_fails_before_any_request(server, root):
    requests_before = server.total_requests()
    with pytest.raises(ConfigError, match="rate_limit"):
        download_video(url_video(server.url("/a.mp4")), DownloadConfig(rate_limit="fast"), root)
    assert server.total_requests() == requests_before


# --- local files ---------------------------------------------------------------------------------


def test_local_file_is_hard_linked_into_raw_dir(tmp_path, root):
    source = tmp_path / "Opening Titles.MP4"
    source.write_bytes(b"not really a video, the stage does not look inside")

    result = download_video(local_video(source), FAST, root)

    assert result.media_path == "raw/local:0123abcd/source.mp4"
    assert os.path.samefile(root.resolve(result.media_path), source)
    meta = result.metadata
    assert (meta.title, meta.extractor, meta.webpage_url, meta.duration_s) == ("Opening Titles", "local", None, None)
    assert not any(is_temp_name(path) for path in root.raw_dir("local:0123abcd").iterdir())


def test_local_file_is_copied_when_it_cannot_be_linked(tmp_path, root, monkeypatch):
    source = tmp_path / "clip.webm"
    source.write_bytes(b"\x1aE\xdf\xa3 some bytes")

    def cross_device(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(download.os, "link", cross_device)
    result = download_video(local_video(source), FAST, root)

    copied = root.resolve(result.media_path)
    assert copied.name == "source.webm" and copied.read_bytes() == source.read_bytes()
    assert not os.path.samefile(copied, source)


def test_missing_local_file_is_source_not_found(tmp_path, root):
    with pytest.raises(DownloadError) as caught:
        download_video(local_video(tmp_path / "nowhere.mp4"), FAST, root)
    assert caught.value.reason is ReasonCode.SOURCE_NOT_FOUND
    assert "nowhere.mp4" in caught.value.message
    assert files_under(root.raw_dir("local:0123abcd")) == []


# --- pure helpers --------------------------------------------------------------------------------


NETWORK = "network_unreachable"
YT_DLP_MESSAGES = [
    ("[generic] a: Unable to download webpage: HTTP Error 404: Not Found (caused by <HTTPError 404>)", "unavailable"),
    ("[generic] a: Unable to download webpage: HTTP Error 410: Gone", "unavailable"),
    ("[youtube] dQw4w9WgXcQ: Video unavailable", "unavailable"),
    ("[youtube] dQw4w9WgXcQ: Private video. Sign in if you've been granted access to this video", "unavailable"),
    ("[youtube] dQw4w9WgXcQ: This video has been removed for violating YouTube's Terms of Service", "unavailable"),
    ("unable to download video data: HTTP Error 403: Forbidden", "blocked"),
    ("[youtube] dQw4w9WgXcQ: Sign in to confirm you\u2019re not a bot. Use --cookies-from-browser", "blocked"),
    ("[generic] a: Unable to download webpage: HTTP Error 429: Too Many Requests", "blocked"),
    ("Failed to resolve 'x.invalid' ([Errno -2] Name or service not known)", NETWORK),
    ("Unable to download webpage: [Errno 111] Connection refused", NETWORK),
    ("Unable to download webpage: <urlopen error [Errno -3] Temporary failure in name resolution>", NETWORK),
    ("[download] Got error: The read operation timed out", NETWORK),
    ("[youtube] dQw4w9WgXcQ: Requested format is not available. Use --list-formats", "download_error"),
    ("Postprocessing: Conversion failed!", "download_error"),
]


@pytest.mark.parametrize(("message", "reason"), YT_DLP_MESSAGES)
def test_reason_for_yt_dlp_messages(message, reason):
    assert reason_for(f"ERROR: {message}") is ReasonCode(reason)
    assert reason_for(f"\x1b[0;31mERROR:\x1b[0m {message}") is ReasonCode(reason)


def test_messages_are_cleaned_of_colour_codes():
    assert (
        download.clean_message("\x1b[0;31mERROR:\x1b[0m [generic] a: HTTP Error 404") == "[generic] a: HTTP Error 404"
    )


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        ("Unable to download webpage: HTTP Error 503: Service Unavailable", True),
        ("Unable to download webpage: HTTP Error 429: Too Many Requests", True),
        ("[download] Got error: The read operation timed out", True),
        ("Connection reset by peer", True),
        ("Unable to download webpage: HTTP Error 404: Not Found", False),
        ("Unable to download webpage: HTTP Error 403: Forbidden", False),
        ("Failed to establish a new connection: [Errno 111] Connection refused", False),
        ("[youtube] dQw4w9WgXcQ: Video unavailable", False),
    ],
)
def test_only_transient_errors_are_retried(message, transient):
    assert download.is_transient(message) is transient


def test_backoff_doubles_up_to_the_cap():
    cfg = DownloadConfig(backoff_base_s=2.0, backoff_max_s=5.0)
    assert [backoff_delay_s(attempt, cfg) for attempt in range(4)] == [2.0, 4.0, 5.0, 5.0]


def test_duration_filter_bounds():
    cfg = DownloadConfig(min_duration_s=60, max_duration_s=600)
    assert duration_rejection(None, cfg) is None  # unknown durations pass; the probe stage measures them
    assert duration_rejection(60, cfg) is None and duration_rejection(600, cfg) is None
    assert duration_rejection(59.5, cfg).reason is ReasonCode.TOO_SHORT
    assert duration_rejection(600.5, cfg).reason is ReasonCode.TOO_LONG


def test_ytdlp_options_follow_the_config(tmp_path):
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n")
    cfg = DownloadConfig(
        max_height=720,
        rate_limit="2M",
        cookies_file=cookies,
        sleep_requests_s=0.5,
        sleep_interval_s=3,
        max_sleep_interval_s=1,
        socket_timeout_s=7,
        proxy="socks5://127.0.0.1:9",
    )
    params = ytdlp_params(cfg, tmp_path, ".source.tmp-x", tmp_path / "archive.txt", download.DurationFilter(cfg))

    assert params["format"] == "bv*[height<=720]+ba/b[height<=720]/bv*+ba/b"
    assert params["merge_output_format"] == "mp4"
    assert params["ratelimit"] == 2 * 1024**2 and params["cookiefile"] == str(cookies)
    assert params["sleep_interval_requests"] == 0.5 and params["socket_timeout"] == 7
    assert (params["sleep_interval"], params["max_sleep_interval"]) == (3, 3)  # max never below min
    assert params["proxy"] == "socks5://127.0.0.1:9" and params["download_archive"] == str(tmp_path / "archive.txt")
    assert params["retries"] <= 1 and params["quiet"] and params["noprogress"]
    with pytest.raises(ConfigError, match="cookies_file"):
        ytdlp_params(DownloadConfig(cookies_file=tmp_path / "none.txt"), tmp_path, "t", tmp_path / "a", print)
