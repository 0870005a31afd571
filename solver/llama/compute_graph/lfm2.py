"""LiquidAI LFM2 (``lfm2``, ``lfm2moe``): gated short convolutions between attention layers.

The graph function of ``src/models/lfm2.cpp`` (``lfm2moe.cpp`` builds the same graph). Its
layer is the shared pre-norm template (``recipes.build_generic``: operator norm, mixer, the
last layer's output rows, residual, FFN norm, dense FFN or sigmoid-routed experts with the
selection bias, residual); attention is qwen3's (per-head Q/K norms, then RoPE). What is its
own is the mixer of a layer without KV heads, ``shortconv_block``: the in-projection split
into B, C and x by views, ``B * x`` joined to the layer's saved conv columns (the recurrent
conv state, ``recurrent.conv_state``: gathered by ``build_rs``, its tail written back),
``SSM_CONV`` with the layer's kernel, the product with C and the out-projection. The state is
``n_embd x (conv_L_cache - 1)`` floats per sequence; there is no SSM state.

Contract: causal files without a sliding window (the non-causal ColBERT/encoder variants and
the iswa graph of a windowed file are refused, ``check_lfm2_layers``); reserve as in
``recurrent`` (state head 0, no rollback snapshots).
"""

from __future__ import annotations

from solver.ggml import ops as g
from solver.ggml.ops import Tensor
from solver.llama.compute_graph.builder import GraphBuilder
from solver.llama.compute_graph.recurrent import RsInputs, conv_state, state_tensors

_SHORTCONV_WEIGHTS = ("shortconv.conv", "shortconv.in_proj", "shortconv.out_proj")
_ATTENTION_WEIGHTS = ("attn_q", "attn_k", "attn_v", "attn_q_norm", "attn_k_norm", "attn_output")


def check_lfm2_layers(b: GraphBuilder) -> None:
    """Refuse what this graph does not build: a sliding window (lfm2.cpp's iswa graph), a
    non-causal file, a layer without its mixer's weights."""
    from solver.llama.compute_graph.reserve import ComputeNotModelled  # reserve imports us

    hp, w = b.hp, b.model.weights
    if hp.n_swa or not hp.causal_attn:
        raise ComputeNotModelled(hp.arch, "a sliding window or non-causal attention")
    for il in range(hp.n_layer):
        roles = _SHORTCONV_WEIGHTS if hp.rs_layers[il] else _ATTENTION_WEIGHTS
        missing = [r for r in roles if f"blk.{il}.{r}.weight" not in w]
        if missing:
            raise ComputeNotModelled(hp.arch, f"layer {il} has no {missing[0]}.weight")


def shortconv_block(b: GraphBuilder, rs: RsInputs, il: int, cur: Tensor) -> Tensor:
    """lfm2.cpp build_shortconv_block with K = 1 (no rollback snapshots)."""
    n_embd = b.hp.n_embd
    n_seqs = b.ub.n_seqs
    n_seq_tokens = b.n_tokens // n_seqs
    cur = g.reshape(cur, cur.ne[0], n_seq_tokens, n_seqs)
    bcx = b.build_lora_mm(b.lw(il, "shortconv.in_proj"), cur)
    chunk = bcx.ne[0] // 3
    es = g.row_size(bcx.type, 1)
    bm, cm, x = (
        g.view_3d(bcx, chunk, bcx.ne[1], bcx.ne[2], bcx.nb[1], bcx.nb[2], i * chunk * es)
        for i in range(3)
    )
    conv_all, _ = state_tensors(b, il)
    bx = conv_state(b, rs, conv_all, g.mul(bm, x), b.hp.n_shortconv_l_cache, n_embd)
    conv_out = g.ssm_conv(bx, b.lw(il, "shortconv.conv"))
    y = b.build_lora_mm(b.lw(il, "shortconv.out_proj"), g.mul(cm, conv_out))
    return g.reshape(y, y.ne[0], n_seq_tokens * n_seqs)
