"""Speed fidelity on the committed public corpus (no network): fit's default coefficients price
every priceable row as its exact command, and the test split (sources the fit never saw) must
keep the numbers the corpus fit reached (``python -m benchmarks.speed_fidelity`` prints them).

Issue 12's targets are decode median |error| <= 15%, p90 estimate/measured <= 1.35, >= 90% of
same-source configuration pairs ordered, prefill median |error| <= 20%; all are met on the test
split (181 prefill rows: 19%). The prefill tail stays wide (p90 3.1: Radeon 8060S ROCm builds
with and without hipBLASLt differ 4.7x, which fit cannot see).
"""

from __future__ import annotations

import numpy as np
import pytest

from solver.cost.corpus import Split, load_corpus
from solver.cost.corpus_fit import DecodeObservation, DeviceUse, fit_decode, nnls
from solver.cost.fidelity import Fidelity, Pair, fidelity, ordered_pairs, spearman
from solver.cost.model import SPEC_SHEET_COEFFICIENTS, CostCoefficients
from solver.placement.corpus_pricing import CorpusPricing, price_corpus


@pytest.fixture(scope="module")
def pricing() -> CorpusPricing:
    return price_corpus(load_corpus(), CostCoefficients())


def _fidelity(pricing: CorpusPricing, split: Split, speed: str) -> Fidelity:
    pairs = []
    for row in pricing.priced:
        measured = getattr(row, f"measured_{speed}_tps")
        estimate = row.decode_tps if speed == "decode" else row.prefill_tps
        if row.split is split and measured is not None and estimate is not None:
            pairs.append(
                Pair(
                    estimate=estimate,
                    measured=measured,
                    source=row.source_url,
                    configuration=row.configuration,
                )
            )
    found = fidelity(pairs)
    assert found is not None
    return found


def test_test_split_decode_meets_the_issue_targets(pricing: CorpusPricing) -> None:
    decode = _fidelity(pricing, Split.TEST, "decode")
    assert decode.rows >= 170
    assert decode.median_abs_error <= 0.08  # achieved 6%; issue target 15%
    assert decode.ratio_p90 <= 1.3  # achieved 1.20; issue target 1.35
    assert decode.ratio_p10 >= 0.85 and decode.ratio_median <= 1.08
    assert decode.spearman >= 0.85
    assert decode.pairs >= 40 and decode.ordered_share >= 0.95  # issue target 90%


def test_test_split_prefill_meets_the_issue_target(pricing: CorpusPricing) -> None:
    prefill = _fidelity(pricing, Split.TEST, "prefill")
    assert prefill.rows >= 170
    assert prefill.median_abs_error <= 0.20  # achieved 19%; issue target 20%
    assert prefill.spearman >= 0.88
    assert prefill.ordered_share >= 0.85


def test_train_split_is_fitted_closely(pricing: CorpusPricing) -> None:
    decode = _fidelity(pricing, Split.TRAIN, "decode")
    prefill = _fidelity(pricing, Split.TRAIN, "prefill")
    assert decode.median_abs_error <= 0.04 and decode.ratio_p90 <= 1.15
    assert prefill.median_abs_error <= 0.15


def test_the_fit_beats_the_spec_sheet_on_the_test_split(pricing: CorpusPricing) -> None:
    before = price_corpus(
        [row for row in load_corpus() if row.split is Split.TEST], SPEC_SHEET_COEFFICIENTS
    )
    for speed in ("decode", "prefill"):
        old, new = _fidelity(before, Split.TEST, speed), _fidelity(pricing, Split.TEST, speed)
        assert new.median_abs_error < old.median_abs_error, speed


def test_rows_fit_cannot_price_are_set_aside_by_reason(pricing: CorpusPricing) -> None:
    reasons = pricing.reasons()
    assert set(reasons) == {
        "model not in fit's catalogue",
        "GPU not in data/gpus.csv",
        "flags incomplete (the source leaves one open)",
        "split mode row (fit prices -sm layer)",
    }
    missing = {d for item in reasons["GPU not in data/gpus.csv"] for d in item.detail.split(", ")}
    assert missing == {
        "Apple M1", "Apple M3", "RTX 3070", "RTX 3080 Ti", "Radeon AI PRO R9700",
        "Radeon PRO W7800",
    }  # fmt: skip
    assert len(pricing.priced) >= 300  # issue 12: at least 300 rows each priceable by fit
    priced = {row.row for row in pricing.priced}
    assert priced.isdisjoint(item.row for item in pricing.unpriced)
    assert len(priced) + len(pricing.unpriced) == len(load_corpus())


def test_pairs_skip_ties_and_repeats_of_one_configuration() -> None:
    def pair(estimate: float, measured: float, configuration: str, source: str = "s") -> Pair:
        return Pair(
            estimate=estimate, measured=measured, source=source, configuration=configuration
        )

    pairs = [
        pair(10, 10, "a"),
        pair(12, 10.1, "b"),  # within 3% of a: a tie, not counted
        pair(9, 20, "c"),  # against a: ordered wrongly; against b: wrongly
        pair(30, 30, "c"),  # same configuration as the one above: a repeat
        pair(1, 50, "d", source="other"),  # another source
    ]
    counted, ordered = ordered_pairs(pairs)
    # countable: a-c(9), a-c(30), b-c(9), b-c(30) -> ordered: a-c(30), b-c(30)
    assert (counted, ordered) == (4, 2)
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)


def test_nnls_matches_the_exhaustive_solution() -> None:
    from solver.cost.calibrate import nnls as exhaustive

    rng = np.random.default_rng(3)
    for _ in range(50):
        matrix = rng.normal(size=(12, 5))
        target = rng.normal(size=12)
        mine, exact = nnls(matrix, target), exhaustive(matrix, target)
        assert np.linalg.norm(matrix @ mine - target) == pytest.approx(
            np.linalg.norm(matrix @ exact - target), abs=1e-9
        )


def test_decode_fit_recovers_the_coefficients_that_made_the_rows() -> None:
    rng = np.random.default_rng(5)
    true = {"u": 1.25, "layer": 60e-6, "moe": 40e-6, "kv": 2.0, "split": 30e-6}
    rows = []
    for i in range(40):
        weight, kv = rng.uniform(1e-3, 20e-3), rng.uniform(0, 3e-3)
        layers, moe, splits = int(rng.integers(10, 80)), int(rng.integers(0, 48)), i % 4
        seconds = (
            true["u"] * weight + true["kv"] * kv + true["layer"] * layers
            + true["moe"] * moe + true["split"] * splits
        )  # fmt: skip
        rows.append(
            DecodeObservation(
                source=f"s{i % 8}",
                seconds=seconds,
                gpus=(DeviceUse(name="G", architecture="A", weight_seconds=weight, layers=layers),),
                dram="DDR5",
                cpu_bytes_seconds=0.0,
                cpu_flops_per_thread=0.0,
                kv_seconds=kv,
                flash_attn=True,
                gpu_layers=layers,
                gpu_moe_layers=moe,
                cpu_layers=0,
                cpu_moe_layers=0,
                splits=splits,
                fixed_seconds=0.0,
            )
        )
    theta, residuals = fit_decode(rows)
    assert max(abs(r) for r in residuals) < 1e-6
    assert theta["bw:gpu:G"] == pytest.approx(true["u"], rel=1e-4)
    assert theta["gpu_layer"] == pytest.approx(true["layer"], rel=1e-3)
    assert theta["gpu_moe"] == pytest.approx(true["moe"], rel=1e-3)
    assert theta["kv_fa"] == pytest.approx(true["kv"], rel=1e-3)
    assert theta["split"] == pytest.approx(true["split"], rel=1e-2)
