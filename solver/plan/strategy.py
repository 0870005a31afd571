"""Name the shape of a plan the way the workspace's models.conf comments do.

A: everything on one GPU. B: split across GPUs. C: GPUs plus routed experts on the CPU.
D: whole layers (or dense FFNs) on the CPU. The label comes with a one-line rationale
built from the plan and the per-device numbers, so a person can check it at a glance.
"""

from __future__ import annotations

from enum import StrEnum

from solver.plan.plan import Plan
from solver.plan.units import Unit
from solver.quantities import CPU, GIB


class Strategy(StrEnum):
    ONE_GPU = "A"
    SPLIT_GPUS = "B"
    EXPERTS_ON_CPU = "C"
    LAYERS_ON_CPU = "D"
    CPU_ONLY = "CPU"


STRATEGY_TITLES = {
    Strategy.ONE_GPU: "everything on one GPU",
    Strategy.SPLIT_GPUS: "split across GPUs",
    Strategy.EXPERTS_ON_CPU: "GPUs plus experts on CPU",
    Strategy.LAYERS_ON_CPU: "dense layers on CPU",
    Strategy.CPU_ONLY: "CPU only",
}


def _moved_to_cpu(plan: Plan, unit: Unit) -> int:
    return sum(1 for device in plan.overrides.get(unit, ()) if device == CPU)


def classify(plan: Plan) -> Strategy:
    gpus_used = [d for d in plan.devices_used if d != CPU]
    if not gpus_used:
        return Strategy.CPU_ONLY
    if plan.n_cpu_layers > 0 or _moved_to_cpu(plan, Unit.FFN_DENSE) > 0:
        return Strategy.LAYERS_ON_CPU
    if _moved_to_cpu(plan, Unit.EXPERTS) + _moved_to_cpu(plan, Unit.SHARED_EXPERTS) > 0:
        return Strategy.EXPERTS_ON_CPU
    return Strategy.ONE_GPU if len(gpus_used) == 1 else Strategy.SPLIT_GPUS


def rationale(plan: Plan, *, weights_bytes: int, gpu_capacity_bytes: int) -> str:
    """One line: why this shape, in the numbers that forced it."""
    strategy = classify(plan)
    size = f"{weights_bytes / GIB:.1f} GiB of weights"
    room = f"{gpu_capacity_bytes / GIB:.1f} GiB usable VRAM"
    if strategy is Strategy.CPU_ONLY:
        return f"no GPU in this rig: {size} run from system RAM"
    if strategy is Strategy.ONE_GPU:
        return f"{size} and the KV cache fit one GPU; no split costs"
    if strategy is Strategy.SPLIT_GPUS:
        return f"{size} plus KV exceed one GPU but fit {room} across GPUs"
    if strategy is Strategy.EXPERTS_ON_CPU:
        n = _moved_to_cpu(plan, Unit.EXPERTS)
        return (
            f"{size} exceed {room}; routed experts of {n} layers stay in RAM (a token reads "
            f"only its active experts), attention and everything else on GPUs"
        )
    n_layers = plan.n_cpu_layers
    return f"{size} exceed {room}; {n_layers} layers run on the CPU, the rest on GPUs"
