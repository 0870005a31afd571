# CONTRACT (shared with solver/llama/compute_buffer.py and solver/placement/setting.py): this
# file defines ``ComputeWorkload``. Fields, units and meaning are fixed; add fields only at the end
# with defaults. ``resolve_workload`` below builds it from a LaunchConfig and ModelHparams.
#
#   n_ctx              int   cells of context after llama_context's padding (GGML_PAD(n_ctx, 256);
#                            non-unified: n_ctx_seq * n_seq_max)
#   n_ctx_seq          int   cells per KV stream (kv_size of the non-SWA cache)
#   n_batch            int   cparams.n_batch (min(n_ctx, -b) for causal models)
#   n_ubatch           int   cparams.n_ubatch (min(n_batch, -ub)); worst-case graph tokens are
#                            min(n_ctx, n_ubatch)
#   n_seq_max          int   sequences (server slots, -np resolved; auto = 4)
#   n_stream           int   KV streams: 1 if kv_unified else n_seq_max
#   n_outputs_max      int   cparams.n_outputs_max (server: min(n_batch, n_seq_max) without
#                            speculative decoding)
#   flash_attn         bool  FA after llama.cpp's `auto` resolution (auto -> on where every
#                            device holding attention supports it)
#   flash_attn_mode    str   "on" | "off" | "auto" as the user asked
#   v_trans            bool  V cache stored transposed (only with FA explicitly off)
#   type_k, type_v     str   ggml type names of the K and V cache ("F16", "Q8_0", ...)
#   swa_full           bool  --swa-full
#   kv_unified         bool  one KV stream shared by all sequences
#   offload_kqv        bool  KV (and KQV ops) on the layer's device; False with -nkvo
#   op_offload         bool  --op-offload (default True)
#   kv_cells_swa       int   cells of the sliding-window cache per stream (0 if no SWA layers)
#   pipeline_parallel  bool  llama.cpp enables pipeline parallelism (more compute copies)
#   n_gpu_layers       int   resolved -ngl (n_layer + 1 means all, output included)
#   split_mode         str   "none" | "layer" | "row" | "tensor"
#   embeddings         bool  --embeddings (output buffer and graph differ)
"""The workload a llama-server launch puts on the compute graph, resolved as llama.cpp does.

``ComputeWorkload`` is the context-side half of a launch: sizes and switches that
``llama_context`` derives from the command line and the model before it reserves its KV cache,
output buffer and compute graphs. The memory model (``solver.llama.memory``) and the compute-buffer
model (``solver.llama.compute_buffer``) both read it, so both see the same padded numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from solver.errors import BadInput
from solver.ggml.dtypes import block_and_type_size, is_quantized
from solver.llama.args import UINT32_MAX, LaunchConfig
from solver.llama.hparams import MemoryKind, ModelHparams


class ComputeWorkload(BaseModel):
    """Context parameters after llama.cpp's own resolution (see the CONTRACT comment above)."""

    model_config = ConfigDict(frozen=True)

    n_ctx: int = Field(description="cells, padded to 256 (llama_context)")
    n_ctx_seq: int = Field(description="cells per KV stream")
    n_batch: int
    n_ubatch: int
    n_seq_max: int
    n_stream: int = Field(description="1 if kv_unified else n_seq_max")
    n_outputs_max: int
    flash_attn: bool
    flash_attn_mode: Literal["on", "off", "auto"] = "auto"
    v_trans: bool = Field(description="V cache transposed (FA explicitly off)")
    type_k: str = "F16"
    type_v: str = "F16"
    swa_full: bool = False
    kv_unified: bool = False
    offload_kqv: bool = True
    op_offload: bool = True
    kv_cells_swa: int = Field(default=0, description="SWA cache cells per stream, 0 if none")
    pipeline_parallel: bool = False
    n_gpu_layers: int = 0
    split_mode: Literal["none", "layer", "row", "tensor"] = "layer"
    embeddings: bool = False


# --- resolution: what server.cpp, common_fit and llama_context do to the command line -------

GGML_KQ_PAD = 256  # llama_context pads n_ctx (and n_ctx_seq) to 256; so is the SWA cache

# ggml-cuda fattn.cu: (K head size, V head size) pairs with a flash-attention kernel
CUDA_FLASH_ATTN_HEADS = frozenset(
    {(d, d) for d in (40, 64, 72, 80, 96, 112, 128, 256, 512)}
    | {(192, 128), (320, 256), (576, 512)}
)


def _pad(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


def resolve_workload(
    config: LaunchConfig,
    hparams: ModelHparams,
    layer_devices: Sequence[str],
    device_kinds: Mapping[str, str],
) -> ComputeWorkload:
    """The context parameters llama.cpp ends up with for this launch.

    ``layer_devices`` is the device of each layer; ``device_kinds`` maps offload device names
    to "CUDA" or "RPC" (the CPU is implicit). Steps, in llama.cpp's order:

    1. server.cpp: ``-np`` < 0 -> 4 slots and a unified KV cache; ``--kv-unified-per-slot``
       sizes an unset context.
    2. server_output_limits: ``n_outputs_max = min(n_batch, slots)`` (no speculation).
    3. common_fit (``--fit on``): an unset context becomes ``n_ctx_train * n_streams``.
    4. llama_context: unset context -> n_ctx_train; n_batch clamped to the context (causal);
       ubatch clamped to the batch; context padded to 256, per stream too when not unified.
    5. llama_init_from_model's checks: MLA needs equal K and V types; a quantized V cache
       forces flash attention on (an error with ``-fa off``); quantized caches need head
       sizes divisible by the block. ``auto`` then resolves to on unless a device holding
       attention lacks a kernel (CUDA head sizes).
    """
    n_parallel, kv_unified, n_ctx = _server_slots(config)
    n_outputs_max = _outputs_max(config, n_parallel)
    n_ctx, n_seq_max, n_stream = _fit_context(config, hparams, n_parallel, kv_unified, n_ctx)
    ctx = _llama_context(config, hparams, n_ctx, n_seq_max, kv_unified)
    flash_mode, flash_attn = _flash_attention(config, hparams, layer_devices, device_kinds)
    n_gpu_layers, pipeline_parallel = _pipeline_parallel(config, hparams, len(device_kinds))
    return ComputeWorkload(
        n_ctx=ctx.n_ctx,
        n_ctx_seq=ctx.n_ctx_seq,
        n_batch=ctx.n_batch,
        n_ubatch=ctx.n_ubatch,
        n_seq_max=n_seq_max,
        n_stream=n_stream,
        n_outputs_max=n_outputs_max,
        flash_attn=flash_attn,
        flash_attn_mode=flash_mode,
        v_trans=flash_mode == "off",
        type_k=config.cache_type_k,
        type_v=config.cache_type_v,
        swa_full=config.swa_full,
        kv_unified=kv_unified,
        offload_kqv=config.kv_offload,
        op_offload=config.op_offload,
        kv_cells_swa=ctx.kv_cells_swa,
        pipeline_parallel=pipeline_parallel,
        n_gpu_layers=n_gpu_layers,
        split_mode=config.split_mode,
        embeddings=False,
    )


def _server_slots(config: LaunchConfig) -> tuple[int, bool, int]:
    """Step 1, server.cpp: (slots, unified KV cache, context; 0 while unset)."""
    n_parallel = config.n_parallel
    kv_unified = config.kv_unified
    if n_parallel < 0:
        n_parallel, kv_unified = 4, True
    n_ctx = config.n_ctx
    if config.kv_unified_per_slot > 0 and n_ctx == 0 and config.fit_min_ctx != UINT32_MAX:
        n_ctx = n_parallel * config.kv_unified_per_slot
    return n_parallel, kv_unified, n_ctx


def _outputs_max(config: LaunchConfig, n_parallel: int) -> int:
    """Step 2, server_output_limits: outputs per batch (no speculative decoding)."""
    return max(1, min(config.n_batch, n_parallel))


def _fit_context(
    config: LaunchConfig, hparams: ModelHparams, n_parallel: int, kv_unified: bool, n_ctx: int
) -> tuple[int, int, int]:
    """Step 3, common_fit: (context, sequences, KV streams); ``--fit`` resolves an unset
    context before it measures anything."""
    n_seq_max = max(1, n_parallel)
    n_stream = 1 if kv_unified else n_seq_max
    if config.fit and n_ctx == 0:
        n_ctx = hparams.n_ctx_train * n_stream
    return n_ctx, n_seq_max, n_stream


class _ContextSizes(NamedTuple):
    """Step 4's sizes, as ``ComputeWorkload`` names them."""

    n_ctx: int
    n_ctx_seq: int
    n_batch: int
    n_ubatch: int
    kv_cells_swa: int


def _llama_context(
    config: LaunchConfig, hparams: ModelHparams, n_ctx: int, n_seq_max: int, kv_unified: bool
) -> _ContextSizes:
    """Step 4, llama_context: context, batch and ubatch clamped and padded, and the cells
    of the sliding-window cache."""
    if n_ctx == 0:
        n_ctx = hparams.n_ctx_train
    n_batch = min(n_ctx, config.n_batch) if hparams.causal_attn else config.n_batch
    n_ubatch = min(n_batch, config.n_ubatch if config.n_ubatch else n_batch)
    n_ctx = _pad(n_ctx, GGML_KQ_PAD)
    if kv_unified:
        n_ctx_seq = n_ctx
    else:
        n_ctx_seq = _pad(n_ctx // n_seq_max, GGML_KQ_PAD)
        n_ctx = n_ctx_seq * n_seq_max
    kv_cells_swa = 0
    if any(layer.is_swa for layer in hparams.layers):
        # llama_kv_cache_dsv4 keeps its raw cache per sequence even when KV is unified
        unified = kv_unified and hparams.memory is not MemoryKind.DSV4
        window = hparams.n_swa * (n_seq_max if unified else 1) + n_ubatch
        kv_cells_swa = n_ctx_seq if config.swa_full else _pad(min(n_ctx_seq, window), GGML_KQ_PAD)
    return _ContextSizes(n_ctx, n_ctx_seq, n_batch, n_ubatch, kv_cells_swa)


def _flash_attention(
    config: LaunchConfig,
    hparams: ModelHparams,
    layer_devices: Sequence[str],
    device_kinds: Mapping[str, str],
) -> tuple[str, bool]:
    """Step 5, llama_init_from_model then llama_context: (flash-attention mode after the
    forced changes, whether it is on); raises BadInput where llama.cpp refuses the caches."""
    flash_mode = config.flash_attn
    if hparams.arch == "grok":
        flash_mode = "off"  # "flash_attn is not compatible with Grok - forcing off"
    # llama_init_from_model: MLA and deepseek4 keep K only, and V must say the same type
    if (hparams.is_mla or hparams.arch == "deepseek4") and (
        config.cache_type_k != config.cache_type_v
    ):
        raise BadInput(
            f"model does not support different K ({config.cache_type_k.lower()}) and "
            f"V ({config.cache_type_v.lower()}) cache types (K-only cache): give -ctk and -ctv "
            "the same"
        )
    v_quantized = is_quantized(config.cache_type_v)
    if v_quantized and flash_mode == "off":
        raise BadInput("quantized V cache requires flash_attn to be enabled")
    if v_quantized:
        flash_mode = "on"  # "enabling flash_attn since it is required for quantized V cache"
    if flash_mode != "off":
        _check_quantized_heads(config, hparams)
    flash_attn = flash_mode != "off"
    if flash_mode == "auto":
        for il, device in enumerate(layer_devices):
            layer = hparams.layers[il]
            if device_kinds.get(device) == "CUDA" and (
                (layer.head_k, layer.head_v) not in CUDA_FLASH_ATTN_HEADS
            ):
                flash_attn = False
    return flash_mode, flash_attn


def _check_quantized_heads(config: LaunchConfig, hparams: ModelHparams) -> None:
    """A quantized K or V cache (with flash attention) needs every layer's head size to be
    a multiple of the type's block; BadInput otherwise."""
    for cache_type, width in (("K", "head_k"), ("V", "head_v")):
        type_name = config.cache_type_k if cache_type == "K" else config.cache_type_v
        block, _ = block_and_type_size(type_name)
        for il in range(hparams.n_layer):
            head = getattr(hparams.layers[il], width)
            if is_quantized(type_name) and head % block:
                raise BadInput(
                    f"{cache_type} cache type {type_name.lower()} with block size {block} "
                    f"does not divide n_embd_head_{cache_type.lower()}={head}"
                )


def _pipeline_parallel(
    config: LaunchConfig, hparams: ModelHparams, n_devices: int
) -> tuple[int, bool]:
    """(resolved -ngl, whether llama_context enables pipeline parallelism: several devices,
    every layer and the output offloaded, layer split, KV offloaded, no -ot overrides)."""
    n_gpu_layers = config.n_gpu_layers if config.n_gpu_layers >= 0 else hparams.n_layer_all + 1
    pipeline_parallel = (
        n_devices > 1
        and n_gpu_layers > hparams.n_layer_all
        and config.split_mode == "layer"
        and config.kv_offload
        and not config.overrides
    )
    return n_gpu_layers, pipeline_parallel
