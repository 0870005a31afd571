"""``fit start --dry-run`` and ``--json`` print the command and run nothing, binary or not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli

REPO = Path(__file__).parent.parent


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "models.conf"
    path.write_text("[p]\nMODEL=/abs/m.gguf\nCTX_SIZE=4096\nEXTRA_ARGS=--jinja\n")
    return path


@pytest.fixture
def no_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No llama-server anywhere fit looks: no $LLAMA_SERVER, an empty cache, an empty PATH."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.delenv("LLAMA_SERVER", raising=False)
    monkeypatch.setenv("FIT_CACHE_DIR", str(empty))
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture
def nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(argv: object) -> int:
        pytest.fail(f"a dry run ran {argv}")

    monkeypatch.setattr("profiles.launch.run_foreground", refuse)


@pytest.mark.usefixtures("no_server", "nothing_runs")
def test_a_dry_run_needs_no_server_and_says_so(conf: Path) -> None:
    result = CliRunner().invoke(cli, ["start", "p", "--conf", str(conf), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "llama-server -m /abs/m.gguf -c 4096 --jinja\n"
    assert "llama-server not found" in result.stderr and "fit llama build" in result.stderr
    as_json = CliRunner().invoke(cli, ["start", "p", "--conf", str(conf), "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == ["llama-server", "-m", "/abs/m.gguf", "-c", "4096",
                                          "--jinja"]  # fmt: skip
    # without --dry-run the same missing server is an error, as before
    real = CliRunner().invoke(cli, ["start", "p", "--conf", str(conf)])
    assert real.exit_code == 1 and "fit llama build" in real.stderr


@pytest.mark.usefixtures("nothing_runs")
def test_a_dry_run_shows_the_server_it_would_run(conf: Path, tmp_path: Path) -> None:
    """The one a start would run, as given even where it is not an executable."""
    for server in ("/bin/true", str(tmp_path / "not-there")):
        args = ["start", "p", "--conf", str(conf), "--server", server, "--dry-run"]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert result.stdout.split()[0] == server
        assert ("not an executable" in result.stderr) == (server != "/bin/true")


def test_json_is_the_only_thing_on_stdout(conf: Path) -> None:
    """``LLAMA_SERVER=/bin/echo fit start p --json``: the JSON list and nothing the program
    would print (a real process, so that a child's output would reach the same stdout)."""
    env = {**os.environ, "LLAMA_SERVER": "/bin/echo"}
    done = subprocess.run(
        [sys.executable, "-m", "cli", "start", "p", "--conf", str(conf), "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["/bin/echo", "-m", "/abs/m.gguf", "-c", "4096", "--jinja"]
    # without --json the command is printed and run: echo repeats its arguments
    done = subprocess.run(
        [sys.executable, "-m", "cli", "start", "p", "--conf", str(conf)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "/bin/echo -m /abs/m.gguf -c 4096 --jinja",
        "-m /abs/m.gguf -c 4096 --jinja",
    ]


def test_the_help_states_the_contract() -> None:
    result = CliRunner().invoke(cli, ["start", "--help"])
    assert "run nothing" in result.output and "to run, leave --json out" in result.output
