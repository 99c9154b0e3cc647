"""Load pretrained transformers models and processors, from a local folder or the Hugging Face hub.

In: a model id, either a hub id (`openai/clip-vit-base-patch32`) or a local folder written by
`save_pretrained`, and optionally a local model folder (`DVMSET_MODEL_DIR`, `model_dir` in the config).
Out: the object `from_pretrained` returns, or a `WeightsNotFoundError`.

Where a model id is looked for, in order: the id itself as a folder; `<model_dir>/<model id>` (so
`models/openai/clip-vit-base-patch32`); else the hub id through transformers, which reads the Hugging
Face cache and, unless `HF_HUB_OFFLINE=1` or the hub cannot be reached (`dvmset.reachability.offline_reason`: one
quick TCP check per process; then transformers is told `local_files_only` and reads the cache alone instead
of retrying the hub for close to a minute), the hub. transformers 5.23 reports
every failure there as a bare `OSError` (offline and not cached: "We couldn't connect to ... and
couldn't find them in the cached files"; a folder without weights: "Error no file named
model.safetensors ..."; a path that is neither a folder nor a valid repo id: "Repo id must be ...");
those become a `WeightsNotFoundError` that says where we looked and how to provide the weights.
A checkpoint that loads but lacks weights the caller needs (transformers would silently initialise
them at random and log a report) is refused the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import huggingface_hub.constants
from huggingface_hub.file_download import repo_folder_name

from dvmset.reachability import offline_reason
from model.errors import WeightsNotFoundError


def resolve_model_source(model_id: str, model_dir: Path | None = None) -> str:
    """The folder that holds `model_id` locally, else `model_id` itself (a hub id for transformers)."""
    for folder in _local_candidates(model_id, model_dir):
        if folder.is_dir():
            return str(folder)
    return model_id


def load_model(model_class: Any, model_id: str, model_dir: Path | None = None, required_prefix: str = "") -> Any:
    """`model_class.from_pretrained` on the resolved source; refuses a checkpoint that lacks any weight
    whose name starts with `required_prefix` ("" for all weights)."""
    source = resolve_model_source(model_id, model_dir)
    with _weights_errors(f"{model_class.__name__} weights", model_id, model_dir):
        loaded, info = model_class.from_pretrained(source, output_loading_info=True, **_hub_options(source))
    missing = sorted(key for key in info["missing_keys"] if key.startswith(required_prefix))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise WeightsNotFoundError(
            f"{model_class.__name__} weights for {model_id!r} are incomplete in {source}: {len(missing)} weights "
            f"are missing ({shown}). Is {model_id!r} a checkpoint of this architecture?"
        )
    return loaded


def load_processor(processor_class: Any, model_id: str, model_dir: Path | None = None) -> Any:
    """`processor_class.from_pretrained` on the resolved source."""
    source = resolve_model_source(model_id, model_dir)
    with _weights_errors(f"{processor_class.__name__} configuration", model_id, model_dir):
        return processor_class.from_pretrained(source, **_hub_options(source))


def missing_weights_message(what: str, model_id: str, model_dir: Path | None, cause: str) -> str:
    """Where `model_id` was looked for and how to provide it."""
    failed = f"{what} for {model_id!r} could not be loaded ({' '.join(cause.split()).rstrip('.')})."
    if _looks_like_path(model_id):
        folder = Path(model_id).expanduser().absolute()
        return (
            f"{failed} Looked in the local folder {folder} ({_folder_state(folder)}). To provide it, write the "
            "model there with `save_pretrained` or copy a downloaded model folder there, or pass a hub id."
        )
    candidates = _local_candidates(model_id, model_dir)
    looked = [
        f"the local folder {folder.absolute()} ({_folder_state(folder)})" for folder in candidates if folder.exists()
    ]
    if model_dir is not None and not candidates[-1].exists():
        looked.append(f"the local folder {candidates[-1].absolute()} (absent)")
    hub_cache = Path(huggingface_hub.constants.HF_HUB_CACHE)
    if not any(folder.is_dir() for folder in candidates):
        repo_cache = hub_cache / repo_folder_name(repo_id=model_id, repo_type="model")
        reason = offline_reason()
        offline = f" ({reason}, so the hub was not asked)" if reason else ""
        looked.append(f"the Hugging Face cache {repo_cache} ({_folder_state(repo_cache)}){offline}")
    model_folder = model_dir if model_dir is not None else Path("<model folder>")
    return (
        f"{failed} Looked in " + "; ".join(looked) + f". To provide it: on a machine that is online run "
        f"`hf download {model_id} --local-dir {model_folder / model_id}` and set DVMSET_MODEL_DIR (or model_dir "
        f"in the config) to {model_folder}; or run once online without HF_HUB_OFFLINE to fill the Hugging Face "
        f"cache {hub_cache} (HF_HOME or HF_HUB_CACHE move it); or pass a local folder written by "
        "`save_pretrained` as the model id. `dvmset models list` shows every model and where it is looked for."
    )


def _hub_options(source: str) -> dict[str, Any]:
    """`local_files_only=True` when `source` is a hub id and the hub cannot be reached."""
    return {"local_files_only": True} if not Path(source).is_dir() and offline_reason() else {}


def _local_candidates(model_id: str, model_dir: Path | None) -> list[Path]:
    candidates = [Path(model_id).expanduser()]
    if model_dir is not None and not _looks_like_path(model_id):
        candidates.append(model_dir / model_id)
    return candidates


def _looks_like_path(model_id: str) -> bool:
    """A hub id is `name` or `owner/name`; anything else can only be a local folder."""
    return model_id.startswith((".", "~", "/")) or model_id.count("/") > 1


def _folder_state(folder: Path) -> str:
    if not folder.exists():
        return "absent"
    return "present but incomplete" if folder.is_dir() else "not a folder"


@contextmanager
def _weights_errors(what: str, model_id: str, model_dir: Path | None) -> Iterator[None]:
    try:
        yield
    except OSError as error:
        raise WeightsNotFoundError(missing_weights_message(what, model_id, model_dir, str(error))) from error
