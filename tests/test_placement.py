"""The CP-SAT placement against exhaustive search, and against the baselines it must beat."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from solver.cost.model import Objective, Workload, build_cost_tables
from solver.hardware.scenario import Gpu, GpuSpec, Hardware, Host
from solver.placement.baselines import BASELINES
from solver.placement.buffers import (
    HOST,
    HOST_UNITS,
    LAYERS,
    BufferTable,
    combination,
    own_features,
)
from solver.placement.cpsat import (
    PlacementProblem,
    SolveStatus,
    fits,
    plan_seconds,
    solve_placement,
)
from solver.plan.plan import Plan
from solver.plan.units import LayerTable, Unit
from solver.quantities import CPU, GIB, MIB

UNITS = tuple(Unit)
COLUMN = {unit: i for i, unit in enumerate(UNITS)}


def gpu(device: str, vram: int, bandwidth: float) -> Gpu:
    spec = GpuSpec(
        name=device, vram_bytes=vram, bandwidth_bytes_per_s=bandwidth, fp16_flops=50e12,
        pcie_gen=4, pcie_lanes=16,
    )  # fmt: skip
    return Gpu(device=device, spec=spec, pcie_gen=4, pcie_lanes=16)


def random_problem(rng: random.Random, n_layers: int, objective: Objective) -> PlacementProblem:
    """A small MoE-like model (some dense layers first) on CPU + two GPUs, memory binding."""
    stored = np.zeros((n_layers, len(UNITS)), dtype=np.int64)
    for il in range(n_layers):
        stored[il, COLUMN[Unit.ATTENTION]] = rng.randint(20, 60) * MIB
        if il < rng.randint(0, 1):
            stored[il, COLUMN[Unit.FFN_DENSE]] = rng.randint(100, 300) * MIB
        else:
            stored[il, COLUMN[Unit.EXPERTS]] = rng.randint(400, 900) * MIB
            stored[il, COLUMN[Unit.SHARED_EXPERTS]] = rng.randint(20, 80) * MIB
    read = stored.astype(float)
    read[:, COLUMN[Unit.EXPERTS]] *= 0.125
    table = LayerTable(
        units=UNITS,
        stored=stored,
        read_per_token=read,
        params=stored * 2,
        pinned=np.full(n_layers, MIB, dtype=np.int64),
        pinned_params=np.full(n_layers, MIB, dtype=np.int64),
        global_bytes={"token_embd.weight": 64 * MIB, "output.weight": 96 * MIB},
    )
    total = int(stored.sum())
    hardware = Hardware(
        name="random",
        gpus=(gpu("CUDA0", GIB, 900e9), gpu("CUDA1", GIB, 700e9)),
        host=Host(ram_bytes=64 * GIB, bandwidth_bytes_per_s=60e9, cores=8),
    )
    workload = Workload(
        n_embd=2048,
        kv_bytes_per_position=(4096,) * n_layers,
        attention_flops_per_position=(8192.0,) * n_layers,
        n_ubatch=rng.choice((1, 512)),
    )
    tables = build_cost_tables(table, hardware, workload)
    return PlacementProblem(
        devices=tuple(hardware.device_names),
        capacity={
            CPU: 64 * GIB,
            "CUDA0": int(total * rng.uniform(0.2, 0.6)),
            "CUDA1": int(total * rng.uniform(0.1, 0.4)),
        },
        table=table,
        tables=tables,
        kv_bytes=tuple(rng.randint(1, 40) * MIB for _ in range(n_layers)),
        output_bytes=96 * MIB,
        fixed_bytes={CPU: 64 * MIB, "CUDA0": 50 * MIB, "CUDA1": 30 * MIB},
        objective=objective,
    )


def every_plan(problem: PlacementProblem):
    """All plans llama-server can express for this problem (small instances only)."""
    n_layers = problem.table.stored.shape[0]
    devices = problem.devices
    gpus = devices[1:]
    movable = [
        [g for g in (Unit.FFN_DENSE, Unit.EXPERTS, Unit.SHARED_EXPERTS)
         if problem.table.stored[il, COLUMN[g]] > 0]
        for il in range(n_layers)
    ]  # fmt: skip
    for sizes in itertools.product(range(n_layers + 1), repeat=len(gpus)):
        if sum(sizes) > n_layers:
            continue
        layer_devices = [CPU] * (n_layers - sum(sizes))
        for g, size in zip(gpus, sizes, strict=True):
            layer_devices += [g] * size
        holding = [i for i, size in enumerate(sizes) if size]
        outputs = (
            [CPU, *gpus] if not holding else list(gpus[holding[-1] :])
        )  # the head is the last -ngl slot
        choices = [itertools.product(devices, repeat=len(units)) for units in movable]
        for patterns in itertools.product(*choices):
            overrides = {}
            for g in (Unit.FFN_DENSE, Unit.EXPERTS, Unit.SHARED_EXPERTS):
                moved = [None] * n_layers
                for il, units in enumerate(movable):
                    if g in units:
                        target = patterns[il][units.index(g)]
                        moved[il] = target if target != layer_devices[il] else None
                if any(moved):
                    overrides[g] = tuple(moved)
            for output in outputs:
                yield Plan(
                    gpus=gpus, n_layers=n_layers, gpu_layers=sizes, output_device=output,
                    overrides=overrides,
                )  # fmt: skip


def solved_as_exhaustive_search(problem: PlacementProblem):
    """CP-SAT on ``problem`` against every plan: infeasible when no plan fits, else optimal
    at the best plan's time. The result and that best time (None when nothing fits)."""
    best = min(
        (plan_seconds(plan, problem) for plan in every_plan(problem) if fits(plan, problem)),
        default=None,
    )
    result = solve_placement(problem, time_limit_s=20)
    if best is None:
        assert result.status is SolveStatus.INFEASIBLE
        return result, None
    assert result.status is SolveStatus.OPTIMAL
    assert result.plan is not None and fits(result.plan, problem)
    assert result.objective_seconds == pytest.approx(best, rel=1e-6)
    return result, best


@pytest.mark.parametrize("seed", range(6))
def test_matches_exhaustive_search(seed: int) -> None:
    rng = random.Random(seed)
    objective = (Objective.DECODE, Objective.PREFILL, Objective.BALANCED)[seed % 3]
    problem = random_problem(rng, n_layers=3, objective=objective)
    result, best = solved_as_exhaustive_search(problem)
    if best is not None:
        assert result.bound_seconds <= best * (1 + 1e-6)


@pytest.mark.parametrize("seed", range(8))
def test_never_slower_than_a_baseline(seed: int) -> None:
    rng = random.Random(100 + seed)
    problem = random_problem(rng, n_layers=12, objective=Objective.DECODE)
    result = solve_placement(problem, time_limit_s=20)
    for name, baseline in BASELINES.items():
        plan = baseline(problem)
        if plan is None:
            continue
        assert fits(plan, problem), name
        assert result.objective_seconds <= plan_seconds(plan, problem) * (1 + 1e-6), name


def test_hint_is_accepted_and_result_fits() -> None:
    problem = random_problem(random.Random(7), n_layers=12, objective=Objective.DECODE)
    hint = next(p for p in (b(problem) for b in BASELINES.values()) if p is not None)
    result = solve_placement(problem, hint=hint, time_limit_s=20)
    assert result.plan is not None and fits(result.plan, problem)
    assert result.objective_seconds <= plan_seconds(hint, problem) * (1 + 1e-6)


def random_buffers(rng: random.Random, problem: PlacementProblem, offload: str | None):
    """Buffers by combination (solver.placement.buffers), random: most combinations of every
    device get their own size (0-300 MiB, so they decide placements), the rest the default."""
    units = (Unit.FFN_DENSE, Unit.EXPERTS, Unit.SHARED_EXPERTS)
    own = own_features(units)
    host = (HOST + LAYERS, *(HOST + g for g in HOST_UNITS))
    assumed = {}
    for device in problem.devices:
        sizes = {}
        for chosen in itertools.chain.from_iterable(
            itertools.combinations(own, n) for n in range(len(own) + 1)
        ):
            for full, pipelined in ((False, False), (True, False), (True, True)):
                for on_host in itertools.product((False, True), repeat=len(host)):
                    copied = [f for f, on in zip(host, on_host, strict=True) if on]
                    copied = copied if device == offload else []
                    combo = combination(chosen, full, copied, pipelined)
                    if rng.random() < 0.9:
                        sizes[combo] = rng.randint(0, 300) * MIB
        assumed[device] = sizes
    default = {device: 200 * MIB for device in problem.devices}
    return BufferTable(assumed=assumed, default=default, offload=offload)


@pytest.mark.parametrize("seed", range(8))
def test_buffers_by_combination_match_exhaustive_search(seed: int) -> None:
    """Buffers that depend on what each device runs: the CP-SAT model's literals and bounds
    must give every plan the bytes ``plan_memory`` gives it (the oracle uses the latter)."""
    rng = random.Random(200 + seed)
    problem = random_problem(rng, n_layers=2, objective=Objective.DECODE)
    offload = "CUDA0" if seed % 2 else None
    problem = problem.model_copy(update={"buffers": random_buffers(rng, problem, offload)})
    solved_as_exhaustive_search(problem)
