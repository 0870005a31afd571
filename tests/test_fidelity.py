"""``profiles.fidelity`` on recorded llama-server logs: rows per device and component, what
counts as a miss, and the measured totals ``fit test`` compares with.

The logs in tests/data/logs were written by the pinned llama-server (see their README); the
comparison must find fit's estimate of the same command line inside every printed interval
and must flag an estimate that is off by less than the printed rounding of a sum.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from profiles.fidelity import COMPONENTS, FidelityRow, compare, measured_memory
from profiles.server_log import MIB, LoggedSize, RunReport, parse_server_log_file
from solver.gguf.sources import load_inventory
from solver.llama.args import parse_llama_args
from solver.llama.device_map import CpuFeatures
from solver.llama.memory import MemoryReport, estimate_memory

LOGS = Path(__file__).parent / "data" / "logs"
# the launch of rpc-2dev.log (capture_logs.py): tests.test_server.BASE_ARGS + RPC split
BASE_ARGS = ["-c", "2048", "-np", "1", "--fit", "off", "--no-warmup", "-t", "1"]


@pytest.fixture(scope="module")
def rpc_run() -> RunReport:
    return parse_server_log_file(LOGS / "rpc-2dev.log")


@pytest.fixture(scope="module")
def rpc_estimate(gemma_gguf: Path, rpc_run: RunReport) -> MemoryReport:
    endpoints = ",".join(d.description for d in rpc_run.devices if d.name.startswith("RPC"))
    args = [*BASE_ARGS, "--rpc", endpoints, "-ngl", "99", "-ts", "1,1"]
    return estimate_memory(
        load_inventory(str(gemma_gguf)),
        parse_llama_args(args),
        cpu=CpuFeatures.from_system_info(rpc_run.system_info or ""),
    )


def test_recorded_rpc_launch_meets_every_target(
    rpc_estimate: MemoryReport, rpc_run: RunReport
) -> None:
    fidelity = compare(rpc_estimate, rpc_run)
    assert not fidelity.misses(), fidelity.misses()
    devices = {row.device for row in fidelity.rows}
    assert devices == {"CPU", "RPC0", "RPC1"}
    for device in ("RPC0", "RPC1"):  # weights, KV, compute, total; the output lives on the CPU
        parts = {row.component for row in fidelity.rows if row.device == device}
        assert parts == set(COMPONENTS) - {"output"}
    assert fidelity.splits_measured == fidelity.splits_predicted == (3, 3)
    # no -lv 5 lines and no debug RPC logs in this log: 2-decimal intervals everywhere
    assert all(not row.measured.is_exact for row in fidelity.rows)


def test_an_estimate_off_by_one_kv_buffer_is_a_miss(
    rpc_estimate: MemoryReport, rpc_run: RunReport
) -> None:
    kv = list(rpc_estimate.kv_buffers)
    kv[0] = kv[0].model_copy(update={"size": kv[0].size + MIB})
    wrong = rpc_estimate.model_copy(update={"kv_buffers": tuple(kv)})
    misses = compare(wrong, rpc_run).misses()
    assert misses and all(miss.startswith(f"{kv[0].device} ") for miss in misses)
    assert any(" kv: " in miss and "buffers:" in miss for miss in misses)


def test_two_buffers_off_in_opposite_directions_are_a_miss(
    rpc_estimate: MemoryReport, rpc_run: RunReport
) -> None:
    """Their sum still matches: each buffer must match on its own (here RPC0's full-attention
    and sliding-window KV buffers)."""
    on_rpc0 = [i for i, b in enumerate(rpc_estimate.kv_buffers) if b.device == "RPC0"]
    assert len(on_rpc0) == 2
    kv = list(rpc_estimate.kv_buffers)
    for index, change in zip(on_rpc0, (MIB, -MIB), strict=True):
        kv[index] = kv[index].model_copy(update={"size": kv[index].size + change})
    wrong = rpc_estimate.model_copy(update={"kv_buffers": tuple(kv)})
    row = compare(wrong, rpc_run).row("RPC0", "kv")
    assert row is not None and row.off_bytes == 0 and not row.buffers_match and not row.ok


def test_context_and_split_differences_are_misses(
    rpc_estimate: MemoryReport, rpc_run: RunReport
) -> None:
    workload = rpc_estimate.workload.model_copy(update={"n_ctx": 4096})
    wrong = rpc_estimate.model_copy(update={"workload": workload, "graph_splits": 4})
    misses = compare(wrong, rpc_run).misses()
    assert "n_ctx: fit 4096, llama.cpp 2048" in misses
    assert "graph splits pp/tg: fit (4, 3), llama.cpp (3, 3)" in misses


def test_row_error_counts_only_what_lies_beyond_the_rounding() -> None:
    printed = LoggedSize.from_mib_text("10.00")
    inside = FidelityRow(device="CPU", component="kv", predicted=10 * MIB + 5000, measured=printed)
    assert inside.off_bytes == 0 and inside.error == 0 and inside.ok
    outside = inside.model_copy(update={"predicted": printed.high_bytes + 100})
    assert outside.off_bytes == 100 and not outside.ok
    assert outside.error == pytest.approx(100 / printed.approx_bytes)
    compute = outside.model_copy(update={"component": "compute"})
    assert compute.ok  # 0.001% is within compute's 5%
    nothing = FidelityRow(
        device="RPC0", component="weights", predicted=1, measured=LoggedSize.exact(0)
    )
    assert nothing.error == math.inf and not nothing.ok


def test_measured_memory_without_compute(rpc_run: RunReport) -> None:
    with_compute = measured_memory(rpc_run)
    without = measured_memory(rpc_run, with_compute=False)
    for device, logged in rpc_run.per_device().items():
        assert with_compute[device] == logged.total
        rest = logged.model + logged.kv + logged.rs + logged.output + logged.other
        assert (without[device].low_bytes, without[device].high_bytes) == (
            rest.low_bytes,
            rest.high_bytes,
        )
