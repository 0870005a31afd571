"""Calibration: the NNLS fit recovers coefficients that generated the timings, and fits
fewer parameters when the runs cannot tell them apart."""

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
from solver.cost.model import CostCoefficients
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


def test_enough_runs_recover_every_coefficient() -> None:
    result = calibrate(_distinct_runs(8), HOST_ONLY, machine="m")
    measured = result.coefficients.measured
    for device, bandwidth in TRUE_BW.items():
        assert measured[device].bandwidth_bytes_per_s == pytest.approx(bandwidth, rel=1e-6)
        assert measured[device].flops == pytest.approx(TRUE_FLOPS, rel=1e-6)
    assert result.coefficients.split_latency_s == pytest.approx(TRUE_SPLIT, rel=1e-6)
    assert result.coefficients.token_overhead_s == pytest.approx(TRUE_OVERHEAD, rel=1e-6)
    assert result.grouping == {d: d for d in TRUE_BW}
    assert result.errors.decode_after == pytest.approx(0, abs=1e-9)
    assert result.errors.decode_before is not None and result.errors.decode_before > 0.1


def test_too_few_runs_pool_the_host_devices_and_say_so() -> None:
    # two runs cannot determine five unknowns: one host bandwidth + overhead is what is left
    result = calibrate(_distinct_runs(2), HOST_ONLY, machine="m")
    assert set(result.grouping.values()) == {HOST_GROUP}
    assert "split_latency_s" not in result.fitted
    assert any("not fitted: per-device" in note for note in result.notes)
    rates = {r.bandwidth_bytes_per_s for r in result.coefficients.measured.values()}
    assert len(rates) == 1 and min(TRUE_BW.values()) <= rates.pop() <= max(TRUE_BW.values())


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
