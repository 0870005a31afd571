"""Qwen3.5 / Qwen3.6 (``qwen35``, ``qwen35moe``): gated DeltaNet layers between gated attention.

The graph function of ``src/models/qwen35moe.cpp`` (``qwen35.cpp`` differs only in its dense
FFN): every layer but each ``full_attention_interval``-th is a gated DeltaNet (linear
attention with a recurrent state) and the others are full attention whose Q projection also
carries a sigmoid output gate; the FFN is routed experts plus a sigmoid-gated shared expert
(or a dense FFN), each block between RMS norms with residuals. The MTP block after the trunk
is not part of the main graph.

The recurrent parts follow ``src/models/delta-net-base.cpp`` and ``src/llama-graph.cpp``:
``build_inp_mem_hybrid`` (the recurrent state's copy input, then the KV cache's inputs),
``build_rs`` (gather each sequence's state from the state cache), ``build_conv_state`` (the
convolution window: saved columns plus the new tokens, its tail written back) and
``build_recurrent_attn`` with the fused ``GATED_DELTA_NET`` op: the pinned llama.cpp sets
``fused_gdn_ar``/``fused_gdn_ch`` and never probes them (``auto_fgdn`` is false), so the
chunked and autoregressive fallbacks are never built. Rollback snapshots (``n_rs_seq``,
speculative decoding) are off: one state row per sequence, one snapshot.

The reserve context is ``init_full``: state head 0, no state to zero but the first
(``rs_z`` 0), and as many state cells as sequences, so no extra states are copied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from solver.ggml import ops as g
from solver.ggml.ops import F32, I32, Tensor
from solver.llama.compute_graph.attention import build_attn
from solver.llama.compute_graph.builder import GraphBuilder
from solver.llama.compute_graph.ffn import (
    GATING_SOFTMAX,
    MoeRouting,
    build_ffn,
    build_moe_ffn,
    dense_ffn,
)
from solver.llama.compute_graph.inputs import (
    AttnInputs,
    build_attn_inp,
    build_inp_embd,
    build_inp_out_ids,
)
from solver.llama.compute_graph.output import seeded_output_head

# llama_hparams::n_pos_per_embd for LLAMA_ROPE_TYPE_IMROPE (qwen35, qwen35moe): 4 positions
IMROPE_POSITIONS = 4

_DELTA_NET_WEIGHTS = (
    "attn_qkv.weight", "attn_gate.weight", "ssm_conv1d.weight", "ssm_dt.bias", "ssm_a",
    "ssm_beta.weight", "ssm_alpha.weight", "ssm_norm.weight", "ssm_out.weight",
)  # fmt: skip
_ATTENTION_WEIGHTS = (
    "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
    "attn_q_norm.weight", "attn_k_norm.weight",
)  # fmt: skip


@dataclass(frozen=True)
class _RsInputs:
    """llm_graph_input_rs at reserve: the state-copy input and the state cells it gathers."""

    s_copy: Tensor
    n_rs: int  # get_n_rs(): the whole state cache (init_full)


@dataclass(frozen=True)
class _Inputs:
    rs: _RsInputs
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
    delta_net: Callable[[GraphBuilder, _RsInputs, int, Tensor], Tensor]
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
    routing = MoeRouting(
        gating=GATING_SOFTMAX, norm_w=True, w_scale=b.hp.expert_weights_scale, act="silu"
    )
    return _Inputs(rs, attn, inp_pos, out_ids, routing)


def build_rs_inputs(b: GraphBuilder) -> _RsInputs:
    """llm_graph_input_rs: the state-copy input over the whole state cache (max(1, n_seq_max)
    cells at reserve)."""
    n_rs = max(1, b.ub.n_seqs)
    return _RsInputs(b.input(g.new_tensor(I32, n_rs), "rs_s_copy"), n_rs)


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
    """IMRoPE: ``IMROPE_POSITIONS`` positions per token."""
    return b.input(g.new_tensor(I32, b.n_tokens * IMROPE_POSITIONS), "inp_pos")


# --- gated full attention ------------------------------------------------------------------


def _gated_attention(
    b: GraphBuilder, attn: AttnInputs, inp_pos: Tensor, il: int, cur: Tensor
) -> Tensor:
    """build_layer_attn: Q (with its gate half), norms, IMRoPE, attention, sigmoid gate, wo."""
    hp = b.hp
    n_tokens = b.n_tokens
    head = hp.n_embd_head_k
    n_head, n_head_kv = hp.layers[il].n_head, hp.layers[il].n_head_kv
    q_full, k, v = (_projection(b, il, role, cur) for role in ("attn_q", "attn_k", "attn_v"))
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


def _projection(b: GraphBuilder, il: int, role: str, cur: Tensor) -> Tensor:
    """build_qkv's separate path without reshape: w @ cur, plus the optional bias."""
    t = b.build_lora_mm(b.lw(il, role), cur, b.lw(il, role, "scale"))
    bias = b.lw(il, role, "bias")
    return g.add(t, bias) if bias is not None else t


# --- gated DeltaNet ------------------------------------------------------------------------


def _delta_net(b: GraphBuilder, rs: _RsInputs, il: int, cur: Tensor) -> Tensor:
    """build_layer_attn_linear: projections, convolution, fused delta rule, gated norm, out."""
    hp = b.hp
    n_seqs = b.ub.n_seqs
    n_seq_tokens = b.n_tokens // n_seqs
    head_k, n_k_heads = hp.ssm_d_state, hp.ssm_n_group
    n_v_heads = hp.ssm_dt_rank
    head_v = hp.ssm_d_inner // n_v_heads
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
    conv_all, ssm_all = _state_tensors(b, il)
    kernel = b.lw(il, "ssm_conv1d")
    channels = hp.ssm_d_inner + 2 * n_k_heads * head_k
    conv_input = _conv_state(b, rs, conv_all, qkv_mixed, kernel.ne[0], channels)
    state = _build_rs(b, rs, ssm_all, hp.n_embd_s, n_seqs)
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
    # build_gdn_l2_norm: scale(rms_norm(x)); the fused op broadcasts K heads, no repeat
    q_conv = g.scale(g.rms_norm(q_conv))
    k_conv = g.scale(g.rms_norm(k_conv))
    output = _recurrent_attn(b, ssm_all, q_conv, k_conv, v_conv, gate, beta, state)
    z = g.reshape(z, head_v, n_v_heads, n_seq_tokens, n_seqs)
    normed = b.build_norm(output, b.lw(il, "ssm_norm"), None, il)
    cur = g.mul(normed, g.unary(z, "silu"))
    cur = g.reshape(cur, head_v * n_v_heads, n_seq_tokens, n_seqs)
    cur = b.build_lora_mm(b.lw(il, "ssm_out"), cur, b.lw(il, "ssm_out", "scale"))
    return g.reshape(cur, hp.n_embd, n_seq_tokens * n_seqs)


def _state_tensors(b: GraphBuilder, il: int) -> tuple[Tensor, Tensor]:
    """Layer il's recurrent state: conv columns (R) and delta-rule state (S), F32, one row per
    cell (llama_memory_recurrent's cache_r_l / cache_s_l), on the layer's state device."""
    cells = max(1, b.ub.n_seqs)
    tensors = []
    for kind, width in (("r", b.hp.n_embd_r), ("s", b.hp.n_embd_s)):
        t = g.new_tensor(F32, width, cells)
        t.kv_layer = il  # lives with the layer's KV / state (the state device of the layer)
        t.name = f"cache_{kind}_l{il}"
        tensors.append(t)
    return tensors[0], tensors[1]


def _build_rs(b: GraphBuilder, rs: _RsInputs, s: Tensor, state_size: int, n_seqs: int) -> Tensor:
    """llm_graph_context::build_rs: clear state rs_z, gather the sequences' states, copy the
    extra ones (none at reserve: as many cells as sequences)."""
    states = g.reshape(s, state_size, s.ne[1])
    b.gf.expand(g.scale_inplace(g.view_1d(states, state_size, 0)))
    states_all = g.get_rows(states, rs.s_copy)
    out = g.view_2d(states_all, state_size, n_seqs, states_all.nb[1], 0)
    b.gf.expand(out)
    n_extra = rs.n_rs - n_seqs
    extra = g.view_2d(states_all, state_size, n_extra, states_all.nb[1], n_seqs * states_all.nb[1])
    b.gf.expand(g.cpy(extra, g.view_2d(s, state_size, n_extra, s.nb[1], n_seqs * s.nb[1])))
    return out


def _conv_state(
    b: GraphBuilder,
    rs: _RsInputs,
    conv_all: Tensor,
    qkv_mixed: Tensor,
    kernel_size: int,
    channels: int,
) -> Tensor:
    """build_conv_state: saved columns + new tokens (the conv input); its tail saved back."""
    n_seqs = b.ub.n_seqs
    saved = _build_rs(b, rs, conv_all, b.hp.n_embd_r, n_seqs)
    saved = g.reshape(saved, kernel_size - 1, channels, n_seqs)
    conv_input = g.concat(saved, g.transpose(qkv_mixed), 0)
    row_count = (kernel_size - 1) * channels
    last = g.view_3d(
        conv_input, kernel_size - 1, channels, n_seqs, conv_input.nb[1], conv_input.nb[2],
        g.row_size(conv_input.type, conv_input.ne[0] - saved.ne[0]),
    )  # fmt: skip
    update = g.view_2d(conv_all, row_count, n_seqs, conv_all.nb[1], 0)
    b.gf.expand(g.cpy(last, update))
    return conv_input


def _recurrent_attn(
    b: GraphBuilder,
    ssm_all: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    gate: Tensor,
    beta: Tensor,
    state: Tensor,
) -> Tensor:
    """build_recurrent_attn without snapshots: the fused op, its output rows, the new state
    copied into the state cache."""
    s_v, h_v, n_seq_tokens, n_seqs = v.ne
    result = g.gated_delta_net(q, k, v, gate, beta, state, 1)
    rs = g.row_size
    output = g.view_4d(
        result, s_v, h_v, n_seq_tokens, n_seqs,
        rs(F32, s_v), rs(F32, s_v * h_v), rs(F32, s_v * h_v * n_seq_tokens), 0,
    )  # fmt: skip
    new_state = g.view_4d(
        result, s_v, s_v, h_v, n_seqs,
        rs(F32, s_v), rs(F32, s_v * s_v), rs(F32, s_v * s_v * h_v),
        rs(F32, s_v * h_v * n_seq_tokens * n_seqs),
    )  # fmt: skip
    n_embd_s = b.hp.n_embd_s
    b.gf.expand(g.cpy(new_state, g.view_2d(ssm_all, n_embd_s, n_seqs, ssm_all.nb[1], 0)))
    return output


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
