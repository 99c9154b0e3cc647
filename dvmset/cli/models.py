"""The weights commands of `dvmset`: `models list`, `models check`, `models pull` (registry:
`dvmset.model_registry`; where each model is looked for: `dvmset.models`).

Registered by `dvmset.cli.main`. `list` reads paths only (no torch, no network);
`check` loads each model that is here with the loader its stage uses (imported inside the command) and
verifies the published checksum where there is one; `pull` fetches through each model's own library
(huggingface_hub, Demucs, torch hub's downloader) when its source can be reached, and offline stops at once.
Exit codes as in `dvmset.cli.common`; here: 2 for an unknown model key, 3 when a model is missing or fails its
check (a set-up error, as in `dvmset train`), 4 when `pull` cannot reach where a model is published.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from dvmset import model_registry
from dvmset import models as registry
from dvmset.cli.common import ConfigOption, ExitCode, err, fail, load_config_or_exit, out
from dvmset.config import Config
from dvmset.errors import DvmsetError
from dvmset.reachability import hub_url, offline_reason

models_app = typer.Typer(
    help="Pretrained models: where each comes from, whether it is here (list, check), fetching it (pull).",
    no_args_is_help=True,
)

KeysArgument = Annotated[
    list[str] | None, typer.Argument(help=f"model keys (default: all): {', '.join(model_registry.REGISTRY)}")
]
IdOption = Annotated[
    list[str] | None,
    typer.Option("--id", help="KEY=ID: look at another id than the default, e.g. musicgen=facebook/musicgen-small"),
]


def _setup(config_path: Path | None, keys: list[str] | None, ids: list[str] | None) -> tuple[Config, dict[str, str]]:
    """The config and `{key: model id}` of the selected models (all by default), or a usage/config exit."""
    config = load_config_or_exit(config_path)
    chosen = registry.configured_ids(config)
    for item in ids or []:
        key, sep, model_id = item.partition("=")
        if not sep or not model_id or key not in chosen:
            raise fail(ExitCode.USAGE, f"--id takes KEY=ID with KEY one of {', '.join(chosen)}; got {item!r}")
        chosen[key] = model_id
    unknown = [key for key in keys or [] if key not in chosen]
    if unknown:
        raise fail(ExitCode.USAGE, f"unknown model {', '.join(unknown)}; the models are {', '.join(chosen)}")
    return config, {key: chosen[key] for key in (keys or chosen)}


def _size(size_bytes: int | None) -> str:
    if size_bytes is None:
        return "?"
    return f"~{size_bytes / 1e9:.1f} GB" if size_bytes >= 1e9 else f"~{size_bytes / 1e6:.0f} MB"


def model_rows(config: Config, ids: dict[str, str]) -> list[dict[str, Any]]:
    """One dict per model: what `models list` shows (its --json output)."""
    rows = []
    for key, model_id in ids.items():
        entry = model_registry.REGISTRY[key]
        places = registry.locations(key, model_id, config.model_dir)
        found = next((place for place in places if place.present), None)
        checksum = entry.checksum(model_id)
        rows.append(
            {
                "key": key,
                "title": entry.title,
                "stage": entry.stage,
                "id": model_id,
                "default_id": entry.default_id,
                "found": str(found.path) if found else None,
                "found_in": found.place if found else None,
                "size_bytes": entry.size_bytes(model_id),
                "licence": entry.licence,
                "licence_detail": entry.licence_detail or entry.licence,
                "published": entry.published,
                "checksum": f"{checksum.algorithm}:{checksum.value} ({checksum.file_name})" if checksum else None,
                "looked": [place.describe() for place in places],
                "provide": None if found else registry.how_to_provide(key, model_id, config.model_dir),
                "note": entry.note,
            }
        )
    return rows


@models_app.command("list")
def list_models(
    keys: KeysArgument = None,
    config_path: ConfigOption = None,
    ids: IdOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Every model the pipeline and the trainer use: stage, id, where it was found (or missing), size, licence."""
    config, chosen = _setup(config_path, keys, ids)
    rows = model_rows(config, chosen)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Pretrained models", title_justify="left", expand=True)
    for column, ratio in (("stage", 2), ("model", None), ("id", 3), ("where", 4), ("size", None), ("licence", 2)):
        table.add_column(column, overflow="fold", ratio=ratio, no_wrap=ratio is None and column != "stage")
    for row in rows:
        home = str(Path.home())
        found = row["found"].replace(home, "~", 1) if row["found"] and row["found"].startswith(home) else row["found"]
        where = escape(f"{row['found_in']}: {found}") if found else "[bold red]missing[/]"
        model_id = row["id"] + (f"\n({row['note']})" if row["note"] else "")
        size = _size(row["size_bytes"])
        table.add_row(row["stage"], row["key"], escape(model_id), where, size, escape(row["licence"]))
    out.print(table)
    model_dir = config.model_dir if config.model_dir is not None else "not set (DVMSET_MODEL_DIR or model_dir)"
    out.print(
        f"model folder: {model_dir}\ndvmset weights cache: {registry.weights_cache_dir()}\n"
        f"Hugging Face cache: {registry.hf_hub_cache_dir()}\n"
        "`dvmset models check` loads each one; `dvmset models list --json` says where each was looked for.",
        highlight=False,
    )


@models_app.command()
def check(keys: KeysArgument = None, config_path: ConfigOption = None, ids: IdOption = None) -> None:
    """Load each model that is here with the loader its stage uses and verify its published checksum; exit 3
    naming each model that is missing or fails, and how to provide it offline (which file, which folder)."""
    from dvmset.model_checksums import verify

    config, chosen = _setup(config_path, keys, ids)
    failures = []
    for key, model_id in chosen.items():
        found = registry.find(key, model_id, config.model_dir)
        if found is None:
            places = registry.locations(key, model_id, config.model_dir)
            looked = "; ".join(place.describe() for place in places if place.path is not None or place.detail)
            provide = registry.how_to_provide(key, model_id, config.model_dir)
            failures.append(f"{key} ({model_id}) is missing. Looked in: {looked}. To provide it: {provide}")
            continue
        try:
            detail = _load(key, model_id, config.model_dir)
            sums = verify(key, model_id, found)
        except (DvmsetError, OSError, RuntimeError, ValueError) as exc:
            failures.append(f"{key} ({model_id}) at {found.path} does not load: {exc}")
            continue
        bad = [result.describe() for result in sums if not result.ok]
        if bad:
            failures.append(f"{key} ({model_id}) at {found.path}: checksum {'; '.join(bad)}")
            continue
        checked = "; ".join(result.describe() for result in sums) or "no published checksum"
        out.print(
            f"[green]ok[/] {escape(key)} {escape(model_id)} ({escape(found.place)}: {escape(str(found.path))}): "
            f"{escape(detail)}; {escape(checked)}",
            highlight=False,
        )
    for failure in failures:
        err.print(f"[bold red]error:[/] {escape(failure)}", highlight=False)
    if failures:
        raise typer.Exit(int(ExitCode.CONFIG))


def _load(key: str, model_id: str, model_dir: Path | None) -> str:
    """Load model `key` strictly with its stage's own loader (on the CPU); a line about what loaded."""
    if key == "demucs":
        from curation.separate import load_separator

        separator = load_separator(model_id, model_dir, device="cpu")
        stand_in = "; a STAND-IN with RANDOM weights (separates nothing)" if separator.stand_in else ""
        sources = f"{len(separator.sources)} sources at {separator.sample_rate_hz} Hz"
        return f"{sources}, weights SHA-256 {separator.sha256}{stand_in}"
    if key == "silero-vad":
        from curation.speech import load_speech_detector

        detector = load_speech_detector("cpu")
        return f"version {detector.version}, weights SHA-256 {detector.sha256}"
    if key == "musicgen":
        from model.backbone import load_backbone

        backbone = load_backbone(model_id, model_dir, "cpu")
        codebooks = f"{backbone.num_codebooks} codebooks at {backbone.frame_rate_hz:g} Hz"
        return f"{backbone.num_layers} decoder layers, {codebooks}"
    if key == "clip":
        from model.features import load_clip_encoder

        load_clip_encoder(model_id, model_dir, "cpu")
        return "vision tower and image processor loaded"
    if key == "clap":
        from model.metrics.clap import load_clap_encoder

        encoder = load_clap_encoder(model_id, model_dir, "cpu")
        return f"audio side loaded, {encoder.sample_rate_hz} Hz input"
    if key == "panns":
        from model.metrics.panns import load_cnn14

        load_cnn14(model_id, model_dir, "cpu")
        return "Cnn14 loaded strictly"
    from model.metrics.imagebind import checkpoint_path, load_imagebind

    load_imagebind(str(checkpoint_path(model_id, model_dir)), device="cpu")
    return "vision and audio encoders loaded strictly"


@models_app.command()
def pull(keys: KeysArgument = None, config_path: ConfigOption = None, ids: IdOption = None) -> None:
    """Fetch the models that are not here through their own libraries: hub models into the Hugging Face cache
    (or `<model_dir>/<id>` when a model folder is set), Demucs into its cache (or the model folder), PANNs and
    ImageBind into the model folder. Offline it stops at once, saying which models could not be fetched."""
    config, chosen = _setup(config_path, keys, ids)
    wanted = {key: model_id for key, model_id in chosen.items() if not registry.find(key, model_id, config.model_dir)}
    for key in chosen.keys() - wanted.keys():
        out.print(f"{key} ({chosen[key]}): already here", highlight=False)
    missing_package = wanted.pop("silero-vad", None) is not None
    if missing_package:
        err.print(f"silero-vad comes with its Python package: {registry.how_to_provide('silero-vad', '', None)}")
    reasons = {key: offline_reason(_source_url(key, config.model_dir)) for key in wanted}
    if wanted and all(reasons.values()):
        reason = sorted(set(reasons.values()))  # type: ignore[arg-type]
        raise fail(
            ExitCode.SOURCE,
            f"cannot fetch {', '.join(wanted)}: this machine is offline ({'; '.join(reason)}); "
            "`dvmset models check` names the files to copy here and the folder for each",
        )
    failed = False
    for key, model_id in wanted.items():
        if reasons[key]:
            err.print(f"[bold red]error:[/] cannot fetch {key}: {escape(str(reasons[key]))}", highlight=False)
            failed = True
            continue
        try:
            where = _fetch(key, model_id, config.model_dir)
        except (DvmsetError, OSError, RuntimeError, ValueError) as exc:
            err.print(f"[bold red]error:[/] fetching {key} ({model_id}) failed: {escape(str(exc))}", highlight=False)
            failed = True
            continue
        out.print(f"{key} ({model_id}): fetched into {where}", highlight=False)
    if failed or missing_package:
        raise typer.Exit(int(ExitCode.SOURCE))


def _source_url(key: str, model_dir: Path | None) -> str:
    if key == "panns":
        return model_registry.PANNS_URL
    if key == "imagebind":
        return model_registry.IMAGEBIND_URL
    if key == "demucs" and model_dir is not None:
        return model_registry.DEMUCS_REMOTE_URL
    return hub_url()


def _fetch(key: str, model_id: str, model_dir: Path | None) -> Path:
    """Download model `key` through its own library; the folder or file it is now in."""
    from torch.hub import download_url_to_file

    if key == "demucs":
        if model_dir is None:
            from demucs.pretrained import get_model

            get_model(model_id)  # the hub (Hugging Face cache), else its remote repo (torch hub's cache)
            found = registry.find(key, model_id, None)
            return found.path if found and found.path else registry.hf_hub_cache_dir()
        remote = registry.demucs_remote_files(model_id)
        bag = registry.demucs_bag_file(model_id)
        if not remote or bag is None or not all(remote.values()):
            raise ValueError(f"Demucs publishes no model {model_id!r} in its remote repo")
        model_dir.mkdir(parents=True, exist_ok=True)
        for url in remote.values():
            name = url.rsplit("/", 1)[1]
            download_url_to_file(url, str(model_dir / name), hash_prefix=name.rsplit("-", 1)[1].removesuffix(".th"))
        (model_dir / bag.name).write_bytes(bag.read_bytes())
        return model_dir
    if model_registry.REGISTRY[key].kind == "hub":
        from huggingface_hub import HfApi, snapshot_download

        files = HfApi().list_repo_files(model_id)
        patterns = ["*.json", "*.txt", "*.model", "*.safetensors"]
        if not any(name.endswith(".safetensors") for name in files):
            patterns.append("pytorch_model*.bin")
        local_dir = model_dir / model_id if model_dir is not None else None
        return Path(snapshot_download(model_id, local_dir=local_dir, allow_patterns=patterns))
    target = registry.download_target(key, model_id, model_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    download_url_to_file(model_registry.PANNS_URL if key == "panns" else model_registry.IMAGEBIND_URL, str(target))
    checksum = model_registry.REGISTRY[key].checksum(model_id)
    if checksum is not None:
        from dvmset.model_checksums import file_digest

        actual = file_digest(target, checksum.algorithm)
        if actual != checksum.value:
            target.unlink()
            raise ValueError(f"{target.name} has {checksum.algorithm} {actual}, not the published {checksum.value}")
    return target
