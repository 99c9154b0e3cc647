"""Flow fixtures: Prefect's local test server, a small corpus of good and bad inputs, and one
build over it that several tests read.

The corpus: in a local folder, a 21 s music video (two 10 s clips), a text file named .mp4
(failed: not_media) and a 3 s video (skipped: too_short); in a URL list served by a real HTTP
server on 127.0.0.1, a 12 s music video (one clip) and a missing file (failed: unavailable).
A tiny random-weight Demucs (8 kHz) stands in for htdemucs, as in tests/curation/test_steps.py.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid

# Prefect reads its settings once, when first imported: give it a scratch home and a quiet server.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="dvmset-test-prefect-")
atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], True)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_CLI_PROMPT"] = "false"
os.environ.pop("PREFECT_API_URL", None)

from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402
from prefect.client.orchestration import get_client  # noqa: E402
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from curation import separate  # noqa: E402
from curation.samples import VideoSpec, make_video  # noqa: E402
from curation.search import read_url_list, scan_folder  # noqa: E402
from dvmset.catalog import Catalog  # noqa: E402
from dvmset.config import load_config  # noqa: E402
from flows import tasks  # noqa: E402
from flows.flows import build_flow  # noqa: E402
from flows.tasks import GPU_LIMIT  # noqa: E402
from tests.flows.processes import PREFECT, clean_environ, free_port, kill_marked, process_group, wait_until  # noqa: E402

MODEL = "tiny-random"
LABEL = "test corpus"



@pytest.fixture(scope="session")
def prefect_server():
    """Prefect's temporary local server (and database) for the whole session."""
    with prefect_test_harness(server_startup_timeout=60):
        yield


@dataclass(frozen=True)
class RealServer:
    """A `prefect server start` of its own (no `gpu` limit on it), and the environment of its clients."""

    api_url: str
    environ: dict[str, str]


def healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def real_server(tmp_path_factory) -> RealServer:
    """`prefect server start` on a free port of 127.0.0.1, its home and SQLite database in a
    scratch folder. At the end of the session its process group is killed, and then every process
    started with its environment (workers, flow runs, builds) that is still there."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    marker = uuid.uuid4().hex
    environ = clean_environ(marker, PREFECT_HOME=str(home), PREFECT_API_URL=api_url, HF_HUB_OFFLINE="1")
    args = [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    try:
        with process_group(args, environ, home / "server.log") as server:
            wait_until(lambda: healthy(api_url), "healthy Prefect server", 120, server)
            yield RealServer(api_url, environ)
    finally:
        kill_marked(marker)


@pytest.fixture(scope="session")
def gpu_limit(prefect_server) -> str:
    """A `gpu` global concurrency limit of one slot on the test server."""
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=GPU_LIMIT, limit=1))
    return GPU_LIMIT


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    separate.save_tiny_model(folder, MODEL, sample_rate_hz=8000)
    return folder


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    """The local folder of the corpus."""
    folder = tmp_path_factory.mktemp("media")
    make_video(folder / "music.mp4", VideoSpec(21.0, cut_every_s=3.0))
    (folder / "notes.mp4").write_text("not a video\n" * 50, encoding="utf-8")
    make_video(folder / "short.mp4", VideoSpec(3.0, bpm=90))
    return folder


@pytest.fixture(scope="session")
def url_list(tmp_path_factory, serve_folder) -> Path:
    """The URL list of the corpus, served from 127.0.0.1 for the whole session."""
    served = tmp_path_factory.mktemp("served")
    make_video(served / "web_music.mp4", VideoSpec(12.0, bpm=100, cut_every_s=4.0, pattern_seed=1))
    with serve_folder(served) as server:
        path = served.parent / "urls.txt"
        path.write_text(f"{server.url('/web_music.mp4')}\n{server.url('/missing.mp4')}\n", encoding="utf-8")
        yield path


def write_config(folder: Path, model_dir: Path, model: str = MODEL, download_retries: int = 0) -> Path:
    """A config file in `folder`: data under `folder/data`, 10 s clips, the tiny model, no back-off waits."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dvmset.toml"
    path.write_text(
        f"""data_root = "data"
model_dir = "{model_dir}"
[download]
min_duration_s = 1.0
retries = {download_retries}
backoff_base_s = 0.0
[probe]
min_duration_s = 5.0
[separate]
model = "{model}"
chunk_s = 8.0
overlap_s = 1.0
[clip]
clip_s = 10.0
""",
        encoding="utf-8",
    )
    return path


def open_catalog(config_path: Path) -> Catalog:
    return Catalog.open(load_config(config_path).resolved_catalog_url)


def catalog_content(config_path: Path) -> tuple[list[tuple], list[tuple]]:
    """What a run leaves in the catalog, free of paths and times: video and clip rows."""
    catalog = open_catalog(config_path)
    videos = [
        (v.video_id, v.status.value, v.error.reason.value if v.error else None, v.clip_count, v.separator_model_id)
        for v in catalog.videos()
    ]
    clips = [(c.clip_id, c.status.value, c.start_s, c.end_s, c.versions) for c in catalog.clips()]
    catalog.close()
    return videos, clips


def file_times(config_path: Path) -> dict[str, int]:
    """Modification times of every file under the data root, but the catalog's own files."""
    root = config_path.parent / "data"
    return {
        str(path.relative_to(root)): path.stat().st_mtime_ns
        for path in root.rglob("*")
        if path.is_file() and not path.name.startswith("catalog.sqlite")
    }


@pytest.fixture(scope="session")
def discovered(tmp_path_factory, model_dir, media, url_list) -> Path:
    """A folder with a config whose catalog lists the whole corpus as `discovered`."""
    config_path = write_config(tmp_path_factory.mktemp("discovered"), model_dir)
    discover_corpus(config_path, media, url_list)
    return config_path.parent


def discover_corpus(config_path: Path, media: Path, url_list: Path) -> None:
    """List the whole corpus as `discovered` in the config's catalog."""
    catalog = open_catalog(config_path)
    catalog.add_candidates(scan_folder(media, LABEL) + read_url_list(url_list))
    catalog.close()


def copy_of(folder: Path, target: Path) -> Path:
    """A copy of a prepared folder; returns the copy's config path."""
    shutil.copytree(folder, target)
    return target / "dvmset.toml"


@dataclass(frozen=True)
class Built:
    """One build flow run over the corpus, with the local runner."""

    config_path: Path
    summary: dict
    flow_run_id: str
    gpu_calls: list
    file_times: dict[str, int]


@pytest.fixture(scope="session")
def built(tmp_path_factory, model_dir, media, url_list, gpu_limit) -> Built:
    config_path = write_config(tmp_path_factory.mktemp("built"), model_dir)
    gpu_calls = []
    real_concurrency = tasks.concurrency

    def recording_concurrency(names, **kwargs):
        gpu_calls.append((names, kwargs))
        return real_concurrency(names, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tasks, "concurrency", recording_concurrency)
        state = build_flow(
            config_path=str(config_path), folder=str(media), urls=str(url_list), label=LABEL, workers=2,
            return_state=True,
        )  # fmt: skip
    return Built(config_path, state.result(), str(state.state_details.flow_run_id), gpu_calls, file_times(config_path))
