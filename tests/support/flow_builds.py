"""Builds for the flow tests: a config file for a build in a folder (`write_config`), the corpus listed in its
catalog (`discover_corpus`), a copy of a prepared folder, a stage's step swapped for a test (`with_step`), and
what a build left: the catalog's rows free of paths and times, and the data root's file times."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from curation import steps
from curation.search import read_url_list, scan_folder
from dvmset.catalog import Catalog
from dvmset.config import load_config

MODEL = "tiny-random"
LABEL = "test corpus"


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


def write_store_config(folder: Path, model_dir: Path, data_root_url: str, catalog_url: str, endpoint_url: str) -> Path:
    """`write_config`'s build, its data root the object store `data_root_url` on `endpoint_url` and its
    catalog `catalog_url` (a store needs one of its own); no scratch folder: the machine sets its own."""
    path = write_config(folder, model_dir)
    text = path.read_text(encoding="utf-8").replace('data_root = "data"', f'data_root = "{data_root_url}"')
    path.write_text(
        f'catalog_url = "{catalog_url}"\n{text}[storage]\nendpoint_url = "{endpoint_url}"\n', encoding="utf-8"
    )
    return path


BUILT_FOLDERS = ("raw", "stems", "clips")  # what the stages write under a data root


def built_files(files: dict[str, bytes], folders: tuple[str, ...] = BUILT_FOLDERS) -> dict[str, bytes]:
    """The files under `folders` of a build (path relative to its data root -> bytes)."""
    return {name: data for name, data in sorted(files.items()) if name.split("/")[0] in folders}


def local_files(data_root: Path) -> dict[str, bytes]:
    """The files the stages wrote under a local data root (`BUILT_FOLDERS`), by path relative to it: their bytes."""
    return {
        str(path.relative_to(data_root)): path.read_bytes()
        for folder in BUILT_FOLDERS
        for path in (data_root / folder).rglob("*")
        if path.is_file()
    }


def with_step(monkeypatch: pytest.MonkeyPatch, name: str, step: steps.Step) -> None:
    """Run `step` for the stage called `name` (a row of `curation.steps.STAGES`) until the test ends."""
    stages = tuple(replace(stage, step=step) if stage.name == name else stage for stage in steps.STAGES)
    monkeypatch.setattr(steps, "STAGES", stages)


def open_catalog(config_path: Path) -> Catalog:
    """The catalog of the config at `config_path`, opened (the caller closes it)."""
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


def discover_corpus(config_path: Path, media: Path, url_list: Path) -> None:
    """List the whole corpus as `discovered` in the config's catalog."""
    catalog = open_catalog(config_path)
    catalog.add_candidates(scan_folder(media, LABEL) + read_url_list(url_list))
    catalog.close()


def copy_of(folder: Path, target: Path) -> Path:
    """A copy of a prepared folder; returns the copy's config path."""
    shutil.copytree(folder, target)
    return target / "dvmset.toml"
