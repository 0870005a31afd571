"""Gemma 4 (``gemma4``): sliding and global layers of two head widths, shared KV, PLE, MoE.

The graph function of ``src/models/gemma4.cpp``. The token embedding is scaled by
sqrt(n_embd); with per-layer embeddings (E2B/E4B) the per-layer token rows
(``build_inp_per_layer``: its own token input, rows of ``per_layer_token_embd``, scaled) are
mixed with a projection of the scaled embedding (``project_per_layer_inputs``) into one
[n_embd_per_layer, n_tokens, n_layer] tensor, each layer reading its slice. Every layer:
RMS norm; Q (its norm, RoPE with the proportional-rope factors on global layers); on a layer
with its own KV, K (normed, roped) and V (unweighted RMS norm; K itself when the file has no
V) stored in the layer's cache, on a KV-sharing layer only Q, attending over the cache of the
layer llama.cpp reuses (the last sliding or global layer before the shared ones); the output
projection and post-attention norm, residual; a GELU FFN between norms, or beside it routed
experts (router on the RMS-normed, scaled residual times the router scale, fused gate_up,
per-expert down scales) with their own norms; the post-FFN norm, residual; the per-layer
embedding gate (GELU, times the layer's slice, projected, normed, residual); the layer scalar.
The output head: final norm (the MTP seed h_nextn), the output rows, logits soft-capped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from solver.ggml import ops as g
from solver.ggml.ops import I32, Tensor
from solver.llama.compute_graph.attention import attn_output, build_attn, build_attn_mha
from solver.llama.compute_graph.builder import GraphBuilder
from solver.llama.compute_graph.ffn import build_ffn, sum_experts
from solver.llama.compute_graph.inputs import (
    AttnInputs,
    build_attn_inp,
    build_inp_embd,
    build_inp_out_ids,
    build_inp_pos,
)
from solver.llama.compute_graph.kv_ops import get_k, get_v, hadamard
from solver.llama.compute_graph.output import seeded_output_head


@dataclass(frozen=True)
class _Inputs:
    attn: AttnInputs
    inp_pos: Tensor
    out_ids: Tensor
    per_layer: Tensor | None  # [n_embd_per_layer, n_tokens, n_layer], or None without PLE


def build_gemma4(b: GraphBuilder) -> None:
    """llama_model_gemma4::graph: embedding, inputs, layers, output head."""
    _check_layers(b)
    hp = b.hp
    inp_l = build_inp_embd(b, math.sqrt(hp.n_embd))
    inp_pos = build_inp_pos(b)
    attn = build_attn_inp(b, "iswa")
    out_ids = build_inp_out_ids(b)
    per_layer = None
    if b.w("per_layer_token_embd.weight") is not None:
        per_layer = _build_inp_per_layer(b)
        b.gf.expand(per_layer)
        per_layer = _project_per_layer_inputs(b, inp_l, per_layer)
    ins = _Inputs(attn, inp_pos, out_ids, per_layer)
    for il in range(hp.n_layer):
        b.gf.segment = 1 + il
        inp_l = _layer(b, ins, il, inp_l)
    b.gf.segment = 1 + hp.n_layer
    seeded_output_head(b, inp_l, out_ids, softcap=True)


def _check_layers(b: GraphBuilder) -> None:
    """Refuse a file whose attention is not the separate Q/K(/V) built here."""
    from solver.llama.compute_graph.reserve import ComputeNotModelled  # reserve imports us

    w = b.model.weights
    for il in range(b.hp.n_layer):
        if f"blk.{il}.attn_qkv.weight" in w:
            raise ComputeNotModelled(b.hp.arch, f"layer {il}: a fused attn_qkv is not modelled")
        for role in ("attn_q", "attn_output", "attn_q_norm", "ffn_up", "ffn_down"):
            if f"blk.{il}.{role}.weight" not in w:
                raise ComputeNotModelled(b.hp.arch, f"layer {il} has no {role}.weight")
        if b.hp.layer_has_kv(il) and f"blk.{il}.attn_k.weight" not in w:
            raise ComputeNotModelled(b.hp.arch, f"layer {il} has no attn_k.weight")


# --- per-layer embeddings ------------------------------------------------------------------


def _build_inp_per_layer(b: GraphBuilder) -> Tensor:
    """build_inp_per_layer: the token input, their per-layer rows, scaled."""
    hp = b.hp
    table = b.w("per_layer_token_embd.weight")
    width = table.ne[0] // hp.n_layer
    tokens = b.input(g.new_tensor(I32, b.n_tokens), "inp_per_layer_tokens")
    cur = g.get_rows(table, tokens)
    cur = g.reshape(cur, width, hp.n_layer, b.n_tokens)
    return g.scale(cur)


def _project_per_layer_inputs(b: GraphBuilder, inp: Tensor, per_layer: Tensor) -> Tensor:
    """project_per_layer_inputs: [n_embd_per_layer, n_tokens, n_layer] for the layers."""
    hp = b.hp
    width = per_layer.ne[0]
    proj = g.mul_mat(b.w("per_layer_model_proj.weight"), inp)
    proj = g.scale(proj)
    proj = g.reshape(proj, width, hp.n_layer, b.n_tokens)
    proj = b.build_norm(proj, b.w("per_layer_proj_norm.weight"), None, -1)
    cur = g.add(proj, per_layer)
    cur = g.scale(cur)
    return g.cont(g.permute(cur, 0, 2, 1, 3))


def _per_layer_embedding(b: GraphBuilder, ins: _Inputs, il: int, cur: Tensor) -> Tensor:
    """The layer's per-layer-embedding gate, projection and norm, added to the stream."""
    pe_in = cur
    cur = b.build_lora_mm(b.lw(il, "inp_gate"), cur)
    cur = g.unary(cur, "gelu")
    per_layer = ins.per_layer
    slice_il = g.view_2d(
        per_layer, per_layer.ne[0], per_layer.ne[1], g.row_size(per_layer.type, per_layer.ne[0]),
        il * per_layer.ne[0] * per_layer.ne[1] * 4,
    )  # fmt: skip
    cur = g.mul(cur, slice_il)
    cur = b.build_lora_mm(b.lw(il, "proj"), cur)
    cur = b.build_norm(cur, b.lw(il, "post_norm"), None, il)
    return g.add(pe_in, cur)


# --- layers --------------------------------------------------------------------------------


def _layer(b: GraphBuilder, ins: _Inputs, il: int, inp_l: Tensor) -> Tensor:
    """One block: attention, FFN (and experts), per-layer embedding, layer scalar."""
    cur = b.build_norm(inp_l, b.lw(il, "attn_norm"), None, il)
    b.cb(cur, "attn_norm", il)
    cur = _attention(b, ins, il, cur)
    cur = b.build_norm(cur, b.lw(il, "post_attention_norm"), None, il)
    attn_out = g.add(cur, inp_l)
    if b.lw(il, "ffn_gate_inp") is not None:
        cur = _moe_block(b, il, attn_out)
    else:
        cur = b.build_norm(attn_out, b.lw(il, "ffn_norm"), None, il)
        cur = _gelu_ffn(b, il, cur)
    cur = b.build_norm(cur, b.lw(il, "post_ffw_norm"), None, -1)
    cur = g.add(cur, attn_out)
    if ins.per_layer is not None:
        cur = _per_layer_embedding(b, ins, il, cur)
    scalar = b.lw(il, "layer_output_scale")
    if scalar is not None:
        cur = g.mul(cur, scalar)
    b.cb(cur, "l_out", il)
    return cur


def _attention(b: GraphBuilder, ins: _Inputs, il: int, cur: Tensor) -> Tensor:
    """Q always; K and V into the layer's cache when it has one, else the reused layer's."""
    hp = b.hp
    layer = hp.layers[il]
    head = layer.head_k
    freqs = None if layer.is_swa else b.layer_duplicate("rope_freqs.weight", il)
    q = b.build_lora_mm(b.lw(il, "attn_q"), cur)
    q = g.reshape(q, head, layer.n_head, b.n_tokens)
    q = b.build_norm(q, b.lw(il, "attn_q_norm"), None, il)
    q = g.rope(q, ins.inp_pos, freqs)
    if not hp.layer_has_kv(il):
        return attn_output(b, _attend_reused(b, ins.attn, il, q), il)
    k = b.build_lora_mm(b.lw(il, "attn_k"), cur)
    wv = b.lw(il, "attn_v")
    v = b.build_lora_mm(wv, cur) if wv is not None else k
    k = g.reshape(k, head, layer.n_head_kv, b.n_tokens)
    v = g.reshape(v, head, layer.n_head_kv, b.n_tokens)
    k = b.build_norm(k, b.lw(il, "attn_k_norm"), None, il)
    v = g.rms_norm(v)
    k = g.rope(k, ins.inp_pos, freqs)
    cur = build_attn(b, ins.attn, "iswa", il, q, k, v, head, layer.head_v, layer.n_head_kv)
    return attn_output(b, cur, il)


def _reused_layer(b: GraphBuilder, il: int) -> int:
    """llama_model::create_memory's reuse for gemma4: the last sliding or global KV layer."""
    hp = b.hp
    return hp.n_layer_kv_from_start - (2 if hp.layers[il].is_swa else 1)


def _attend_reused(b: GraphBuilder, inp: AttnInputs, il: int, q: Tensor) -> Tensor:
    """build_attn without new K/V: the reused layer's cache as the KV cache maps it."""
    c = b.cache
    layer = b.hp.layers[il]
    cache_inp = inp.for_layer(layer.is_swa)
    if cache_inp.k_rot is not None:
        q = hadamard(q, cache_inp.k_rot)
    b.gf.expand(q)
    src = _reused_layer(b, il)
    n_kv = cache_inp.n_kv
    head, n_head_kv = layer.head_k, layer.n_head_kv
    k = b.kv_tensor("k", src, c.type_k, head * n_head_kv, n_kv)
    width_v = b.model.v_width_max if c.v_trans else layer.head_v * n_head_kv
    vt = b.kv_tensor("v", src, c.type_v, width_v, n_kv)
    k_view = get_k(k, n_kv, head, n_head_kv, c.n_stream)
    v_view = get_v(vt, n_kv, layer.head_v, n_head_kv, c.n_stream, c.v_trans)
    cur = build_attn_mha(b, q, k_view, v_view, cache_inp.mask, None, None)
    b.cb(cur, "kqv_out", il)
    if cache_inp.v_rot is not None:
        cur = hadamard(cur, cache_inp.v_rot)
    return cur


# --- FFN and experts -----------------------------------------------------------------------


def _gelu_ffn(b: GraphBuilder, il: int, cur: Tensor) -> Tensor:
    return build_ffn(b, cur, b.lw(il, "ffn_up"), b.lw(il, "ffn_gate"), b.lw(il, "ffn_down"), "gelu")


def _moe_block(b: GraphBuilder, il: int, attn_out: Tensor) -> Tensor:
    """The dense MLP (as a shared expert) plus the routed experts, each between its norms."""
    cur_mlp = b.build_norm(attn_out, b.lw(il, "ffn_norm"), None, il)
    cur_mlp = _gelu_ffn(b, il, cur_mlp)
    cur_mlp = b.build_norm(cur_mlp, b.lw(il, "post_ffw_norm_1"), None, il)
    cur_moe = b.build_norm(attn_out, b.lw(il, "pre_ffw_norm_2"), None, il)
    tmp = g.rms_norm(attn_out)
    tmp = g.scale(tmp)
    tmp = g.mul(tmp, b.lw(il, "ffn_gate_inp", "scale"))
    logits = b.build_lora_mm(b.lw(il, "ffn_gate_inp"), tmp)
    cur_moe = _experts(b, il, cur_moe, logits)
    cur_moe = b.build_norm(cur_moe, b.lw(il, "post_ffw_norm_2"), None, il)
    return g.add(cur_mlp, cur_moe)


def _experts(b: GraphBuilder, il: int, cur: Tensor, logits: Tensor) -> Tensor:
    """build_moe_ffn with the router's logits given: softmax, top-k, normalised weights,
    fused gate_up (GELU), down with its per-expert scale, weighted sum."""
    hp = b.hp
    n_embd, n_tokens = cur.ne[0], cur.ne[1]
    n_expert, n_used = hp.n_expert, hp.n_expert_used
    probs = g.soft_max(logits)
    selected = g.argsort_top_k(probs, n_used)
    weights = g.get_rows(g.reshape(probs, 1, n_expert, n_tokens), selected)
    weights = g.reshape(weights, n_used, n_tokens)
    weights_sum = g.clamp(g.sum_rows(weights))
    weights = g.div(weights, weights_sum)
    weights = g.reshape(weights, 1, n_used, n_tokens)
    b.gf.expand(weights)
    cur = g.reshape(cur, n_embd, 1, n_tokens)
    gu = g.mul_mat_id(b.lw(il, "ffn_gate_up_exps"), cur, selected)
    n_ff = gu.ne[0] // 2
    gate = g.view_3d(gu, n_ff, gu.ne[1], gu.ne[2], gu.nb[1], gu.nb[2], 0)
    up = g.view_3d(gu, n_ff, gu.ne[1], gu.ne[2], gu.nb[1], gu.nb[2], n_ff * gu.nb[0])
    cur = g.glu_split(gate, up, "geglu")
    experts = g.mul_mat_id(b.lw(il, "ffn_down_exps"), cur, selected)
    down_s = b.lw(il, "ffn_down_exps", "scale")
    if down_s is not None:
        s = g.reshape(down_s, 1, n_expert, 1)
        s = Tensor(s.type, (1, n_expert, n_tokens, 1), "REPEAT", (s,))  # ggml_repeat_4d
        s = g.get_rows(s, selected)
        experts = g.mul(experts, s)
    experts = g.mul(experts, weights)
    b.gf.expand(experts)
    return sum_experts(b, experts, n_embd, n_tokens, il)


# --- output ---------------------------------------------------------------------------------
