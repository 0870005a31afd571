"""How fast the CP-SAT placement proves its answer on the biggest catalogue models.

For each (model, rig) it times three things in the same run: the whole ``fit solve``
(memory model, baselines, CP-SAT, verification), the CP-SAT search alone, and llama.cpp's
greedy ``--fit`` reimplementation as the baseline; it prints the solver status, the proven gap
and the ratio of CP-SAT time to the greedy baseline's time.

    python -m benchmarks.solve_time [--context 32768] [--workers 2]
"""

from __future__ import annotations

import argparse
import time

from solver.gguf.sources import load_inventory
from solver.hardware.scenario import load_hardware
from solver.placement.baselines import llama_fit
from solver.placement.solve import SolveRequest, solve

CASES = (
    ("deepseek-v3:Q4_K_M", "epyc-2x3090-512gb"),
    ("deepseek-v3:Q2_K", "reference-128gb"),
    ("qwen3-235b-a22b:Q4_K_M", "epyc-2x3090-512gb"),
    ("qwen3-235b-a22b:Q3_K_M", "reference-128gb"),
    ("gpt-oss-120b", "reference"),
    ("gpt-oss-120b", "5090-4090"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=int, default=32768)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    request = SolveRequest(contexts=(args.context,), workers=args.workers, time_limit_s=10.0)

    header = f"{'model':24} {'rig':20} {'status':10} {'gap':>8} {'cp-sat s':>9} {'total s':>8}"
    print(header + f" {'greedy s':>9} {'cp-sat/greedy':>14} {'decode t/s':>11}")
    for model, rig in CASES:
        inventory = load_inventory(model)
        hardware = load_hardware(rig)
        started = time.perf_counter()
        report = solve(inventory, hardware, request)
        total = time.perf_counter() - started
        greedy = _greedy_seconds(inventory, hardware, request)
        gap = "-" if report.gap is None else f"{report.gap:.3%}"
        tps = "-" if report.decode_tps is None else f"{report.decode_tps:.1f}"
        ratio = report.solve_seconds / greedy if greedy > 0 else float("inf")
        print(
            f"{model:24} {rig:20} {report.status.value:10} {gap:>8} "
            f"{report.solve_seconds:9.3f} {total:8.2f} {greedy:9.4f} {ratio:14.1f} {tps:>11}"
        )
    return 0


def _greedy_seconds(inventory, hardware, request) -> float:
    """Time of the llama --fit reimplementation on the same problem the solver saw."""
    from solver.placement.setting import capacities, placement_problem, resolve_setting

    setting = resolve_setting(inventory, hardware, request, request.contexts[0], "f16")
    budgets = {name: budget for name, (_, budget) in capacities(hardware, request).items()}
    problem = placement_problem(setting, hardware, budgets, {}, request.objective)
    started = time.perf_counter()
    llama_fit(problem)
    return time.perf_counter() - started


if __name__ == "__main__":
    raise SystemExit(main())
