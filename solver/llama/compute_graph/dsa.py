"""DeepSeek sparse attention (DSA, ``src/models/deepseek32.cpp``, ``glm-dsa.cpp``): MLA over
the cells a lightning indexer picks.

Per layer the indexer projects the compressed query (``qr``) and the layer input into its own
heads and one K head, ropes and Hadamard-rotates both, stores K in its own cache (the
``lid`` cache of ``llama_kv_cache_dsa``), scores every cached position with the fused
``LIGHTNING_INDEXER`` op (which llama_context always enables) and keeps the ``indexer_top_k``
best; the MLA attention (``attention.mla_qkv``) then attends with a mask open only at those
cells (``attention.build_attn`` with ``top_k``).

glm-dsa runs the indexer only on its "full" layers (``ModelHparams.layer_has_indexer``, which
also decides the indexer cache); a "shared" layer attends over the cells the last full layer
picked (``SharedTopK``), so that tensor lives on until the last layer sharing it.

The lightning indexer's pieces are this module's public API, one implementation for every
graph that has such an indexer: ``indexer_query`` (its query heads from ``qr``),
``indexer_key`` (its layer-normed key head), ``indexer_weights`` (the pre-scaled per-head
weights) and ``lightning_top_k`` (the fused scores over a cache of keys, per stream, and the
top-k cells). deepseek4 scores its compressed cache with them, glm5-next its pooled keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from solver.ggml import ops as g
from solver.ggml.ops import Tensor
from solver.llama.compute_graph.attention import attn_output, build_attn, mla_qkv
from solver.llama.compute_graph.builder import GraphBuilder
from solver.llama.compute_graph.inputs import AttnInputs, CacheInputs
from solver.llama.compute_graph.kv_ops import cpy_k, get_k


@dataclass
class SharedTopK:
    """glm-dsa.cpp's ``prev_top_k``: the top-k cells of the last layer with a full indexer,
    one per graph (None before the first)."""

    cells: Tensor | None = None


def dsa_attention(
    b: GraphBuilder,
    inp: AttnInputs,
    il: int,
    cur: Tensor,
    inp_pos: Tensor,
    shared: SharedTopK,
) -> Tensor:
    """deepseek32.cpp's / glm-dsa.cpp's self-attention block: compressed q, the top-k (the
    layer's own indexer's, or on a shared layer the last full one's), MLA, wo."""
    hp = b.hp
    if inp.lid is None:
        raise ValueError("DSA attention needs the indexer cache's inputs")
    qr = g.mul_mat(b.lw(il, "attn_q_a"), cur)
    qr = b.build_norm(qr, b.lw(il, "attn_q_a_norm"), None, il)
    if hp.layer_has_indexer(il):
        shared.cells = _lightning_indexer(b, inp.lid, il, cur, qr, inp_pos)
    elif shared.cells is None:  # hparams refuse such a file; glm-dsa.cpp asserts
        raise ValueError(f"layer {il} shares the top-k of no earlier full indexer layer")
    top_k = shared.cells
    q = g.mul_mat(b.lw(il, "attn_q_b"), qr)
    q_cur, k_cur, v_cur = mla_qkv(b, il, q, cur, inp_pos)
    cur = build_attn(
        b, inp, "mla", il, q_cur, k_cur, v_cur, hp.n_embd_head_k, hp.n_embd_head_v, 1,
        v_mla=b.lw(il, "attn_v_b"), top_k=top_k,
    )  # fmt: skip
    return attn_output(b, cur, il)


def _lightning_indexer(
    b: GraphBuilder, lid: CacheInputs, il: int, cur: Tensor, qr: Tensor, inp_pos: Tensor
) -> Tensor:
    """deepseek32.cpp's indexer: roped, rotated heads and key, the key cached, the top-k."""
    hp = b.hp
    head = hp.indexer_head_size
    q = g.rope(indexer_query(b, il, qr), inp_pos)
    k = g.rope(g.reshape(indexer_key(b, il, cur), head, 1, b.n_tokens), inp_pos)
    # the Hadamard rotation as a plain matmul (the rotation is as wide as the head)
    q = g.mul_mat(lid.k_rot, q)
    k = g.mul_mat(lid.k_rot, k)
    cache = b.kv_tensor("lid_k", il, b.cache.type_k, head, lid.n_kv)
    b.gf.expand(cpy_k(cache, k, lid.k_idxs))
    k = get_k(cache, lid.n_kv, head, 1, b.cache.n_stream)
    return lightning_top_k(b, il, q, k, cur, lid.mask, scale_after_split=True)


# --- the lightning indexer's shared pieces (deepseek32/glm-dsa, deepseek4, glm5-next) -------


def indexer_query(b: GraphBuilder, il: int, qr: Tensor) -> Tensor:
    """The indexer's query heads from the compressed query ``qr``:
    [indexer_head_size, indexer_n_head, n_tokens], not yet roped or rotated."""
    hp = b.hp
    q = g.mul_mat(b.lw(il, "indexer.attn_q_b"), qr)
    return g.reshape(q, hp.indexer_head_size, hp.indexer_n_head, b.n_tokens)


def indexer_key(b: GraphBuilder, il: int, cur: Tensor) -> Tensor:
    """The indexer's one key head from the layer input, layer-normed with its bias:
    [indexer_head_size, n_tokens] (deepseek32.cpp, glm-dsa.cpp, glm5-next.cpp)."""
    k = g.mul_mat(b.lw(il, "indexer.attn_k"), cur)
    return b.build_norm(k, b.lw(il, "indexer.k_norm"), b.lw(il, "indexer.k_norm", "bias"), il,
                        rms=False)  # fmt: skip


def indexer_weights(b: GraphBuilder, il: int, cur: Tensor) -> Tensor:
    """The per-head score weights, pre-scaled (1/sqrt(head * heads) in llama.cpp, so that
    the scores themselves need no scaling): [indexer_n_head, n_tokens]."""
    return g.scale(g.mul_mat(b.lw(il, "indexer.proj"), cur))


def lightning_top_k(
    b: GraphBuilder,
    il: int,
    q: Tensor,
    k: Tensor,
    cur: Tensor,
    mask: Tensor,
    *,
    scale_after_split: bool = False,
) -> Tensor:
    """The fused ``LIGHTNING_INDEXER``'s scores of the query heads ``q`` (roped and rotated
    as the keys are) against the cached keys ``k`` [head, 1, n_kv, n_stream] under ``mask``,
    weighted per head (``indexer_weights`` of ``cur``), and the ``indexer_top_k`` best cells
    per token, at most n_kv (I32, contiguous). q and the weights are viewed as the cache's
    streams first; deepseek32.cpp and glm-dsa.cpp scale the weights after that view
    (``scale_after_split``), deepseek4.cpp before it: the same sizes, other nodes."""
    if scale_after_split:
        weights = g.mul_mat(b.lw(il, "indexer.proj"), cur)
    else:
        weights = indexer_weights(b, il, cur)
    n_stream = k.ne[3]
    q = g.view_4d(
        q, q.ne[0], q.ne[1], q.ne[2] // n_stream, n_stream, q.nb[1], q.nb[2],
        q.nb[3] // n_stream, 0,
    )  # fmt: skip
    weights = g.view_4d(
        weights, weights.ne[0], weights.ne[1] // n_stream, weights.ne[2], n_stream,
        weights.nb[1], weights.nb[2] // n_stream, weights.nb[3] // n_stream, 0,
    )  # fmt: skip
    if scale_after_split:
        weights = g.scale(weights)
    score = g.lightning_indexer(q, k, weights, mask)
    return g.cont(g.top_k(score, min(score.ne[0], b.hp.indexer_top_k)))
