"""The search stage: queries, URL lists and local folders -> `Candidate` records.

Three sources:
- platform search through yt-dlp's search prefixes (`ytsearchN:<query>` for YouTube; any other
  yt-dlp search extractor plugs in by platform name: bilibili, soundcloud, nicovideo, ...);
- a URL list file (one URL a line, optionally followed by a tab and the query it stands for);
- a local folder, searched recursively for media files (`local:<sha1 of content>` ids).
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import yt_dlp
from yt_dlp.extractor import gen_extractor_classes

from curation.ytdlp_errors import YtdlpLogger, clean_message, reason_for
from dvmset.config import SearchConfig
from dvmset.errors import ConfigError, ReasonCode, SearchError
from dvmset.ids import local_video_id, make_video_id
from dvmset.records import Candidate, SourceKind

BUNDLED_QUERIES_FILE = Path(__file__).parent / "data" / "queries.toml"
MEDIA_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".flv", ".ts", ".mts", ".mpg", ".mpeg", ".wmv", ".3gp", ".m4a"}
)


def load_queries(path: Path | None = None) -> list[str]:
    """All queries of a queries file (`[scenario] queries = [...]` tables), in file order, once each."""
    path = path or BUNDLED_QUERIES_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read queries file {path}: {exc}") from exc
    queries: list[str] = []
    for scenario, table in data.items():
        if not isinstance(table, dict) or not isinstance(table.get("queries"), list):
            raise ConfigError(f"{path}: [{scenario}] needs a 'queries' list")
        queries.extend(q.strip() for q in table["queries"] if isinstance(q, str) and q.strip())
    return list(dict.fromkeys(queries))


@lru_cache(maxsize=1)
def search_prefixes() -> dict[str, str]:
    """Platform name -> yt-dlp search prefix, e.g. `{"youtube": "ytsearch", "bilibili": "bilisearch"}`."""
    return {
        extractor.ie_key().removesuffix("Search").lower(): extractor.SEARCH_KEY
        for extractor in gen_extractor_classes()
        if getattr(extractor, "SEARCH_KEY", None)
    }


def search_prefix(platform: str) -> str:
    """The yt-dlp search prefix of a platform name (or of a prefix given as is)."""
    prefixes = search_prefixes()
    if platform in prefixes:
        return prefixes[platform]
    if platform in prefixes.values():
        return platform
    raise ConfigError(f"unknown search platform {platform!r}; known: {', '.join(sorted(prefixes))}")


def _platform_of(prefix: str) -> str:
    return next(name for name, key in search_prefixes().items() if key == prefix)


def search_platform(query: str, platform: str, cfg: SearchConfig) -> list[Candidate]:
    """Up to `cfg.results_per_query` candidates for one query on one platform.

    Raises SearchError (e.g. `network_unreachable`) when the platform cannot be reached;
    it fails fast: no retries, `cfg.socket_timeout_s` per request.
    """
    prefix = search_prefix(platform)
    options: dict[str, Any] = {
        "quiet": True,
        "logger": YtdlpLogger(),
        "noprogress": True,
        "no_color": True,
        "extract_flat": "in_playlist",
        "socket_timeout": cfg.socket_timeout_s,
        "retries": 0,
        "extractor_retries": 0,
        "skip_download": True,
    }
    if cfg.proxy:
        options["proxy"] = cfg.proxy
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            result = ydl.extract_info(f"{prefix}{cfg.results_per_query}:{query}", download=False)
    except yt_dlp.utils.DownloadError as exc:
        message = clean_message(str(exc))
        raise SearchError(reason_for(message), f"search {platform} for {query!r}: {message}") from exc
    candidates = []
    for entry in (result or {}).get("entries") or []:
        if not entry or not entry.get("id"):
            continue
        entry_platform = (entry.get("ie_key") or _platform_of(prefix)).lower()
        candidates.append(
            Candidate(
                video_id=make_video_id(entry_platform, entry["id"]),
                url=entry.get("url") or entry.get("webpage_url") or entry["id"],
                source=SourceKind.PLATFORM_SEARCH,
                query=query,
                title=entry.get("title"),
                duration_s=float(entry["duration"]) if entry.get("duration") else None,
            )
        )
    return candidates


@lru_cache(maxsize=1)
def _specific_extractors() -> tuple[Any, ...]:
    return tuple(ie for ie in gen_extractor_classes() if ie.ie_key() != "Generic")


def video_id_for_url(url: str) -> str:
    """`youtube:<id>` for a YouTube URL (any extractor that knows its id from the URL alone);
    `generic:<sha1 of the URL, 16 hex>` for any other URL. Needs no network."""
    for extractor in _specific_extractors():
        if extractor.suitable(url):
            platform_id = extractor.get_temp_id(url)
            if platform_id:
                return make_video_id(extractor.ie_key().lower(), platform_id)
            break
    return make_video_id("generic", hashlib.sha1(url.encode("utf-8")).hexdigest()[:16])


def read_url_list(path: Path) -> list[Candidate]:
    """Candidates from a URL list: `URL` or `URL<TAB>query` a line; `#` comments and blanks skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SearchError(ReasonCode.SOURCE_NOT_FOUND, f"cannot read URL list {path}: {exc}") from exc
    default_query = f"list:{path.name}"
    candidates = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        url, _, query = line.partition("\t")
        url = url.strip()
        if "://" not in url:
            raise SearchError(ReasonCode.SOURCE_NOT_FOUND, f"{path}:{number}: not a URL: {url!r}")
        candidates.append(
            Candidate(
                video_id=video_id_for_url(url),
                url=url,
                source=SourceKind.URL_LIST,
                query=query.strip() or default_query,
            )
        )
    return candidates


def iter_media_files(folder: Path) -> Iterator[Path]:
    """Media files under `folder` (recursively, sorted), by suffix; hidden files and folders skipped."""
    for path in sorted(folder.rglob("*")):
        relative_parts = path.relative_to(folder).parts
        if any(part.startswith(".") for part in relative_parts):
            continue
        if path.is_file() and path.suffix.lower() in MEDIA_SUFFIXES:
            yield path


def scan_folder(folder: Path, query: str | None = None) -> list[Candidate]:
    """Candidates for every media file under `folder`; same bytes under two names -> one video id."""
    if not folder.is_dir():
        raise SearchError(ReasonCode.SOURCE_NOT_FOUND, f"{folder} is not a folder")
    label = query or f"folder:{folder.name}"
    return [
        Candidate(
            video_id=local_video_id(path),
            url=str(path.resolve()),
            source=SourceKind.LOCAL_FOLDER,
            query=label,
            title=path.stem,
        )
        for path in iter_media_files(folder)
    ]


def search_queries(
    queries: list[str], cfg: SearchConfig, on_done: Callable[[str], None] = lambda _query: None
) -> tuple[list[Candidate], list[SearchError]]:
    """Search every query on every configured platform: (all candidates, the searches that failed).

    A `network_unreachable` failure ends the loop at once: with the network down, every other
    search would fail the same way, each after its own timeout.
    """
    candidates: list[Candidate] = []
    failures: list[SearchError] = []
    for query in queries:
        for platform in cfg.platforms:
            try:
                candidates += search_platform(query, platform, cfg)
            except SearchError as exc:
                failures.append(exc)
                if exc.reason is ReasonCode.NETWORK_UNREACHABLE:
                    return candidates, failures
        on_done(query)
    return candidates, failures
