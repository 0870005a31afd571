"""Compute buffers and graph splits of llama-server, predicted for any tensor placement.

``estimate_compute`` replays what ``llama_context::sched_reserve`` does at startup
(``src/llama-context.cpp``): it builds the worst-case prompt-processing graph
(n_tokens = min(n_ctx, n_ubatch), n_seqs = n_seq_max, n_outputs = min(n_tokens,
n_outputs_max)) and the token-generation graph (n_seqs tokens), splits each across the
backends with ggml's scheduler and sizes each backend's compute buffer with ggml's graph
allocator. A backend's buffer only ever grows between reserves, so the reported size is the
larger of the two graphs; the split count is the prompt graph's (llama.cpp logs ``pp / tg``).
The allocator grows a buffer the same way when a graph built while serving needs more
(``ggml_gallocr_reserve_n``): where the graphs grow with the positions cached
(``compute_graph.runtime_graphs``: minimax-m3's MSA), those graphs at a full cache are
allocated too, and ``peak_bytes_by_device`` is what each buffer reaches at most, what a plan
must hold; ``bytes_by_device`` stays the startup size the log prints.

Graphs depend only on the model and the workload, so they are built once and cached
(``solver.llama.compute_graph``); a new placement only re-runs the scheduler and the allocator, in
the compiled form of ``solver.ggml.engine`` (the readable ports ``solver.ggml.sched`` and
``solver.ggml.alloc`` remain as the reference it is tested against, ``reference=True``).

Validated against the real llama-server (``benchmarks/memory_fidelity.py``, 114 launches,
281 compute buffers: gemma-3-270m and synthetic llama, qwen3, qwen3moe, gemma3, deepseek2
MLA, gpt-oss, glm4moe, qwen35moe/qwen35 (gated DeltaNet hybrids) and catalogue miniatures,
on CPU and two RPC devices, FA on/off, quantized KV, -ub/-b, -np, -nkvo, -ot, pipeline
parallelism): every buffer within the log's 4-decimal rounding (52 bytes), to the byte on the
RPC devices, every split count exact.

Backends (``solver.ggml.sched.Backend``):
- ``CPU``: 32-byte alignment (``TENSOR_ALIGNMENT``), tensors take ``ggml_nbytes``. With a
  CUDA device present llama.cpp allocates it as ``CUDA_Host`` (pinned), same sizes.
- ``RPC<n>``: alignment and sizes of the remote buffer type; modelled as a remote CPU
  backend (what ``ggml-rpc-server`` runs on a machine without GPU), which is validated.
- ``CUDA<n>``: NOT validated (no GPU here). Follows ``ggml/src/ggml-cuda/ggml-cuda.cu``:
  128-byte alignment (``ggml_backend_cuda_buffer_type_get_alignment``), quantized tensors
  padded to ``MATRIX_ROW_PADDING`` = 512 elements per row (``get_alloc_size``), flash
  attention gets room for F16 copies of a quantized K/V (``fattn.cu``,
  ``ggml_cuda_flash_attn_ext_get_alloc_size``) for multi-token batches, and ops reading
  CPU weights with a batch of >= 32 rows are offloaded to the GPU (``offload_op``), which
  copies those weights into the GPU compute buffer. Ops CUDA's ``supports_op`` refuses
  (``solver.ggml.cuda_ops``, transcribed per op from the pinned ``ggml-cuda.cu`` under the
  build assumptions stated there) are scheduled as ``ggml_backend_sched`` does: they run on
  the CPU (or the backend reading most of their inputs), with the extra splits, copies and
  CPU compute buffer that costs; ``ComputeEstimate.fallbacks`` names them (``fit memory`` /
  ``fit solve`` say so in a note). The probes below see the same refusals. Found from
  source, unvalidated: mistral4's expert down-projection (F32 precision of its input) and,
  in catalogue miniatures only, a lightning indexer or SSM_SCAN whose shrunk heads have no
  CUDA kernel. Not modelled: the CUDA backend's ``graph_optimize`` fusion dependencies
  (shared-expert / top-k MoE fusions may keep a few tensors alive longer, and the
  shared-expert fusion reorders three nodes), the kernel choice behind the F16 K/V copies
  (vector kernel assumed for at most 2 tokens per sequence), ``--no-host`` (CPU weights then
  sit in non-host repack buffers and are not offloaded).

The fused hyper-connection ops (deepseek4, glm5-next) are probed as llama_context's
``resolve_fused_ops`` does: on the one-token-per-sequence graph (the generation graph's
shape) each fused node must be scheduled on its layer's device; where a fused ``hc_post``
is not, both graphs are built with it unfused (``_hc_post_fused``). A failed pre or comb
probe is refused (``ComputeNotModelled``): their unfused forms are not built. Before them,
``-fa auto`` is probed the same way (``flash_attn_on_layer_devices``; ``solver.llama.memory``
turns flash attention off where a layer's is scheduled elsewhere, as llama.cpp does).

Not modelled at all: architectures without a recipe (``compute_graph.recipes``; of the
recurrent and hybrid ones, qwen35/qwen35moe, qwen3next, nemotron_h_moe and kimi-linear have
one, mamba, rwkv, jamba, falcon-h1 and the rest do not) and models whose layers their
recipe does not build (e.g. nemotron-h MoE latents) raise ``ComputeNotModelled`` (never
priced as another architecture; hybrids whose state fit does not size are refused before,
by ``solver.llama.hparams``); ``-sm row``/``tensor`` and ``--embeddings`` pooling are
flagged ``approximate``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from solver.errors import BadInput
from solver.ggml import cuda_ops
from solver.ggml import ops as g
from solver.ggml.alloc import BufferType, reserve
from solver.ggml.engine import (
    BackendSpec,
    CompiledGraph,
    Schedule,
    SegmentMemo,
    allocate,
    schedule,
    support_matrix,
    upper_bound,
)
from solver.ggml.ops import Tensor
from solver.ggml.sched import Backend, split_graph
from solver.gguf.inventory import Inventory
from solver.llama.compute_graph import (
    BuiltGraph,
    CacheParams,
    ComputeNotModelled,
    GraphModel,
    Ubatch,
    build_graph,
    runtime_graphs,
)
from solver.llama.workload import ComputeWorkload
from solver.quantities import CPU

__all__ = [
    "ComputeEstimate",
    "ComputeNotModelled",
    "OpFallback",
    "estimate_compute",
    "reset_caches",
]

TENSOR_ALIGNMENT = 32  # ggml-impl.h
CUDA_ALIGNMENT = 128  # ggml-cuda.cu
MATRIX_ROW_PADDING = 512  # ggml-cuda/common.cuh
OP_OFFLOAD_MIN_BATCH = 32  # ggml-cuda.cu, GGML_OP_OFFLOAD_MIN_BATCH default
SCHED_MAX_COPIES = 4  # GGML_SCHED_MAX_COPIES (pipeline parallelism)


class OpFallback(BaseModel):
    """Nodes of one op that CUDA refuses (``solver.ggml.cuda_ops``), run on another device."""

    model_config = ConfigDict(frozen=True)

    op: str = Field(description="ggml op, e.g. CONCAT")
    device: str = Field(description="the device the scheduler runs them on (CPU, RPC0 ...)")
    nodes: int = Field(description="nodes of the larger reserve graph")

    @property
    def text(self) -> str:
        return f"{self.nodes} {self.op} node{'s' if self.nodes != 1 else ''} on {self.device}"


class ComputeEstimate(BaseModel):
    """Compute buffers llama-server reserves, per device, and its graph split counts."""

    model_config = ConfigDict(frozen=True)

    bytes_by_device: dict[str, int] = Field(
        description="compute buffer bytes per device (sched_reserve: <DEV> compute buffer size)"
    )
    peak_bytes_by_device: dict[str, int] = Field(
        description="the most each buffer grows to while serving, at a full cache: "
        "bytes_by_device where the graphs do not grow with the positions cached"
    )
    graph_splits: int = Field(description="splits of the prompt-processing graph")
    graph_splits_tg: int = Field(description="splits of the token-generation graph")
    splits_by_batch: dict[int, int] = Field(description="n_tokens of a reserve graph -> splits")
    pp_bytes_by_device: dict[str, int] = Field(description="prompt graph alone")
    tg_bytes_by_device: dict[str, int] = Field(
        description="token-generation graph alone (an upper bound when tg_exact is False)"
    )
    tg_exact: bool = Field(
        default=True,
        description="False: the tg graph was not replayed, its bound is below the prompt graph",
    )
    n_copies: int = Field(description="scheduler copies (4 with pipeline parallelism)")
    approximate: bool = Field(
        description="the launch uses what is not modelled: -sm row/tensor, --embeddings pooling"
    )
    fallbacks: tuple[OpFallback, ...] = Field(
        default=(), description="ops a CUDA device refuses (supports_op) and where they run"
    )


# --- backend models ----------------------------------------------------------------------


def device_kind(device: str) -> str:
    if device == CPU or device.startswith("CPU"):
        return CPU
    if device.startswith("CUDA"):
        return "CUDA"
    if device.startswith("RPC"):
        return "RPC"
    return "GPU"


def _cuda_alloc_size(t: Tensor) -> int:
    """ggml_backend_cuda_buffer_type_get_alloc_size."""
    size = t.nbytes()
    if t.op == "FLASH_ATTN_EXT":
        size = _cuda_fattn_alloc_size(t)
    if g.is_quantized(t.type):
        ne0 = t.ne[0]
        if ne0 % MATRIX_ROW_PADDING:
            size += g.row_size(t.type, MATRIX_ROW_PADDING - ne0 % MATRIX_ROW_PADDING)
    return size


def _cuda_fattn_alloc_size(dst: Tensor) -> int:
    """ggml_cuda_flash_attn_ext_get_alloc_size: F16 copies of a non-F16 K/V.

    Kernel choice is approximated: a single-token-per-sequence batch uses the vector kernel
    (which reads quantized K/V directly), anything larger the tensor-core kernel (F16 only).
    """
    q, k, v = dst.src[0], dst.src[1], dst.src[2]
    end = dst.nbytes()
    need_f16 = q.ne[1] > 2
    if need_f16 and k.type != g.F16:
        end = (end + 127) // 128 * 128 + k.n_elements * 2
    v_is_k = v.view_src is not None and v.view_src is k.view_src and v.view_offs == k.view_offs
    if need_f16 and v.type != g.F16 and not v_is_k:
        end = (end + 127) // 128 * 128 + v.n_elements * 2
    return end


def _cuda_offload(t: Tensor) -> bool:
    """ggml_backend_cuda_device_offload_op: batch size of the op >= 32."""
    if t.op == "GET_ROWS":
        return False
    if t.op == "MUL_MAT":
        batch = t.ne[1]
    elif t.op in ("MUL_MAT_ID", "ROPE"):
        batch = t.ne[2]
    else:
        batch = t.ne[1] * t.ne[2] * t.ne[3]
    return batch >= OP_OFFLOAD_MIN_BATCH


def _cuda_layout_size(t: Tensor) -> int:
    """CUDA alloc size of a tensor's layout alone (a scheduler copy has op NONE)."""
    size = t.nbytes()
    if g.is_quantized(t.type) and t.ne[0] % MATRIX_ROW_PADDING:
        size += g.row_size(t.type, MATRIX_ROW_PADDING - t.ne[0] % MATRIX_ROW_PADDING)
    return size


SIZE_FUNCTIONS = {
    "plain": Tensor.nbytes,
    "cuda": _cuda_alloc_size,
    "cuda_layout": _cuda_layout_size,
}
SUPPORT_FUNCTIONS = {"cuda": cuda_ops.supports_op}


def backend_spec(device: str) -> BackendSpec:
    """The compiled engine's view of a backend (same facts as ``make_backend``)."""
    if device_kind(device) == "CUDA":
        return BackendSpec(kind="cuda", copy_kind="cuda_layout", alignment=CUDA_ALIGNMENT,
                           offloads=True, supports="cuda", family="CUDA")  # fmt: skip
    return BackendSpec(kind="plain", copy_kind="plain", alignment=TENSOR_ALIGNMENT, offloads=False)


def make_backend(device: str) -> Backend:
    kind = device_kind(device)
    if kind == CPU:
        return Backend(
            device=device,
            buft=BufferType(device, TENSOR_ALIGNMENT, Tensor.nbytes),
            host_weights=True,
        )
    if kind == "CUDA":
        return Backend(
            device=device,
            buft=BufferType(device, CUDA_ALIGNMENT, _cuda_alloc_size),
            supports_op=cuda_ops.supports_op,
            offload_op=_cuda_offload,
            family="CUDA",
        )
    # RPC to a CPU server, or an unknown GPU: plain sizes and ggml's default alignment
    return Backend(device=device, buft=BufferType(device, TENSOR_ALIGNMENT, Tensor.nbytes))


# --- graphs --------------------------------------------------------------------------------


def cache_params(workload: ComputeWorkload, *, fused_hc_post: bool = True) -> CacheParams:
    """The context's KV-cache switches, as the graph builder reads them."""
    try:
        type_k = int(g.T[workload.type_k.upper()])
        type_v = int(g.T[workload.type_v.upper()])
    except KeyError as exc:
        raise BadInput(f"unknown KV cache type {exc.args[0]}") from exc
    return CacheParams(
        flash_attn=workload.flash_attn,
        type_k=type_k,
        type_v=type_v,
        v_trans=workload.v_trans,
        kv_unified=workload.kv_unified,
        n_stream=workload.n_stream,
        kv_size=workload.n_ctx_seq,
        kv_size_swa=workload.kv_cells_swa or workload.n_ctx_seq,
        offload_kqv=workload.offload_kqv,
        n_seq_max=workload.n_seq_max,
        n_ubatch=workload.n_ubatch,
        n_ctx=workload.n_ctx,
        fused_hc_post=fused_hc_post,
    )


def reserve_ubatches(workload: ComputeWorkload) -> tuple[Ubatch, Ubatch]:
    """The prompt and generation ubatches of llama_context::sched_reserve."""
    n_seqs = workload.n_seq_max
    n_tokens = min(workload.n_ctx, workload.n_ubatch)
    pp = Ubatch(n_tokens, n_seqs, min(n_tokens, workload.n_outputs_max))
    tg = Ubatch(n_seqs, n_seqs, n_seqs)
    return pp, tg


@dataclass
class _Prepared:
    inventory: weakref.ref[Inventory]  # whose graphs these are (not kept alive by the cache)
    pp: BuiltGraph
    tg: BuiltGraph
    n_layer: int
    arch: str
    pp_compiled: CompiledGraph
    tg_compiled: CompiledGraph
    runtime_compiled: list[CompiledGraph]  # compute_graph.runtime_graphs, at a full cache
    owner_keys: list[tuple]  # every weight / KV owner of both graphs
    results: dict  # placement signature -> ComputeEstimate
    memos: dict  # (graph, backends, copies) -> memoised segment allocations


# Keyed by the inventory's identity: an inventory is immutable, but hashing its content on
# every call would cost more than a placement. An id is only unique while its object lives,
# so an entry holds a weak reference and counts only while that still is this inventory;
# entries of collected inventories are dropped (their graphs are large).
_cache: dict[tuple[int, ComputeWorkload, bool], _Prepared] = {}
_cache_lock = threading.Lock()
_CACHE_MAX = 16


def prepare(
    inventory: Inventory, workload: ComputeWorkload, *, fused_hc_post: bool = True
) -> _Prepared:
    """Build (or fetch) the two reserve graphs of this model and workload. ``-ngl`` does not
    change the graphs (only the scheduler's full-offload pins, which ``estimate_compute``
    keys its results by), so plans that differ in it share them. ``fused_hc_post``: the
    graphs with the fused hyper-connection post (where llama.cpp's probe keeps it)."""
    key = (id(inventory), workload.model_copy(update={"n_gpu_layers": 0}), fused_hc_post)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and hit.inventory() is inventory:
        return hit
    model = GraphModel.of(inventory)
    cache = cache_params(workload, fused_hc_post=fused_hc_post)
    pp_ub, tg_ub = reserve_ubatches(workload)
    pp = build_graph(model, cache, pp_ub)
    tg = build_graph(model, cache, tg_ub)

    def compiled(built: BuiltGraph) -> CompiledGraph:
        cg = CompiledGraph(
            built.graph, built.graph.node_segments, SIZE_FUNCTIONS, SUPPORT_FUNCTIONS
        )
        cg.set_offloadable(_cuda_offload)
        cg.pin_layers = built.pin_layers
        return cg

    pp_cg, tg_cg = compiled(pp), compiled(tg)
    runtime_cg = [
        compiled(build_graph(model, c, ub)) for c, ub in runtime_graphs(model, cache, pp_ub, tg_ub)
    ]
    graphs = [pp_cg, tg_cg, *runtime_cg]
    owner_keys = list(dict.fromkeys(owner for cg in graphs for owner in cg.owners))
    index = {k: i for i, k in enumerate(owner_keys)}
    for cg in graphs:
        cg.owner_map = np.array([index[k] for k in cg.owners] or [0], dtype=np.int64)
    prepared = _Prepared(
        inventory=weakref.ref(inventory),
        pp=pp,
        tg=tg,
        n_layer=model.hparams.n_layer,
        arch=model.hparams.arch,
        pp_compiled=pp_cg,
        tg_compiled=tg_cg,
        runtime_compiled=runtime_cg,
        owner_keys=owner_keys,
        results={},
        memos={},
    )
    with _cache_lock:
        for old in [k for k, p in _cache.items() if p.inventory() is None]:
            del _cache[old]
        if len(_cache) >= _CACHE_MAX:
            _cache.pop(next(iter(_cache)))
        _cache[key] = prepared
    return prepared


# --- placement -> backends ---------------------------------------------------------------


def _order_backends(devices: Sequence[str]) -> list[str]:
    """llama.cpp's scheduler order: the model's GPU/RPC devices as given, the CPU last."""
    gpus = [d for d in devices if device_kind(d) != CPU]
    return [*dict.fromkeys(gpus), CPU]


def _layer_devices(
    n_layer: int,
    workload: ComputeWorkload,
    tensor_devices: Mapping[str, str],
    layer_kv_devices: Sequence[str],
) -> list[str]:
    """model.dev_layer(il): the KV device when KV is offloaded, else the layer's norm's
    (attn_norm's; olmo2 has none: the first of its other norms by name)."""
    if workload.offload_kqv:
        return list(layer_kv_devices)
    norms: dict[int, list[str]] = {}
    for name in tensor_devices:
        parts = name.split(".")
        if parts[0] == "blk" and name.endswith("norm.weight"):
            norms.setdefault(int(parts[1]), []).append(name)

    def device(il: int) -> str:
        names = norms.get(il)
        if not names:
            return layer_kv_devices[il]
        attn_norm = f"blk.{il}.attn_norm.weight"
        return tensor_devices[attn_norm if attn_norm in names else min(names)]

    return [device(il) for il in range(n_layer)]


def _pins(
    built: BuiltGraph,
    backends: Sequence[Backend],
    layer_backend: Sequence[int],
    full_offload: bool,
) -> dict[int, int]:
    """llama.cpp's ggml_backend_sched_set_tensor_backend calls for this graph (by node uid);
    graph_get_cb pins a layer's norm only to a backend that supports it."""
    pins: dict[int, int] = {}
    cpu = len(backends) - 1
    pin_layers = built.pin_layers or full_offload
    for node in built.graph.nodes:
        pin = node.pin
        if pin is None:
            continue
        if pin[0] == "cpu":
            pins[node.uid] = cpu
        elif pin_layers and backends[b := layer_backend[pin[1]]].supports_op(node):
            pins[node.uid] = b
    return pins


@dataclass(frozen=True)
class _Resolved:
    """A placement resolved against one model: backends and where every buffer lives."""

    order: list[str]
    owner_vec: np.ndarray  # backend of each of prepared.owner_keys
    layer_backend: list[int]
    full_offload: bool
    n_copies: int


def _resolve(
    prepared: _Prepared,
    workload: ComputeWorkload,
    tensor_devices: Mapping[str, str],
    layer_kv_devices: Sequence[str],
    devices: Sequence[str],
) -> _Resolved:
    n_layer = prepared.n_layer
    if len(layer_kv_devices) < n_layer:
        raise BadInput(
            f"layer_kv_devices has {len(layer_kv_devices)} entries, the model {n_layer} layers"
        )
    order = _order_backends(devices)
    index = {d: i for i, d in enumerate(order)}
    cpu = index[CPU]
    output_device = tensor_devices.get(
        "output.weight", tensor_devices.get("output_norm.weight", CPU)
    )

    def backend_of(dev: str, what: str) -> int:
        b = index.get(dev)
        if b is None:
            if device_kind(dev) == CPU:
                return cpu
            raise BadInput(f"{what} is placed on {dev}, not among the devices {list(devices)}")
        return b

    layer_devs = _layer_devices(n_layer, workload, tensor_devices, layer_kv_devices)
    owners = []
    for kind, what in prepared.owner_keys:
        if kind == "dup":  # a TENSOR_DUPLICATED weight: in the layer's own buffer
            owners.append(backend_of(layer_devs[what], f"layer {what}"))
            continue
        if kind == "kv":
            owners.append(backend_of(layer_kv_devices[what], f"KV of layer {what}"))
            continue
        dev = tensor_devices.get(what)
        if dev is None:
            if what != "output.weight":
                raise BadInput(f"no device given for tensor {what}")
            dev = output_device
        owners.append(index[dev] if dev in index else backend_of(dev, f"tensor {what}"))
    layer_backend = [index.get(d, cpu) for d in layer_devs]
    if workload.n_gpu_layers > 0:
        full_offload = workload.n_gpu_layers > n_layer
    else:
        full_offload = all(device_kind(d) != CPU for d in [*layer_devs, output_device])
    if len(order) == 1:
        full_offload = True  # CPU only: -ngl defaults to all layers (n_gpu_layers = n_layer + 1)
    n_copies = SCHED_MAX_COPIES if workload.pipeline_parallel else 1
    return _Resolved(order, np.array(owners, dtype=np.int64), layer_backend, full_offload, n_copies)


def _schedule(cg: CompiledGraph, r: _Resolved, op_offload: bool) -> Schedule:
    """The scheduler's passes over one reserve graph for this placement, with llama.cpp's
    pins (the layer pins where the graph or the full offload applies them, and the backend
    supports the node) and the ops each backend refuses."""
    n_backends = len(r.order)
    specs = tuple(backend_spec(d) for d in r.order)
    owner_backend = r.owner_vec[cg.owner_map]
    offload_targets = [i for i, s in enumerate(specs[:-1]) if s.offloads] if op_offload else []
    supported = support_matrix(cg, specs, owner_backend)
    pins: dict[int, int] = {}
    pin_layers = cg.pin_layers or r.full_offload
    for pos, pin in cg.pins:
        if pin[0] == "cpu":
            pins[pos] = n_backends - 1
        elif pin_layers and (supported is None or supported[r.layer_backend[pin[1]], pos]):
            pins[pos] = r.layer_backend[pin[1]]
    return schedule(cg, owner_backend, n_backends, offload_targets, pins, supported)


@dataclass(frozen=True)
class _Reserved:
    """One reserve graph scheduled and allocated."""

    sizes: list[int]  # bytes per backend
    splits: int
    fallbacks: dict[tuple[str, str], int]  # (op, device) -> nodes CUDA refuses, run there
    exact: bool = True  # False: ``sizes`` is an upper bound


def _fallbacks(
    refused: Iterable[tuple[str, int]], order: Sequence[str]
) -> dict[tuple[str, str], int]:
    """(op, backend) of each compute node CUDA refuses, counted by op and the device that
    runs it (the scheduler's fallback, which costs splits, copies and that device's buffer);
    empty without a CUDA device."""
    out: dict[tuple[str, str], int] = {}
    if any(device_kind(d) == "CUDA" for d in order):
        for op, b in refused:
            out[(op, order[b])] = out.get((op, order[b]), 0) + 1
    return out


def _refused_nodes(nodes: Sequence[Tensor], node_backend: Sequence[int]) -> list[tuple[str, int]]:
    """The readable path's compute nodes that CUDA refuses, with their backends."""
    return [
        (n.op, b)
        for n, b in zip(nodes, node_backend, strict=True)
        if n.op not in g.VIEW_OPS and n.op != "NONE" and not cuda_ops.supports_op(n)
    ]


def _merge_fallbacks(*graphs: dict[tuple[str, str], int]) -> tuple[OpFallback, ...]:
    """Both reserve graphs' fallbacks, each (op, device) with the larger graph's count."""
    merged: dict[tuple[str, str], int] = {}
    for fallbacks in graphs:
        for key, n in fallbacks.items():
            merged[key] = max(merged.get(key, 0), n)
    return tuple(OpFallback(op=op, device=dev, nodes=n) for (op, dev), n in sorted(merged.items()))


def _reserve_compiled(
    prepared: _Prepared,
    cg: CompiledGraph,
    r: _Resolved,
    op_offload: bool,
    bound_against: Sequence[int] | None = None,
) -> _Reserved:
    """Schedule and allocate one reserve graph.

    With ``bound_against`` (the prompt graph's sizes), the allocation is skipped when an upper
    bound (every tensor of a backend allocated side by side) already proves this graph
    smaller on every backend; the bound is returned and ``exact`` is False.
    """
    specs = tuple(backend_spec(d) for d in r.order)
    sched = _schedule(cg, r, op_offload)
    fallbacks = {}
    if any(s.supports == "cuda" for s in specs):
        refused = np.flatnonzero(~cg.supported("cuda") & ~cg.is_view_op).tolist()
        fallbacks = _fallbacks(((cg.ops[p], int(sched.bid[p])) for p in refused), r.order)
    if bound_against is not None:
        bound = upper_bound(cg, sched, specs, r.n_copies)
        if all(b <= a for a, b in zip(bound_against, bound, strict=True)):
            return _Reserved(bound, sched.n_splits, fallbacks, exact=False)
    memo = prepared.memos.setdefault((id(cg), specs, r.n_copies), SegmentMemo())
    sizes = allocate(cg, sched, specs, r.n_copies, memo)
    return _Reserved(sizes, sched.n_splits, fallbacks)


def flash_attn_on_layer_devices(
    inventory: Inventory,
    workload: ComputeWorkload,
    tensor_devices: Mapping[str, str],
    layer_kv_devices: Sequence[str],
    devices: Sequence[str],
) -> bool:
    """llama_context::resolve_fused_ops for ``-fa auto`` (its first probe): whether every
    FLASH_ATTN_EXT node of the one-token-per-sequence graph (the generation graph's shape) is
    scheduled on its layer's device (``model.dev_layer(il)``); else llama.cpp disables flash
    attention ("Flash Attention is assigned to device CPU (usually due to missing support)"),
    as when -nkvo leaves the KV cache on the CPU and the attention's neighbours there too
    (lfm2). ``workload`` has flash attention on."""
    prepared = prepare(inventory, workload)
    r = _resolve(prepared, workload, tensor_devices, layer_kv_devices, devices)
    cg = prepared.tg_compiled
    # a node's layer: its segment less one (the graph functions start segment 1 + il per
    # layer; the FA node carries no callback name, so no il of its own)
    layers = (cg.segments[: cg.n_nodes] - 1).tolist()
    n_layer = len(r.layer_backend)
    attention = [(pos, layers[pos]) for pos, t in enumerate(cg.tensors[: cg.n_nodes])
                 if t.op == "FLASH_ATTN_EXT" and 0 <= layers[pos] < n_layer]  # fmt: skip
    if not attention:
        return True
    sched = _schedule(cg, r, workload.op_offload)
    return all(sched.bid[pos] == r.layer_backend[il] for pos, il in attention)


# resolve_fused_ops' order: each probe runs on the graph the earlier ones left
_HC_PROBES = ("DSV4_HC_PRE", "DSV4_HC_COMB", "DSV4_HC_POST")


def _hc_post_fused(prepared: _Prepared, r: _Resolved, op_offload: bool) -> bool:
    """llama_context::resolve_fused_ops for the hyper-connection ops: whether every fused
    node of the one-token-per-sequence graph is scheduled on its layer's device
    (``model.dev_layer(il)``). False where only the post op fails (then it is disabled);
    a failed pre or comb probe is refused."""
    cg = prepared.tg_compiled
    fused = [(pos, t.op, t.il) for pos, t in enumerate(cg.tensors[: cg.n_nodes])
             if t.op in _HC_PROBES]  # fmt: skip
    if not fused:
        return True
    sched = _schedule(cg, r, op_offload)
    for probe in _HC_PROBES:
        moved = [il for pos, op, il in fused if op == probe
                 and sched.bid[pos] != r.layer_backend[il]]  # fmt: skip
        if moved and probe != "DSV4_HC_POST":
            raise ComputeNotModelled(
                prepared.arch, f"llama.cpp would disable the fused {probe} (layer {moved[0]})"
            )
        if moved:
            return False
    return True


def _reserve_reference(
    prepared: _Prepared, built: BuiltGraph, r: _Resolved, op_offload: bool
) -> _Reserved:
    """The same reserve through the readable ports (solver.ggml.sched, solver.ggml.alloc)."""
    backends = [make_backend(d) for d in r.order]

    owner_backend = dict(zip(prepared.owner_keys, r.owner_vec.tolist(), strict=True))

    def buffer_backend(t: Tensor) -> int:
        if t.dup_layer is not None:
            return owner_backend[("dup", t.dup_layer)]
        key = ("w", t.weight) if t.weight is not None else ("kv", t.kv_layer)
        return owner_backend[key]

    pins = _pins(built, backends, r.layer_backend, r.full_offload)
    res = split_graph(
        built.graph.nodes,
        built.graph.leafs,
        backends,
        buffer_backend,
        pins,
        op_offload=op_offload,
        n_copies=r.n_copies,
    )
    sizes = reserve(
        res.nodes,
        res.node_srcs,
        res.leafs,
        res.node_backend,
        res.leaf_backend,
        [b.buft for b in backends],
        res.extra_flags,
    )
    refused = _refused_nodes(res.nodes, res.node_backend)
    return _Reserved(sizes, res.n_splits, _fallbacks(refused, r.order))


def estimate_compute(
    inventory: Inventory,
    workload: ComputeWorkload,
    tensor_devices: Mapping[str, str],
    layer_kv_devices: Sequence[str],
    devices: Sequence[str],
    *,
    reference: bool = False,
) -> ComputeEstimate:
    """Predict ``sched_reserve``'s compute buffer per device and its graph splits.

    ``tensor_devices`` maps every GGUF tensor name to the device holding it (a tied output
    head may be given as ``output.weight`` even if the file has no such tensor; otherwise it
    follows ``output_norm.weight``). ``layer_kv_devices[il]`` is the device of layer il's KV
    cache. ``devices`` lists the devices in llama.cpp's order (``CPU``, ``CUDA0``, ``RPC0``...).
    ``reference=True`` runs the readable ports instead of the compiled engine (for tests).
    """
    prepared = prepare(inventory, workload)
    r = _resolve(prepared, workload, tensor_devices, layer_kv_devices, devices)
    if not _hc_post_fused(prepared, r, workload.op_offload):
        prepared = prepare(inventory, workload, fused_hc_post=False)
        r = _resolve(prepared, workload, tensor_devices, layer_kv_devices, devices)
    key = (
        tuple(r.order),
        r.owner_vec.tobytes(),
        tuple(r.layer_backend),
        r.full_offload,
        r.n_copies,
    )
    if not reference:
        hit = prepared.results.get(key)
        if hit is not None:
            return hit
    if reference:
        pp = _reserve_reference(prepared, prepared.pp, r, workload.op_offload)
        tg = _reserve_reference(prepared, prepared.tg, r, workload.op_offload)
    else:
        pp = _reserve_compiled(prepared, prepared.pp_compiled, r, workload.op_offload)
        tg = _reserve_compiled(
            prepared, prepared.tg_compiled, r, workload.op_offload, bound_against=pp.sizes
        )
    order = r.order
    total = [max(a, b) for a, b in zip(pp.sizes, tg.sizes, strict=True)]
    peak = total
    for cg in prepared.runtime_compiled:
        sizes = _reserve_compiled(prepared, cg, r, workload.op_offload).sizes
        peak = [max(a, b) for a, b in zip(peak, sizes, strict=True)]
    estimate = ComputeEstimate(
        bytes_by_device=dict(zip(order, total, strict=True)),
        peak_bytes_by_device=dict(zip(order, peak, strict=True)),
        graph_splits=pp.splits,
        graph_splits_tg=tg.splits,
        splits_by_batch={prepared.pp.n_tokens: pp.splits, prepared.tg.n_tokens: tg.splits},
        pp_bytes_by_device=dict(zip(order, pp.sizes, strict=True)),
        tg_bytes_by_device=dict(zip(order, tg.sizes, strict=True)),
        tg_exact=tg.exact,
        n_copies=r.n_copies,
        approximate=workload.split_mode not in ("layer", "none") or workload.embeddings,
        fallbacks=_merge_fallbacks(pp.fallbacks, tg.fallbacks),
    )
    if not reference:
        if len(prepared.results) > 4096:
            prepared.results.clear()
        prepared.results[key] = estimate
    return estimate


def reset_caches(*, keep_graphs: bool = False) -> None:
    """Forget cached results (benchmarks measure cold starts with it).

    ``keep_graphs`` keeps the built graphs and only forgets placements and memoised segments.
    """
    with _cache_lock:
        if not keep_graphs:
            _cache.clear()
            return
        for prepared in _cache.values():
            prepared.results.clear()
            prepared.memos.clear()
