"""A plan as llama-server arguments: ``-ngl``, ``-ts``, ``--n-cpu-moe`` and short ``-ot`` rules.

Rules are one per (unit, target device), naming their layers with a merged numeric regex
(``blk\\.([0-9]|1[0-9]|2[0-3])\\.ffn_.*_exps\\.=CPU``), the form people write by hand. A
``RuleScope`` says what a rule may name besides the layers it moves: layers without the unit
(a range may run across them, as they match no tensor), and whether llama.cpp's
``--n-cpu-moe N`` moves exactly this model's routed experts, in which case a plan whose experts
on the CPU are those of the first N layers says so instead of an ``-ot`` rule.
``readability`` counts what a person reads: ``-ot`` rules, their layer ranges, ``--n-cpu-moe``.
This module only writes; ``solver.llama.device_map`` reads the arguments back exactly as
llama.cpp does, and ``solver.placement.solve.check_round_trip`` proves the round trip moves
precisely the planned tensors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field

from solver.plan.plan import Plan
from solver.plan.units import UNIT_PATTERNS, Unit
from solver.quantities import CPU


class RuleScope(BaseModel):
    """What the rules of one model may name besides the layers they move."""

    model_config = ConfigDict(frozen=True)

    absent: dict[Unit, frozenset[int]] = Field(
        default_factory=dict,
        description="per unit, the layers without its tensors: a rule's range may run across "
        "them, since its regex matches nothing there",
    )
    n_cpu_moe: bool = Field(
        default=False,
        description="llama.cpp's --n-cpu-moe regex moves exactly this model's routed-experts "
        "unit, so --n-cpu-moe N can stand for 'experts of the first N layers on the CPU'",
    )


NO_SCOPE = RuleScope()


def layer_runs(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted integers as inclusive (first, last) runs."""
    runs: list[tuple[int, int]] = []
    for n in sorted(set(numbers)):
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def _range_pieces(low: int, high: int) -> list[str]:
    """Regex alternatives matching exactly the decimal numbers low..high (no leading zeros)."""
    if low > high:
        return []
    low_s, high_s = str(low), str(high)
    if len(low_s) < len(high_s):
        # Split at the first power of ten so both halves have one digit count.
        edge = 10 ** len(low_s)
        return _range_pieces(low, edge - 1) + _range_pieces(edge, high)
    if low == high:
        return [low_s]
    if len(low_s) == 1:
        return [f"[{low}-{high}]"]
    # Same number of digits: peel the last digit where the range is not a whole decade.
    if low % 10 != 0:
        top = min(high, low - low % 10 + 9)
        head = str(low // 10)
        tail = f"[{low % 10}-{top % 10}]" if top > low else str(low % 10)
        return [head + tail, *_range_pieces(top + 1, high)]
    if high % 10 != 9:
        bottom = high - high % 10
        head = str(high // 10)
        tail = f"[0-{high % 10}]" if high > bottom else "0"
        return [*_range_pieces(low, bottom - 1), head + tail]
    # Whole decades: recurse on the leading digits, any last digit.
    return [piece + "[0-9]" for piece in _range_pieces(low // 10, high // 10)]


def ranges_regex(runs: Iterable[tuple[int, int]]) -> str:
    """``(0|3|[5-9]|1[0-9])``-style group matching exactly the numbers of these runs."""
    pieces = [p for first, last in runs for p in _range_pieces(first, last)]
    return pieces[0] if len(pieces) == 1 else "(" + "|".join(pieces) + ")"


def layers_regex(layers: Iterable[int]) -> str:
    """``(0|3|[5-9]|1[0-9])``-style group matching exactly these layer numbers."""
    return ranges_regex(layer_runs(layers))


def rule_ranges(
    plan: Plan, unit: Unit, device: str, scope: RuleScope = NO_SCOPE
) -> list[tuple[int, int]]:
    """The fewest inclusive layer ranges of the rule moving ``unit`` to ``device``: the layers
    it moves, runs joined across layers without the unit (nothing there to move)."""
    moved = plan.overrides.get(unit) or ()
    absent = scope.absent.get(unit, frozenset())
    runs: list[tuple[int, int]] = []
    for il, target in enumerate(moved):
        if target != device:
            continue
        if runs and all(j in absent for j in range(runs[-1][1] + 1, il)):
            runs[-1] = (runs[-1][0], il)
        else:
            runs.append((il, il))
    return runs


def n_cpu_moe(plan: Plan, scope: RuleScope = NO_SCOPE) -> int | None:
    """N when ``--n-cpu-moe N`` says exactly where the plan keeps routed experts on the CPU
    (llama.cpp: the experts of layers 0..N-1): some are moved there, and the layers with
    experts on the CPU are exactly those below N. None otherwise."""
    moved = plan.overrides.get(Unit.EXPERTS) or ()
    if not scope.n_cpu_moe or CPU not in moved:
        return None
    absent = scope.absent.get(Unit.EXPERTS, frozenset())
    present = [il for il in range(plan.n_layers) if il not in absent]
    on_cpu = [il for il in present if plan.unit_device(il, Unit.EXPERTS) == CPU]
    if not on_cpu:
        return None
    count = on_cpu[-1] + 1
    return count if on_cpu == [il for il in present if il < count] else None


def _targets(plan: Plan, unit: Unit) -> list[str]:
    moved = plan.overrides.get(unit) or ()
    return sorted({device for device in moved if device is not None})


def override_rules(
    plan: Plan, buffer_names: Mapping[str, str] | None = None, scope: RuleScope = NO_SCOPE
) -> list[str]:
    """``PATTERN=BUFFER`` strings, one per (unit, target device), in a stable order; the
    experts' CPU rule is left out when ``--n-cpu-moe`` says it (``n_cpu_moe``)."""
    names = buffer_names or {}
    by_n_cpu_moe = n_cpu_moe(plan, scope) is not None
    rules = []
    for unit in Unit:
        for device in _targets(plan, unit):
            if by_n_cpu_moe and (unit, device) == (Unit.EXPERTS, CPU):
                continue
            runs = rule_ranges(plan, unit, device, scope)
            pattern = rf"blk\.{ranges_regex(runs)}\.{UNIT_PATTERNS[unit]}"
            rules.append(f"{pattern}={names.get(device, device)}")
    return rules


def readability(plan: Plan, scope: RuleScope = NO_SCOPE) -> int:
    """What a person reads in the placement arguments: each ``-ot`` rule counts one plus its
    layer ranges, ``--n-cpu-moe`` one (``-ngl``/``-ts`` nothing). The CP-SAT model's
    readability cost (``solver.placement.cpsat``) is this number."""
    by_n_cpu_moe = n_cpu_moe(plan, scope) is not None
    cost = int(by_n_cpu_moe)
    for unit in Unit:
        for device in _targets(plan, unit):
            if not (by_n_cpu_moe and (unit, device) == (Unit.EXPERTS, CPU)):
                cost += 1 + len(rule_ranges(plan, unit, device, scope))
    return cost


def placement_args(
    plan: Plan, buffer_names: Mapping[str, str] | None = None, scope: RuleScope = NO_SCOPE
) -> list[str]:
    """The ``-ngl``/``-ts``/``--n-cpu-moe``/``-ot`` arguments of a plan (``--fit off`` keeps
    them as written)."""
    args = ["-ngl", str(plan.n_gpu_layers)]
    if len(plan.gpus) > 1 and plan.n_gpu_layers > 0:
        args += ["-ts", ",".join(str(n) for n in plan.tensor_split())]
    count = n_cpu_moe(plan, scope)
    if count is not None:
        args += ["--n-cpu-moe", str(count)]
    rules = override_rules(plan, buffer_names, scope)
    if rules:
        args += ["-ot", ",".join(rules)]
    args += ["--fit", "off"]
    return args
