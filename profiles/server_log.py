"""Read llama-server's log into a ``RunReport``: what it allocated where, and whether it ran.

The log is the ground truth the memory model is checked against, so every number keeps how
exactly llama.cpp printed it. The pinned llama.cpp prints buffer sizes with ``%8.2f MiB``
(``src/llama-model.cpp: llama_model::load_tensors``, ``src/llama-kv-cache.cpp:
llama_kv_cache::llama_kv_cache``, ``src/llama-context.cpp: llama_context::llama_context`` and
``llama_context::sched_reserve``); no verbosity level prints them in bytes (checked: ``-v``
adds ``LLAMA_LOG_DEBUG`` lines, whose sizes are MiB too). So a ``LoggedSize`` is an interval:
``[printed - 0.005, printed + 0.005]`` MiB for those lines, ``[printed, printed + 1)`` MiB for
the integer ``common_memory_breakdown_print`` table, exact bytes where ggml printed ``%zu``
(allocation failures in ``ggml/src/ggml-backend.cpp``).

Two sources are tighter. At ``-lv 5`` the context's destructor prints each compute buffer's
startup size again with four decimals (``llama_context::~llama_context``: "compute buffer size
is %8.4f MiB, matches expectation of %8.4f MiB"); the parser narrows the startup interval to
it. The same line gives the size the buffer ended with (``RunReport.compute_at_exit``): larger
than the startup one ("does not match expectation") when a graph built while serving needed
more (ggml's allocator grows a buffer then; its own "reallocating" line is compiled out of
release builds). A ``ggml-rpc-server`` started with ``GGML_RPC_DEBUG=1`` logs the exact
byte size of every buffer it allocates (``rpc_server::alloc_buffer``): ``parse_rpc_debug_log``
reads them, and ``RunReport.with_rpc_debug_logs`` attaches them to the run, per device.

What llama-server logs depends on its verbosity: llama.cpp's own INFO lines (buffers, context,
graph) map to verbosity 4 (``common/log.cpp: common_log_get_verbosity``), above the default
3, so ``profiles.server`` launches with ``-lv 4``. A log at the default verbosity parses, but
has almost nothing in it.

Device naming with RPC (``ggml/src/ggml-rpc/ggml-rpc.cpp``): each ``--rpc`` server's devices
get global names ``RPC0``, ``RPC1``... in ``--rpc`` order with the endpoint as description
(``ggml_backend_rpc_add_server``), listed in the ``device_info`` block. Their *buffer types*
are named by the device index *inside that server* plus the endpoint
(``ggml_backend_rpc_buffer_type``: ``RPC0[127.0.0.1:50052]``), so two single-device servers
both print ``RPC0[...]`` buffers; the endpoint tells them apart. That buffer-type name is
also what ``-ot REGEX=BUFT`` accepts, and ``--rpc`` must precede ``-ot`` on the command line
(``common/arg.cpp: parse_tensor_buffer_overrides`` looks up the devices registered so far).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from solver.quantities import MIB

# "0.01.108.625 I " (common/log.cpp: common_log_entry::print): optional timestamp and level.
_PREFIX = re.compile(r"^(?:\d+\.\d{2}\.\d{3}\.\d{3} )?(?:(?P<level>[IWED]) )?")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


# --- sizes as printed -------------------------------------------------------------------------


class LoggedSize(BaseModel):
    """A byte count as the log printed it: exact, or the interval its rounding allows."""

    model_config = ConfigDict(frozen=True)

    printed_mib: float = Field(description="the value as printed, in MiB (sum for totals)")
    low_bytes: int = Field(description="smallest byte count that prints this way")
    high_bytes: int = Field(description="largest byte count that prints this way")

    @classmethod
    def exact(cls, n_bytes: int) -> LoggedSize:
        return cls(printed_mib=n_bytes / MIB, low_bytes=n_bytes, high_bytes=n_bytes)

    @classmethod
    def from_mib_text(cls, text: str) -> LoggedSize:
        """A ``%.Nf`` MiB value: the true size is within half a last digit of it."""
        value = Fraction(Decimal(text))
        decimals = len(text.partition(".")[2])
        half_step = Fraction(1, 2 * 10**decimals)
        return cls(
            printed_mib=float(value),
            low_bytes=max(0, math.ceil((value - half_step) * MIB)),
            high_bytes=math.floor((value + half_step) * MIB),
        )

    @classmethod
    def from_floor_mib(cls, mib: int) -> LoggedSize:
        """A ``size / MiB`` integer (``common_memory_breakdown_print``): truncated, not rounded."""
        if mib >= 0:
            return cls(printed_mib=mib, low_bytes=mib * MIB, high_bytes=(mib + 1) * MIB - 1)
        return cls(printed_mib=mib, low_bytes=(mib - 1) * MIB + 1, high_bytes=mib * MIB)

    @property
    def is_exact(self) -> bool:
        return self.low_bytes == self.high_bytes

    @property
    def uncertainty_bytes(self) -> int:
        """Half the width of the interval: how far the midpoint can be from the truth."""
        return (self.high_bytes - self.low_bytes + 1) // 2

    @property
    def approx_bytes(self) -> int:
        """The midpoint of the interval (the printed value in bytes, for rounded values)."""
        return (self.low_bytes + self.high_bytes) // 2

    def contains(self, n_bytes: int) -> bool:
        """Whether a byte count fit predicted is consistent with what llama.cpp printed."""
        return self.low_bytes <= n_bytes <= self.high_bytes

    def distance(self, n_bytes: int) -> int:
        """How far ``n_bytes`` lies outside the interval (0 inside it)."""
        return max(self.low_bytes - n_bytes, n_bytes - self.high_bytes, 0)

    def narrowed(self, other: LoggedSize) -> LoggedSize:
        """The part of this interval ``other`` allows too (this one where they do not meet:
        then they were not sizes of the same buffer)."""
        low, high = max(self.low_bytes, other.low_bytes), min(self.high_bytes, other.high_bytes)
        if low > high:
            return self
        return LoggedSize(printed_mib=self.printed_mib, low_bytes=low, high_bytes=high)

    def __add__(self, other: LoggedSize) -> LoggedSize:
        return LoggedSize(
            printed_mib=self.printed_mib + other.printed_mib,
            low_bytes=self.low_bytes + other.low_bytes,
            high_bytes=self.high_bytes + other.high_bytes,
        )


ZERO = LoggedSize.exact(0)


# --- records --------------------------------------------------------------------------------


class BufferKind(StrEnum):
    """What a buffer holds, from the word before ``buffer size`` in its log line."""

    MODEL = "model"  # weights (load_tensors)
    KV = "KV"  # attention KV cache (llama_kv_cache)
    RS = "RS"  # recurrent state (llama_memory_recurrent)
    COMPUTE = "compute"  # scheduler's graph buffers (sched_reserve)
    OUTPUT = "output"  # logits/embeddings (llama_context)
    OTHER = "other"  # LoRA, DSV4 compressor state, ...


class LoggedBuffer(BaseModel):
    """One ``<func>: <BUFFER> <kind> buffer size = X MiB`` line."""

    model_config = ConfigDict(frozen=True)

    kind: BufferKind
    label: str = Field(description="llama.cpp's what-word, e.g. 'KV', 'DSV4 csa state'")
    buffer: str = Field(description="buffer type name: CPU, CPU_Mapped, CUDA0, RPC0[h:p]...")
    device: str = Field(description="device whose memory holds it: CPU (host), CUDA0, RPC1...")
    cache: str | None = Field(
        default=None, description="for KV: which cache of an iSWA model ('non-SWA' or 'SWA')"
    )
    size: LoggedSize
    line: int = Field(description="1-based line number in the log")


class LoggedDevice(BaseModel):
    """A device from llama-server's ``device_info`` block (memory in whole MiB, truncated)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="llama.cpp device name: CPU, CUDA0, RPC0...")
    description: str = Field(description="model name, or host:port for RPC devices")
    total: LoggedSize
    free: LoggedSize


class AllocationFailure(BaseModel):
    """An allocation llama.cpp reported as failed, with the buffer/device when it said."""

    model_config = ConfigDict(frozen=True)

    buffer: str | None = Field(description="buffer type name, e.g. CPU, CUDA0, RPC0[h:p]")
    device: str | None = Field(description="device name the buffer belongs to")
    size: LoggedSize | None = Field(description="requested size where printed")
    purpose: str | None = Field(default=None, description="e.g. 'kv cache', 'compute pp'")
    line: int
    text: str


class GraphReserve(BaseModel):
    """``sched_reserve: graph ...`` (``llama_context::sched_reserve``): the reserved graphs.

    The prompt-processing (pp) graph has ``min(n_ctx, n_ubatch)`` tokens, the token-generation
    (tg) graph ``n_seq_max``; llama.cpp prints one number when both agree, and the batch sizes
    only when they differ, so ``*_batch`` come from the context parameters otherwise.
    """

    model_config = ConfigDict(frozen=True)

    pp_batch: int | None
    tg_batch: int | None
    pp_nodes: int | None
    tg_nodes: int | None
    pp_splits: int
    tg_splits: int
    line: int


class KvCacheSummary(BaseModel):
    """``llama_kv_cache: size = ... (cells, layers, seqs), K (type): ..., V (type): ...``."""

    model_config = ConfigDict(frozen=True)

    cache: str | None = Field(description="'non-SWA' / 'SWA' for iSWA models, else None")
    size: LoggedSize
    cells: int
    layers: int
    n_seq_max: int
    n_stream: int
    type_k: str
    type_v: str
    k_size: LoggedSize
    v_size: LoggedSize


class ContextParams(BaseModel):
    """``llama_context: n_ctx = ...`` block: the values llama.cpp actually used."""

    model_config = ConfigDict(frozen=True)

    n_seq_max: int | None = None
    n_ctx: int | None = None
    n_ctx_seq: int | None = None
    n_batch: int | None = None
    n_ubatch: int | None = None
    n_outputs_max: int | None = None
    causal_attn: bool | None = None
    flash_attn: str | None = Field(default=None, description="auto / enabled / disabled")
    flash_attn_resolved: bool | None = Field(
        default=None, description="what 'auto' resolved to (resolve_fused_ops)"
    )
    kv_unified: bool | None = None


class BreakdownRow(BaseModel):
    """A row of ``common_memory_breakdown_print`` (``common/fit.cpp``), whole MiB truncated."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="device name (CUDA0, RPC1), 'Host', or a buffer type")
    description: str | None = None
    total: LoggedSize | None = None
    free: LoggedSize | None = None
    self_: LoggedSize = Field(alias="self")
    model: LoggedSize
    context: LoggedSize
    compute: LoggedSize
    unaccounted: LoggedSize | None = None


class MemoryBreakdown(BaseModel):
    """One printed table: ``projected`` by ``--fit``'s dry run, or ``final`` at exit."""

    model_config = ConfigDict(frozen=True)

    phase: str
    rows: tuple[BreakdownRow, ...]


class RpcAllocations(BaseModel):
    """Exact bytes one RPC device allocated for a run (``GGML_RPC_DEBUG=1`` log), by purpose.

    Told apart by order, as llama.cpp allocates them: ``load_tensors`` allocates every model
    buffer before it loads the first weight (``set_tensor``), and the context (KV cache, then
    compute buffers) comes after the model; a KV cache or recurrent state buffer is cleared
    right after it is allocated (``buffer_clear``); every other buffer after the model is a
    compute buffer of the scheduler, which only ever grows (the largest is the one kept).
    """

    model_config = ConfigDict(frozen=True)

    model: tuple[int, ...] = ()
    kv: tuple[int, ...] = Field(default=(), description="KV and recurrent-state buffers")
    compute: tuple[int, ...] = ()
    failed: tuple[int, ...] = Field(default=(), description="allocations the device refused")

    @property
    def compute_bytes(self) -> int:
        """The compute buffer the scheduler ended with (it re-allocates only to grow)."""
        return max(self.compute, default=0)


class LoggedMemory(BaseModel):
    """All logged buffers that live in one device's memory, summed per kind (what fit
    predicts is ``solver.llama.memory.DeviceMemory``)."""

    model_config = ConfigDict(frozen=True)

    device: str
    model: LoggedSize = ZERO
    kv: LoggedSize = ZERO
    rs: LoggedSize = ZERO
    compute: LoggedSize = ZERO
    output: LoggedSize = ZERO
    other: LoggedSize = ZERO

    @property
    def total(self) -> LoggedSize:
        return self.model + self.kv + self.rs + self.compute + self.output + self.other


class RunReport(BaseModel):
    """Everything fit reads from one llama-server log."""

    model_config = ConfigDict(frozen=True)

    loaded: bool = Field(description="the server logged 'model loaded'")
    listening_url: str | None = None
    build: str | None = Field(default=None, description="'build N (commit) with CC for TARGET'")
    system_info: str | None = None
    devices: tuple[LoggedDevice, ...] = ()
    model_tensors: int | None = Field(default=None, description="tensors in the model file(s)")
    load_mode: str | None = Field(default=None, description="mmap / none / ...")
    layers_offloaded: int | None = None
    layers_total: int | None = Field(default=None, description="n_layer + 1 (output layer)")
    output_layer_offloaded: bool | None = None
    layer_devices: dict[int, str] = Field(
        default_factory=dict,
        description="layer -> device (-lv 5 'assigned to device' lines; n_layer is the output)",
    )
    tensor_overrides: dict[str, str] = Field(
        default_factory=dict, description="weight -> buffer type an -ot rule gave it (-lv 5)"
    )
    context: ContextParams = ContextParams()
    buffers: tuple[LoggedBuffer, ...] = ()
    kv_caches: tuple[KvCacheSummary, ...] = ()
    graphs: tuple[GraphReserve, ...] = ()
    pipeline_parallel: bool = False
    sched_copies: int | None = None
    breakdowns: tuple[MemoryBreakdown, ...] = ()
    allocation_failures: tuple[AllocationFailure, ...] = ()
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    rpc_allocations: dict[str, RpcAllocations] = Field(
        default_factory=dict,
        description="device -> exact bytes its RPC server allocated (see with_rpc_debug_logs)",
    )
    compute_at_exit: dict[str, LoggedSize] = Field(
        default_factory=dict,
        description="device -> its compute buffers' size at exit (-lv 5, four decimals): the "
        "startup size, or what graphs built while serving grew it to",
    )

    @property
    def out_of_memory(self) -> bool:
        return bool(self.allocation_failures)

    @property
    def graph(self) -> GraphReserve | None:
        """The last reservation (a context re-reserves when its graph changes)."""
        return self.graphs[-1] if self.graphs else None

    def buffers_of(self, kind: BufferKind) -> tuple[LoggedBuffer, ...]:
        return tuple(buffer for buffer in self.buffers if buffer.kind is kind)

    def per_device(self) -> dict[str, LoggedMemory]:
        """Buffers summed by the device whose memory holds them, in first-seen order."""
        field_of = {
            BufferKind.MODEL: "model",
            BufferKind.KV: "kv",
            BufferKind.RS: "rs",
            BufferKind.COMPUTE: "compute",
            BufferKind.OUTPUT: "output",
            BufferKind.OTHER: "other",
        }
        sums: dict[str, dict[str, LoggedSize]] = {}
        for buffer in self.buffers:
            fields = sums.setdefault(buffer.device, {})
            name = field_of[buffer.kind]
            fields[name] = fields.get(name, ZERO) + buffer.size
        return {device: LoggedMemory(device=device, **fields) for device, fields in sums.items()}

    def device_of(self, buffer: str) -> str:
        """The device whose memory holds buffer type ``buffer`` (CPU for host buffers)."""
        return _DeviceNames((d.name, d.description) for d in self.devices).device_of(buffer)

    def with_rpc_debug_logs(self, logs: Mapping[str, str]) -> RunReport:
        """This report with the exact allocations of its RPC devices attached.

        ``logs`` maps each ``--rpc`` endpoint to what its ``ggml-rpc-server`` (run with
        ``GGML_RPC_DEBUG=1``) logged during this run alone; device ``i`` of a server is the
        device whose buffer type is ``RPC<i>[endpoint]``.
        """
        found = dict(self.rpc_allocations)
        names = _DeviceNames((d.name, d.description) for d in self.devices)
        for endpoint, text in logs.items():
            parsed = parse_rpc_debug_log(text)
            # a device that allocated nothing is known to hold nothing
            indices = range(len(names.rpc_by_endpoint.get(endpoint, ()))) or parsed
            for index in indices:
                device = names.device_of(f"RPC{index}[{endpoint}]")
                found[device] = parsed.get(index, RpcAllocations())
        return self.model_copy(update={"rpc_allocations": found})

    def failure_reason(self) -> str | None:
        """One line saying why the server did not come up, or None when nothing says so."""
        if self.allocation_failures:
            first = self.allocation_failures[0]
            where = f" on {first.device}" if first.device else ""
            size = f" ({first.size.printed_mib:.2f} MiB)" if first.size else ""
            purpose = next((f.purpose for f in self.allocation_failures if f.purpose), None)
            what = f" for {purpose}" if purpose else ""
            return f"out of memory{where}: allocation{size}{what} failed"
        generic = ("exiting due to", "failed to create_context", "failed to create context")
        specific = [error for error in self.errors if not any(g in error for g in generic)]
        if specific:
            return specific[0]
        return self.errors[-1] if self.errors else None


# --- the parser -------------------------------------------------------------------------------

# "%12s model buffer size = %8.2f MiB" (src/llama-model.cpp: llama_model::load_tensors),
# "%10s KV buffer size" (src/llama-kv-cache.cpp: llama_kv_cache::llama_kv_cache),
# "%10s RS buffer size" (src/llama-memory-recurrent.cpp: llama_memory_recurrent::...),
# "%10s  output buffer size" (src/llama-context.cpp: llama_context::llama_context),
# "%10s compute buffer size" (src/llama-context.cpp: llama_context::sched_reserve)
_BUFFER = re.compile(
    r"(?P<func>\w+):\s+(?P<buffer>\S+)\s+(?P<label>[A-Za-z][\w ]*?)\s+buffer size =\s*"
    r"(?P<mib>-?\d+\.\d+) MiB$"
)
_KIND_BY_LABEL = {
    "model": BufferKind.MODEL,
    "KV": BufferKind.KV,
    "RS": BufferKind.RS,
    "compute": BufferKind.COMPUTE,
    "output": BufferKind.OUTPUT,
}
# src/llama-kv-cache-iswa.cpp: llama_kv_cache_iswa::llama_kv_cache_iswa ("non-SWA"/"SWA"),
# src/llama-memory-hybrid-idx.cpp ("indexer", logged from a lambda: "operator(): creating"),
# src/llama-kv-cache-dsv4.cpp ("DSV4 CSA compressed", "DSV4 HCA compressed", "DSV4
# lightning-indexer"): the KV buffer lines that follow belong to it
_KV_CACHE_START = re.compile(
    r"\w+(?:\(\))?: creating\s+(?P<which>(?:DSV4 )?[\w-]+(?: compressed)?) KV cache, size ="
)
# src/llama-kv-cache-dsv4.cpp: llama_dsv4_comp_state's "%10s DSV4 %s state buffer size"
_DSV4_STATE = re.compile(r"DSV4 (?P<name>\w+) state")
# src/llama-kv-cache.cpp: llama_kv_cache::llama_kv_cache, after its buffers
_KV_SUMMARY = re.compile(
    r"llama_kv_cache: size =\s*(?P<mib>\d+\.\d+) MiB \(\s*(?P<cells>\d+) cells,\s*"
    r"(?P<layers>\d+) layers,\s*(?P<seqs>\d+)/(?P<streams>\d+) seqs\), "
    r"K \((?P<tk>\w+)\):\s*(?P<k>\d+\.\d+) MiB, V \((?P<tv>\w+)\):\s*(?P<v>\d+\.\d+) MiB"
)
# src/llama-context.cpp: llama_context::llama_context ("%s: n_ctx                 = %u")
_CONTEXT_FIELD = re.compile(r"llama_context: (?P<key>\w+)\s+= (?P<value>\S+)$")
# src/llama-context.cpp: llama_context::resolve_fused_ops, for flash_attn = auto
_FA_RESOLVED = re.compile(r"resolve_fused_ops: Flash Attention (?P<state>enabled|not supported)")
# src/llama-model.cpp: llama_model::load_tensors (only where a GPU/RPC backend exists)
_OFFLOADED = re.compile(r"load_tensors: offloaded (?P<n>\d+)/(?P<m>\d+) layers to GPU")
_OUTPUT_OFFLOADED = re.compile(r"load_tensors: offloading output layer to GPU")
_LOAD_MODE = re.compile(r"load_tensors: loading model tensors.*\(load_mode = (?P<mode>\w+)\)")
# src/llama-context.cpp: llama_context::sched_reserve; "x / y" and the batch sizes only when
# the pp and tg graphs differ
_GRAPH = re.compile(
    r"sched_reserve: graph(?: \(pp bs=(?P<pp_bs>\d+), tg bs=(?P<tg_bs>\d+)\))?: "
    r"nodes = (?P<nodes>\d+)(?: / (?P<nodes_tg>\d+))?, "
    r"splits = (?P<splits>\d+)(?: / (?P<splits_tg>\d+))?"
)
# older llama.cpp: "llama_context: graph splits = 3 (with bs=512), 2 (with bs=1)"
_GRAPH_OLD = re.compile(
    r"graph splits = (?P<splits>\d+)(?: \(with bs=(?P<pp_bs>\d+)\), (?P<splits_tg>\d+) "
    r"\(with bs=(?P<tg_bs>\d+)\))?"
)
# src/llama-context.cpp: llama_context::~llama_context (LLAMA_LOG_DEBUG, or WARN when the
# buffer grew since startup): the startup size is the "expectation", printed with %8.4f
_EXIT_COMPUTE = re.compile(
    r"~llama_context:\s+(?P<buffer>\S+) compute buffer size (?:is|of)\s+(?P<final>\d+\.\d+) MiB, "
    r"(?:matches|does not match) expectation of\s+(?P<mib>\d+\.\d+) MiB"
)
# src/llama-model.cpp: llama_model::load_tensors (LLAMA_LOG_DEBUG)
_LAYER_DEVICE = re.compile(
    r"load_tensors: layer\s+(?P<il>\d+) assigned to device (?P<dev>[^,\s]+),"
)
# src/llama-model-loader.cpp: llama_model_loader::create_tensor (LLAMA_LOG_DEBUG)
_OVERRIDE = re.compile(r"tensor (?P<name>\S+) \(.*\) buffer type overridden to (?P<buft>\S+)$")
# src/llama-model-loader.cpp: llama_model_loader::llama_model_loader, once per model load
_MODEL_LOAD = re.compile(
    r"llama_model_loader: loaded meta data with \d+ key-value pairs and (?P<n>\d+) tensors"
)
# what describes one model load (RunReport fields), and its value until that load's lines say
_PER_LOAD = {"load_mode": None, "layers_offloaded": None, "layers_total": None,
             "output_layer_offloaded": None, "pipeline_parallel": False,
             "sched_copies": None}  # fmt: skip
_SCHED_COPIES = re.compile(r"sched_reserve: reserve took .* sched copies = (?P<n>\d+)")
# common/common.cpp: common_params_print_info (func printed as "%12.*s": "common_param")
_BUILD = re.compile(r"common_param(?:s_print_info)?: (?P<build>build \d+ \(.*\) with .*)$")
_SYSTEM_INFO = re.compile(r"(?P<info>system_info: .*)$")
_DEVICE = re.compile(
    r"common_param(?:s_print_info)?:\s+- (?P<name>\S+)\s*: (?P<desc>.*) "
    r"\((?P<total>\d+) MiB, (?P<free>\d+) MiB free\)$"
)
# src/llama.cpp: llama_prepare_model_devices
_USING_DEVICE = re.compile(r"using device (?P<name>\S+) \((?P<desc>[^)]*)\) \(")
# tools/server/server.cpp: llama_server ("listening on %s", "model loaded")
_LISTENING = re.compile(r"listening on (?P<url>\S+)")
# common/fit.cpp: common_memory_breakdown_print, template_gpu and template_other rows
_BREAKDOWN_DEVICE = re.compile(
    r"common_memory_breakdown_print: \|\s+- (?P<name>.+?)\s+\|\s*(?P<total>-?\d+) = "
    r"(?P<free>-?\d+) \+ \(\s*(?P<self>-?\d+) =\s*(?P<model>-?\d+) \+\s*(?P<context>-?\d+) \+"
    r"\s*(?P<compute>-?\d+)\) \+\s*(?P<unaccounted>-?\d+) \|"
)
_BREAKDOWN_OTHER = re.compile(
    r"common_memory_breakdown_print: \|\s+- (?P<name>.+?)\s+\|\s*(?P<self>-?\d+) =\s*"
    r"(?P<model>-?\d+) \+\s*(?P<context>-?\d+) \+\s*(?P<compute>-?\d+)\s*\|"
)
_NAME_WITH_DESCRIPTION = re.compile(r"^(?P<name>\S+) \((?P<desc>.*)\)$")

# allocation failures, most specific first (each names its source function)
_ALLOC_BYTES = re.compile(  # ggml-backend.cpp / ggml-alloc.c: "%s buffer of size %zu"
    r"failed to allocate (?P<buffer>\S+) buffer of size (?P<bytes>\d+)"
)
_ALLOC_CPU_BYTES = re.compile(  # ggml_backend_cpu_buffer_type_alloc_buffer
    r"ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size (?P<bytes>\d+)"
)
_ALLOC_CUDA = re.compile(  # ggml-cuda.cu: ggml_backend_cuda_buffer_type_alloc_buffer
    r"allocating (?P<mib>\d+\.\d+) MiB on device (?P<dev>\d+): cudaMalloc failed"
)
_ALLOC_PURPOSE = re.compile(
    r"failed to allocate (?:buffer for (?P<what>[a-z][\w ]*[a-z])|(?P<compute>compute \w+) buffers)"
)
_UNABLE_TO_ALLOCATE = re.compile(r"unable to allocate (?P<buffer>\S+) buffer")
_OOM_WORDS = re.compile(r"out of memory|insufficient memory|cudaMalloc failed", re.IGNORECASE)
_HOST_BUFFER = re.compile(r"^(CPU|AMX|\w+_Host|CPU_\w+)$")
_RPC_BUFFER = re.compile(r"^RPC(?P<index>\d+)\[(?P<endpoint>[^\]]+)\]$")


class _DeviceNames:
    """Buffer type name -> llama.cpp device name, from (name, description) pairs."""

    def __init__(self, devices: Iterable[tuple[str, str]]) -> None:
        self.rpc_by_endpoint: dict[str, list[str]] = {}
        for name, description in dict(devices).items():
            if name.startswith("RPC"):
                self.rpc_by_endpoint.setdefault(description, []).append(name)

    def device_of(self, buffer: str) -> str:
        if _HOST_BUFFER.match(buffer):
            return "CPU"  # host memory: mapped file, repack, pinned (CUDA_Host) buffers
        rpc = _RPC_BUFFER.match(buffer)
        if rpc:
            names = self.rpc_by_endpoint.get(rpc["endpoint"], [])
            index = int(rpc["index"])
            return names[index] if index < len(names) else buffer
        cuda = re.match(r"^(CUDA\d+)", buffer)
        return cuda.group(1) if cuda else buffer


def _strip(raw: str) -> tuple[str | None, str]:
    line = _ANSI.sub("", raw.rstrip("\n"))
    prefix = _PREFIX.match(line)
    assert prefix is not None  # the pattern matches the empty string
    return prefix["level"], line[prefix.end() :].rstrip()


def _breakdown_row(match: re.Match[str]) -> BreakdownRow:
    fields = match.groupdict()
    name, description = fields.pop("name").strip(), None
    named = _NAME_WITH_DESCRIPTION.match(name)
    if named:
        name, description = named["name"], named["desc"]
    sizes = {key: LoggedSize.from_floor_mib(int(value)) for key, value in fields.items()}
    return BreakdownRow(name=name, description=description, **sizes)


def parse_server_log(text: str) -> RunReport:
    """Parse a llama-server log (any verbosity; ``-lv 4`` has the buffer lines).

    Every line: its level (warnings, errors), then a memory breakdown row, or the first
    ``_LINE_KINDS`` entry that matches it, then whether it reports an allocation failure.
    """
    lines = [_strip(raw) for raw in text.splitlines()]
    devices = _logged_devices(lines)
    # the device_info block needs -lv 4; llama_prepare_model_devices names the devices the
    # model uses at the default verbosity too (src/llama.cpp: "using device %s (%s) ...")
    used = [(m["name"], m["desc"]) for _, body in lines if (m := _USING_DEVICE.search(body))]
    found = _Found(names=_DeviceNames([*used, *((d.name, d.description) for d in devices)]))
    for number, (level, body) in enumerate(lines, start=1):
        if level == "W":
            found.warnings.append(body)
        elif level == "E" or (level is None and body.startswith("error:")):
            found.errors.append(body)  # unprefixed "error: ..." is common/arg.cpp's bad argument
        if _read_breakdown(found, body, number):
            continue
        for pattern, handle in _LINE_KINDS:
            if m := pattern.search(body):
                handle(found, m, number)
                break
        failure = _allocation_failure(body, number, found.names)
        if failure is not None:
            found.failures.append(failure)
    _close_breakdown(found, len(lines))
    return _report(found, devices)


def _logged_devices(lines: list[tuple[str | None, str]]) -> list[LoggedDevice]:
    """The ``device_info`` block's devices (``common_params_print_info``)."""
    return [
        LoggedDevice(
            name=m["name"],
            description=m["desc"],
            total=LoggedSize.from_floor_mib(int(m["total"])),
            free=LoggedSize.from_floor_mib(int(m["free"])),
        )
        for _, body in lines
        if (m := _DEVICE.search(body))
    ]


@dataclass
class _Found:
    """What ``parse_server_log`` has read so far; ``_report`` makes it a ``RunReport``.

    The fields named like ``RunReport``'s hold the same thing (``_PER_LOAD`` ones describe
    the last model load only); the others are the parser's own.
    """

    names: _DeviceNames
    loaded: bool = False
    listening_url: str | None = None
    build: str | None = None
    system_info: str | None = None
    model_tensors: int | None = None
    load_mode: str | None = None
    layers_offloaded: int | None = None
    layers_total: int | None = None
    output_layer_offloaded: bool | None = None
    pipeline_parallel: bool = False
    sched_copies: int | None = None
    layer_devices: dict[int, str] = field(default_factory=dict)
    tensor_overrides: dict[str, str] = field(default_factory=dict)
    context: dict[str, str] = field(default_factory=dict)  # llama_context's "key = value"s
    flash_attn_resolved: bool | None = None
    buffers: list[LoggedBuffer] = field(default_factory=list)
    kv_caches: list[KvCacheSummary] = field(default_factory=list)
    graphs: list[GraphReserve] = field(default_factory=list)
    failures: list[AllocationFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rows: list[BreakdownRow] = field(default_factory=list)  # the breakdown table being read
    tables: list[tuple[int, tuple[BreakdownRow, ...]]] = field(default_factory=list)
    kv_cache: str | None = None  # the iSWA / indexer cache whose KV buffer lines follow
    compute_at_exit: dict[str, LoggedSize] = field(default_factory=dict)
    last_load: int = 0  # line of the last "loaded meta data": the load the server runs with


def _read_breakdown(found: _Found, body: str, number: int) -> bool:
    """A ``common_memory_breakdown_print`` row or header: True (the line is read). Any
    other line ends the table being read."""
    row = _BREAKDOWN_DEVICE.search(body) or _BREAKDOWN_OTHER.search(body)
    if row:
        found.rows.append(_breakdown_row(row))
        return True
    _close_breakdown(found, number)
    return "common_memory_breakdown_print: | memory breakdown" in body


def _close_breakdown(found: _Found, number: int) -> None:
    if found.rows:
        found.tables.append((number, tuple(found.rows)))
        found.rows.clear()


def _report(found: _Found, devices: list[LoggedDevice]) -> RunReport:
    # a table printed before the last load is --fit's projection, one after it the final
    last_load = found.last_load
    breakdowns = [
        MemoryBreakdown(phase="final" if last_load and line > last_load else "projected", rows=t)
        for line, t in found.tables
    ]
    return RunReport(
        loaded=found.loaded,
        listening_url=found.listening_url,
        build=found.build,
        system_info=found.system_info,
        devices=tuple(devices),
        model_tensors=found.model_tensors,
        load_mode=found.load_mode,
        layers_offloaded=found.layers_offloaded,
        layers_total=found.layers_total,
        output_layer_offloaded=found.output_layer_offloaded,
        layer_devices=found.layer_devices,
        tensor_overrides=found.tensor_overrides,
        context=_context(found.context, found.flash_attn_resolved),
        buffers=tuple(found.buffers),
        kv_caches=tuple(found.kv_caches),
        graphs=tuple(found.graphs),
        pipeline_parallel=found.pipeline_parallel,
        sched_copies=found.sched_copies,
        breakdowns=tuple(breakdowns),
        allocation_failures=_with_purpose(found.failures),
        warnings=tuple(found.warnings),
        errors=tuple(found.errors),
        compute_at_exit=found.compute_at_exit,
    )


# --- one handler per kind of line -------------------------------------------------------------


def _on_model_load(found: _Found, m: re.Match[str], number: int) -> None:
    # --fit's dry runs load the model first (their lines show at -lv 5): what describes a
    # load starts again, the last load is the one that allocated
    found.last_load, found.kv_cache = number, None
    found.buffers.clear()
    found.kv_caches.clear()
    found.graphs.clear()
    for key, unset in _PER_LOAD.items():
        setattr(found, key, unset)
    found.layer_devices, found.tensor_overrides = {}, {}
    found.model_tensors = int(m["n"])


def _on_buffer(found: _Found, m: re.Match[str], number: int) -> None:
    label = m["label"]
    kind = _KIND_BY_LABEL.get(label, BufferKind.OTHER)
    cache = found.kv_cache if kind is BufferKind.KV else None
    state = _DSV4_STATE.fullmatch(label)
    if state:  # a DSV4 compressor's state: per-sequence rows, as a recurrent state is
        kind, cache = BufferKind.RS, f"DSV4 {state['name']} state"
    found.buffers.append(
        LoggedBuffer(
            kind=kind,
            label=label,
            buffer=m["buffer"],
            device=found.names.device_of(m["buffer"]),
            cache=cache,
            size=LoggedSize.from_mib_text(m["mib"]),
            line=number,
        )
    )


def _on_exit_compute(found: _Found, m: re.Match[str], number: int) -> None:
    _narrow_compute(found.buffers, m["buffer"], LoggedSize.from_mib_text(m["mib"]))
    device = found.names.device_of(m["buffer"])
    final = LoggedSize.from_mib_text(m["final"])
    found.compute_at_exit[device] = found.compute_at_exit.get(device, ZERO) + final


def _on_layer_device(found: _Found, m: re.Match[str], number: int) -> None:
    found.layer_devices[int(m["il"])] = m["dev"]  # a later load (--fit) wins


def _on_override(found: _Found, m: re.Match[str], number: int) -> None:
    found.tensor_overrides[m["name"]] = m["buft"]


def _on_kv_cache_start(found: _Found, m: re.Match[str], number: int) -> None:
    found.kv_cache = m["which"]


def _on_kv_summary(found: _Found, m: re.Match[str], number: int) -> None:
    found.kv_caches.append(
        KvCacheSummary(
            cache=found.kv_cache,
            size=LoggedSize.from_mib_text(m["mib"]),
            cells=int(m["cells"]),
            layers=int(m["layers"]),
            n_seq_max=int(m["seqs"]),
            n_stream=int(m["streams"]),
            type_k=m["tk"],
            type_v=m["tv"],
            k_size=LoggedSize.from_mib_text(m["k"]),
            v_size=LoggedSize.from_mib_text(m["v"]),
        )
    )


def _on_context_field(found: _Found, m: re.Match[str], number: int) -> None:
    found.context[m["key"]] = m["value"]


def _on_fa_resolved(found: _Found, m: re.Match[str], number: int) -> None:
    found.flash_attn_resolved = m["state"] == "enabled"


def _on_graph(found: _Found, m: re.Match[str], number: int) -> None:
    found.graphs.append(_graph(m, number, found.context))


def _on_sched_copies(found: _Found, m: re.Match[str], number: int) -> None:
    found.sched_copies = int(m["n"])


def _on_pipeline_parallel(found: _Found, m: re.Match[str], number: int) -> None:
    found.pipeline_parallel = True


def _on_offloaded(found: _Found, m: re.Match[str], number: int) -> None:
    found.layers_offloaded, found.layers_total = int(m["n"]), int(m["m"])
    if found.output_layer_offloaded is None:
        found.output_layer_offloaded = False  # the next line says so when it is


def _on_output_offloaded(found: _Found, m: re.Match[str], number: int) -> None:
    found.output_layer_offloaded = True


def _on_load_mode(found: _Found, m: re.Match[str], number: int) -> None:
    found.load_mode = m["mode"]


def _on_build(found: _Found, m: re.Match[str], number: int) -> None:
    found.build = m["build"]


def _on_system_info(found: _Found, m: re.Match[str], number: int) -> None:
    found.system_info = m["info"]


def _on_listening(found: _Found, m: re.Match[str], number: int) -> None:
    found.listening_url = m["url"]


def _on_loaded(found: _Found, m: re.Match[str], number: int) -> None:
    found.loaded = True


_PIPELINE_PARALLEL = re.compile(re.escape("llama_context: pipeline parallelism enabled"))
# tools/server/server.cpp: llama_server
_LOADED = re.compile(r"llama_server: model loaded|model loaded\Z")

# Each line is read by the first of these that matches it (the order settles overlaps).
_LINE_KINDS: tuple[tuple[re.Pattern[str], Callable[[_Found, re.Match[str], int], None]], ...] = (
    (_MODEL_LOAD, _on_model_load),
    (_BUFFER, _on_buffer),
    (_EXIT_COMPUTE, _on_exit_compute),
    (_LAYER_DEVICE, _on_layer_device),
    (_OVERRIDE, _on_override),
    (_KV_CACHE_START, _on_kv_cache_start),
    (_KV_SUMMARY, _on_kv_summary),
    (_CONTEXT_FIELD, _on_context_field),
    (_FA_RESOLVED, _on_fa_resolved),
    (_GRAPH, _on_graph),
    (_GRAPH_OLD, _on_graph),
    (_SCHED_COPIES, _on_sched_copies),
    (_PIPELINE_PARALLEL, _on_pipeline_parallel),
    (_OFFLOADED, _on_offloaded),
    (_OUTPUT_OFFLOADED, _on_output_offloaded),
    (_LOAD_MODE, _on_load_mode),
    (_BUILD, _on_build),
    (_SYSTEM_INFO, _on_system_info),
    (_LISTENING, _on_listening),
    (_LOADED, _on_loaded),
)


def _narrow_compute(buffers: list[LoggedBuffer], buffer: str, size: LoggedSize) -> None:
    """Tighten the last startup line of this compute buffer to the 4-decimal exit value."""
    for index in range(len(buffers) - 1, -1, -1):
        logged = buffers[index]
        if logged.kind is BufferKind.COMPUTE and logged.buffer == buffer:
            buffers[index] = logged.model_copy(update={"size": logged.size.narrowed(size)})
            return


def _context(fields: dict[str, str], flash_attn_resolved: bool | None) -> ContextParams:
    def number(key: str) -> int | None:
        value = fields.get(key)
        return int(value) if isinstance(value, str) and value.isdigit() else None

    def flag(key: str) -> bool | None:
        value = fields.get(key)
        return None if value is None else value in ("1", "true")

    flash_attn = fields.get("flash_attn")
    return ContextParams(
        n_seq_max=number("n_seq_max"),
        n_ctx=number("n_ctx"),
        n_ctx_seq=number("n_ctx_seq"),
        n_batch=number("n_batch"),
        n_ubatch=number("n_ubatch"),
        n_outputs_max=number("n_outputs_max"),
        causal_attn=flag("causal_attn"),
        flash_attn=flash_attn if isinstance(flash_attn, str) else None,
        flash_attn_resolved=flash_attn_resolved,
        kv_unified=flag("kv_unified"),
    )


def _graph(match: re.Match[str], line: int, context: dict[str, str]) -> GraphReserve:
    fields = match.groupdict()

    def number(key: str) -> int | None:
        value = fields.get(key)
        return int(value) if value is not None else None

    pp_batch, tg_batch = number("pp_bs"), number("tg_bs")
    if pp_batch is None:  # printed only when pp and tg differ: sched_reserve's own values
        n_ctx, n_ubatch, n_seq = (context.get(k) for k in ("n_ctx", "n_ubatch", "n_seq_max"))
        if isinstance(n_ctx, str) and isinstance(n_ubatch, str):
            pp_batch = min(int(n_ctx), int(n_ubatch))
        tg_batch = int(n_seq) if isinstance(n_seq, str) else None
    splits = int(fields["splits"])
    nodes = number("nodes")
    return GraphReserve(
        pp_batch=pp_batch,
        tg_batch=tg_batch,
        pp_nodes=nodes,
        tg_nodes=number("nodes_tg") if fields.get("nodes_tg") else nodes,
        pp_splits=splits,
        tg_splits=number("splits_tg") if fields.get("splits_tg") else splits,
        line=line,
    )


def _allocation_failure(body: str, line: int, names: _DeviceNames) -> AllocationFailure | None:
    if m := _ALLOC_BYTES.search(body):
        buffer, size = m["buffer"], LoggedSize.exact(int(m["bytes"]))
    elif m := _ALLOC_CPU_BYTES.search(body):
        buffer, size = "CPU", LoggedSize.exact(int(m["bytes"]))
    elif m := _ALLOC_CUDA.search(body):
        buffer, size = f"CUDA{m['dev']}", LoggedSize.from_mib_text(m["mib"])
    elif m := _UNABLE_TO_ALLOCATE.search(body):
        buffer, size = m["buffer"], None
    elif _ALLOC_PURPOSE.search(body) or _OOM_WORDS.search(body):
        buffer, size = None, None
    else:
        return None
    purpose = _ALLOC_PURPOSE.search(body)
    return AllocationFailure(
        buffer=buffer,
        device=names.device_of(buffer) if buffer else None,
        size=size,
        purpose=(purpose["what"] or purpose["compute"]) if purpose else None,
        line=line,
        text=body,
    )


def _with_purpose(failures: list[AllocationFailure]) -> tuple[AllocationFailure, ...]:
    """Give sized failures the purpose a later line of the same failure states.

    ggml reports the buffer and size first (``ggml_backend_cpu_buffer_type_alloc_buffer``),
    llama.cpp the purpose after (``failed to allocate buffer for kv cache``); lines with
    neither size nor buffer are kept only when nothing more specific was found.
    """
    purposes = [f for f in failures if f.purpose]
    sized = [f for f in failures if f.buffer or f.size]
    if not sized:
        return tuple(failures)
    result: list[AllocationFailure] = []
    for failure in sized:
        previous = result[-1] if result else None
        if (
            previous is not None
            and failure.line - previous.line <= 2
            and (failure.device, failure.size) == (previous.device, previous.size)
        ):
            continue  # one failure, reported by the allocator and again by its caller
        later = next((p.purpose for p in purposes if p.line >= failure.line), None)
        result.append(failure.model_copy(update={"purpose": failure.purpose or later}))
    return tuple(result)


# ggml/src/ggml-rpc/ggml-rpc.cpp (rpc_server, LOG_DBG when GGML_RPC_DEBUG is set)
_RPC_EVENT = re.compile(
    r"\[(?P<event>alloc_buffer|buffer_clear|set_tensor|set_tensor_hash)\] "
    r"(?:device: (?P<device>\d+), size: (?P<size>\d+) -> (?:remote_ptr: (?P<ptr>[0-9a-f]+)|failed)"
    r"|remote_ptr: (?P<cleared>[0-9a-f]+))?"
)


def parse_rpc_debug_log(text: str) -> dict[int, RpcAllocations]:
    """A ``GGML_RPC_DEBUG=1`` ggml-rpc-server log of one run: exact bytes per local device.

    See ``RpcAllocations`` for how model, KV and compute buffers are told apart.
    """
    events = list(_RPC_EVENT.finditer(text))
    found: dict[int, dict[str, list[int]]] = {}
    after_model = False
    for index, event in enumerate(events):
        if event["event"] != "alloc_buffer":
            after_model = True  # a weight loaded or a cache cleared: the model is allocated
            continue
        if event["size"] is None:
            continue
        lists = found.setdefault(int(event["device"]), {})
        size = int(event["size"])
        following = events[index + 1] if index + 1 < len(events) else None
        if event["ptr"] is None:
            purpose = "failed"
        elif following is not None and following["cleared"] == event["ptr"]:
            purpose = "kv"
        else:
            purpose = "compute" if after_model else "model"
        lists.setdefault(purpose, []).append(size)
    return {
        device: RpcAllocations(**{purpose: tuple(sizes) for purpose, sizes in lists.items()})
        for device, lists in sorted(found.items())
    }


def parse_server_log_file(path: Path) -> RunReport:
    return parse_server_log(path.read_text(errors="replace"))


def relevant_lines(text: str, limit: int = 12) -> list[str]:
    """The lines that say why a launch failed: errors, allocation failures, else the tail."""
    picked = []
    for raw in text.splitlines():
        level, body = _strip(raw)
        if level == "E" or _OOM_WORDS.search(body) or "error" in body.lower():
            picked.append(body)
    tail = [_strip(raw)[1] for raw in text.splitlines()[-limit:]]
    return (picked or tail)[-limit:]


_REQUEST_TIMING = re.compile(
    r"(?P<kind>prompt eval|eval) time =\s*(?P<ms>[\d.]+) ms /\s*(?P<n>\d+) tokens"
)


def request_timings(text: str) -> dict[str, tuple[float, int]]:
    """The ``print_timing`` lines of every request a server answered, added up: ``prompt``
    and ``decode`` -> (milliseconds, tokens), llama-server's own clock
    (tools/server/server-context.cpp ``print_timings``)."""
    totals = {"prompt": (0.0, 0), "decode": (0.0, 0)}
    for match in _REQUEST_TIMING.finditer(text):
        kind = "prompt" if match["kind"] == "prompt eval" else "decode"
        ms, n = totals[kind]
        totals[kind] = (ms + float(match["ms"]), n + int(match["n"]))
    return totals
