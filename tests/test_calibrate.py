"""Calibration: the NNLS fit starts from the corpus-fitted prior, moves a little with few runs
and recovers the coefficients that generated the timings with many, and fits fewer parameters
when the runs cannot tell them apart."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from solver.cost.calibrate import (
    HOST_GROUP,
    PrefillSample,
    RunSamples,
    TokenSample,
    calibrate,
    machine_id,
    nnls,
)
from solver.cost.model import CostCoefficients, device_rates
from solver.errors import OperationFailed
from solver.hardware.scenario import load_hardware

HOST_ONLY = load_hardware("reference").model_copy(update={"gpus": ()})
TRUE_BW = {"CPU": 20e9, "RPC0": 10e9, "RPC1": 5e9}
TRUE_SPLIT, TRUE_OVERHEAD = 300e-6, 2e-3
TRUE_FLOPS = 40e9


def _run(name: str, bytes_read: dict[str, float], splits: int) -> RunSamples:
    seconds = sum(b / TRUE_BW[d] for d, b in bytes_read.items())
    seconds += splits * TRUE_SPLIT + TRUE_OVERHEAD
    flops = {d: 2 * b for d, b in bytes_read.items()}
    prompt_seconds = sum(flops.values()) / TRUE_FLOPS
    return RunSamples(
        run=name,
        decode=(
            TokenSample(tokens=32, seconds=32 * seconds, bytes_read=bytes_read, splits=splits),
        ),
        prefill=(PrefillSample(tokens=300, seconds=300 * prompt_seconds, flops_per_token=flops),),
    )


def _distinct_runs(n: int) -> list[RunSamples]:
    rng = np.random.default_rng(7)
    runs = []
    for i in range(n):
        # different models and placements: the total read per token differs too (runs of
        # one model alone cannot tell bandwidth from overhead, see the next test)
        share = rng.dirichlet([1, 1, 1]) * rng.uniform(100e6, 400e6)
        runs.append(_run(f"r{i}", dict(zip(TRUE_BW, share, strict=True)), int(rng.integers(0, 40))))
    return runs


def test_many_runs_recover_every_coefficient() -> None:
    # the prior (the coefficients calibration starts from) weighs PRIOR_RUNS runs: two hundred
    # runs outweigh it, and the fit lands on the machine's own numbers (the per-token overhead,
    # which the runs tell least well from bandwidth, the slowest)
    result = calibrate(_distinct_runs(200), HOST_ONLY, machine="m")
    measured = result.coefficients.measured
    for device, bandwidth in TRUE_BW.items():
        assert measured[device].bandwidth_bytes_per_s == pytest.approx(bandwidth, rel=0.04)
        assert measured[device].flops == pytest.approx(TRUE_FLOPS, rel=0.02)
    assert result.coefficients.split_latency_s == pytest.approx(TRUE_SPLIT, rel=0.03)
    assert result.coefficients.token_overhead_s == pytest.approx(TRUE_OVERHEAD, rel=0.3)
    assert result.grouping == {d: d for d in TRUE_BW}
    assert result.errors.decode_after is not None and result.errors.decode_after < 0.01
    assert result.errors.decode_before is not None and result.errors.decode_before > 0.1


def _moved(n_runs: int) -> float:
    """How far n runs of a machine whose host reads at half the prior's bandwidth move the
    calibrated bandwidth from the prior toward it: 0 = not at all, 1 = all the way."""
    prior = device_rates(HOST_ONLY, CostCoefficients())["CPU"].bandwidth_bytes_per_s
    runs = []
    for i in range(n_runs):
        n_bytes = 100e6 + 50e6 * i  # models of different sizes
        seconds = n_bytes / (prior / 2) + CostCoefficients().token_overhead_s
        runs.append(
            RunSamples(
                run=f"r{i}",
                decode=(TokenSample(tokens=64, seconds=64 * seconds, bytes_read={"CPU": n_bytes},
                                    splits=0),),
            )
        )  # fmt: skip
    fitted = calibrate(runs, HOST_ONLY, machine="m").coefficients.measured["CPU"]
    return (1 / fitted.bandwidth_bytes_per_s - 1 / prior) / (2 / prior - 1 / prior)


def test_few_runs_move_the_prior_a_little_and_many_all_the_way() -> None:
    # PRIOR_RUNS = 4: one run moves a fifth of the way, two a quarter, a hundred nearly all
    one, two, many = _moved(1), _moved(2), _moved(100)
    assert 0.1 < one <= 0.21 and one < two < 0.3
    assert many > 0.93


def test_too_few_runs_pool_the_host_devices_and_say_so() -> None:
    # two runs cannot determine five unknowns: one host bandwidth + overhead is what is left
    result = calibrate(_distinct_runs(2), HOST_ONLY, machine="m")
    assert set(result.grouping.values()) == {HOST_GROUP}
    assert "split_latency_s" not in result.fitted
    assert any("not fitted: per-device" in note for note in result.notes)
    rates = {r.bandwidth_bytes_per_s for r in result.coefficients.measured.values()}
    # between what the runs say and the prior they start from
    prior = device_rates(HOST_ONLY, CostCoefficients())["CPU"].bandwidth_bytes_per_s
    assert len(rates) == 1 and min(TRUE_BW.values()) <= rates.pop() <= prior


def test_one_model_in_many_placements_cannot_split_bandwidth_from_overhead() -> None:
    # every placement of one model reads the same bytes per token in total, so a pooled
    # bandwidth and a per-token overhead trade off exactly: only the bandwidth is fitted
    runs = [
        _run(f"p{i}", {"CPU": 250e6 * (1 - f), "RPC0": 250e6 * f}, 0)
        for i, f in enumerate((0.0, 0.3, 0.6, 0.9))
    ]
    hosts = load_hardware("reference").model_copy(update={"gpus": ()})
    result = calibrate(runs, hosts, machine="m")
    assert result.fitted[:1] == (f"bandwidth[{HOST_GROUP}]",)
    assert "token_overhead_s" not in result.fitted
    assert any("pooled host bandwidth, overhead" in note for note in result.notes)


def test_one_run_of_one_device_fits_its_bandwidth_only() -> None:
    result = calibrate([_run("only", {"CPU": 200e6}, 0)], HOST_ONLY, machine="m")
    assert result.fitted[0] == f"bandwidth[{HOST_GROUP}]"
    assert "token_overhead_s" not in result.fitted  # kept at its previous value
    assert result.coefficients.token_overhead_s == CostCoefficients().token_overhead_s


def test_no_runs_is_an_operation_failure() -> None:
    with pytest.raises(OperationFailed, match="fit test"):
        calibrate([], HOST_ONLY, machine="m")


def test_nnls_meets_the_optimality_conditions() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        matrix = rng.normal(size=(9, 4))
        target = rng.normal(size=9)
        x = nnls(matrix, target)
        gradient = matrix.T @ (matrix @ x - target)
        assert np.all(x >= 0)
        # KKT: zero gradient on the support, non-negative gradient off it
        assert np.allclose(gradient[x > 0], 0, atol=1e-8)
        assert np.all(gradient[x == 0] >= -1e-8)
        # and no other sign pattern does better
        for signs in itertools.product([0, 1], repeat=4):
            columns = [i for i, s in enumerate(signs) if s]
            if not columns:
                continue
            y, *_ = np.linalg.lstsq(matrix[:, columns], target, rcond=None)
            if np.all(y >= 0):
                full = np.zeros(4)
                full[columns] = y
                assert (
                    np.linalg.norm(matrix @ x - target)
                    <= np.linalg.norm(matrix @ full - target) + 1e-9
                )


def test_machine_id_changes_with_the_gpus() -> None:
    assert machine_id([]) == machine_id([])
    assert machine_id([]) != machine_id(["NVIDIA GeForce RTX 4090"])
