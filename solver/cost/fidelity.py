"""How well estimated speeds match measured ones: the numbers issue 12 judges the cost model by.

In: ``Pair`` records (one estimate beside one measurement, with the source and configuration
it came from). Out: ``Fidelity``: median absolute relative error, p10 / median / p90 of
estimate / measured, Spearman's rank correlation, and the share of same-source configuration
pairs whose order the estimates get right.

Pair ordering counts two rows of one source when their configurations differ (rows that differ
only in backend, build or environment are repeats of one configuration, which fit prices alike
by design) and their measured speeds differ by more than ``TIE_FRACTION`` (closer than that is
within run-to-run noise and carries no order). An estimate tie on such a pair counts as wrong.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import cache

import numpy as np
from pydantic import BaseModel, ConfigDict

from solver.datafiles import read_data_text

TIE_FRACTION = 0.03


class Pair(BaseModel):
    """One estimate and its measurement (tokens per second)."""

    model_config = ConfigDict(frozen=True)

    estimate: float
    measured: float
    source: str
    configuration: str


class Fidelity(BaseModel):
    """Agreement of estimates with measurements over ``rows`` pairs."""

    model_config = ConfigDict(frozen=True)

    rows: int
    median_abs_error: float
    ratio_p10: float
    ratio_median: float
    ratio_p90: float
    spearman: float
    pairs: int
    pairs_ordered: int

    @property
    def ordered_share(self) -> float:
        return self.pairs_ordered / self.pairs if self.pairs else float("nan")


def ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank (what Spearman's coefficient needs)."""
    array = np.asarray(values, dtype=float)
    order = np.argsort(array, kind="stable")
    result = np.empty(len(array))
    sorted_values = array[order]
    start = 0
    while start < len(array):
        stop = start
        while stop + 1 < len(array) and sorted_values[stop + 1] == sorted_values[start]:
            stop += 1
        result[order[start : stop + 1]] = (start + stop) / 2 + 1
        start = stop + 1
    return result


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson's on tie-averaged ranks); nan below 2 points."""
    if len(a) < 2:
        return float("nan")
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def ordered_pairs(pairs: Sequence[Pair]) -> tuple[int, int]:
    """(countable same-source configuration pairs, those the estimates order as measured)."""
    by_source: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_source.setdefault(pair.source, []).append(pair)
    counted = ordered = 0
    for group in by_source.values():
        for a, b in itertools.combinations(group, 2):
            if a.configuration == b.configuration:
                continue
            if abs(a.measured - b.measured) <= TIE_FRACTION * max(a.measured, b.measured):
                continue
            counted += 1
            ordered += (a.estimate - b.estimate) * (a.measured - b.measured) > 0
    return counted, ordered


def fidelity(pairs: Sequence[Pair]) -> Fidelity | None:
    """The agreement numbers of ``pairs``, or None when there are none."""
    if not pairs:
        return None
    estimate = np.array([p.estimate for p in pairs])
    measured = np.array([p.measured for p in pairs])
    ratio = estimate / measured
    counted, ordered = ordered_pairs(pairs)
    return Fidelity(
        rows=len(pairs),
        median_abs_error=float(np.median(np.abs(ratio - 1.0))),
        ratio_p10=float(np.percentile(ratio, 10)),
        ratio_median=float(np.median(ratio)),
        ratio_p90=float(np.percentile(ratio, 90)),
        spearman=spearman(estimate, measured),
        pairs=counted,
        pairs_ordered=ordered,
    )


# --- the interval every printed speed carries ---------------------------------------------------

INTERVALS_FILE = ("speed_intervals.json",)
INTERVALS_COMMAND = "python -m benchmarks.speed_intervals"


class SpeedInterval(BaseModel):
    """How far measured speeds fell from fit's estimates on one split of the corpus, for one
    speed (decode or prefill): the p10 / p90 of estimate / measured, so that a new estimate
    ``e`` stands for a measured speed between ``e / ratio_p90`` and ``e / ratio_p10`` on 8 of 10
    rigs like the corpus's. ``kinds`` says which launches the rows were (full-GPU dense ...)."""

    model_config = ConfigDict(frozen=True)

    rows: int
    ratio_p10: float
    ratio_p90: float
    median_abs_error: float
    kinds: dict[str, int]

    def bounds(self, estimate: float) -> tuple[float, float]:
        """(low, high) measured speed for ``estimate``: the p10-p90 of the corpus's rows."""
        return estimate / self.ratio_p90, estimate / self.ratio_p10

    @classmethod
    def of(cls, found: Fidelity, kinds: dict[str, int]) -> SpeedInterval:
        return cls(
            rows=found.rows, ratio_p10=round(found.ratio_p10, 4),
            ratio_p90=round(found.ratio_p90, 4),
            median_abs_error=round(found.median_abs_error, 4), kinds=kinds,
        )  # fmt: skip


class SpeedIntervals(BaseModel):
    """The intervals of decode and prefill: from the training split (the rows the defaults
    were fitted on, so in-sample) and, to say how much wider they are out of sample, from the
    test split."""

    model_config = ConfigDict(frozen=True)

    command: str = INTERVALS_COMMAND
    decode: SpeedInterval
    prefill: SpeedInterval
    test_decode: SpeedInterval | None = None
    test_prefill: SpeedInterval | None = None

    def estimate_json(
        self, decode_tps: float | None, prefill_tps: float | None
    ) -> dict[str, object]:
        """``"estimate"`` of a ``--json`` document: the speeds, their p10-p90 intervals and
        what the intervals are drawn from."""
        return {
            "decode_tps": decode_tps,
            "prefill_tps": prefill_tps,
            "decode_interval": _rounded(self.decode, decode_tps),
            "prefill_interval": _rounded(self.prefill, prefill_tps),
            "interval": self.describe_json(),
        }

    def describe_json(self) -> dict[str, object]:
        return {
            "percentiles": [10, 90],
            "decode_rows": self.decode.rows,
            "prefill_rows": self.prefill.rows,
            "decode_kinds": self.decode.kinds,
            "prefill_kinds": self.prefill.kinds,
            "split": "train (the rows the coefficients were fitted on)",
            "command": self.command,
        }


def _rounded(interval: SpeedInterval, value: float | None) -> list[float] | None:
    if value is None:
        return None
    low, high = interval.bounds(value)
    return [round(low, 3), round(high, 3)]


@cache
def corpus_intervals() -> SpeedIntervals:
    """The intervals stored in ``data/speed_intervals.json`` (``INTERVALS_COMMAND`` writes it)."""
    return SpeedIntervals.model_validate_json(read_data_text(*INTERVALS_FILE))
