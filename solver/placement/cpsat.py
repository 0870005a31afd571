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
a fixed amount when k is used (the host's token embedding) + ``buffer[k]``, its compute and
output buffers by what it runs (``solver.placement.buffers``: one bound per combination of
``active[k]``, ``output[k]``, ``holds[g][k]`` and not ``active[0]``) <= capacity k.

Objective (integer nanoseconds, from ``solver.cost.model.CostTables``): the time of every part on
its device + a cost per device switch along the graph. Inside a block a layer's switches
depend only on its own pattern (it starts and ends at its block's device). Where a block
ends, the last layer's final part meets the next block's device instead; ``fin[d][x] = 1``
says that part is on x (a layer of the last layer's class on d must take such a pattern), and
``z`` variables (products of booleans) add or remove the one switch that makes the difference.
The extracted plan is priced exactly and the gap is reported against that exact price.

One plan, the same every run (``solve_placement``): a proven optimum is a value, but the plans
reaching it (or coming within the tolerance) are many, and which one the search meets depends
on its workers' timing. So after step 1 (the optimum above), each further step solves a fresh
copy of the model with more constraints to proven optimality, which makes its answer a function
of the problem and the optimum's value only:

2. Anchor: among the optimal plans, the least ``n[1], n[2], ...`` and then the head's device.
3. Readable: on that layout, each *group* (the classes with the same units) is cut, per block,
   into slots in a fixed order (the block's own pattern, then every pattern; or reversed), so
   every pattern other than the own one is one run of layers, whose class counts are linear
   in the slot boundaries' order bits (``[bound > p]``). Its readability cost is what the
   renderer prints (``solver.plan.render.readability``): per (unit, device) rule 1 + its
   runs, joined across layers without the unit, and ``--n-cpu-moe`` for 1 when the experts on
   the CPU are exactly a group's first ones. Among plans at most the tolerance slower than the
   optimum: least cost, then least time, then earliest runs, then the least runs key.
4. If no plan of that form is within the tolerance: the least optimal plan (pattern counts,
   then block endings, lexicographically).

Lexicographic means folding digits into one key per search (``_lex_minimum``). Should step 2-4
run out of time, the search's own plan stands, said so (``Choice.SEARCH``). The bound and gap
stay those of step 1: the true optimum of the model solved.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from ortools.sat.python import cp_model
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from solver.cost.model import MOVABLE, PARTS, CostTables, Objective, estimate_cost
from solver.placement.buffers import (
    HOST,
    HOST_UNITS,
    LAYERS,
    OUTPUT,
    BufferTable,
    combination,
    own_features,
    plan_combinations,
)
from solver.plan.plan import Plan
from solver.plan.render import NO_SCOPE, RuleScope, readability
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
    buffers: BufferTable | None = Field(
        default=None,
        description="per device, compute + output buffers by what it runs (solver.placement."
        "buffers); None: none beyond fixed_bytes",
    )
    objective: Objective = Objective.DECODE
    balanced_prefill_weight: float = Field(
        default=1.0, description="seconds of decode worth one second of prefill per ubatch"
    )
    _layer_units: list[tuple[Unit, ...]] | None = PrivateAttr(default=None)


class Choice(StrEnum):
    """How the plan was picked among those the model finds good enough (``_choose``)."""

    READABLE = "readable"  # the most readable plan within the tolerance
    OPTIMUM = "optimum"  # no plan of the readable form within the tolerance: an optimal one
    SEARCH = "search"  # the search's own: the optimum unproven, or a later step out of time


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
    optimum_seconds: float | None = Field(
        default=None, description="the model's optimum (best found unless proven), seconds"
    )
    slower: float | None = Field(
        default=None,
        description="how much slower the plan is than that optimum, counting the objective's "
        "fixed per-token overhead (0.003: 0.3%)",
    )
    choice: Choice = Choice.SEARCH
    readability: int | None = Field(
        default=None, description="the plan's readability cost (solver.plan.render)"
    )

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
    """The CP-SAT model with handles to the variables extraction and the later stages read."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: cp_model.CpModel
    classes: list[LayerClass]
    n: list[cp_model.IntVar]
    m: dict[tuple[int, int, tuple[int, ...]], cp_model.IntVar]
    fin: list[list[cp_model.IntVar]]
    output: list[cp_model.IntVar]
    cost: Any = Field(description="the objective (a linear expression), integer nanoseconds")
    last_class: list[list[cp_model.IntVar]] = Field(
        description="per block d and class c: the block's last layer is of class c"
    )


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
    fin, last_class = _add_block_endings(cx, starts, active, m)
    cost.extend(_add_boundary_switches(cx, active, last_block, fin, output))
    objective = sum(cost)
    cx.model.minimize(objective)
    return _Model(
        model=cx.model, classes=cx.classes, n=n, m=m, fin=fin, output=output, cost=objective,
        last_class=last_class,
    )  # fmt: skip


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
    class, its layers' fixed weights and KV + the units its patterns put on k, + its
    buffers by what it runs (``_add_buffers``)."""
    model, problem, table = cx.model, cx.problem, cx.problem.table
    buffers = None if problem.buffers is None else _add_buffers(cx, active, output, m)
    for k, device in enumerate(problem.devices):
        used = model.new_bool_var(f"used[{k}]")
        model.add_implication(active[k], used)
        model.add_implication(output[k], used)
        if device == CPU:
            model.add(used == 1)  # the host always runs the input layer
        terms = [problem.output_bytes * output[k], problem.fixed_bytes.get(device, 0) * used]
        if buffers is not None:
            terms.append(buffers[k])
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


def _model_units(classes: Sequence[LayerClass]) -> tuple[Unit, ...]:
    """The movable units any layer of the model has, in ``MOVABLE`` order."""
    return tuple(g for g in MOVABLE if any(g in cls.units for cls in classes))


def layer_units(problem: PlacementProblem) -> list[tuple[Unit, ...]]:
    """Per layer, its movable units as the model sees them (``LayerClass.units``); kept
    with the problem, since the baselines price many plans of one problem."""
    if problem._layer_units is None:
        units: list[tuple[Unit, ...]] = [()] * problem.table.stored.shape[0]
        for cls in layer_classes(problem):
            for il in cls.members:
                units[il] = cls.units
        problem._layer_units = units
    return problem._layer_units


def _add_buffers(
    cx: _Context, active: list[cp_model.IntVar], output: list[cp_model.IntVar], m: _Patterns
) -> list[cp_model.IntVar]:
    """Adds ``buffer[k]``: at least the assumed bytes of device k's combination
    (``solver.placement.buffers``), one bound per combination enforced by exactly its
    literals: runs layers ``active[k]``, holds the head ``output[k]``, holds unit g
    ``holds[g][k]`` (``_add_holds``), full offload not ``active[0]``, and for the op-offload
    GPU the host's layers and units. Returns buffer[k]."""
    model, problem = cx.model, cx.problem
    table = problem.buffers
    assert table is not None
    units = _model_units(cx.classes)
    own = own_features(units)
    literals = [
        {LAYERS: active[k], OUTPUT: output[k], **_add_holds(cx, units, k, m)}
        for k in range(cx.n_dev)
    ]
    host = {HOST + f: literals[0][f] for f in (LAYERS, *HOST_UNITS) if f in literals[0]}
    modes = _add_offload_modes(cx, active, m)
    buffers = []
    for k, device in enumerate(problem.devices):
        literal = {**literals[k], **host}
        extra = tuple(host) if device == table.offload else ()
        bounds: list[tuple[int, list[cp_model.IntVar]]] = []
        for size in range(len(own) + 1):
            for chosen in itertools.combinations(own, size):
                exact = [literal[f] if f in chosen else literal[f].Not() for f in own]
                variants = list(modes.items()) if chosen else [((False, False), [])]
                for (full, pipelined), mode in variants:
                    for on_host in _subsets(extra):
                        if extra and chosen and (HOST + LAYERS in on_host) == full:
                            continue  # the host runs layers unless all are offloaded
                        combo = combination(chosen, full, on_host, pipelined)
                        copied = [literal[f] if f in on_host else literal[f].Not() for f in extra]
                        bounds.append((table.bytes_for(device, combo), exact + mode + copied))
        buffer = model.new_int_var(0, max(nbytes for nbytes, _ in bounds), f"buffer[{k}]")
        for nbytes, condition in bounds:
            if nbytes:
                model.add(buffer >= nbytes).only_enforce_if(condition)
        buffers.append(buffer)
    return buffers


def _add_offload_modes(
    cx: _Context, active: list[cp_model.IntVar], m: _Patterns
) -> dict[tuple[bool, bool], list[cp_model.IntVar]]:
    """The literals of (full offload, pipelined): partial offload ``active[0]``; with several
    GPUs, ``pipeline`` = not ``active[0]`` and ``plain`` (no unit moved off its layer's
    device: no ``-ot``), which llama.cpp pipelines (``solver.placement.buffers.pipelines``)."""
    full = active[0].Not()
    if cx.n_dev < 3:
        return {(False, False): [active[0]], (True, False): [full]}
    model = cx.model
    plain = model.new_bool_var("plain")
    moved = []
    for (c, d, pattern), var in m.items():
        if any(t != d for t in pattern):
            model.add(var <= len(cx.classes[c].members) * (1 - plain))
            moved.append(var)
    model.add(sum(moved) + plain >= 1)
    pipeline = _product(model, full, plain, "pipeline")
    return {(False, False): [active[0]], (True, False): [full, pipeline.Not()],
            (True, True): [pipeline]}  # fmt: skip


def _subsets(items: Sequence[str]) -> list[tuple[str, ...]]:
    return [c for size in range(len(items) + 1) for c in itertools.combinations(items, size)]


def _add_holds(
    cx: _Context, units: Sequence[Unit], k: int, m: _Patterns
) -> dict[str, cp_model.IntVar]:
    """Adds ``holds[g][k]`` <=> some pattern count putting unit g on device k is positive
    (both ways: a combination's bound must not be dodged by a false literal)."""
    model, classes = cx.model, cx.classes
    holds = {}
    for g in units:
        var = model.new_bool_var(f"holds[{g}][{k}]")
        placing = [
            (count, len(classes[c].members))
            for (c, _, pattern), count in m.items()
            if g in classes[c].units and pattern[classes[c].units.index(g)] == k
        ]
        for count, most in placing:
            model.add(count <= most * var)
        model.add(sum(count for count, _ in placing) >= var)
        holds[g] = var
    return holds


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
) -> tuple[list[list[cp_model.IntVar]], list[list[cp_model.IntVar]]]:
    """Adds ``fin[d][x]``: block d's last part runs on x (one x if d is active, none
    otherwise). The block's last layer is layer ``s[d+1] - 1``; via ``last_layer[d]``,
    ``last_class[d]`` and one boolean per class, some layer of that class on d must take a
    pattern ending on x (same-class layers of a block can swap, so it can be the last one).
    Returns fin and, per block, those booleans."""
    model, n_dev, n_layers, classes = cx.model, cx.n_dev, cx.n_layers, cx.classes
    class_of_layer = [0] * n_layers
    for c, cls in enumerate(classes):
        for il in cls.members:
            class_of_layer[il] = c
    fin, last_is = [], []
    for d in range(n_dev):
        row = [model.new_bool_var(f"fin[{d}][{x}]") for x in range(n_dev)]
        model.add(sum(row) == active[d])
        last_layer = model.new_int_var(0, max(n_layers - 1, 0), f"last_layer[{d}]")
        model.add_max_equality(last_layer, [starts[d + 1] - 1, 0])
        last_class = model.new_int_var(0, max(len(classes) - 1, 0), f"last_class[{d}]")
        model.add_element(last_layer, class_of_layer, last_class)
        is_class = []
        for c in range(len(classes)):
            is_c = model.new_bool_var(f"last_class[{d}]=={c}")
            model.add(last_class == c).only_enforce_if(is_c)
            model.add(last_class != c).only_enforce_if(is_c.Not())
            is_class.append(is_c)
            for x in range(n_dev):
                ending = [
                    var
                    for (cc, dd, pattern), var in m.items()
                    if cc == c and dd == d and _final_device(pattern, d) == x
                ]
                model.add(sum(ending) >= 1).only_enforce_if([row[x], is_c])
        fin.append(row)
        last_is.append(is_class)
    return fin, last_is


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
    output = next(k for k, var in enumerate(built.output) if solver.value(var))
    return _plan_of(built.classes, devices, sizes, patterns, output)


def _plan_of(
    classes: list[LayerClass],
    devices: tuple[str, ...],
    sizes: list[int],
    patterns: list[tuple[int, ...]],
    output: int,
) -> Plan:
    """The plan of per-device layer counts, each layer's pattern and the head's device."""
    n_layers = len(patterns)
    layer_device = [k for k in range(len(devices)) for _ in range(sizes[k])]
    class_of = {il: c for c, cls in enumerate(classes) for il in cls.members}
    overrides: dict[Unit, tuple[str | None, ...]] = {}
    for g in MOVABLE:
        moved: list[str | None] = [None] * n_layers
        for il in range(n_layers):
            units = classes[class_of[il]].units
            if g in units:
                target = patterns[il][units.index(g)]
                moved[il] = devices[target] if target != layer_device[il] else None
        if any(moved):
            overrides[g] = tuple(moved)
    return Plan(
        gpus=devices[1:],
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
    tolerance: float = 0.0,
    scope: RuleScope = NO_SCOPE,
) -> PlacementResult:
    """Build, seed, solve and extract; every solver status becomes a typed result.

    Step 1 searches for the optimum (``time_limit_s``, ``workers``). Once it is proven, steps
    2-4 (``_choose``, another ``time_limit_s`` at most) pick one plan among those within
    ``tolerance`` of it, the same whatever the search or worker count: the most readable one
    (``scope`` says what the rules may name), else the optimum, each broken lexicographically.
    """
    started = time.perf_counter()
    built = build_model(problem)
    if hint is not None:
        add_hint(built, hint, problem.devices)
    folded = _fold_anchor(built, problem)
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
    optimum_ns = round(solver.value(built.cost))
    bound_ns = solver.best_objective_bound
    if folded is not None:  # a bound on cost * folded + key, the key below folded
        bound_ns = optimum_ns if status is SolveStatus.OPTIMAL else (bound_ns - folded + 1) / folded
    pick = _Pick(
        plan=extract_plan(solver, built, problem.devices, n_layers),
        model_ns=optimum_ns,
        choice=Choice.SEARCH,
    )
    if len(problem.devices) == 1:  # everything on the host: there is one plan only
        pick = pick.model_copy(update={"choice": Choice.READABLE})
    elif status is SolveStatus.OPTIMAL and relative_gap == 0:
        seed = list(solver.response_proto.solution)
        anchor = None if folded is None else _anchor_of(solver, built)
        chosen = _choose(
            problem, optimum_ns, seed, tolerance, scope, anchor,
            seconds=time_limit_s, workers=workers,
        )  # fmt: skip
        pick = chosen or pick
    exact = plan_seconds(pick.plan, problem)
    bound = min(bound_ns / NS, exact)
    if status is SolveStatus.OPTIMAL and exact > pick.model_ns / NS * (1 + 1e-5):
        status = SolveStatus.FEASIBLE  # rounding of the model's integer nanoseconds
    overhead = _overhead_ns(problem) / NS
    optimum = optimum_ns / NS
    return PlacementResult(
        status=status,
        plan=pick.plan,
        objective_seconds=exact,
        bound_seconds=bound,
        solve_seconds=time.perf_counter() - started,
        n_variables=n_vars,
        optimum_seconds=optimum,
        slower=max(0.0, (exact + overhead) / (optimum + overhead) - 1) if optimum > 0 else 0.0,
        choice=pick.choice,
        readability=(
            readability(pick.plan, scope)
            if pick.model_readability is None
            else pick.model_readability
        ),
    )


def _overhead_ns(problem: PlacementProblem) -> int:
    """The fixed per-token time outside the objective's sum (decode only), in ns: the
    tolerance and the reported slowdown are relative to the whole time."""
    if problem.objective is Objective.PREFILL:
        return 0
    return round(problem.tables.token_overhead * NS)


# --- steps 2-4: one plan among the equally good ---------------------------------------------


class _Pick(BaseModel):
    """A plan, its value in the model's integer nanoseconds, and how it was chosen."""

    model_config = ConfigDict(frozen=True)

    plan: Plan
    model_ns: int
    choice: Choice
    model_readability: int | None = None  # step 3's cost, the plan's readability at its optimum


def _choose(
    problem: PlacementProblem,
    optimum_ns: int,
    seed: list[int],
    tolerance: float,
    scope: RuleScope,
    anchor: _Anchor | None,
    *,
    seconds: float,
    workers: int,
) -> _Pick | None:
    """Steps 2-4 after a proven optimum; None if one of them runs out of time.

    Each step is a fresh model of the same problem with more constraints, solved to proven
    optimality, so what it returns depends only on the problem and the optimum's value:
    2. the anchor: the least (layers per GPU, head device) of an optimal plan (``_anchor``,
       unless step 1 found it already: ``_fold_anchor``);
    3. with that layout, the most readable plan within the tolerance, then the fastest, the
       earliest and the least (``_readable``);
    4. if no plan of step 3's form is that fast: the least optimal plan (``_least_optimum``).
    """
    deadline = time.perf_counter() + seconds
    if anchor is None:
        anchored = _anchor(problem, optimum_ns, seed, deadline=deadline, workers=workers)
        if anchored is None:
            return None
        anchor, seed = anchored
    limit_ns = optimum_ns + math.floor((optimum_ns + _overhead_ns(problem)) * tolerance)
    status, pick = _readable(
        problem, anchor, optimum_ns, limit_ns, scope, deadline=deadline, workers=workers
    )
    if status is SolveStatus.INFEASIBLE:
        return _least_optimum(problem, anchor, optimum_ns, seed, deadline=deadline, workers=workers)
    return pick


class _Anchor(BaseModel):
    """The block layout steps 3 and 4 keep: layers per device and the head's device."""

    model_config = ConfigDict(frozen=True)

    sizes: tuple[int, ...]
    output: int


def _search(
    model: cp_model.CpModel, *, seconds: float, workers: int
) -> tuple[SolveStatus, cp_model.CpSolver]:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(seconds, 0.01)
    solver.parameters.num_workers = workers
    solver.parameters.cp_model_probing_level = 0  # as in step 1
    code = solver.solve(model)
    return _STATUS.get(code, SolveStatus.UNKNOWN), solver


def _seed(model: cp_model.CpModel, values: Sequence[int]) -> None:
    """Hint the first ``len(values)`` variables: a fresh build of the same problem numbers
    its variables identically, so one step's solution seeds the next."""
    model.clear_hints()
    for index, value in enumerate(values):
        model.add_hint(model.get_int_var_from_proto_index(index), value)


_KEY_LIMIT = 2**50  # one folded key stays well inside CP-SAT's 64-bit sums

_Digit = tuple[Any, int]  # (linear expression, base: its values lie in [0, base))


def _lex_minimum(
    model: cp_model.CpModel,
    digits: Sequence[_Digit],
    seed: Sequence[int] | None,
    *,
    deadline: float,
    workers: int,
) -> cp_model.CpSolver | None:
    """The lexicographically least ``digits``: chunks folded into one key each, minimised
    and fixed in turn. None if a search ends without proof (time, or no solution)."""
    position = 0
    while True:
        chunk: list[_Digit] = []
        size = 1
        while position < len(digits) and (not chunk or size * digits[position][1] < _KEY_LIMIT):
            chunk.append(digits[position])
            size *= digits[position][1]
            position += 1
        key: Any = 0
        for expr, base in chunk:
            key = key * base + expr
        if chunk:
            model.minimize(key)
        else:
            model.clear_objective()
        if seed is not None:
            _seed(model, seed)
        status, solver = _search(model, seconds=deadline - time.perf_counter(), workers=workers)
        if status is not SolveStatus.OPTIMAL:
            return None
        if position >= len(digits):
            return solver
        model.add(key == round(solver.objective_value))
        seed = list(solver.response_proto.solution)


_FOLD_LIMIT = 2**60  # cost * key range + key must stay inside CP-SAT's 64-bit sums


def _anchor_digits(built: _Model, problem: PlacementProblem) -> list[_Digit]:
    """Step 2's key: the layers of GPU 1, 2, ..., then the head's device."""
    n_layers, n_dev = problem.table.stored.shape[0], len(problem.devices)
    digits: list[_Digit] = [(var, n_layers + 1) for var in built.n[1:]]
    digits.append((sum(k * var for k, var in enumerate(built.output)), n_dev))
    return digits


def _fold_anchor(built: _Model, problem: PlacementProblem) -> int | None:
    """Step 2 inside step 1, when the numbers allow: minimise cost * K + key with K above
    every key, so a proven optimum is also the least key among the optimal plans (one search
    instead of two, about as fast as the plain one). Returns K, or None (cost could
    overflow: step 2 searches on its own)."""
    proto = built.model.proto
    most = sum(
        abs(coefficient) * max(abs(bound) for bound in proto.variables[var].domain)
        for var, coefficient in zip(proto.objective.vars, proto.objective.coeffs, strict=True)
    )
    digits = _anchor_digits(built, problem)
    scale = math.prod(base for _, base in digits)
    if (most + 1) * scale >= _FOLD_LIMIT:
        return None
    key: Any = 0
    for expr, base in digits:
        key = key * base + expr
    built.model.minimize(built.cost * scale + key)
    return scale


def _anchor_of(solver: cp_model.CpSolver, built: _Model) -> _Anchor:
    return _Anchor(
        sizes=tuple(solver.value(var) for var in built.n),
        output=next(k for k, var in enumerate(built.output) if solver.value(var)),
    )


def _anchor(
    problem: PlacementProblem,
    optimum_ns: int,
    seed: list[int],
    *,
    deadline: float,
    workers: int,
) -> tuple[_Anchor, list[int]] | None:
    """Step 2: among the optimal plans, the least layer counts of GPU 1, 2, ... and then the
    head's device; with the solution, to seed the next steps."""
    built = build_model(problem)
    built.model.add(built.cost <= optimum_ns)
    digits = _anchor_digits(built, problem)
    solver = _lex_minimum(built.model, digits, seed, deadline=deadline, workers=workers)
    if solver is None:
        return None
    return _anchor_of(solver, built), list(solver.response_proto.solution)


def _fix_anchor(built: _Model, anchor: _Anchor) -> None:
    for var, size in zip(built.n, anchor.sizes, strict=True):
        built.model.add(var == size)
    built.model.add(built.output[anchor.output] == 1)


def _readable(
    problem: PlacementProblem,
    anchor: _Anchor,
    optimum_ns: int,
    limit_ns: int,
    scope: RuleScope,
    *,
    deadline: float,
    workers: int,
) -> tuple[SolveStatus, _Pick | None]:
    """Step 3: on the anchor's layout, the plan of segment form (``_add_segments``) at most
    ``limit_ns``, least by (readability, model time, sum of run starts, then its key in
    order). INFEASIBLE if no such plan is that fast (or the form does not apply)."""
    built = build_model(problem)
    _fix_anchor(built, anchor)
    segments = _add_segments(built, problem, anchor, scope)
    if segments is None:
        return SolveStatus.INFEASIBLE, None
    model = built.model
    model.add(built.cost <= limit_ns)
    per_ns = segments.most_tiebreak + 1
    per_rule = (limit_ns - optimum_ns + 1) * per_ns
    objective = segments.cost * per_rule + (built.cost - optimum_ns) * per_ns
    objective += segments.tiebreak
    model.minimize(objective)
    status, solver = _search(model, seconds=deadline - time.perf_counter(), workers=workers)
    if status is not SolveStatus.OPTIMAL:
        return status, None
    model.add(objective <= round(solver.objective_value))
    seed = list(solver.response_proto.solution)
    solver = _lex_minimum(model, segments.key, seed, deadline=deadline, workers=workers)
    if solver is None:
        return SolveStatus.UNKNOWN, None
    plan = _segment_plan(solver, built, segments, problem.devices, anchor)
    return SolveStatus.OPTIMAL, _Pick(
        plan=plan,
        model_ns=solver.value(built.cost),
        choice=Choice.READABLE,
        model_readability=solver.value(segments.cost),
    )


def _least_optimum(
    problem: PlacementProblem,
    anchor: _Anchor,
    optimum_ns: int,
    seed: list[int],
    *,
    deadline: float,
    workers: int,
) -> _Pick | None:
    """Step 4: on the anchor's layout, the optimal plan with the least pattern counts (then
    block endings), extracted as step 1's."""
    built = build_model(problem)
    _fix_anchor(built, anchor)
    built.model.add(built.cost <= optimum_ns)
    digits: list[_Digit] = [
        (var, len(built.classes[c].members) + 1) for (c, _, _), var in built.m.items()
    ]
    digits += [(var, 2) for row in built.fin for var in row]
    solver = _lex_minimum(built.model, digits, seed, deadline=deadline, workers=workers)
    if solver is None:
        return None
    plan = extract_plan(solver, built, problem.devices, problem.table.stored.shape[0])
    return _Pick(plan=plan, model_ns=optimum_ns, choice=Choice.OPTIMUM)


# --- step 3's form: each kind of layer's units in runs ---------------------------------------


@dataclass(frozen=True)
class _Slots:
    """One group's layers inside one block (a *group*: the layer classes with the same units),
    cut into consecutive slots. In order ``forward`` slot i takes ``order[i]``, otherwise
    ``order[S-1-i]``; ``order`` is the block's own pattern (units follow the layer), then every
    pattern in ``LayerClass.patterns`` order, so each pattern other than the own one is one
    run, and a run towards an earlier device can sit anywhere between two own runs."""

    block: int
    first: int  # the group's layers below the block: positions are counted from here
    members: tuple[int, ...]  # the block's layers of the group, ascending
    order: tuple[tuple[int, ...], ...]
    forward: cp_model.IntVar
    bounds: tuple[Any, ...]  # S + 1 boundaries, offsets into members (0 and len at the ends)
    filled: tuple[cp_model.IntVar, ...]  # slot i is not empty

    def pattern(self, i: int, forward: bool) -> tuple[int, ...]:
        return self.order[i] if forward else self.order[len(self.order) - 1 - i]


@dataclass(frozen=True)
class _Segments:
    """What ``_add_segments`` adds: the readability cost (``solver.plan.render.readability``
    of the plan), a tie-break (sum of the runs' starts), and the key that fixes the plan."""

    cost: Any
    tiebreak: Any
    most_tiebreak: int
    key: list[_Digit]
    slots: list[_Slots]


def _add_segments(
    built: _Model, problem: PlacementProblem, anchor: _Anchor, scope: RuleScope
) -> _Segments | None:
    """Adds step 3's form on the anchor's layout and its readability cost; None if a unit
    belongs to two groups (its rule's ranges would interleave them: step 4 then)."""
    groups: dict[tuple[Unit, ...], list[int]] = {}
    for c, cls in enumerate(built.classes):
        if cls.units:
            groups.setdefault(cls.units, []).append(c)
    units = [g for group in groups for g in group]
    if len(units) != len(set(units)):
        return None
    starts = list(itertools.accumulate(anchor.sizes, initial=0))
    cost: list[Any] = []
    tiebreak: list[Any] = []
    key: list[_Digit] = []
    every: list[_Slots] = []
    for group, group_classes in groups.items():
        members = sorted(il for c in group_classes for il in built.classes[c].members)
        slots = []
        for k in range(len(problem.devices)):
            inside = tuple(il for il in members if starts[k] <= il < starts[k + 1])
            if not inside:
                continue
            first = sum(1 for il in members if il < starts[k])
            block = _add_slots(built, group, group_classes, k, first, inside)
            _add_block_end(built, block, starts[k + 1] - 1)
            key.extend(_add_runs_key(built, block, tiebreak))
            slots.append(block)
        cost += _add_rule_costs(built, group, slots, scope)
        every += slots
    most = sum(len(block.members) * (len(block.order) - 2) for block in every)  # starts' sum
    return _Segments(cost=sum(cost), tiebreak=sum(tiebreak), most_tiebreak=most, key=key,
                     slots=every)  # fmt: skip


def _order_bits(model: cp_model.CpModel, var: cp_model.IntVar, size: int, name: str) -> list:
    """``[var > p]`` for p = 0..size-1 (monotone): counts below ``var`` become linear sums."""
    bits = [model.new_bool_var(f"{name}>{p}") for p in range(size)]
    for higher, lower in itertools.pairwise(bits):
        model.add_implication(lower, higher)
    model.add(var == sum(bits))
    return bits


def _add_slots(
    built: _Model,
    group: tuple[Unit, ...],
    group_classes: list[int],
    k: int,
    first: int,
    inside: tuple[int, ...],
) -> _Slots:
    """Adds one block's slots for a group: the orientation, the inner boundaries (as order
    bits), which slots are filled, and the class counts of each pattern they imply
    (``m[c][k][pi]`` equals them)."""
    model, n_dev = built.model, len(built.n)
    size = len(inside)
    every = built.classes[group_classes[0]].patterns(n_dev)
    # Later units (shared experts) stay with the layer or go with the first (routed experts).
    patterns = [p for p in every if all(d in (k, p[0]) for d in p[1:])]
    for c in group_classes:
        for pattern in every:
            if pattern not in patterns:
                model.add(built.m[c, k, pattern] == 0)
    order = ((k,) * len(group), *patterns)
    name = f"{','.join(group)}[{k}]"
    forward = model.new_bool_var(f"forward[{name}]")
    bits: list[list[Any]] = [[0] * size]
    for i in range(1, len(order)):
        bound = model.new_int_var(0, size, f"bound[{name}][{i}]")
        bits.append(_order_bits(model, bound, size, f"bound[{name}][{i}]"))
    bits.append([1] * size)
    for lower, upper in itertools.pairwise(bits[1:-1]):
        for a, b in zip(lower, upper, strict=True):
            model.add_implication(a, b)  # boundaries in order
    bounds = tuple(sum(row) for row in bits)
    filled = []
    for i in range(len(order)):
        nonempty = model.new_bool_var(f"filled[{name}][{i}]")
        model.add(bounds[i + 1] - bounds[i] >= 1).only_enforce_if(nonempty)
        model.add(bounds[i + 1] - bounds[i] == 0).only_enforce_if(nonempty.Not())
        filled.append(nonempty)
    last = len(order)
    for c in group_classes:
        of_c = set(built.classes[c].members)
        below = [sum(row[p] for p in range(size) if inside[p] in of_c) for row in bits]
        for pattern in patterns:
            runs = [i for i, p in enumerate(order) if p == pattern]
            there = built.m[c, k, pattern]
            ahead = sum(below[i + 1] - below[i] for i in runs)
            behind = sum(below[last - i] - below[last - 1 - i] for i in runs)
            model.add(there == ahead).only_enforce_if(forward)
            model.add(there == behind).only_enforce_if(forward.Not())
    return _Slots(block=k, first=first, members=inside, order=order, forward=forward,
                  bounds=bounds, filled=tuple(filled))  # fmt: skip


def _add_block_end(built: _Model, block: _Slots, last_layer: int) -> None:
    """If the block's last layer is of this group, its pattern (the last filled slot's)
    ends where ``fin`` says, as step 1's cost of block boundaries assumes."""
    if last_layer != block.members[-1]:
        return
    model, slots = built.model, len(block.order)
    last_filled = []
    for i in range(slots):
        is_last = model.new_bool_var(f"last_filled[{block.block}][{i}]")
        later = block.filled[i + 1 :]
        model.add_bool_and([block.filled[i], *(f.Not() for f in later)]).only_enforce_if(is_last)
        model.add_bool_or([block.filled[i].Not(), *later, is_last])
        last_filled.append(is_last)
    for x, ends_on_x in enumerate(built.fin[block.block]):
        for forward in (True, False):
            ending = [
                last_filled[i]
                for i in range(slots)
                if _final_device(block.pattern(i, forward), block.block) == x
            ]
            orientation = block.forward if forward else block.forward.Not()
            model.add(sum(ending) >= 1).only_enforce_if([ends_on_x, orientation])


def _add_runs_key(built: _Model, block: _Slots, tiebreak: list[Any]) -> list[_Digit]:
    """Adds, per pattern other than the block's own, its run's start and length (start 0
    when empty): they fix the plan whatever the slots' orientation. Returns them as digits
    and adds the starts to ``tiebreak`` (runs early in their block)."""
    model, slots, size = built.model, len(block.order), len(block.members)
    digits: list[_Digit] = []
    for j in range(1, slots):
        if block.order[j] == block.order[0]:
            continue
        name = f"run[{block.block}][{block.order[j]}]"
        start = model.new_int_var(0, size, f"{name}.start")
        length = model.new_int_var(0, size, f"{name}.length")
        there = model.new_bool_var(f"{name}.there")
        model.add(length >= 1).only_enforce_if(there)
        model.add(length == 0).only_enforce_if(there.Not())
        mirror = slots - 1 - j
        for i, orientation in ((j, block.forward), (mirror, block.forward.Not())):
            model.add(length == block.bounds[i + 1] - block.bounds[i]).only_enforce_if(orientation)
            model.add(start == block.bounds[i]).only_enforce_if([orientation, there])
        model.add(start == 0).only_enforce_if(there.Not())
        digits += [(start, size + 1), (length, size + 1)]
        tiebreak.append(start)
    return digits


def _when(
    model: cp_model.CpModel, filled: cp_model.IntVar, forward: cp_model.IntVar,
    ahead: bool, behind: bool, name: str,
) -> cp_model.IntVar | None:  # fmt: skip
    """The literal 'slot filled, and its pattern has the property' given whether the
    property holds in forward (``ahead``) and reversed (``behind``) order; None if never."""
    if ahead and behind:
        return filled
    if not (ahead or behind):
        return None
    orientation = forward if ahead else forward.Not()
    both = model.new_bool_var(name)
    model.add_bool_and([filled, orientation]).only_enforce_if(both)
    model.add_bool_or([filled.Not(), orientation.Not(), both])
    return both


def _add_rule_costs(
    built: _Model, group: tuple[Unit, ...], blocks: list[_Slots], scope: RuleScope
) -> list[Any]:
    """Adds, per unit g of the group and device t, the rule moving g to t: whether it is
    needed and one boolean per run (a filled slot moving g to t with no such slot before it
    since the last slot that does not: layers without the unit are not in the group, so runs
    join across them as the renderer's ranges do). Returns the cost terms: rule + runs, and
    -1 for ``--n-cpu-moe`` when it can say the experts' CPU rule (``_add_n_cpu_moe``)."""
    model, n_dev = built.model, len(built.n)
    terms: list[Any] = []
    for u, g in enumerate(group):
        for t in range(n_dev):
            rule = model.new_bool_var(f"rule[{g}][{t}]")
            carry: Any = 0
            runs = []
            for block in blocks:
                for i in range(len(block.order)):
                    name = f"[{g}][{t}][{block.block}][{i}]"
                    ahead = block.pattern(i, True)[u] == t
                    behind = block.pattern(i, False)[u] == t
                    if block.block == t:
                        moves, stops = None, block.filled[i]
                    else:
                        moves = _when(model, block.filled[i], block.forward, ahead, behind,
                                      f"moves{name}")  # fmt: skip
                        stops = _when(model, block.filled[i], block.forward, not ahead,
                                      not behind, f"stops{name}")  # fmt: skip
                    carried = model.new_bool_var(f"carried{name}")
                    model.add(carried <= carry + (0 if moves is None else moves))
                    if stops is not None:
                        model.add(carried + stops <= 1)
                    if moves is not None:
                        run = model.new_bool_var(f"run{name}")
                        model.add(run >= moves - carry)
                        model.add(rule >= run)
                        runs.append(run)
                    carry = carried
            if not runs:
                continue
            terms += [rule, *runs]
            if scope.n_cpu_moe and g is Unit.EXPERTS and t == 0:
                terms.append(-_add_n_cpu_moe(built, u, blocks, rule))
    return terms


def _add_n_cpu_moe(
    built: _Model, u: int, blocks: list[_Slots], rule: cp_model.IntVar
) -> cp_model.IntVar:
    """Adds ``n_cpu_moe``: the experts on the CPU (unit u of the group; on CPU layers too)
    are exactly the group's first ones, so ``--n-cpu-moe N`` says the experts' CPU rule: every
    filled slot with experts on the CPU ends within their count. Only with that rule."""
    model = built.model
    n_cpu_moe = model.new_bool_var("n_cpu_moe")
    model.add_implication(n_cpu_moe, rule)
    on_cpu: list[tuple[cp_model.IntVar, Any]] = []
    count: list[Any] = []
    for block in blocks:
        for i in range(len(block.order)):
            ahead = block.pattern(i, True)[u] == 0
            behind = block.pattern(i, False)[u] == 0
            literal = _when(model, block.filled[i], block.forward, ahead, behind,
                            f"cpu_experts[{block.block}][{i}]")  # fmt: skip
            if literal is None:
                continue
            length = block.bounds[i + 1] - block.bounds[i]
            if ahead and behind:
                count.append(length)
            else:
                held = model.new_int_var(0, len(block.members), f"cpu_held[{block.block}][{i}]")
                model.add(held == length).only_enforce_if(literal)
                model.add(held == 0).only_enforce_if(literal.Not())
                count.append(held)
            on_cpu.append((literal, block.first + block.bounds[i + 1]))
    total = sum(count)
    for literal, end in on_cpu:
        model.add(end <= total).only_enforce_if([n_cpu_moe, literal])
    return n_cpu_moe


def _segment_plan(
    solver: cp_model.CpSolver,
    built: _Model,
    segments: _Segments,
    devices: tuple[str, ...],
    anchor: _Anchor,
) -> Plan:
    """The plan of step 3's solution: each slot's pattern on its layers."""
    n_layers = sum(anchor.sizes)
    patterns: list[tuple[int, ...]] = [()] * n_layers
    for block in segments.slots:
        forward = bool(solver.value(block.forward))
        bounds = [int(solver.value(b)) for b in block.bounds]
        for i in range(len(block.order)):
            for p in range(bounds[i], bounds[i + 1]):
                patterns[block.members[p]] = block.pattern(i, forward)
    return _plan_of(built.classes, devices, list(anchor.sizes), patterns, anchor.output)


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
    table = problem.buffers
    if table is not None:
        combos = plan_combinations(plan, problem.devices, layer_units(problem), table.offload)
        for device, combo in combos.items():
            held[device] += table.bytes_for(device, combo)
    return held


def fits(plan: Plan, problem: PlacementProblem) -> bool:
    held = plan_memory(plan, problem)
    return all(held[d] <= problem.capacity[d] for d in problem.devices)
