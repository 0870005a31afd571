"""What a token costs: decode and prefill time of a plan on a rig.

Decode is memory-bound: per token each device reads the weights it holds that the token
touches (routed experts only their active share) at that device's effective bandwidth, and
devices work one after another, so the times add. Each switch between devices along the
graph (a split) costs a fixed latency plus the activation crossing the link.

Prefill is compute-bound on GPUs. For a ubatch of at least ``op_offload_min_batch`` tokens,
llama.cpp's scheduler runs matmuls whose weights sit in host memory on the first GPU and copies
those weights over PCIe for every ubatch (ggml-backend.cpp,
``ggml_backend_sched_backend_id_from_cur``, cause "1.off"; the threshold is ggml-cuda.cu's
``GGML_OP_OFFLOAD_MIN_BATCH``, default 32).

Coefficients start from spec sheets (``CostCoefficients`` defaults) and are replaced by values
fitted to measured runs (``solver.calibrate``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import pairwise

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from solver.hardware import Hardware
from solver.plan import CPU, Plan
from solver.units import LayerTable, Unit

# Order in which a layer's parts run in llama.cpp's graphs (attention, then the FFN: routed
# experts before shared experts, as build_moe_ffn's result is added to the shared FFN's).
GRAPH_ORDER: tuple[Unit | None, ...] = (
    Unit.ATTENTION,
    None,  # norms and router: follow the layer
    Unit.FFN_DENSE,
    Unit.EXPERTS,
    Unit.SHARED_EXPERTS,
)


class DeviceRates(BaseModel):
    """Effective rates of one device, after efficiency factors or calibration."""

    model_config = ConfigDict(frozen=True)

    bandwidth_bytes_per_s: float
    flops: float
    link_bytes_per_s: float = Field(description="host<->device; inf for the CPU itself")


class CostCoefficients(BaseModel):
    """Knobs of the cost model; defaults are spec-sheet guesses until calibration."""

    model_config = ConfigDict(frozen=True)

    gpu_bandwidth_efficiency: float = 0.80
    cpu_bandwidth_efficiency: float = 0.65
    gpu_flops_efficiency: float = 0.40
    cpu_flops_per_core: float = 50e9
    pcie_efficiency: float = 0.80
    split_latency_s: float = 25e-6
    token_overhead_s: float = 1.0e-3
    op_offload_min_batch: int = 32
    measured: dict[str, DeviceRates] = Field(
        default_factory=dict, description="calibrated rates per device name, if any"
    )


class CostEstimate(BaseModel):
    model_config = ConfigDict(frozen=True)

    decode_seconds_per_token: float
    decode_tps: float
    prefill_seconds_per_ubatch: float
    prefill_tps: float
    decode_seconds_by_device: dict[str, float]
    splits_per_token: int


def device_rates(hardware: Hardware, coefficients: CostCoefficients) -> dict[str, DeviceRates]:
    """Effective rates for each device of the rig (calibrated ones win)."""
    host = hardware.host
    cpu_bandwidth = host.bandwidth_bytes_per_s * coefficients.cpu_bandwidth_efficiency
    rates = {
        CPU: DeviceRates(
            bandwidth_bytes_per_s=cpu_bandwidth,
            flops=host.cores * coefficients.cpu_flops_per_core,
            link_bytes_per_s=float("inf"),
        )
    }
    for gpu in hardware.gpus:
        rates[gpu.device] = DeviceRates(
            bandwidth_bytes_per_s=gpu.spec.bandwidth_bytes_per_s
            * coefficients.gpu_bandwidth_efficiency,
            flops=gpu.spec.fp16_flops * coefficients.gpu_flops_efficiency,
            link_bytes_per_s=gpu.link_bytes_per_s * coefficients.pcie_efficiency,
        )
    rates.update(coefficients.measured)
    return rates


def graph_devices(plan: Plan, table: LayerTable) -> list[str]:
    """Devices along the decode graph: input, each present part of each layer, output."""
    column = {unit: i for i, unit in enumerate(table.units)}
    sequence = [CPU]  # token_embd rows are read on the host
    for layer in range(plan.n_layers):
        for unit in GRAPH_ORDER:
            if unit is None:
                sequence.append(plan.layer_devices[layer])
            elif table.stored[layer, column[unit]] > 0:
                sequence.append(plan.unit_device(layer, unit))
    sequence.append(plan.output_device)
    return sequence


def crossings(sequence: Sequence[str]) -> Iterator[tuple[str, str]]:
    """Consecutive device pairs that differ: each is one graph split."""
    return ((a, b) for a, b in pairwise(sequence) if a != b)


def split_seconds(
    sequence: Sequence[str],
    nbytes: float,
    rates: dict[str, DeviceRates],
    coefficients: CostCoefficients,
) -> float:
    """Latency plus transfer of ``nbytes`` of activations at every split of ``sequence``.

    GPU to GPU goes through the host, so both devices' links count.
    """
    seconds = 0.0
    for a, b in crossings(sequence):
        seconds += coefficients.split_latency_s
        for device in (a, b):
            if device != CPU:
                seconds += nbytes / rates[device].link_bytes_per_s
    return seconds


def estimate_cost(
    plan: Plan,
    table: LayerTable,
    hardware: Hardware,
    *,
    n_embd: int,
    kv_bytes_per_token: Sequence[int],
    attention_flops_per_token_per_position: Sequence[float],
    depth: int = 0,
    n_ubatch: int = 512,
    coefficients: CostCoefficients | None = None,
) -> CostEstimate:
    """Decode seconds per token and prefill seconds per ubatch of ``plan``.

    ``kv_bytes_per_token[l]`` is layer l's K+V bytes per cached position (read once per
    decoded token at ``depth`` positions); ``attention_flops_per_token_per_position[l]`` is
    the QK and PV work per query token per key position.
    """
    coefficients = coefficients or CostCoefficients()
    rates = device_rates(hardware, coefficients)
    column = {unit: i for i, unit in enumerate(table.units)}
    by_device: dict[str, float] = {}

    def add(device: str, seconds: float) -> None:
        by_device[device] = by_device.get(device, 0.0) + seconds

    # Step 1: decode — every byte a token touches, read at its device's bandwidth.
    for layer in range(plan.n_layers):
        layer_device = plan.layer_devices[layer]
        layer_bw = rates[layer_device].bandwidth_bytes_per_s
        add(layer_device, float(table.pinned[layer]) / layer_bw)
        add(layer_device, float(kv_bytes_per_token[layer]) * depth / layer_bw)
        for unit, i in column.items():
            nbytes = table.read_per_token[layer, i]
            if nbytes:
                device = plan.unit_device(layer, unit)
                add(device, nbytes / rates[device].bandwidth_bytes_per_s)
    output_device = plan.output_device
    output_bytes = sum(
        nbytes for name, nbytes in table.global_bytes.items() if name.startswith("output")
    )
    add(output_device, output_bytes / rates[output_device].bandwidth_bytes_per_s)

    sequence = graph_devices(plan, table)
    activation = n_embd * 4.0  # one f32 row per token crosses each split
    decode = (
        sum(by_device.values())
        + split_seconds(sequence, activation, rates, coefficients)
        + coefficients.token_overhead_s
    )

    # Step 2: prefill — one ubatch of n tokens; compute-bound, CPU weights stream over PCIe.
    n = n_ubatch
    first_gpu = plan.gpus[0] if plan.gpus else None
    offload = first_gpu is not None and n >= coefficients.op_offload_min_batch
    prefill = 0.0
    params = table.params.astype(np.float64)
    for layer in range(plan.n_layers):
        layer_device = plan.layer_devices[layer]
        attention_flops = attention_flops_per_token_per_position[layer] * n * (depth + n / 2)
        prefill += attention_flops / rates[plan.unit_device(layer, Unit.ATTENTION)].flops
        pinned_flops = 2.0 * n * float(table.pinned_params[layer])
        prefill += pinned_flops / rates[layer_device].flops
        for unit, i in column.items():
            if not table.stored[layer, i]:
                continue
            share = table.read_per_token[layer, i] / table.stored[layer, i]
            flops = 2.0 * n * params[layer, i] * share
            device = plan.unit_device(layer, unit)
            if device == CPU and offload:
                assert first_gpu is not None
                prefill += table.stored[layer, i] / rates[first_gpu].link_bytes_per_s
                prefill += flops / rates[first_gpu].flops
            else:
                # Roofline: a big ubatch touches every expert, so all stored bytes are read.
                read_seconds = table.stored[layer, i] / rates[device].bandwidth_bytes_per_s
                prefill += max(flops / rates[device].flops, read_seconds)
    prefill += split_seconds(sequence, n * activation, rates, coefficients)

    return CostEstimate(
        decode_seconds_per_token=decode,
        decode_tps=1.0 / decode,
        prefill_seconds_per_ubatch=prefill,
        prefill_tps=n / prefill if prefill > 0 else float("inf"),
        decode_seconds_by_device=by_device,
        splits_per_token=sum(1 for _ in crossings(sequence)),
    )
