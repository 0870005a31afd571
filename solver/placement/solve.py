"""``fit solve``: the best placement of a model on a rig, verified against the memory model.

The steps, each its own function:

1. Resolve each candidate (context, KV type) once (``solver.placement.setting``): its
   workload arguments parsed as llama-server parses them, the context llama.cpp resolves, the
   KV bytes of every layer, the cost tables.
2. Fixed bytes per device before any plan: compute and output buffers and host-only tensors,
   from the full memory model (``solver.llama.memory``) on two reference plans.
3. Build the CP-SAT problem (``solver.placement.cpsat``), seed it with the best baseline plan,
   solve it (the optimum, then among plans within the request's ``tolerance`` of it the most
   readable, picked the same way every run), and render the plan as ``-ngl/-ts/-ot`` (or
   ``--n-cpu-moe``); the report says what readability cost (``Readability``).
4. Verify: parse the rendered arguments back as llama.cpp would, run the full memory model,
   check every tensor lands where the plan put it and every device stays within capacity.
   A device over capacity because its buffers came out larger than assumed gets the measured
   size as its fixed cost; otherwise its budget is cut by the excess; then the problem is
   solved again, at most ``MAX_ROUNDS`` rounds. Each such decision is kept in the report.
   A model whose compute buffers fit cannot model is refused (``BadInput``), unless the
   request states a margin to assume for them (``unmodelled_margin_bytes``); the report
   then says so (``unmodelled`` and a note).
5. Pick among the feasible candidates: the largest context first, then the KV type listed
   first unless a later one is faster by ``KV_SPEEDUP``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from solver.cost.fidelity import corpus_intervals
from solver.cost.model import MOVABLE, CostCoefficients, CostEstimate, Objective, estimate_cost
from solver.errors import BadInput, OperationFailed
from solver.gguf.inventory import Inventory
from solver.hardware.scenario import Hardware
from solver.llama.args import LLM_FFN_EXPS_REGEX, parse_llama_args
from solver.llama.device_map import CpuFeatures
from solver.llama.memory import MemoryReport, Unmodelled, estimate_memory
from solver.placement.baselines import BASELINES
from solver.placement.buffers import (
    BufferBook,
    BufferTable,
    Learned,
    describe,
    offload_device,
    plan_combination,
    plan_combinations,
)
from solver.placement.cpsat import (
    Choice,
    PlacementProblem,
    PlacementResult,
    SolveStatus,
    fits,
    layer_units,
    plan_seconds,
    solve_placement,
)
from solver.placement.setting import (
    Setting,
    SolveRequest,
    buffer_names,
    capacities,
    local_gpu_buffers,
    placement_problem,
    resolve_setting,
)
from solver.plan.plan import Plan, split_slots
from solver.plan.render import NO_SCOPE, RuleScope, placement_args
from solver.plan.strategy import STRATEGY_TITLES, classify, rationale
from solver.plan.units import LayerTable, Unit, unit_of
from solver.quantities import CPU, GIB, MIB

__all__ = ["SolveReport", "SolveRequest", "solve"]

MAX_ROUNDS = 8
KV_SPEEDUP = 1.05

# A generic desktop CPU for rigs described by a scenario: AVX2, no AVX-512 or AMX. It only
# decides which host weights llama.cpp repacks, which moves bytes between host buffers.
SCENARIO_CPU = CpuFeatures(avx2=True)


class DeviceBudget(BaseModel):
    """What one device holds under the plan (bytes), from the full memory model."""

    model_config = ConfigDict(frozen=True)

    weights: int
    repack: int
    kv: int
    compute: int
    output: int
    total: int = Field(description="all buffers as llama.cpp reports them")
    resident: int = Field(
        description="bytes that must stay in memory: for the host with mmap, only the weights "
        "it runs, not the whole mapped span of the file (GPU weights inside it are read once)"
    )
    capacity: int = Field(description="memory of the device before the margin")
    budget: int = Field(description="what fit let the plan use: capacity minus margin")
    runs: str = Field(default="", description="what the device runs: its buffers' combination")
    assumed_buffers: int = Field(
        default=0,
        description="compute + output bytes the solved model assumed for that combination "
        "(compute + output is what the replay gave)",
    )


class RoundDecision(BaseModel):
    """What one verification round learned about one device (step 4)."""

    model_config = ConfigDict(frozen=True)

    round: int = Field(description="the round whose plan's replay taught it (1-based)")
    device: str
    over_mib: float = Field(
        description="resident bytes beyond the budget, MiB (0 or less: the plan fit there)"
    )
    action: str = Field(description="'learned buffers' (up or down) or 'cut budget'")
    runs: str = Field(default="", description="learned: the combination whose buffers changed")
    from_mib: float = Field(description="assumed buffers (learned) or budget (cut) before, MiB")
    to_mib: float = Field(description="the same after, MiB")


class Shortfall(BaseModel):
    """Why nothing fits, in bytes, and what would."""

    model_config = ConfigDict(frozen=True)

    needed: int = Field(description="weights + KV + buffers of the smallest arrangement")
    available: int = Field(description="all budgets together")
    budgets: dict[str, int] = Field(default_factory=dict, description="per device, bytes")
    suggestions: tuple[str, ...]


class Readability(BaseModel):
    """What the plan gave up for readability: among the plans within ``tolerance`` of the
    model's optimum, the one with the fewest ``-ot`` rules and ranges (step 3)."""

    model_config = ConfigDict(frozen=True)

    choice: Choice = Field(
        description="readable: the most readable plan within the tolerance; optimum: no plan "
        "of contiguous runs was, so an optimal one; search: the search's own plan (optimum "
        "not proven, or out of time), which another run may not repeat"
    )
    tolerance: float = Field(description="as asked (0.005: 0.5%)")
    cost: int = Field(description="-ot rules + their layer ranges + 1 for --n-cpu-moe")
    slower: float = Field(description="how much slower than the optimum (0.003: 0.3%)")
    optimum_decode_tps: float | None = Field(
        default=None, description="the optimum's decode t/s (decode objective)"
    )
    optimum_prefill_tps: float | None = Field(
        default=None, description="the optimum's prefill t/s (prefill objective)"
    )


class SolveReport(BaseModel):
    """Everything ``fit solve`` prints and ``--write-profile`` writes."""

    model_config = ConfigDict(frozen=True)

    status: SolveStatus
    solve_seconds: float
    gap: float | None = None
    context: int
    kv_type: str
    strategy: str | None = None
    strategy_title: str | None = None
    rationale: str | None = None
    args: tuple[str, ...] = ()
    decode_tps: float | None = None
    prefill_tps: float | None = None
    graph_splits: int | None = None
    devices: dict[str, DeviceBudget] = Field(default_factory=dict)
    plan: Plan | None = None
    baselines: dict[str, float | None] = Field(default_factory=dict)
    shortfall: Shortfall | None = None
    rounds: int = 0
    decisions: tuple[RoundDecision, ...] = Field(
        default=(), description="what each verification round changed before solving again"
    )
    unmodelled: Unmodelled | None = Field(
        default=None, description="compute buffers not modelled, and the margin assumed"
    )
    readability: Readability | None = None
    notes: tuple[str, ...] = ()
    depth: int = Field(default=0, description="cached tokens decode_tps is priced at")
    decode_at_depth: dict[int, float] = Field(
        default_factory=dict, description="the plan's decode t/s at an empty cache and full context"
    )

    @property
    def feasible(self) -> bool:
        return self.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE)

    def to_json(self) -> dict[str, object]:
        """``fit solve --json``; ``unmodelled`` only when a margin stood in for compute."""
        document: dict[str, object] = {
            "status": self.status.value,
            "solve_seconds": round(self.solve_seconds, 4),
            "gap": self.gap,
            "strategy": self.strategy,
            "strategy_title": self.strategy_title,
            "rationale": self.rationale,
            "context": self.context,
            "kv_type": self.kv_type,
            "args": list(self.args),
            "estimate": {
                **corpus_intervals().estimate_json(self.decode_tps, self.prefill_tps),
                "depth": self.depth,
                "decode_at_depth": {str(d): tps for d, tps in self.decode_at_depth.items()},
            },
            "graph_splits": self.graph_splits,
            "devices": {name: d.model_dump() for name, d in self.devices.items()},
            "baselines": self.baselines,
            "shortfall": self.shortfall.model_dump() if self.shortfall else None,
            "rounds": self.rounds,
            "decisions": [d.model_dump() for d in self.decisions],
            "readability": self.readability.model_dump() if self.readability else None,
            "notes": list(self.notes),
        }
        if self.unmodelled is not None:
            document["unmodelled"] = self.unmodelled.to_json()
        return document


# --- step 1 and 2: workload and placement-independent memory --------------------------------


def _memory(
    inventory: Inventory,
    hardware: Hardware,
    args: Sequence[str],
    cpu: CpuFeatures | None,
    unmodelled_margin: int | None = None,
):
    """The full memory model for llama-server ``args`` on this rig."""
    config = parse_llama_args(list(args), gpu_buffers=local_gpu_buffers(hardware))
    rpc = any(gpu.rpc_endpoint for gpu in hardware.gpus)
    return estimate_memory(
        inventory,
        config,
        hardware=None if rpc else hardware,
        cpu=cpu,
        rpc_free_bytes=min((g.memory_bytes for g in hardware.gpus), default=None) if rpc else None,
        unmodelled_margin=unmodelled_margin,
    )


# --- step 3 and 4: solve, render, verify -------------------------------------------------------


def launch_args(
    setting: Setting, plan: Plan, hardware: Hardware, scope: RuleScope = NO_SCOPE
) -> list[str]:
    return [*setting.base_args, *placement_args(plan, buffer_names(hardware), scope)]


def rule_scope(inventory: Inventory, table: LayerTable) -> RuleScope:
    """What this model's rules may name besides the layers they move: layers without a unit,
    and ``--n-cpu-moe`` when llama.cpp's regex for it matches exactly the routed-experts unit
    (no tensor of another unit, none of them missed)."""
    column = {unit: i for i, unit in enumerate(table.units)}
    n_layers = table.stored.shape[0]
    absent = {
        unit: frozenset(il for il in range(n_layers) if table.stored[il, column[unit]] == 0)
        for unit in table.units
    }
    exps = re.compile(LLM_FFN_EXPS_REGEX)
    exact = all(
        bool(exps.search(t.name)) == (unit_of(t) is Unit.EXPERTS)
        for t in inventory.tensors
        if t.layer is not None and t.layer < n_layers
    )
    return RuleScope(absent=absent, n_cpu_moe=exact)


def plan_report(
    inventory: Inventory, hardware: Hardware, setting: Setting, plan: Plan, cpu: CpuFeatures
) -> MemoryReport:
    """The full memory model on the plan's own rendered arguments. Refuses (``BadInput``) a
    model whose compute buffers fit cannot model, unless the setting states a margin: a plan
    that counted them as free would run out of memory."""
    args = launch_args(setting, plan, hardware, rule_scope(inventory, setting.table))
    report = _memory(inventory, hardware, args, cpu, setting.unmodelled_margin)
    unmodelled = report.unmodelled
    if unmodelled is not None and unmodelled.margin is None:
        raise BadInput(
            f"{unmodelled.architecture}: compute buffers not modelled ({unmodelled.reason}), "
            "so no plan can be checked against memory; --unmodelled-margin GIB plans anyway, "
            "assuming that much compute buffer per device that runs layers"
        )
    return report


def resident_bytes(inventory: Inventory, report: MemoryReport) -> dict[str, int]:
    """Per device, what must stay in memory. llama.cpp maps the host's weights as one span of
    the file per part (``CPU_Mapped``), GPU tensors in between included; those pages are read
    once while loading and can be evicted, so the host budget counts only its own tensors."""
    resident = {name: device.total for name, device in report.devices.items()}
    spans = [b for b in report.model_buffers if b.buffer_type.endswith("_Mapped")]
    if spans:
        # A span "CPU_Mapped" holds the tensors of buffer type "CPU"; repacked host weights
        # live in their own buffer (CPU_REPACK), counted in full already.
        mapped_types = {b.buffer_type.removesuffix("_Mapped") for b in spans}
        mapped = sum(b.size for b in spans)
        buffers = report.placement.tensor_buffers
        own = sum(t.n_bytes for t in inventory.tensors if buffers.get(t.name) in mapped_types)
        resident[CPU] -= mapped - min(own, mapped)
    return resident


class PlacementMismatch(OperationFailed):
    """The rendered arguments would not reproduce the plan: a bug in fit, reported plainly."""


def check_round_trip(inventory: Inventory, plan: Plan, report: MemoryReport) -> None:
    """Every layer tensor and the output head must land where the plan put them, with the
    rendered ``-ngl``/``-ts``/``-ot`` re-applied by fit's copy of llama.cpp's loader."""
    placed = report.placement.tensor_devices
    for tensor in inventory.tensors:
        if tensor.name not in placed:
            continue
        if tensor.layer is None:
            if tensor.name not in ("output.weight", "output_norm.weight"):
                continue
            planned = plan.output_device
        elif tensor.layer >= plan.n_layers:
            continue
        else:
            unit = unit_of(tensor)
            planned = (
                plan.layer_devices[tensor.layer]
                if unit is None
                else plan.unit_device(tensor.layer, unit)
            )
        if placed[tensor.name] != planned:
            raise PlacementMismatch(
                f"internal check failed: the rendered arguments put {tensor.name} on "
                f"{placed[tensor.name]}, the plan on {planned} (please report this)"
            )


def _host_only_bytes(setting: Setting) -> dict[str, int]:
    """Bytes the host holds whatever the plan: the global tensors other than the head
    (token embedding; the input layer always runs on the CPU)."""
    table = setting.table
    return {CPU: sum(b for name, b in table.global_bytes.items() if not name.startswith("output"))}


def _device_buffers(report: MemoryReport) -> dict[str, int]:
    """Per device: compute + output buffers under a replayed plan."""
    return {name: (d.compute or 0) + d.output for name, d in report.devices.items()}


def _reference_plans(setting: Setting, hardware: Hardware) -> list[Plan]:
    """Plans whose replays seed the assumptions before any solve: everything on the host; the
    head alone on the last GPU; every layer offloaded and all but the first (split by memory,
    the last GPU with the head), each with the units where their layers are, all on the host,
    and the first half's routed experts on the host (``--n-cpu-moe``); every layer offloaded
    with the last GPU holding the head and the second half's routed experts instead of
    layers. Together they show each device the combinations plans usually make it run."""
    gpus = tuple(g.device for g in hardware.gpus)
    n_layers = setting.table.stored.shape[0]
    plans = [Plan(gpus=gpus, n_layers=n_layers, gpu_layers=(0,) * len(gpus))]
    if not gpus:
        return plans
    plans.append(Plan(gpus=gpus, n_layers=n_layers, gpu_layers=(0,) * len(gpus),
                      output_device=gpus[-1]))  # fmt: skip
    units = [
        unit
        for i, unit in enumerate(setting.table.units)
        if unit in MOVABLE and setting.table.stored[:, i].any()
    ]
    half = n_layers // 2

    routed = [unit for unit in units if unit is Unit.EXPERTS] or units

    def moved(
        first: str | None, second: str | None, which: list[Unit] = units
    ) -> dict[Unit, tuple[str | None, ...]]:
        placed = (first,) * half + (second,) * (n_layers - half)
        return {} if not any(placed) else {unit: placed for unit in which}

    for offloaded in (n_layers, n_layers - 1):
        if offloaded < 1:
            continue
        slots = split_slots(tuple(float(g.memory_bytes) for g in hardware.gpus), offloaded + 1)
        layers = list(slots)
        last = max(i for i, count in enumerate(layers) if count)
        layers[last] -= 1
        for overrides in (moved(None, None), moved(CPU, CPU), moved(CPU, None, routed)):
            plans.append(Plan(gpus=gpus, n_layers=n_layers, gpu_layers=tuple(layers),
                              output_device=gpus[last], overrides=overrides))  # fmt: skip
    if len(gpus) > 1 and units:
        split = split_slots(tuple(float(g.memory_bytes) for g in hardware.gpus[:-1]), n_layers)
        last = moved(CPU, gpus[-1], routed)
        plans.append(Plan(gpus=gpus, n_layers=n_layers, gpu_layers=(*split, 0),
                          output_device=gpus[-1], overrides=last))  # fmt: skip
    return [plan for i, plan in enumerate(plans) if plan not in plans[:i]]


def _best_baseline(problem: PlacementProblem) -> tuple[Plan | None, dict[str, float | None]]:
    scores: dict[str, float | None] = {}
    best: tuple[float, Plan] | None = None
    for name, baseline in BASELINES.items():
        plan = baseline(problem)
        if plan is None:
            scores[name] = None
            continue
        seconds = plan_seconds(plan, problem)
        scores[name] = seconds
        if best is None or seconds < best[0]:
            best = (seconds, plan)
    return (best[1] if best else None), scores


def _better_hint(
    problem: PlacementProblem, hint: Plan | None, previous: Plan | None
) -> Plan | None:
    """The previous round's plan when it still fits and beats the baseline: after buffers
    were learned smaller it often stays optimal, and a good hint shortens the proof."""
    if previous is None or not fits(previous, problem):
        return hint
    if hint is not None and plan_seconds(hint, problem) <= plan_seconds(previous, problem):
        return hint
    return previous


def solve_setting(
    inventory: Inventory,
    hardware: Hardware,
    request: SolveRequest,
    setting: Setting,
    cpu: CpuFeatures,
) -> SolveReport:
    """Steps 3 and 4 for one (context, KV type): rounds of solve and verify until a plan fits
    and no buffer it replayed came out smaller than assumed (``_Rounds.play``)."""
    rounds = _Rounds(inventory, hardware, request, setting, cpu)
    for round_ in range(1, MAX_ROUNDS + 1):
        report = rounds.play(round_)
        if report is not None:
            return _finished(report, rounds.decisions, rounds.unmodelled)
    if rounds.verified is not None:
        return _finished(_rounds(rounds.verified, MAX_ROUNDS), rounds.decisions, rounds.unmodelled)
    report = _without_plan(
        setting,
        SolveStatus.UNKNOWN,
        rounds.elapsed,
        MAX_ROUNDS,
        notes=(f"the memory model and the placement model did not agree within {MAX_ROUNDS} "
               "rounds",),
    )  # fmt: skip
    return _finished(report, rounds.decisions, rounds.unmodelled)


class _Rounds:
    """The verification loop's state: the buffers learned (seeded by the reference plans),
    the budgets, the decisions, the last plan that fit and the previous round's plan."""

    def __init__(
        self,
        inventory: Inventory,
        hardware: Hardware,
        request: SolveRequest,
        setting: Setting,
        cpu: CpuFeatures,
    ) -> None:
        self.inventory, self.hardware, self.request = inventory, hardware, request
        self.setting, self.cpu = setting, cpu
        self.capacity = capacities(hardware, request)
        self.budgets = {name: budget for name, (_, budget) in self.capacity.items()}
        self.fixed = _host_only_bytes(setting)
        offload = offload_device(hardware.device_names, setting.workload)
        self.book = BufferBook(hardware.device_names, offload)
        self.units = layer_units(self._problem())
        self.unmodelled: Unmodelled | None = None
        for plan in _reference_plans(setting, hardware):
            memory, _ = self._learn(plan)
            self.unmodelled = self.unmodelled or memory.unmodelled
        self.scope = rule_scope(inventory, setting.table)
        self.elapsed = 0.0
        self.decisions: list[RoundDecision] = []
        self.verified: SolveReport | None = None  # the last plan that fit
        self.previous: Plan | None = None

    def _problem(self, buffers: BufferTable | None = None) -> PlacementProblem:
        return placement_problem(self.setting, self.hardware, self.budgets, self.fixed,
                                 self.request.objective, buffers)  # fmt: skip

    def _learn(
        self, plan: Plan, memory: MemoryReport | None = None
    ) -> tuple[MemoryReport, list[Learned]]:
        """Replay ``plan`` (unless its report is given) and learn every device's buffers."""
        if memory is None:
            memory = plan_report(self.inventory, self.hardware, self.setting, plan, self.cpu)
        learned = []
        combos = plan_combinations(plan, self.book.devices, self.units, self.book.offload)
        for name, nbytes in _device_buffers(memory).items():
            if name in combos:
                change = self.book.learn(name, combos[name], nbytes)
                if change is not None:
                    learned.append(change)
        return memory, learned

    def play(self, round_: int) -> SolveReport | None:
        """Solve, replay the plan, learn. The final report when the plan fits and none of its
        buffers came out smaller than assumed (then it is optimal, up to the gap, for the
        model updated with what it taught too: that model only lost plans), or when nothing
        fits; None to solve again."""
        request = self.request
        problem = self._problem(self.book.table())
        hint, baselines = _best_baseline(problem)
        result = solve_placement(
            problem, hint=_better_hint(problem, hint, self.previous),
            time_limit_s=request.time_limit_s, workers=request.workers,
            tolerance=request.tolerance, scope=self.scope,
        )  # fmt: skip
        self.elapsed += result.solve_seconds
        plan = self.previous = result.plan
        if plan is None:
            if self.verified is not None:
                return _rounds(self.verified, round_)
            return _infeasible(self.setting, problem, self.elapsed, round_)
        memory = plan_report(self.inventory, self.hardware, self.setting, plan, self.cpu)
        check_round_trip(self.inventory, plan, memory)
        resident = resident_bytes(self.inventory, memory)
        excess = {
            name: resident[name] - budget
            for name, (_, budget) in self.capacity.items()
            if name in memory.devices
        }
        _, learned = self._learn(plan, memory)
        self.decisions += _decisions(round_, excess, learned)
        over = {name: e for name, e in excess.items() if e > 0}
        if over:
            raised = {change.device for change in learned if change.after > change.before}
            self.decisions += _cut_budgets(round_, over, raised, self.budgets)
            return None
        assumed = problem.buffers
        assert assumed is not None
        report = _feasible(
            self.inventory, self.hardware, request, self.setting, result, memory, self.capacity,
            round_, baselines, assumed, self.units,
        )  # fmt: skip
        if any(change.after < change.before for change in learned):
            self.verified = report  # fits, but freed budget may allow a better plan
            return None
        return report


def _rounds(verified: SolveReport, rounds: int) -> SolveReport:
    """A plan that fit, returned after later rounds found none better to verify: its gap is
    against the model of the round that solved it, which the note says."""
    note = (
        f"the plan of an earlier round (its replay fit): {rounds} rounds found no better one "
        "the memory model confirms; its gap is against the model of its own round"
    )
    return verified.model_copy(update={"rounds": rounds, "notes": (*verified.notes, note)})


def _finished(
    report: SolveReport, decisions: list[RoundDecision], unmodelled: Unmodelled | None
) -> SolveReport:
    """What every outcome of a setting carries: the verification rounds' decisions and, for a
    model whose compute buffers are a stated margin, that record and its note (once: a plan's
    notes, from its memory report, already have it)."""
    notes = report.notes
    if unmodelled is not None and unmodelled.note not in notes:
        notes = (*notes, unmodelled.note)
    update = {"decisions": tuple(decisions), "unmodelled": unmodelled, "notes": notes}
    return report.model_copy(update=update)


def _decisions(
    round_: int, excess: dict[str, int], learned: Sequence[Learned]
) -> list[RoundDecision]:
    """Each assumption a round's replay changed, up (larger than assumed) or down (smaller:
    the budget it frees is the model's again)."""
    decisions = []
    for change in learned:
        decision = RoundDecision(
            round=round_, device=change.device, action="learned buffers",
            over_mib=round(excess.get(change.device, 0) / MIB, 2), runs=describe(change.combo),
            from_mib=round(change.before / MIB, 2), to_mib=round(change.after / MIB, 2),
        )  # fmt: skip
        decisions.append(decision)
    return decisions


def _cut_budgets(
    round_: int, over: dict[str, int], raised: set[str], budgets: dict[str, int]
) -> list[RoundDecision]:
    """Cut the budget (by the excess + 1 MiB) of each device over it whose buffers were not
    assumed too small: what the placement model and the memory model count differently."""
    decisions = []
    for name, excess in over.items():
        if name in raised:
            continue
        before = budgets[name]
        budgets[name] -= excess + MIB
        decision = RoundDecision(
            round=round_, device=name, over_mib=round(excess / MIB, 2), action="cut budget",
            from_mib=round(before / MIB, 2), to_mib=round(budgets[name] / MIB, 2),
        )  # fmt: skip
        decisions.append(decision)
    return decisions


def _feasible(
    inventory: Inventory,
    hardware: Hardware,
    request: SolveRequest,
    setting: Setting,
    result: PlacementResult,
    report: MemoryReport,
    capacity: dict[str, tuple[int, int]],
    rounds: int,
    baselines: dict[str, float | None],
    assumed: BufferTable,
    units: Sequence[Sequence[Unit]],
) -> SolveReport:
    plan = result.plan
    assert plan is not None
    estimate: CostEstimate = estimate_cost(plan, setting.tables)
    resident = resident_bytes(inventory, report)
    devices = {}
    for name, device in report.devices.items():
        memory, budget = capacity.get(name, (0, 0))
        combo = plan_combination(plan, name, units, assumed.offload)
        devices[name] = DeviceBudget(
            weights=device.weights,
            repack=device.repack,
            kv=device.kv,
            compute=device.compute or 0,
            output=device.output,
            total=device.total,
            resident=resident[name],
            capacity=memory,
            budget=budget,
            runs=describe(combo),
            assumed_buffers=assumed.bytes_for(name, combo),
        )
    gpu_budget = sum(capacity[g.device][1] for g in hardware.gpus)
    strategy = classify(plan)
    baseline_tps = {
        name: None if seconds is None else 1.0 / (seconds + setting.tables.token_overhead)
        for name, seconds in baselines.items()
    }
    return SolveReport(
        status=result.status,
        solve_seconds=result.solve_seconds,
        gap=result.gap,
        context=setting.context,
        kv_type=setting.kv_type,
        strategy=strategy.value,
        strategy_title=STRATEGY_TITLES[strategy],
        rationale=rationale(
            plan, weights_bytes=inventory.total_bytes, gpu_capacity_bytes=gpu_budget
        ),
        args=tuple(launch_args(setting, plan, hardware, rule_scope(inventory, setting.table))),
        decode_tps=estimate.decode_tps,
        prefill_tps=estimate.prefill_tps,
        graph_splits=report.graph_splits,
        devices=devices,
        plan=plan,
        baselines=baseline_tps if request.with_baselines else {},
        rounds=rounds,
        readability=_readability(result, setting, request),
        notes=report.notes,
        depth=request.depth,
        decode_at_depth={
            depth: estimate_cost(plan, setting.tables_at_depth(hardware, depth)).decode_tps
            for depth in (0, setting.workload.n_ctx_seq)
        },
    )


def _readability(
    result: PlacementResult, setting: Setting, request: SolveRequest
) -> Readability | None:
    """What the plan cost in speed for readability, against the optimum of the model."""
    if result.optimum_seconds is None or result.readability is None:
        return None
    optimum, tables = result.optimum_seconds, setting.tables
    decode = prefill = None
    if request.objective is Objective.DECODE:
        decode = 1.0 / (optimum + tables.token_overhead)
    elif request.objective is Objective.PREFILL and optimum > 0:
        prefill = tables.n_ubatch / optimum
    return Readability(
        choice=result.choice,
        tolerance=request.tolerance,
        cost=result.readability,
        slower=result.slower or 0.0,
        optimum_decode_tps=decode,
        optimum_prefill_tps=prefill,
    )


def _infeasible(
    setting: Setting, problem: PlacementProblem, elapsed: float, rounds: int
) -> SolveReport:
    table = problem.table
    needed = (
        int(table.stored.sum() + table.pinned.sum())
        + sum(problem.kv_bytes)
        + problem.output_bytes
        + problem.fixed_bytes.get(CPU, 0)
        + _least_host_buffers(problem)
    )
    available = sum(problem.capacity.values())
    shortfall = Shortfall(
        needed=needed, available=available, budgets=dict(problem.capacity), suggestions=()
    )
    return _without_plan(setting, SolveStatus.INFEASIBLE, elapsed, rounds, shortfall=shortfall)


def _least_host_buffers(problem: PlacementProblem) -> int:
    """The smallest host buffers any combination was assumed to need (0 without a table)."""
    if problem.buffers is None:
        return 0
    return min(problem.buffers.assumed.get(CPU, {}).values(), default=0)


def _without_plan(
    setting: Setting,
    status: SolveStatus,
    elapsed: float,
    rounds: int,
    *,
    shortfall: Shortfall | None = None,
    notes: tuple[str, ...] = (),
) -> SolveReport:
    """A report for a setting that produced no plan (infeasible, or no agreement)."""
    return SolveReport(
        status=status,
        solve_seconds=elapsed,
        context=setting.context,
        kv_type=setting.kv_type,
        rounds=rounds,
        shortfall=shortfall,
        notes=notes,
    )


# --- step 5: choose among candidates -------------------------------------------------------------


def solve(
    inventory: Inventory,
    hardware: Hardware,
    request: SolveRequest,
    *,
    coefficients: CostCoefficients | None = None,
    cpu: CpuFeatures | None = None,
) -> SolveReport:
    """The best feasible candidate, or an infeasible report saying what is missing."""
    coefficients = coefficients or CostCoefficients()
    cpu = cpu or SCENARIO_CPU
    report = _solve_candidates(inventory, hardware, request, coefficients, cpu)
    if report.feasible:
        return report
    return _explain(inventory, hardware, request, report, coefficients, cpu)


def _solve_candidates(
    inventory: Inventory,
    hardware: Hardware,
    request: SolveRequest,
    coefficients: CostCoefficients,
    cpu: CpuFeatures,
) -> SolveReport:
    """Step 5 proper: the largest context first; the last infeasible report if none fits."""
    last: SolveReport | None = None
    for context in sorted(set(request.contexts), reverse=True):
        feasible = []
        for kv_type in request.kv_types:
            setting = resolve_setting(inventory, hardware, request, context, kv_type, coefficients)
            report = solve_setting(inventory, hardware, request, setting, cpu)
            if report.feasible:
                feasible.append(report)
            last = report
        if feasible:
            return _prefer(feasible)
    assert last is not None
    return last


def _prefer(reports: list[SolveReport]) -> SolveReport:
    """The first-listed KV type, unless a later one decodes ``KV_SPEEDUP`` times faster."""
    chosen = reports[0]
    for report in reports[1:]:
        if (report.decode_tps or 0) > (chosen.decode_tps or 0) * KV_SPEEDUP:
            chosen = report
    return chosen


CONTEXT_STEP = 256  # a suggested context is a multiple of this, as users write them
MIN_CONTEXT = 1024  # no context below this is worth suggesting
MIN_QUANT_BITS = 1.5  # bits per weight under llama.cpp's smallest quant (IQ1_S, 1.56): none exists


def _explain(
    inventory: Inventory,
    hardware: Hardware,
    request: SolveRequest,
    report: SolveReport,
    coefficients: CostCoefficients,
    cpu: CpuFeatures,
) -> SolveReport:
    """Attach what would make the model fit, each suggestion checked by solving it: the
    largest context that fits, q8_0 KV, the largest smaller catalogue quant that fits, and a
    weights size that leaves room for the KV cache and buffers at the asked context."""
    shortfall = report.shortfall
    if shortfall is None:
        return report
    suggestions = []
    if inventory.total_bytes <= shortfall.available:  # else no context or KV type can help
        context = _largest_fitting_context(inventory, hardware, request, report, coefficients, cpu)
        if context is not None:
            suggestions.append(f"a context of {context} tokens fits (-c {context})")
        if "q8_0" not in request.kv_types and _fits(
            inventory, hardware, request, report.context, "q8_0", coefficients, cpu
        ):
            suggestions.append("a q8_0 KV cache fits (-ctk q8_0 -ctv q8_0)")
    room = _room_for_weights(inventory, shortfall)
    if room > 0:  # else the KV cache and buffers alone exceed the rig: no quant can help
        smaller = _smaller_catalogue_quant(inventory, hardware, request, coefficients, cpu)
        if smaller:
            suggestions.append(smaller)
        if room >= inventory.n_params * MIN_QUANT_BITS / 8:
            suggestions.append(
                f"a quant of at most {room / GIB:.1f} GiB (this file is "
                f"{inventory.total_bytes / GIB:.1f} GiB) would leave room for the KV cache "
                f"and buffers at {report.context} tokens"
            )
    return report.model_copy(
        update={"shortfall": shortfall.model_copy(update={"suggestions": tuple(suggestions)})}
    )


def _fits(
    inventory: Inventory,
    hardware: Hardware,
    request: SolveRequest,
    context: int,
    kv_type: str,
    coefficients: CostCoefficients,
    cpu: CpuFeatures,
) -> bool:
    """Whether one (context, KV type) probe solves: one resolved setting, one solve."""
    trial = request.model_copy(
        update={"contexts": (context,), "kv_types": (kv_type,), "with_baselines": False}
    )
    try:
        setting = resolve_setting(inventory, hardware, trial, context, kv_type, coefficients)
    except BadInput:
        return False  # llama.cpp would refuse the probe (e.g. q8_0 KV on 16-wide heads)
    return solve_setting(inventory, hardware, trial, setting, cpu).feasible


def _largest_fitting_context(
    inventory: Inventory,
    hardware: Hardware,
    request: SolveRequest,
    report: SolveReport,
    coefficients: CostCoefficients,
    cpu: CpuFeatures,
) -> int | None:
    """The largest multiple of ``CONTEXT_STEP`` from ``MIN_CONTEXT`` up to the asked context,
    capped at the model's training context, that fits; None if none does."""

    def fits(context: int) -> bool:
        return _fits(inventory, hardware, request, context, report.kv_type, coefficients, cpu)

    trained = inventory.context_length or report.context
    top = min(report.context, trained) // CONTEXT_STEP * CONTEXT_STEP
    # the asked context itself is known not to fit
    return largest_fitting(fits, MIN_CONTEXT, top, CONTEXT_STEP, top_fails=top == report.context)


def largest_fitting(
    fits: Callable[[int], bool], low: int, top: int, step: int, *, top_fails: bool = False
) -> int | None:
    """The largest multiple of ``step`` in [``low``, ``top``] (both multiples of it) for which
    ``fits`` holds, or None. Bisection, so at most ``2 + log2((top - low) / step)`` probes; it
    assumes what fits at a context fits at every shorter one (the KV cache and the compute
    buffers only grow with it). ``top_fails``: ``top`` is already known not to fit."""
    if top < low:
        return None
    if not top_fails and fits(top):
        return top
    if top == low or not fits(low):
        return None
    fitting, failing = low, top
    while failing - fitting > step:
        middle = (fitting + failing) // 2 // step * step
        if fits(middle):
            fitting = middle
        else:
            failing = middle
    return fitting


def _room_for_weights(inventory: Inventory, shortfall: Shortfall) -> int:
    """Bytes the weights may take so that the KV cache and buffers at the asked context fit
    beside them (what the rig offers less what is not weights); 0 or less when they do not."""
    not_weights = shortfall.needed - inventory.total_bytes
    return shortfall.available - not_weights


def _smaller_catalogue_quant(
    inventory: Inventory,
    hardware: Hardware,
    request: SolveRequest,
    coefficients: CostCoefficients,
    cpu: CpuFeatures,
) -> str | None:
    """For a catalogue model: the largest of its smaller quants that fits, by solving it."""
    if not inventory.source.startswith("catalogue:"):
        return None
    from solver.gguf.catalogue import catalogue_names, load_catalogue_entry

    model = inventory.source.split(":")[1]
    others = [load_catalogue_entry(n) for n in catalogue_names() if n.startswith(f"{model}:")]
    budget = sum(budget for _, budget in capacities(hardware, request).values())
    trial = request.model_copy(update={"contexts": (min(request.contexts),)})
    for other in sorted(others, key=lambda inv: inv.total_bytes, reverse=True):
        if other.total_bytes >= min(inventory.total_bytes, budget):
            continue  # not smaller, or its weights alone exceed the rig
        if _solve_candidates(other, hardware, trial, coefficients, cpu).feasible:
            return (
                f"{model}:{other.file_type} ({other.total_bytes / GIB:.1f} GiB) fits at "
                f"{min(request.contexts)} tokens"
            )
    return None
