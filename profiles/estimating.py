"""``fit estimate``: what any llama-server command line costs on a rig, before it is launched.

One call (``estimate_launch``): the memory of every buffer the arguments allocate (``fit
memory``'s ``predict_memory``), each device against the solver's budgets (``fit check``'s
verdict), and the decode and prefill speed the cost model gives that exact placement
(``solver.placement.launch_cost.LaunchPredictor``: the loader's placement, not a plan), with
the interval the public speed corpus puts around such an estimate. The CLI only renders it.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from profiles.calibration_store import coefficients_in_use
from profiles.planning import PlacementOutcome, PlacementRequest, solve_for_profile
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


# --- fit solve --compare ---------------------------------------------------------------------


class CommandComparison(BaseModel):
    """``fit solve --compare ARGS``: the user's command and fit's plan priced alike (both
    launches through ``LaunchPredictor``, on the solve's rig and coefficients, decode at the
    solve's depth), and the plan's speed over the command's."""

    model_config = ConfigDict(frozen=True)

    args: tuple[str, ...]
    depth: int
    report: MemoryReport
    verdict: BudgetVerdict
    yours: LaunchCost
    plan: LaunchCost | None = Field(description="fit's plan as a launch; None: no plan fits")
    intervals: SpeedIntervals

    def ratio(self, speed: str) -> float | None:
        """fit's plan over the command, for ``decode`` or ``prefill`` (2.0: twice as fast)."""
        if self.plan is None:
            return None
        mine = getattr(self.plan.estimate, f"{speed}_tps")
        yours = getattr(self.yours.estimate, f"{speed}_tps")
        return mine / yours if yours else None

    def to_json(self) -> dict[str, object]:
        yours = self.yours.estimate
        return {
            "args": list(self.args),
            "depth": self.depth,
            "fits": self.verdict.fits,
            "verdict": self.verdict.to_json(),
            "estimate": self.intervals.estimate_json(yours.decode_tps, yours.prefill_tps),
            "plan_estimate": None
            if self.plan is None
            else {
                "decode_tps": self.plan.estimate.decode_tps,
                "prefill_tps": self.plan.estimate.prefill_tps,
            },
            "decode_ratio": self.ratio("decode"),
            "prefill_ratio": self.ratio("prefill"),
        }


def compare_args(text: str, rig: Rig) -> tuple[str, ...]:
    """``--compare "ARGS"`` split as a shell splits it and checked as llama-server checks it
    (``BadInput`` naming what is wrong), before anything is solved."""
    try:
        args = tuple(shlex.split(text))
    except ValueError as error:
        raise BadInput(f"--compare {text!r}: {error}") from None
    if not args:
        raise BadInput("--compare needs the llama-server arguments to price, e.g. '-ngl 99'")
    if "-m" in args or "--model" in args:
        raise BadInput("--compare takes the arguments without -m MODEL (the model is MODEL)")
    launch_config(args, rig.hardware)
    return args


def solve_and_compare(
    request: PlacementRequest, compare: str | None = None
) -> tuple[PlacementOutcome, CommandComparison | None]:
    """``fit solve``, and with ``compare`` (llama-server arguments as one string) that command
    priced beside the plan. The arguments are checked before the solve."""
    if compare is None:
        return solve_for_profile(request), None
    rig = resolve_rig(request.rig)
    args = compare_args(compare, rig)
    outcome = solve_for_profile(request)
    coefficients = CostCoefficients()
    if rig.is_this_machine:
        coefficients, _ = coefficients_in_use(
            rig.machine_id or "", use_calibration=request.use_calibration
        )
    predictor = LaunchPredictor(
        outcome.inventory, rig.hardware, coefficients, cpu=rig.cpu, request=request.solve
    )
    depth = request.solve.depth
    config, report = predictor.memory(args)
    plan = None
    if outcome.report.feasible:
        plan_config, plan_report = predictor.memory(outcome.report.args)
        plan = predictor.cost(plan_config, plan_report, depth=depth)
    comparison = CommandComparison(
        args=args, depth=depth, report=report, verdict=predictor.verdict(report),
        yours=predictor.cost(config, report, depth=depth), plan=plan,
        intervals=corpus_intervals(),
    )  # fmt: skip
    return outcome, comparison
