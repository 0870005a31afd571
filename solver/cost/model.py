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

Everything is precomputed into ``CostTables``: seconds for each (layer, part, device), so the
cost of a plan is a sum of table entries — the same numbers the CP-SAT objective uses.
Coefficients start from spec sheets (``CostCoefficients`` defaults) and are replaced by values
fitted to measured runs (``solver.cost.calibrate``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from enum import StrEnum
from itertools import pairwise

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from solver.hardware.scenario import Hardware
from solver.plan.plan import Plan
from solver.plan.units import LayerTable, Unit
from solver.quantities import CPU

# The parts of a layer in the order llama.cpp's graphs run them: attention (with the layer's
# norms, router and KV cache, which never move), then the FFN — routed experts before shared
# experts, as build_moe_ffn's result is added to the shared FFN's.
LAYER = "layer"
PARTS: tuple[str, ...] = (LAYER, Unit.FFN_DENSE, Unit.EXPERTS, Unit.SHARED_EXPERTS)
MOVABLE: tuple[Unit, ...] = (Unit.FFN_DENSE, Unit.EXPERTS, Unit.SHARED_EXPERTS)


class Objective(StrEnum):
    """What a placement (or a tuning study) minimises: decode time per token, prefill time
    per ubatch (prompt processing), or their balance (geometric mean of the two speeds)."""

    DECODE = "decode"
    PREFILL = "prefill"
    BALANCED = "balanced"


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


class Workload(BaseModel):
    """What the cost depends on besides the placement."""

    model_config = ConfigDict(frozen=True)

    n_embd: int
    kv_bytes_per_position: tuple[int, ...] = Field(
        description="per layer: K+V bytes of one cached position"
    )
    attention_flops_per_position: tuple[float, ...] = Field(
        description="per layer: QK and PV flops per query token per key position"
    )
    depth: int = Field(default=0, description="positions already in the cache while decoding")
    n_ubatch: int = 512


class CostTables(BaseModel):
    """Seconds per (layer, part, device) for decoding one token and prefilling one ubatch."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    devices: tuple[str, ...]
    present: np.ndarray = Field(description="[layer, part] True if the layer has that part")
    decode: np.ndarray = Field(description="[layer, part, device] seconds per token")
    prefill: np.ndarray = Field(description="[layer, part, device] seconds per ubatch")
    output_decode: np.ndarray = Field(description="[device] output head, seconds per token")
    split_decode: float = Field(description="seconds per device switch, decoding")
    split_prefill: float = Field(description="seconds per device switch, per ubatch")
    token_overhead: float
    n_ubatch: int


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


class LayerLoads(BaseModel):
    """What each (layer, part) costs before any device rate divides it.

    Arrays are [layer, part] in ``PARTS`` order. These raw amounts are shared by the cost
    tables (divided by a device's rates) and by calibration (regressed against measured time).
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    present: np.ndarray = Field(description="True if the layer has that part")
    stored: np.ndarray = Field(description="bytes held")
    read: np.ndarray = Field(description="bytes one decoded token reads (KV at depth included)")
    work: np.ndarray = Field(description="FLOPs of one ubatch of n_ubatch tokens")
    output_bytes: float = Field(description="bytes of the output head a token reads")
    n_ubatch: int


def layer_loads(table: LayerTable, workload: Workload) -> LayerLoads:
    """Bytes and FLOPs of every (layer, part) for this workload."""
    column = {unit: i for i, unit in enumerate(table.units)}
    n_layers = table.stored.shape[0]
    n = workload.n_ubatch

    stored = np.zeros((n_layers, len(PARTS)))
    read = np.zeros((n_layers, len(PARTS)))
    params = np.zeros((n_layers, len(PARTS)))
    attention = column[Unit.ATTENTION]
    stored[:, 0] = table.stored[:, attention] + table.pinned
    read[:, 0] = table.read_per_token[:, attention] + table.pinned
    read[:, 0] += np.asarray(workload.kv_bytes_per_position, dtype=float) * workload.depth
    params[:, 0] = table.params[:, attention] + table.pinned_params
    for p, unit in enumerate(PARTS[1:], start=1):
        stored[:, p] = table.stored[:, column[unit]]
        read[:, p] = table.read_per_token[:, column[unit]]
        params[:, p] = table.params[:, column[unit]]
    present = stored > 0
    present[:, 0] = True

    # Matmul work scales with the active share; a big ubatch touches every expert, so the
    # prefill roofline still reads all stored bytes (see build_cost_tables).
    share = np.divide(read, stored, out=np.zeros_like(read), where=stored > 0)
    share[:, 0] = 1.0
    work = 2.0 * n * params * share
    attention_work = np.asarray(workload.attention_flops_per_position) * n
    work[:, 0] += attention_work * (workload.depth + n / 2)
    return LayerLoads(
        present=present,
        stored=stored,
        read=read,
        work=work,
        output_bytes=float(output_head_bytes(table)),
        n_ubatch=n,
    )


def output_head_bytes(table: LayerTable) -> int:
    """Bytes of the output head (and its norm) that every token reads.

    A model with tied embeddings has no ``output.weight``: llama.cpp loads a copy of
    ``token_embd`` as the head (``TENSOR_DUPLICATED`` in src/llama-model.cpp), and every
    token multiplies with all of it.
    """
    head = sum(b for name, b in table.global_bytes.items() if name.startswith("output"))
    if "output.weight" not in table.global_bytes:
        head += table.global_bytes.get("token_embd.weight", 0)
    return head


def build_cost_tables(
    table: LayerTable,
    hardware: Hardware,
    workload: Workload,
    coefficients: CostCoefficients | None = None,
    *,
    devices: Sequence[str] | None = None,
) -> CostTables:
    """Precompute every (layer, part, device) time once; plans and the solver sum them.

    ``devices`` defaults to the rig's (CPU, then GPUs); other names (``RPC0``...) need a rate
    in ``coefficients.measured``.
    """
    coefficients = coefficients or CostCoefficients()
    rates = device_rates(hardware, coefficients)
    devices = tuple(devices) if devices is not None else tuple(hardware.device_names)
    missing = [d for d in devices if d not in rates]
    if missing:
        raise ValueError(f"no rates for device(s) {', '.join(missing)}")
    bandwidth = np.array([rates[d].bandwidth_bytes_per_s for d in devices])
    flops = np.array([rates[d].flops for d in devices])
    loads = layer_loads(table, workload)
    stored, work, n = loads.stored, loads.work, loads.n_ubatch

    # Step 1: decode — every byte a token touches, read at its device's bandwidth.
    decode = loads.read[:, :, None] / bandwidth[None, None, :]

    # Step 2: prefill — one ubatch of n tokens, compute- or bandwidth-bound (roofline).
    prefill = np.maximum(
        work[:, :, None] / flops[None, None, :], stored[:, :, None] / bandwidth[None, None, :]
    )
    if hardware.gpus and n >= coefficients.op_offload_min_batch:
        # Host-resident weights stream to the first GPU each ubatch and are multiplied there.
        first_gpu = rates[hardware.gpus[0].device]
        prefill[:, :, devices.index(CPU)] = (
            stored / first_gpu.link_bytes_per_s + work / first_gpu.flops
        )

    slowest_link = min((rates[d].link_bytes_per_s for d in devices), default=float("inf"))
    activation = workload.n_embd * 4.0  # one f32 row per token crosses each split
    return CostTables(
        devices=devices,
        present=loads.present,
        decode=decode,
        prefill=prefill,
        output_decode=loads.output_bytes / bandwidth,
        split_decode=coefficients.split_latency_s + 2 * activation / slowest_link,
        split_prefill=coefficients.split_latency_s + 2 * n * activation / slowest_link,
        token_overhead=coefficients.token_overhead_s,
        n_ubatch=n,
    )


def part_devices(plan: Plan) -> list[list[str]]:
    """For each layer, the device of each part in ``PARTS`` order."""
    return [
        [plan.layer_devices[layer], *(plan.unit_device(layer, unit) for unit in MOVABLE)]
        for layer in range(plan.n_layers)
    ]


def parts_graph(
    parts: Sequence[Sequence[str]], output_device: str, present: np.ndarray
) -> list[str]:
    """Devices along the graph for per-layer part devices (``part_devices``' shape)."""
    sequence = [CPU]  # token_embd rows are read on the host
    for layer, devices in enumerate(parts):
        sequence.extend(d for p, d in enumerate(devices) if present[layer, p])
    sequence.append(output_device)
    return sequence


def crossings(sequence: Sequence[str]) -> Iterator[tuple[str, str]]:
    """Consecutive device pairs that differ: each is one graph split."""
    return ((a, b) for a, b in pairwise(sequence) if a != b)


def estimate_cost(plan: Plan, tables: CostTables) -> CostEstimate:
    """Decode seconds per token and prefill seconds per ubatch of ``plan``."""
    return estimate_parts_cost(part_devices(plan), plan.output_device, tables)


def estimate_parts_cost(
    parts: Sequence[Sequence[str]], output_device: str, tables: CostTables
) -> CostEstimate:
    """``estimate_cost`` for any per-layer part devices (a ``Plan``'s or a launch's)."""
    index = {device: k for k, device in enumerate(tables.devices)}
    by_device = dict.fromkeys(tables.devices, 0.0)
    prefill = 0.0
    for layer, devices in enumerate(parts):
        for p, device in enumerate(devices):
            if tables.present[layer, p]:
                by_device[device] += float(tables.decode[layer, p, index[device]])
                prefill += float(tables.prefill[layer, p, index[device]])
    by_device[output_device] += float(tables.output_decode[index[output_device]])
    splits = sum(1 for _ in crossings(parts_graph(parts, output_device, tables.present)))
    decode = sum(by_device.values()) + splits * tables.split_decode + tables.token_overhead
    prefill += splits * tables.split_prefill
    return CostEstimate(
        decode_seconds_per_token=decode,
        decode_tps=1.0 / decode,
        prefill_seconds_per_ubatch=prefill,
        prefill_tps=tables.n_ubatch / prefill if prefill > 0 else float("inf"),
        decode_seconds_by_device={d: s for d, s in by_device.items() if s > 0},
        splits_per_token=splits,
    )


class DeviceLoads(BaseModel):
    """Per device: what one decoded token reads and one prompt token computes; the splits.

    The features calibration regresses measured time against: decode seconds per token =
    sum_d bytes_read[d] / bandwidth_d + splits * split latency + token overhead.
    """

    model_config = ConfigDict(frozen=True)

    bytes_read: dict[str, float] = Field(description="bytes per decoded token")
    flops_per_token: dict[str, float] = Field(description="prefill FLOPs per prompt token")
    bytes_stored: dict[str, float]
    splits: int


def device_loads(
    parts: Sequence[Sequence[str]], output_device: str, loads: LayerLoads
) -> DeviceLoads:
    """Sum ``layer_loads`` by the device each part sits on (same walk as the cost estimate)."""
    read: dict[str, float] = {}
    flops: dict[str, float] = {}
    stored: dict[str, float] = {}
    for layer, devices in enumerate(parts):
        for p, device in enumerate(devices):
            if loads.present[layer, p]:
                read[device] = read.get(device, 0.0) + float(loads.read[layer, p])
                flops[device] = (
                    flops.get(device, 0.0) + float(loads.work[layer, p]) / loads.n_ubatch
                )
                stored[device] = stored.get(device, 0.0) + float(loads.stored[layer, p])
    read[output_device] = read.get(output_device, 0.0) + loads.output_bytes
    stored[output_device] = stored.get(output_device, 0.0) + loads.output_bytes
    splits = sum(1 for _ in crossings(parts_graph(parts, output_device, loads.present)))
    return DeviceLoads(bytes_read=read, flops_per_token=flops, bytes_stored=stored, splits=splits)
