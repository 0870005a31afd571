"""Speed fidelity: fit's cost model against every priceable row of the public speed corpus.

Each row of ``data/measurements/llama_cpp_speeds.csv`` that fit can price is rebuilt as its rig
and its exact llama-server command (``solver.placement.corpus_pricing``) and priced; the
estimates are compared with the published speeds per split (``train`` / ``test``, fixed by
source URL): median absolute error, p10 / median / p90 of estimate / measured, Spearman, and
the share of same-source configuration pairs fit orders as measured (``solver.cost.fidelity``).
Rows fit cannot price are counted and listed by reason.

The first table is the spec-sheet model (``SPEC_SHEET_COEFFICIENTS``, the coefficients fit used
before the corpus fit: the "before" numbers); the second is fit's defaults.

    python -m benchmarks.speed_fidelity            # report
    python -m benchmarks.speed_fidelity --rows     # also every priced row
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from solver.cost.corpus import Split, load_corpus
from solver.cost.fidelity import Fidelity, Pair, fidelity
from solver.cost.model import CostCoefficients
from solver.placement.corpus_pricing import CorpusPricing, PricedRow, price_corpus
from solver.text_table import format_table


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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", action="store_true", help="also print every priced row")
    options = parser.parse_args(argv)

    rows = load_corpus()
    baseline = price_corpus(rows, CostCoefficients())
    print(f"corpus: {len(rows)} rows; priced: {len(baseline.priced)}")
    print(unpriced_report(baseline))
    print()
    print(fidelity_table("spec-sheet coefficients (before)", baseline))
    if options.rows:
        print()
        print(rows_table(baseline))


if __name__ == "__main__":
    main()
