"""``fit whatif``: the same model solved on several rigs and settings, side by side.

Each row is one (scenario, variation) solved exactly as ``fit solve`` would, plus the largest
context that still fits there (a bisection over feasibility solves, in steps of 1024 tokens).
Variations change one knob at a time: ``ctx``, ``kv``, ``ubatch``, ``parallel`` (request
knobs) or ``ram`` (GiB of host RAM, a hardware knob).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from solver.errors import BadInput
from solver.gguf.inventory import Inventory
from solver.hardware.scenario import MAX_RAM_GIB, MIN_RAM_GIB, Hardware
from solver.llama.device_map import CpuFeatures
from solver.llama.memory import Unmodelled
from solver.placement.solve import SolveRequest, largest_fitting, solve
from solver.quantities import GIB

CONTEXT_STEP = 1024
MAX_VARY_INT = 2**31 - 1  # llama.cpp reads -c, -ub and -np as int32
VARY_KEYS = ("ctx", "kv", "ubatch", "parallel", "ram")


class WhatIfRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    scenario: str
    variation: str = ""
    price_usd: float | None = None
    fits: bool
    strategy: str | None = None
    decode_tps: float | None = None
    prefill_tps: float | None = None
    max_context: int | None = None
    args: tuple[str, ...] = ()
    unmodelled: Unmodelled | None = None  # compute not modelled: the margin that was assumed


def parse_vary(specs: Sequence[str]) -> dict[str, list[str]]:
    """``["ctx=8192,32768", "kv=f16,q8_0"]`` -> ``{"ctx": [...], "kv": [...]}``."""
    result: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or key not in VARY_KEYS or not values:
            raise BadInput(f"--vary {spec!r}: expected KEY=V1,V2,... with KEY one of {VARY_KEYS}")
        result[key] = [v for v in values.split(",") if v]
    return result


def _apply(
    key: str, value: str, request: SolveRequest, hardware: Hardware
) -> tuple[SolveRequest, Hardware]:
    if key == "kv":
        return request.model_copy(update={"kv_types": (value,)}), hardware
    if key == "ram":
        gib = _number(key, value, float, MIN_RAM_GIB, MAX_RAM_GIB)
        host = hardware.host.model_copy(
            update={"ram_bytes": round(gib * GIB), "available_bytes": None}
        )
        return request, hardware.model_copy(update={"host": host})
    field = {"ctx": "contexts", "ubatch": "n_ubatch", "parallel": "parallel"}[key]
    number = _number(key, value, int, 1, MAX_VARY_INT)
    return request.model_copy(update={field: (number,) if key == "ctx" else number}), hardware


def _number(key: str, value: str, kind: type, low: float, high: float) -> float:
    """A ``--vary`` value as ``kind``, within [low, high] (the scenario format's own bounds for
    RAM), or one clear line."""
    try:
        number = kind(value)
    except ValueError:
        raise BadInput(f"--vary {key}={value}: not a number") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise BadInput(f"--vary {key}={value}: must be between {low:.10g} and {high:.10g}")
    return number


def largest_context(
    inventory: Inventory,
    hardware: Hardware,
    request: SolveRequest,
    *,
    low: int = CONTEXT_STEP,
    cpu: CpuFeatures | None = None,
) -> int | None:
    """The largest context (a multiple of 1024 up to the model's own) that fits, or None.
    ``cpu`` is the rig's CPU, as ``solve`` takes it."""

    def fits(context: int) -> bool:
        trial = request.model_copy(update={"contexts": (context,), "time_limit_s": 5.0})
        return solve(inventory, hardware, trial, cpu=cpu).feasible

    top = max(inventory.context_length // CONTEXT_STEP, 1) * CONTEXT_STEP
    return largest_fitting(fits, low, top, CONTEXT_STEP)


def what_if(
    inventory: Inventory,
    scenarios: Sequence[Hardware],
    request: SolveRequest,
    vary: Mapping[str, Sequence[str]] | None = None,
    *,
    with_max_context: bool = True,
    progress: Callable[[str], None] | None = None,
    cpus: Sequence[CpuFeatures | None] | None = None,
) -> list[WhatIfRow]:
    """One row per scenario and variation, in that order. ``progress`` hears which row is
    being solved (each takes up to the request's time limit, more with the context search).
    ``cpus``, one per scenario, are the rigs' CPUs as ``solve`` takes them (None: generic)."""
    rig_cpus = list(cpus) if cpus is not None else [None] * len(scenarios)
    variations: list[tuple[str, str]] = [
        (k, v) for k, values in (vary or {}).items() for v in values
    ] or [("", "")]
    rows = []
    total = len(scenarios) * len(variations)
    for hardware, cpu in zip(scenarios, rig_cpus, strict=True):
        for key, value in variations:
            variation = f"{key}={value}" if key else ""
            if progress is not None:
                progress(f"row {len(rows) + 1}/{total}: {hardware.name} {variation}")
            trial_request, trial_hardware = (
                _apply(key, value, request, hardware) if key else (request, hardware)
            )
            report = solve(inventory, trial_hardware, trial_request, cpu=cpu)
            max_context = (
                largest_context(inventory, trial_hardware, trial_request, cpu=cpu)
                if with_max_context
                else None
            )
            rows.append(
                WhatIfRow(
                    scenario=hardware.name,
                    variation=variation,
                    price_usd=trial_hardware.price_usd,
                    fits=report.feasible,
                    strategy=report.strategy,
                    decode_tps=report.decode_tps,
                    prefill_tps=report.prefill_tps,
                    max_context=max_context,
                    args=report.args,
                    unmodelled=report.unmodelled,
                )
            )
    return rows


def cheapest_reaching(rows: Sequence[WhatIfRow], target_tps: float) -> WhatIfRow | None:
    """The lowest-priced row whose estimated decode speed reaches ``target_tps``."""
    reaching = [
        r for r in rows if r.fits and (r.decode_tps or 0) >= target_tps and r.price_usd is not None
    ]
    return min(reaching, key=lambda r: r.price_usd or 0.0, default=None)


def plot_rows(rows: Sequence[WhatIfRow], path: str, title: str) -> None:
    """A bar chart of estimated decode t/s per row (matplotlib, an optional dependency)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BadInput("--plot needs matplotlib: pip install 'fit[plot]'") from None
    labels = [f"{r.scenario}\n{r.variation}".strip() for r in rows]
    values = [r.decode_tps or 0.0 for r in rows]
    figure, axis = plt.subplots(figsize=(max(6, 1.2 * len(rows)), 4))
    bars = axis.bar(labels, values, color=["#4c72b0" if r.fits else "#bbbbbb" for r in rows])
    for bar, row in zip(bars, rows, strict=True):
        text = f"{row.decode_tps:.0f}" if row.fits and row.decode_tps else "no fit"
        axis.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                      va="bottom", fontsize=8)  # fmt: skip
    axis.set_ylabel("estimated decode t/s")
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
