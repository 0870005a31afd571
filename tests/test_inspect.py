"""``fit inspect`` through click's CliRunner: human and JSON output, bad input."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli import cli
from tests.gemma_reference import gguf_py_reader
from tests.gguf_bytes import kv_str, raw_gguf, write_llama


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_human_summary(gemma_gguf: Path) -> None:
    result = run("inspect", str(gemma_gguf))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "architecture    gemma3 (Gemma 3 270m)" in lines
    assert "quant           Q4_K_M" in lines
    assert "layers          18" in lines
    assert "sliding window  512 tokens (standard) on 15 of 18 layers" in lines
    assert any(line.startswith("token_embd") and " 1 " in line for line in lines)
    assert "blk.0.attn_q.weight" not in result.output


def test_tensor_table(gemma_gguf: Path) -> None:
    result = run("inspect", str(gemma_gguf), "--tensors")
    assert result.exit_code == 0, result.output
    names = [t.name for t in gguf_py_reader(gemma_gguf).tensors]
    rows = [line.split()[0] for line in result.output.splitlines() if line.split()]
    assert set(names) <= set(rows)


def test_json(gemma_gguf: Path) -> None:
    result = run("inspect", str(gemma_gguf), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["architecture"] == "gemma3"
    assert data["n_layers"] == 18
    assert data["n_tensors"] == len(data["tensors"]) == 236
    assert data["total_bytes"] == sum(t["bytes"] for t in data["tensors"])
    assert data["experts"] == {
        "count": 0,
        "used": 0,
        "shared": 0,
        "leading_dense_layers": 0,
        "feed_forward_length": 0,
        "shared_feed_forward_length": 0,
    }
    first = data["tensors"][0]
    assert set(first) >= {"name", "type", "shape", "bytes", "layer", "role"}
    reference = {t.name: t for t in gguf_py_reader(gemma_gguf).tensors}
    for tensor in data["tensors"]:
        assert tensor["bytes"] == int(reference[tensor["name"]].n_bytes)
    assert data["attention"]["sliding_window"] == 512
    assert data["metadata"]["tokenizer.ggml.tokens"] == 262144


def test_split_set_json_lists_all_parts(tmp_path: Path) -> None:
    parts = write_llama(tmp_path / "s.gguf", split_max_tensors=7)
    data = json.loads(run("inspect", str(parts[1]), "--json").output)
    assert data["files"] == [str(p) for p in parts]
    assert {t["file_index"] for t in data["tensors"]} == {0, 1, 2}


def one_line_error(result: Result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    for fragment in fragments:
        assert fragment in result.output


def test_truncated_file(tmp_path: Path, gemma_gguf: Path) -> None:
    cut = tmp_path / "cut.gguf"
    with gemma_gguf.open("rb") as handle:
        cut.write_bytes(handle.read(100_000))
    one_line_error(run("inspect", str(cut)), 2, str(cut), "truncated")


def test_unknown_architecture(tmp_path: Path) -> None:
    path = tmp_path / "alien.gguf"
    path.write_bytes(raw_gguf([kv_str("general.architecture", "alien")]))
    one_line_error(run("inspect", str(path)), 2, str(path), "'alien'")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"PK\x03\x04" + b"\0" * 60, "not a GGUF file"),
        (raw_gguf(n_tensors=2**60), "tensor count"),
        (struct.pack("<IIQQQ", 0x46554747, 3, 0, 1, 2**40) + b"\0" * 64, "bytes long"),
    ],
)
def test_hostile_files(tmp_path: Path, data: bytes, fragment: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    one_line_error(run("inspect", str(path)), 2, str(path), fragment)


def test_unknown_model_name() -> None:
    one_line_error(run("inspect", "not-a-model"), 2, "not a file, hf:// URL or catalogue name")


def test_help_has_an_example() -> None:
    result = run("inspect", "--help")
    assert result.exit_code == 0 and "fit inspect" in result.output
