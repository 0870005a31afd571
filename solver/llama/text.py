"""What ``fit memory`` shows: a ``MemoryReport`` as a per-device table and its buffers, and
what ``fit check`` shows: the report against the rig's budgets (``BudgetVerdict``).

Pure functions of the records; the CLI only prints them. Sizes are MiB (1024**2 bytes) with the
exact byte counts next to each buffer, so a line can be checked against llama.cpp's log.
"""

from __future__ import annotations

from solver.llama.budget import BudgetVerdict, DeviceBudget, over_mib
from solver.llama.memory import MemoryReport
from solver.quantities import CPU, MIB
from solver.text_table import rows_table, terminal_safe

NOT_MODELLED = "n/m"


def _mib(value: int | None) -> str:
    return NOT_MODELLED if value is None else f"{value / MIB:.2f}"


def memory_text(report: MemoryReport, verdict: BudgetVerdict | None = None) -> str:
    """Per-device MiB table, the context it was sized for, every buffer, and the notes. A
    compute buffer that is an assumed margin (not modelled) is marked ``*``. Where the
    compute buffers grow while serving (``MemoryReport.compute_grows``), ``compute`` is the
    peak and a ``compute@start`` column the size llama-server logs at startup. With a
    ``verdict`` (a rig was given), each device's total against its budget at the end."""
    assumed = report.unmodelled is not None and report.unmodelled.margin is not None
    legend = f"{NOT_MODELLED} = not modelled" + (", * = assumed margin" if assumed else "")
    if report.compute_grows:
        legend += "; compute = peak at a full context, compute@start = the startup log's"
    rows = []
    for name, d in report.devices.items():
        row = {
            "device": name,
            "weights": _mib(d.weights),
            "repack": _mib(d.repack),
            "kv": _mib(d.kv),
            "compute": _mib(d.compute) + ("*" if assumed and d.compute is not None else ""),
        }
        if report.compute_grows:
            row["compute@start"] = _mib(d.compute_startup)
        rows.append(row | {"output": _mib(d.output), "total": _mib(d.total)})
    ctx = report.workload
    splits = report.graph_splits if report.graph_splits is not None else NOT_MODELLED
    lines = [
        f"MiB per device ({legend}):",
        rows_table(rows),
        "",
        f"context: n_ctx={ctx.n_ctx} n_ctx_seq={ctx.n_ctx_seq} slots={ctx.n_seq_max} "
        f"unified={ctx.kv_unified} batch={ctx.n_batch} ubatch={ctx.n_ubatch} "
        f"flash_attn={ctx.flash_attn} swa_cells={ctx.kv_cells_swa}",
        f"graph splits: {splits}",
        "buffers:",
    ]
    for b in report.model_buffers:
        lines.append(f"  model   {b.buffer_type:>24} {b.size / MIB:10.2f} MiB  ({b.size} B)")
    for b in report.kv_buffers:
        lines.append(
            f"  kv/{b.cache:<4} {b.buffer_type:>24} {b.size / MIB:10.2f} MiB  ({b.size} B)"
        )
    out = report.output_buffer
    lines.append(f"  output  {out.buffer_type:>24} {out.size / MIB:10.2f} MiB  ({out.size} B)")
    lines += [f"note: {terminal_safe(note)}" for note in report.notes]
    if verdict is not None:
        lines += ["", verdict_text(verdict, with_buffers=False)]
    return "\n".join(lines)


# --- against the rig's budgets ------------------------------------------------------------


def device_verdict(row: DeviceBudget) -> str:
    """``fits`` or ``over by N MiB`` (rounded up, so never "over by 0")."""
    return "fits" if row.fits else f"over by {over_mib(row)} MiB"


def over_text(verdict: BudgetVerdict) -> str:
    """Every device over budget with its excess, need and budget, e.g.
    ``CUDA1 over by 8099 MiB (needs 23970 MiB, budget 15872 MiB)``; empty when it fits."""
    return "; ".join(
        f"{_where(row)} over by {over_mib(row)} MiB (needs {row.total / MIB:.0f} MiB, "
        f"budget {row.budget / MIB:.0f} MiB)"
        for row in verdict.over
    )


def verdict_line(verdict: BudgetVerdict) -> str:
    """``fits``, or ``does not fit: `` and ``over_text``."""
    return "fits" if verdict.fits else f"does not fit: {over_text(verdict)}"


def _where(row: DeviceBudget) -> str:
    """A GPU by its name, the CPU by its; a host row shared with RPC devices as host RAM."""
    if not row.host or row.members in ((CPU,), ()):
        return row.device
    return f"host RAM ({row.device})"


def verdict_table(verdict: BudgetVerdict, *, with_buffers: bool = True) -> str:
    """Per device (GPUs, then the host's RAM shared by the CPU and host-backed devices): the
    predicted buffers (``with_buffers``), the total, the memory, the budget (memory minus the
    GPU margin or the RAM reserve) and fits / over by N MiB."""
    rows = []
    for row in verdict.devices:
        cells: dict[str, object] = {"device": row.device}
        if with_buffers:
            cells |= {
                "weights": _mib(row.weights),
                "kv": _mib(row.kv),
                "compute": _mib(row.compute),
                "output": _mib(row.output),
            }
        cells |= {
            "total": _mib(row.total),
            "memory": _mib(row.memory),
            "budget": _mib(row.budget),
            "verdict": device_verdict(row),
        }
        rows.append(cells)
    lines = ["MiB against the budget (memory minus the GPU margin or the RAM reserve):"]
    lines.append(rows_table(rows))
    if not verdict.compute_modelled:
        lines.append(f"note: compute buffers marked {NOT_MODELLED} are not in the totals")
    return "\n".join(lines)


def verdict_text(verdict: BudgetVerdict, *, with_buffers: bool = True) -> str:
    """``verdict_table`` and a closing ``verdict: `` line (``verdict_line``)."""
    return f"{verdict_table(verdict, with_buffers=with_buffers)}\nverdict: {verdict_line(verdict)}"
