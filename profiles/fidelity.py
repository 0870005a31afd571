"""fit's memory prediction next to what llama-server allocated, per device and component.

``compare(memory, run)`` pairs ``solver.llama.memory.estimate_memory``'s bytes with the sizes the
real llama-server reported for the same launch (``profiles.server_log.RunReport``), as rows
per device and component (weights, KV, compute, output, total). The measured side is as
exact as llama.cpp said it: exact bytes on an RPC device whose server ran with
``GGML_RPC_DEBUG=1``, the 4-decimal MiB of the shutdown lines for compute buffers at
``-lv 5``, else the 2-decimal MiB of the startup lines. A row's error counts only what lies
beyond that rounding.

The memory model's promise (``TARGETS``): weights, KV and output exact, to each buffer;
compute within 5%; each device's total within 1%. A launch that served prompts before it
stopped (``served``) holds fit's peak compute buffers (``MemoryReport.compute_peak_buffers``)
to what the buffers ended with (the exit lines' sizes, the RPC servers' largest compute
allocation), to the same targets. Besides the rows, ``LaunchFidelity``
holds what else the launch must agree on: graph splits of the prompt and generation graphs,
the context sizes llama.cpp resolved, the device of every layer and of every ``-ot`` tensor.

``measure_launch`` is the whole loop for one launch: start the real llama-server (through
``profiles.server``), estimate the same command line, compare.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from profiles.server import RpcServers, run_until_ready
from profiles.server_log import BufferKind, LoggedBuffer, LoggedSize, RpcAllocations, RunReport
from solver.gguf.inventory import Inventory
from solver.gguf.sources import load_inventory
from solver.llama.args import parse_llama_args
from solver.llama.device_map import CpuFeatures
from solver.llama.memory import MemoryReport, estimate_memory

# A quiet launch whose log says everything compare() reads: no warm-up run, no llama.cpp
# auto-fitting (one load, exactly these arguments), -lv 5 for the per-layer device lines,
# the -ot lines and the 4-decimal compute sizes at exit; one thread (other jobs share the
# machine, and threads change no buffer).
MEASURE_ARGS = ("--no-warmup", "--fit", "off", "-lv", "5", "-t", "1")

COMPONENTS = ("weights", "kv", "compute", "output", "total")
TARGETS = {"weights": 0.0, "kv": 0.0, "output": 0.0, "compute": 0.05, "total": 0.01}

_KINDS = {
    "weights": (BufferKind.MODEL,),
    "kv": (BufferKind.KV, BufferKind.RS),
    "compute": (BufferKind.COMPUTE,),
    "output": (BufferKind.OUTPUT,),
}
# fit's KvBuffer.cache -> (kind of line, what the log names the cache): "non-SWA"/"SWA" only
# for iSWA models, and None where the "creating ... KV cache" line is missing from the log
_LOGGED_CACHE = {
    "base": (BufferKind.KV, ("non-SWA", "main", None)),
    # deepseek32's lightning-indexer cache, minimax-m3's MSA indexer cache, deepseek4's
    "lid": (BufferKind.KV, ("indexer", "DSV4 lightning-indexer")),
    "swa": (BufferKind.KV, ("SWA", None)),
    "rs": (BufferKind.RS, (None,)),
    # deepseek4 (solver.llama.kv_dsv4): its compressed K caches and compressor states
    "csa": (BufferKind.KV, ("DSV4 CSA compressed",)),
    "hca": (BufferKind.KV, ("DSV4 HCA compressed",)),
    "csa_state": (BufferKind.RS, ("DSV4 csa state",)),
    "hca_state": (BufferKind.RS, ("DSV4 hca state",)),
    "lid_state": (BufferKind.RS, ("DSV4 lid state",)),
}


class FidelityRow(BaseModel):
    """One device's component: fit's bytes and llama.cpp's size, with how they compare."""

    model_config = ConfigDict(frozen=True)

    device: str
    component: str = Field(description="weights, kv, compute, output or total")
    predicted: int = Field(description="fit's bytes")
    measured: LoggedSize = Field(description="llama.cpp's size, as exact as it said it")
    buffers_match: bool = Field(
        default=True,
        description="every buffer of an exactly modelled component matches on its own",
    )
    detail: str = Field(default="", description="what did not match, buffer by buffer")

    @property
    def off_bytes(self) -> int:
        """Bytes between fit's number and the nearest size llama.cpp's number allows."""
        return self.measured.distance(self.predicted)

    @property
    def error(self) -> float:
        """``off_bytes`` relative to the measured size (inf for something from nothing)."""
        if self.off_bytes == 0:
            return 0.0
        return (
            self.off_bytes / self.measured.approx_bytes if self.measured.approx_bytes else math.inf
        )

    @property
    def signed_error(self) -> float:
        """``error`` with the sign of predicted - measured."""
        return self.error if self.predicted >= self.measured.approx_bytes else -self.error

    @property
    def resolution(self) -> str:
        """How exactly llama.cpp stated the size: 'exact', or its rounding in bytes."""
        return "exact" if self.measured.is_exact else f"±{self.measured.uncertainty_bytes} B"

    @property
    def target(self) -> float:
        return TARGETS[self.component]

    @property
    def ok(self) -> bool:
        return self.error <= self.target and self.buffers_match

    def describe(self) -> str:
        what = (
            f"{self.device} {self.component}: fit {self.predicted} B, llama.cpp "
            f"{_size_text(self.measured)} ({self.resolution}); {self.off_bytes} B "
            f"({100 * self.error:.3f}%) beyond its rounding, target {100 * self.target:g}%"
        )
        return f"{what}; {self.detail}" if self.detail else what


class LaunchFidelity(BaseModel):
    """Every comparison of one launch; ``misses()`` lists what breaks the model's promise."""

    model_config = ConfigDict(frozen=True)

    rows: tuple[FidelityRow, ...]
    compute_modelled: bool
    splits_predicted: tuple[int | None, int | None]
    splits_measured: tuple[int, int] | None
    mismatches: tuple[str, ...] = Field(
        default=(), description="context sizes, layer and -ot tensor devices that differ"
    )

    def row(self, device: str, component: str) -> FidelityRow | None:
        return next((r for r in self.rows if (r.device, r.component) == (device, component)), None)

    def misses(self) -> list[str]:
        found = [row.describe() for row in self.rows if not row.ok]
        if self.compute_modelled and self.splits_predicted != self.splits_measured:
            found.append(
                f"graph splits pp/tg: fit {self.splits_predicted}, llama.cpp {self.splits_measured}"
            )
        return [*found, *self.mismatches]


class Measured(BaseModel):
    """One launch: llama-server's report, fit's estimate of it, and their comparison."""

    model_config = ConfigDict(frozen=True)

    args: tuple[str, ...] = Field(description="llama-server arguments after -m MODEL")
    run: RunReport
    memory: MemoryReport
    fidelity: LaunchFidelity


def measure_launch(
    model: Path,
    args: Sequence[str],
    *,
    rpc: RpcServers | None = None,
    inventory: Inventory | None = None,
    prompts: Sequence[int] = (),
    **server_options: Any,
) -> Measured:
    """Launch the real llama-server with ``MEASURE_ARGS`` + ``args`` (and ``rpc``'s servers),
    serve ``prompts`` (token counts, one request each), estimate the same command line with
    the CPU features its log names, compare (compute at its peak when it served).

    A launch llama-server refuses raises ``profiles.server.ServerFailed``.
    """
    launched = [*MEASURE_ARGS, *args]
    run = run_until_ready(model, launched, rpc=rpc, prompts=prompts, **server_options)
    argv = [*(["--rpc", rpc.rpc_arg] if rpc is not None else []), *launched]
    memory = estimate_memory(
        inventory or load_inventory(str(model)),
        parse_llama_args(argv),
        cpu=CpuFeatures.from_system_info(run.system_info or ""),
    )
    fidelity = compare(memory, run, served=bool(prompts))
    return Measured(args=tuple(argv), run=run, memory=memory, fidelity=fidelity)


def compare(memory: MemoryReport, run: RunReport, *, served: bool = False) -> LaunchFidelity:
    """fit's estimate of a launch against that launch's report, row by row; ``served``: the
    launch served prompts, so its compute buffers are held to fit's peak."""
    predicted = _predicted_buffers(memory, served)
    measured_devices = [b.device for b in run.buffers]
    devices = list(dict.fromkeys([*memory.devices, *measured_devices, *run.rpc_allocations]))
    rows: list[FidelityRow] = []
    for device in devices:
        device_rows = []
        for component in COMPONENTS[:-1]:
            if component == "compute" and not memory.compute_modelled:
                continue
            mine = predicted.get((device, component), [])
            row = _component_row(device, component, mine, run, served)
            if row is not None:
                device_rows.append(row)
        other = sum(
            (b.size for b in run.buffers if b.device == device and b.kind is BufferKind.OTHER),
            LoggedSize.exact(0),
        )
        if device_rows or other.high_bytes:
            total = sum((row.measured for row in device_rows), other)
            device_rows.append(
                FidelityRow(
                    device=device,
                    component="total",
                    predicted=sum(row.predicted for row in device_rows),
                    measured=total,
                )
            )
        rows += device_rows
    graph = run.graph
    return LaunchFidelity(
        rows=tuple(rows),
        compute_modelled=memory.compute_modelled,
        splits_predicted=(memory.graph_splits, memory.graph_splits_tg),
        splits_measured=(graph.pp_splits, graph.tg_splits) if graph else None,
        mismatches=tuple(_context_mismatches(memory, run) + _placement_mismatches(memory, run)),
    )


def measured_memory(report: RunReport, *, with_compute: bool = True) -> dict[str, LoggedSize]:
    """Each device's total as the log says it; ``with_compute=False`` leaves the compute
    buffers out (to compare with a prediction that does not model them). ``fit test``'s
    comparison (``profiles.outcome``) reads its measured side from here."""
    totals = {}
    for device, logged in report.per_device().items():
        total = logged.total
        if not with_compute:
            total = LoggedSize(
                printed_mib=total.printed_mib - logged.compute.printed_mib,
                low_bytes=total.low_bytes - logged.compute.low_bytes,
                high_bytes=total.high_bytes - logged.compute.high_bytes,
            )
        totals[device] = total
    return totals


# --- rows ------------------------------------------------------------------------------------


def _predicted_buffers(
    memory: MemoryReport, served: bool
) -> dict[tuple[str, str], list[tuple[str, int]]]:
    """(device, component) -> fit's buffers as (buffer type or cache, bytes), in its order;
    the compute buffers at startup, or at their peak for a launch that ``served``."""
    found: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for model_buffer in memory.model_buffers:
        found.setdefault((model_buffer.device, "weights"), []).append(
            (model_buffer.buffer_type, model_buffer.size)
        )
    for kv in memory.kv_buffers:
        found.setdefault((kv.device, "kv"), []).append((f"{kv.buffer_type}/{kv.cache}", kv.size))
    out = memory.output_buffer
    found.setdefault((out.device, "output"), []).append((out.buffer_type, out.size))
    compute = memory.compute_peak_buffers if served else memory.compute_buffers
    for device, size in compute.items():
        if size:
            found[(device, "compute")] = [(device, size)]
    return found


def _component_row(
    device: str, component: str, mine: list[tuple[str, int]], run: RunReport, served: bool
) -> FidelityRow | None:
    logged = [b for b in run.buffers if b.device == device and b.kind in _KINDS[component]]
    exact = run.rpc_allocations.get(device)
    if not mine and not logged and (exact is None or not _exact_sizes(exact, component)):
        return None
    predicted = sum(size for _, size in mine)
    if exact is not None and component != "output":
        sizes = _exact_sizes(exact, component)
        mine_sizes = [size for _, size in mine]
        match = component == "compute" or mine_sizes == sizes
        detail = "" if match else f"buffers: fit {mine_sizes}, RPC server {sizes}"
        return FidelityRow(
            device=device,
            component=component,
            predicted=predicted,
            measured=LoggedSize.exact(sum(sizes)),
            buffers_match=match,
            detail=detail,
        )
    measured = sum((b.size for b in logged), LoggedSize.exact(0))
    if component == "compute" and served:
        # what serving grew the buffers to (the RPC servers' largest allocation, above)
        measured = run.compute_at_exit.get(device, measured)
    detail = "" if component == "compute" else _buffer_mismatch(component, mine, logged)
    return FidelityRow(
        device=device,
        component=component,
        predicted=predicted,
        measured=measured,
        buffers_match=not detail,
        detail=detail,
    )


def _exact_sizes(exact: RpcAllocations, component: str) -> list[int]:
    if component == "weights":
        return list(exact.model)
    if component == "kv":
        return list(exact.kv)
    if component == "compute":
        return [exact.compute_bytes] if exact.compute_bytes else []
    return []


def _buffer_mismatch(
    component: str, mine: list[tuple[str, int]], logged: list[LoggedBuffer]
) -> str:
    """'' when each of fit's buffers has its counterpart in the log, else what differs.

    Weights pair up by buffer type (the log's order is llama.cpp's map order); KV buffers in
    order, with the cache (full / sliding window / recurrent) they belong to.
    """
    if component == "kv":
        theirs = [(f"{b.buffer}/{b.cache or b.kind.value}", b) for b in logged]
        pairs = list(zip(mine, theirs, strict=False))
        same_kind = True
        for (name, _), (_, b) in pairs:
            buffer_type, cache = name.rsplit("/", 1)
            kind, caches = _LOGGED_CACHE[cache]
            same_kind &= (buffer_type, kind) == (b.buffer, b.kind) and b.cache in caches
    else:
        mine = sorted(mine)
        theirs = sorted(((b.buffer, b) for b in logged), key=lambda p: (p[0], p[1].size.low_bytes))
        pairs = list(zip(mine, theirs, strict=False))
        same_kind = all(name == their_name for (name, _), (their_name, _) in pairs)
    fits = all(b.size.contains(size) for (_, size), (_, b) in pairs)
    if len(mine) == len(logged) and same_kind and fits:
        return ""
    shown = ", ".join(f"{name} {size}" for name, size in mine)
    printed = ", ".join(f"{name} {_size_text(b.size)}" for name, b in theirs)
    return f"buffers: fit [{shown}], llama.cpp [{printed}]"


def _size_text(size: LoggedSize) -> str:
    if size.is_exact:
        return f"{size.low_bytes} B"
    return f"{size.low_bytes}..{size.high_bytes} B"


# --- what else must agree --------------------------------------------------------------------


def _context_mismatches(memory: MemoryReport, run: RunReport) -> list[str]:
    fields = ("n_ctx", "n_ctx_seq", "n_batch", "n_ubatch", "n_seq_max", "n_outputs_max")
    found = []
    for name in fields:
        theirs = getattr(run.context, name)
        mine = getattr(memory.workload, name)
        if theirs is not None and theirs != mine:
            found.append(f"{name}: fit {mine}, llama.cpp {theirs}")
    return found


def _placement_mismatches(memory: MemoryReport, run: RunReport) -> list[str]:
    """Layers and overridden weights on other devices than llama.cpp put them (at -lv 5)."""
    found = []
    placement = memory.placement
    mine = [*placement.layer_devices, placement.output_device]
    for layer, device in sorted(run.layer_devices.items()):
        if layer < len(mine) and mine[layer] != device:
            found.append(f"layer {layer}: fit {mine[layer]}, llama.cpp {device}")
    if run.layer_devices and len(run.layer_devices) != len(mine):
        found.append(f"layers: fit {len(mine)} with the output, llama.cpp {len(run.layer_devices)}")
    for tensor, buffer in sorted(run.tensor_overrides.items()):
        theirs = run.device_of(buffer)
        ours = placement.tensor_devices.get(tensor)
        if ours != theirs:
            found.append(f"{tensor} (-ot): fit {ours}, llama.cpp {theirs} ({buffer})")
    return found
