"""``--json`` on every command: one JSON document on stdout, success or failure.

The contract lives in ``cli.FitGroup``: a failure is ``{"error": {"kind", "message",
"exit_code"}}`` (kind ``usage``, ``bad_input`` or ``operation_failed``), a result produced
before a failure keeps its fields next to ``error``, and exit codes are those of the text mode.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from cli import cli, emit_json, wants_json

# Every command with --json when this test was written; more may be added (the walk below
# finds them), none may disappear unnoticed.
KNOWN_JSON_COMMANDS = {
    ("inspect",), ("hardware", "detect"), ("hardware", "show"), ("hardware", "gpus"),
    ("llama", "build"), ("llama", "path"), ("memory",), ("solve",), ("whatif",), ("start",),
    ("test",), ("calibrate",), ("tune",),
}  # fmt: skip


def json_commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command under ``group`` that has a ``--json`` option, as its word path."""
    found = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += json_commands(command, (*path, name))
        elif any("--json" in getattr(p, "opts", ()) for p in command.params):
            found.append((*path, name))
    return found


def strict_json(text: str) -> object:
    """One JSON document and nothing else (``json.loads`` refuses trailing text)."""

    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def run(args: list[str], **env: str) -> Result:
    return CliRunner().invoke(cli, args, env=env or None, catch_exceptions=False)


def with_json(args: list[str]) -> list[str]:
    """``args`` plus ``--json`` among fit's own options (before a bare ``--``)."""
    at = args.index("--") if "--" in args else len(args)
    return [*args[:at], "--json", *args[at:]]


def assert_error(result: Result, kind: str, exit_code: int) -> dict:
    """The command failed with ``kind``: its stdout is exactly one JSON error document."""
    assert result.exit_code == exit_code, result.output
    document = strict_json(result.stdout)
    assert isinstance(document, dict), document
    error = document["error"]
    assert error["kind"] == kind and error["exit_code"] == exit_code, error
    assert error["message"] and "\n" not in error["message"].strip(), error
    assert "Traceback" not in result.output
    return document


def test_the_walk_finds_every_known_json_command() -> None:
    assert set(json_commands()) >= KNOWN_JSON_COMMANDS


@pytest.mark.parametrize("words", json_commands(), ids=" ".join)
def test_a_usage_error_is_json_on_every_command(words: tuple[str, ...]) -> None:
    """An unknown option fails click's parsing before the command runs: still JSON, exit 2."""
    result = run([*words, "--no-such-option", "--json"])
    document = assert_error(result, "usage", 2)
    assert "--no-such-option" in document["error"]["message"]


def test_a_bad_value_and_a_missing_argument_are_usage_errors() -> None:
    assert_error(run(["llama", "build", "--jobs", "0", "--json"]), "usage", 2)
    assert_error(run(["solve", "gpt-oss-20b", "--ctx", "abc", "--json"]), "usage", 2)
    assert_error(run(["solve", "--json"]), "usage", 2)
    assert_error(run(["no-such-command", "--json"]), "usage", 2)
    assert_error(run(["hardware", "no-such-command", "--json"]), "usage", 2)


def test_without_json_errors_stay_text_on_stderr() -> None:
    result = run(["solve", "gpt-oss-20b", "--kv", "q7_0"])
    assert result.exit_code == 2 and result.stdout == ""
    assert "q7_0" in result.stderr
    result = run(["solve", "gpt-oss-20b", "--no-such-option"])
    assert result.exit_code == 2 and result.stdout == "" and "Usage:" in result.stderr


CONF = textwrap.dedent(
    """\
    [tiny]
    MODEL=/nonexistent/tiny.gguf
    CTX_SIZE=4096
    """
)


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "models.conf"
    path.write_text(CONF)
    return path


def test_failures_of_each_command_are_json(tmp_path: Path, conf: Path) -> None:
    """Each command that has --json, failing the cheapest way it can, exits as in text mode."""
    missing = str(tmp_path / "missing.gguf")
    empty = tmp_path / "runs"
    empty.mkdir()
    cases = [
        (["inspect", missing], "bad_input", 2),
        (["hardware", "detect", "--save", str(tmp_path / "no" / "rig.toml")], "bad_input", 2),
        (["hardware", "show", "no-such-rig"], "bad_input", 2),
        (["memory", missing, "--", "-c", "512"], "bad_input", 2),
        (["solve", "gpt-oss-20b", "--kv", "q7_0"], "bad_input", 2),
        (["whatif", "gpt-oss-20b", "--hardware", "reference", "--vary", "x=1"], "bad_input", 2),
        (["start", "missing", "--conf", str(conf)], "bad_input", 2),
        (["test", "missing", "--conf", str(conf)], "bad_input", 2),
        (["tune", "missing", "--conf", str(conf)], "bad_input", 2),
        (["calibrate", "--runs", str(empty), "--dry-run"], "operation_failed", 1),
    ]
    for args, kind, exit_code in cases:
        assert_error(run(with_json(args)), kind, exit_code)
    not_there = str(tmp_path / "llama-server")
    result = run(["llama", "path", "--json"], LLAMA_SERVER=not_there)
    assert_error(result, "operation_failed", 1)


def test_a_result_made_before_the_failure_is_kept_next_to_the_error() -> None:
    """``solve`` that cannot fit: the whole report, plus ``error``; exit 1 as in text mode."""
    result = run(["solve", "qwen3-235b-a22b:Q8_0", "--hardware", "reference", "--json"])
    document = assert_error(result, "operation_failed", 1)
    assert document["status"] == "infeasible" and "does not fit" in document["error"]["message"]


def test_successes_are_one_strict_json_document(conf: Path) -> None:
    for args in (["hardware", "gpus"], ["hardware", "show"], ["hardware", "show", "reference"]):
        result = run([*args, "--json"])
        assert result.exit_code == 0, result.output
        assert "error" not in strict_json(result.stdout)
    result = run(["llama", "path", "--json"], LLAMA_SERVER="/bin/echo")
    assert result.exit_code == 0 and strict_json(result.stdout)["llama-server"]["path"] == (
        "/bin/echo"
    )


def test_non_finite_numbers_are_written_as_null() -> None:
    @click.command()
    def command() -> None:
        emit_json({"rate": float("inf"), "rows": [float("nan"), 1.5], "pair": (float("-inf"),)})

    result = CliRunner().invoke(command, [])
    assert strict_json(result.stdout) == {"rate": None, "rows": [None, 1.5], "pair": [None]}


def test_json_after_a_bare_double_dash_belongs_to_llama_server() -> None:
    assert wants_json(["memory", "m", "--json", "--", "-c", "8"])
    assert not wants_json(["memory", "m", "--", "--json"])
