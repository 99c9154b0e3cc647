"""Published checksums of located model files, verified (the `dvmset models check` part that reads files).

In: a model key, its id and the `Location` where `dvmset.models` found it. Out: one `ChecksumResult` per file
that has a published digest: Demucs' `{sig}-{checksum}.th` names (the first 8 hex digits of the file's
SHA-256; the one Demucs publishes for htdemucs is `REGISTRY["demucs"].checksum`), the SHA-256 that names each
large file's blob in the Hugging Face cache (the hub's LFS digest), PANNs' MD5 on Zenodo, and the SHA-256 the
silero-vad wheel records for its model file. Files with no published digest give no result. No torch.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path

from dvmset.model_registry import REGISTRY
from dvmset.models import Location, demucs_torch_cached

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ChecksumResult:
    """One file's digest against the published one (`expected` may be a prefix of the full digest)."""

    file: Path
    algorithm: str
    expected: str
    actual: str
    published: str

    @property
    def ok(self) -> bool:
        return self.actual.startswith(self.expected)

    def describe(self) -> str:
        state = "ok" if self.ok else f"MISMATCH (the file's is {self.actual[: max(len(self.expected), 16)]})"
        return f"{self.file.name}: {self.algorithm} {self.expected} ({self.published}) {state}"


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(key: str, model_id: str, location: Location) -> list[ChecksumResult]:
    """The published checksums of the files of model `key` found at `location`, checked."""
    if location.path is None:
        return []
    if location.place == "Hugging Face cache":
        folder = location.path if location.path.is_dir() else location.path.parent
        return hf_blob_checks(folder)
    if key == "demucs":
        if location.path.is_dir():
            return demucs_file_checks(sorted(location.path.glob("*-*.th")))
        return demucs_file_checks(demucs_torch_cached(model_id) or [location.path])
    if key == "panns":
        checksum = REGISTRY[key].checksum(Path(model_id).name)
        if checksum is None or location.path.name != checksum.file_name:
            return []
        actual = file_digest(location.path, checksum.algorithm)
        return [ChecksumResult(location.path, checksum.algorithm, checksum.value, actual, checksum.published)]
    if key == "silero-vad":
        return wheel_record_checks(model_id, location.path)
    return []


def demucs_file_checks(files: list[Path]) -> list[ChecksumResult]:
    """`{sig}-{checksum}.th` files: the SHA-256 prefix in each name; Demucs' own published name is marked so."""
    published = REGISTRY["demucs"].checksums
    names = {checksum.file_name for checksum in published.values()}
    results = []
    for file in files:
        match = re.fullmatch(r"([0-9a-zA-Z_]+)-([0-9a-f]+)\.th", file.name)
        if match is None:
            continue
        source = "published by demucs" if file.name in names else "in its file name"
        results.append(ChecksumResult(file, "sha256", match.group(2), file_digest(file, "sha256"), source))
    return results


def hf_blob_checks(snapshot: Path) -> list[ChecksumResult]:
    """Weights files of a Hugging Face cache snapshot whose blob is named by its SHA-256 (the hub's LFS digest)."""
    results = []
    for file in sorted([*snapshot.glob("*.safetensors"), *snapshot.glob("*.bin"), *snapshot.glob("*.pth")]):
        blob = file.resolve()
        if _SHA256_HEX.fullmatch(blob.name):
            actual = file_digest(blob, "sha256")
            results.append(ChecksumResult(file, "sha256", blob.name, actual, "the hub's LFS digest"))
    return results


def wheel_record_checks(package: str, model_file: Path) -> list[ChecksumResult]:
    """The SHA-256 the installed wheel's RECORD lists for `model_file`."""
    try:
        files = importlib.metadata.files(package) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    for record in files:
        if record.hash is None or record.hash.mode != "sha256":
            continue
        if Path(str(record.locate())).resolve() == model_file.resolve():
            expected = base64.urlsafe_b64decode(record.hash.value + "=" * (-len(record.hash.value) % 4)).hex()
            actual = file_digest(model_file, "sha256")
            return [ChecksumResult(model_file, "sha256", expected, actual, f"the {package} wheel's RECORD")]
    return []
