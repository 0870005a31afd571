"""Compute buffers that grow while llama-server serves: fit's peak against the real thing.

minimax-m3's MSA graphs span the positions cached (``llama_kv_cache_msa_context::get_n_pos``:
256 at startup, the context at its fullest), so ggml's allocator grows the compute buffers
past the startup log while a prompt fills the context. ``fit memory`` keeps the startup size
(``compute_buffers``, the log's) and prices the peak (``compute_peak_buffers``, in
``DeviceMemory.compute`` and the totals the solver plans with).

The launches (``profiles.fidelity_cases.SERVED_GROWTH``) serve one prompt of n_ctx - 1 tokens
on the synthetic minimax-m3/8, on the CPU and on two RPC devices, then stop: every target of
``profiles.fidelity`` holds with compute at its peak against what the buffers ended with (the
exit lines' four decimals, the RPC servers' exact allocations), and the startup sizes stay
the log's. Without the peak, the served compute misses by 9.5-51 % (measured).
"""

from __future__ import annotations

import pytest

from profiles.fidelity_cases import SERVED_GROWTH, Case, model_blueprint
from solver.gguf.sources import load_inventory
from solver.llama.args import parse_llama_args
from solver.llama.compute_buffer import cache_params, reserve_ubatches
from solver.llama.compute_graph import CacheParams, GraphModel, Ubatch, runtime_graphs
from solver.llama.compute_graph.inputs import msa_positions
from solver.llama.memory import estimate_memory


@pytest.mark.llama
@pytest.mark.parametrize("case", SERVED_GROWTH, ids=[case.id for case in SERVED_GROWTH])
def test_served_compute_reaches_the_peak(case: Case, check_case) -> None:
    measured = check_case(case)  # every target, compute at fit's peak
    memory, run = measured.memory, measured.run
    logged = run.per_device()
    for device, peak in memory.compute_peak_buffers.items():
        startup = memory.compute_buffers[device]
        assert logged[device].compute.contains(startup), device  # the startup log's size
        exact = run.rpc_allocations.get(device)
        final = exact.compute_bytes if exact else run.compute_at_exit[device].approx_bytes
        grew = not logged[device].compute.contains(final)
        assert grew == (peak > startup), f"{device}: grew {grew}, fit {startup} -> {peak}"
        row = measured.fidelity.row(device, "compute")
        assert row is not None and row.predicted == peak
        if case.name == "streams-one-seq" and device == "CPU":
            # fit's peak has both streams full at once; one prompt fills one of them
            assert 0 < row.predicted - row.measured.high_bytes < 0.01 * peak
        else:
            assert row.off_bytes == 0, row.describe()
    assert memory.compute_grows == (case.name != "unified-dense")


def test_positions_padded_as_get_n_pos() -> None:
    """get_n_pos pads to 256 (at least 256), minimax-m3.cpp then to whole blocks."""
    assert [msa_positions(n, 64) for n in (0, 1, 256, 257, 1023, 1024)] == [
        256,
        256,
        256,
        512,
        1024,
        1024,
    ]
    assert msa_positions(300, 384) == 768  # 512 positions, then whole blocks


def test_only_msa_graphs_grow(synthetic_gguf) -> None:
    """The graphs fit adds for the peak: minimax-m3's while MSA runs, at a full cache."""

    def graphs(model: str, args: str) -> list[tuple[CacheParams, Ubatch]]:
        (path,) = synthetic_gguf(*model_blueprint(model))
        inventory = load_inventory(str(path))
        report = estimate_memory(inventory, parse_llama_args(args.split()))
        cache = cache_params(report.workload)
        pp, tg = reserve_ubatches(report.workload)
        return runtime_graphs(GraphModel.of(inventory), cache, pp, tg)

    assert graphs("minimax-m2/6", "-c 1024 -np 1") == []
    assert graphs("minimax-m3/8", "-c 1024 -np 1 -fa off") == []  # dense attention
    assert graphs("minimax-m3/8", "-c 2048 -np 2 -kvu") == []  # dense attention
    one = graphs("minimax-m3/8", "-c 1024 -np 1")
    assert [(c.n_pos, c.n_stream, ub) for c, ub in one] == [
        (1024, 1, Ubatch(512, 1, 1)),
        (1024, 1, Ubatch(1, 1, 1)),
    ]
    streams = graphs("minimax-m3/8", "-c 2048 -np 2 --no-kv-unified -ub 256")
    assert [(c.n_pos, c.n_stream, ub) for c, ub in streams] == [
        (1024, 2, Ubatch(256, 2, 2)),
        (1024, 2, Ubatch(2, 2, 2)),
        (1024, 1, Ubatch(256, 1, 2)),
    ]
