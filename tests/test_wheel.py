"""The wheel, not the checkout: it carries every file fit reads and runs outside the source tree.

The wheel is built from a copy of the source files, those git tracks or would track (so neither
build leftovers nor ignored files in the checkout can hide a packaging gap), and installed with its
dependencies into a fresh virtualenv; fit then runs from a folder where the checkout is not
importable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import cli

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CODE_PACKAGES = ("solver/", "profiles/", "benchmarks/")
DATA = "data/"
SOLVE = ["solve", "gpt-oss-120b", "--hardware", "reference", "--ctx", "32768", "--json"]
# arguments whose value names one of several equally fast placements (see comparable_solve)
PLAN_CHOICE_ARGS = ("-ot", "-ts")
MEMORY = ["memory", "qwen3-30b-a3b", "--", "-c", "4096", "-ngl", "0"]
# pip resolving and installing ortools, pandas, optuna, ... from the index or the pip cache
INSTALL_TIMEOUT_S = 900


def source_files() -> set[str]:
    """The checkout's source files: tracked or new and not ignored, as long as they exist in the
    work tree (a module added but not yet committed is part of it, a deleted one is not)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to know which files are part of fit")
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {name for name in listing.split("\0") if name and (REPO / name).is_file()}


def shipped_by_design(sources: set[str]) -> set[str]:
    """What the wheel must hold besides its metadata: cli.py, the code packages' modules and
    every data file."""
    code = {name for name in sources if name.startswith(CODE_PACKAGES) and name.endswith(".py")}
    data = {name for name in sources if name.startswith(DATA)}
    return {"cli.py"} | code | data


def wheel_payload(wheel: Path) -> set[str]:
    """The wheel's files, without its *.dist-info metadata folder."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    return {name for name in names if ".dist-info/" not in name}


def run_quiet(command: list[str], cwd: Path, timeout: float) -> None:
    """Run a build step; on failure show its output, which is what explains it."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"


def outside_env() -> dict[str, str]:
    """The environment for the installed fit, without anything pointing back at the checkout or
    at the test's own virtualenv."""
    leaks = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    return {key: value for key, value in os.environ.items() if key not in leaks}


@pytest.fixture(scope="module")
def sources() -> set[str]:
    return source_files()


@pytest.fixture(scope="module")
def wheel(sources: set[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fit's wheel, built by pip from a copy of the source files."""
    root = tmp_path_factory.mktemp("wheel")
    source, dist = root / "src", root / "dist"
    for name in sources:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-w", str(dist)]
    run_quiet([*pip_wheel, "-q"], cwd=root, timeout=INSTALL_TIMEOUT_S)
    (built,) = dist.glob("fit-*.whl")
    return built


@pytest.fixture(scope="module")
def venv_bin(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a fresh virtualenv with the wheel and its dependencies installed."""
    root = tmp_path_factory.mktemp("venv")
    venv = root / "venv"
    run_quiet([sys.executable, "-m", "venv", str(venv)], cwd=root, timeout=120)
    bin_dir = venv / "bin"
    run_quiet(
        # --no-compile: byte-compiling all of pandas and ortools would double the install time
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-compile", str(wheel)],
        cwd=root,
        timeout=INSTALL_TIMEOUT_S,
    )
    return bin_dir


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working folder outside the checkout, so `import solver` cannot find the source tree."""
    return tmp_path


def run_installed_fit(bin_dir: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(bin_dir / "fit"), *args],
        cwd=cwd,
        env=outside_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def comparable_solve(stdout: str) -> tuple[dict[str, Any], float]:
    """`fit solve --json` as two equally good runs print it, and the decode rate it optimised.

    CP-SAT runs two workers, and where several placements price the same (for gpt-oss-120b on
    the reference rig: which MoE layers keep their experts in RAM) the one found first is
    printed, so the -ot/-ts rules and per-device byte counts may differ from run to run; the
    wall-clock solve_seconds always does. Everything else, each device's capacity and budget
    (read from data/hardware) and the optimum itself must be equal.
    """
    doc = json.loads(stdout)
    doc.pop("solve_seconds")
    args = doc.pop("args")
    doc["args"] = [
        "<plan>" if flag in PLAN_CHOICE_ARGS else arg
        for flag, arg in zip([None, *args], args, strict=False)
    ]
    doc["devices"] = {
        name: {key: device[key] for key in ("capacity", "budget")}
        for name, device in doc.pop("devices").items()
    }
    return doc, doc.pop("estimate")["decode_tps"]


def test_wheel_carries_every_data_file(wheel: Path, sources: set[str]) -> None:
    # whatever kind of file is added to data/ next, a package-data glob must ship it
    expected = {name for name in sources if name.startswith(DATA)} - {"data/__init__.py"}
    shipped = {name for name in wheel_payload(wheel) if name.startswith(DATA)}
    shipped.discard("data/__init__.py")
    assert not expected - shipped, (
        "in the source tree but not in the wheel (add a package-data glob)"
    )
    assert not shipped - expected, "in the wheel but not in the source tree"


def test_wheel_holds_the_code_and_data_and_nothing_else(wheel: Path, sources: set[str]) -> None:
    payload = wheel_payload(wheel)
    assert payload == shipped_by_design(sources)
    assert not {name for name in payload if name.startswith("tests/")}


def test_installed_fit_runs_from_the_venv_not_the_checkout(venv_bin: Path, outside: Path) -> None:
    probe = "import cli, data, solver; print(cli.__file__, data.__file__, solver.__file__)"
    done = subprocess.run(
        [str(venv_bin / "python"), "-c", probe],
        cwd=outside,
        env=outside_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    venv = venv_bin.parent.resolve()
    for module_file in done.stdout.split():
        assert Path(module_file).resolve().is_relative_to(venv), module_file


def test_installed_fit_memory_reads_the_option_table(venv_bin: Path, outside: Path) -> None:
    # `fit memory` parses the llama-server arguments with data/llama_server_help.txt
    done = run_installed_fit(venv_bin, MEMORY, outside)
    assert done.returncode == 0, done.stderr
    in_tree = CliRunner().invoke(cli, MEMORY, catch_exceptions=False)
    assert in_tree.exit_code == 0
    assert done.stdout == in_tree.stdout


def test_installed_fit_solve_matches_the_source_tree(venv_bin: Path, outside: Path) -> None:
    done = run_installed_fit(venv_bin, SOLVE, outside)
    assert done.returncode == 0, done.stderr
    in_tree = CliRunner().invoke(cli, SOLVE, catch_exceptions=False)
    assert in_tree.exit_code == 0
    installed, installed_tps = comparable_solve(done.stdout)
    expected, expected_tps = comparable_solve(in_tree.stdout)
    assert installed == expected
    assert installed_tps == pytest.approx(expected_tps, rel=1e-9)
