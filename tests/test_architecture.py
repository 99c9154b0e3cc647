"""The import rules of DESIGN.md hold (import-linter's contracts in pyproject.toml), and a planted
upward import breaks them: the contracts can fail. Nothing under tests/ or bench/ imports a test module or a
conftest (shared builders live in tests/support/)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("dvmset", "manifests", "curation", "flows", "model", "labeling_ui")
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
        ("dvmset/catalog/__init__.py", "import curation.clip", "the dvmset core imports nothing above it"),
        ("dvmset/storage.py", "import manifests.schema", "the dvmset core imports nothing above it"),
        ("dvmset/records.py", "import torch", "the dvmset core imports nothing above it"),
        ("manifests/split.py", "import curation.clip", "manifests imports only the dvmset core"),
        ("manifests/schema.py", "import torch", "manifests imports only the dvmset core"),
        ("manifests/check.py", "import model.features", "layers: dvmset.cli > flows"),
        ("dvmset/config.py", "import dvmset.cli", "dvmset.cli is the top"),
        ("curation/clip.py", "import model.features", "layers: dvmset.cli > flows"),
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


def imported_test_modules(source: str) -> list[tuple[int, str]]:
    """(line, dotted name) of each import in `source` that names a test module (`test_*`) or a conftest,
    absolute or relative (`from . import conftest` gives ".conftest")."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            names = [(module if module.endswith(".") else module + ".") + alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.lstrip(".").split(".")
            if any(part == "conftest" or part.startswith("test_") for part in parts):
                found.append((node.lineno, name))
                break
    return found


def test_no_module_under_tests_or_bench_imports_a_test_module_or_a_conftest():
    """Shared builders live in tests/support/; fixtures reach tests through conftests, never by import."""
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {name}"
        for folder in ("tests", "bench")
        for path in sorted((REPO / folder).rglob("*.py"))
        for line, name in imported_test_modules(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_import_scan_finds_test_modules_and_conftests_in_every_form():
    planted = """
from tests.manifests.test_schema import make_row
import tests.model.conftest
from tests.labeling_ui import test_browser
from . import conftest
from .test_browser import start
from tests.support.manifest_rows import make_row
import pytest
from prefect.testing.utilities import prefect_test_harness
"""
    assert [line for line, _ in imported_test_modules(planted)] == [2, 3, 4, 5, 6]
