"""``fit estimate``: what any llama-server command line costs on a rig, before it is launched.

One call (``estimate_launch``): the memory of every buffer the arguments allocate (``fit
memory``'s ``predict_memory``), each device against the solver's budgets (``fit check``'s
verdict), and the decode and prefill speed the cost model gives that exact placement
(``solver.placement.launch_cost.LaunchPredictor``: the loader's placement, not a plan), with
the interval the public speed corpus puts around such an estimate. The CLI only renders it.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from profiles.calibration_store import coefficients_in_use
from profiles.rigs import Rig, resolve_rig
from solver.cost.fidelity import SpeedIntervals, corpus_intervals
from solver.cost.model import CostCoefficients
from solver.errors import BadInput
from solver.gguf.sources import load_inventory
from solver.llama.budget import BudgetVerdict
from solver.llama.device_map import CpuFeatures
from solver.llama.memory import MemoryReport, estimate_memory
from solver.placement.launch_cost import LaunchCost, LaunchPredictor, launch_config
from solver.placement.setting import SolveRequest


class LaunchEstimate(BaseModel):
    """One command line on one rig: its buffers, their verdict, and its speeds."""

    model_config = ConfigDict(frozen=True)

    model: str = Field(description="the model as the request named it")
    rig: Rig
    args: tuple[str, ...]
    depth: int = Field(description="cached positions decode is priced at")
    report: MemoryReport
    verdict: BudgetVerdict
    cost: LaunchCost
    intervals: SpeedIntervals
    coefficients_note: str | None = Field(
        default=None, description="which cost coefficients priced this machine (detect only)"
    )

    def to_json(self) -> dict[str, object]:
        estimate = self.cost.estimate
        return {
            **self.report.to_json(),
            "verdict": self.verdict.to_json(),
            "rig": self.rig.hardware.name,
            "depth": self.depth,
            "estimate": self.intervals.estimate_json(estimate.decode_tps, estimate.prefill_tps),
            "rate_sources": dict(self.cost.rate_sources),
            "splits_per_token": estimate.splits_per_token,
        }


def estimate_launch(
    model: str,
    args: Sequence[str],
    *,
    rig: str = "reference",
    depth: int = 0,
    cpu: CpuFeatures | None = None,
    unmodelled_margin: int | None = None,
    request: SolveRequest | None = None,
    use_calibration: bool = True,
) -> LaunchEstimate:
    """``model`` launched with ``args`` on ``rig`` (scenario, TOML file or ``detect``): every
    buffer, each device against ``request``'s budgets, and decode at ``depth`` cached
    positions and prefill of one ubatch. ``detect`` uses this machine's calibration when
    there is one. Bad arguments raise ``BadInput`` before anything is priced."""
    if depth < 0:
        raise BadInput(f"--depth {depth}: give a number of cached tokens, 0 or more")
    resolved = resolve_rig(rig)
    config = launch_config(args, resolved.hardware)
    inventory = load_inventory(model)
    coefficients, note = CostCoefficients(), None
    if resolved.is_this_machine:  # calibration describes this machine, never a scenario
        coefficients, note = coefficients_in_use(
            resolved.machine_id or "", use_calibration=use_calibration
        )
    cpu = cpu if cpu is not None else resolved.cpu
    report = estimate_memory(
        inventory, config, hardware=resolved.hardware, cpu=cpu,
        unmodelled_margin=unmodelled_margin,
    )  # fmt: skip
    if depth >= report.workload.n_ctx_seq:
        raise BadInput(
            f"--depth {depth} is not below the context of one slot ({report.workload.n_ctx_seq} "
            "tokens): decode at that depth never happens"
        )
    predictor = LaunchPredictor(
        inventory, resolved.hardware, coefficients, cpu=cpu, request=request or SolveRequest()
    )
    return LaunchEstimate(
        model=model, rig=resolved, args=tuple(args), depth=depth, report=report,
        verdict=predictor.verdict(report), cost=predictor.cost(config, report, depth=depth),
        intervals=corpus_intervals(), coefficients_note=note,
    )  # fmt: skip
