"""Attention blocks: Q/K/V projections, attention over the KV cache, the output projection.

``self_attention`` is the standard block the architectures' graph functions share (projection,
optional Q/K norms, RoPE, scaling, ``build_attn``, output), ``mla_attention`` deepseek2's
multi-head latent attention. ``build_attn`` is ``llm_graph_context::build_attn`` with a KV
cache (``src/llama-graph.cpp``): it stores the new K/V (``kv_ops``) and attends over the cache
with flash attention or an explicit soft-max (``build_attn_mha``), in llama.cpp's node order.
``kind`` names the cache the graph's attention inputs were built for: "kv", "iswa" (a full
and a sliding-window cache) or "mla" (K only; V is a view of it).
"""

from __future__ import annotations

from solver.ggml import ops as g
from solver.ggml.ops import F16, F32, Tensor
from solver.llama.compute_graph.builder import GraphBuilder
from solver.llama.compute_graph.inputs import AttnInputs, CacheInputs
from solver.llama.compute_graph.kv_ops import cpy_k, cpy_v, get_k, get_v, hadamard

# --- layer weights ---------------------------------------------------------------------------


def rope_factors(b: GraphBuilder, il: int) -> Tensor | None:
    """llama_model::get_rope_factors: rope_freqs, else long/short factors by context."""
    freqs = b.layer_duplicate("rope_freqs.weight", il)
    if freqs is not None:
        return freqs
    if b.cache.kv_size > b.hp.n_ctx_orig_yarn:
        return b.layer_duplicate("rope_factors_long.weight", il)
    return b.layer_duplicate("rope_factors_short.weight", il)


def layer_sinks(b: GraphBuilder, il: int) -> Tensor | None:
    """gpt-oss attention sinks: ``attn_sinks.weight``, or as some files name it ``.bias``."""
    sinks = b.lw(il, "attn_sinks")
    if sinks is None:
        sinks = b.lw(il, "attn_sinks", "bias")
    return sinks


# --- projections ---------------------------------------------------------------------------


def build_qkv(
    b: GraphBuilder,
    il: int,
    cur: Tensor,
    head_q: int,
    n_head: int,
    n_head_kv: int,
    reshape: bool = True,
    head_v: int | None = None,
):
    """Q, K, V of layer il: views of a fused QKV, or three matmuls. ``reshape`` (the default):
    head x heads x tokens; without it (minimax-m2) each is one row per token, a fused QKV's
    views made contiguous, as ``llm_graph_context::build_qkv(..., reshape = false)``.
    ``head_v``: V's head width where it is not Q's and K's (mimo2)."""
    head_v = head_q if head_v is None else head_v
    n_tokens = b.n_tokens
    wqkv = b.lw(il, "attn_qkv")
    if wqkv is not None:
        qkv = b.build_lora_mm(wqkv, cur, b.lw(il, "attn_qkv", "scale"))
        bias = b.lw(il, "attn_qkv", "bias")
        if bias is not None:
            qkv = g.add(qkv, bias)
        n_embd_q = head_q * n_head
        n_embd_k = head_q * n_head_kv
        rs = g.row_size
        offsets = (0, rs(qkv.type, n_embd_q), rs(qkv.type, n_embd_q + n_embd_k))
        if not reshape:
            widths = (n_embd_q, n_embd_k, n_embd_k)
            return tuple(
                g.cont(g.view_2d(qkv, w, n_tokens, qkv.nb[1], off))
                for w, off in zip(widths, offsets, strict=True)
            )
        heads = ((head_q, n_head), (head_q, n_head_kv), (head_v, n_head_kv))
        return tuple(
            g.view_3d(qkv, head, h, n_tokens, rs(qkv.type, head), qkv.nb[1], off)
            for (head, h), off in zip(heads, offsets, strict=True)
        )
    roles = (("attn_q", head_q, n_head), ("attn_k", head_q, n_head_kv),
             ("attn_v", head_v, n_head_kv))  # fmt: skip
    out = [(projection(b, il, role, cur), head, heads) for role, head, heads in roles]
    if not reshape:
        return tuple(t for t, _, _ in out)
    return tuple(g.reshape(t, head, heads, n_tokens) for t, head, heads in out)


def projection(b: GraphBuilder, il: int, role: str, cur: Tensor) -> Tensor:
    """build_qkv's separate path without reshape: w @ cur, plus the optional bias."""
    t = b.build_lora_mm(b.lw(il, role), cur, b.lw(il, role, "scale"))
    bias = b.lw(il, role, "bias")
    return g.add(t, bias) if bias is not None else t


def attn_output(b: GraphBuilder, cur: Tensor, il: int) -> Tensor:
    """The output projection wo (with its optional scale and bias)."""
    wo = b.lw(il, "attn_output")
    if wo is not None:
        cur = b.build_lora_mm(wo, cur, b.lw(il, "attn_output", "scale"))
    wo_b = b.lw(il, "attn_output", "bias")
    if wo_b is not None:
        cur = g.add(cur, wo_b)
    return cur


# --- attention over the cache ---------------------------------------------------------------


def build_attn(
    b: GraphBuilder,
    inp: AttnInputs,
    kind: str,
    il: int,
    q_cur: Tensor,
    k_cur: Tensor,
    v_cur: Tensor,
    head_k: int,
    head_v: int,
    n_head_kv: int,
    sinks: Tensor | None = None,
    v_mla: Tensor | None = None,
    top_k: Tensor | None = None,
) -> Tensor:
    """build_attn with a KV cache: rotate, store the new K/V, attend over the layer's cache
    (with DSA's ``top_k``: only over the cells the lightning indexer picked)."""
    cache_inp = inp.for_layer(kind == "iswa" and b.hp.layers[il].is_swa)
    k_rot, v_rot = cache_inp.k_rot, cache_inp.v_rot
    if k_rot is not None:
        q_cur = hadamard(q_cur, k_rot)
        k_cur = hadamard(k_cur, k_rot)
    if v_rot is not None:
        v_cur = hadamard(v_cur, v_rot)
    # llama-graph.cpp: the KV variants expand q, v, then k ("to enable rope fusion"), the
    # iswa one q, k, v
    order = (q_cur, k_cur, v_cur) if kind == "iswa" else (q_cur, v_cur, k_cur)
    for t in order:
        b.gf.expand(t)
    k, v = store_kv(b, cache_inp, kind, il, k_cur, v_cur, head_k, head_v, n_head_kv)
    mask = cache_inp.mask if top_k is None else top_k_mask(cache_inp.mask, top_k)
    cur = build_attn_mha(b, q_cur, k, v, mask, sinks, v_mla)
    b.cb(cur, "kqv_out", il)
    if v_rot is not None:
        cur = hadamard(cur, v_rot)
    return cur


def top_k_mask(kq_mask: Tensor, top_k: Tensor, zeros_type: int = F32) -> Tensor:
    """build_attn (llm_graph_input_attn_k_dsa), deepseek4.cpp's build_top_k_mask: a mask of
    -inf but at the ``top_k`` cells (zeros of ``zeros_type`` set at their rows: F32 in
    llama-graph.cpp, the cache's F16 under flash attention in deepseek4.cpp), added to the
    mask ``kq_mask``."""
    m = g.fill(kq_mask)
    m = g.view_4d(m, 1, m.ne[0], m.ne[1], m.ne[3], m.nb[0], m.nb[1], m.nb[2], 0)
    ne, nb = top_k.ne, top_k.nb
    top_k_3d = g.view_4d(top_k, ne[0], ne[1], ne[3], 1, nb[1], nb[2], ne[3] * nb[3], 0)
    zeros = g.fill(g.new_tensor(zeros_type, 1, *top_k_3d.ne[:3]))
    m = g.set_rows(m, zeros, top_k_3d)
    m = g.view_4d(m, m.ne[1], m.ne[2], 1, m.ne[3], m.nb[2], m.nb[3], m.nb[3], 0)
    return g.add(m, kq_mask)


def store_kv(
    b: GraphBuilder,
    cache_inp: CacheInputs,
    kind: str,
    il: int,
    k_cur: Tensor,
    v_cur: Tensor,
    head_k: int,
    head_v: int,
    n_head_kv: int,
) -> tuple[Tensor, Tensor]:
    """Copy the new K (and V) into layer il's cache; the (K, V) views attention reads.

    With MLA the cache holds K only and V is a view of its first ``v_cur.ne[0]`` channels.
    """
    c = b.cache
    n_kv = cache_inp.n_kv
    k = b.kv_tensor("k", il, c.type_k, head_k * n_head_kv, n_kv)
    b.gf.expand(cpy_k(k, k_cur, cache_inp.k_idxs))
    if kind == "mla":
        k_view = get_k(k, n_kv, head_k, n_head_kv, c.n_stream)
        v = g.view_4d(
            k_view, v_cur.ne[0], k_view.ne[1], k_view.ne[2], k_view.ne[3],
            k_view.nb[1], k_view.nb[2], k_view.nb[3], 0,
        )  # fmt: skip
        return k_view, v
    width_v = b.model.v_width_max if c.v_trans else head_v * n_head_kv
    vt = b.kv_tensor("v", il, c.type_v, width_v, n_kv)
    b.gf.expand(cpy_v(vt, v_cur, cache_inp.v_idxs, c.v_trans))
    k_view = get_k(k, n_kv, head_k, n_head_kv, c.n_stream)
    return k_view, get_v(vt, n_kv, head_v, n_head_kv, c.n_stream, c.v_trans)


def build_attn_mha(
    b: GraphBuilder,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor,
    sinks: Tensor | None,
    v_mla: Tensor | None,
) -> Tensor:
    """llm_graph_context::build_attn_mha: softmax(K^T Q) V per head, as flash attention or not."""
    v_trans = v.nb[1] > v.nb[2]
    n_stream = k.ne[3]
    q = g.view_4d(
        q, q.ne[0], q.ne[1], q.ne[2] // n_stream, n_stream,
        q.nb[1], q.nb[2], q.nb[2] * (q.ne[2] // n_stream), 0,
    )  # fmt: skip
    q = g.permute(q, 0, 2, 1, 3)
    k = g.permute(k, 0, 2, 1, 3)
    v = g.permute(v, 0, 2, 1, 3)
    if b.cache.flash_attn:
        cur = _flash_attn(q, k, v, mask, sinks, v_mla, v_trans)
    else:
        cur = _soft_max_attn(b, q, k, v, mask, sinks, v_mla, v_trans)
    b.gf.expand(cur)
    return cur


def _flash_attn(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor,
    sinks: Tensor | None,
    v_mla: Tensor | None,
    v_trans: bool,
) -> Tensor:
    """The flash-attention branch: F16 K/V, one FLASH_ATTN_EXT, MLA's V up-projection after."""
    if v_trans:
        v = g.transpose(v)
    if k.type == F32:
        k = g.cast(k, F16)
    if v.type == F32:
        v = g.cast(v, F16)
    cur = g.flash_attn_ext(q, k, v, mask, sinks)
    cur.params = {"n_kv": k.ne[1]}
    if v_mla is not None:
        cur = g.permute(cur, 0, 2, 1, 3)
        cur = g.mul_mat(v_mla, cur)
        cur = g.permute(cur, 0, 2, 1, 3)
        cur = g.cont(cur)
    return g.reshape(cur, cur.ne[0] * cur.ne[1], cur.ne[2] * cur.ne[3])


def _soft_max_attn(
    b: GraphBuilder,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor,
    sinks: Tensor | None,
    v_mla: Tensor | None,
    v_trans: bool,
) -> Tensor:
    """The explicit branch: KQ (soft-capped if the model says so), soft-max, KQV."""
    kq = g.mul_mat(k, q)
    if b.hp.f_attn_logit_softcapping:
        kq = g.scale(kq)
        kq = g.unary(kq, "tanh")
        kq = g.scale(kq)
    kq = g.soft_max(kq, mask, sinks)
    if not v_trans:
        v = g.cont(g.transpose(v))
    kqv = g.mul_mat(v, kq)
    if v_mla is not None:
        kqv = g.mul_mat(v_mla, kqv)
    cur = g.permute(kqv, 0, 2, 1, 3)
    cur = g.cont_nd(cur, cur.ne[0] * cur.ne[1], cur.ne[2] * cur.ne[3])
    if not b.cache.offload_kqv:
        cur.pin = ("cpu",)
    return cur


# --- attention blocks ----------------------------------------------------------------------


def self_attention(
    b: GraphBuilder,
    inp: AttnInputs,
    il: int,
    cur: Tensor,
    inp_pos: Tensor,
    *,
    kind: str,
    rope: bool = True,
    rope_freqs: Tensor | None = None,
    q_scale_after_rope: bool = False,
    attn_scale: Tensor | None = None,
    sinks: Tensor | None = None,
    qk_norm_full: bool = False,
    head_gate: bool = False,
    qk_norms_first: bool = False,
    qk_norms_after_rope: bool = False,
) -> Tensor:
    """The standard attention block of a layer, up to and including the output projection.

    QKV, optional Q/K norms (when the file has them; per head, or with ``qk_norm_full`` over
    the whole projection before it is split into heads, as minimax-m2), RoPE (with
    ``rope_freqs``), gemma3's Q scale after RoPE, the temperature-tuning scale, attention,
    step35's head-wise gate (``head_gate``, when the file has ``attn_gate``), wo.
    ``qk_norms_first`` (exaone4): K is normed before Q is roped; ``qk_norms_after_rope``
    (hunyuan-moe): both are roped, then K normed, then Q.
    """
    hp = b.hp
    layer = hp.layers[il]
    head = hp.n_embd_head_k
    attn_in = cur
    q_norm = b.lw(il, "attn_q_norm")
    k_norm = b.lw(il, "attn_k_norm")
    if qk_norm_full:
        q, k, v = build_qkv(b, il, cur, head, layer.n_head, layer.n_head_kv, reshape=False)
        q = b.build_norm(q, q_norm, None, il)
        k = b.build_norm(k, k_norm, None, il)
        q, k, v = (g.reshape(t, head, t.ne[0] // head, b.n_tokens) for t in (q, k, v))
        q_norm = k_norm = None
    else:
        q, k, v = build_qkv(b, il, cur, head, layer.n_head, layer.n_head_kv, head_v=layer.head_v)
    if qk_norms_after_rope:
        q, k = (g.rope(t, inp_pos, rope_freqs) if rope else t for t in (q, k))
        k = b.build_norm(k, k_norm, None, il) if k_norm is not None else k
        q = b.build_norm(q, q_norm, None, il) if q_norm is not None else q
        q_norm = k_norm = None
        rope = False
    if q_norm is not None:
        q = b.build_norm(q, q_norm, None, il)
    if qk_norms_first and k_norm is not None:  # exaone4: both norms, then both ropes
        k = b.build_norm(k, k_norm, None, il)
        k_norm = None
    if rope:
        q = g.rope(q, inp_pos, rope_freqs)
    if k_norm is not None:
        k = b.build_norm(k, k_norm, None, il)
    if rope:
        k = g.rope(k, inp_pos, rope_freqs)
    if q_scale_after_rope:
        q = g.scale(q)
    if attn_scale is not None:
        q = g.mul(q, attn_scale)
    cur = build_attn(
        b, inp, kind, il, q, k, v, head, hp.n_embd_head_v, layer.n_head_kv, sinks=sinks
    )
    gate_w = b.lw(il, "attn_gate") if head_gate else None
    if gate_w is not None:
        cur = _head_gate(b, cur, gate_w, attn_in, layer.n_head)
    return attn_output(b, cur, il)


def _head_gate(
    b: GraphBuilder, cur: Tensor, gate_w: Tensor, attn_in: Tensor, n_head: int
) -> Tensor:
    """step35.cpp: sigmoid(attn_gate @ the attention's input), one scalar per head and token,
    broadcast over each head's V channels of the attention output."""
    gate = g.unary(b.build_lora_mm(gate_w, attn_in), "sigmoid")
    head_v, n_tokens = b.hp.n_embd_head_v, b.n_tokens
    gated = g.mul(g.reshape(cur, head_v, n_head, n_tokens), g.reshape(gate, 1, n_head, n_tokens))
    return g.reshape(gated, head_v * n_head, n_tokens)


def mla_attention(
    b: GraphBuilder,
    inp: AttnInputs,
    il: int,
    cur: Tensor,
    inp_pos: Tensor,
    attn_scale: Tensor | None,
    rope: bool = True,
) -> Tensor:
    """deepseek2.cpp: multi-head latent attention with the absorption optimisation;
    ``rope=False``: kimi-linear.cpp's MLA layers, whose rope dims take no RoPE."""
    hp = b.hp
    if b.lw(il, "attn_q") is not None:
        q = g.mul_mat(b.lw(il, "attn_q"), cur)
    else:
        q = g.mul_mat(b.lw(il, "attn_q_a"), cur)
        q = b.build_norm(q, b.lw(il, "attn_q_a_norm"), None, il)
        q = g.mul_mat(b.lw(il, "attn_q_b"), q)
    if rope:
        q = g.reshape(q, hp.n_embd_head_k_mla, hp.layers[il].n_head, b.n_tokens)
    # kimi-linear.cpp takes its views of Q as the matmul left it (no reshape)
    q_cur, k_cur, v_cur = mla_qkv(b, il, q, cur, inp_pos, use_rope=rope)
    if attn_scale is not None:
        q_cur = g.mul(q_cur, attn_scale)
    cur = build_attn(
        b, inp, "mla", il, q_cur, k_cur, v_cur, hp.n_embd_head_k, hp.n_embd_head_v, 1,
        v_mla=b.lw(il, "attn_v_b"),
    )  # fmt: skip
    return attn_output(b, cur, il)


def mla_qkv(
    b: GraphBuilder, il: int, q: Tensor, cur: Tensor, inp_pos: Tensor, use_rope: bool = True
) -> tuple[Tensor, Tensor, Tensor]:
    """MLA's Q, K and V from the full query ``q`` (heads of n_embd_head_k_mla, 3-D or as the
    matmul left it) and the layer input: the compressed KV and its rotary part, the query's
    no-rope part absorbed through attn_k_b (deepseek2.cpp, deepseek32.cpp; kimi-linear.cpp
    without RoPE on the rotary parts)."""
    hp = b.hp
    n_tokens = b.n_tokens
    n_head = hp.layers[il].n_head
    rope = hp.n_rot
    nope = hp.n_embd_head_k_mla - rope
    rank = hp.n_lora_kv
    rs = g.row_size
    kv_cmpr_pe = g.mul_mat(b.lw(il, "attn_kv_a_mqa"), cur)
    row = rs(kv_cmpr_pe.type, rank + rope)
    kv_cmpr = g.view_2d(kv_cmpr_pe, rank, n_tokens, row, 0)
    k_pe = g.view_3d(kv_cmpr_pe, rope, 1, n_tokens, row, row, rs(kv_cmpr_pe.type, rank))
    if use_rope:
        k_pe = g.rope(k_pe, inp_pos)
    kv_cmpr = b.build_norm(kv_cmpr, b.lw(il, "attn_kv_a_norm"), None, il)
    q_row = rs(q.type, hp.n_embd_head_k_mla)
    q_nope = g.view_3d(q, nope, n_head, n_tokens, q_row, q_row * n_head, 0)
    q_pe = g.view_3d(q, rope, n_head, n_tokens, q_row, q_row * n_head, rs(q.type, nope))
    if use_rope:
        q_pe = g.rope(q_pe, inp_pos)
    q_nope = g.permute(q_nope, 0, 2, 1, 3)
    q_absorbed = g.mul_mat(b.lw(il, "attn_k_b"), q_nope)
    q_absorbed = g.permute(q_absorbed, 0, 2, 1, 3)
    q_cur = g.concat(q_absorbed, q_pe, 0)
    kv_cmpr = g.reshape(kv_cmpr, rank, 1, n_tokens)
    k_cur = g.concat(kv_cmpr, k_pe, 0)
    return q_cur, k_cur, kv_cmpr
