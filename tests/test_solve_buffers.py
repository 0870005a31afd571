"""Buffers that depend on the plan (issue 11): a small model on two small devices whose compute
buffers are comparable to their budget.

A synthetic llama (8 layers, 512 wide, a 32K vocabulary: 36 MiB of Q4_K_M) on two 40 MiB RPC
devices at a 4K context. The first GPU of a full offload needs a 41 MiB compute buffer, so the
old model, which charged every GPU the largest buffer seen, put nothing on them (``-ngl 0``).
A device running a few layers without the head needs far less (the replay says 8-15 MiB), and
with buffers a function of what each device runs the plan uses both devices, within budget by
the memory model (replayed here) and, launched for real, by the RPC servers' own allocations.
"""

from __future__ import annotations

import pytest

from profiles.rigs import loopback_rpc_rig
from solver.gguf.sources import load_inventory
from solver.gguf.synthetic import tiny_blueprint
from solver.placement.cpsat import SolveStatus
from solver.placement.setting import resolve_setting
from solver.placement.solve import SCENARIO_CPU, SolveRequest, plan_report, solve
from solver.quantities import CPU, GIB, MIB

SMALL = tiny_blueprint("llama").model_copy(
    update={"name": "fit-small-buffers", "n_layer": 8, "n_embd": 512, "n_head": 8,
            "n_head_kv": 4, "n_ff": 1536, "n_vocab": 32000}
)  # fmt: skip
BUDGET = 40 * MIB
REQUEST = SolveRequest(
    contexts=(4096,), n_ubatch=512, gpu_margin_bytes=0, ram_reserve_bytes=0, flash_attn="on"
)
ENDPOINTS = ["127.0.0.1:50052", "127.0.0.1:50053"]  # not contacted unless launched


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory):
    from solver.gguf.synthetic import write_synthetic_gguf

    path = tmp_path_factory.mktemp("small") / "fit-small-buffers.gguf"
    write_synthetic_gguf(SMALL, "Q4_K_M", path, sparse=True)
    return path


def test_weights_go_to_devices_whose_buffers_are_near_their_budget(small_model) -> None:
    inventory = load_inventory(str(small_model))
    hardware = loopback_rpc_rig(ENDPOINTS, BUDGET)
    report = solve(inventory, hardware, REQUEST)
    assert report.status is SolveStatus.OPTIMAL, report
    assert report.plan is not None and report.plan.n_gpu_layers > 0, report.args
    for name in ("RPC0", "RPC1"):
        device = report.devices[name]
        assert device.weights > 0, (name, report.args)
        assert device.resident <= device.budget == BUDGET, (name, device)
    # the memory model on the printed arguments, replayed afresh, says the same
    setting = resolve_setting(inventory, hardware, REQUEST, 4096, "f16")
    memory = plan_report(inventory, hardware, setting, report.plan, SCENARIO_CPU)
    for name, device in memory.devices.items():
        assert device.total == report.devices[name].total
        if name != CPU:
            assert device.total <= BUDGET
    # what the model assumed for each device's combination covers what its replay gave
    for name, device in report.devices.items():
        assert device.runs, name
        assert device.assumed_buffers >= device.compute + device.output, (name, device)


def test_the_old_charge_would_have_left_the_devices_empty(small_model) -> None:
    """The premise: the largest GPU buffer (a full offload's first GPU) exceeds the budget."""
    inventory = load_inventory(str(small_model))
    hardware = loopback_rpc_rig(ENDPOINTS, BUDGET)
    roomy = solve(inventory, loopback_rpc_rig(ENDPOINTS, 4 * GIB), REQUEST)
    assert roomy.plan is not None and roomy.plan.n_cpu_layers == 0  # a full offload
    largest = max(d.compute + d.output for n, d in roomy.devices.items() if n != CPU)
    assert largest > BUDGET - 2 * MIB, largest
    tight = solve(inventory, hardware, REQUEST)
    assert all(tight.devices[g].compute < largest for g in ("RPC0", "RPC1"))


def test_the_loop_learns_buffers_both_ways(tmp_path) -> None:
    """A gemma3 of the same size on two 50 MiB devices: the first plan's replay gives the host
    smaller buffers than assumed (so the model is solved again with the room it frees) and a
    device larger ones than assumed (over budget, so solved again); a later plan fits."""
    from solver.gguf.synthetic import write_synthetic_gguf

    blueprint = tiny_blueprint("gemma3").model_copy(
        update={"name": "fit-small-gemma3", "n_layer": 8, "n_embd": 512, "n_head": 8,
                "n_head_kv": 4, "n_ff": 1536, "n_vocab": 32000}
    )  # fmt: skip
    path = tmp_path / "fit-small-gemma3.gguf"
    write_synthetic_gguf(blueprint, "Q4_K_M", path, sparse=True)
    report = solve(load_inventory(str(path)), loopback_rpc_rig(ENDPOINTS, 50 * MIB), REQUEST)
    assert report.status is SolveStatus.OPTIMAL and report.rounds >= 2, report.decisions
    learned = [d for d in report.decisions if d.action == "learned buffers"]
    assert any(d.to_mib < d.from_mib and d.over_mib <= 0 for d in learned), learned
    assert any(d.to_mib > d.from_mib and d.over_mib > 0 for d in learned), learned
    assert all(d.round < report.rounds for d in report.decisions)
    for name in ("RPC0", "RPC1"):
        device = report.devices[name]
        assert device.weights > 0 and device.resident <= device.budget, (name, device)


@pytest.mark.llama
@pytest.mark.slow
def test_the_plan_fits_the_rpc_servers_for_real(small_model, rpc_servers, run_llama) -> None:
    inventory = load_inventory(str(small_model))
    hardware = loopback_rpc_rig(list(rpc_servers.endpoints), BUDGET)
    report = solve(inventory, hardware, REQUEST)
    assert report.plan is not None and report.plan.n_gpu_layers > 0, report.args
    run = run_llama(small_model, *report.args, "--no-warmup", "-t", "2", rpc=rpc_servers)
    for name in ("RPC0", "RPC1"):
        allocated = run.rpc_allocations[name]
        total = sum(allocated.model) + sum(allocated.kv) + allocated.compute_bytes
        assert total == report.devices[name].total, (name, allocated, report.devices[name])
        assert total <= BUDGET, (name, total / MIB)
