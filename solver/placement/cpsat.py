"""The CP-SAT placement model: every layer and unit on a device, latency minimal, memory kept.

Data -> model -> solve -> extract, as OR-Tools' samples do; nothing here prints.

Layers that are identical in bytes, KV cache and cost form a *class* (DeepSeek-V3: 3 dense
layers and 58 MoE layers; gemma3: SWA and full-attention layers). Identical layers on one
device can trade their placements without changing anything, so the model counts layers
instead of naming them — which keeps it small and lets CP-SAT close the knapsack-like
integrality gap ("how many layers' experts fit on the GPU") quickly.

Notation: k, d devices (CPU first, then GPUs in llama.cpp order); c a layer class; pi a
*pattern*: one device for each movable unit (dense FFN, routed experts, shared experts) the
class has.

- ``n[k]``: layers whose attention, norms, router and KV cache live on device k. They are
  contiguous in device order (``-ngl`` keeps the first layers on the CPU, ``-ts`` gives each
  GPU a contiguous range), so block k covers layer indices ``[s[k], s[k+1])`` with
  ``s[k] = n[0] + ... + n[k-1]``, and class c has ``cnt[c][k] = P_c(s[k+1]) - P_c(s[k])``
  layers there (``P_c(i)``: members of c below index i, an element constraint).
- ``m[c][d][pi]``: how many class-c layers on device d place their units by pattern pi; they
  sum to ``cnt[c][d]``. A unit on a device other than its layer's is an ``-ot`` rule.
- ``output[k] = 1`` if the output head is on k: the last ``-ngl`` slot, so on a GPU no later
  GPU may hold layers, and it stays on the CPU only if no layer is offloaded.

Memory (bytes) per device k: layers' fixed weights and KV + units placed on k + output head +
a fixed amount when k is used (compute and output buffers; the host's token embedding)
<= capacity k.

Objective (integer nanoseconds, from ``solver.cost.model.CostTables``): the time of every part on
its device + a cost per device switch along the graph. Inside a block a layer's switches
depend only on its own pattern (it starts and ends at its block's device). Where a block
ends, the last layer's final part meets the next block's device instead; ``fin[d][x] = 1``
says that part is on x (a layer of the last layer's class on d must take such a pattern), and
``z`` variables (products of booleans) add or remove the one switch that makes the difference.
The extracted plan is priced exactly and the gap is reported against that exact price.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from ortools.sat.python import cp_model
from pydantic import BaseModel, ConfigDict, Field

from solver.cost.model import MOVABLE, PARTS, CostTables, Objective, estimate_cost
from solver.plan.plan import Plan
from solver.plan.units import LayerTable, Unit
from solver.quantities import CPU

NS = 1e9  # objective unit: nanoseconds


class SolveStatus(StrEnum):
    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    UNKNOWN = "unknown"


class PlacementProblem(BaseModel):
    """Everything the model needs, in bytes and seconds; built by ``solver.placement.solve``."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    devices: tuple[str, ...] = Field(description="CPU first, then GPUs in llama.cpp order")
    capacity: dict[str, int] = Field(description="bytes a device may use (margin removed)")
    table: LayerTable
    tables: CostTables
    kv_bytes: tuple[int, ...] = Field(description="per layer: KV cache bytes at the context")
    output_bytes: int = Field(description="output head + output norm weights")
    fixed_bytes: dict[str, int] = Field(
        description="per device: bytes held whenever it is used (compute/output buffers, "
        "and for the host the token embedding and other global tensors)"
    )
    objective: Objective = Objective.DECODE
    balanced_prefill_weight: float = Field(
        default=1.0, description="seconds of decode worth one second of prefill per ubatch"
    )


class PlacementResult(BaseModel):
    """What the solver found and how sure it is."""

    model_config = ConfigDict(frozen=True)

    status: SolveStatus
    plan: Plan | None = None
    objective_seconds: float | None = Field(
        default=None, description="exact cost of the plan under the chosen objective"
    )
    bound_seconds: float | None = Field(default=None, description="proven lower bound")
    solve_seconds: float
    n_variables: int = 0

    @property
    def gap(self) -> float | None:
        if self.objective_seconds is None or self.bound_seconds is None:
            return None
        if self.objective_seconds <= 0:
            return 0.0
        return max(0.0, (self.objective_seconds - self.bound_seconds) / self.objective_seconds)


class LayerClass(BaseModel):
    """Layers with identical bytes, KV and costs, and the patterns their units can take."""

    model_config = ConfigDict(frozen=True)

    members: tuple[int, ...]
    units: tuple[Unit, ...] = Field(description="movable units present, in graph order")

    def patterns(self, n_dev: int) -> list[tuple[int, ...]]:
        return list(itertools.product(range(n_dev), repeat=len(self.units)))


def layer_classes(problem: PlacementProblem) -> list[LayerClass]:
    """Group layers whose every number the model uses is identical."""
    table, tables = problem.table, problem.tables
    groups: dict[bytes, list[int]] = {}
    for il in range(table.stored.shape[0]):
        key = b"".join(
            (
                table.stored[il].tobytes(),
                table.pinned[il].tobytes(),
                problem.kv_bytes[il].to_bytes(8, "little"),
                tables.decode[il].tobytes(),
                tables.prefill[il].tobytes(),
                tables.present[il].tobytes(),
            )
        )
        groups.setdefault(key, []).append(il)
    classes = []
    for members in groups.values():
        first = members[0]
        units = tuple(
            g for p, g in enumerate(PARTS) if p > 0 and tables.present[first, p] and g in MOVABLE
        )
        classes.append(LayerClass(members=tuple(members), units=units))
    return classes


def _objective_tables(problem: PlacementProblem) -> tuple[np.ndarray, np.ndarray, float]:
    """(per layer/part/device seconds, output seconds per device, seconds per switch)."""
    t = problem.tables
    if problem.objective is Objective.DECODE:
        return t.decode, t.output_decode, t.split_decode
    if problem.objective is Objective.PREFILL:
        return t.prefill, np.zeros_like(t.output_decode), t.split_prefill
    w = problem.balanced_prefill_weight
    return t.decode + w * t.prefill, t.output_decode, t.split_decode + w * t.split_prefill


def _switches_inside(pattern: tuple[int, ...], d: int) -> int:
    """Device switches along d -> units (in graph order) -> d."""
    path = [d, *pattern, d]
    return sum(1 for a, b in itertools.pairwise(path) if a != b)


def _final_device(pattern: tuple[int, ...], d: int) -> int:
    return pattern[-1] if pattern else d


class _Model(BaseModel):
    """The CP-SAT model with handles to the variables extraction reads."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: cp_model.CpModel
    classes: list[LayerClass]
    n: list[cp_model.IntVar]
    m: dict[tuple[int, int, tuple[int, ...]], cp_model.IntVar]
    fin: list[list[cp_model.IntVar]]
    output: list[cp_model.IntVar]


def build_model(problem: PlacementProblem) -> _Model:
    """The CP-SAT model of ``problem`` (notation in the module docstring), step by step.

    Each step adds its variables and constraints in turn, so the model (and with it the
    solver's search) depends on this order; the objective is set last.
    """
    cx = _context(problem)
    n, starts, active = _add_blocks(cx)
    count = _add_class_counts(cx, starts)
    m = _add_patterns(cx, count)
    output, last_block = _add_output_head(cx, active)
    _add_memory(cx, active, output, count, m)
    cost = _part_costs(cx, count, m, output)
    fin = _add_block_endings(cx, starts, active, m)
    cost.extend(_add_boundary_switches(cx, active, last_block, fin, output))
    cx.model.minimize(sum(cost))
    return _Model(model=cx.model, classes=cx.classes, n=n, m=m, fin=fin, output=output)


# Position in PARTS (the cost tables' part axis) of each movable unit.
_PART = {g: PARTS.index(g) for g in MOVABLE}

_Count = dict[tuple[int, int], cp_model.IntVar]  # (class, device) -> cnt[c][k]
_Patterns = dict[tuple[int, int, tuple[int, ...]], cp_model.IntVar]  # (c, d, pi) -> m[c][d][pi]


@dataclass(frozen=True)
class _Context:
    """What every step reads: the model being built and the problem's numbers."""

    model: cp_model.CpModel
    problem: PlacementProblem
    classes: list[LayerClass]
    n_dev: int
    n_layers: int
    column: dict[Unit, int]  # unit -> its column in problem.table
    seconds: np.ndarray  # per layer, part, device (``_objective_tables``)
    output_seconds: np.ndarray  # per device
    switch_ns: int  # one device switch


def _context(problem: PlacementProblem) -> _Context:
    seconds, output_seconds, switch_seconds = _objective_tables(problem)
    return _Context(
        model=cp_model.CpModel(),
        problem=problem,
        classes=layer_classes(problem),
        n_dev=len(problem.devices),
        n_layers=problem.table.stored.shape[0],
        column={unit: i for i, unit in enumerate(problem.table.units)},
        seconds=seconds,
        output_seconds=output_seconds,
        switch_ns=round(switch_seconds * NS),
    )


def _add_blocks(
    cx: _Context,
) -> tuple[list[cp_model.IntVar], list[cp_model.IntVar], list[cp_model.IntVar]]:
    """Adds the contiguous blocks of layers: ``n[k]`` (summing to the layer count), the
    block starts ``s[k] = n[0] + ... + n[k-1]`` (constants 0 and the layer count at the
    ends) and ``active[k]`` <=> ``n[k] >= 1``. Returns (n, starts, active)."""
    model, n_dev, n_layers = cx.model, cx.n_dev, cx.n_layers
    n = [model.new_int_var(0, n_layers, f"n[{k}]") for k in range(n_dev)]
    model.add(sum(n) == n_layers)
    starts = [model.new_constant(0)]
    for k in range(1, n_dev):
        start = model.new_int_var(0, n_layers, f"s[{k}]")
        model.add(start == sum(n[:k]))
        starts.append(start)
    starts.append(model.new_constant(n_layers))
    active = []
    for k in range(n_dev):
        act = model.new_bool_var(f"active[{k}]")
        model.add(n[k] >= 1).only_enforce_if(act)
        model.add(n[k] == 0).only_enforce_if(act.Not())
        active.append(act)
    return n, starts, active


def _add_class_counts(cx: _Context, starts: list[cp_model.IntVar]) -> _Count:
    """Adds, per class c, ``P[c][k]`` (members of c below ``s[k]``: an element constraint
    on the class's prefix counts) and ``cnt[c][k] = P[c][k+1] - P[c][k]``, the class-c
    layers block k holds. Returns cnt by (c, k)."""
    model, n_dev, n_layers = cx.model, cx.n_dev, cx.n_layers
    count: _Count = {}
    for c, cls in enumerate(cx.classes):
        members = set(cls.members)
        prefix = [sum(1 for j in range(i) if j in members) for i in range(n_layers + 1)]
        below = []
        for k in range(n_dev + 1):
            var = model.new_int_var(0, len(members), f"P[{c}][{k}]")
            model.add_element(starts[k], prefix, var)
            below.append(var)
        for k in range(n_dev):
            cnt = model.new_int_var(0, len(members), f"cnt[{c}][{k}]")
            model.add(cnt == below[k + 1] - below[k])
            count[c, k] = cnt
    return count


def _add_patterns(cx: _Context, count: _Count) -> _Patterns:
    """Adds ``m[c][d][pi]`` for every class, layer device and unit pattern, the counts of a
    class on a device summing to ``cnt[c][d]``. Returns m by (c, d, pi)."""
    model = cx.model
    m: _Patterns = {}
    for c, cls in enumerate(cx.classes):
        for d in range(cx.n_dev):
            choices = []
            for pattern in cls.patterns(cx.n_dev):
                var = model.new_int_var(0, len(cls.members), f"m[{c}][{d}][{pattern}]")
                m[c, d, pattern] = var
                choices.append(var)
            model.add(sum(choices) == count[c, d])
    return m


def _add_output_head(
    cx: _Context, active: list[cp_model.IntVar]
) -> tuple[list[cp_model.IntVar], list[cp_model.IntVar]]:
    """Adds ``output[k]`` (exactly one), ``last_block[k]`` <=> block k is the last active
    one, and the head as the last ``-ngl`` slot: on a GPU, no later GPU holds layers; on the
    CPU, no GPU does. Returns (output, last_block)."""
    model, n_dev = cx.model, cx.n_dev
    output = [model.new_bool_var(f"output[{k}]") for k in range(n_dev)]
    model.add_exactly_one(output)
    last_block = []
    for k in range(n_dev):
        is_last = model.new_bool_var(f"last_block[{k}]")
        model.add_bool_and([active[k], *(a.Not() for a in active[k + 1 :])]).only_enforce_if(
            is_last
        )
        model.add_bool_or([active[k].Not(), *active[k + 1 :], is_last])
        last_block.append(is_last)
    for k in range(1, n_dev):
        for later in active[k + 1 :]:
            model.add_implication(output[k], later.Not())
    for gpu_block in active[1:]:
        model.add_implication(output[0], gpu_block.Not())  # any offload takes the head along
    return output, last_block


def _add_memory(
    cx: _Context,
    active: list[cp_model.IntVar],
    output: list[cp_model.IntVar],
    count: _Count,
    m: _Patterns,
) -> None:
    """Adds, per device k, ``used[k]`` (implied by a block or the head on k; always set on
    the CPU, which runs the input layer), ``m[c][d][pi] == 0`` unless used for the patterns
    that put bytes on k, and the capacity constraint: head + fixed bytes when used + per
    class, its layers' fixed weights and KV + the units its patterns put on k."""
    model, problem, table = cx.model, cx.problem, cx.problem.table
    for k, device in enumerate(problem.devices):
        used = model.new_bool_var(f"used[{k}]")
        model.add_implication(active[k], used)
        model.add_implication(output[k], used)
        if device == CPU:
            model.add(used == 1)  # the host always runs the input layer
        terms = [problem.output_bytes * output[k], problem.fixed_bytes.get(device, 0) * used]
        for c, cls in enumerate(cx.classes):
            first = cls.members[0]
            stays = int(table.pinned[first] + table.stored[first, cx.column[Unit.ATTENTION]])
            terms.append((stays + problem.kv_bytes[first]) * count[c, k])
            for d in range(cx.n_dev):
                for pattern in cls.patterns(cx.n_dev):
                    held = _unit_bytes_on(cx, cls, pattern, k)
                    if held:
                        var = m[c, d, pattern]
                        terms.append(held * var)
                        model.add(var == 0).only_enforce_if(used.Not())
        model.add(sum(terms) <= problem.capacity[device])


def _unit_bytes_on(cx: _Context, cls: LayerClass, pattern: tuple[int, ...], k: int) -> int:
    """Bytes of a class-``cls`` layer's units that ``pattern`` puts on device k."""
    table, first = cx.problem.table, cls.members[0]
    return sum(
        int(table.stored[first, cx.column[g]])
        for g, target in zip(cls.units, pattern, strict=True)
        if target == k
    )


def _part_costs(
    cx: _Context, count: _Count, m: _Patterns, output: list[cp_model.IntVar]
) -> list[cp_model.LinearExprT]:
    """The objective's terms (integer ns) for parts where they run and switches inside
    blocks: each layer's fixed part on its block's device, each pattern's units and
    switches (``_switches_inside``), the output head. Adds nothing to the model."""
    seconds, switch_ns = cx.seconds, cx.switch_ns
    cost: list[cp_model.LinearExprT] = []
    for c, cls in enumerate(cx.classes):
        first = cls.members[0]
        for d in range(cx.n_dev):
            cost.append(round(seconds[first, 0, d] * NS) * count[c, d])
            for pattern in cls.patterns(cx.n_dev):
                ns = sum(
                    round(seconds[first, _PART[g], target] * NS)
                    for g, target in zip(cls.units, pattern, strict=True)
                )
                ns += switch_ns * _switches_inside(pattern, d)
                if ns:
                    cost.append(ns * m[c, d, pattern])
    cost.extend(round(cx.output_seconds[k] * NS) * output[k] for k in range(cx.n_dev))
    return cost


def _add_block_endings(
    cx: _Context, starts: list[cp_model.IntVar], active: list[cp_model.IntVar], m: _Patterns
) -> list[list[cp_model.IntVar]]:
    """Adds ``fin[d][x]``: block d's last part runs on x (one x if d is active, none
    otherwise). The block's last layer is layer ``s[d+1] - 1``; via ``last_layer[d]``,
    ``last_class[d]`` and one boolean per class, some layer of that class on d must take a
    pattern ending on x (same-class layers of a block can swap, so it can be the last one).
    Returns fin."""
    model, n_dev, n_layers, classes = cx.model, cx.n_dev, cx.n_layers, cx.classes
    class_of_layer = [0] * n_layers
    for c, cls in enumerate(classes):
        for il in cls.members:
            class_of_layer[il] = c
    fin = []
    for d in range(n_dev):
        row = [model.new_bool_var(f"fin[{d}][{x}]") for x in range(n_dev)]
        model.add(sum(row) == active[d])
        last_layer = model.new_int_var(0, max(n_layers - 1, 0), f"last_layer[{d}]")
        model.add_max_equality(last_layer, [starts[d + 1] - 1, 0])
        last_class = model.new_int_var(0, max(len(classes) - 1, 0), f"last_class[{d}]")
        model.add_element(last_layer, class_of_layer, last_class)
        for c in range(len(classes)):
            is_c = model.new_bool_var(f"last_class[{d}]=={c}")
            model.add(last_class == c).only_enforce_if(is_c)
            model.add(last_class != c).only_enforce_if(is_c.Not())
            for x in range(n_dev):
                ending = [
                    var
                    for (cc, dd, pattern), var in m.items()
                    if cc == c and dd == d and _final_device(pattern, d) == x
                ]
                model.add(sum(ending) >= 1).only_enforce_if([row[x], is_c])
        fin.append(row)
    return fin


def _add_boundary_switches(
    cx: _Context,
    active: list[cp_model.IntVar],
    last_block: list[cp_model.IntVar],
    fin: list[list[cp_model.IntVar]],
    output: list[cp_model.IntVar],
) -> list[cp_model.LinearExprT]:
    """The objective's terms for switches where blocks meet, correcting the inside-block
    count (which assumed each block ends on its own device): the input leaving the host,
    ``adjacent[d,e]`` blocks with the products ``z[d,e,x]``, and the last block's ending
    against the output head (``end[d,x]``, ``w[d,x,o]``). Adds those booleans."""
    model, n_dev, switch_ns = cx.model, cx.n_dev, cx.switch_ns
    # Input: token rows leave the host; a switch unless block 0 (the CPU) holds layer 0.
    cost: list[cp_model.LinearExprT] = [switch_ns * (1 - active[0])]
    for d, e in itertools.combinations(range(n_dev), 2):
        adjacent = model.new_bool_var(f"adjacent[{d},{e}]")
        gap = active[d + 1 : e]
        model.add_bool_and([active[d], active[e], *(g.Not() for g in gap)]).only_enforce_if(
            adjacent
        )
        model.add_bool_or([active[d].Not(), active[e].Not(), *gap, adjacent])
        for x in range(n_dev):
            delta = int(x != e) - int(x != d)
            if delta:
                z = _product(model, adjacent, fin[d][x], f"z[{d},{e},{x}]")
                cost.append(switch_ns * delta * z)
    for d in range(n_dev):
        for x in range(n_dev):
            ends_here = _product(model, last_block[d], fin[d][x], f"end[{d},{x}]")
            for o in range(n_dev):
                delta = int(x != o) - int(x != d)
                if delta:
                    w = _product(model, ends_here, output[o], f"w[{d},{x},{o}]")
                    cost.append(switch_ns * delta * w)
    return cost


def _product(
    model: cp_model.CpModel, a: cp_model.IntVar, b: cp_model.IntVar, name: str
) -> cp_model.IntVar:
    """A new boolean ``name`` = a * b."""
    z = model.new_bool_var(name)
    model.add_multiplication_equality(z, [a, b])
    return z


def add_hint(built: _Model, plan: Plan, devices: tuple[str, ...]) -> None:
    """Seed the search with a known placement (e.g. the greedy one)."""
    index = {device: k for k, device in enumerate(devices)}
    layer_device = [index[d] for d in plan.layer_devices]
    for k, var in enumerate(built.n):
        built.model.add_hint(var, layer_device.count(k))
    tally: dict[tuple[int, int, tuple[int, ...]], int] = {}
    for c, cls in enumerate(built.classes):
        for il in cls.members:
            pattern = tuple(index[plan.unit_device(il, g)] for g in cls.units)
            key = (c, layer_device[il], pattern)
            tally[key] = tally.get(key, 0) + 1
    for key, var in built.m.items():
        built.model.add_hint(var, tally.get(key, 0))
    for k, var in enumerate(built.output):
        built.model.add_hint(var, int(index[plan.output_device] == k))


def extract_plan(
    solver: cp_model.CpSolver, built: _Model, devices: tuple[str, ...], n_layers: int
) -> Plan:
    """Turn counts back into named layers; the block's last layer gets the chosen ending."""
    n_dev = len(devices)
    sizes = [solver.value(var) for var in built.n]
    layer_device = [k for k in range(n_dev) for _ in range(sizes[k])]
    class_of = {il: c for c, cls in enumerate(built.classes) for il in cls.members}
    patterns: list[tuple[int, ...]] = [()] * n_layers
    for d in range(n_dev):
        block = [il for il in range(n_layers) if layer_device[il] == d]
        if not block:
            continue
        ending = next((x for x in range(n_dev) if solver.value(built.fin[d][x])), d)
        pool: dict[int, list[tuple[int, ...]]] = {}
        for (c, dd, pattern), var in built.m.items():
            if dd == d:
                pool.setdefault(c, []).extend([pattern] * solver.value(var))
        last_class = pool[class_of[block[-1]]]
        # Put a pattern that ends where the solver wanted at the end of the block.
        for i, pattern in enumerate(last_class):
            if _final_device(pattern, d) == ending:
                last_class.append(last_class.pop(i))
                break
        for il in reversed(block):
            patterns[il] = pool[class_of[il]].pop()
    overrides: dict[Unit, tuple[str | None, ...]] = {}
    for g in MOVABLE:
        moved: list[str | None] = [None] * n_layers
        for il in range(n_layers):
            units = built.classes[class_of[il]].units
            if g in units:
                target = patterns[il][units.index(g)]
                moved[il] = devices[target] if target != layer_device[il] else None
        if any(moved):
            overrides[g] = tuple(moved)
    gpus = devices[1:]
    output = next(k for k, var in enumerate(built.output) if solver.value(var))
    return Plan(
        gpus=gpus,
        n_layers=n_layers,
        gpu_layers=tuple(sizes[1:]),
        output_device=devices[output],
        overrides=overrides,
    )


def plan_seconds(plan: Plan, problem: PlacementProblem) -> float:
    """The exact objective of a plan, the same number the model's objective approximates."""
    estimate = estimate_cost(plan, problem.tables)
    decode = estimate.decode_seconds_per_token - problem.tables.token_overhead
    prefill = estimate.prefill_seconds_per_ubatch
    if problem.objective is Objective.DECODE:
        return decode
    if problem.objective is Objective.PREFILL:
        return prefill
    return decode + problem.balanced_prefill_weight * prefill


_STATUS = {
    cp_model.OPTIMAL: SolveStatus.OPTIMAL,
    cp_model.FEASIBLE: SolveStatus.FEASIBLE,
    cp_model.INFEASIBLE: SolveStatus.INFEASIBLE,
}


def solve_placement(
    problem: PlacementProblem,
    *,
    hint: Plan | None = None,
    time_limit_s: float = 10.0,
    workers: int = 2,
    relative_gap: float = 0.0,
) -> PlacementResult:
    """Build, seed, solve and extract; every solver status becomes a typed result."""
    started = time.perf_counter()
    built = build_model(problem)
    if hint is not None:
        add_hint(built, hint, problem.devices)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = workers
    solver.parameters.relative_gap_limit = relative_gap
    # Probing the model's few hundred booleans costs more than it saves here: measured 2-2.5x
    # faster proofs on DeepSeek-V3 and Qwen3-235B without it (benchmarks/solve_time.py).
    solver.parameters.cp_model_probing_level = 0
    code = solver.solve(built.model)
    status = _STATUS.get(code, SolveStatus.UNKNOWN)
    n_vars = len(built.model.proto.variables)
    if status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
        elapsed = time.perf_counter() - started
        return PlacementResult(status=status, solve_seconds=elapsed, n_variables=n_vars)
    n_layers = problem.table.stored.shape[0]
    plan = extract_plan(solver, built, problem.devices, n_layers)
    exact = plan_seconds(plan, problem)
    bound = min(solver.best_objective_bound / NS, exact)
    if status is SolveStatus.OPTIMAL and exact > solver.objective_value / NS * (1 + 1e-5):
        status = SolveStatus.FEASIBLE  # rounding of the model's integer nanoseconds
    return PlacementResult(
        status=status,
        plan=plan,
        objective_seconds=exact,
        bound_seconds=bound,
        solve_seconds=time.perf_counter() - started,
        n_variables=n_vars,
    )


def plan_memory(plan: Plan, problem: PlacementProblem) -> dict[str, int]:
    """Bytes per device of ``plan`` under the model's own accounting (``_add_memory``)."""
    table = problem.table
    column = {unit: i for i, unit in enumerate(table.units)}
    held = dict.fromkeys(problem.devices, 0)
    used = {CPU}
    for il, device in enumerate(plan.layer_devices):
        stays = table.pinned[il] + table.stored[il, column[Unit.ATTENTION]]
        held[device] += int(stays) + problem.kv_bytes[il]
        used.add(device)
        for g in MOVABLE:
            nbytes = int(table.stored[il, column[g]])
            if nbytes:
                target = plan.unit_device(il, g)
                held[target] += nbytes
                used.add(target)
    held[plan.output_device] += problem.output_bytes
    used.add(plan.output_device)
    for device in used:
        held[device] += problem.fixed_bytes.get(device, 0)
    return held


def fits(plan: Plan, problem: PlacementProblem) -> bool:
    held = plan_memory(plan, problem)
    return all(held[d] <= problem.capacity[d] for d in problem.devices)
