"""Detection on this machine and its pure helpers (GPU order rules, /proc and sysfs readers)."""

import ctypes.util
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from solver.hardware.detect import (
    apply_cuda_visible_devices,
    cpu_counts,
    detect,
    measure_host_bandwidth,
    parse_pci_bus_id,
)
from solver.hardware.scenario import load_hardware

HAS_NVML = ctypes.util.find_library("nvidia-ml") is not None


def meminfo_kib(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(field)


def run(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def test_detect_reports_ram_from_meminfo_and_exits_zero():
    result = run("hardware", "detect", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["hardware"]["host"]["ram_bytes"] == meminfo_kib("MemTotal") * 1024
    assert payload["hardware"]["host"]["threads"] == len(os.sched_getaffinity(0))
    if not HAS_NVML:
        assert payload["hardware"]["gpus"] == []
        assert any("no NVIDIA GPU" in note for note in payload["hardware"]["notes"])


def test_detect_human_output_on_a_machine_without_gpus():
    result = run("hardware", "detect")
    assert result.exit_code == 0, result.output
    assert "RAM:" in result.output and "CPU:" in result.output
    if not HAS_NVML:
        assert "GPUs: none" in result.output and "NVML" in result.output


def test_detect_save_then_show_round_trips(tmp_path):
    saved = tmp_path / "rig.toml"
    detected = run("hardware", "detect", "--json", "--save", str(saved))
    assert detected.exit_code == 0, detected.output
    shown = run("hardware", "show", str(saved), "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == json.loads(detected.output)["hardware"]
    assert load_hardware(str(saved)).host.ram_bytes == meminfo_kib("MemTotal") * 1024


def test_detect_save_keeps_a_backup(tmp_path):
    saved = tmp_path / "rig.toml"
    saved.write_text("old contents\n")
    assert run("hardware", "detect", "--save", str(saved)).exit_code == 0
    assert (tmp_path / "rig.toml.bak").read_text() == "old contents\n"


def test_physical_cores_do_not_exceed_logical():
    physical, logical = cpu_counts()
    assert 1 <= physical <= logical == len(os.sched_getaffinity(0))


def test_measured_bandwidth_is_labelled_and_positive():
    assert measure_host_bandwidth(threads=1, seconds=0.05, budget_bytes=64 * 2**20) > 0
    host = detect(measure_bandwidth=True).hardware.host
    assert host.bandwidth_source.startswith("measured")


def test_pci_bus_ids_from_nvml_and_cuda_compare_equal():
    assert parse_pci_bus_id("00000000:01:00.0") == parse_pci_bus_id("0000:01:00.0")
    assert parse_pci_bus_id("0000:0A:00.0") < parse_pci_bus_id("0000:41:00.0")


@pytest.mark.parametrize(
    ("value", "visible"),
    [
        (None, ["GPU-aa", "GPU-bb", "GPU-cc"]),
        ("", []),
        ("2,0", ["GPU-cc", "GPU-aa"]),
        ("GPU-b", ["GPU-bb"]),
        ("1,7,0", ["GPU-bb"]),  # CUDA stops at the first entry that names no device
        ("-1", []),
    ],
)
def test_cuda_visible_devices(value, visible):
    assert apply_cuda_visible_devices(["GPU-aa", "GPU-bb", "GPU-cc"], value) == visible
