"""A launch's own placement is priced exactly as the solver prices the Plan behind it."""

from __future__ import annotations

from pathlib import Path

import pytest

from solver.cost.model import CostCoefficients, DeviceRates, estimate_cost, part_devices
from solver.gguf.sources import load_inventory
from solver.hardware.scenario import load_hardware
from solver.llama.args import parse_llama_args
from solver.llama.memory import estimate_memory
from solver.placement.launch_cost import LaunchPredictor, launch_part_devices, price_launch
from solver.placement.setting import SolveRequest, resolve_setting
from solver.plan.plan import Plan
from solver.plan.render import placement_args
from solver.plan.units import Unit
from solver.quantities import CPU


@pytest.fixture(scope="module")
def gemma(gemma_gguf: Path):
    return load_inventory(str(gemma_gguf))


def _plan(n_layers: int) -> Plan:
    dense_on_cpu = tuple(CPU if 3 <= il <= 5 else None for il in range(n_layers))
    return Plan(
        gpus=("CUDA0", "CUDA1"),
        n_layers=n_layers,
        gpu_layers=(8, n_layers - 10),
        output_device="CUDA1",
        overrides={Unit.FFN_DENSE: dense_on_cpu},
    )


def test_launch_placement_prices_like_the_plan_it_renders(gemma) -> None:
    hardware = load_hardware("reference")
    plan = _plan(gemma.n_layers)
    request = SolveRequest(contexts=(4096,))
    setting = resolve_setting(gemma, hardware, request, 4096, "f16", CostCoefficients())
    args = [*setting.base_args, *placement_args(plan)]
    config = parse_llama_args(args, gpu_buffers=["CUDA0", "CUDA1"])
    report = estimate_memory(gemma, config, hardware=hardware)

    parts, mixed = launch_part_devices(
        gemma, report.placement.tensor_devices, report.placement.layer_devices
    )
    assert parts == part_devices(plan) and mixed == 0

    priced = price_launch(gemma, config, report, hardware)
    expected = estimate_cost(plan, setting.tables)
    assert priced.estimate.decode_tps == pytest.approx(expected.decode_tps, rel=1e-12)
    assert priced.estimate.prefill_tps == pytest.approx(expected.prefill_tps, rel=1e-12)
    assert priced.estimate.splits_per_token == expected.splits_per_token
    assert priced.rate_sources == {
        "CPU": "host rate (not calibrated)",
        "CUDA0": "corpus fit",
        "CUDA1": "corpus fit",
    }


def test_rpc_devices_take_the_host_rate_until_calibrated(gemma) -> None:
    hardware = load_hardware("reference").model_copy(update={"gpus": ()})
    args = ["-c", "1024", "-np", "1", "--fit", "off", "--rpc", "127.0.0.1:1,127.0.0.1:2"]
    predictor = LaunchPredictor(gemma, hardware)
    config, report = predictor.memory([*args, "-ngl", "99", "-ts", "1,1"])
    cost = predictor.cost(config, report)
    assert set(cost.rate_sources) == {"CPU", "RPC0", "RPC1"}
    assert set(cost.rate_sources.values()) == {"host rate (not calibrated)"}
    # every byte a token reads is on some device: the whole model but the input embedding
    # rows, plus the tied output head (a copy of token_embd) on the last device
    embd = next(t.n_bytes for t in gemma.tensors if t.name == "token_embd.weight")
    assert sum(cost.loads.bytes_read.values()) == pytest.approx(gemma.total_bytes, rel=1e-9)
    assert cost.loads.bytes_read["RPC1"] > embd

    # a calibrated host rate halves the bandwidth: the bytes part of the decode time doubles
    slow = DeviceRates(bandwidth_bytes_per_s=1e9, flops=1e11, link_bytes_per_s=float("inf"))
    calibrated = LaunchPredictor(
        gemma, hardware, CostCoefficients(measured={CPU: slow, "RPC0": slow})
    )
    priced = calibrated.cost(config, report)
    assert priced.rate_sources == {
        "CPU": "calibrated",
        "RPC0": "calibrated",
        "RPC1": "host rate (calibrated)",
    }
    seconds = priced.estimate.decode_seconds_by_device
    assert sum(seconds.values()) == pytest.approx(sum(cost.loads.bytes_read.values()) / 1e9)


def test_memory_shortfalls_name_the_device(gemma) -> None:
    hardware = load_hardware("reference")
    predictor = LaunchPredictor(gemma, hardware)
    _, fits = predictor.memory(["-c", "4096", "-ngl", "99", "--fit", "off"])
    assert predictor.shortfalls(fits) == []
    _, huge = predictor.memory(["-c", str(2**24), "-np", "1", "-ngl", "99", "--fit", "off"])
    problems = predictor.shortfalls(huge)
    assert problems and all("budget" in p for p in problems)


def test_a_rig_of_rpc_devices_prices_their_own_arguments(gemma) -> None:
    from profiles.rigs import loopback_rpc_rig  # the rig of the tests on RPC devices

    hardware = loopback_rpc_rig(["127.0.0.1:1", "127.0.0.1:2"], 300 * 2**20)
    predictor = LaunchPredictor(gemma, hardware)
    rpc = ["--rpc", "127.0.0.1:1,127.0.0.1:2", "-c", "1024", "-np", "1", "--fit", "off"]
    # the rig's GPUs are the --rpc devices, not two more: without -ts llama.cpp splits by the
    # free memory they report, equal here, and -ot names them by their buffer types
    ot = r"blk\.0\.ffn_.*=RPC0[127.0.0.1:1]"
    config, report = predictor.memory([*rpc, "-ngl", "99", "-ot", ot])
    assert set(report.devices) == {CPU, "RPC0", "RPC1"}
    assert report.placement.tensor_devices["blk.0.ffn_up.weight"] == "RPC0"
    # 19 slots (18 layers, then the output) split 1:1: 10 layers, then 8 and the output
    assert report.placement.layer_devices[:18] == ("RPC0",) * 10 + ("RPC1",) * 8
    assert report.placement.output_device == "RPC1"
    # priced as the rig's GPUs, not at the host's rate as an RPC device outside the rig is
    sources = predictor.cost(config, report).rate_sources
    assert sources[CPU].startswith("host rate")
    assert sources["RPC0"] == sources["RPC1"] and not sources["RPC0"].startswith("host rate")
