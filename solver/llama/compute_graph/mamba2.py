"""The Mamba-2 mixer (``llm_build_mamba_base::build_mamba2_layer``, ``src/models/mamba-base.cpp``)
of the hybrids that interleave it with attention: nemotron_h_moe and granitehybrid.

At reserve (``init_full``: state head 0, one state cell per sequence, no rollback snapshots so
``K`` = 1): the in-projection split into z, xBC and dt by views, xBC's conv window
(``recurrent.conv_state``: the saved columns gathered by ``build_rs``, the window's tail
written back), ``SSM_CONV`` plus its bias and SiLU, x/B/C
views, ``SSM_SCAN`` reading the states straight from the cache (``build_rs``'s custom getter:
the gather uses ``rs_s_copy``'s tail view, the scan its first ``n_seqs`` ids), the new states
copied back, y + x * D, the z gate (``swiglu_split``), the grouped RMS norm and the
out-projection.
"""

from __future__ import annotations

from solver.ggml import ops as g
from solver.ggml.ops import Tensor
from solver.llama.compute_graph.builder import GraphBuilder
from solver.llama.compute_graph.recurrent import RsInputs, conv_state, state_tensors

# the weights a Mamba-2 layer needs (the conv bias is optional to loaders, but the graph adds it)
MAMBA2_WEIGHTS = (
    "ssm_in.weight", "ssm_conv1d.weight", "ssm_conv1d.bias", "ssm_dt.bias", "ssm_a", "ssm_d",
    "ssm_out.weight",
)  # fmt: skip


def mamba2_block(b: GraphBuilder, rs: RsInputs, il: int, cur: Tensor) -> Tensor:
    """llm_build_mamba_base::build_mamba2_layer with K = 1 (no rollback snapshots), from the
    normed input to the out-projection."""
    hp = b.hp
    n_seqs = b.ub.n_seqs
    n_seq_tokens = b.n_tokens // n_seqs
    d_conv, d_inner, d_state = hp.ssm_d_conv, hp.ssm_d_inner, hp.ssm_d_state
    n_head, n_group = hp.ssm_dt_rank, hp.ssm_n_group
    head_dim = d_inner // n_head
    channels = d_inner + 2 * n_group * d_state
    conv_all, ssm_all = state_tensors(b, il)
    zx = b.build_lora_mm(b.lw(il, "ssm_in"), cur, b.lw(il, "ssm_in", "scale"))
    zx = g.reshape(zx, zx.ne[0], n_seq_tokens, n_seqs)
    es = g.row_size(zx.type, 1)
    z = g.view_4d(zx, head_dim, n_head, n_seq_tokens, n_seqs, head_dim * es, zx.nb[1], zx.nb[2], 0)
    xbc = g.view_3d(zx, channels, n_seq_tokens, n_seqs, zx.nb[1], zx.nb[2], d_inner * es)
    dt = g.view_3d(zx, n_head, n_seq_tokens, n_seqs, zx.nb[1], zx.nb[2], (d_inner + channels) * es)
    conv_x = conv_state(b, rs, conv_all, xbc, d_conv, channels)
    xbc = g.ssm_conv(conv_x, b.lw(il, "ssm_conv1d"))
    xbc = g.unary(g.add(xbc, b.lw(il, "ssm_conv1d", "bias")), "silu")
    x, bm, cm = _x_b_c(xbc, head_dim, n_head, d_state, n_group, d_inner)
    dt = g.add(g.cont(dt), b.lw(il, "ssm_dt", "bias"))
    y_ssm = _scan_states(b, rs, ssm_all, x, dt, b.w(f"blk.{il}.ssm_a"), bm, cm)
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
    rs: RsInputs,
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
    copy_tail = rs.copy_tail
    states_all = g.get_rows(states, copy_tail)
    ssm = g.reshape(states, d_state, head_dim, n_head, s.ne[1])
    out = g.ssm_scan(ssm, x, dt, a, bm, cm, rs.copy_main, 1)
    b.gf.expand(out)
    i0 = rs.n_rs - copy_tail.ne[0]
    n_extra = rs.n_rs - n_seqs
    extra = g.view_2d(
        states_all, state_size, n_extra, states_all.nb[1], (n_seqs - i0) * states_all.nb[1]
    )
    b.gf.expand(g.cpy(extra, g.view_2d(s, state_size, n_extra, s.nb[1], n_seqs * s.nb[1])))
    return out


def check_mamba2_layers(b: GraphBuilder) -> None:
    """Refuse what the template with this block does not build: a recurrent layer without the
    Mamba-2 weights, an attention layer without separate or fused Q/K/V and wo."""
    from solver.llama.compute_graph.reserve import ComputeNotModelled  # reserve imports us

    hp, w = b.hp, b.model.weights
    for il in range(hp.n_layer):
        if hp.rs_layers[il]:
            missing = [n for n in MAMBA2_WEIGHTS if f"blk.{il}.{n}" not in w]
        else:
            fused = f"blk.{il}.attn_qkv.weight" in w
            roles = ("attn_output",) if fused else ("attn_q", "attn_k", "attn_v", "attn_output")
            missing = [f"{r}.weight" for r in roles if f"blk.{il}.{r}.weight" not in w]
        if missing:
            raise ComputeNotModelled(hp.arch, f"layer {il} has no {missing[0]}")
