"""A plan as llama-server arguments: ``-ngl``, ``-ts`` and short ``-ot`` rules.

Rules are one per (unit, target device), naming their layers with a merged numeric regex
(``blk\\.([0-9]|1[0-9]|2[0-3])\\.ffn_.*_exps\\.=CPU``), the form people write by hand.
This module only writes; ``solver.llama.device_map`` reads the rules back exactly as
llama.cpp does, and ``solver.placement.solve.check_round_trip`` proves the round trip moves
precisely the planned tensors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from solver.plan.plan import Plan
from solver.plan.units import UNIT_PATTERNS, Unit


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


def layers_regex(layers: Iterable[int]) -> str:
    """``(0|3|[5-9]|1[0-9])``-style group matching exactly these layer numbers."""
    pieces = [p for first, last in layer_runs(layers) for p in _range_pieces(first, last)]
    return pieces[0] if len(pieces) == 1 else "(" + "|".join(pieces) + ")"


def override_rules(plan: Plan, buffer_names: Mapping[str, str] | None = None) -> list[str]:
    """``PATTERN=BUFFER`` strings, one per (unit, target device), in a stable order."""
    names = buffer_names or {}
    rules = []
    for unit in Unit:
        moved = plan.overrides.get(unit)
        if not moved:
            continue
        targets: dict[str, list[int]] = {}
        for il, device in enumerate(moved):
            if device is not None:
                targets.setdefault(device, []).append(il)
        for device, layers in sorted(targets.items()):
            pattern = rf"blk\.{layers_regex(layers)}\.{UNIT_PATTERNS[unit]}"
            rules.append(f"{pattern}={names.get(device, device)}")
    return rules


def placement_args(plan: Plan, buffer_names: Mapping[str, str] | None = None) -> list[str]:
    """The ``-ngl``/``-ts``/``-ot`` arguments of a plan (``--fit off`` keeps them as written)."""
    args = ["-ngl", str(plan.n_gpu_layers)]
    if len(plan.gpus) > 1 and plan.n_gpu_layers > 0:
        args += ["-ts", ",".join(str(n) for n in plan.tensor_split())]
    rules = override_rules(plan, buffer_names)
    if rules:
        args += ["-ot", ",".join(rules)]
    args += ["--fit", "off"]
    return args
