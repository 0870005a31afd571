"""Untrusted text (a model's ``general.name``, tensor names, a scenario's strings, paths in
error lines) reaches the terminal escaped: no escape sequence from a file sets the window
title or clears the screen (issue 15)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from gguf import GGUFWriter

from cli import cli
from solver.gguf.inventory import make_tensor
from solver.gguf.sources import load_inventory
from solver.gguf.text import inventory_text
from solver.text_table import format_table, rows_table, terminal_safe
from tests.gguf_bytes import llama_metadata, llama_tensors, write_llama

HOSTILE = "\x1b]0;owned\x07\x1b[2J\x9b31m\u202eevil\r\n"
ESCAPED = "\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u202eevil\\r\\n"
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e", "\r")


def _clean(text: str) -> None:
    for char in RAW_CONTROLS:
        assert char not in text, repr(text)


@pytest.mark.parametrize(
    "text", ["", "blk.0.attn_q.weight", "Gemma 3 270m", "é ü 中文 😀", "a\\x1b (already text)"]
)
def test_printable_text_is_unchanged(text: str) -> None:
    assert terminal_safe(text) == text


def test_controls_are_escaped() -> None:
    assert terminal_safe(HOSTILE) == ESCAPED
    assert terminal_safe("\x00\x7f\t\u2028\u2066") == "\\x00\\x7f\\t\\u2028\\u2066"


def test_tables_escape_every_text_cell() -> None:
    table = "\n".join(format_table(("name", "n"), [(HOSTILE, 1)]))
    _clean(table)
    assert ESCAPED in table
    frame = rows_table([{"model": HOSTILE, HOSTILE: 1.5}])
    _clean(frame)
    assert "1.5" in frame


@pytest.fixture(scope="module")
def hostile_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny llama whose general.name is an escape sequence."""
    path = tmp_path_factory.mktemp("hostile") / "hostile.gguf"
    writer = GGUFWriter(path, "llama")
    llama_metadata(writer)
    writer.add_name(HOSTILE)
    for index, (name, shape) in enumerate(llama_tensors().items()):
        writer.add_tensor(name, np.full(shape, index, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_inspect_escapes_the_model_name(hostile_gguf: Path) -> None:
    result = CliRunner().invoke(cli, ["inspect", str(hostile_gguf), "--tensors"])
    assert result.exit_code == 0, result.output
    _clean(result.output)
    assert f"llama ({ESCAPED})" in result.output


def test_tensor_names_are_escaped(tmp_path: Path) -> None:
    (path,) = write_llama(tmp_path / "m.gguf")
    inventory = load_inventory(str(path))
    hostile = make_tensor("\x1b[2J\x1b]0;x\x07", "F32", (4,), 16)
    inventory = inventory.model_copy(update={"tensors": (*inventory.tensors, hostile)})
    text = inventory_text(inventory, with_tensors=True)
    _clean(text)
    assert "\\x1b[2J\\x1b]0;x\\x07" in text


def test_solve_escapes_the_model_name(hostile_gguf: Path) -> None:
    result = CliRunner().invoke(
        cli, ["solve", str(hostile_gguf), "--hardware", "single-4090", "--ctx", "256"]
    )
    assert result.exit_code == 0, result.output
    _clean(result.output)
    assert result.output.startswith(ESCAPED)


def test_error_lines_are_escaped(tmp_path: Path) -> None:
    missing = tmp_path / f"{HOSTILE.strip()}.gguf"
    result = CliRunner().invoke(cli, ["inspect", str(missing)])
    assert result.exit_code == 2
    _clean(result.output)
    assert len(result.output.strip().splitlines()) == 1
    assert "no such file" in result.output
