"""GLM-5.3-Flash (``glm5-next``): the graph function of ``src/models/glm5-next.cpp``.

The residual is four hyper-connection streams (``hyper_connections``, as deepseek4's). Each
layer: the mixer between ``hc_pre``/``hc_post``, then a dense FFN on the leading layers, else
sigmoid-routed experts plus the shared expert (``ffn.ffn_block``), between another pair. The
mixer is, by layer, kimi-linear's KDA block (``kimi_linear.kda_block``: the same ops in the
same order) or NoPE MLA with the absorption optimisation over the hybrid memory's K-only
cache, attending only where the k-pool indexer looked (``_dsa_layer``).

The k-pool indexer (``_kpool_select``, on layers whose indexer is full; the others reuse the
previous full layer's mask): each token's indexer key and pool gate are cached (with an empty
pooled-key slot) in ``llama_memory_hybrid_idx``'s indexer cache; the pools this ubatch
completes are pooled (soft-max over the gate plus position embeddings, weighted sum of the
keys) and scattered into their pooled slots; every pool's pooled key is gathered and scored
by the fused ``LIGHTNING_INDEXER``; the best ``top_k / kpool`` pools (ordered by score) and
the incomplete tail become the attended cells.

Two attention paths, chosen once per context (``build_inp_kpool``: both reserve graphs, the
prompt's and the one-token decode's, take the same): the scatter path turns the selected
cells into an additive mask over the cache (dead slots into dump rows past it) folded with
the causal mask, and attends over the whole cache (``build_attn_mha``); the gather path,
taken when ``-ub`` is 16 or less and the context is wider than the selection
(``top_k + kpool - 1`` cells), gets the selected latent rows out of the MLA cache and attends
over them alone (soft-max masked by the slot mask), per token (``_gathered_attention``).

At reserve (``llama_memory_hybrid_idx_context``'s full-cache context) the layout counts
``(cells / kpool) * n_seq_max`` real pools, all new this ubatch; the graph sees them padded
(``kpool_pad``). The head averages the streams (``build_hc_mean``) after the output rows
are picked. The MTP graph (``DECODER_MTP``) llama.cpp does not implement yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from solver.ggml import ops as g
from solver.ggml.ops import F32, I32, I64, Tensor
from solver.llama.compute_graph.attention import build_attn_mha
from solver.llama.compute_graph.builder import GraphBuilder
from solver.llama.compute_graph.dsa import indexer_key, indexer_query, indexer_weights
from solver.llama.compute_graph.ffn import GATING_SIGMOID, MoeRouting, ffn_block
from solver.llama.compute_graph.hyper_connections import HcWeights, hc_expand, hc_post, hc_pre
from solver.llama.compute_graph.inputs import (
    AttnInputs,
    build_attn_inp,
    build_inp_embd,
    build_inp_out_ids,
)
from solver.llama.compute_graph.kimi_linear import kda_block
from solver.llama.compute_graph.kv_ops import cpy_k, get_k
from solver.llama.compute_graph.output import logits
from solver.llama.compute_graph.recurrent import build_rs_inputs
from solver.llama.hparams import KPOOL_ROW

# build_inp_kpool: ubatches of at most this many tokens gather the selected latents instead
GATHER_MAX_UBATCH = 16
# kpool_pad: pool counts padded to a multiple of 64, the last padded pool always unused
_POOL_PAD = 64


@dataclass(frozen=True)
class KpoolInputs:
    """llm_graph_input_kpool at reserve, and the sizes the layers read."""

    k_idxs: Tensor  # I64 [n_tokens]: the indexer cache rows of the new tokens
    pool_cells: Tensor  # I32 [n_pool]
    pool_idxs: Tensor  # I32 [kpool, n_pool]
    pool_mask: Tensor  # F16 [n_pool, n_tokens] (the fused lightning indexer's)
    tail_idxs: Tensor  # I32 [kpool - 1, n_tokens]
    gather_mask: Tensor  # F32 [n_sel, 1, 1, n_tokens]
    new_pool_idxs: Tensor  # I32 [kpool, n_new]
    new_pool_rep: Tensor  # I64 [n_new]
    n_pool: int
    n_new: int
    gather: bool  # the gather path (else the scatter path)


def kpool_sizes(b: GraphBuilder) -> tuple[int, int, int]:
    """(n_pool, n_new, n_sel) of the reserve graph: the full-cache context's real pools,
    ``(cells / kpool) * n_seq_max``, all new; padded; the selected cells per token."""
    hp = b.hp
    kpool = hp.indexer_kpool
    n_pool_real = b.cache.kv_size // kpool * b.ub.n_seqs
    n_pool = max(_POOL_PAD, -(-(n_pool_real + 1) // _POOL_PAD) * _POOL_PAD)
    n_top_pool = min(n_pool, hp.indexer_top_k // kpool)
    n_sel = kpool * n_top_pool + (kpool - 1 if hp.indexer_kpool_select_tail else 0)
    return n_pool, max(n_pool_real, 1), n_sel


def gathers(b: GraphBuilder) -> bool:
    """build_inp_kpool's switch, a context constant: ubatches of at most 16 tokens (-ub) and
    a context (padded n_ctx) wider than the top_k cells plus the incomplete tail."""
    hp = b.hp
    return (
        b.cache.n_ubatch <= GATHER_MAX_UBATCH
        and b.cache.n_ctx > hp.indexer_top_k + hp.indexer_kpool - 1
    )


def build_glm5_next(b: GraphBuilder) -> None:
    """llama_model_glm5_next::graph: embedding, inputs, layers, the streams' mean, logits."""
    hp = b.hp
    _check(b)
    inp = build_inp_embd(b)
    rs = build_rs_inputs(b)
    attn = build_attn_inp(b, "mla")
    kpool = _kpool_inputs(b)
    out_ids = build_inp_out_ids(b)
    hc = b.lw(0, "hc_attn_fn").ne[0] // hp.n_embd
    inp_l = hc_expand(b, inp, hc)
    routing = MoeRouting.of(b, GATING_SIGMOID, from_gguf=True)  # glm5-next.cpp's default
    sel: Tensor | None = None
    for il in range(hp.n_layer):
        b.gf.segment = 1 + il
        residual = inp_l
        mix = hc_pre(b, inp_l, HcWeights.of_layer(b, il, "attn"), il)
        cur = b.build_norm(mix.cur, b.lw(il, "attn_norm"), None, il)
        b.gf.expand(cur)
        if hp.rs_layers[il]:
            cur = kda_block(b, rs, il, cur, reshape_input=False)
        else:
            cur, sel = _dsa_layer(b, attn, kpool, il, cur, sel)
        inp_l = hc_post(b, cur, residual, mix)
        b.cb(inp_l, "hc_attn_post", il)
        residual = inp_l
        mix = hc_pre(b, inp_l, HcWeights.of_layer(b, il, "ffn"), il)
        cur = b.build_norm(mix.cur, b.lw(il, "ffn_norm"), None, il)
        cur = ffn_block(b, cur, il, "silu", routing)
        inp_l = hc_post(b, cur, residual, mix)
        b.cb(inp_l, "l_out", il)
    b.gf.segment = 1 + hp.n_layer
    flat = g.get_rows(g.reshape(inp_l, hp.n_embd * hc, b.n_tokens), out_ids)
    cur = _hc_mean(g.reshape(flat, hp.n_embd, hc, b.ub.n_outputs))
    cur = b.build_norm(cur, b.w("output_norm.weight"), None, -1)
    logits(b, cur, cur, bias=False, softcap=False)


def _check(b: GraphBuilder) -> None:
    """Refuse what this graph does not build: an MLA layer without its absorbed projections,
    a first MLA layer without a full indexer."""
    from solver.llama.compute_graph.reserve import ComputeNotModelled  # reserve imports us

    hp = b.hp
    seen_full = False
    for il in range(hp.n_layer):
        if hp.rs_layers[il]:
            continue
        needed = ("attn_q_a", "attn_q_b", "attn_kv_a_mqa", "attn_k_b", "attn_v_b")
        missing = [n for n in needed if b.lw(il, n) is None]
        seen_full |= hp.lid_layers[il]
        if missing or not seen_full:
            what = f"no {missing[0]}.weight" if missing else "a shared indexer first"
            raise ComputeNotModelled(hp.arch, f"layer {il} has {what}")


def _kpool_inputs(b: GraphBuilder) -> KpoolInputs:
    """build_inp_kpool: the indexer cache's row indices, then the pool inputs in order."""
    kpool, n_tokens = b.hp.indexer_kpool, b.n_tokens
    n_pool, n_new, n_sel = kpool_sizes(b)
    k_idxs = b.input(g.new_tensor(I64, n_tokens), "attn_inp_k_idxs")
    # unnamed in llama.cpp: the graph names them leaf_<n>
    ins = [
        b.input(g.new_tensor(I32, n_pool), ""),  # pool_cells
        b.input(g.new_tensor(I32, kpool, n_pool), ""),  # pool_idxs
        b.input(g.new_tensor(g.F16, n_pool, n_tokens), ""),  # pool_mask
        b.input(g.new_tensor(I32, kpool - 1, n_tokens), ""),  # tail_idxs
        b.input(g.new_tensor(F32, n_sel, 1, 1, n_tokens), ""),  # gather_mask
    ]
    for t in ins:
        b.gf.expand(t)
    new_idxs = b.input(g.new_tensor(I32, kpool, n_new), "")
    new_rep = b.input(g.new_tensor(I64, n_new), "")
    return KpoolInputs(k_idxs, *ins, new_idxs, new_rep, n_pool, n_new, gathers(b))


def _dsa_layer(
    b: GraphBuilder, attn: AttnInputs, kp: KpoolInputs, il: int, cur: Tensor, sel: Tensor | None
) -> tuple[Tensor, Tensor]:
    """build_dsa_layer: NoPE MLA with the query absorbed through attn_k_b, over the cells the
    indexer selected; the selection (mask or cell indices), for the next shared layers."""
    hp = b.hp
    c = b.cache
    n_head, rank, n_tokens = hp.layers[il].n_head, hp.n_lora_kv, b.n_tokens
    qr = b.build_norm(g.mul_mat(b.lw(il, "attn_q_a"), cur), b.lw(il, "attn_q_a_norm"), None, il)
    q = g.reshape(g.mul_mat(b.lw(il, "attn_q_b"), qr), hp.n_embd_head_k_mla, n_head, n_tokens)
    kv_cmpr = g.mul_mat(b.lw(il, "attn_kv_a_mqa"), cur)
    kv_cmpr = b.build_norm(kv_cmpr, b.lw(il, "attn_kv_a_norm"), None, il)
    kv_cmpr = g.reshape(kv_cmpr, rank, 1, n_tokens)
    q_absorbed = g.mul_mat(b.lw(il, "attn_k_b"), g.permute(q, 0, 2, 1, 3))
    q_absorbed = g.permute(q_absorbed, 0, 2, 1, 3)
    kq_mask = attn.base.mask
    if hp.lid_layers[il] or sel is None:
        sel = _kpool_select(b, kp, il, cur, qr, kq_mask)
    b.gf.expand(q_absorbed)
    b.gf.expand(kv_cmpr)
    cache = b.kv_tensor("k", il, c.type_k, rank, attn.base.n_kv)
    b.gf.expand(cpy_k(cache, kv_cmpr, attn.base.k_idxs))
    if kp.gather:
        b.gf.expand(kq_mask)
        out = _gathered_attention(b, kp, il, q_absorbed, cache, sel)
    else:  # the selection mask already holds the causal mask
        out = _masked_attention(b, il, q_absorbed, cache, attn.base.n_kv, sel, kq_mask)
    b.cb(out, "kqv_out", il)
    return g.mul_mat(b.lw(il, "attn_output"), out), sel


def _masked_attention(
    b: GraphBuilder, il: int, q: Tensor, cache: Tensor, n_kv: int, sel: Tensor, kq_mask: Tensor
) -> Tensor:
    """The scatter path: attention over the whole cache, the latent as both K and V, under
    the selection mask."""
    c, rank = b.cache, b.hp.n_lora_kv
    mask = g.reshape(sel, *kq_mask.ne)
    k = get_k(cache, n_kv, rank, 1, c.n_stream)
    v = g.view_4d(k, rank, k.ne[1], k.ne[2], k.ne[3], k.nb[1], k.nb[2], k.nb[3], 0)
    return build_attn_mha(b, q, k, v, mask, None, b.lw(il, "attn_v_b"))


def _gathered_attention(
    b: GraphBuilder, kp: KpoolInputs, il: int, q: Tensor, cache: Tensor, sel_idx: Tensor
) -> Tensor:
    """The gather path: each token's selected latent rows got out of the whole MLA cache
    (gather_mla_rows, every stream), attended as K and V with the token in ne[3], masked by
    the slot mask, then attn_v_b (head_v * n_head x n_tokens)."""
    rank, n_head, n_tokens = b.hp.n_lora_kv, q.ne[1], b.n_tokens
    n_sel = sel_idx.ne[0]
    rows = g.view_2d(cache, cache.ne[0], cache.ne[1] * cache.ne[2], cache.nb[1], 0)
    k_g = g.get_rows(rows, g.reshape(sel_idx, n_sel * n_tokens))
    k_g = g.reshape(k_g, rank, n_sel, 1, n_tokens)
    b.cb(k_g, "kv_gathered", il)
    kq = g.mul_mat(k_g, g.permute(q, 0, 2, 3, 1))  # n_sel x 1 x n_head x n_tokens
    kq = g.soft_max(kq, kp.gather_mask)
    b.cb(kq, "kq_soft_max_gathered", il)
    kqv = g.mul_mat(g.cont(g.transpose(k_g)), kq)  # rank x 1 x n_head x n_tokens
    kqv = g.mul_mat(b.lw(il, "attn_v_b"), kqv)
    b.cb(kqv, "kqv_gathered", il)
    out = g.cont(g.permute(kqv, 0, 2, 1, 3))
    return g.reshape(out, kqv.ne[0] * n_head, n_tokens)


def _kpool_select(
    b: GraphBuilder, kp: KpoolInputs, il: int, cur: Tensor, qr: Tensor, kq_mask: Tensor
) -> Tensor:
    """build_kpool_select: cache the tokens' key | gate, pool the new pools, score every
    pool, and turn the best pools and the tail into an additive mask over the cache (the
    gather path: their cell indices, n_sel x n_tokens)."""
    hp = b.hp
    head, kpool, n_tokens = hp.indexer_head_size, hp.indexer_kpool, b.n_tokens
    iq = indexer_query(b, il, qr)  # NoPE: neither roped nor rotated
    ik = indexer_key(b, il, cur)
    ig = g.mul_mat(b.lw(il, "indexer_compressor_gate"), cur)
    pzero = g.fill(g.new_tensor(F32, head, n_tokens))
    packed = g.reshape(g.concat(g.concat(ik, ig, 0), pzero, 0), KPOOL_ROW * head, 1, n_tokens)
    n_kv = b.cache.kv_size
    cache = b.kv_tensor("idx_k", il, b.cache.type_k, KPOOL_ROW * head, n_kv)
    b.gf.expand(cpy_k(cache, packed, kp.k_idxs))
    key_gate, pooled_slots = _kpool_views(cache, head)
    pooled_new = _pool_new(b, kp, il, key_gate)
    b.gf.expand(g.set_rows(pooled_slots, pooled_new, kp.new_pool_rep))
    pooled = g.reshape(g.get_rows(pooled_slots, kp.pool_cells), head, 1, kp.n_pool)
    score = g.lightning_indexer(iq, pooled, indexer_weights(b, il, cur), kp.pool_mask)
    sel_idx = _selected_cells(b, kp, score, kpool)
    if kp.gather:  # the cells themselves, for gather_mla_rows
        b.cb(sel_idx, "indexer_sel_idx", il)
        return sel_idx
    b.gf.expand(sel_idx)
    return _selection_mask(b, kp, sel_idx, kq_mask, n_kv)


def _kpool_views(cache: Tensor, head: int) -> tuple[Tensor, Tensor]:
    """kpool_access: every cell's key | gate, and its pooled-key slot, over all streams."""
    n_cells = cache.ne[1] * cache.ne[2]
    tok = cache.ne[0] - head
    key_gate = g.view_2d(cache, tok, n_cells, cache.nb[1], 0)
    pooled = g.view_2d(cache, head, n_cells, cache.nb[1], g.row_size(cache.type, tok))
    return key_gate, pooled


def _pool_new(b: GraphBuilder, kp: KpoolInputs, il: int, key_gate: Tensor) -> Tensor:
    """The pools completed this ubatch: their members' keys weighted by the soft-max of their
    gates plus the position embeddings, summed (head x n_new)."""
    head, kpool, n_new = b.hp.indexer_head_size, b.hp.indexer_kpool, kp.n_new
    rows = g.get_rows(key_gate, g.reshape(kp.new_pool_idxs, kpool * n_new))
    rows = g.reshape(rows, 2 * head, kpool, n_new)
    pk = g.view_3d(rows, head, kpool, n_new, rows.nb[1], rows.nb[2], 0)
    pg = g.view_3d(rows, head, kpool, n_new, rows.nb[1], rows.nb[2], g.row_size(F32, head))
    gate = g.add(pg, b.lw(il, "indexer_compressor_ape"))
    gate = g.cont(g.permute(gate, 1, 0, 2, 3))
    probs = g.reshape(g.soft_max(g.reshape(gate, kpool, head * n_new)), kpool, head, n_new)
    pk = g.cont(g.permute(pk, 1, 0, 2, 3))
    return g.reshape(g.sum_rows(g.mul(probs, pk)), head, n_new)


def _selected_cells(b: GraphBuilder, kp: KpoolInputs, score: Tensor, kpool: int) -> Tensor:
    """The best pools by score, ordered, expanded to their member cells, plus the tail."""
    n_tokens, n_pool = b.n_tokens, kp.n_pool
    n_top = min(n_pool, b.hp.indexer_top_k // kpool)
    top = g.top_k(score, n_top)
    sel_score = g.get_rows(g.reshape(score, 1, n_pool, n_tokens), top)
    order = g.argsort(g.reshape(sel_score, n_top, n_tokens))
    top = g.get_rows(g.reshape(g.cast(top, F32), 1, n_top, n_tokens), order)
    top = g.cast(g.cont(g.reshape(top, n_top, n_tokens)), I32)
    sel_idx = g.get_rows(kp.pool_idxs, g.reshape(top, n_top * n_tokens))
    sel_idx = g.reshape(sel_idx, kpool * n_top, n_tokens)
    if b.hp.indexer_kpool_select_tail:
        sel_idx = g.concat(sel_idx, kp.tail_idxs, 0)
    return sel_idx


def _selection_mask(
    b: GraphBuilder, kp: KpoolInputs, sel_idx: Tensor, kq_mask: Tensor, n_kv: int
) -> Tensor:
    """-inf over the cache and n_sel dump rows, zeros scattered at the live selected cells
    (a dead slot to its own dump row), cut to the cache, plus the causal mask."""
    n_tokens, n_sel = b.n_tokens, sel_idx.ne[0]
    mask_all = g.fill(g.new_tensor(kq_mask.type, n_kv + n_sel, 1, 1, 1))
    mask_all = g.reshape(g.repeat_4d(mask_all, n_kv + n_sel, n_tokens, 1, 1), 1, n_kv + n_sel,
                         n_tokens)  # fmt: skip
    zeros = g.fill(g.new_tensor(kq_mask.type, n_sel, 1, 1, 1))
    zeros = g.reshape(g.repeat_4d(zeros, n_sel, n_tokens, 1, 1), 1, n_sel, n_tokens)
    live = g.unary(g.reshape(kp.gather_mask, n_sel, n_tokens), "exp")
    dump = g.arange(n_sel)
    idx_f = g.add(g.mul(g.sub(g.cast(sel_idx, F32), dump), live), dump)
    sel_idx = g.cast(idx_f, I32)
    sel = g.set_rows(mask_all, zeros, g.reshape(sel_idx, n_sel, n_tokens, 1))
    sel = g.view_2d(sel, n_kv, n_tokens, sel.nb[2], 0)
    return g.add(sel, g.reshape(kq_mask, n_kv, n_tokens))


def _hc_mean(x: Tensor) -> Tensor:
    """build_hc_mean: the streams' average (the first stream plus each other, scaled)."""
    n_embd, hc, n_tokens = x.ne[0], x.ne[1], x.ne[2]
    acc = g.view_2d(x, n_embd, n_tokens, x.nb[2], 0)
    for s in range(1, hc):
        acc = g.add(acc, g.view_2d(x, n_embd, n_tokens, x.nb[2], s * x.nb[1]))
    return g.scale(acc)
