"""The model registry (`dvmset.model_registry`, `dvmset.models`): default ids read from the code, where each
model is looked for (temp folders and environment variables, never a hub), the reachability check, and the
loaders that ask it: offline, the separator and transformers give one clear error at once and ask no remote."""

from __future__ import annotations

import inspect
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub.constants
import pytest

from dvmset import model_registry, models, reachability
from dvmset.config import EvaluateConfig, SeparateConfig


@pytest.fixture
def no_proxy(monkeypatch) -> None:
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nothing listens on (connections to it are refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def isolated_caches(tmp_path, monkeypatch) -> Path:
    """Empty dvmset weights, Hugging Face and torch hub caches under `tmp_path`; returns `tmp_path`."""
    monkeypatch.setenv("DVMSET_WEIGHTS_CACHE", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


@pytest.fixture
def unreachable_hub(monkeypatch, closed_port, no_proxy) -> Iterator[str]:
    """HF_HUB_OFFLINE off and the hub endpoint a closed local port: the reachability check itself decides."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{closed_port}")
    reachability.forget_reachability()
    yield f"127.0.0.1:{closed_port}"
    reachability.forget_reachability()


def test_default_ids_are_the_codes_own():
    from dvmset.cli import evaluate as cli_evaluate
    from dvmset.cli import train as cli_train
    from model.features import DEFAULT_CLIP_MODEL_ID
    from model.metrics import clap, imagebind, panns
    from model.tokens import DEFAULT_MUSICGEN_MODEL_ID

    defaults = {key: entry.default_id for key, entry in model_registry.REGISTRY.items()}
    assert defaults == {
        "demucs": SeparateConfig().model,
        "silero-vad": "silero-vad",
        "musicgen": DEFAULT_MUSICGEN_MODEL_ID,
        "clip": DEFAULT_CLIP_MODEL_ID,
        "clap": clap.DEFAULT_CLAP_MODEL,
        "panns": panns.DEFAULT_CHECKPOINT,
        "imagebind": imagebind.DEFAULT_CHECKPOINT,
    }
    section = EvaluateConfig()  # the [evaluate] section's defaults agree; its flags default to the section
    assert (section.clap, section.panns, section.imagebind) == (
        defaults["clap"],
        defaults["panns"],
        defaults["imagebind"],
    )
    evaluate = inspect.signature(cli_evaluate.evaluate).parameters
    assert (evaluate["clap"].default, evaluate["panns"].default, evaluate["imagebind"].default) == (None, None, None)
    assert inspect.signature(cli_train.train).parameters["musicgen"].default is None  # None: the code's default
    for entry in model_registry.REGISTRY.values():
        assert entry.licence and entry.stage and entry.size_bytes(entry.default_id)


def test_configured_ids_take_each_model_from_its_config_section():
    from dvmset.config import Config, ModelConfig

    config = Config(
        separate=SeparateConfig(model="htdemucs_ft"),
        model=ModelConfig(musicgen="facebook/musicgen-small"),
        evaluate=EvaluateConfig(clap="laion/clap-htsat-unfused"),
    )
    ids = models.configured_ids(config)
    assert (ids["demucs"], ids["musicgen"], ids["clap"]) == (
        "htdemucs_ft",
        "facebook/musicgen-small",
        "laion/clap-htsat-unfused",
    )
    assert ids["clip"] == model_registry.REGISTRY["clip"].default_id  # [model] names none: the code's default


def test_weights_cache_follows_the_environment(monkeypatch, tmp_path):
    assert models.weights_cache_dir({"DVMSET_WEIGHTS_CACHE": "/w", "XDG_CACHE_HOME": "/x"}) == Path("/w")
    assert models.weights_cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/dvmset/weights")
    assert models.weights_cache_dir({}) == Path.home() / ".cache" / "dvmset" / "weights"
    monkeypatch.setenv("DVMSET_WEIGHTS_CACHE", str(tmp_path))
    assert models.weights_cache_dir() == tmp_path


def test_torch_hub_dir_is_torchs(monkeypatch, tmp_path):
    import torch.hub

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert models.torch_hub_checkpoints_dir() == Path(torch.hub.get_dir()) / "checkpoints"
    assert models.torch_hub_checkpoints_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/torch/hub/checkpoints")


def test_demucs_names_agree_with_demucs():
    import demucs.hf
    from demucs import pretrained

    for name in ("htdemucs", "htdemucs_ft", "mdx_extra_q", "someone/htdemucs"):
        expected = demucs.hf.hf_repo_name(name.rpartition("/")[2])
        assert models.demucs_hf_repo(name) == f"{name.rpartition('/')[0] or 'adefossez'}/{expected}"
    urls = pretrained._parse_remote_files(pretrained.REMOTE_ROOT / "files.txt")
    assert models.demucs_remote_files("htdemucs") == {"955717e8": urls["955717e8"]}
    assert urls["955717e8"].endswith("/955717e8-8726e21a.th")
    assert len(models.demucs_remote_files("htdemucs_ft")) == 4 and models.demucs_remote_files("tiny-random") == {}
    assert model_registry.REGISTRY["demucs"].checksum("htdemucs").file_name == "955717e8-8726e21a.th"


def test_demucs_is_looked_for_in_the_model_folder_alone_when_one_is_set(tmp_path, isolated_caches):
    from curation.separate import save_tiny_model

    save_tiny_model(tmp_path / "models", "tiny-random")
    save_tiny_model(models.weights_cache_dir() / "tiny-random", "tiny-random")
    places = models.locations("demucs", "tiny-random", tmp_path / "models")
    assert [(place.place, place.path, place.present) for place in places] == [
        ("model folder", tmp_path / "models", True)
    ]
    assert not models.demucs_repo_holds(tmp_path / "models", "htdemucs")
    assert models.find("demucs", "htdemucs", tmp_path / "models") is None


def test_without_a_model_folder_demucs_is_looked_for_in_the_caches_then_the_remotes(tmp_path, isolated_caches):
    from curation.separate import save_tiny_model

    places = models.locations("demucs", "htdemucs", None)
    assert [place.place for place in places] == [
        "dvmset weights cache",
        "Hugging Face cache",
        "torch hub cache",
        "Hugging Face hub",
        "Demucs remote repo",
    ]
    assert not any(place.present for place in places)
    assert places[0].path == tmp_path / "weights" / "htdemucs"
    assert places[2].path == tmp_path / "torch" / "hub" / "checkpoints" / "955717e8-8726e21a.th"
    places[2].path.parent.mkdir(parents=True)
    places[2].path.write_bytes(b"")  # what Demucs' remote repo left in torch hub's cache
    assert models.find("demucs", "htdemucs", None).place == "torch hub cache"
    save_tiny_model(tmp_path / "weights" / "htdemucs", "htdemucs")  # what `python -m curation.htdemucs_onnx` writes
    assert models.find("demucs", "htdemucs", None).place == "dvmset weights cache"
    assert models.demucs_cache_repo("htdemucs") == tmp_path / "weights" / "htdemucs"


def _fake_hub_snapshot(cache: Path, model_id: str, files: dict[str, bytes]) -> Path:
    """The Hugging Face cache layout (refs/main -> snapshots/<revision>/...), as huggingface_hub writes it."""
    repo = cache / ("models--" + model_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        (snapshot / name).write_bytes(data)
    return snapshot


def test_hub_models_are_looked_for_as_model_weights_resolves_them(tmp_path, isolated_caches):
    from model.weights import resolve_model_source

    model_dir = tmp_path / "models"
    places = models.locations("clip", "openai/clip-vit-base-patch32", model_dir)
    assert [place.place for place in places] == ["model folder", "Hugging Face cache", "Hugging Face hub"]
    assert models.find("clip", "openai/clip-vit-base-patch32", model_dir) is None
    folder = model_dir / "openai" / "clip-vit-base-patch32"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert models.locations("clip", "openai/clip-vit-base-patch32", model_dir)[0].detail == "present but incomplete"
    (folder / "model.safetensors").write_bytes(b"")
    found = models.find("clip", "openai/clip-vit-base-patch32", model_dir)
    assert found.path == folder and resolve_model_source("openai/clip-vit-base-patch32", model_dir) == str(folder)
    # without a model folder: the Hugging Face cache's snapshot
    snapshot = _fake_hub_snapshot(tmp_path / "hf", "laion/larger_clap_music", {"config.json": b"{}", "x.bin": b""})
    assert models.find("clap", "laion/larger_clap_music", None) == models.Location("Hugging Face cache", snapshot, True)
    # a path-like id is that folder and nothing else
    assert [place.place for place in models.locations("musicgen", str(tmp_path / "mine"), model_dir)] == [
        "local folder"
    ]


def test_checkpoint_files_are_looked_for_as_their_loaders_do(tmp_path, monkeypatch):
    from model.metrics.imagebind import checkpoint_path
    from model.metrics.panns import resolve_checkpoint

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    model_dir = tmp_path / "models"
    assert models.find("panns", "Cnn14_mAP=0.431.pth", model_dir) is None
    target = models.download_target("panns", "Cnn14_mAP=0.431.pth", model_dir)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"")
    assert (
        models.find("panns", "Cnn14_mAP=0.431.pth", model_dir).path
        == target
        == resolve_checkpoint("Cnn14_mAP=0.431.pth", model_dir)
    )
    assert models.download_target("panns", "Cnn14_mAP=0.431.pth", None) == tmp_path / "home" / "panns_data" / (
        "Cnn14_mAP=0.431.pth"
    )
    imagebind = models.locations("imagebind", "imagebind/imagebind_huge.pth", model_dir)[0]
    assert imagebind.path == checkpoint_path("imagebind/imagebind_huge.pth", model_dir) and not imagebind.present
    with pytest.raises(ValueError, match="DVMSET_MODEL_DIR"):
        models.download_target("imagebind", "imagebind/imagebind_huge.pth", None)


def test_how_to_provide_names_the_files_and_the_folder(tmp_path):
    text = models.how_to_provide("demucs", "htdemucs", tmp_path)
    assert "htdemucs.yaml" in text and "955717e8-8726e21a.th" in text and str(tmp_path) in text
    assert "curation.htdemucs_onnx" in models.how_to_provide("demucs", "htdemucs", None)
    text = models.how_to_provide("panns", "Cnn14_mAP=0.431.pth", tmp_path)
    assert f"{tmp_path}/panns/Cnn14_mAP=0.431.pth" in text and "541141fa2ee191a88f24a3219fff024e" in text
    text = models.how_to_provide("musicgen", "facebook/musicgen-medium", tmp_path)
    assert f"hf download facebook/musicgen-medium --local-dir {tmp_path}/facebook/musicgen-medium" in text
    assert "pip install silero-vad==" in models.how_to_provide("silero-vad", "silero-vad", None)


def test_hf_hub_offline_is_honoured_without_any_connection(monkeypatch):
    def no_connection(*args, **kwargs):
        raise AssertionError("a connection was tried")

    monkeypatch.setattr(socket, "create_connection", no_connection)
    reachability.forget_reachability()
    assert reachability.offline_reason(environ={"HF_HUB_OFFLINE": "1"}) == "HF_HUB_OFFLINE is set"
    offline = reachability.offline_reason("https://zenodo.org/x", environ={"HF_HUB_OFFLINE": "yes"})
    assert offline == "HF_HUB_OFFLINE is set"


def test_an_unreachable_hub_is_found_once_and_remembered(unreachable_hub, monkeypatch):
    tries = []
    connect = socket.create_connection

    def counting(address, *args, **kwargs):
        tries.append(address)
        return connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", counting)
    reason = reachability.offline_reason()
    assert reason is not None and reason.startswith(f"{unreachable_hub} cannot be reached")
    assert reachability.offline_reason() == reason and len(tries) == 1  # once per process


def test_a_listening_host_is_reachable(unreachable_hub):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert reachability.offline_reason(f"http://127.0.0.1:{server.getsockname()[1]}/") is None


# ---------------------------------------------------------------- the loaders that ask the registry


@pytest.fixture
def no_remote(monkeypatch) -> None:
    """Any attempt to reach Demucs' hub or remote repo fails the test."""
    import demucs.hf
    import torch.hub

    def asked(*args, **kwargs):
        raise AssertionError("a remote was asked")

    monkeypatch.setattr(demucs.hf, "get_hf_model", asked)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", asked)


def test_offline_the_separator_says_so_at_once_and_asks_no_remote(isolated_caches, unreachable_hub, no_remote):
    from curation.separate import ModelNotFoundError, load_separator

    with pytest.raises(ModelNotFoundError) as caught:
        load_separator("htdemucs", None, device="cpu")
    message = str(caught.value)
    assert f"this machine is offline ({unreachable_hub} cannot be reached" in message
    assert "were not asked" in message and "python -m curation.htdemucs_onnx" in message
    assert str(isolated_caches / "weights" / "htdemucs") in message and "`dvmset models list`" in message


def test_without_a_model_folder_the_separator_finds_the_weights_cache(isolated_caches, no_remote):
    from curation.separate import load_separator, save_tiny_model

    save_tiny_model(isolated_caches / "weights" / "htdemucs", "htdemucs")  # as the npm rebuild lays it out
    separator = load_separator("htdemucs", None, device="cpu")
    assert separator.model_id == "htdemucs" and separator.stand_in  # the bag file's mark is read where it loaded


def test_offline_the_separator_loads_what_demucs_cached_from_the_hub(isolated_caches, unreachable_hub, no_remote):
    """A model `get_model` fetched from the hub before (bag file + safetensors in the Hugging Face cache)."""
    from demucs.htdemucs import HTDemucs
    from safetensors.torch import save_file

    from curation.separate import load_separator

    model = HTDemucs(
        sources=["drums", "bass", "other", "vocals"],
        channels=4,
        depth=4,
        t_layers=1,
        t_heads=2,
        dconv_comp=2,
        segment=4,
    )
    args, kwargs = model._init_args_kwargs
    bag = {"htdemucs.yaml": b"models: ['abcd1234']\n"}
    snapshot = _fake_hub_snapshot(isolated_caches / "hf", "adefossez/HTDemucs", bag)
    metadata = {"klass": "demucs.htdemucs.HTDemucs", "args": json.dumps(args), "kwargs": json.dumps(kwargs)}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, snapshot / "abcd1234.safetensors", metadata)
    separator = load_separator("htdemucs", None, device="cpu")
    assert separator.sources == ("drums", "bass", "other", "vocals") and not separator.stand_in


def test_offline_transformers_reads_the_cache_alone_and_says_why(isolated_caches, unreachable_hub):
    from transformers import CLIPVisionModelWithProjection

    from model.errors import WeightsNotFoundError
    from model.weights import load_model

    with pytest.raises(WeightsNotFoundError) as caught:
        load_model(CLIPVisionModelWithProjection, "dvmset-test/no-such-clip", None)
    message = str(caught.value)
    assert f"({unreachable_hub} cannot be reached" in message and "so the hub was not asked" in message
    assert "hf download dvmset-test/no-such-clip" in message


def test_the_existing_offline_message_still_reads_the_same(isolated_caches, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from model.weights import missing_weights_message

    message = missing_weights_message("CLIP weights", "org/name", None, "cause")
    assert "(HF_HUB_OFFLINE is set, so the hub was not asked)" in message


def test_behind_a_proxy_the_proxy_is_what_is_checked(unreachable_hub, monkeypatch, closed_port):
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{closed_port}")
    reason = reachability.offline_reason("https://hub.example.invalid/")
    assert reason is not None and reason.startswith(f"the proxy 127.0.0.1:{closed_port} cannot be reached")
