"""The interval every speed fit prints: write ``data/speed_intervals.json``.

Every priceable row of the public speed corpus is priced with fit's default coefficients (the
corpus fit, ``data/cost_coefficients.json``) and the p10 / p90 of estimate / measured are taken
per split and speed (``solver.cost.fidelity.SpeedInterval``); the train split's is the interval
fit shows, the test split's is stored beside it to say how much wider it is out of sample.
Each interval counts its rows by kind of launch (full-GPU or hybrid offload, dense or MoE), so
the output can say what the interval covers. Rerun it after ``--fit`` rewrites the
coefficients:

    python -m benchmarks.speed_intervals
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from benchmarks.speed_fidelity import pairs
from solver.cost.corpus import SpeedRow, Split, load_corpus
from solver.cost.fidelity import (
    INTERVALS_COMMAND,
    INTERVALS_FILE,
    SpeedInterval,
    SpeedIntervals,
    fidelity,
)
from solver.cost.model import CostCoefficients
from solver.datafiles import data_path
from solver.placement.corpus_pricing import PricedRow, price_corpus


def row_kind(row: SpeedRow) -> str:
    """'full-GPU dense', 'hybrid MoE', ...: where the weights ran and whether routed."""
    where = {"full_gpu": "full-GPU", "hybrid": "hybrid", "cpu_only": "CPU-only"}[row.offload]
    return f"{where} {'MoE' if row.moe == 'yes' else 'dense'}"


def split_interval(
    rows: Sequence[SpeedRow], priced: Sequence[PricedRow], split: Split, speed: str
) -> SpeedInterval | None:
    """The interval of one split and speed, with its rows counted by kind."""
    if speed == "decode":
        found = pairs(priced, split, lambda r: r.measured_decode_tps, lambda r: r.decode_tps)
        used = [r for r in priced if r.measured_decode_tps and r.decode_tps]
    else:
        found = pairs(priced, split, lambda r: r.measured_prefill_tps, lambda r: r.prefill_tps)
        used = [r for r in priced if r.measured_prefill_tps and r.prefill_tps]
    result = fidelity(found)
    if result is None:
        return None
    kinds = Counter(row_kind(rows[r.row]) for r in used if r.split is split)
    return SpeedInterval.of(result, dict(kinds.most_common()))


def corpus_speed_intervals() -> SpeedIntervals:
    rows = load_corpus()
    priced = price_corpus(rows, CostCoefficients()).priced
    decode = split_interval(rows, priced, Split.TRAIN, "decode")
    prefill = split_interval(rows, priced, Split.TRAIN, "prefill")
    assert decode is not None and prefill is not None, "the train split has both speeds"
    return SpeedIntervals(
        command=INTERVALS_COMMAND, decode=decode, prefill=prefill,
        test_decode=split_interval(rows, priced, Split.TEST, "decode"),
        test_prefill=split_interval(rows, priced, Split.TEST, "prefill"),
    )  # fmt: skip


def main() -> None:
    intervals = corpus_speed_intervals()
    path = data_path(*INTERVALS_FILE)
    path.write_text(json.dumps(intervals.model_dump(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    for name in ("decode", "prefill", "test_decode", "test_prefill"):
        interval = getattr(intervals, name)
        if interval is not None:
            print(f"{name}: {interval.rows} rows, e/m p10 {interval.ratio_p10:.2f} p90 "
                  f"{interval.ratio_p90:.2f}, median |err| {interval.median_abs_error:.0%}; "
                  f"{interval.kinds}")  # fmt: skip


if __name__ == "__main__":
    main()
