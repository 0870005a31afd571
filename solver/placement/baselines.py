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
    """llama.cpp's ``--fit`` on a user-set context, with fit's memory model as the probe.

    ``common_params_fit_impl`` after its steps 1-2 (the context is the user's): step 3 fills
    the GPUs back to front; step 4, for a MoE model whose dense tensors all fit with room to
    spare, converts dense-only layers into full ones GPU by GPU, each time trying part of one
    more layer.
    """
    if not problem.devices[1:]:
        return ngl_fill(problem)
    search = _FitSearch(problem)
    search.fill_back_to_front()
    if search.is_moe and search.moe_surplus() > 0 and search.dense_start() < search.nd:
        dense_start = search.dense_start()
        for gpu in range(dense_start + 1):
            dense_start = search.convert_dense_layers(gpu, dense_start)
            dense_start = search.one_more_layer(gpu, dense_start)
    return _checked(problem, _fit_plan(problem, search.ngl, search.overflow_to))


def _false_position(delta: int, target: int, mem: int, mem_high: int) -> int:
    """fit.cpp's method of false position: how many of the ``delta`` layers between the low
    (``mem``, fits) and the high (``mem_high``, does not) guess to add, interpolating memory
    per layer linearly to where it meets ``target``; at least 1 and short of the high end."""
    step = delta * (target - mem) // max(mem_high - mem, 1)
    return min(max(step, 1), delta - 1)


class _FitSearch:
    """fit.cpp's search state: layers per GPU (``ngl_per_device``), the memory they use per
    GPU (``mem``) and where each GPU's first partial layer overflows to (``overflow_bufts``)."""

    def __init__(self, problem: PlacementProblem) -> None:
        self.problem = problem
        self.gpus = problem.devices[1:]
        self.nd = len(self.gpus)
        self.n_layers = problem.table.stored.shape[0]
        self.is_moe = bool(problem.table.stored[:, problem.table.units.index(Unit.EXPERTS)].any())
        self.target = [problem.capacity[g] for g in self.gpus]
        self.overflow_to = [CPU] * self.nd
        self.ngl = [_Ngl() for _ in range(self.nd)]
        self.mem = self.memory(self.ngl)

    def memory(self, ngl: list[_Ngl], overflow: list[str] | None = None) -> list[int]:
        """``get_memory_for_layers``: each GPU's bytes with these layers (fit's memory model)."""
        plan = _fit_plan(self.problem, ngl, overflow or self.overflow_to)
        held = plan_memory(plan, self.problem)
        return [held[g] for g in self.gpus]

    # Step 3: iteratively fill the GPUs back to front with "dense" layers (for MoE: experts on
    # the CPU), each by false position between a low and a high layer count.
    def fill_back_to_front(self) -> None:
        for gpu in range(self.nd - 1, -1, -1):
            self._fill(gpu)

    def _fill(self, gpu: int) -> None:
        """One GPU of step 3: every unassigned layer if they fit, else false position."""
        nd, target = self.nd, self.target[gpu]
        unassigned = self.n_layers + 1 - sum(n.n_layer for n in self.ngl[gpu + 1 :])
        high = list(self.ngl)
        n_part = (unassigned if gpu < nd - 1 else unassigned - 1) if self.is_moe else 0
        high[gpu] = _Ngl(n_layer=unassigned, n_part=max(n_part, 0))
        if unassigned == 0:
            return
        mem_high = self.memory(high)
        if mem_high[gpu] <= target:
            self.ngl, self.mem = high, mem_high
            return
        delta = high[gpu].n_layer - self.ngl[gpu].n_layer
        while delta > 1:
            step = _false_position(delta, target, self.mem[gpu], mem_high[gpu])
            test = list(self.ngl)
            current = self.ngl[gpu]
            part = current.n_part
            if self.is_moe:
                # the first layer filled is the output layer, which is always full
                part += step - 1 if gpu == nd - 1 and current.n_part == 0 else step
            test[gpu] = _Ngl(n_layer=current.n_layer + step, n_part=part)
            mem_test = self.memory(test)
            if mem_test[gpu] <= target:
                self.ngl, self.mem = test, mem_test
            else:
                high, mem_high = test, mem_test
            delta = high[gpu].n_layer - self.ngl[gpu].n_layer

    # Step 4: for a MoE model where all dense tensors fit, convert the dense-only layers in
    # the back to full layers in the front until all devices are full; also try to fit part
    # of one more layer (its attention here, its FFN on the next device).
    def moe_surplus(self) -> int:
        """The GPUs' free bytes with every layer on them and every expert on the CPU."""
        problem = self.problem
        all_cpu = _experts_on_cpu(problem, self.n_layers)
        slots = _default_split(problem, self.n_layers + 1)
        held = plan_memory(plan_from_slots(problem, slots, all_cpu), problem)
        return sum(problem.capacity[g] - held[g] for g in self.gpus)

    def dense_start(self) -> int:
        """``id_dense_start``: the first GPU of the trailing run holding layers (nd: none)."""
        dense_start = self.nd
        for gpu in range(self.nd - 1, -1, -1):
            if self.ngl[gpu].n_layer > 0:
                dense_start = gpu
                continue
            break
        return dense_start

    def convert_dense_layers(self, gpu: int, dense_start: int) -> int:
        """Move dense-only layers from ``dense_start`` on into ``gpu`` as full layers: all of
        them if they fit, else by false position; the new ``dense_start``."""
        nd, target = self.nd, self.target[gpu]
        high = list(self.ngl)
        for j in range(dense_start, nd):
            move = high[j].n_layer if j < nd - 1 else high[j].n_layer - 1
            high[gpu] = _Ngl(n_layer=high[gpu].n_layer + move, n_part=high[gpu].n_part)
            high[j] = _Ngl(n_layer=high[j].n_layer - move, n_part=0)
        dense_start_high = nd - 1
        mem_high = self.memory(high)
        if mem_high[gpu] <= target:
            self.ngl, self.mem = high, mem_high
            return dense_start_high
        delta = high[gpu].n_full - self.ngl[gpu].n_full
        while delta > 1:
            step = _false_position(delta, target, self.mem[gpu], mem_high[gpu])
            test = list(self.ngl)
            start = _convert(test, gpu, dense_start, step)
            mem_test = self.memory(test)
            if mem_test[gpu] <= target:
                self.ngl, self.mem, dense_start = test, mem_test, start
            else:
                high, mem_high, dense_start_high = test, mem_test, start
            delta = high[gpu].n_full - self.ngl[gpu].n_full
        return dense_start

    def one_more_layer(self, gpu: int, dense_start: int) -> int:
        """Part of one more layer on ``gpu``: its attention here, its FFN overflowing to the
        next GPU (the CPU after the last); kept if every GPU it touches stays under target."""
        nd, ngl = self.nd, self.ngl
        if not (dense_start < nd and ngl[dense_start].n_layer > (0 if gpu < nd - 1 else 1)):
            return dense_start
        test = list(ngl)
        test[dense_start] = _Ngl(
            n_layer=test[dense_start].n_layer - 1, n_part=test[dense_start].n_part - 1
        )
        test[gpu] = _Ngl(
            n_layer=test[gpu].n_layer + 1, n_part=test[gpu].n_part + 1, overflow="attn"
        )
        start = dense_start + 1 if test[dense_start].n_part == 0 else dense_start
        overflow_test = list(self.overflow_to)
        if gpu < nd - 1:
            overflow_test[gpu] = self.gpus[gpu + 1]
        mem_test = self.memory(test, overflow_test)
        target = self.target
        if mem_test[gpu] < target[gpu] and (gpu + 1 == nd or mem_test[gpu + 1] < target[gpu + 1]):
            self.ngl, self.overflow_to, self.mem = test, overflow_test, mem_test
            return start
        return dense_start


def _convert(test: list[_Ngl], gpu: int, dense_start: int, step: int) -> int:
    """Move ``step`` partial layers from the GPUs from ``dense_start`` on into ``gpu``
    (``test`` in place); the first GPU that still has partial layers."""
    start = dense_start
    converted = 0
    while start < len(test):
        take = min(step - converted, test[start].n_part)
        test[start] = _Ngl(n_layer=test[start].n_layer - take, n_part=test[start].n_part - take)
        test[gpu] = _Ngl(n_layer=test[gpu].n_layer + take, n_part=test[gpu].n_part)
        converted += take
        if test[start].n_part > 0:
            break
        start += 1
    return start


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
