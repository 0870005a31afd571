"""What ``fit memory`` shows: a ``MemoryReport`` as a per-device table and its buffers.

A pure function of the report; the CLI only prints it. Sizes are MiB (1024**2 bytes) with the
exact byte counts next to each buffer, so a line can be checked against llama.cpp's log.
"""

from __future__ import annotations

from solver.llama.memory import MemoryReport
from solver.quantities import MIB
from solver.text_table import rows_table, terminal_safe

NOT_MODELLED = "n/m"


def _mib(value: int | None) -> str:
    return NOT_MODELLED if value is None else f"{value / MIB:.2f}"


def memory_text(report: MemoryReport) -> str:
    """Per-device MiB table, the context it was sized for, every buffer, and the notes. A
    compute buffer that is an assumed margin (not modelled) is marked ``*``."""
    assumed = report.unmodelled is not None and report.unmodelled.margin is not None
    legend = f"{NOT_MODELLED} = not modelled" + (", * = assumed margin" if assumed else "")
    rows = [
        {
            "device": name,
            "weights": _mib(d.weights),
            "repack": _mib(d.repack),
            "kv": _mib(d.kv),
            "compute": _mib(d.compute) + ("*" if assumed and d.compute is not None else ""),
            "output": _mib(d.output),
            "total": _mib(d.total),
        }
        for name, d in report.devices.items()
    ]
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
    return "\n".join(lines)
