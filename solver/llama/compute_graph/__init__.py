"""llama.cpp's compute graph, rebuilt node for node from a model's hparams and weights.

``build_graph`` mirrors ``llama_model::build_graph`` for one worst-case ubatch
(``llama_context::graph_reserve``): the architecture's graph function in
``src/models/<arch>.cpp`` plus the shared pieces of ``src/llama-graph.cpp`` (input embedding
with its three select branches, attention with the KV cache of ``src/llama-kv-cache.cpp``,
dense and mixture-of-experts FFNs). Node order, views and in-place candidates follow the C++
so the allocator replay in ``solver.ggml.alloc`` reserves the same bytes.

In: a ``GraphModel`` (``ModelHparams`` of ``solver.llama.hparams`` plus each weight's type and
shape), the context's ``CacheParams`` and a ``Ubatch``. Out: a ``BuiltGraph``. Refused:
``ComputeNotModelled`` for an architecture without a recipe (never priced as another
architecture's graph) and for layers no recipe can build. Optional tensors (biases, Q/K norms,
shared experts, a MoE router) are taken from the weights the way llama.cpp's loader finds
them.

Modelled, one recipe each (``recipes.RECIPES``; popular architectures still without one are
in ``recipes``' docstring): apertus, bailingmoe2, cohere2, deepseek2, deepseek32, deepseek4,
dots1, ernie4_5-moe, exaone4, gemma3, gemma4, glm-dsa, glm4, glm4moe, glm5-next, gpt-oss,
granitehybrid, hunyuan-moe, kimi-linear, lfm2, lfm2moe, llama, llama4, mimo2, minimax-m2,
minimax-m3, mistral3, mistral4, nemotron_h_moe, olmo2, phi3, qwen2, qwen2moe, qwen3, qwen35,
qwen35moe, qwen3moe, qwen3next, qwen3vl, qwen3vlmoe, seed_oss, smollm3, step35.

Modules, lower first:

- ``builder``: ``GraphBuilder`` (``llm_graph_context``): weights, KV tensors, callbacks,
  inputs, norm and matmul primitives; the records ``GraphModel``, ``CacheParams``, ``Ubatch``.
- ``inputs``: token embedding, positions, output ids, KQ masks and KV-cache indices.
- ``kv_ops``: the KV cache's copies and views, the Hadamard rotation of quantized caches.
- ``attention``: QKV projections, attention over the cache, standard and MLA blocks.
- ``ffn``: dense FFN, mixture-of-experts FFN (router, experts, sum), shared experts.
- ``dsa``: deepseek32's and glm-dsa's sparse attention: the lightning indexer over its own K
  cache, MLA through the top-k mask (glm-dsa's "shared" layers reuse a full layer's top-k);
  the lightning indexer's pieces (query, key, weights, fused scores and top-k), which
  ``deepseek4`` and ``glm5_next`` reuse.
- ``msa``: minimax-m3's sparse attention: an indexer over its own K cache picks blocks of
  positions, then one grouped flash attention over the gathered blocks (decode) or the
  cache masked to them (batch).
- ``recurrent``: the recurrent state at reserve (state-copy input, per-layer state rows,
  ``build_rs``, the convolution window, the fused delta rule), shared by the hybrids below.
- ``output``: the output head of the graph functions that seed an MTP block.
- ``qwen35``: the graph function of qwen35/qwen35moe (gated DeltaNet layers with their
  recurrent state, gated attention), a recipe's own ``build``.
- ``kimi_linear``: kimi-linear's KDA block (per-Q/K/V short convolutions over one conv-state
  row, the fused delta rule), a recipe's ``recurrent`` block beside MLA layers.
- ``lfm2``: lfm2's / lfm2moe's gated short-convolution block (``recurrent``'s conv window
  over the saved columns, ``SSM_CONV``), a recipe's ``recurrent`` block beside attention.
- ``qwen3next``: qwen3next's blocks (the legacy fused projection, repeated Q/K heads) in
  ``qwen35``'s hybrid skeleton.
- ``mamba2``: the Mamba-2 mixer (``SSM_CONV``, ``SSM_SCAN`` over the cached states), a
  recipe's ``recurrent`` block (granitehybrid) and nemotron_h's.
- ``nemotron_h``: the graph function of nemotron_h_moe (Mamba-2 mixers, attention, MoE FFNs).
- ``llama4``: the graph function of llama4 (chunked and global layers, dense and MoE FFNs
  alternating).
- ``gemma4``: the graph function of gemma4 (two head widths, shared KV, per-layer embeddings).
- ``hyper_connections``: DeepSeek V4's hyper-connection streams around a block (the fused
  ``DSV4_HC_PRE`` / ``DSV4_HC_COMB`` / ``DSV4_HC_POST``, the post op unfused where
  llama.cpp's probe disables it), the streams' head.
- ``dsv4_cache``: ``llama_kv_cache_dsv4``'s graph inputs (raw window, compressed caches,
  compressor states) and a layer's compressors.
- ``deepseek4``: the graph function of deepseek4 (hyper-connections, the raw / CSA with the
  lightning indexer / HCA attention per compression ratio, hash-routed MoE).
- ``glm5_next``: the graph function of glm5-next (hyper-connections, kimi-linear's KDA
  blocks, NoPE MLA over the k-pool indexer's selection, its pooled-key cache; at ``-ub`` 16
  or less the selected latents gathered).
- ``recipes``: ``ArchRecipe`` per architecture and the transformer template over the blocks.
- ``reserve``: ``build_graph``, the entry; ``runtime_graphs``, the graphs built while serving
  that outgrow the reserve's (minimax-m3's MSA at a full cache).
"""

from solver.llama.compute_graph.builder import CacheParams, GraphModel, Ubatch
from solver.llama.compute_graph.reserve import (
    BuiltGraph,
    ComputeNotModelled,
    build_graph,
    runtime_graphs,
)

__all__ = [
    "BuiltGraph",
    "CacheParams",
    "ComputeNotModelled",
    "GraphModel",
    "Ubatch",
    "build_graph",
    "runtime_graphs",
]
