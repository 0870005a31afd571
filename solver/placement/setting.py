"""One candidate of a solve, resolved once: a (context, KV type) pair with every number that
does not depend on where layers go.

``resolve_setting`` goes parse -> workload -> per-layer KV in one pass: the workload arguments
are parsed as llama-server parses them (``-c -b -ub -fa -ctk -ctv -np``, plus ``--rpc``),
llama.cpp's context resolution runs on them directly (no memory estimate is needed to learn
the context), and each layer's KV bytes come from one call. The same helpers price a user's
own launch (``launch_cost``), so a plan and a command line go through the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from solver.cost.model import (
    CostCoefficients,
    CostTables,
    Objective,
    Workload,
    build_cost_tables,
    output_head_bytes,
)
from solver.errors import BadInput
from solver.gguf.inventory import Inventory
from solver.hardware.scenario import Hardware
from solver.llama.args import LaunchConfig, parse_llama_args, rpc_buffer_names
from solver.llama.hparams import ModelHparams, model_hparams
from solver.llama.kv_cache import layer_kv_bytes
from solver.llama.workload import ComputeWorkload, resolve_workload
from solver.placement.buffers import BufferTable
from solver.placement.cpsat import PlacementProblem
from solver.plan.units import LayerTable, build_layer_table
from solver.quantities import CPU, GIB, MIB

KV_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
DEFAULT_TOLERANCE = 0.005  # a plan 0.5% slower than the optimum may be picked for readability


class SolveRequest(BaseModel):
    """What the user asks for; defaults are what a llama-server user would pick."""

    model_config = ConfigDict(frozen=True)

    contexts: tuple[int, ...] = Field(default=(8192,), description="candidates, tokens")
    kv_types: tuple[str, ...] = Field(default=("f16",), description="in order of preference")
    n_batch: int = 2048
    n_ubatch: int = 512
    flash_attn: str = "on"
    parallel: int = 1
    objective: Objective = Objective.DECODE
    gpu_margin_bytes: int = 512 * MIB
    ram_reserve_bytes: int = 4 * GIB
    time_limit_s: float = 10.0
    workers: int = 2
    with_baselines: bool = False
    unmodelled_margin_bytes: int | None = Field(
        default=None,
        description="for a model whose compute buffers fit cannot model: bytes assumed as the "
        "compute buffer of each device that runs layers; None refuses such a model",
    )
    tolerance: float = Field(
        default=DEFAULT_TOLERANCE,
        ge=0,
        description="how much slower than the optimum (0.005: 0.5%) a plan may be to have "
        "fewer -ot rules and contiguous layer ranges; 0: optimal plans only",
    )
    depth: int = Field(
        default=0,
        ge=0,
        description="tokens already in the cache when decode is priced: the decode objective "
        "and estimate at that depth (0: an empty cache, the fastest token of a chat)",
    )


class Setting(BaseModel):
    """One candidate (context, KV type) with its placement-independent numbers."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    context: int
    kv_type: str
    base_args: tuple[str, ...] = Field(description="the workload and device arguments")
    workload: ComputeWorkload = Field(description="the context llama.cpp resolves for them")
    kv_bytes: tuple[int, ...] = Field(description="per layer, host buffer bytes")
    table: LayerTable
    tables: CostTables
    unmodelled_margin: int | None = Field(
        default=None, description="the request's margin for compute buffers fit cannot model"
    )
    cost_workload: Workload | None = Field(
        default=None, description="what ``tables`` priced, at the request's depth"
    )
    coefficients: CostCoefficients | None = Field(
        default=None, description="the coefficients ``tables`` were priced with"
    )

    def tables_at_depth(self, hardware: Hardware, depth: int) -> CostTables:
        """``tables`` with decode priced at ``depth`` cached tokens instead (the same
        workload and coefficients otherwise): a plan's decode at another point of a chat."""
        if self.cost_workload is None or depth == self.cost_workload.depth:
            return self.tables
        workload = self.cost_workload.model_copy(update={"depth": depth})
        return build_cost_tables(
            self.table, hardware, workload, self.coefficients or CostCoefficients()
        )


# --- arguments that do not depend on placement --------------------------------------------


def workload_args(request: SolveRequest, context: int, kv_type: str) -> list[str]:
    """``-c -b -ub -fa -ctk -ctv -np`` for one candidate."""
    if kv_type not in KV_TYPES:
        raise BadInput(f"KV cache type '{kv_type}' is not one llama.cpp offers: {KV_TYPES}")
    return [
        "-c", str(context), "-b", str(request.n_batch), "-ub", str(request.n_ubatch),
        "-fa", request.flash_attn, "-ctk", kv_type, "-ctv", kv_type,
        "-np", str(request.parallel),
    ]  # fmt: skip


def device_args(hardware: Hardware) -> list[str]:
    """``--rpc`` for a rig whose GPUs are RPC devices (it must precede any ``-ot``)."""
    endpoints = [gpu.rpc_endpoint for gpu in hardware.gpus if gpu.rpc_endpoint]
    if not endpoints:
        return []
    if len(endpoints) != len(hardware.gpus):
        raise BadInput(f"{hardware.name}: mix of local and RPC GPUs is not supported")
    return ["--rpc", ",".join(endpoints)]


def buffer_names(hardware: Hardware) -> dict[str, str]:
    """The ``-ot`` buffer type name of each device (``CUDA0``, ``RPC0[host:port]``)."""
    return {
        gpu.device: rpc_buffer_names(gpu.rpc_endpoint)[0] if gpu.rpc_endpoint else gpu.device
        for gpu in hardware.gpus
    }


def local_gpu_buffers(hardware: Hardware) -> list[str]:
    """The GPUs ``-ot`` may name directly (RPC devices are named by ``--rpc``)."""
    return [gpu.device for gpu in hardware.gpus if not gpu.rpc_endpoint]


# --- the numbers a plan does not change ------------------------------------------------------


def host_workload(config: LaunchConfig, hparams: ModelHparams) -> ComputeWorkload:
    """The context llama.cpp resolves for ``config`` with every layer on the host. Placement
    only changes it through ``-fa auto`` on CUDA (head sizes without a kernel), which the
    verification step's full memory model sees."""
    return resolve_workload(config, hparams, [CPU] * hparams.n_layer_all, {})


def placement_table(inventory: Inventory, hparams: ModelHparams) -> LayerTable:
    """Per-layer bytes of what llama.cpp loads (MTP layers it skips weigh nothing)."""
    if not hparams.skips_mtp_tensors:
        return build_layer_table(inventory)
    loaded = tuple(t for t in inventory.tensors if hparams.loads(t.name, t.layer))
    return build_layer_table(inventory.model_copy(update={"tensors": loaded}))


def cost_workload(
    inventory: Inventory, kv_bytes: Sequence[int], resolved: ComputeWorkload
) -> Workload:
    """The cost model's view of a launch, from the context llama.cpp resolved for it."""
    attention = inventory.attention
    per_position = [b // max(resolved.n_ctx, 1) for b in kv_bytes]
    heads = attention.n_head or (0,) * inventory.n_layers
    flops = [4.0 * heads[il] * attention.key_length for il in range(len(kv_bytes))]
    return Workload(
        n_embd=inventory.n_embd,
        kv_bytes_per_position=tuple(per_position),
        attention_flops_per_position=tuple(flops),
        n_ubatch=resolved.n_ubatch,
    )


def resolve_setting(
    inventory: Inventory,
    hardware: Hardware,
    request: SolveRequest,
    context: int,
    kv_type: str,
    coefficients: CostCoefficients | None = None,
) -> Setting:
    """Parse the candidate's arguments once, resolve its workload, price its layers."""
    base_args = [*device_args(hardware), *workload_args(request, context, kv_type)]
    config = parse_llama_args(
        [*base_args, "-ngl", "0", "--fit", "off"], gpu_buffers=local_gpu_buffers(hardware)
    )
    hparams = model_hparams(inventory)
    workload = host_workload(config, hparams)
    kv = layer_kv_bytes(hparams, workload)
    table = placement_table(inventory, hparams)
    # the decode objective at the request's depth (the KV read grows with the cache)
    priced = cost_workload(inventory, kv, workload).model_copy(update={"depth": request.depth})
    coefficients = coefficients or CostCoefficients()
    tables = build_cost_tables(table, hardware, priced, coefficients)
    return Setting(
        context=context,
        kv_type=kv_type,
        base_args=tuple(base_args),
        workload=workload,
        kv_bytes=kv,
        table=table,
        tables=tables,
        unmodelled_margin=request.unmodelled_margin_bytes,
        cost_workload=priced,
        coefficients=coefficients,
    )


# --- the budgets and the CP-SAT problem ------------------------------------------------------


def capacities(hardware: Hardware, request: SolveRequest) -> dict[str, tuple[int, int]]:
    """Per device: (memory, what the plan may use after margin or reserve)."""
    host = hardware.host
    ram = host.available_bytes or host.ram_bytes
    result = {CPU: (ram, max(ram - request.ram_reserve_bytes, 0))}
    for gpu in hardware.gpus:
        result[gpu.device] = (gpu.memory_bytes, max(gpu.memory_bytes - request.gpu_margin_bytes, 0))
    return result


def placement_problem(
    setting: Setting,
    hardware: Hardware,
    budgets: dict[str, int],
    fixed: dict[str, int],
    objective: Objective,
    buffers: BufferTable | None = None,
) -> PlacementProblem:
    """The CP-SAT problem of one setting under these budgets, fixed per-device bytes and
    buffers by what each device runs."""
    return PlacementProblem(
        devices=tuple(hardware.device_names),
        capacity=budgets,
        table=setting.table,
        tables=setting.tables,
        kv_bytes=setting.kv_bytes[: setting.table.stored.shape[0]],
        output_bytes=output_head_bytes(setting.table),
        fixed_bytes=fixed,
        buffers=buffers,
        objective=objective,
    )
