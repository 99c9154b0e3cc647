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
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from curation import separate  # noqa: E402
from curation.samples import VideoSpec, make_video  # noqa: E402
from dvmset.config import load_config  # noqa: E402
from flows import gpu  # noqa: E402
from flows.flows import build_flow  # noqa: E402
from tests.flows.processes import PREFECT, clean_environ, kill_marked, process_group, wait_until  # noqa: E402
from tests.support.flow_builds import LABEL, MODEL, discover_corpus, file_times, write_config  # noqa: E402
from tests.support.ports import free_port  # noqa: E402


@pytest.fixture(scope="session")
def prefect_server():
    """Prefect's temporary local server (and database) for the whole session."""
    with prefect_test_harness(server_startup_timeout=60):
        yield


@dataclass(frozen=True)
class RealServer:
    """A `prefect server start` of its own, and the environment of its clients."""

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


@pytest.fixture(scope="session")
def discovered(tmp_path_factory, model_dir, media, url_list) -> Path:
    """A folder with a config whose catalog lists the whole corpus as `discovered`."""
    config_path = write_config(tmp_path_factory.mktemp("discovered"), model_dir)
    discover_corpus(config_path, media, url_list)
    return config_path.parent


@dataclass(frozen=True)
class Built:
    """One build flow run over the corpus, with the local runner."""

    config_path: Path
    summary: dict
    flow_run_id: str
    gpu_calls: list
    file_times: dict[str, int]


@pytest.fixture(scope="session")
def built(tmp_path_factory, model_dir, media, url_list, prefect_server) -> Built:
    """The build, with separation taken to run on `cuda:0` as far as its GPU slot goes (it runs on the CPU)."""
    config_path = write_config(tmp_path_factory.mktemp("built"), model_dir)
    gpu_calls = []
    real_concurrency = gpu.concurrency

    def recording_concurrency(names, **kwargs):
        gpu_calls.append((names, kwargs))
        return real_concurrency(names, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gpu, "concurrency", recording_concurrency)
        patch.setattr(gpu, "stage_device", lambda stage, _config: "cuda:0" if stage.device else None)
        state = build_flow(
            config=load_config(config_path),
            folder=str(media),
            urls=str(url_list),
            label=LABEL,
            workers=2,
            return_state=True,
        )
    return Built(config_path, state.result(), str(state.state_details.flow_run_id), gpu_calls, file_times(config_path))
