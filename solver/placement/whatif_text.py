"""What ``fit whatif`` shows: one table row per (rig, variation), then the cheapest rig.

A pure function of ``solver.placement.whatif``'s rows; the CLI only prints it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from solver.placement.whatif import WhatIfRow
from solver.text_table import rows_table


def _or_dash(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def whatif_text(
    rows: Sequence[WhatIfRow], *, target_tps: float | None = None, cheapest: WhatIfRow | None
) -> str:
    """Price, fit, strategy, estimated speeds and largest context per row; with a target,
    the cheapest rig that reaches it (or that none does)."""
    table = [
        {
            "scenario": r.scenario,
            "vary": r.variation or "-",
            "price $": _or_dash(r.price_usd, ",.0f"),
            "fits": "yes" if r.fits else "no",
            "strategy": r.strategy or "-",
            "decode t/s": _or_dash(r.decode_tps, ".1f"),
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
    return "\n".join(lines)


def whatif_json(rows: Sequence[WhatIfRow], *, cheapest: WhatIfRow | None) -> dict[str, Any]:
    """``fit whatif --json``: every row, and the cheapest rig reaching the target (or None)."""
    return {
        "rows": [r.model_dump() for r in rows],
        "cheapest": cheapest.model_dump() if cheapest else None,
    }
