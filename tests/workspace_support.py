"""A temporary workspace (models.conf + runs/) for the real gemma model, and fit run on it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli import cli
from tests.conftest import SERVER_MARKER, marked_processes

REPO = Path(__file__).parent.parent
PROFILE = "gemma"
# small and quiet: one slot, one thread (the machine is shared), no warm-up run at load
BASE_EXTRA = "-np 1 --no-warmup -t 1"


@pytest.fixture
def isolated(
    server_marker: str, llama_server_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Binaries resolved first; calibration goes to the test's folder; every server fit
    starts carries the marker, and none may be left running afterwards. (Registered by
    conftest.py; a module uses it with ``pytest.mark.usefixtures("isolated")``.)"""
    monkeypatch.setenv("FIT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("LLAMA_SERVER", str(llama_server_bin))
    monkeypatch.setenv(SERVER_MARKER, server_marker)
    yield
    assert marked_processes(server_marker) == []


FIXTURES = REPO / "tests" / "fixtures"


def example_workspace(folder: Path) -> Path:
    """A writable copy of the example workspace (``../shared/examples/workspace``, whose files
    ``tests/fixtures`` holds byte for byte); returns its models.conf."""
    layout = {
        "models.conf": "models.conf",
        "client-settings.md": "docs/client-settings.md",
        "bench-client.conf": "benchmarks/evalplus/bench-client.conf",
    }
    for fixture, place in layout.items():
        target = folder / place
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((FIXTURES / fixture).read_bytes())
    return folder / "models.conf"


def write_conf(folder: Path, model: Path, extra: str, *, ctx: int = 1024, ngl: str = "0") -> Path:
    """A models.conf with comments, a profile under test and a neighbour that must not move."""
    conf = folder / "models.conf"
    conf.write_text(
        "# models.conf for the test rig\n"
        "#   keys: NAME, SPEED, MODEL, CTX_SIZE, N_GPU_LAYERS, FIT, EXTRA_ARGS\n"
        "\n"
        "# Gemma 3 270M, the profile under test\n"
        "# NOT YET TESTED — run `fit test gemma` to measure it.\n"
        f"[{PROFILE}]\n"
        "NAME=Gemma 3 270M Q4_K_M\n"
        "SPEED=~150 t/s (estimated)\n"
        f"MODEL={model}\n"
        f"CTX_SIZE={ctx}\n"
        f"N_GPU_LAYERS={ngl}\n"
        "FIT=off\n"
        f"EXTRA_ARGS={extra}\n"
        "\n"
        "# a neighbour nobody touches\n"
        "[other]\n"
        "MODEL=models/other.gguf\n"
        "SPEED=12 t/s\n"
    )
    return conf


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def json_of(result: Result) -> dict:
    return json.loads(result.stdout)


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    """Line pairs that differ; the files must have the same number of lines."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(old) == len(new), (before, after)
    return [(a, b) for a, b in zip(old, new, strict=True) if a != b]


def fit_process(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """``fit ARGS`` as a separate process (to be interrupted or killed)."""
    return subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_servers(marker: str, fit_pid: int, limit_s: float = 60) -> list[int]:
    """Processes carrying the test marker other than fit itself (its llama-server)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        others = [pid for pid in marked_processes(marker) if pid != fit_pid]
        if others:
            return others
        time.sleep(0.01)
    return []
