"""The house's architecture, enforced: import-linter's contracts (pyproject.toml) hold, and
tests, benchmarks and the CLI use only public names of the library.

A backward import (say ``solver.gguf`` importing ``solver.placement``) or a test reaching
into ``_private`` helpers fails here, so CI fails on it rather than a review having to see it.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ("solver", "profiles")


def test_import_contracts_are_kept() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.fail("lint-imports is missing: pip install -e '.[dev]'")
    run = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-1000:]


def _private_imports(path: Path) -> list[str]:
    """``from solver.x import _y`` / ``from solver._x import y`` in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom) or node.module is None:
            continue
        if node.module.split(".")[0] not in LIBRARY:
            continue
        parts = node.module.split(".")
        names = [alias.name for alias in node.names]
        if any(p.startswith("_") for p in parts) or any(n.startswith("_") for n in names):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import "
                         f"{', '.join(names)}")  # fmt: skip
    return found


def test_tests_benchmarks_and_cli_use_public_names_only() -> None:
    files = [ROOT / "cli.py", *(ROOT / "tests").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]
    found = [line for path in sorted(files) for line in _private_imports(path)]
    assert not found, "private names imported:\n" + "\n".join(found)
