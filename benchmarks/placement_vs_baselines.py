"""The solver against what people do today, under one memory and cost model.

For every catalogue model in its common quants, on the reference rig and what-if rigs, at
8K / 32K / 128K context, ``fit solve`` prices its own plan and four baselines on the same
problem: llama.cpp's ``--fit`` (common/fit.cpp steps 3-4, reimplemented), the best
``--n-cpu-moe N``, ``-ot exps=CPU`` and plain ``-ngl`` fill. It prints estimated decode t/s
and the ratio solver/baseline per row, then a summary: where the solver wins, by how much,
and whether it was ever below a baseline (it must not be).

    python -m benchmarks.placement_vs_baselines [--rigs reference,5090-4090,2x3090]
        [--contexts 8192,32768,131072] [--models gpt-oss-120b,...] [--markdown]
"""

from __future__ import annotations

import argparse
import time

from solver.gguf.catalogue import catalogue_models, catalogue_names
from solver.gguf.sources import load_inventory
from solver.hardware.scenario import load_hardware
from solver.placement.baselines import BASELINES
from solver.placement.solve import SolveRequest, solve

COMMON_QUANTS = ("Q4_K_M", "Q8_0", "MXFP4")
DEFAULT_RIGS = ("reference", "5090-4090", "2x3090")
DEFAULT_CONTEXTS = (8192, 32768, 131072)


def common_entries(models: list[str]) -> list[str]:
    names = set(catalogue_names())
    return [f"{m}:{q}" for m in models for q in COMMON_QUANTS if f"{m}:{q}" in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rigs", default=",".join(DEFAULT_RIGS))
    parser.add_argument("--contexts", default=",".join(map(str, DEFAULT_CONTEXTS)))
    parser.add_argument("--models", default=",".join(catalogue_models()))
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    rigs = [load_hardware(name) for name in args.rigs.split(",")]
    contexts = [int(c) for c in args.contexts.split(",")]
    entries = common_entries(args.models.split(","))

    names = list(BASELINES)
    sep = " | " if args.markdown else "  "
    header = ["model", "rig", "ctx", "fit t/s", *(f"{n} (x)" for n in names)]
    print(("| " if args.markdown else "") + sep.join(header) + (" |" if args.markdown else ""))
    if args.markdown:
        print("|" + "---|" * len(header))
    worst = float("inf")
    wins = {name: [] for name in names}
    rows = infeasible = 0
    started = time.perf_counter()
    for entry in entries:
        inventory = load_inventory(entry)
        for rig in rigs:
            for context in contexts:
                if context > inventory.context_length:
                    continue
                request = SolveRequest(contexts=(context,), with_baselines=True)
                report = solve(inventory, rig, request)
                if not report.feasible:
                    infeasible += 1
                    continue
                rows += 1
                cells = [entry, rig.name, f"{context // 1024}K", f"{report.decode_tps:.1f}"]
                for name in names:
                    tps = report.baselines.get(name)
                    if tps is None:
                        cells.append("no fit")
                        continue
                    ratio = report.decode_tps / tps
                    worst = min(worst, ratio)
                    wins[name].append(ratio)
                    cells.append(f"{tps:.1f} ({ratio:.2f})")
                line = sep.join(cells)
                print(f"| {line} |" if args.markdown else line, flush=True)
    elapsed = time.perf_counter() - started
    print()
    print(f"{rows} feasible rows ({infeasible} model/rig/context combinations do not fit), "
          f"{elapsed:.0f} s")  # fmt: skip
    for name, ratios in wins.items():
        if ratios:
            better = sum(1 for r in ratios if r > 1.005)
            print(
                f"vs {name:17}: solver faster in {better}/{len(ratios)} rows, "
                f"median x{sorted(ratios)[len(ratios) // 2]:.2f}, best x{max(ratios):.2f}, "
                f"worst x{min(ratios):.3f}"
            )
    verdict = "never below a baseline" if worst >= 0.9999 else f"BELOW a baseline (x{worst:.3f})"
    print(f"solver vs every baseline: {verdict}")
    return 0 if worst >= 0.9999 else 1


if __name__ == "__main__":
    raise SystemExit(main())
