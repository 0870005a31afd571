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
    """The indexer's scores over the cache and their top-k cell indices (I32, contiguous)."""
    hp = b.hp
    n_tokens = b.n_tokens
    head, heads = hp.indexer_head_size, hp.indexer_n_head
    q = g.mul_mat(b.lw(il, "indexer.attn_q_b"), qr)
    q = g.rope(g.reshape(q, head, heads, n_tokens), inp_pos)
    k = g.mul_mat(b.lw(il, "indexer.attn_k"), cur)
    k = b.build_norm(k, b.lw(il, "indexer.k_norm"), b.lw(il, "indexer.k_norm", "bias"), il,
                     rms=False)  # fmt: skip
    k = g.rope(g.reshape(k, head, 1, n_tokens), inp_pos)
    # the Hadamard rotation as a plain matmul (the rotation is as wide as the head)
    q = g.mul_mat(lid.k_rot, q)
    k = g.mul_mat(lid.k_rot, k)
    cache = b.kv_tensor("lid_k", il, b.cache.type_k, head, lid.n_kv)
    b.gf.expand(cpy_k(cache, k, lid.k_idxs))
    weights = g.mul_mat(b.lw(il, "indexer.proj"), cur)
    k = get_k(cache, lid.n_kv, head, 1, b.cache.n_stream)
    n_stream = k.ne[3]
    q = g.view_4d(
        q, q.ne[0], q.ne[1], q.ne[2] // n_stream, n_stream, q.nb[1], q.nb[2],
        q.nb[3] // n_stream, 0,
    )  # fmt: skip
    weights = g.view_4d(
        weights, weights.ne[0], weights.ne[1] // n_stream, weights.ne[2], n_stream,
        weights.nb[1], weights.nb[2] // n_stream, weights.nb[3] // n_stream, 0,
    )  # fmt: skip
    weights = g.scale(weights)
    score = g.lightning_indexer(q, k, weights, lid.mask)
    return g.cont(g.top_k(score, min(score.ne[0], hp.indexer_top_k)))
