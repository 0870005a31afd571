"""How long one ``estimate_compute`` call takes on a DeepSeek-V3 inventory.

The solver evaluates many placements per model, and the whole memory evaluation must stay
well under 10 ms on DeepSeek-V3 (61 layers x 256 experts, MLA). The inventory is the
catalogue's DeepSeek-V3 Q4_K_M header. Three timings:

- cold: first call for a workload (builds the two reserve graphs, then schedules and
  allocates them);
- first placement: graphs built, nothing memoised yet (every segment replayed once);
- new placement: a placement not seen before, after others (scheduler replay; allocator
  segments the solver's earlier placements share are reused);
- repeat: a placement seen before.

The baseline, measured in the same run, is one pass over the inventory's tensor list
summing bytes per device (the cheapest thing a memory model must do anyway), so the ratio
is comparable across machines.

    python -m benchmarks.compute_speed
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from solver.gguf.catalogue import load_catalogue_entry
from solver.gguf.inventory import Inventory, TensorGroup
from solver.llama.compute_buffer import estimate_compute, reset_caches
from solver.llama.workload import ComputeWorkload

DEVICES = ["CPU", "CUDA0", "CUDA1"]


def placement(inv: Inventory, first_gpu: int, experts_cpu_until: int):
    """Layers [0, first_gpu) on CPU, the rest split over two GPUs; experts of layers below
    ``experts_cpu_until`` on the CPU (an -ot exps=CPU rule); output on the last GPU."""
    n = inv.n_layers
    mid = (first_gpu + n) // 2
    layer_dev = ["CPU" if il < first_gpu else ("CUDA0" if il < mid else "CUDA1") for il in range(n)]
    devices = {}
    for t in inv.tensors:
        if t.layer is None:
            devices[t.name] = "CPU" if t.name == "token_embd.weight" else "CUDA1"
        elif t.group == TensorGroup.FFN_EXPERTS and t.layer < experts_cpu_until:
            devices[t.name] = "CPU"
        else:
            devices[t.name] = layer_dev[t.layer]
    return devices, layer_dev


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
    inv = load_catalogue_entry("deepseek-v3:Q4_K_M")
    workload = ComputeWorkload(
        n_ctx=32768, n_ctx_seq=32768, n_batch=2048, n_ubatch=512, n_seq_max=1, n_stream=1,
        n_outputs_max=1, flash_attn=True, v_trans=False, kv_unified=False,
    )  # fmt: skip
    placements = [placement(inv, fg, ec) for fg in range(0, 30, 3) for ec in (20, 35, 50)]

    def baseline() -> None:
        totals: dict[str, int] = {}
        devs = placements[0][0]
        for t in inv.tensors:
            totals[devs[t.name]] = totals.get(devs[t.name], 0) + t.n_bytes

    def cold() -> None:
        reset_caches()
        estimate_compute(inv, workload, placements[0][0], placements[0][1], DEVICES)

    it = iter(range(10**9))

    def first_placement() -> None:
        reset_caches(keep_graphs=True)
        devs, kv = placements[1 + next(it) % (len(placements) - 1)]
        estimate_compute(inv, workload, devs, kv, DEVICES)

    def new_placement() -> None:
        devs, kv = placements[1 + next(it) % (len(placements) - 1)]
        estimate_compute(inv, workload, devs, kv, DEVICES)

    def repeat() -> None:
        estimate_compute(inv, workload, placements[0][0], placements[0][1], DEVICES)

    base, _ = best_of(baseline, 50)
    cold_t, _ = best_of(cold, 3)
    reset_caches()
    estimate_compute(inv, workload, placements[0][0], placements[0][1], DEVICES)
    first_t, first_med = best_of(first_placement, 10)
    reset_caches(keep_graphs=True)
    estimate_compute(inv, workload, placements[0][0], placements[0][1], DEVICES)
    new_t, new_med = best_of(new_placement, len(placements) - 1)
    rep_t, _ = best_of(repeat, 20)
    print(f"inventory: {inv.name or inv.source}, {len(inv.tensors)} tensors, {inv.n_layers} layers")
    print(f"baseline (sum bytes per device over the tensor list): {base * 1e3:8.3f} ms")
    rows = (
        ("cold (build graphs)", cold_t),
        ("first placement", first_t),
        ("first placement, median", first_med),
        ("new placement", new_t),
        ("new placement, median", new_med),
        ("repeat placement", rep_t),
    )
    for label, t in rows:
        print(f"{label:28s} {t * 1e3:8.3f} ms   ratio to baseline {t / base:8.1f}")


if __name__ == "__main__":
    main()
