"""MiniMax sparse attention (MSA, ``src/models/minimax-m3.cpp``): GQA over the blocks of
positions an indexer picks.

On a sparse layer (past the leading dense ones, while MSA runs: ``inputs.msa_runs``) an
indexer projects the layer input into one query head per KV head and one key head, RMS-norms
and ropes both, and keeps its keys in its own cache (the ``lid`` cache of
``llama_kv_cache_msa``). Its scores over the cached positions are max-pooled into blocks of
``indexer_block_size`` positions; each head keeps the ``indexer_top_k`` best blocks (the
latest ``indexer_local_blocks`` forced in by a bias), and one flash attention per graph
(``_flash_attn``: the GQA groups, and at decode the streams, folded onto its channel
dimension) attends over them:

* decode graphs (one token per stream): the picked blocks' K/V rows are gathered from the
  cache through the position -> cell map, with the mask rows of their positions;
* batch graphs: per stream, the picked blocks become a -inf/0 mask over the cache's cells
  (through the cell -> block map), added to the causal mask, over the whole cache.

The graphs llama.cpp reserves see an empty cache, so 256 positions (``MSA_POS_PAD``); at run
time the block tensors grow with the positions cached (``CacheParams.n_pos``), which the
reserved buffers do not hold (llama.cpp's allocator grows them then): fit builds these
graphs at a full cache too (``reserve.runtime_graphs``) and prices the buffers' peak.
"""

from __future__ import annotations

from solver.ggml import ops as g
from solver.ggml.ops import F16, F32, I32, Tensor
from solver.llama.compute_graph.attention import (
    attn_output,
    build_qkv,
    self_attention,
    store_kv,
)
from solver.llama.compute_graph.builder import GraphBuilder
from solver.llama.compute_graph.inputs import AttnInputs, MsaInputs
from solver.llama.compute_graph.kv_ops import cpy_k, get_k, hadamard


def msa_attention(
    b: GraphBuilder, inp: AttnInputs, il: int, cur: Tensor, inp_pos: Tensor
) -> Tensor:
    """minimax-m3.cpp's self-attention block: dense on the leading layers or when MSA does
    not run (per-head Q/K norms, RoPE, ``build_attn``), else the sparse block, then wo."""
    msa = inp.msa
    if msa is None or il < b.hp.n_layer_dense_lead:
        return self_attention(b, inp, il, cur, inp_pos, kind="kv")
    hp = b.hp
    layer = hp.layers[il]
    head = hp.n_embd_head_k
    q, k, v = build_qkv(b, il, cur, head, layer.n_head, layer.n_head_kv)
    q = g.rope(b.build_norm(q, b.lw(il, "attn_q_norm"), None, il), inp_pos)
    k = g.rope(b.build_norm(k, b.lw(il, "attn_k_norm"), None, il), inp_pos)
    iq, ik_kv = _indexer(b, msa, il, cur, inp_pos)
    base = inp.base
    if base.k_rot is not None:
        q, k = hadamard(q, base.k_rot), hadamard(k, base.k_rot)
    if base.v_rot is not None:
        v = hadamard(v, base.v_rot)
    for t in (q, k, v):
        b.gf.expand(t)
    k_cache, v_cache = store_kv(b, base, "kv", il, k, v, head, hp.n_embd_head_v, layer.n_head_kv)
    if msa.decode:
        cur = _decode(b, msa, q, iq, ik_kv, k_cache, v_cache)
    else:
        outs = [_batch_stream(b, msa, st, q, iq, ik_kv, k_cache, v_cache) for st in range(msa.ns)]
        cur = outs[0]
        for out in outs[1:]:
            cur = g.concat(cur, out, 1)
    if base.v_rot is not None:
        cur = hadamard(cur, base.v_rot)
    b.cb(cur, "kqv_out", il)
    return attn_output(b, cur, il)


def _indexer(
    b: GraphBuilder, msa: MsaInputs, il: int, cur: Tensor, inp_pos: Tensor
) -> tuple[Tensor, Tensor]:
    """The indexer's queries (head x heads x tokens) and its cache as attention reads it, the
    new keys stored first (the graph's first expand of the layer)."""
    hp = b.hp
    width, heads = hp.indexer_head_size, hp.indexer_n_head
    iq = g.reshape(b.build_lora_mm(b.lw(il, "indexer.q_proj"), cur), width, heads, b.n_tokens)
    ik = g.reshape(b.build_lora_mm(b.lw(il, "indexer.k_proj"), cur), width, 1, b.n_tokens)
    iq = g.rope(b.build_norm(iq, b.lw(il, "indexer.q_norm"), None, il), inp_pos)
    ik = g.rope(b.build_norm(ik, b.lw(il, "indexer.k_norm"), None, il), inp_pos)
    cache = b.kv_tensor("lid_k", il, b.cache.type_k, width, b.cache.kv_size)
    b.gf.expand(cpy_k(cache, ik, msa.k_idxs))
    return iq, get_k(cache, b.cache.kv_size, width, 1, b.cache.n_stream)


def _top_blocks(b: GraphBuilder, scores: Tensor, bias: Tensor) -> Tensor:
    """Max-pool the position scores into blocks, add the local blocks' bias, keep the top-k
    block indices (I32)."""
    blocks = g.pool_2d_max(scores, b.hp.indexer_block_size)
    return g.top_k(g.add(blocks, bias), min(b.hp.indexer_top_k, blocks.ne[0]))


def _decode(
    b: GraphBuilder, msa: MsaInputs, q: Tensor, iq: Tensor, ik_kv: Tensor, k: Tensor, v: Tensor
) -> Tensor:
    """One token per stream: score every position, gather the picked blocks' K/V rows and
    mask entries through the position -> cell map, one grouped flash attention."""
    hp = b.hp
    n_kv, ns, n_ps, nblk = msa.n_kv, msa.ns, msa.n_ps, msa.nblk
    width, heads, blk = hp.indexer_head_size, hp.indexer_n_head, hp.indexer_block_size
    ik3 = g.view_3d(ik_kv, width, n_kv, ns, ik_kv.nb[2], ik_kv.nb[3], 0)
    ikp = g.get_rows(ik3, msa.pos_slot_i)
    sc = g.mul_mat(g.reshape(ikp, width, n_ps, 1, ns), g.reshape(iq, width, heads, 1, ns))
    sc = g.add_inplace(sc, g.reshape(msa.pos_mask, n_ps, 1, 1, ns))
    idx = _top_blocks(b, sc, g.reshape(msa.bias, nblk, 1, 1, ns))
    n_top = idx.ne[0]
    # positions of the picked blocks, their cells, and their rows among the K/V heads
    first = g.reshape(g.scale(g.cast(idx, F32)), 1, n_top, heads, ns)
    pos = g.add(g.repeat_4d(first, blk, n_top, heads, ns), g.reshape(g.arange(blk), blk, 1, 1))
    pos_i = g.cast(g.reshape(pos, blk * n_top * heads, ns), I32)
    cells = g.get_rows(g.reshape(msa.pos_slot_f, 1, n_ps, ns), pos_i)
    cells = g.reshape(cells, blk, n_top, heads, ns)
    head_of = g.reshape(g.arange(k.ne[1]), 1, 1, heads)
    rows = g.cast(g.reshape(g.add(g.scale(cells), head_of), blk * n_top * heads, ns), I32)
    k3 = g.view_3d(k, k.ne[0], k.ne[1] * n_kv, ns, k.nb[1], k.nb[3], 0)
    v3 = g.view_3d(v, v.ne[0], v.ne[1] * n_kv, ns, v.nb[1], v.nb[3], 0)
    kg = g.get_rows(k3, rows)
    vg = g.get_rows(v3, rows)
    mg = g.get_rows(g.reshape(msa.pos_mask, 1, n_ps, ns), pos_i)
    kfa = _fa_type(g.reshape(kg, k.ne[0], blk * n_top, 1, heads * ns), k.type)
    vfa = _fa_type(g.reshape(vg, v.ne[0], blk * n_top, 1, heads * ns), v.type)
    mfa = g.cast(g.reshape(mg, blk * n_top, 1, 1, heads * ns), F16)
    return _flash_attn(q, kfa, vfa, mfa, q.ne[1] // k.ne[1])


def _fa_type(t: Tensor, cache_type: int) -> Tensor:
    """The gathered rows cast back to the cache's type (F16 for a quantized cache)."""
    want = F16 if g.is_quantized(cache_type) else cache_type
    return t if t.type == want else g.cast(t, want)


def _batch_stream(
    b: GraphBuilder,
    msa: MsaInputs,
    st: int,
    q: Tensor,
    iq: Tensor,
    ik_kv: Tensor,
    k: Tensor,
    v: Tensor,
) -> Tensor:
    """Stream ``st`` of a batch: its tokens' block picks as a mask over the cache's cells,
    added to its causal mask; flash attention over its whole cache."""
    hp = b.hp
    n_kv, n_tps, n_ps, nblk = msa.n_kv, msa.n_tps, msa.n_ps, msa.nblk
    width, heads = hp.indexer_head_size, hp.indexer_n_head
    iq_s = g.view_3d(iq, width, heads, n_tps, iq.nb[1], iq.nb[2], st * n_tps * iq.nb[2])
    ik_s = g.view_2d(ik_kv, width, n_kv, ik_kv.nb[2], st * ik_kv.nb[3])
    psl_s = g.view_1d(msa.pos_slot_i, n_ps, st * msa.pos_slot_i.nb[1])
    pm = msa.pos_mask
    pm_s = g.view_3d(pm, n_ps, 1, n_tps, pm.nb[1], pm.nb[1], st * n_tps * pm.nb[1])
    cb_s = g.view_1d(msa.cell_blk, n_kv, st * msa.cell_blk.nb[1])
    mf = msa.mask_f32
    mf_s = g.view_3d(mf, n_kv, n_tps, 1, mf.nb[1], mf.nb[3], st * mf.nb[3])
    bias = msa.bias
    bias_s = g.view_3d(bias, nblk, 1, n_tps, bias.nb[1], bias.nb[1], st * n_tps * bias.nb[1])
    q_s = g.view_3d(q, q.ne[0], q.ne[1], n_tps, q.nb[1], q.nb[2], st * n_tps * q.nb[2])
    k_s = g.view_4d(k, k.ne[0], k.ne[1], n_kv, 1, k.nb[1], k.nb[2], k.nb[3], st * k.nb[3])
    v_s = g.view_4d(v, v.ne[0], v.ne[1], n_kv, 1, v.nb[1], v.nb[2], v.nb[3], st * v.nb[3])
    ikp = g.get_rows(ik_s, psl_s)
    sc = g.mul_mat(ikp, g.reshape(iq_s, width, heads * n_tps))
    sc = g.add_inplace(g.reshape(sc, n_ps, heads, n_tps), pm_s)
    idx = _top_blocks(b, sc, bias_s)
    mask = _block_mask(msa, idx, bias_s, cb_s, mf_s)
    kfa, vfa = g.permute(k_s, 0, 3, 1, 2), g.permute(v_s, 0, 3, 1, 2)
    return _flash_attn(q_s, kfa, vfa, mask, q.ne[1] // k.ne[1])


def _block_mask(msa: MsaInputs, idx: Tensor, bias_s: Tensor, cb_s: Tensor, mf_s: Tensor):
    """-inf but at the picked blocks (zeros set at their rows), per head, spread from blocks
    to cells through the cell -> block map and added to the causal mask: F16 cells x tokens x
    1 x heads."""
    n_kv, n_tps, nblk = msa.n_kv, msa.n_tps, msa.nblk
    n_top, heads = idx.ne[0], idx.ne[1]
    ninf = g.cast(g.scale(bias_s), F16)
    ninf = g.repeat_4d(ninf, nblk, heads, n_tps, 1)
    zero = g.scale(g.cast(idx, F32))
    bm = g.set_rows(
        g.reshape(ninf, 1, nblk, heads * n_tps),
        g.reshape(zero, 1, n_top, heads * n_tps),
        g.reshape(idx, n_top, heads * n_tps),
    )
    bm = g.cont(g.permute(g.reshape(bm, nblk, heads, n_tps), 0, 2, 1, 3))
    bm2 = g.cont(g.transpose(g.reshape(bm, nblk, n_tps * heads)))
    bmx = g.cont(g.transpose(g.get_rows(bm2, cb_s)))
    mask = g.add_inplace(g.reshape(bmx, n_kv, n_tps, heads), mf_s)
    return g.cast(g.reshape(mask, n_kv, n_tps, 1, heads), F16)


def _flash_attn(q_cur: Tensor, k: Tensor, v: Tensor, mask: Tensor, group: int) -> Tensor:
    """build_attn_msa_fa: one flash attention with the GQA groups of ``group`` query heads
    (and at decode the streams) on its channel dimension, back to one row of heads per
    token."""
    d, n_head, n_tokens = q_cur.ne[0], q_cur.ne[1], q_cur.ne[2]
    channels = k.ne[3]
    rows = n_head * n_tokens // (group * channels)
    q = g.permute(g.reshape(q_cur, d, group, channels, rows), 0, 2, 3, 1)
    o = g.flash_attn_ext(q, k, v, mask)
    o.params = {"n_kv": k.ne[1]}
    o = g.permute(o, 0, 1, 3, 2)
    if not o.is_contiguous():
        o = g.cont(o)
    return g.reshape(o, d * n_head, n_tokens)
