"""Speed fidelity: fit's cost model against every priceable row of the public speed corpus.

Each row of ``data/measurements/llama_cpp_speeds.csv`` that fit can price is rebuilt as its rig
and its exact llama-server command (``solver.placement.corpus_pricing``) and priced; the
estimates are compared with the published speeds per split (``train`` / ``test``, fixed by
source URL): median absolute error, p10 / median / p90 of estimate / measured, Spearman, and
the share of same-source configuration pairs fit orders as measured (``solver.cost.fidelity``).
Rows fit cannot price are counted and listed by reason.

The first table is the spec-sheet model (``SPEC_SHEET_COEFFICIENTS``, the coefficients fit used
before the corpus fit: the "before" numbers); the second is fit's defaults, the corpus fit in
``data/cost_coefficients.json``. ``--fit`` regenerates that file from the training split alone
(``solver.cost.corpus_fit``) and reports with the new coefficients.

    python -m benchmarks.speed_fidelity            # report
    python -m benchmarks.speed_fidelity --rows     # also every priced row
    python -m benchmarks.speed_fidelity --fit      # refit on the train split, write the file
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence

import numpy as np

from solver.cost.corpus import SpeedRow, Split, load_corpus
from solver.cost.corpus_fit import (
    CorpusFit,
    DeviceUse,
    coefficients_from,
    fit_decode,
    fit_prefill,
    inverse_efficiency,
)
from solver.cost.fidelity import Fidelity, Pair, fidelity
from solver.cost.model import COEFFICIENTS_FILE, SPEC_SHEET_COEFFICIENTS, CostCoefficients
from solver.datafiles import data_path
from solver.placement.corpus_pricing import (
    CorpusPricing,
    PricedRow,
    decode_observation,
    prefill_observation,
    price_corpus,
)
from solver.text_table import format_table

COMMAND = "python -m benchmarks.speed_fidelity --fit"


def pairs(
    priced: Sequence[PricedRow], split: Split, measured: Callable[[PricedRow], float | None],
    estimate: Callable[[PricedRow], float | None],
) -> list[Pair]:  # fmt: skip
    """Estimate/measured pairs of one split and one speed (decode or prefill)."""
    found = []
    for row in priced:
        m, e = measured(row), estimate(row)
        if row.split is split and m is not None and e is not None:
            found.append(
                Pair(estimate=e, measured=m, source=row.source_url, configuration=row.configuration)
            )
    return found


def split_fidelity(pricing: CorpusPricing) -> dict[tuple[Split, str], Fidelity | None]:
    """Decode and prefill fidelity of each split."""
    result = {}
    for split in Split:
        result[split, "decode"] = fidelity(
            pairs(pricing.priced, split, lambda r: r.measured_decode_tps, lambda r: r.decode_tps)
        )
        result[split, "prefill"] = fidelity(
            pairs(pricing.priced, split, lambda r: r.measured_prefill_tps, lambda r: r.prefill_tps)
        )
    return result


def fidelity_table(title: str, pricing: CorpusPricing) -> str:
    """One table: a line per split and speed."""
    lines = []
    for (split, speed), found in split_fidelity(pricing).items():
        if found is None:
            lines.append([split.value, speed, "0", "-", "-", "-", "-", "-", "-"])
            continue
        lines.append([
            split.value, speed, str(found.rows),
            f"{100 * found.median_abs_error:.0f}%",
            f"{found.ratio_p10:.2f}", f"{found.ratio_median:.2f}", f"{found.ratio_p90:.2f}",
            f"{found.spearman:.2f}",
            f"{found.pairs_ordered}/{found.pairs} ({100 * found.ordered_share:.0f}%)",
        ])  # fmt: skip
    header = ["split", "speed", "rows", "median |err|", "p10 e/m", "median e/m", "p90 e/m",
              "Spearman", "pairs ordered"]  # fmt: skip
    return "\n".join([title, *format_table(header, lines)])


def unpriced_report(pricing: CorpusPricing) -> str:
    """Rows set aside, by reason, with what each reason is about."""
    out = [f"rows not priced: {len(pricing.unpriced)}"]
    for reason, items in pricing.reasons().items():
        details = sorted({item.detail for item in items if item.detail})
        shown = "; ".join(details[:25]) + (
            f"; ... ({len(details) - 25} more)" if len(details) > 25 else ""
        )
        out.append(f"  {len(items):4d}  {reason}: {shown}")
    return "\n".join(out)


def rows_table(pricing: CorpusPricing) -> str:
    """Every priced row: measured and estimated speeds and their ratio."""
    lines = []
    for row in pricing.priced:
        cells = [str(row.row), row.split.value, row.label]
        for measured, estimate in (
            (row.measured_decode_tps, row.decode_tps),
            (row.measured_prefill_tps, row.prefill_tps),
        ):
            if measured is None or estimate is None:
                cells += ["", "", ""]
            else:
                cells += [f"{measured:.1f}", f"{estimate:.1f}", f"{estimate / measured:.2f}"]
        lines.append(cells)
    header = ["row", "split", "configuration", "tg meas", "tg est", "e/m", "pp meas", "pp est",
              "e/m"]  # fmt: skip
    return "\n".join(format_table(header, lines))


def fit_corpus(rows: Sequence[SpeedRow]) -> CorpusFit:
    """Fit every coefficient the corpus supports on its training split (the loads a row puts
    on each device do not depend on the coefficients it is priced with)."""
    pricing = price_corpus(rows, SPEC_SHEET_COEFFICIENTS)
    train = [row for row in pricing.priced if row.split is Split.TRAIN]
    decode = [obs for row in train if (obs := decode_observation(row)) is not None]
    theta_decode, decode_residuals = fit_decode(decode)

    def bandwidth_of(gpu: DeviceUse) -> float:
        return gpu.bandwidth / inverse_efficiency(theta_decode, "bw", gpu)

    prefill = [
        obs
        for row in train
        if (obs := prefill_observation(row, SPEC_SHEET_COEFFICIENTS)) is not None
    ]
    theta_prefill, prefill_residuals = fit_prefill(prefill, bandwidth_of)
    return CorpusFit(
        coefficients=coefficients_from(theta_decode, theta_prefill),
        decode_rows=len(decode),
        prefill_rows=len(prefill),
        sources=len({row.source_url for row in train}),
        decode_median_abs_error=float(np.median(np.abs(decode_residuals))),
        prefill_median_abs_error=float(np.median(np.abs(prefill_residuals))),
    )


def write_fit(fit: CorpusFit) -> CostCoefficients:
    """Write ``data/cost_coefficients.json``; the coefficients it now holds."""
    unfitted = {"cpu_flops_per_core": SPEC_SHEET_COEFFICIENTS.cpu_flops_per_core}
    document = {
        "command": COMMAND,
        "fitted_on": (
            f"train split of data/measurements/llama_cpp_speeds.csv: {fit.decode_rows} decode "
            f"and {fit.prefill_rows} prefill rows from {fit.sources} sources"
        ),
        "not_fitted": {"cpu_flops_per_core": "no CPU-only prefill in the corpus: spec sheet"},
        "coefficients": {**fit.coefficients, **unfitted},
    }
    path = data_path(*COEFFICIENTS_FILE)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    infinite = {k: float("inf") for k, v in document["coefficients"].items() if v is None}
    return CostCoefficients.model_validate({**document["coefficients"], **infinite})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", action="store_true", help="also print every priced row")
    parser.add_argument(
        "--fit", action="store_true", help="refit the coefficients on the train split first"
    )
    options = parser.parse_args(argv)

    rows = load_corpus()
    after_coefficients = CostCoefficients()
    if options.fit:
        fit = fit_corpus(rows)
        after_coefficients = write_fit(fit)
        print(f"fitted on {fit.decode_rows} decode and {fit.prefill_rows} prefill train rows; "
              f"wrote {data_path(*COEFFICIENTS_FILE)}")  # fmt: skip
    baseline = price_corpus(rows, SPEC_SHEET_COEFFICIENTS)
    after = price_corpus(rows, after_coefficients)
    print(f"corpus: {len(rows)} rows; priced: {len(baseline.priced)}")
    print(unpriced_report(baseline))
    print()
    print(fidelity_table("spec-sheet coefficients (before)", baseline))
    print()
    print(fidelity_table(f"corpus-fitted coefficients (after; {COMMAND})", after))
    if options.rows:
        print()
        print(rows_table(after))


if __name__ == "__main__":
    main()
