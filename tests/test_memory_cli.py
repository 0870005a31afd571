"""``fit memory``: exit codes, one-line errors, and JSON that matches llama.cpp's own log."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cli import cli
from profiles.server_log import MIB, BufferKind, parse_server_log

LOGS = Path(__file__).parent / "fixtures" / "llama_logs"


def test_json_matches_the_recorded_native_log(gemma_gguf: Path) -> None:
    """Same launch as the recorded AMX build: every buffer it printed, from the CLI."""
    log = parse_server_log((LOGS / "gemma3-270m-native-amx.log").read_text())

    def printed(kind: BufferKind, buffer: str) -> str:
        return f"{sum(b.size.printed_mib for b in log.buffers_of(kind) if b.buffer == buffer):.2f}"

    args = ["memory", str(gemma_gguf), "--cpu", "avx2,avx512,amx", "--json"]
    result = CliRunner().invoke(cli, [*args, "--", "-c", "1024", "--fit", "off"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    cpu = document["devices"]["CPU"]
    assert f"{cpu['weights'] / MIB:.2f}" == printed(BufferKind.MODEL, "CPU_Mapped")
    assert f"{cpu['repack'] / MIB:.2f}" == printed(BufferKind.MODEL, "AMX")
    assert f"{cpu['kv'] / MIB:.2f}" == printed(BufferKind.KV, "CPU")
    assert f"{cpu['output'] / MIB:.2f}" == printed(BufferKind.OUTPUT, "CPU")
    assert set(document) >= {"devices", "graph_splits"}


def test_text_output_names_devices_and_buffers(gemma_gguf: Path) -> None:
    args = ["memory", str(gemma_gguf), "--hardware", "reference", "--cpu", "none", "--"]
    result = CliRunner().invoke(cli, [*args, "-c", "4096", "-ngl", "99", "-ts", "1,1"])
    assert result.exit_code == 0, result.output
    for word in ("CPU", "CUDA0", "CUDA1", "CPU_Mapped", "kv/swa", "CUDA_Host"):
        assert word in result.output


def test_unknown_llama_argument_is_bad_input(gemma_gguf: Path) -> None:
    result = CliRunner().invoke(cli, ["memory", str(gemma_gguf), "--", "--no-mmap"])
    assert result.exit_code == 2
    assert "invalid argument: --no-mmap" in result.output
    assert "Traceback" not in result.output


def test_unmodelled_llama_argument_is_bad_input(gemma_gguf: Path) -> None:
    result = CliRunner().invoke(cli, ["memory", str(gemma_gguf), "--", "--lora", "x.gguf"])
    assert result.exit_code == 2
    assert "does not model" in result.output


def test_missing_model_is_bad_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["memory", str(tmp_path / "nope.gguf"), "--", "-c", "512"])
    assert result.exit_code == 2


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(cli, ["memory", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output


def test_this_machine_is_a_rig_too() -> None:
    """``--hardware detect`` as in ``fit solve``; this machine may have no GPU at all."""
    from solver.hardware.detect import detect_hardware

    args = ["memory", "gpt-oss-20b", "--hardware", "detect", "--json", "--", "-c", "4096"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    devices = set(json.loads(result.stdout)["devices"])
    assert devices == {"CPU", *(gpu.device for gpu in detect_hardware().gpus)}
