"""fit's placement against llama.cpp's own fitter, both launched for real on the same devices.

A ``Case`` is a model (the real gemma-3-270m or a synthetic GGUF of ``profiles.fidelity_cases``'
naming), a workload (``-c -b -ub -fa -np``, the same for both tools) and a per-device budget
given as a fraction of what the plain full offload (``-ngl 99 -ts 1,1``) needs on its fuller
device by fit's memory model: from tight (the compute buffers alone take much of it) to roomy.

``run_case`` runs both tools for two ``ggml-rpc-server`` devices with that same budget:

1. Budget: ``profiles.fit_params.fit_target`` turns it into llama-fit-params' ``-fitt``; the
   exact bytes fit.cpp then fits to (at most 1 MiB under the asked budget) become each
   device's memory in ``profiles.rigs.loopback_rpc_rig`` with a zero margin for fit. The free
   memory the RPC servers reported to llama-fit-params is checked against the one assumed.
2. llama.cpp: ``llama-fit-params`` prints its arguments (``profiles.fit_params``).
3. fit: ``solver.placement.solve.solve`` for the same rig and workload, at a zero tolerance
   (the optimum, not a more readable plan near it).
4. Each plan is launched on the real llama-server (``--fit off``); the RPC servers' debug logs
   give the exact bytes of every buffer each device allocated.
5. Each plan is priced by the same cost model (``solver.placement.launch_cost``, the rig of
   step 1) from its own arguments.

``CaseResult.failures`` names what the issue asks fit to show on every case: fit's plan
within budget in the real log, priced at least as fast as llama-fit-params' plan, and at
least as many weight bytes on the devices unless fewer are strictly faster. The last two
hold against a llama-fit-params plan that itself stayed within the budget in the real log
(``CaseResult.rival``); one that overfilled a device is reported, not matched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from profiles.fidelity_cases import GEMMA
from profiles.fit_params import FitTarget, fit_target, reported_free_bytes, run_fit_params
from profiles.rigs import loopback_rpc_rig
from profiles.server import RpcServers, run_until_ready
from profiles.server_log import RunReport
from solver.errors import OperationFailed
from solver.gguf.inventory import Inventory
from solver.gguf.sources import load_inventory
from solver.hardware.scenario import Hardware
from solver.placement.launch_cost import LaunchPredictor
from solver.placement.solve import SolveRequest, solve

# Both launches: no warm-up run, no auto-fitting by llama-server itself (each tool's arguments
# exactly), one thread (other jobs share the machine; threads change no buffer).
LAUNCH_ARGS = ("--no-warmup", "--fit", "off", "-t", "1")
FULL_OFFLOAD = ("-ngl", "99", "-ts", "1,1")
TOOLS = ("fit", "llama-fit-params")


@dataclass(frozen=True)
class Case:
    """One comparison: ``model`` (``GEMMA`` or ``<arch>/<layers>``), the per-device budget as
    a fraction of the full offload's need on its fuller device, and the workload."""

    model: str
    fraction: float
    context: int = 2048
    n_ubatch: int = 512

    @property
    def id(self) -> str:
        return f"{self.model} x{self.fraction:g}"

    @property
    def workload(self) -> tuple[str, ...]:
        """The arguments both tools get (the defaults of llama-server written out)."""
        return (
            "-c", str(self.context), "-b", "2048", "-ub", str(self.n_ubatch),
            "-fa", "on", "-np", "1",
        )  # fmt: skip

    @property
    def request(self) -> SolveRequest:
        """The same workload as fit's request: zero margins, the optimum."""
        return SolveRequest(
            contexts=(self.context,),
            n_batch=2048,
            n_ubatch=self.n_ubatch,
            flash_attn="on",
            parallel=1,
            gpu_margin_bytes=0,
            ram_reserve_bytes=0,
            tolerance=0.0,
        )


_SYNTHETIC = ("llama/8", "qwen3moe/8", "gemma3/8", "gpt-oss/8")
_FRACTIONS = (0.4, 0.6, 0.8, 1.05)
CASES = (
    *(Case(model, fraction) for model in _SYNTHETIC for fraction in _FRACTIONS),
    # the real gemma-3-270m: 262K-token logits make its compute buffer large, hence -ub 128
    *(Case(GEMMA, fraction, n_ubatch=128) for fraction in (0.4, 0.7, 1.05)),
)
# What tests/test_fit_params.py asserts: dense, MoE and sliding-window models, tight and mid
# budgets, each one where llama-fit-params' plan stays within the budget (a rival to match).
CI_CASES = (Case("llama/8", 0.4), Case("qwen3moe/8", 0.6), Case("gemma3/8", 0.4))


class PlanOutcome(BaseModel):
    """One tool's plan for a case: its arguments, what the real launch held, its price."""

    model_config = ConfigDict(frozen=True)

    tool: str
    args: tuple[str, ...] = Field(description="placement and workload, without --rpc")
    device_bytes: dict[str, int] = Field(
        description="RPC device -> bytes it allocated (its server's debug log, exact)"
    )
    weight_bytes: int = Field(description="model buffers on the RPC devices, exact")
    predicted_bytes: dict[str, int] = Field(description="fit's memory model, same devices")
    decode_tps: float = Field(description="fit's cost model, empty cache")
    prefill_tps: float = Field(description="fit's cost model, one ubatch")

    def over(self, budget: int) -> list[str]:
        """Devices the real launch filled beyond ``budget`` bytes."""
        return [device for device, held in self.device_bytes.items() if held > budget]


class CaseResult(BaseModel):
    """Both plans of a case and the budget they were held to."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    endpoints: tuple[str, ...] = Field(description="the RPC servers, in --rpc order")
    target: FitTarget
    fit: PlanOutcome
    llama: PlanOutcome
    fit_status: str = Field(description="the solver's status")

    @property
    def budget(self) -> int:
        return self.target.budget_bytes

    @property
    def speed_ratio(self) -> float:
        """fit's decode t/s over llama-fit-params' (both by fit's cost model)."""
        return self.fit.decode_tps / self.llama.decode_tps

    @property
    def rival(self) -> bool:
        """llama-fit-params' plan stayed within the budget in the real log: a plan fit must
        match. One that overfilled a device is no answer to the budget; fit is then held to
        the budget alone."""
        return not self.llama.over(self.budget)

    def failures(self) -> list[str]:
        """What fit must show on this case and does not (empty: all shown)."""
        problems = []
        for device in self.fit.over(self.budget):
            held = self.fit.device_bytes[device]
            problems.append(f"fit's plan holds {held} B on {device}, budget {self.budget} B")
        if not self.rival:
            return problems
        if self.fit.decode_tps < self.llama.decode_tps:
            problems.append(
                f"fit's plan is priced at {self.fit.decode_tps:.2f} t/s, llama-fit-params' "
                f"at {self.llama.decode_tps:.2f} t/s"
            )
        if (
            self.fit.weight_bytes < self.llama.weight_bytes
            and self.fit.decode_tps <= self.llama.decode_tps
        ):
            problems.append(
                f"fit puts {self.fit.weight_bytes} B of weights on the devices, "
                f"llama-fit-params {self.llama.weight_bytes} B, and fit's is not faster"
            )
        return problems


# --- running one case -----------------------------------------------------------------------


def _rpc_args(rpc: RpcServers) -> tuple[str, ...]:
    return ("--rpc", rpc.rpc_arg)


def _without_rpc(args: Sequence[str]) -> tuple[str, ...]:
    """``args`` less their ``--rpc LIST`` (``run_until_ready`` puts it first itself)."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--rpc":
            skip = True
        else:
            out.append(arg)
    return tuple(out)


def case_budget(case: Case, inventory: Inventory, rpc: RpcServers) -> int:
    """The budget ``case`` asks for, in bytes: its fraction of the plain full offload's
    total on the fuller RPC device, by fit's memory model."""
    roomy = loopback_rpc_rig(rpc.endpoints, 1 << 40)
    predictor = LaunchPredictor(inventory, roomy, request=case.request)
    _, report = predictor.memory([*_rpc_args(rpc), *case.workload, *FULL_OFFLOAD])
    need = max(memory.total for device, memory in report.devices.items() if device != "CPU")
    return int(need * case.fraction)


def _held(run: RunReport) -> tuple[dict[str, int], int]:
    """RPC device -> bytes allocated, and the model bytes among them (exact, debug logs)."""
    devices = {}
    weights = 0
    for device, allocated in sorted(run.rpc_allocations.items()):
        devices[device] = sum(allocated.model) + sum(allocated.kv) + allocated.compute_bytes
        weights += sum(allocated.model)
    return devices, weights


def _outcome(
    tool: str,
    args: Sequence[str],
    model: Path,
    rpc: RpcServers,
    predictor: LaunchPredictor,
    server_options: Mapping[str, Any],
) -> PlanOutcome:
    """Launch ``args`` on ``rpc``'s devices, read what each held, price the same arguments."""
    launched = _without_rpc(args)
    run = run_until_ready(model, [*LAUNCH_ARGS, *launched], rpc=rpc, **server_options)
    if len(run.rpc_allocations) != rpc.count:
        raise OperationFailed(f"{tool}: the RPC servers' debug logs name no allocations")
    devices, weights = _held(run)
    priced = predictor.for_build(run.system_info)
    config, report = priced.memory([*_rpc_args(rpc), *launched])
    cost = priced.cost(config, report).estimate
    return PlanOutcome(
        tool=tool,
        args=launched,
        device_bytes=devices,
        weight_bytes=weights,
        predicted_bytes={d: report.devices[d].total for d in devices if d in report.devices},
        decode_tps=cost.decode_tps,
        prefill_tps=cost.prefill_tps,
    )


def _fit_params_args(
    case: Case, model: Path, target: FitTarget, rpc: RpcServers, env: Mapping[str, str] | None
) -> tuple[str, ...]:
    """llama-fit-params' arguments for ``case``, after checking the free memory it saw."""
    offsets = rpc.log_offsets()
    found = run_fit_params(model, case.workload, target, rpc=rpc, env=env)
    if rpc.debug:
        seen = reported_free_bytes(rpc.logs_since(offsets))
        wrong = {e: free for e, free in seen.items() if free != target.free_bytes}
        if wrong or len(seen) != rpc.count:
            raise OperationFailed(
                f"the RPC servers reported {seen} bytes free, not {target.free_bytes}"
            )
    printed = list(found.args)
    if printed[:2] != ["-c", str(case.context)]:  # the context it was given, left alone
        raise OperationFailed(f"llama-fit-params changed the context: {' '.join(printed)}")
    return (*case.workload, *printed[2:])


def run_case(
    case: Case,
    model: Path,
    rpc: RpcServers,
    *,
    env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
) -> CaseResult:
    """Both tools' plans for ``case`` on ``model``, launched on ``rpc`` (debug servers)."""
    inventory = load_inventory(str(model))
    target = fit_target(case_budget(case, inventory, rpc))
    hardware: Hardware = loopback_rpc_rig(rpc.endpoints, target.budget_bytes)
    llama_args = _fit_params_args(case, model, target, rpc, env)
    report = solve(inventory, hardware, case.request)
    if not report.feasible:
        raise OperationFailed(f"{case.id}: fit found no plan ({report.status.value})")
    predictor = LaunchPredictor(inventory, hardware, request=case.request)
    outcomes = []
    for tool, args in (("fit", report.args), ("llama-fit-params", llama_args)):
        options: dict[str, Any] = {"env": env}
        if log_dir is not None:
            options["log_path"] = log_dir / f"{case.id.replace('/', '-')}-{tool}.log"
        outcomes.append(_outcome(tool, args, model, rpc, predictor, options))
    return CaseResult(
        case_id=case.id,
        endpoints=tuple(rpc.endpoints),
        target=target,
        fit=outcomes[0],
        llama=outcomes[1],
        fit_status=report.status.value,
    )
