"""Kimi Linear (``kimi-linear``): KDA linear-attention layers between MLA layers without RoPE.

The graph function of ``src/models/kimi-linear.cpp``. Its layer is the shared pre-norm
template (``recipes.build_generic``: attention norm, mixer, the last layer's output rows,
residual, FFN norm, dense FFN or sigmoid-routed experts plus the shared expert, residual);
what is its own is the mixer. A layer without KV heads is KDA (Kimi delta attention, this
module's ``kda_block``): Q, K and V each through their own short causal convolution, whose
windows are three slices of one recurrent conv-state row (``causal_conv1d``); a per-channel
forget gate ``-exp(A) * softplus(f_b(f_a(x)) + dt_bias)``; a sigmoid beta; the fused
``GATED_DELTA_NET`` on L2-normed Q and K against the head x head state; a gated RMS norm with
the sigmoid of the low-rank ``g_b(g_a(x))``; the output projection. The other layers are
MLA with the absorption optimisation and no RoPE (``attention.mla_attention`` with
``rope=False``), over the hybrid memory's K-only cache.

Shared with the gated-DeltaNet hybrids (``recurrent``): the state-copy input, ``build_rs`` and
the layer's state tensors, and the fused op with its new state copied back. The pinned
llama.cpp always takes the fused path (``fused_gdn_ar`` / ``fused_gdn_ch`` set, never probed).
"""

from __future__ import annotations

from solver.ggml import ops as g
from solver.ggml.ops import Tensor
from solver.llama.compute_graph.builder import GraphBuilder
from solver.llama.compute_graph.recurrent import (
    RsInputs,
    build_rs,
    recurrent_attn,
    state_tensors,
)

_KDA_WEIGHTS = (
    "ssm_conv1d_q.weight", "ssm_conv1d_k.weight", "ssm_conv1d_v.weight", "ssm_f_a.weight",
    "ssm_f_b.weight", "ssm_beta.weight", "ssm_a", "ssm_dt.bias", "ssm_g_a.weight",
    "ssm_g_b.weight", "ssm_norm.weight", "attn_output.weight",
)  # fmt: skip


def check_kimi_layers(b: GraphBuilder) -> None:
    """Refuse what this graph does not build: a KDA layer without its weights, a legacy MLA
    layer with an unsplit kv_b (llama.cpp then attends over a cache the hybrid memory does
    not have), a MoE layer without its shared expert."""
    from solver.llama.compute_graph.reserve import ComputeNotModelled  # reserve imports us

    hp, w = b.hp, b.model.weights
    for il in range(hp.n_layer):
        if hp.rs_layers[il]:
            missing = [n for n in _KDA_WEIGHTS if f"blk.{il}.{n}" not in w]
            if f"blk.{il}.attn_qkv.weight" not in w and f"blk.{il}.attn_q.weight" not in w:
                missing.append("attn_q.weight")
        else:  # the graph multiplies by wq directly: no q_a/q_b path
            needed = ("attn_q.weight", "attn_k_b.weight", "attn_v_b.weight")
            missing = [n for n in needed if f"blk.{il}.{n}" not in w]
        if f"blk.{il}.ffn_gate_inp.weight" in w and f"blk.{il}.ffn_up_shexp.weight" not in w:
            missing.append("ffn_up_shexp.weight")
        if missing:
            raise ComputeNotModelled(hp.arch, f"layer {il} has no {missing[0]}")


def kda_block(
    b: GraphBuilder, rs: RsInputs, il: int, cur: Tensor, *, reshape_input: bool = True
) -> Tensor:
    """The KDA branch of kimi-linear.cpp's layer, from the normed input to the output
    projection. ``reshape_input``: the output gate reads the input through kimi-linear.cpp's
    3-D and back 2-D reshapes (glm5-next.cpp reads it as it is: two view nodes fewer)."""
    hp = b.hp
    b.gf.expand(cur)  # the graph function expands the attention norm before either branch
    n_head, head = hp.layers[il].n_head, hp.n_embd_head_kda
    n_seqs = b.ub.n_seqs
    n_seq_tokens = b.n_tokens // n_seqs
    conv_all, ssm_all = state_tensors(b, il)
    conv_state = build_rs(b, rs, conv_all, hp.n_embd_r, n_seqs)
    q, k, v = (
        _causal_conv1d(b, il, conv_all, conv_state, index, x, w)
        for index, (x, w) in enumerate(_qkv_inputs(b, il, cur))
    )
    g1 = b.build_lora_mm(b.lw(il, "ssm_f_b"), b.build_lora_mm(b.lw(il, "ssm_f_a"), cur))
    g1 = g.unary(g.add(g1, b.lw(il, "ssm_dt", "bias")), "softplus")
    g1 = g.reshape(g1, head, n_head, b.n_tokens)
    g1 = g.mul(g1, g.reshape(b.w(f"blk.{il}.ssm_a"), 1, n_head, 1))
    g1 = g.reshape(g1, head, n_head, n_seq_tokens, n_seqs)
    beta = b.build_lora_mm(b.lw(il, "ssm_beta"), cur)
    beta = g.unary(g.reshape(beta, 1, n_head, n_seq_tokens, n_seqs), "sigmoid")
    if reshape_input:
        cur = g.reshape(cur, cur.ne[0], n_seq_tokens, n_seqs)
    state = build_rs(b, rs, ssm_all, hp.n_embd_s, n_seqs)
    state = g.reshape(state, head, head, n_head, n_seqs)
    q = g.scale(g.rms_norm(q))  # build_gdn_l2_norm
    k = g.scale(g.rms_norm(k))
    output = g.cont(recurrent_attn(b, ssm_all, q, k, v, g1, beta, state))
    cur_2d = g.reshape(cur, cur.ne[0], n_seq_tokens * n_seqs) if reshape_input else cur
    g2 = b.build_lora_mm(b.lw(il, "ssm_g_b"), b.build_lora_mm(b.lw(il, "ssm_g_a"), cur_2d))
    g2 = g.reshape(g2, head, n_head, n_seq_tokens * n_seqs)
    output = g.reshape(output, head, n_head, n_seq_tokens * n_seqs)
    normed = b.build_norm(output, b.lw(il, "ssm_norm"), None, il)
    gated = g.mul(normed, g.unary(g2, "sigmoid"))
    gated = g.cont_nd(gated, head * n_head, b.n_tokens)
    return b.build_lora_mm(b.lw(il, "attn_output"), gated)


def _qkv_inputs(b: GraphBuilder, il: int, cur: Tensor) -> list[tuple[Tensor, Tensor | None]]:
    """(input, projection) of Q, K and V: the normed input with attn_q/k/v, or the
    contiguous thirds of a fused attn_qkv product with no projection left to apply."""
    wqkv = b.lw(il, "attn_qkv")
    if wqkv is None:
        return [(cur, b.lw(il, role)) for role in ("attn_q", "attn_k", "attn_v")]
    qkv = g.mul_mat(wqkv, cur)
    width = b.hp.n_embd_head_kda * b.hp.layers[il].n_head
    thirds = (g.view_2d(qkv, width, b.n_tokens, qkv.nb[1], i * g.row_size(qkv.type, width))
              for i in range(3))  # fmt: skip
    return [(g.cont(t), None) for t in thirds]


def _causal_conv1d(
    b: GraphBuilder,
    il: int,
    conv_all: Tensor,
    conv_state: Tensor,
    index: int,
    x: Tensor,
    proj: Tensor | None,
) -> Tensor:
    """kimi-linear.cpp causal_conv1d for Q (0), K (1) or V (2): its slice of the gathered
    conv state joined to the projected tokens, the window's tail copied back to its slice of
    the state cache, the short convolution, SiLU, heads."""
    hp = b.hp
    n_head, head = hp.layers[il].n_head, hp.n_embd_head_kda
    d_conv, d_inner = hp.ssm_d_conv, head * n_head
    n_seqs = b.ub.n_seqs
    n_seq_tokens = b.n_tokens // n_seqs
    es = g.row_size(conv_state.type, 1)
    slice_size = (d_conv - 1) * d_inner
    state_x = g.view_3d(
        conv_state, d_conv - 1, d_inner, n_seqs, (d_conv - 1) * es, hp.n_embd_r * es,
        index * slice_size * es,
    )  # fmt: skip
    x = g.mul_mat(proj, x) if proj is not None else x
    x = g.reshape(x, d_inner, n_seq_tokens, n_seqs)
    conv_x = g.concat(state_x, g.transpose(x), 0)
    last = g.view_3d(conv_x, d_conv - 1, d_inner, n_seqs, conv_x.nb[1], conv_x.nb[2],
                     n_seq_tokens * conv_x.nb[0])  # fmt: skip
    # state head 0 at reserve: the first sequence's slice starts at the slice's offset
    target = g.view_3d(conv_all, d_conv - 1, d_inner, n_seqs, (d_conv - 1) * es,
                       hp.n_embd_r * es, index * slice_size * es)  # fmt: skip
    b.gf.expand(g.cpy(last, target))
    kernel = g.reshape(b.lw(il, f"ssm_conv1d_{'qkv'[index]}"), d_conv, d_inner)
    out = g.ssm_conv(conv_x, kernel)
    out = g.unary(g.reshape(out, d_inner, b.n_tokens), "silu")
    return g.reshape(out, head, n_head, n_seq_tokens, n_seqs)
