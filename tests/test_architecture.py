"""The import rules of DESIGN.md hold (import-linter's contracts in pyproject.toml), and a planted
upward import breaks them: the contracts can fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("dvmset", "curation", "flows", "model", "labeling_ui")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Runs lint-imports on the packages under `root` (its pyproject.toml's contracts)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_hold():
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        ("dvmset/catalog.py", "import curation.clip", "the dvmset core imports nothing above it"),
        ("dvmset/split.py", "import torch", "the dvmset core imports nothing above it"),
        ("dvmset/config.py", "import dvmset.cli", "dvmset.cli is the top"),
        ("curation/clip.py", "import model.features", "layers: flows above curation"),
        ("model/video.py", "import prefect", "Prefect only in flows/"),
    ],
)
def test_a_planted_upward_import_breaks_a_contract(tmp_path, module, planted, contract):
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / module, "a") as source:
        source.write(f"\n{planted}  # planted by the test\n")

    result = _lint_imports(tmp_path)

    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if " BROKEN" in line]
    assert any(line.startswith(contract) for line in broken), result.stdout
