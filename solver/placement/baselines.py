"""What people do today, as plans: the yardsticks the solver is measured against.

Every baseline returns a ``Plan`` (or None when nothing it tries fits) that is judged by the
same memory accounting (``placement.plan_memory``) and the same cost tables as the solver:

- ``ngl_fill``: the largest ``-ngl`` that fits, layers split by free VRAM (llama.cpp's
  default ``-ts``).
- ``experts_on_cpu``: ``-ngl 99 -ot exps=CPU`` (``--cpu-moe``), layers split by free VRAM.
- ``best_n_cpu_moe``: the fastest ``--n-cpu-moe N`` (and ``-ngl`` if 99 does not fit).
- ``llama_fit``: llama.cpp's own ``--fit`` (common/fit.cpp, ``common_params_fit_impl``
  steps 3 and 4), reimplemented step by step on fit's memory model.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from solver.cost.model import MOVABLE, estimate_cost
from solver.placement.cpsat import PlacementProblem, fits, plan_memory, plan_seconds
from solver.plan.plan import Plan, split_slots
from solver.plan.units import Unit
from solver.quantities import CPU


def plan_from_slots(
    problem: PlacementProblem,
    gpu_slots: tuple[int, ...],
    overrides: dict[Unit, tuple[str | None, ...]] | None = None,
) -> Plan:
    """A plan from ``-ts`` slot counts (the output head is the last slot)."""
    gpus = problem.devices[1:]
    n_layers = problem.table.stored.shape[0]
    layers = list(gpu_slots)
    output = CPU
    if sum(gpu_slots) > 0:
        # The head is the last slot: it lands on the last GPU given any.
        last = max(i for i, count in enumerate(layers) if count)
        layers[last] -= 1
        output = gpus[last]
    return Plan(
        gpus=gpus,
        n_layers=n_layers,
        gpu_layers=tuple(layers),
        output_device=output,
        overrides=overrides or {},
    )


def _default_split(problem: PlacementProblem, ngl: int) -> tuple[int, ...]:
    """Slots per GPU for ``-ngl ngl`` without ``-ts``: proportional to free memory."""
    gpus = problem.devices[1:]
    if not gpus:  # a CPU-only rig has nothing to split
        return ()
    n_slots = min(ngl, problem.table.stored.shape[0] + 1)
    free = tuple(float(problem.capacity[g]) for g in gpus)
    # no GPU with any budget left: split evenly (such a plan is then refused by ``fits``)
    return split_slots(free if any(free) else (1.0,) * len(gpus), n_slots)


def _experts_on_cpu(problem: PlacementProblem, first_n: int) -> dict[Unit, tuple[str | None, ...]]:
    n_layers = problem.table.stored.shape[0]
    moved = tuple(CPU if il < first_n else None for il in range(n_layers))
    return {Unit.EXPERTS: moved}


def _fastest(problem: PlacementProblem, candidates: list[Plan]) -> Plan | None:
    feasible = [plan for plan in candidates if fits(plan, problem)]
    return min(feasible, key=lambda plan: plan_seconds(plan, problem), default=None)


def ngl_fill(problem: PlacementProblem) -> Plan | None:
    if len(problem.devices) == 1:
        return _fastest(problem, [plan_from_slots(problem, ())])
    for ngl in range(problem.table.stored.shape[0] + 1, -1, -1):
        plan = plan_from_slots(problem, _default_split(problem, ngl))
        if fits(plan, problem):
            return plan
    return None


def experts_on_cpu(problem: PlacementProblem) -> Plan | None:
    n_layers = problem.table.stored.shape[0]
    overrides = _experts_on_cpu(problem, n_layers)
    for ngl in range(n_layers + 1, -1, -1):
        plan = plan_from_slots(problem, _default_split(problem, ngl), overrides)
        if fits(plan, problem):
            return plan
    return None


def best_n_cpu_moe(problem: PlacementProblem) -> Plan | None:
    n_layers = problem.table.stored.shape[0]
    for ngl in range(n_layers + 1, -1, -1):
        slots = _default_split(problem, ngl)
        candidates = [
            plan_from_slots(problem, slots, _experts_on_cpu(problem, n))
            for n in range(n_layers + 1)
        ]
        best = _fastest(problem, candidates)
        if best is not None:
            return best
    return None


# --- llama.cpp --fit (common/fit.cpp) ------------------------------------------------------


class _Ngl(BaseModel):
    """fit.cpp's ``ngl_t``: slots on one GPU, of which the last ``n_part`` are partial."""

    model_config = ConfigDict(frozen=True)

    n_layer: int = 0
    n_part: int = 0
    overflow: str = "moe"  # "moe": experts overflow; "attn": the whole FFN overflows

    @property
    def n_full(self) -> int:
        return self.n_layer - self.n_part


# fit.cpp's overflow patterns, as the units they move: LAYER_FRACTION_MOE moves the routed
# experts, LAYER_FRACTION_ATTN every ffn_(gate|up|gate_up|down) tensor, leaving attention.
# LAYER_FRACTION_UP / _GATE split single projections, finer than fit's units: not tried.
_OVERFLOW_UNITS = {"moe": (Unit.EXPERTS,), "attn": MOVABLE}


def _fit_plan(problem: PlacementProblem, ngl: list[_Ngl], overflow_to: list[str]) -> Plan:
    """``set_ngl_tensor_split_tbo``: slots and overrides from per-GPU counts."""
    n_layers = problem.table.stored.shape[0]
    moved: dict[Unit, list[str | None]] = {g: [None] * n_layers for g in MOVABLE}
    il0 = n_layers + 1 - sum(n.n_layer for n in ngl)
    for gpu, n in enumerate(ngl):
        il0 += n.n_full
        for il in range(il0, il0 + n.n_part):
            if il >= n_layers:
                continue  # the output slot: nothing to move
            first = il == il0
            target = overflow_to[gpu] if first else CPU
            for unit in _OVERFLOW_UNITS[n.overflow if first else "moe"]:
                moved[unit][il] = target
        il0 += n.n_part
    overrides = {g: tuple(v) for g, v in moved.items() if any(v)}
    return plan_from_slots(problem, tuple(n.n_layer for n in ngl), overrides)


def llama_fit(problem: PlacementProblem) -> Plan | None:
    """llama.cpp's ``--fit`` on a user-set context, with fit's memory model as the probe."""
    gpus = problem.devices[1:]
    nd = len(gpus)
    if nd == 0:
        return ngl_fill(problem)
    n_layers = problem.table.stored.shape[0]
    is_moe = bool(problem.table.stored[:, problem.table.units.index(Unit.EXPERTS)].any())
    target = [problem.capacity[g] for g in gpus]
    overflow_to = [CPU] * nd

    def memory(ngl: list[_Ngl], overflow: list[str] | None = None) -> list[int]:
        held = plan_memory(_fit_plan(problem, ngl, overflow or overflow_to), problem)
        return [held[g] for g in gpus]

    # Step 3: fill the GPUs back to front with "dense" layers (for MoE: experts on the CPU),
    # by false position between a low and a high layer count.
    ngl = [_Ngl() for _ in range(nd)]
    mem = memory(ngl)
    for gpu in range(nd - 1, -1, -1):
        unassigned = n_layers + 1 - sum(n.n_layer for n in ngl[gpu + 1 :])
        high = list(ngl)
        n_part = (unassigned if gpu < nd - 1 else unassigned - 1) if is_moe else 0
        high[gpu] = _Ngl(n_layer=unassigned, n_part=max(n_part, 0))
        if unassigned == 0:
            continue
        mem_high = memory(high)
        if mem_high[gpu] <= target[gpu]:
            ngl, mem = high, mem_high
            continue
        delta = high[gpu].n_layer - ngl[gpu].n_layer
        while delta > 1:
            step = delta * (target[gpu] - mem[gpu]) // max(mem_high[gpu] - mem[gpu], 1)
            step = min(max(step, 1), delta - 1)
            test = list(ngl)
            current = ngl[gpu]
            part = current.n_part
            if is_moe:
                part += step - 1 if gpu == nd - 1 and current.n_part == 0 else step
            test[gpu] = _Ngl(n_layer=current.n_layer + step, n_part=part)
            mem_test = memory(test)
            if mem_test[gpu] <= target[gpu]:
                ngl, mem = test, mem_test
            else:
                high, mem_high = test, mem_test
            delta = high[gpu].n_layer - ngl[gpu].n_layer

    surplus = 0
    if is_moe:
        all_cpu = _experts_on_cpu(problem, n_layers)
        held = plan_memory(
            plan_from_slots(problem, _default_split(problem, n_layers + 1), all_cpu), problem
        )
        surplus = sum(problem.capacity[g] - held[g] for g in gpus)
    if not is_moe or surplus <= 0:
        return _checked(problem, _fit_plan(problem, ngl, overflow_to))

    # Step 4: convert dense-only layers at the back into full layers at the front, GPU by
    # GPU, then try to squeeze part of one more layer in (overflowing to the next GPU).
    dense_start = nd
    for gpu in range(nd - 1, -1, -1):
        if ngl[gpu].n_layer > 0:
            dense_start = gpu
            continue
        break
    if dense_start >= nd:
        return _checked(problem, _fit_plan(problem, ngl, overflow_to))
    for gpu in range(dense_start + 1):
        high = list(ngl)
        for j in range(dense_start, nd):
            move = high[j].n_layer if j < nd - 1 else high[j].n_layer - 1
            high[gpu] = _Ngl(n_layer=high[gpu].n_layer + move, n_part=high[gpu].n_part)
            high[j] = _Ngl(n_layer=high[j].n_layer - move, n_part=0)
        dense_start_high = nd - 1
        mem_high = memory(high)
        if mem_high[gpu] > target[gpu]:
            delta = high[gpu].n_full - ngl[gpu].n_full
            while delta > 1:
                step = delta * (target[gpu] - mem[gpu]) // max(mem_high[gpu] - mem[gpu], 1)
                step = min(max(step, 1), delta - 1)
                test = list(ngl)
                start = dense_start
                converted = 0
                while start < nd:
                    take = min(step - converted, test[start].n_part)
                    test[start] = _Ngl(
                        n_layer=test[start].n_layer - take, n_part=test[start].n_part - take
                    )
                    test[gpu] = _Ngl(n_layer=test[gpu].n_layer + take, n_part=test[gpu].n_part)
                    converted += take
                    if test[start].n_part > 0:
                        break
                    start += 1
                mem_test = memory(test)
                if mem_test[gpu] <= target[gpu]:
                    ngl, mem, dense_start = test, mem_test, start
                else:
                    high, mem_high, dense_start_high = test, mem_test, start
                delta = high[gpu].n_full - ngl[gpu].n_full
        else:
            ngl, mem, dense_start = high, mem_high, dense_start_high

        # Try to fit part of one more layer: its attention here, its FFN on the next device.
        if dense_start < nd and ngl[dense_start].n_layer > (0 if gpu < nd - 1 else 1):
            test = list(ngl)
            test[dense_start] = _Ngl(
                n_layer=test[dense_start].n_layer - 1, n_part=test[dense_start].n_part - 1
            )
            test[gpu] = _Ngl(
                n_layer=test[gpu].n_layer + 1, n_part=test[gpu].n_part + 1, overflow="attn"
            )
            start = dense_start + 1 if test[dense_start].n_part == 0 else dense_start
            overflow_test = list(overflow_to)
            if gpu < nd - 1:
                overflow_test[gpu] = gpus[gpu + 1]
            mem_test = memory(test, overflow_test)
            if mem_test[gpu] < target[gpu] and (
                gpu + 1 == nd or mem_test[gpu + 1] < target[gpu + 1]
            ):
                ngl, overflow_to, mem, dense_start = test, overflow_test, mem_test, start
    return _checked(problem, _fit_plan(problem, ngl, overflow_to))


def _checked(problem: PlacementProblem, plan: Plan) -> Plan | None:
    """fit.cpp hands its result to llama.cpp even if it does not fit; we report None."""
    return plan if fits(plan, problem) else None


BASELINES: dict[str, Callable[[PlacementProblem], Plan | None]] = {
    "llama --fit": llama_fit,
    "best --n-cpu-moe": best_n_cpu_moe,
    "-ot exps=CPU": experts_on_cpu,
    "-ngl fill": ngl_fill,
}


def decode_tps(plan: Plan, problem: PlacementProblem) -> float:
    return estimate_cost(plan, problem.tables).decode_tps
