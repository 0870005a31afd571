"""Llama 4 (``llama4``): chunked attention with RoPE, every fourth layer global without RoPE.

The graph function of ``src/models/llama4.cpp``. With the chunked window (the default: the
loader forces ``n_swa`` 8192 unless the file says ``sliding_window`` 0) three layers of four
attend within their chunk with RoPE and per-head L2 (RMS, unweighted) norms on Q and K after
it; each fourth layer is global, has no RoPE and scales Q by the temperature-tuning input
``inp_attn_scale`` (always built). Without the window every layer is global and ropes but the
last (``n_no_rope_layer_step`` = n_layer). The FFN is, on every
``interleave_moe_layer_step``-th layer, top-k routed experts with sigmoid weights applied to
the experts' *input* (``build_moe_ffn``'s ``weight_before_ffn`` for LLM_ARCH_LLAMA4: the
input repeated once per selected expert, times its weight; selection on the raw logits) plus
an ungated shared expert; a dense FFN otherwise. Q/K norms are skipped for the 128-expert
model (``use_kq_norm``).
"""

from __future__ import annotations

from solver.ggml import ops as g
from solver.ggml.ops import F32, Tensor
from solver.llama.compute_graph.attention import attn_output, build_attn, build_qkv, rope_factors
from solver.llama.compute_graph.builder import GraphBuilder
from solver.llama.compute_graph.ffn import (
    dense_ffn,
    run_experts,
    shared_expert,
    sum_experts,
)
from solver.llama.compute_graph.inputs import (
    AttnInputs,
    build_attn_inp,
    build_inp_embd,
    build_inp_out_ids,
    build_inp_pos,
)

# llama4.cpp load_arch_hparams: the 17B-128E model (Maverick) has no Q/K L2 norms
_NO_KQ_NORM_EXPERTS = 128
# llama_hparams::n_no_rope_layer_step with the chunked window
_NO_ROPE_STEP = 4


def build_llama4(b: GraphBuilder) -> None:
    """llama_model_llama4::graph<iswa>: embedding, inputs, layers, output head."""
    _check_layers(b)
    hp = b.hp
    inp_l = build_inp_embd(b)
    inp_pos = build_inp_pos(b)
    attn_scale = b.input(g.new_tensor(F32, 1, 1, b.n_tokens), "inp_attn_scale")
    iswa = any(layer.is_swa for layer in hp.layers)
    kind = "iswa" if iswa else "kv"
    attn = build_attn_inp(b, kind)
    out_ids = build_inp_out_ids(b)
    no_rope_step = _NO_ROPE_STEP if iswa else hp.n_layer
    for il in range(hp.n_layer):
        b.gf.segment = 1 + il
        use_rope = (il + 1) % no_rope_step != 0
        inp_l = _layer(b, attn, kind, il, inp_l, inp_pos, attn_scale if not use_rope else None,
                       out_ids)  # fmt: skip
    b.gf.segment = 1 + hp.n_layer
    cur = b.build_norm(inp_l, b.w("output_norm.weight"), None, -1)
    b.cb(cur, "result_norm", -1)
    t_embd = cur
    cur = b.build_lora_mm(b.output_weight(), cur)
    b.cb(cur, "result_output", -1)
    b.gf.expand(cur)
    for t in (cur, t_embd):
        t.set_output()


def _check_layers(b: GraphBuilder) -> None:
    """Refuse a file whose layers are not the separate-QKV attention built here."""
    from solver.llama.compute_graph.reserve import ComputeNotModelled  # reserve imports us

    w = b.model.weights
    for il in range(b.hp.n_layer):
        for role in ("attn_q", "attn_k", "attn_v", "attn_output", "attn_norm", "ffn_norm"):
            if f"blk.{il}.{role}.weight" not in w:
                raise ComputeNotModelled(b.hp.arch, f"layer {il} has no {role}.weight")


def _layer(
    b: GraphBuilder,
    attn: AttnInputs,
    kind: str,
    il: int,
    inp_l: Tensor,
    inp_pos: Tensor,
    no_rope_scale: Tensor | None,
    out_ids: Tensor,
) -> Tensor:
    """One block: norm, attention (RoPE + L2 norms, or the temperature scale), residual,
    norm, FFN, residual."""
    hp = b.hp
    layer = hp.layers[il]
    inp_sa = inp_l
    cur = b.build_norm(inp_l, b.lw(il, "attn_norm"), None, il)
    b.cb(cur, "attn_norm", il)
    head = hp.n_embd_head_k
    q, k, v = build_qkv(b, il, cur, head, layer.n_head, layer.n_head_kv)
    if no_rope_scale is None:
        freqs = rope_factors(b, il)
        q = g.rope(q, inp_pos, freqs)
        k = g.rope(k, inp_pos, freqs)
        if hp.n_expert != _NO_KQ_NORM_EXPERTS:
            q = g.rms_norm(q)
            k = g.rms_norm(k)
    else:
        q = g.mul(q, no_rope_scale)
    cur = build_attn(b, attn, kind, il, q, k, v, head, hp.n_embd_head_v, layer.n_head_kv)
    cur = attn_output(b, cur, il)
    if il == hp.n_layer - 1:
        cur = g.get_rows(cur, out_ids)
        inp_sa = g.get_rows(inp_sa, out_ids)
    ffn_inp = g.add(cur, inp_sa)
    cur = b.build_norm(ffn_inp, b.lw(il, "ffn_norm"), None, il)
    if b.lw(il, "ffn_gate_inp") is None:
        cur = dense_ffn(b, cur, il, "silu")
    else:
        moe_out = _moe_weight_before_ffn(b, cur, il)
        cur = g.add(moe_out, shared_expert(b, cur, il, "silu"))
    cur = g.add(cur, ffn_inp)
    b.cb(cur, "l_out", il)
    return cur


def _moe_weight_before_ffn(b: GraphBuilder, cur: Tensor, il: int) -> Tensor:
    """build_moe_ffn for LLM_ARCH_LLAMA4: sigmoid gating, top-k on the raw logits, no weight
    normalisation; the input repeated per selected expert and weighted before the experts."""
    hp = b.hp
    n_embd, n_tokens = cur.ne[0], cur.ne[1]
    n_used = hp.n_expert_used
    logits = b.build_lora_mm(b.lw(il, "ffn_gate_inp"), cur)
    probs = g.unary(logits, "sigmoid")
    selected = g.argsort_top_k(logits, n_used)
    weights = g.get_rows(g.reshape(probs, 1, hp.n_expert, n_tokens), selected)
    if hp.expert_weights_scale not in (0.0, 1.0):
        weights = g.scale(weights)
    b.gf.expand(weights)
    cur = g.reshape(cur, n_embd, 1, n_tokens)
    # ggml_repeat_4d (a new tensor of cur's type)
    repeated = Tensor(cur.type, (n_embd, n_used, n_tokens, 1), "REPEAT", (cur,))
    cur = g.mul(repeated, weights)
    experts = run_experts(b, cur, il, selected, "silu")
    b.gf.expand(experts)
    return sum_experts(b, experts, n_embd, n_tokens, il)
