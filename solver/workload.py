# CONTRACT (shared with helper `compute`, solver/compute_buffer.py): this file, solver/workload.py,
# defines ``ComputeWorkload``. Fields, units and meaning are fixed; add fields only at the end with
# defaults. ``solver.llama_args.resolve_workload`` builds it from a LaunchConfig and an Inventory.
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
output buffer and compute graphs. The memory model (``solver.memory``) and the compute-buffer
model (``solver.compute_buffer``) both read it, so both see the same padded numbers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
