"""Nemotron 3 (``nemotron_h_moe``): Mamba-2 mixers, attention and MoE FFNs, one per layer.

The graph function of ``src/models/nemotron-h.cpp`` (``nemotron_h_moe`` inherits it): each
layer is an RMS norm, then by the layer's kind (llama.cpp tells them apart by per-layer KV
heads and FFN widths) a Mamba-2 mixer (``llm_build_mamba_base::build_mamba2_layer``),
attention without RoPE over the KV cache, or routed up/down experts (sigmoid router with a
selection bias, squared-ReLU) plus an up/down shared expert; then the residual. The final
norm is the MTP seed (``h_nextn``), as in ``qwen35``, whose state helpers and output head are
reused.

The Mamba-2 mixer at reserve (``init_full``: state head 0, one state cell per sequence, no
rollback snapshots so ``K`` = 1): the conv window gathered by ``build_rs``, the in-projection
split into z, xBC and dt by views, the window's tail written back, ``SSM_CONV`` plus its bias
and SiLU, x/B/C views, ``SSM_SCAN`` reading the states straight from the cache
(``build_rs``'s custom getter: the gather uses ``rs_s_copy``'s tail view, the scan its first
``n_seqs`` ids), the new states copied back, y + x * D, the z gate (``swiglu_split``), the
grouped RMS norm and the out-projection. The MoE latent projections (Nemotron 3 Super) are
not modelled: such a file is refused with ``ComputeNotModelled``.
"""

from __future__ import annotations

from dataclasses import dataclass

from solver.ggml import ops as g
from solver.ggml.ops import I32, Tensor
from solver.llama.compute_graph.attention import attn_output, build_attn, build_qkv
from solver.llama.compute_graph.builder import GraphBuilder
from solver.llama.compute_graph.ffn import GATING_SIGMOID, MoeRouting, build_ffn, build_moe_ffn
from solver.llama.compute_graph.inputs import (
    AttnInputs,
    build_attn_inp,
    build_inp_embd,
    build_inp_out_ids,
)
from solver.llama.compute_graph.output import seeded_output_head
from solver.llama.compute_graph.recurrent import (
    RsInputs,
    build_rs,
    build_rs_inputs,
    state_tensors,
)

_MAMBA_WEIGHTS = (
    "ssm_in.weight", "ssm_conv1d.weight", "ssm_conv1d.bias", "ssm_dt.bias", "ssm_a", "ssm_d",
    "ssm_out.weight",
)  # fmt: skip
_ATTENTION_WEIGHTS = ("attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight")
_MOE_WEIGHTS = (
    "ffn_gate_inp.weight", "exp_probs_b.bias", "ffn_up_exps.weight", "ffn_down_exps.weight",
    "ffn_up_shexp.weight", "ffn_down_shexp.weight",
)  # fmt: skip


@dataclass(frozen=True)
class _Inputs:
    rs: RsInputs
    copy_main: Tensor  # s_copy_main: rs_s_copy's first n_seqs ids (the scan's)
    copy_tail: Tensor  # s_copy_tail: all but its first id (the getter's gather)
    attn: AttnInputs
    out_ids: Tensor
    routing: MoeRouting


def build_nemotron_h(b: GraphBuilder) -> None:
    """llama_model_nemotron_h::graph: embedding, layers, output head."""
    kinds = _layer_kinds(b)
    inp_l = build_inp_embd(b)
    b.gf.expand(inp_l)
    ins = _graph_inputs(b)
    for il, kind in enumerate(kinds):
        b.gf.segment = 1 + il
        cur = b.build_norm(inp_l, b.lw(il, "attn_norm"), None, il)
        b.cb(cur, "attn_norm", il)
        if kind == "mamba":
            cur = _mamba2(b, ins, il, cur)
        elif kind == "attention":
            cur = _attention(b, ins.attn, il, cur)
        else:
            cur = _moe(b, ins.routing, il, cur)
        inp_l = g.add(cur, inp_l)
    b.gf.segment = 1 + b.hp.n_layer
    seeded_output_head(b, inp_l, ins.out_ids)


def _layer_kinds(b: GraphBuilder) -> list[str]:
    """Each layer's kind as the loader decides it (recurrent; no FFN width: attention; else
    FFN), refusing a layer without the weights built here (dense FFNs, MoE latents)."""
    # reserve imports the recipe table, which imports this module: import the error late
    from solver.llama.compute_graph.reserve import ComputeNotModelled

    hp, w = b.hp, b.model.weights
    kinds = []
    for il in range(hp.n_layer):
        if hp.rs_layers and hp.rs_layers[il]:
            kind, needed = "mamba", _MAMBA_WEIGHTS
        elif f"blk.{il}.ffn_gate_inp.weight" in w or f"blk.{il}.ffn_up.weight" in w:
            kind, needed = "moe", _MOE_WEIGHTS
        else:
            kind, needed = "attention", _ATTENTION_WEIGHTS
        missing = [n for n in needed if f"blk.{il}.{n}" not in w]
        if missing:
            raise ComputeNotModelled(hp.arch, f"layer {il} has no {missing[0]}")
        if f"blk.{il}.ffn_latent_down.weight" in w or f"blk.{il}.attn_qkv.weight" in w:
            raise ComputeNotModelled(hp.arch, f"layer {il}: MoE latents / fused QKV not modelled")
        kinds.append(kind)
    return kinds


def _graph_inputs(b: GraphBuilder) -> _Inputs:
    """build_inp_mem_hybrid (state copy, then the KV cache's), output rows; no positions."""
    rs = build_rs_inputs(b)
    # build_rs_inp_impl makes both views once, for every layer
    copy_main = g.view_1d(rs.s_copy, b.ub.n_seqs, 0)
    copy_tail = g.view_1d(rs.s_copy, rs.n_rs - 1, g.row_size(I32, 1))
    attn = build_attn_inp(b, "kv")
    out_ids = build_inp_out_ids(b)
    routing = MoeRouting(
        gating=GATING_SIGMOID,
        norm_w=b.hp.expert_weights_norm,
        w_scale=b.hp.expert_weights_scale,
        act="relu_sqr",
    )
    return _Inputs(rs, copy_main, copy_tail, attn, out_ids, routing)


def _attention(b: GraphBuilder, attn: AttnInputs, il: int, cur: Tensor) -> Tensor:
    """build_attention_layer: separate Q/K/V, no RoPE, attention, wo (and its bias)."""
    hp = b.hp
    head, layer = hp.n_embd_head_k, hp.layers[il]
    q, k, v = build_qkv(b, il, cur, head, layer.n_head, layer.n_head_kv)
    cur = build_attn(b, attn, "kv", il, q, k, v, head, hp.n_embd_head_v, layer.n_head_kv)
    return attn_output(b, cur, il)


def _moe(b: GraphBuilder, routing: MoeRouting, il: int, cur: Tensor) -> Tensor:
    """build_ffn_layer: routed experts, then the shared expert (both squared-ReLU), added."""
    moe_out = build_moe_ffn(b, cur, il, routing)
    shexp = build_ffn(
        b, cur, b.lw(il, "ffn_up_shexp"), None, b.lw(il, "ffn_down_shexp"), "relu_sqr"
    )
    return g.add(moe_out, shexp)


def _mamba2(b: GraphBuilder, ins: _Inputs, il: int, cur: Tensor) -> Tensor:
    """build_mamba2_layer with K = 1 (no rollback snapshots)."""
    hp = b.hp
    n_seqs = b.ub.n_seqs
    n_seq_tokens = b.n_tokens // n_seqs
    d_conv, d_inner, d_state = hp.ssm_d_conv, hp.ssm_d_inner, hp.ssm_d_state
    n_head, n_group = hp.ssm_dt_rank, hp.ssm_n_group
    head_dim = d_inner // n_head
    channels = d_inner + 2 * n_group * d_state
    conv_all, ssm_all = state_tensors(b, il)
    conv = build_rs(b, ins.rs, conv_all, hp.n_embd_r, n_seqs)
    conv = g.reshape(conv, d_conv - 1, channels, n_seqs)
    zx = b.build_lora_mm(b.lw(il, "ssm_in"), cur, b.lw(il, "ssm_in", "scale"))
    zx = g.reshape(zx, zx.ne[0], n_seq_tokens, n_seqs)
    es = g.row_size(zx.type, 1)
    z = g.view_4d(zx, head_dim, n_head, n_seq_tokens, n_seqs, head_dim * es, zx.nb[1], zx.nb[2], 0)
    xbc = g.view_3d(zx, channels, n_seq_tokens, n_seqs, zx.nb[1], zx.nb[2], d_inner * es)
    dt = g.view_3d(zx, n_head, n_seq_tokens, n_seqs, zx.nb[1], zx.nb[2], (d_inner + channels) * es)
    conv_x = g.concat(conv, g.transpose(xbc), 0)
    last = g.view_3d(
        conv_x, d_conv - 1, channels, n_seqs, conv_x.nb[1], conv_x.nb[2],
        n_seq_tokens * conv_x.nb[0],
    )  # fmt: skip
    row_count = (d_conv - 1) * channels
    b.gf.expand(g.cpy(last, g.view_2d(conv_all, row_count, n_seqs, conv_all.nb[1], 0)))
    xbc = g.ssm_conv(conv_x, b.lw(il, "ssm_conv1d"))
    xbc = g.unary(g.add(xbc, b.lw(il, "ssm_conv1d", "bias")), "silu")
    x, bm, cm = _x_b_c(xbc, head_dim, n_head, d_state, n_group, d_inner)
    dt = g.add(g.cont(dt), b.lw(il, "ssm_dt", "bias"))
    y_ssm = _scan_states(b, ins, ssm_all, x, dt, b.w(f"blk.{il}.ssm_a"), bm, cm)
    d_total = d_state * d_inner
    y_row = g.row_size(y_ssm.type, d_total)
    state_offset = x.n_elements * g.row_size(x.type, 1)
    cells = ssm_all.ne[1]
    b.gf.expand(
        g.cpy(
            g.view_3d(y_ssm, d_total, n_seqs, 1, y_row, y_row * n_seqs, state_offset),
            g.view_3d(ssm_all, d_total, n_seqs, 1, ssm_all.nb[1], cells * ssm_all.nb[1], 0),
        )
    )
    xr = x.nb[1]
    y = g.view_4d(
        y_ssm, head_dim, n_head, n_seq_tokens, n_seqs, xr, n_head * xr, n_seq_tokens * n_head * xr,
        0,
    )  # fmt: skip
    y = g.add(y, g.mul(x, b.w(f"blk.{il}.ssm_d")))
    y = g.glu_split(g.cont(z), y, "swiglu")
    norm_w = b.lw(il, "ssm_norm")
    if norm_w is not None:  # grouped RMS norm
        y = g.reshape(y, d_inner // n_group, n_group, n_seq_tokens, n_seqs)
        y = b.build_norm(y, norm_w, None, il)
    y = g.reshape(y, d_inner, n_seq_tokens * n_seqs)
    return b.build_lora_mm(b.lw(il, "ssm_out"), y, b.lw(il, "ssm_out", "scale"))


def _x_b_c(
    xbc: Tensor, head_dim: int, n_head: int, d_state: int, n_group: int, d_inner: int
) -> tuple[Tensor, Tensor, Tensor]:
    """The convolved x (values), B and C (keys, queries) as views of xBC."""
    _, n_seq_tokens, n_seqs, _ = xbc.ne
    es = g.row_size(xbc.type, 1)
    nb1, nb2 = xbc.nb[1], xbc.nb[2]
    x = g.view_4d(xbc, head_dim, n_head, n_seq_tokens, n_seqs, head_dim * es, nb1, nb2, 0)
    bm = g.view_4d(
        xbc, d_state, n_group, n_seq_tokens, n_seqs, d_state * es, nb1, nb2, d_inner * es
    )
    cm = g.view_4d(
        xbc, d_state, n_group, n_seq_tokens, n_seqs, d_state * es, nb1, nb2,
        (d_inner + n_group * d_state) * es,
    )  # fmt: skip
    return x, bm, cm


def _scan_states(
    b: GraphBuilder,
    ins: _Inputs,
    s: Tensor,
    x: Tensor,
    dt: Tensor,
    a: Tensor,
    bm: Tensor,
    cm: Tensor,
) -> Tensor:
    """build_rs with get_ssm_rows: clear state rs_z, gather the extra states through the
    tail of rs_s_copy, scan from the cached states (ids: its first n_seqs), copy the extra
    states (none at reserve)."""
    n_seqs = b.ub.n_seqs
    state_size = b.hp.n_embd_s
    d_state, head_dim, n_head = b.hp.ssm_d_state, x.ne[0], x.ne[1]
    states = g.reshape(s, state_size, s.ne[1])
    b.gf.expand(g.scale_inplace(g.view_1d(states, state_size, 0)))
    rs, copy_tail = ins.rs, ins.copy_tail
    states_all = g.get_rows(states, copy_tail)
    ssm = g.reshape(states, d_state, head_dim, n_head, s.ne[1])
    out = g.ssm_scan(ssm, x, dt, a, bm, cm, ins.copy_main, 1)
    b.gf.expand(out)
    i0 = rs.n_rs - copy_tail.ne[0]
    n_extra = rs.n_rs - n_seqs
    extra = g.view_2d(
        states_all, state_size, n_extra, states_all.nb[1], (n_seqs - i0) * states_all.nb[1]
    )
    b.gf.expand(g.cpy(extra, g.view_2d(s, state_size, n_extra, s.nb[1], n_seqs * s.nb[1])))
    return out
