"""What ``fit solve`` and ``fit whatif`` show: pure functions of ``solver.placement``'s
reports (per device what it holds and what is left; one row per rig and variation, then the
cheapest rig). The CLI only prints them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from solver.cost.fidelity import SpeedInterval, SpeedIntervals, corpus_intervals
from solver.gguf.inventory import Inventory
from solver.hardware.scenario import Hardware
from solver.llama.budget import BudgetVerdict
from solver.llama.memory import MemoryReport, Unmodelled
from solver.llama.text import memory_text, verdict_line
from solver.placement.launch_cost import LaunchCost
from solver.placement.solve import SolveReport
from solver.placement.whatif import WhatIfRow
from solver.plan.plan import Plan
from solver.plan.render import layer_runs
from solver.plan.units import Unit
from solver.quantities import CPU, GIB, MIB
from solver.text_table import rows_table, terminal_safe

UNIT_NAMES = {
    Unit.EXPERTS: "experts",
    Unit.SHARED_EXPERTS: "shared experts",
    Unit.FFN_DENSE: "dense FFN",
    Unit.ATTENTION: "attention",
}


def layer_ranges(layers: list[int]) -> str:
    if not layers:
        return "-"
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in layer_runs(layers))


def device_holdings(plan: Plan, device: str) -> str:
    """'layers 2-24 + output; experts of 0-1' for one device."""
    parts = []
    layers = [il for il, d in enumerate(plan.layer_devices) if d == device]
    if layers:
        parts.append(f"layers {layer_ranges(layers)}")
    if plan.output_device == device:
        parts.append("output")
    held = " + ".join(parts)
    moved_in, moved_out = [], []
    for unit, targets in plan.overrides.items():
        into = [il for il, t in enumerate(targets) if t == device]
        away = [il for il, t in enumerate(targets) if t not in (None, device)]
        away = [il for il in away if plan.layer_devices[il] == device]
        if into:
            moved_in.append(f"{UNIT_NAMES[unit]} of {layer_ranges(into)}")
        if away:
            moved_out.append(f"{UNIT_NAMES[unit]} of {layer_ranges(away)} elsewhere")
    extra = "; ".join(moved_in + moved_out)
    if device == CPU:
        held = " + ".join(p for p in ["token_embd", held] if p)
    return "; ".join(p for p in (held, extra) if p) or "-"


def _gib(n: int) -> str:
    return f"{n / GIB:6.2f}"


def render_solve(report: SolveReport, inventory: Inventory, hardware: Hardware) -> str:
    head = (
        f"{inventory.name or inventory.architecture} {inventory.file_type} "
        f"({inventory.architecture}, {inventory.n_layers} layers"
        + (f", {inventory.experts.count} experts" if inventory.is_moe else "")
        + f") on {hardware.name}"
    )
    lines = [terminal_safe(head), f"context {report.context}, KV cache {report.kv_type}"]
    if not report.feasible:
        lines.append(f"status: {report.status.value} after {report.solve_seconds:.2f} s")
        if report.shortfall:
            s = report.shortfall
            if s.needed > s.available:
                lines.append(
                    f"needs {s.needed / GIB:.1f} GiB (weights, KV, buffers) but the rig offers "
                    f"{s.available / GIB:.1f} GiB: {(s.needed - s.available) / GIB:.1f} GiB short"
                )
            else:
                lines.append(
                    f"needs {s.needed / GIB:.1f} GiB of the {s.available / GIB:.1f} GiB the rig "
                    "offers, but no split of whole layers and units fits every device"
                )
            offered = ", ".join(f"{d} {b / GIB:.1f}" for d, b in s.budgets.items())
            lines.append(f"budgets after margins (GiB): {offered}")
            lines += [f"  - {text}" for text in s.suggestions]
        lines += _decision_lines(report)
        lines += [f"note: {terminal_safe(n)}" for n in report.notes]
        return "\n".join(lines)
    gap = "" if report.gap is None else f", gap {report.gap:.3%}"
    lines.append(f"status: {report.status.value}{gap}, solved in {report.solve_seconds:.2f} s")
    lines += _readability_lines(report)
    lines += _decision_lines(report)
    lines += _assumed_lines(report)
    lines.append(f"strategy {report.strategy}: {report.strategy_title} — {report.rationale}")
    intervals = corpus_intervals()
    decode_low, decode_high = intervals.decode.bounds(report.decode_tps or 0.0)
    prefill_low, prefill_high = intervals.prefill.bounds(report.prefill_tps or 0.0)
    lines.append(
        f"estimate: decode ~{report.decode_tps:.1f} t/s (p10-p90 {decode_low:.1f}-"
        f"{decode_high:.1f}) at depth {report.depth}, prefill ~{report.prefill_tps:.0f} t/s "
        f"(p10-p90 {prefill_low:.0f}-{prefill_high:.0f}) (not yet measured)"
        + ("" if report.graph_splits is None else f", {report.graph_splits} graph splits")
    )
    lines += _depth_lines(report)
    lines.append("")
    lines.append(
        f"{'GiB':8} {'weights':>7} {'KV':>6} {'compute':>7} {'output':>6} {'total':>6} "
        f"{'budget':>6} {'free':>6}  holds"
    )
    plan = report.plan
    for name, d in report.devices.items():
        holds = device_holdings(plan, name) if plan else ""
        weights = d.weights + d.repack - (d.total - d.resident)
        lines.append(
            f"{name:8} {_gib(weights):>7} {_gib(d.kv)} {_gib(d.compute):>7} "
            f"{_gib(d.output)} {_gib(d.resident)} {_gib(d.budget)} {_gib(d.budget - d.resident)}  "
            f"{holds}"
        )
    for name, d in report.devices.items():
        if d.total > d.resident:
            lines.append(
                f"({name}: llama.cpp maps {(d.weights + d.repack) / GIB:.2f} GiB of the file; "
                f"the GPU weights inside that span are read once while loading)"
            )
    if report.baselines:
        lines.append("")
        lines.append("same memory and cost model, estimated decode t/s:")
        for name, tps in report.baselines.items():
            shown = "does not fit" if tps is None else f"{tps:7.1f}"
            ratio = "" if not tps else f"  (fit is {report.decode_tps / tps:.2f}x)"
            lines.append(f"  {name:18} {shown}{ratio}")
    lines.append("")
    lines.append(terminal_safe("llama-server " + " ".join(_quoted(a) for a in report.args)))
    lines += [f"note: {terminal_safe(n)}" for n in report.notes]
    lines.append(f"note: {interval_note(intervals)}")
    return "\n".join(lines)


def _depth_lines(report: SolveReport) -> list[str]:
    """Decode as a chat grows: at an empty cache and with the whole context cached."""
    if not report.decode_at_depth:
        return []
    (empty, *_), (full, *_) = (
        min(report.decode_at_depth.items()),
        max(report.decode_at_depth.items()),
    )
    at = report.decode_at_depth
    return [
        f"decode by depth: ~{at[empty]:.1f} t/s at an empty cache, ~{at[full]:.1f} t/s with the "
        f"full context ({full} tokens) cached"
    ]


def _readability_lines(report: SolveReport) -> list[str]:
    """What readability cost: how much slower than the optimum the printed plan is."""
    r = report.readability
    if r is None:
        return []
    if r.choice == "search":
        return [
            "plan as the search found it: the optimum was not proven in time, so another run "
            "may print other arguments"
        ]
    cost = f"readability cost {r.cost}: -ot rules + their layer ranges + --n-cpu-moe"
    if r.choice == "optimum":
        return [
            f"no plan of contiguous -ot ranges within the {r.tolerance:.1%} tolerance: an "
            f"optimal one ({cost})"
        ]
    if r.slower < 5e-5:
        return [f"readable plan: as fast as the optimum ({cost}; tolerance {r.tolerance:.1%})"]
    optimum, now = r.optimum_decode_tps, report.decode_tps
    if optimum is None:
        optimum, now = r.optimum_prefill_tps, report.prefill_tps
    speeds = "" if optimum is None or now is None else f"{now:.1f} vs {optimum:.1f} t/s; "
    return [
        f"readable plan: {r.slower:.2%} slower than the optimum ({speeds}{cost}; tolerance "
        f"{r.tolerance:.1%})"
    ]


def _decision_lines(report: SolveReport) -> list[str]:
    """What the verification rounds changed: a plan's replay gave a device other buffers than
    the placement model assumed for what it runs (larger or smaller), or found it over budget
    anyway; the model was solved again with what it learned, unless that was the last round."""
    lines = []
    for d in report.decisions:
        where = (
            f"{d.over_mib:.0f} MiB over budget"
            if d.over_mib > 0
            else f"within budget ({-d.over_mib:.0f} MiB free)"
        )
        if d.action == "learned buffers":
            size = "larger" if d.to_mib > d.from_mib else "smaller"
            change = f"its buffers running {d.runs or 'nothing'} learned {size}"
        else:
            change = "its budget cut"
        after = "solved again" if d.round < report.rounds else "the plan stands"
        lines.append(
            f"round {d.round}: {d.device} {where}; {change} ({d.from_mib:.0f} -> "
            f"{d.to_mib:.0f} MiB), {after}"
        )
    return lines


def _assumed_lines(report: SolveReport) -> list[str]:
    """Devices whose buffers the solved model assumed larger than the plan's replay gave
    (the largest replay of what they run): memory the proof did not count as free."""
    over = [
        f"{name} {d.assumed_buffers / MIB:.0f} vs {(d.compute + d.output) / MIB:.0f} MiB ({d.runs})"
        for name, d in report.devices.items()
        if d.assumed_buffers > d.compute + d.output + MIB // 2
    ]
    if not over:
        return []
    return [
        "buffers assumed above this plan's replay (the largest replay of what the device "
        f"runs): {', '.join(over)}"
    ]


def _quoted(arg: str) -> str:
    return f'"{arg}"' if any(c in arg for c in "\\|()[]*") else arg


# --- fit whatif ---------------------------------------------------------------------------


def _or_dash(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def whatif_text(
    rows: Sequence[WhatIfRow], *, target_tps: float | None = None, cheapest: WhatIfRow | None
) -> str:
    """Price, fit, strategy, estimated speeds and largest context per row; with a target,
    the cheapest rig that reaches it (or that none does). Decode carries the corpus
    interval."""
    intervals = corpus_intervals()
    table = [
        {
            "scenario": r.scenario,
            "vary": r.variation or "-",
            "price $": _or_dash(r.price_usd, ",.0f"),
            "fits": "yes" if r.fits else "no",
            "strategy": r.strategy or "-",
            "decode t/s": _or_dash(r.decode_tps, ".1f"),
            "p10-p90": _interval_cell(r.decode_tps, intervals.decode),
            "prefill t/s": _or_dash(r.prefill_tps, ".0f"),
            "max ctx": _or_dash(r.max_context, ""),
        }
        for r in rows
    ]
    lines = [rows_table(table)]
    if target_tps:
        if cheapest:
            lines.append(
                f"cheapest rig reaching {target_tps:g} t/s: {cheapest.scenario} "
                f"{cheapest.variation} (${cheapest.price_usd:,.0f})".rstrip()
            )
        else:
            lines.append(f"no priced rig reaches {target_tps:g} t/s (estimated)")
    unmodelled = _unmodelled(rows)
    if unmodelled is not None:
        lines.append(f"note: {unmodelled.note}")
    if any(r.decode_tps is not None for r in rows):
        lines.append(f"note: {interval_note(intervals)}")
    return "\n".join(lines)


def _interval_cell(value: float | None, interval: SpeedInterval) -> str:
    if value is None:
        return "-"
    low, high = interval.bounds(value)
    return f"{low:.1f}-{high:.1f}"


def whatif_json(rows: Sequence[WhatIfRow], *, cheapest: WhatIfRow | None) -> dict[str, Any]:
    """``fit whatif --json``: every row, and the cheapest rig reaching the target (or None);
    ``unmodelled`` only when a margin stood in for compute buffers fit does not model."""
    document = {
        "rows": [_row_json(r) for r in rows],
        "cheapest": _row_json(cheapest) if cheapest else None,
        "interval": corpus_intervals().describe_json(),
    }
    unmodelled = _unmodelled(rows)
    if unmodelled is not None:
        document["unmodelled"] = unmodelled.to_json()
    return document


def _row_json(row: WhatIfRow) -> dict[str, Any]:
    """The row (``unmodelled`` is said once, for the whole document) with the corpus
    intervals of its speeds."""
    estimate = corpus_intervals().estimate_json(row.decode_tps, row.prefill_tps)
    return {
        **row.model_dump(exclude={"unmodelled"}),
        "decode_interval": estimate["decode_interval"],
        "prefill_interval": estimate["prefill_interval"],
    }


def _unmodelled(rows: Sequence[WhatIfRow]) -> Unmodelled | None:
    """The same model on every row: what its first row says about unmodelled compute."""
    return next((r.unmodelled for r in rows if r.unmodelled is not None), None)


# --- the corpus interval every speed carries ------------------------------------------------


def speed_with_interval(value: float | None, interval: SpeedInterval, spec: str) -> str:
    """'45.2 t/s (p10-p90 41.4-47.3)': the estimate and where 8 of 10 corpus rigs measured."""
    if value is None:
        return "-"
    low, high = interval.bounds(value)
    return f"{value:{spec}} t/s (p10-p90 {low:{spec}}-{high:{spec}})"


def _kinds(interval: SpeedInterval) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in interval.kinds.items())


def interval_note(intervals: SpeedIntervals) -> str:
    """What the intervals cover, said once: how many public measurements, of which launches,
    that they are in-sample, and how wide the held-out rows say they really are."""
    decode, prefill = intervals.decode, intervals.prefill
    text = (
        f"intervals: the p10-p90 of estimate/measured, applied to this estimate, over the "
        f"public llama.cpp measurements the cost model was fitted on (in-sample; decode "
        f"±{decode.median_abs_error:.0%} median error, "
        f"{decode.rows} rows: {_kinds(decode)}; prefill ±{prefill.median_abs_error:.0%} "
        f"median, {prefill.rows} rows)"
    )
    test, test_prefill = intervals.test_decode, intervals.test_prefill
    if test is not None:
        text += (
            f"; on {test.rows} held-out rows ({_kinds(test)}) the spread is wider "
            f"(estimate/measured decode {test.ratio_p10:.2f}-{test.ratio_p90:.2f}"
        )
        if test_prefill is not None:
            text += f", prefill {test_prefill.ratio_p10:.2f}-{test_prefill.ratio_p90:.2f}"
        text += ")"
    return (
        text + ". Mostly full-GPU rigs: a launch with weights on the CPU (hybrid, few rows) "
        "or on a GPU the corpus lacks may fall outside them"
    )


# --- fit estimate -----------------------------------------------------------------------------


def estimate_text(
    report: MemoryReport,
    verdict: BudgetVerdict,
    cost: LaunchCost,
    intervals: SpeedIntervals,
    *,
    rig: str,
    depth: int,
) -> str:
    """``fit estimate``: ``fit memory``'s table and verdict, then decode at ``depth`` and
    prefill of one ubatch with their intervals, and where each device's rate came from."""
    estimate = cost.estimate
    rates = ", ".join(f"{device} {source}" for device, source in cost.rate_sources.items())
    lines = [
        memory_text(report, verdict),
        "",
        terminal_safe(f"speed on {rig} (not yet measured):"),
        f"  decode   {speed_with_interval(estimate.decode_tps, intervals.decode, '.1f')} at "
        f"depth {depth}",
        f"  prefill  {speed_with_interval(estimate.prefill_tps, intervals.prefill, '.0f')}, "
        f"one {cost.n_ubatch}-token ubatch",
        f"  {estimate.splits_per_token} graph splits per token; rates: {rates}",
    ]
    if cost.mixed_parts:
        lines.append(
            f"  {cost.mixed_parts} layer parts split over devices by the arguments: each "
            "priced on the device holding most of its bytes"
        )
    lines.append(f"note: {interval_note(intervals)}")
    cpu_only = not any(d.weights for name, d in report.devices.items() if name != CPU)
    if cpu_only and not any(kind.startswith("CPU-only") for kind in intervals.decode.kinds):
        lines.append(
            "note: no weights on a GPU: the corpus has no CPU-only measurements, so the "
            "intervals do not cover this launch"
        )
    return "\n".join(lines)


# --- fit solve --compare --------------------------------------------------------------------


def compare_text(
    args: Sequence[str],
    verdict: BudgetVerdict,
    yours: LaunchCost,
    plan: LaunchCost | None,
    intervals: SpeedIntervals,
    *,
    depth: int,
) -> str:
    """The user's command beside fit's plan, both priced as launches by the same model:
    each one's decode and prefill, fit's over the command's, and whether the command fits."""
    command = terminal_safe("llama-server " + " ".join(_quoted(a) for a in args))
    lines = [
        "",
        f"your command (priced as fit's plan is, decode at depth {depth}):",
        f"  {command}",
        f"  memory: {verdict_line(verdict)}",
        f"  decode   {speed_with_interval(yours.estimate.decode_tps, intervals.decode, '.1f')}",
        f"  prefill  {speed_with_interval(yours.estimate.prefill_tps, intervals.prefill, '.0f')}",
    ]
    if plan is None:
        lines.append("  fit's plan: none fits, nothing to compare")
        return "\n".join(lines)
    ratios = []
    for speed in ("decode", "prefill"):
        mine = getattr(plan.estimate, f"{speed}_tps")
        theirs = getattr(yours.estimate, f"{speed}_tps")
        shown = f"{mine / theirs:.2f}x" if theirs else "-"
        spec = ".1f" if speed == "decode" else ".0f"
        ratios.append(f"{speed} {mine:{spec}} t/s, {shown} yours")
    lines.append(f"  fit's plan: {'; '.join(ratios)}")
    return "\n".join(lines)
