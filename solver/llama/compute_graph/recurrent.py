"""The recurrent state of llama.cpp's hybrid and linear-attention layers, at reserve.

What ``src/llama-graph.cpp`` and ``src/models/delta-net-base.cpp`` share between the
architectures with a recurrent state (qwen35/qwen35moe, qwen3next, kimi-linear's KDA,
nemotron_h's and granitehybrid's Mamba-2 (``mamba2``), lfm2's short convolutions):
``build_rs_inputs`` (``llm_graph_input_rs``, the state-copy input, built once per graph),
``state_tensors`` (a layer's conv and delta-rule state rows of ``llama_memory_recurrent``),
``build_rs`` (gather each sequence's state from the state cache), ``conv_state``
(``build_conv_state``: the convolution window of saved columns plus the new tokens, its tail
written back) and ``recurrent_attn`` (``build_recurrent_attn`` with the fused
``GATED_DELTA_NET`` op, its new state copied back).

Contract: the graph at reserve (``init_full``): state head 0, no state to zero but the first
(``rs_z`` 0), as many state cells as sequences, so no extra states are copied; rollback
snapshots (``n_rs_seq``, speculative decoding) off: one state row per sequence. The pinned
llama.cpp sets ``fused_gdn_ar`` / ``fused_gdn_ch`` and never probes them, so only the fused
delta rule is built. Nodes are added in llama.cpp's order, so the allocator replay reserves
the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from solver.ggml import ops as g
from solver.ggml.ops import F32, I32, Tensor
from solver.llama.compute_graph.builder import GraphBuilder


@dataclass(frozen=True)
class RsInputs:
    """llm_graph_input_rs at reserve: the state-copy input and the state cells it gathers,
    and the two views of it build_rs_inp_impl makes once for every layer (a view enters the
    graph only where a layer reads it: Mamba-2's scan)."""

    s_copy: Tensor
    n_rs: int  # get_n_rs(): the whole state cache (init_full)
    copy_main: Tensor  # s_copy_main: the first n_seqs ids (the scan's)
    copy_tail: Tensor  # s_copy_extra: all but the first id (the state getter's gather)


def build_rs_inputs(b: GraphBuilder) -> RsInputs:
    """llm_graph_input_rs: the state-copy input over the whole state cache (max(1, n_seq_max)
    cells at reserve)."""
    n_rs = max(1, b.ub.n_seqs)
    s_copy = b.input(g.new_tensor(I32, n_rs), "rs_s_copy")
    copy_main = g.view_1d(s_copy, b.ub.n_seqs, 0)
    copy_tail = g.view_1d(s_copy, n_rs - 1, g.row_size(I32, 1))
    return RsInputs(s_copy, n_rs, copy_main, copy_tail)


def state_tensors(b: GraphBuilder, il: int) -> tuple[Tensor, Tensor]:
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


def build_rs(b: GraphBuilder, rs: RsInputs, s: Tensor, state_size: int, n_seqs: int) -> Tensor:
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


def conv_state(
    b: GraphBuilder,
    rs: RsInputs,
    conv_all: Tensor,
    qkv_mixed: Tensor,
    kernel_size: int,
    channels: int,
) -> Tensor:
    """build_conv_state: saved columns + new tokens (the conv input); its tail saved back."""
    n_seqs = b.ub.n_seqs
    saved = build_rs(b, rs, conv_all, b.hp.n_embd_r, n_seqs)
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


def recurrent_attn(
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
