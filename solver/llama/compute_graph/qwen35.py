"""Qwen3.5 / Qwen3.6 (``qwen35``, ``qwen35moe``): gated DeltaNet layers between gated attention.

The graph function of ``src/models/qwen35moe.cpp`` (``qwen35.cpp`` differs only in its dense
FFN): every layer but each ``full_attention_interval``-th is a gated DeltaNet (linear
attention with a recurrent state) and the others are full attention whose Q projection also
carries a sigmoid output gate; the FFN is routed experts plus a sigmoid-gated shared expert
(or a dense FFN), each block between RMS norms with residuals. The MTP block after the trunk
is not part of the main graph.

The recurrent parts follow ``src/models/delta-net-base.cpp`` and ``src/llama-graph.cpp``:
``build_inp_mem_hybrid`` (the recurrent state's copy input, then the KV cache's inputs), and
the state gather, convolution window and fused ``GATED_DELTA_NET`` op of ``recurrent`` (the
pinned llama.cpp sets ``fused_gdn_ar``/``fused_gdn_ch`` and never probes them: ``auto_fgdn``
is false, so the chunked and autoregressive fallbacks are never built).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from solver.ggml import ops as g
from solver.ggml.ops import Tensor
from solver.llama.compute_graph.attention import build_attn, projection
from solver.llama.compute_graph.builder import GraphBuilder
from solver.llama.compute_graph.ffn import (
    GATING_SOFTMAX,
    MoeRouting,
    build_ffn,
    build_moe_ffn,
    dense_ffn,
)
from solver.llama.compute_graph.inputs import (
    MROPE_POSITIONS,
    AttnInputs,
    build_attn_inp,
    build_inp_embd,
    build_inp_out_ids,
    build_inp_pos,
)
from solver.llama.compute_graph.output import seeded_output_head
from solver.llama.compute_graph.recurrent import (
    RsInputs,
    build_rs,
    build_rs_inputs,
    conv_state,
    recurrent_attn,
    state_tensors,
)

_DELTA_NET_WEIGHTS = (
    "attn_qkv.weight", "attn_gate.weight", "ssm_conv1d.weight", "ssm_dt.bias", "ssm_a",
    "ssm_beta.weight", "ssm_alpha.weight", "ssm_norm.weight", "ssm_out.weight",
)  # fmt: skip
_ATTENTION_WEIGHTS = (
    "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
    "attn_q_norm.weight", "attn_k_norm.weight",
)  # fmt: skip


@dataclass(frozen=True)
class _Inputs:
    rs: RsInputs
    attn: AttnInputs
    inp_pos: Tensor
    out_ids: Tensor
    routing: MoeRouting


@dataclass(frozen=True)
class HybridBlocks:
    """What one gated-DeltaNet hybrid's graph function builds its own way; the skeleton
    (inputs, layer, MoE FFN, output head) is shared (qwen35moe.cpp, qwen3next.cpp)."""

    delta_net_weights: tuple[str, ...]  # a DeltaNet layer's weights beside blk.N.
    positions: Callable[[GraphBuilder], Tensor]
    delta_net: Callable[[GraphBuilder, RsInputs, int, Tensor], Tensor]
    gated_attention: Callable[[GraphBuilder, AttnInputs, Tensor, int, Tensor], Tensor]
    legacy_fused_in: bool = False  # a DeltaNet layer may instead carry one fused ssm_in
    experts_only: bool = False  # a layer with a dense FFN is refused


def build_hybrid(b: GraphBuilder, blocks: HybridBlocks) -> None:
    """The hybrid graph function: embedding, layers, output head."""
    _check_layers(b, blocks)
    inp_l = build_inp_embd(b)
    ins = _graph_inputs(b, blocks)
    for il in range(b.hp.n_layer):
        b.gf.segment = 1 + il
        inp_l = _layer(b, blocks, ins, il, inp_l)
    b.gf.segment = 1 + b.hp.n_layer
    seeded_output_head(b, inp_l, ins.out_ids)


def _check_layers(b: GraphBuilder, blocks: HybridBlocks) -> None:
    """Refuse a file whose layers are not the DeltaNet / gated-attention pair (with routed
    experts where ``blocks.experts_only``) that ``blocks`` builds."""
    # reserve imports the recipe table, which imports this module: import the error late
    from solver.llama.compute_graph.reserve import ComputeNotModelled

    hp, w = b.hp, b.model.weights
    for il in range(hp.n_layer):
        recurrent = hp.rs_layers[il] if hp.rs_layers else False
        needed = blocks.delta_net_weights if recurrent else _ATTENTION_WEIGHTS
        if recurrent and blocks.legacy_fused_in and f"blk.{il}.attn_qkv.weight" not in w:
            needed = ("ssm_in.weight", *needed[2:])  # the legacy fused projection
        missing = [n for n in needed if f"blk.{il}.{n}" not in w]
        if missing:
            raise ComputeNotModelled(hp.arch, f"layer {il} has no {missing[0]}")
        if not recurrent and f"blk.{il}.attn_qkv.weight" in w:
            raise ComputeNotModelled(hp.arch, f"layer {il}: a fused attn_qkv is not modelled")
        if blocks.experts_only and f"blk.{il}.ffn_gate_inp.weight" not in w:
            raise ComputeNotModelled(hp.arch, f"layer {il}: a dense FFN is not modelled")


def _graph_inputs(b: GraphBuilder, blocks: HybridBlocks) -> _Inputs:
    """build_inp_mem_hybrid (state copy, then the KV cache's), positions, output rows."""
    rs = build_rs_inputs(b)
    attn = build_attn_inp(b, "kv")
    inp_pos = blocks.positions(b)
    out_ids = build_inp_out_ids(b)
    # both graph functions pass softmax gating and weight normalisation whatever the GGUF says
    routing = MoeRouting.of(b, GATING_SOFTMAX, norm_w=True)
    return _Inputs(rs, attn, inp_pos, out_ids, routing)


def _layer(b: GraphBuilder, blocks: HybridBlocks, ins: _Inputs, il: int, inp_l: Tensor) -> Tensor:
    """One block: norm, DeltaNet or gated attention, residual, norm, FFN, residual."""
    cur = b.build_norm(inp_l, b.lw(il, "attn_norm"), None, il)
    b.cb(cur, "attn_norm", il)
    b.gf.expand(cur)
    if b.hp.rs_layers[il]:
        cur = blocks.delta_net(b, ins.rs, il, cur)
    else:
        cur = blocks.gated_attention(b, ins.attn, ins.inp_pos, il, cur)
    # cparams.embeddings_nextn_masked is off: the output rows are taken after the final norm
    cur = g.add(cur, inp_l)
    ffn_residual = cur
    cur = b.build_norm(cur, b.lw(il, "post_attention_norm"), None, il)
    cur = _ffn(b, ins.routing, il, cur)
    cur = g.add(cur, ffn_residual)
    b.cb(cur, "l_out", il)
    return cur


def _imrope_positions(b: GraphBuilder) -> Tensor:
    """IMRoPE: ``MROPE_POSITIONS`` positions per token."""
    return build_inp_pos(b, MROPE_POSITIONS)


# --- gated full attention ------------------------------------------------------------------


def _gated_attention(
    b: GraphBuilder, attn: AttnInputs, inp_pos: Tensor, il: int, cur: Tensor
) -> Tensor:
    """build_layer_attn: Q (with its gate half), norms, IMRoPE, attention, sigmoid gate, wo."""
    hp = b.hp
    n_tokens = b.n_tokens
    head = hp.n_embd_head_k
    n_head, n_head_kv = hp.layers[il].n_head, hp.layers[il].n_head_kv
    q_full, k, v = (projection(b, il, role, cur) for role in ("attn_q", "attn_k", "attn_v"))
    es = g.row_size(q_full.type, 1)
    q = g.view_3d(q_full, head, n_head, n_tokens, es * head * 2, es * head * 2 * n_head, 0)
    q = b.build_norm(q, b.lw(il, "attn_q_norm"), None, il)
    k = g.reshape(k, head, n_head_kv, n_tokens)
    k = b.build_norm(k, b.lw(il, "attn_k_norm"), None, il)
    gate = g.view_3d(
        q_full, head, n_head, n_tokens, es * head * 2, es * head * 2 * n_head, es * head
    )
    gate = g.cont_nd(gate, head * n_head, n_tokens)
    v = g.reshape(v, head, n_head_kv, n_tokens)
    q = g.rope(q, inp_pos)  # ggml_rope_multi: the shape of ggml_rope
    k = g.rope(k, inp_pos)
    cur = build_attn(b, attn, "kv", il, q, k, v, head, hp.n_embd_head_v, n_head_kv)
    cur = g.mul(cur, g.unary(gate, "sigmoid"))
    return b.build_lora_mm(b.lw(il, "attn_output"), cur, b.lw(il, "attn_output", "scale"))


# --- gated DeltaNet ------------------------------------------------------------------------


def _delta_net(b: GraphBuilder, rs: RsInputs, il: int, cur: Tensor) -> Tensor:
    """build_layer_attn_linear: projections, convolution, fused delta rule, gated norm, out."""
    n_seqs = b.ub.n_seqs
    n_seq_tokens = b.n_tokens // n_seqs
    n_v_heads = b.hp.ssm_dt_rank
    qkv_mixed = b.build_lora_mm(b.lw(il, "attn_qkv"), cur, b.lw(il, "attn_qkv", "scale"))
    qkv_mixed = g.reshape(qkv_mixed, qkv_mixed.ne[0], n_seq_tokens, n_seqs)
    z = b.build_lora_mm(b.lw(il, "attn_gate"), cur, b.lw(il, "attn_gate", "scale"))
    beta = b.build_lora_mm(b.lw(il, "ssm_beta"), cur, b.lw(il, "ssm_beta", "scale"))
    beta = g.unary(g.reshape(beta, 1, n_v_heads, n_seq_tokens, n_seqs), "sigmoid")
    alpha = b.build_lora_mm(b.lw(il, "ssm_alpha"), cur, b.lw(il, "ssm_alpha", "scale"))
    alpha = g.reshape(alpha, n_v_heads, n_seq_tokens, n_seqs)
    alpha = g.unary(g.add(alpha, b.lw(il, "ssm_dt", "bias")), "softplus")
    gate = g.mul(alpha, b.w(f"blk.{il}.ssm_a"))  # -exp(A_log) * softplus
    gate = g.reshape(gate, 1, n_v_heads, n_seq_tokens, n_seqs)
    # the fused op broadcasts K heads: no repeat
    conv = delta_net_conv(b, rs, il, qkv_mixed)
    output = recurrent_attn(b, conv.ssm_all, conv.q, conv.k, conv.v, gate, beta, conv.state)
    return gated_output(b, il, output, z, out_scale=True)


@dataclass(frozen=True)
class DeltaNetConv:
    """A DeltaNet layer's convolved Q, K, V (views of one conv output, Q and K L2-normed), its
    gathered delta-rule state and the state cache the fused op writes the new state into."""

    q: Tensor
    k: Tensor
    v: Tensor
    state: Tensor
    ssm_all: Tensor


def delta_net_conv(b: GraphBuilder, rs: RsInputs, il: int, qkv_mixed: Tensor) -> DeltaNetConv:
    """build_layer_attn_linear's convolution (qwen35moe.cpp, qwen3next.cpp): the layer's state
    rows, the conv window over the saved columns and the new tokens, silu(ssm_conv), Q/K/V
    as views of its channels, build_gdn_l2_norm (scale(rms_norm(x))) on Q and K."""
    hp = b.hp
    n_seqs = b.ub.n_seqs
    n_seq_tokens = b.n_tokens // n_seqs
    head_k, n_k_heads = hp.ssm_d_state, hp.ssm_n_group
    n_v_heads = hp.ssm_dt_rank
    head_v = hp.ssm_d_inner // n_v_heads
    conv_all, ssm_all = state_tensors(b, il)
    kernel = b.lw(il, "ssm_conv1d")
    channels = hp.ssm_d_inner + 2 * n_k_heads * head_k
    conv_input = conv_state(b, rs, conv_all, qkv_mixed, kernel.ne[0], channels)
    state = build_rs(b, rs, ssm_all, hp.n_embd_s, n_seqs)
    state = g.reshape(state, head_v, head_v, n_v_heads, n_seqs)
    conv = g.unary(g.ssm_conv(conv_input, kernel), "silu")
    row = g.row_size(conv.type, head_k * n_k_heads * 2 + head_v * n_v_heads)
    q_conv = g.view_4d(
        conv, head_k, n_k_heads, n_seq_tokens, n_seqs,
        g.row_size(conv.type, head_k), row, row * n_seq_tokens, 0,
    )  # fmt: skip
    k_conv = g.view_4d(
        conv, head_k, n_k_heads, n_seq_tokens, n_seqs,
        g.row_size(conv.type, head_k), row, row * n_seq_tokens,
        g.row_size(conv.type, head_k * n_k_heads),
    )  # fmt: skip
    v_conv = g.view_4d(
        conv, head_v, n_v_heads, n_seq_tokens, n_seqs,
        g.row_size(conv.type, head_v), row, row * n_seq_tokens,
        g.row_size(conv.type, 2 * head_k * n_k_heads),
    )  # fmt: skip
    q_conv = g.scale(g.rms_norm(q_conv))
    k_conv = g.scale(g.rms_norm(k_conv))
    return DeltaNetConv(q_conv, k_conv, v_conv, state, ssm_all)


def gated_output(b: GraphBuilder, il: int, output: Tensor, z: Tensor, *, out_scale: bool) -> Tensor:
    """The DeltaNet layer's end: the fused op's output RMS-normed, gated by silu(z), through
    ssm_out (with its scale where ``out_scale``: qwen35moe.cpp passes it, qwen3next.cpp not)."""
    hp = b.hp
    n_seqs = b.ub.n_seqs
    n_seq_tokens = b.n_tokens // n_seqs
    n_v_heads = hp.ssm_dt_rank
    head_v = hp.ssm_d_inner // n_v_heads
    z = g.reshape(z, head_v, n_v_heads, n_seq_tokens, n_seqs)
    normed = b.build_norm(output, b.lw(il, "ssm_norm"), None, il)
    cur = g.mul(normed, g.unary(z, "silu"))
    cur = g.reshape(cur, head_v * n_v_heads, n_seq_tokens, n_seqs)
    wo = b.lw(il, "ssm_out")
    cur = b.build_lora_mm(wo, cur, b.lw(il, "ssm_out", "scale") if out_scale else None)
    return g.reshape(cur, hp.n_embd, n_seq_tokens * n_seqs)


# --- FFN and output ------------------------------------------------------------------------


def _ffn(b: GraphBuilder, routing: MoeRouting, il: int, cur: Tensor) -> Tensor:
    """build_layer_ffn: routed experts plus the sigmoid-gated shared expert (qwen35moe), or
    the dense FFN (qwen35)."""
    if b.lw(il, "ffn_gate_inp") is None:
        return dense_ffn(b, cur, il, "silu")
    moe_out = build_moe_ffn(b, cur, il, routing)
    up = b.lw(il, "ffn_up_shexp")
    if up is None:
        return moe_out
    shexp = build_ffn(b, cur, up, b.lw(il, "ffn_gate_shexp"), b.lw(il, "ffn_down_shexp"), "silu")
    shared_gate = b.build_lora_mm(b.lw(il, "ffn_gate_inp_shexp"), cur)
    shexp = g.mul(shexp, g.unary(shared_gate, "sigmoid"))
    return g.add(moe_out, shexp)


QWEN35_BLOCKS = HybridBlocks(
    delta_net_weights=_DELTA_NET_WEIGHTS,
    positions=_imrope_positions,
    delta_net=_delta_net,
    gated_attention=_gated_attention,
)


def build_qwen35(b: GraphBuilder) -> None:
    """llama_model_qwen35moe::graph (and qwen35's)."""
    build_hybrid(b, QWEN35_BLOCKS)
