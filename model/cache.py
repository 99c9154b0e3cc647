"""Per-clip cache files of model inputs: one safetensors file per kind and model id.

In: a data root, a clip id, a kind (`clip` features, `codes`), the model id that made the tensors,
and the tensors with string metadata. Out: `features/<clip_id>/<kind>-<model slug>.safetensors`,
written under a temporary name and renamed into place. The metadata holds the model id and a
format version; a file whose metadata differs from what the reader expects is a miss, so a new
format version or a slug collision recomputes instead of returning the wrong tensors.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from dvmset.storage import DataRoot, atomic_path

_SLUG_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_SLUG_MAX_CHARS = 80


def model_slug(model_id: str) -> str:
    """A file-name-safe, unique name for a model id: `openai/clip-vit-base-patch32` ->
    `openai--clip-vit-base-patch32-<8 hex digits of its SHA-1>` (the digest keeps ids that read
    alike apart, such as two local folders with the same name)."""
    readable = _SLUG_CHARS.sub("--", model_id).strip("-.")[:_SLUG_MAX_CHARS]
    return f"{readable}-{hashlib.sha1(model_id.encode('utf-8')).hexdigest()[:8]}"


def cache_path(data_root: DataRoot, clip_id: str, kind: str, model_id: str) -> Path:
    """`features/<clip_id>/<kind>-<model slug>.safetensors` under the data root."""
    return data_root.features_dir(clip_id) / f"{kind}-{model_slug(model_id)}.safetensors"


def write_cache(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write `tensors` (moved to the CPU, made contiguous) and `metadata` atomically to `path`."""
    with atomic_path(path) as temp:
        save_file({name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}, temp, metadata)


def read_cache(path: Path, expected_metadata: dict[str, str]) -> dict[str, torch.Tensor] | None:
    """The tensors in `path`, or None when it is absent or any `expected_metadata` item differs."""
    if not path.is_file():
        return None
    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata() or {}
        if any(metadata.get(key) != value for key, value in expected_metadata.items()):
            return None
        return {name: handle.get_tensor(name) for name in handle.keys()}
