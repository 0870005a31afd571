"""Qwen3-Next (``qwen3next``): qwen35moe's predecessor, gated DeltaNet layers between gated
attention, routed experts plus a sigmoid-gated shared expert in every layer.

The graph function of ``src/models/qwen3next.cpp``. It shares with ``qwen35``'s the layer
skeleton, the recurrent state (``build_rs``, the conv window, the fused ``GATED_DELTA_NET``
and the new state copied back), the FFN and the output head, which are reused from there. It
differs in:

- positions: plain ``ggml_rope_ext`` (NEOX), one position per token (no IMRoPE);
- gated attention: Q+gate reshaped to 4-D and split by two views, the gate made contiguous
  only after the attention (``ggml_cont_2d``), then its sigmoid;
- DeltaNet inputs: beta and alpha come from one ``ssm_ba`` projection, reshaped per key head
  and split by views (beta ``ggml_cont``, alpha ``ggml_cont_3d``);
- the fused op's key heads: the pinned qwen3next.cpp still repeats Q and K up to the value
  heads (``ggml_repeat_4d`` between reshapes) whenever they differ, fused op or not.

Files converted before ``attn_qkv``/``attn_gate`` carry one fused ``ssm_in`` per DeltaNet
layer: ``build_qkvz``'s legacy path splits it per key head into q, k, v and z by views and
concatenates q, k, v again.
"""

from __future__ import annotations

from solver.ggml import ops as g
from solver.ggml.ops import Tensor
from solver.llama.compute_graph.attention import build_attn, projection
from solver.llama.compute_graph.builder import GraphBuilder
from solver.llama.compute_graph.inputs import (
    AttnInputs,
    build_inp_pos,
)
from solver.llama.compute_graph.qwen35 import (
    HybridBlocks,
    build_hybrid,
    delta_net_conv,
    gated_output,
)
from solver.llama.compute_graph.recurrent import (
    RsInputs,
    recurrent_attn,
)

_DELTA_NET_WEIGHTS = (
    "attn_qkv.weight", "attn_gate.weight", "ssm_conv1d.weight", "ssm_dt.bias", "ssm_a",
    "ssm_ba.weight", "ssm_norm.weight", "ssm_out.weight",
)  # fmt: skip


def _gated_attention(
    b: GraphBuilder, attn: AttnInputs, inp_pos: Tensor, il: int, cur: Tensor
) -> Tensor:
    """build_layer_attn: Q+gate split by views, norms, rope, attention, gate cont + sigmoid."""
    hp = b.hp
    n_tokens = b.n_tokens
    head = hp.n_embd_head_k
    n_head, n_head_kv = hp.layers[il].n_head, hp.layers[il].n_head_kv
    q_full, k, v = (projection(b, il, role, cur) for role in ("attn_q", "attn_k", "attn_v"))
    q_full = g.reshape(q_full, head * 2, n_head, n_tokens, 1)
    nb = q_full.nb
    q = g.view_4d(q_full, head, n_head, n_tokens, 1, nb[1], nb[2], nb[3], 0)
    es = g.row_size(q_full.type, 1)
    gate = g.view_4d(q_full, head, n_head, n_tokens, 1, nb[1], nb[2], nb[3], head * es)
    k = g.reshape(k, head, n_head_kv, n_tokens)
    v = g.reshape(v, head, n_head_kv, n_tokens)
    q = b.build_norm(q, b.lw(il, "attn_q_norm"), None, il)
    k = b.build_norm(k, b.lw(il, "attn_k_norm"), None, il)
    q = g.rope(q, inp_pos)
    k = g.rope(k, inp_pos)
    cur = build_attn(b, attn, "kv", il, q, k, v, head, hp.n_embd_head_v, n_head_kv)
    gate = g.cont_nd(gate, head * n_head, n_tokens)
    cur = g.mul(cur, g.unary(gate, "sigmoid"))
    return b.build_lora_mm(b.lw(il, "attn_output"), cur, b.lw(il, "attn_output", "scale"))


def _delta_net(b: GraphBuilder, rs: RsInputs, il: int, cur: Tensor) -> Tensor:
    """build_layer_attn_linear: projections, convolution, repeated Q/K heads, fused delta
    rule, gated norm, out."""
    n_seqs = b.ub.n_seqs
    n_seq_tokens = b.n_tokens // n_seqs
    n_k_heads, n_v_heads = b.hp.ssm_n_group, b.hp.ssm_dt_rank
    qkv_mixed, z = _qkvz(b, il, cur, n_seq_tokens, n_seqs)
    beta, gate = _beta_alpha(b, il, cur, n_seq_tokens, n_seqs)
    conv = delta_net_conv(b, rs, il, qkv_mixed)
    q_conv, k_conv = conv.q, conv.k
    if n_k_heads != n_v_heads:
        q_conv = _repeat_heads(q_conv, n_v_heads // n_k_heads, n_seq_tokens, n_seqs)
        k_conv = _repeat_heads(k_conv, n_v_heads // n_k_heads, n_seq_tokens, n_seqs)
    output = recurrent_attn(b, conv.ssm_all, q_conv, k_conv, conv.v, gate, beta, conv.state)
    return gated_output(b, il, output, z, out_scale=False)


def _qkvz(
    b: GraphBuilder, il: int, cur: Tensor, n_seq_tokens: int, n_seqs: int
) -> tuple[Tensor, Tensor]:
    """build_qkvz: attn_qkv and attn_gate, or the legacy ssm_in split per key head (q, k, v, z
    views; z and each of q, k, v made contiguous; q, k, v concatenated)."""
    wqkv = b.lw(il, "attn_qkv")
    if wqkv is not None:
        qkv_mixed = b.build_lora_mm(wqkv, cur)
        qkv_mixed = g.reshape(qkv_mixed, qkv_mixed.ne[0], n_seq_tokens, n_seqs)
        return qkv_mixed, b.build_lora_mm(b.lw(il, "attn_gate"), cur)
    hp = b.hp
    head_k, n_k_heads, n_v_heads = hp.ssm_d_state, hp.ssm_n_group, hp.ssm_dt_rank
    head_v = hp.ssm_d_inner // n_v_heads
    v_per_k = head_v * n_v_heads // n_k_heads
    mixed = b.build_lora_mm(b.lw(il, "ssm_in"), cur)
    mixed = g.reshape(mixed, 2 * head_k + 2 * v_per_k, n_k_heads, n_seq_tokens, n_seqs)
    nb, es = mixed.nb, g.row_size(mixed.type, 1)
    parts = []
    for width, offset in (
        (head_k, 0), (head_k, head_k), (v_per_k, 2 * head_k), (v_per_k, 2 * head_k + v_per_k)
    ):  # fmt: skip
        parts.append(
            g.view_4d(
                mixed, width, n_k_heads, n_seq_tokens, n_seqs, nb[1], nb[2], nb[3], offset * es
            )
        )
    query, key, value, z = parts
    z = g.cont(z)
    query = g.cont_nd(query, head_k * n_k_heads, n_seq_tokens, n_seqs)
    key = g.cont_nd(key, head_k * n_k_heads, n_seq_tokens, n_seqs)
    value = g.cont_nd(value, head_v * n_v_heads, n_seq_tokens, n_seqs)
    qkv_mixed = g.concat(g.concat(query, key, 0), value, 0)
    return qkv_mixed, z


def _beta_alpha(
    b: GraphBuilder, il: int, cur: Tensor, n_seq_tokens: int, n_seqs: int
) -> tuple[Tensor, Tensor]:
    """ssm_ba split per key head into beta (sigmoid) and alpha (softplus(a + dt) * A)."""
    hp = b.hp
    n_k_heads, n_v_heads = hp.ssm_n_group, hp.ssm_dt_rank
    per_head = n_v_heads // n_k_heads
    mixed = b.build_lora_mm(b.lw(il, "ssm_ba"), cur)
    mixed = g.reshape(mixed, 2 * per_head, n_k_heads, n_seq_tokens, n_seqs)
    nb = mixed.nb
    beta = g.view_4d(mixed, per_head, n_k_heads, n_seq_tokens, n_seqs, nb[1], nb[2], nb[3], 0)
    alpha = g.view_4d(
        mixed, per_head, n_k_heads, n_seq_tokens, n_seqs, nb[1], nb[2], nb[3],
        per_head * g.row_size(mixed.type, 1),
    )  # fmt: skip
    beta = g.unary(g.cont(beta), "sigmoid")
    alpha = g.cont_nd(alpha, n_v_heads, n_seq_tokens, n_seqs)
    alpha = g.unary(g.add(alpha, b.lw(il, "ssm_dt", "bias")), "softplus")
    gate = g.mul(alpha, b.w(f"blk.{il}.ssm_a"))  # -exp(A_log) * softplus
    beta = g.reshape(beta, 1, n_v_heads, n_seq_tokens, n_seqs)
    gate = g.reshape(gate, 1, n_v_heads, n_seq_tokens, n_seqs)
    return beta, gate


def _repeat_heads(x: Tensor, factor: int, n_seq_tokens: int, n_seqs: int) -> Tensor:
    """The repeat-interleave of Q/K key heads up to the value heads (reshape, repeat_4d,
    reshape back)."""
    head, n_k_heads = x.ne[0], x.ne[1]
    x = g.reshape(x, head, 1, n_k_heads, n_seq_tokens * n_seqs)
    x = g.repeat_4d(x, head, factor, n_k_heads, n_seq_tokens * n_seqs)
    return g.reshape(x, head, n_k_heads * factor, n_seq_tokens, n_seqs)


QWEN3NEXT_BLOCKS = HybridBlocks(
    delta_net_weights=_DELTA_NET_WEIGHTS,
    positions=build_inp_pos,
    delta_net=_delta_net,
    gated_attention=_gated_attention,
    legacy_fused_in=True,
    experts_only=True,
)


def build_qwen3next(b: GraphBuilder) -> None:
    """llama_model_qwen3next::graph: qwen35's skeleton with these blocks."""
    build_hybrid(b, QWEN3NEXT_BLOCKS)
