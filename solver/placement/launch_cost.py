"""Price a real launch — any llama-server arguments, not only a solver ``Plan`` — with the
cost model.

The memory model already replays llama.cpp's loader for the arguments
(``MemoryReport.placement``: weight -> device, layer -> KV device). Here that placement is
folded into the cost model's own shape (per layer, the device of each part in
``solver.cost.model.PARTS``) and priced by ``solver.cost.model.estimate_parts_cost``, the
same arithmetic a ``Plan`` goes through. Devices the rig description has no rate for
(``RPC0``..., or any device before calibration) take the calibrated rate when there is one,
else the host's rate, and the estimate says which.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from solver.cost.model import (
    MOVABLE,
    CostCoefficients,
    CostEstimate,
    DeviceLoads,
    build_cost_tables,
    device_loads,
    device_rates,
    estimate_parts_cost,
    layer_loads,
)
from solver.gguf.inventory import Inventory
from solver.hardware.scenario import Hardware
from solver.llama.args import LaunchConfig, parse_llama_args
from solver.llama.budget import BudgetVerdict, budget_verdict
from solver.llama.device_map import CpuFeatures
from solver.llama.hparams import model_hparams
from solver.llama.kv_cache import layer_kv_bytes
from solver.llama.memory import MemoryReport, estimate_memory
from solver.placement.setting import (
    SolveRequest,
    capacities,
    cost_workload,
    local_gpu_buffers,
    placement_table,
)
from solver.plan.units import Unit, unit_of
from solver.quantities import CPU, MIB


class LaunchCost(BaseModel):
    """The cost model's estimate for one launch, with where each device's rate came from."""

    model_config = ConfigDict(frozen=True)

    estimate: CostEstimate
    loads: DeviceLoads
    rate_sources: dict[str, str] = Field(
        description="per device: 'calibrated', 'corpus fit', or 'host rate (not calibrated)'"
    )
    mixed_parts: int = Field(
        default=0, description="layer parts whose tensors sit on more than one device"
    )
    split_transfer_s: float = Field(
        default=0.0, description="seconds a decode split spends moving the activation"
    )
    n_ubatch: int = Field(default=512, description="tokens of the prefill ubatch priced")
    prefill_ubatches: int = Field(default=1, description="ubatches of the batch priced")
    pipeline_parallel: bool = Field(default=False, description="llama.cpp pipelines ubatches")
    flash_attn: bool = Field(default=True, description="flash attention as llama.cpp resolved it")


def launch_part_devices(
    inventory: Inventory, placement_devices: dict[str, str], layer_devices: Sequence[str]
) -> tuple[list[list[str]], int]:
    """Per layer, the device of each part (``solver.cost.model.PARTS`` order), and the count of
    parts split over devices by the arguments (priced on the device holding most of their bytes)."""
    n_layers = len(layer_devices)
    part_of = {unit: p for p, unit in enumerate(MOVABLE, start=1)}
    held: list[list[dict[str, int]]] = [
        [{} for _ in range(1 + len(MOVABLE))] for _ in layer_devices
    ]
    for tensor in inventory.tensors:
        if tensor.layer is None or tensor.layer >= n_layers or tensor.name not in placement_devices:
            continue
        unit = unit_of(tensor)
        part = 0 if unit in (None, Unit.ATTENTION) else part_of[unit]
        bytes_on = held[tensor.layer][part]
        device = placement_devices[tensor.name]
        bytes_on[device] = bytes_on.get(device, 0) + tensor.n_bytes
    parts = []
    mixed = 0
    for layer, per_part in enumerate(held):
        row = []
        for bytes_on in per_part:
            mixed += len(bytes_on) > 1
            row.append(
                max(bytes_on, key=bytes_on.__getitem__) if bytes_on else layer_devices[layer]
            )
        parts.append(row)
    return parts, mixed


def launch_coefficients(
    hardware: Hardware, coefficients: CostCoefficients, devices: Sequence[str]
) -> tuple[CostCoefficients, dict[str, str]]:
    """Coefficients with a rate for every device of the launch, and where each came from."""
    rates = device_rates(hardware, coefficients)
    gpus = {gpu.device for gpu in hardware.gpus}
    measured = dict(coefficients.measured)
    sources = {}
    for device in devices:
        if device in coefficients.measured:
            sources[device] = "calibrated"
        elif device in gpus:
            sources[device] = "corpus fit"
        else:
            # this CPU (spec or default DRAM figure) and RPC devices: the host's rate
            measured[device] = rates[CPU]
            calibrated = CPU in coefficients.measured
            sources[device] = (
                "host rate (calibrated)" if calibrated else "host rate (not calibrated)"
            )
    return coefficients.model_copy(update={"measured": measured}), sources


def price_launch(
    inventory: Inventory,
    config: LaunchConfig,
    report: MemoryReport,
    hardware: Hardware,
    coefficients: CostCoefficients | None = None,
    *,
    depth: int = 0,
    prefill_ubatches: int = 1,
) -> LaunchCost:
    """Decode and prefill estimate of the launch ``report`` describes (``estimate_memory``'s
    report for ``config``); ``depth`` is the number of cached positions while decoding;
    ``prefill_ubatches`` the ubatches of one batch a prompt fills (they may pipeline)."""
    coefficients = coefficients or CostCoefficients()
    hparams = model_hparams(inventory)
    table = placement_table(inventory, hparams)
    kv = layer_kv_bytes(hparams, report.workload)
    workload = cost_workload(inventory, kv, report.workload)
    # The ubatch the caller prices (a short prompt prefills in one smaller ubatch).
    workload = workload.model_copy(
        update={
            "depth": depth,
            "n_ubatch": config.n_ubatch,
            "flash_attn": report.workload.flash_attn,
            "pipeline_parallel": report.workload.pipeline_parallel,
            "prefill_ubatches": prefill_ubatches,
        }
    )
    placement = report.placement
    n_layers = table.stored.shape[0]
    parts, mixed = launch_part_devices(
        inventory, placement.tensor_devices, placement.layer_devices[:n_layers]
    )
    devices = [CPU, *(d for d in placement.devices if d != CPU)]
    priced, sources = launch_coefficients(hardware, coefficients, devices)
    tables = build_cost_tables(table, hardware, workload, priced, devices=devices)
    return LaunchCost(
        estimate=estimate_parts_cost(parts, placement.output_device, tables),
        loads=device_loads(parts, placement.output_device, layer_loads(table, workload)),
        rate_sources=sources,
        mixed_parts=mixed,
        split_transfer_s=tables.split_decode - priced.split_latency_s,
        n_ubatch=workload.n_ubatch,
        prefill_ubatches=prefill_ubatches,
        pipeline_parallel=workload.pipeline_parallel,
        flash_attn=workload.flash_attn,
    )


def launch_config(args: Sequence[str], hardware: Hardware | None = None) -> LaunchConfig:
    """``args`` parsed as llama-server parses them; with ``hardware``, ``-ot`` may name only
    its local GPUs' buffers and those of the ``--rpc`` servers (without, any ``CUDA<n>``)."""
    gpu_buffers = local_gpu_buffers(hardware) if hardware is not None else []
    return parse_llama_args(list(args), gpu_buffers=gpu_buffers)


class LaunchPredictor:
    """Memory and speed predictions for many argument lists of one model on one rig.

    Example::

        predictor = LaunchPredictor(load_inventory(path), detect_hardware())
        config, report = predictor.memory(["-c", "4096", "-ngl", "99"])
        decode_tps = predictor.cost(config, report).estimate.decode_tps
    """

    def __init__(
        self,
        inventory: Inventory,
        hardware: Hardware,
        coefficients: CostCoefficients | None = None,
        *,
        cpu: CpuFeatures | None = None,
        request: SolveRequest | None = None,
    ) -> None:
        self.inventory = inventory
        self.hardware = hardware
        self.coefficients = coefficients or CostCoefficients()
        self.cpu = cpu
        self.request = request or SolveRequest()

    def for_build(self, system_info: str | None) -> LaunchPredictor:
        """This predictor with the CPU features a llama.cpp build reports in its
        ``system_info`` line (they decide weight repacking; a build may lack what the CPU
        has, e.g. AMX), or unchanged without one."""
        if not system_info:
            return self
        cpu = CpuFeatures.from_system_info(system_info)
        return LaunchPredictor(
            self.inventory, self.hardware, self.coefficients, cpu=cpu, request=self.request
        )

    def memory(self, args: Sequence[str]) -> tuple[LaunchConfig, MemoryReport]:
        """``args`` parsed as llama-server parses them, and every buffer they allocate."""
        config = launch_config(args, self.hardware)
        report = estimate_memory(self.inventory, config, hardware=self.hardware, cpu=self.cpu)
        return config, report

    def cost(
        self,
        config: LaunchConfig,
        report: MemoryReport,
        *,
        depth: int = 0,
        prompt_tokens: int | None = None,
    ) -> LaunchCost:
        """Decode at ``depth`` cached positions; prefill of one ubatch, or of a prompt of
        ``prompt_tokens``: a shorter prompt is one smaller ubatch, a longer one fills batches
        of ``-b`` tokens whose ubatches may pipeline over several GPUs."""
        ubatches = 1
        if prompt_tokens is not None:
            n_ubatch = max(1, min(config.n_ubatch, prompt_tokens))
            batch = max(n_ubatch, min(config.n_batch, prompt_tokens))
            ubatches = -(-batch // n_ubatch)
            config = config.model_copy(update={"n_ubatch": n_ubatch})
        return price_launch(
            self.inventory,
            config,
            report,
            self.hardware,
            self.coefficients,
            depth=depth,
            prefill_ubatches=ubatches,
        )

    def verdict(self, report: MemoryReport) -> BudgetVerdict:
        """The launch against the solver's budgets (``launch_verdict``)."""
        return launch_verdict(report, self.hardware, self.request)

    def shortfalls(self, report: MemoryReport) -> list[str]:
        """Devices the launch overfills, against the solver's budgets (``setting.capacities``:
        GPU memory minus the margin, RAM minus the reserve). Host-backed devices (the CPU and
        RPC devices that are not rig GPUs) share the host's budget."""
        problems = []
        for row in self.verdict(report).over:
            needs = f"needs {row.total / MIB:.0f} MiB, budget {row.budget / MIB:.0f} MiB"
            where = "host memory (CPU and RPC devices)" if row.host else row.device
            problems.append(f"{where} {needs}")
        return problems


def launch_verdict(
    report: MemoryReport, hardware: Hardware, request: SolveRequest | None = None
) -> BudgetVerdict:
    """``report`` against ``hardware``'s budgets as the solver computes them
    (``setting.capacities``: GPU memory minus ``request``'s margin, RAM minus its reserve),
    per device: fits, or over by how much."""
    return budget_verdict(report, capacities(hardware, request or SolveRequest()))
