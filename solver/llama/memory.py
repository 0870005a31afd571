"""Bytes per device of a llama-server launch: weights, repacked weights, KV, compute, output.

``estimate_memory(inventory, config)`` runs llama.cpp's own decisions for one command line:
which device each weight and each layer's KV lands on (``solver.llama.device_map``), the context
sizes (``solver.llama.workload``), the KV buffers (``solver.llama.kv_cache``), the output buffer
(``llama_context::output_reserve``) and, when ``solver.llama.compute_buffer`` is present, the
compute buffers and graph splits: at startup (what the log prints) and at their peak while
serving (larger only where the graphs grow with the positions cached: minimax-m3), the
peak counted in the totals a plan must fit. Device names are llama.cpp's: ``CPU``,
``CUDA0``, ``RPC0``; every host buffer (CPU_Mapped, CPU_REPACK, AMX, CUDA_Host) counts for
``CPU``.

A model whose compute graph fit cannot build (no recipe for its architecture, recurrent
layers) still gets its weights, KV, state and output exactly; its compute buffers are marked
not modelled (``MemoryReport.unmodelled``) and left out of the totals, unless the caller
states a margin to assume in their place (``unmodelled_margin``).

Per inventory the expensive tables (tensor ops, file offsets, hyperparameters, regex matches)
are built once and cached, so the solver can call this many times.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from solver.errors import BadInput
from solver.gguf.inventory import Inventory
from solver.hardware.scenario import Hardware
from solver.llama.args import LaunchConfig
from solver.llama.compute_buffer import (
    ComputeEstimate,
    OpFallback,
    estimate_compute,
    flash_attn_on_layer_devices,
)
from solver.llama.compute_graph import ComputeNotModelled
from solver.llama.device_map import (
    CPU,
    CPU_BUFFER,
    CpuFeatures,
    DeviceKind,
    LlamaDevice,
    ModelBuffer,
    ModelTensors,
    TensorPlacement,
    device_buffer_type,
    model_devices,
    place_tensors,
)
from solver.llama.kv_cache import KvBuffer, memory_buffers
from solver.llama.workload import ComputeWorkload, resolve_workload
from solver.quantities import GIB, MIB

FLOAT_BYTES = 4


class OutputBuffer(BaseModel):
    model_config = ConfigDict(frozen=True)

    buffer_type: str
    device: str
    size: int


class DeviceMemory(BaseModel):
    """Bytes one device holds; ``compute`` is None when the compute model is not available
    (and no margin was assumed for this device, see ``Unmodelled``).

    ``compute`` is the compute buffer at its peak while serving, what a plan must hold and
    ``total`` counts; ``compute_startup`` is the size llama-server logs at startup. They
    differ only where the graphs grow with the positions cached (minimax-m3's MSA:
    ``MemoryReport.compute_grows``)."""

    model_config = ConfigDict(frozen=True)

    weights: int = Field(description="model buffers other than repacked ones")
    repack: int = Field(description="CPU extra buffers (CPU_REPACK, AMX)")
    kv: int
    compute: int | None = Field(description="peak while serving, at a full cache")
    compute_startup: int | None = Field(description="sched_reserve's size, as logged")
    output: int
    total: int = Field(description="with the peak compute buffer")


class Unmodelled(BaseModel):
    """Compute buffers fit could not model, and the margin assumed in their place, if any."""

    model_config = ConfigDict(frozen=True)

    architecture: str
    reason: str = Field(description="why no compute-graph recipe builds this model")
    margin: int | None = Field(
        description="bytes assumed as the compute buffer of each device that runs layers; "
        "None: none assumed, the totals leave compute out"
    )

    @property
    def note(self) -> str:
        """The one line every report of this model repeats."""
        head = (
            f"compute buffers and graph splits of {self.architecture}: not modelled ({self.reason})"
        )
        if self.margin is None:
            return (
                f"{head}; the totals leave them out (--unmodelled-margin GIB assumes a buffer "
                "per device)"
            )
        return (
            f"{head}; a margin of {self.margin / GIB:g} GiB per device that runs layers is "
            "assumed as its compute buffer and counted in the totals"
        )

    def to_json(self) -> dict[str, object]:
        margin = None if self.margin is None else self.margin / GIB
        return {"architecture": self.architecture, "reason": self.reason, "margin_gib": margin}


class MemoryReport(BaseModel):
    """What a launch allocates, per device and per buffer."""

    model_config = ConfigDict(frozen=True)

    devices: dict[str, DeviceMemory]
    graph_splits: int | None = Field(description="splits of the worst-case graph, if modelled")
    graph_splits_tg: int | None = Field(
        default=None, description="splits of the token-generation graph, if modelled"
    )
    compute_modelled: bool
    model_buffers: tuple[ModelBuffer, ...]
    kv_buffers: tuple[KvBuffer, ...]
    output_buffer: OutputBuffer
    compute_buffers: dict[str, int] = Field(
        default_factory=dict, description="at startup (sched_reserve, what the log prints)"
    )
    compute_peak_buffers: dict[str, int] = Field(
        default_factory=dict, description="the most each grows to while serving"
    )
    workload: ComputeWorkload
    placement: TensorPlacement
    unmodelled: Unmodelled | None = Field(
        default=None, description="set when the compute buffers are not modelled"
    )
    op_fallbacks: tuple[OpFallback, ...] = Field(
        default=(), description="ops CUDA refuses (supports_op) and the device running them"
    )
    notes: tuple[str, ...] = ()

    @property
    def compute_grows(self) -> bool:
        """Some compute buffer grows past its startup size while serving."""
        return self.compute_peak_buffers != self.compute_buffers

    def to_json(self) -> dict[str, object]:
        """The ``fit memory --json`` document (``unmodelled`` only when compute is not)."""
        document: dict[str, object] = {
            "devices": {
                name: {
                    "weights": d.weights,
                    "repack": d.repack,
                    "kv": d.kv,
                    "compute": d.compute,
                    "compute_startup": d.compute_startup,
                    "output": d.output,
                    "total": d.total,
                }
                for name, d in self.devices.items()
            },
            "graph_splits": self.graph_splits,
            "graph_splits_tg": self.graph_splits_tg,
            "compute_modelled": self.compute_modelled,
            "buffers": {
                "model": [b.model_dump() for b in self.model_buffers],
                "kv": [b.model_dump() for b in self.kv_buffers],
                "output": self.output_buffer.model_dump(),
                "compute": self.compute_buffers,
                "compute_peak": self.compute_peak_buffers,
            },
            "context": self.workload.model_dump(),
            "op_fallbacks": [f.model_dump() for f in self.op_fallbacks],
            "notes": list(self.notes),
        }
        if self.unmodelled is not None:
            document["unmodelled"] = self.unmodelled.to_json()
        return document


_TABLES: OrderedDict[int, ModelTensors] = OrderedDict()
_TABLES_KEPT = 8


def model_tables(inventory: Inventory) -> ModelTensors:
    """The per-inventory tables, built once (a small cache keyed by identity)."""
    tables = _TABLES.get(id(inventory))
    if tables is None or tables.inventory is not inventory:
        tables = ModelTensors(inventory)
        _TABLES[id(inventory)] = tables
        while len(_TABLES) > _TABLES_KEPT:
            _TABLES.popitem(last=False)
    return tables


def gpu_devices(hardware: Hardware | None, names: Sequence[str] | None = None) -> list[LlamaDevice]:
    """CUDA devices of a rig (or named ones), with their free memory for the default split.
    A rig's RPC devices are not among them: they come from ``--rpc``."""
    gpus = []
    if hardware is not None:
        for gpu in hardware.gpus:
            if gpu.rpc_endpoint:
                continue
            gpus.append(
                LlamaDevice(
                    name=gpu.device,
                    kind=DeviceKind.CUDA,
                    buffer_type=gpu.device,
                    free_bytes=gpu.memory_bytes,
                )
            )
    for name in names or ():
        if not name.startswith("CUDA"):
            raise BadInput(f"device '{name}' is not a CUDA device name (CUDA0, CUDA1 ...)")
        if all(g.name != name for g in gpus):
            gpus.append(LlamaDevice(name=name, kind=DeviceKind.CUDA, buffer_type=name))
    return gpus


def estimate_memory(
    inventory: Inventory,
    config: LaunchConfig,
    devices: Sequence[str] | None = None,
    *,
    hardware: Hardware | None = None,
    cpu: CpuFeatures | None = None,
    rpc_free_bytes: int | None = None,
    unmodelled_margin: int | None = None,
) -> MemoryReport:
    """Predict every buffer llama-server allocates at startup for this launch.

    ``devices`` names local GPUs (``CUDA0``...) when no ``hardware`` is given; RPC devices come
    from ``config.rpc_servers``, with ``rpc_free_bytes`` free (default: the smallest memory of
    the rig's RPC devices, if any). ``cpu`` decides repacking (default: this machine's CPU).
    ``unmodelled_margin``: bytes to assume as the compute buffer of each device that runs
    layers when fit cannot model the compute graph (ignored when it can).
    """
    tables = model_tables(inventory)
    cpu = cpu if cpu is not None else _local_cpu()
    offload = _offload_devices(config, hardware, devices, rpc_free_bytes)
    placement = place_tensors(tables, config, offload, cpu)
    kinds = {device.name: device.kind.value for device in offload}
    workload = resolve_workload(config, tables.hparams, placement.layer_devices, kinds)
    workload = _probed_flash_attn(inventory, workload, placement)
    device_bufts = {device.name: device_buffer_type(device) for device in offload}
    kv = memory_buffers(
        tables.hparams,
        workload,
        placement.layer_kv_devices,
        placement.layer_rs_devices,
        device_bufts,
    )
    output = _output_buffer(tables, workload, placement, offload)
    parts = _compute_parts(_compute(inventory, workload, placement), unmodelled_margin)
    unmodelled, compute, peak = parts.unmodelled, parts.startup, parts.peak
    assumed = _assumed_compute(placement, unmodelled)
    totals = _device_totals(placement, kv, output, parts, assumed)
    notes = _notes(config, unmodelled, _growth_note(compute, peak, workload), parts.fallbacks)
    return MemoryReport(
        devices=totals,
        graph_splits=parts.splits,
        graph_splits_tg=parts.splits_tg,
        compute_modelled=unmodelled is None,
        model_buffers=placement.buffers,
        kv_buffers=kv,
        output_buffer=output,
        compute_buffers=compute,
        compute_peak_buffers=peak,
        workload=workload,
        placement=placement,
        unmodelled=unmodelled,
        op_fallbacks=parts.fallbacks,
        notes=notes,
    )


def _offload_devices(
    config: LaunchConfig,
    hardware: Hardware | None,
    devices: Sequence[str] | None,
    rpc_free_bytes: int | None,
) -> list[LlamaDevice]:
    """The devices llama.cpp offloads to: the local GPUs, then ``config``'s RPC servers with
    ``rpc_free_bytes`` free (default: the smallest memory of the rig's RPC devices)."""
    if rpc_free_bytes is None and hardware is not None:
        rpc_memory = [gpu.memory_bytes for gpu in hardware.gpus if gpu.rpc_endpoint]
        rpc_free_bytes = min(rpc_memory, default=None)
    return model_devices(config, gpu_devices(hardware, devices), rpc_free_bytes)


class _ComputeParts(NamedTuple):
    """The compute side of a report: bytes per device at startup and at their peak, graph
    splits and op fallbacks when fit models the graph; else what is not modelled and why."""

    unmodelled: Unmodelled | None
    startup: dict[str, int]
    peak: dict[str, int]
    splits: int | None
    splits_tg: int | None
    fallbacks: tuple[OpFallback, ...]


def _compute_parts(
    estimate: ComputeEstimate | ComputeNotModelled, unmodelled_margin: int | None
) -> _ComputeParts:
    """Unpack ``_compute``'s answer; a refusal keeps the margin the caller assumes."""
    if isinstance(estimate, ComputeNotModelled):
        unmodelled = Unmodelled(
            architecture=estimate.architecture, reason=estimate.reason, margin=unmodelled_margin
        )
        return _ComputeParts(unmodelled, {}, {}, None, None, ())
    return _ComputeParts(
        None,
        dict(estimate.bytes_by_device),
        dict(estimate.peak_bytes_by_device),
        estimate.graph_splits,
        estimate.graph_splits_tg,
        estimate.fallbacks,
    )


def _device_totals(
    placement: TensorPlacement,
    kv: Sequence[KvBuffer],
    output: OutputBuffer,
    parts: _ComputeParts,
    assumed: dict[str, int],
) -> dict[str, DeviceMemory]:
    """Each device's buffers summed, the CPU first; an unmodelled compute buffer counts as
    the assumed margin, or as None (left out of the total) without one."""
    modelled = parts.unmodelled is None
    totals: dict[str, DeviceMemory] = {}
    for name in [CPU, *placement.devices]:
        weights = sum(b.size for b in placement.buffers if b.device == name and not b.extra)
        repack = sum(b.size for b in placement.buffers if b.device == name and b.extra)
        kv_bytes = sum(b.size for b in kv if b.device == name)
        out = output.size if output.device == name else 0
        comp = parts.peak.get(name, 0) if modelled else assumed.get(name)
        startup = parts.startup.get(name, 0) if modelled else comp
        totals[name] = DeviceMemory(
            weights=weights,
            repack=repack,
            kv=kv_bytes,
            compute=comp,
            compute_startup=startup,
            output=out,
            total=weights + repack + kv_bytes + out + (comp or 0),
        )
    return totals


_LOCAL_CPU: list[CpuFeatures] = []


def _local_cpu() -> CpuFeatures:
    if not _LOCAL_CPU:
        _LOCAL_CPU.append(CpuFeatures.detect())
    return _LOCAL_CPU[0]


def _output_buffer(
    tables: ModelTensors,
    workload: ComputeWorkload,
    placement: TensorPlacement,
    offload: Sequence[LlamaDevice],
) -> OutputBuffer:
    """``output_reserve(n_seq_max)`` at context creation: logits for n_seq_max rows, in the
    host buffer of the output layer's device (CUDA_Host) or plain CPU memory."""
    size = tables.hparams.n_vocab * workload.n_seq_max * FLOAT_BYTES
    host = next(
        (d.host_buffer_type for d in offload if d.name == placement.output_device),
        None,
    )
    return OutputBuffer(buffer_type=host or CPU_BUFFER.name, device=CPU, size=size)


def _graph_kv_devices(placement: TensorPlacement) -> list[str]:
    """Each layer's KV / state device as the compute graph sees it: a recurrent layer's state
    lives where a KV cache would (its layer, or the CPU with -nkvo); a layer with neither
    (nemotron-h's FFN layers) is on its layer's device (dev_layer)."""
    rs = placement.layer_rs_devices or (None,) * len(placement.layer_kv_devices)
    return [
        kv or s or dev or CPU
        for kv, s, dev in zip(placement.layer_kv_devices, rs, placement.layer_devices, strict=True)
    ]


def _probed_flash_attn(
    inventory: Inventory, workload: ComputeWorkload, placement: TensorPlacement
) -> ComputeWorkload:
    """``-fa auto`` after llama_context's probe (``resolve_fused_ops``): off when the scheduler
    puts a layer's flash attention on another device than the layer's. The caches were made
    before the probe, so V stays untransposed."""
    if workload.flash_attn_mode != "auto" or not workload.flash_attn or not placement.devices:
        return workload
    try:
        on_layers = flash_attn_on_layer_devices(
            inventory,
            workload,
            placement.tensor_devices,
            _graph_kv_devices(placement),
            [*placement.devices, CPU],
        )
    except ComputeNotModelled:
        return workload  # no graph to probe: _compute says so
    return workload if on_layers else workload.model_copy(update={"flash_attn": False})


def _compute(
    inventory: Inventory, workload: ComputeWorkload, placement: TensorPlacement
) -> ComputeEstimate | ComputeNotModelled:
    """Compute buffers (at startup and at their peak) and graph splits from
    ``solver.llama.compute_buffer``; for an architecture whose compute graph it cannot build,
    the refusal saying why (weights, KV and state still are modelled)."""
    try:
        estimate = estimate_compute(
            inventory,
            workload,
            placement.tensor_devices,
            _graph_kv_devices(placement),
            [*placement.devices, CPU],
        )
    except ComputeNotModelled as refused:
        return refused
    return estimate


def _assumed_compute(placement: TensorPlacement, unmodelled: Unmodelled | None) -> dict[str, int]:
    """The stated margin as the compute buffer of every device that holds a layer's weights,
    KV or state (so runs part of a layer); empty when compute is modelled or no margin given."""
    margin = None if unmodelled is None else unmodelled.margin
    if margin is None:
        return {}
    runs_layers = {
        *placement.layer_devices,
        *(d for d in (*placement.layer_kv_devices, *placement.layer_rs_devices) if d),
        *(d for name, d in placement.tensor_devices.items() if name.startswith("blk.")),
    }
    return {name: margin for name in runs_layers}


def _growth_note(startup: dict[str, int], peak: dict[str, int], workload: ComputeWorkload) -> str:
    """'' unless a compute buffer grows while serving; else what grows, from what to what."""
    grown = [name for name, size in peak.items() if size != startup.get(name)]
    if not grown:
        return ""
    sizes = ", ".join(f"{n} {startup[n] / MIB:.2f} -> {peak[n] / MIB:.2f}" for n in grown)
    return (
        "compute buffers grow while serving: the graphs span the positions cached (minimax-m3's "
        f"MSA), 256 at startup, {workload.n_ctx_seq} at a full context; MiB logged at startup -> "
        f"peak: {sizes}; compute and the totals are the peak, compute_startup the log's"
    )


def _notes(
    config: LaunchConfig,
    unmodelled: Unmodelled | None,
    growth: str,
    fallbacks: Sequence[OpFallback],
) -> tuple[str, ...]:
    notes = [growth] if growth else []
    if unmodelled is not None:
        notes.append(unmodelled.note)
    if fallbacks:
        notes.append(
            "CUDA refuses some ops (ggml-cuda.cu supports_op), so ggml runs "
            + ", ".join(f.text for f in fallbacks)
            + "; their graph splits, copies and compute buffer are counted above, not their "
            "time (the speed estimate assumes every op runs on its layer's device); derived "
            "from the source, not validated on a GPU"
        )
    if config.fit:
        notes.append(
            "--fit is on (llama.cpp's default): llama.cpp may change -c/-ngl/-ts/-ot that were "
            "not set if a device runs short; pass --fit off to launch exactly this"
        )
    return tuple(notes)
