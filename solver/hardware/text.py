"""What ``fit hardware`` shows: a rig, the bundled scenarios and the GPU spec table as text.

Pure functions from ``solver.hardware.scenario`` records to rows or text; the CLI only prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from solver.hardware.detect import DetectionReport
from solver.hardware.scenario import (
    GB,
    GIB,
    Gpu,
    GpuSpec,
    Hardware,
    describe_hardware,
    list_scenarios,
    load_hardware,
)
from solver.text_table import rows_table, terminal_safe


def hardware_text(hardware: Hardware) -> str:
    """The rig's name, a table of its GPUs (VRAM, bandwidth, FP16, PCIe link), then RAM,
    DRAM bandwidth, cores and the notes detection left."""
    host = hardware.host
    title = f"{hardware.name}: {hardware.description}" if hardware.description else hardware.name
    lines = [terminal_safe(title)]  # the scenario file's own text
    gpu_rows = [
        {
            "device": gpu.device,
            "model": gpu.spec.name,
            "VRAM GiB": round(gpu.spec.vram_bytes / GIB, 2),
            "free GiB": "-" if gpu.free_bytes is None else round(gpu.free_bytes / GIB, 2),
            "VRAM GB/s": round(gpu.spec.bandwidth_bytes_per_s / GB, 1),
            "FP16 TFLOPS": round(gpu.spec.fp16_flops / 1e12, 1),
            "link": _link(gpu),
            "link GB/s": round(gpu.link_bytes_per_s / GB, 3),
        }
        for gpu in hardware.gpus
    ]
    lines += ["", rows_table(gpu_rows) if gpu_rows else "GPUs: none", ""]
    available = "" if host.available_bytes is None else f", {host.available_bytes / GIB:.1f} free"
    threads = "" if host.threads is None else f" ({host.threads} threads)"
    ram = f"RAM:   {host.ram_bytes / GIB:.1f} GiB{available} {host.memory_kind}".rstrip()
    lines.append(terminal_safe(ram))
    lines.append(f"DRAM:  {host.bandwidth_bytes_per_s / GB:.1f} GB/s ({host.bandwidth_source})")
    lines.append(f"CPU:   {host.cores} cores{threads}")
    lines += [f"note:  {terminal_safe(note)}" for note in hardware.notes]
    return "\n".join(lines)


def _link(gpu: Gpu) -> str:
    """PCIe generation and lanes, or the RPC server and the network's round trip."""
    if gpu.network is not None:
        return terminal_safe(f"RPC {gpu.rpc_endpoint} {gpu.network.round_trip_us:.0f} us")
    return "integrated" if gpu.integrated else f"PCIe {gpu.pcie_gen}.0 x{gpu.pcie_lanes}"


def detection_text(report: DetectionReport, saved_to: Path | None = None) -> str:
    """``fit hardware detect``: the detected rig, and where it was saved as a scenario."""
    saved = [] if saved_to is None else [f"saved:  {saved_to}"]
    return "\n".join([hardware_text(report.hardware), *saved])


def detection_json(report: DetectionReport, saved_to: Path | None = None) -> dict[str, Any]:
    """``fit hardware detect --json``: the detection report and ``saved_to``."""
    return {
        **report.model_dump(mode="json"),
        "saved_to": None if saved_to is None else str(saved_to),
    }


def scenario_summaries() -> list[dict[str, str]]:
    """Every bundled scenario as ``{"name", "summary"}`` (``describe_hardware``'s one line)."""
    return [
        {"name": name, "summary": describe_hardware(load_hardware(name))}
        for name in list_scenarios()
    ]


def gpu_specs_text(specs: Sequence[GpuSpec]) -> str:
    """The GPU spec table: VRAM GiB, GB/s, dense FP16 TFLOPS, PCIe link, and whether the
    FP16 figure was published or derived."""
    rows = [
        {
            "model": spec.name,
            "arch": spec.architecture,
            "VRAM GiB": round(spec.vram_bytes / GIB, 1),
            "GB/s": round(spec.bandwidth_bytes_per_s / GB, 1),
            "FP16 TFLOPS": round(spec.fp16_flops / 1e12, 2),
            "PCIe": f"{spec.pcie_gen}.0 x{spec.pcie_lanes}" if spec.pcie_gen else "integrated",
            "basis": "published" if spec.fp16_basis.startswith("published") else "derived",
        }
        for spec in specs
    ]
    return rows_table(rows)
