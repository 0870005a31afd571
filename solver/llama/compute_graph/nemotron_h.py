"""Nemotron 3 (``nemotron_h_moe``): Mamba-2 mixers, attention and MoE FFNs, one per layer.

The graph function of ``src/models/nemotron-h.cpp`` (``nemotron_h_moe`` inherits it): each
layer is an RMS norm, then by the layer's kind (llama.cpp tells them apart by per-layer KV
heads and FFN widths) a Mamba-2 mixer (``llm_build_mamba_base::build_mamba2_layer``),
attention without RoPE over the KV cache, or routed up/down experts (sigmoid router with a
selection bias, squared-ReLU) plus an up/down shared expert; then the residual. The final
norm is the MTP seed (``h_nextn``), as in ``qwen35``, whose state helpers and output head are
reused.

The Mamba-2 mixer is ``mamba2.mamba2_block`` (granitehybrid's too). The MoE latent
projections (Nemotron 3 Super) are not modelled: such a file is refused with
``ComputeNotModelled``.
"""

from __future__ import annotations

from dataclasses import dataclass

from solver.ggml import ops as g
from solver.ggml.ops import Tensor
from solver.llama.compute_graph.attention import attn_output, build_attn, build_qkv
from solver.llama.compute_graph.builder import GraphBuilder
from solver.llama.compute_graph.ffn import GATING_SIGMOID, MoeRouting, build_ffn, build_moe_ffn
from solver.llama.compute_graph.inputs import (
    AttnInputs,
    build_attn_inp,
    build_inp_embd,
    build_inp_out_ids,
)
from solver.llama.compute_graph.mamba2 import MAMBA2_WEIGHTS, mamba2_block
from solver.llama.compute_graph.output import seeded_output_head
from solver.llama.compute_graph.recurrent import RsInputs, build_rs_inputs

_ATTENTION_WEIGHTS = ("attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight")
_MOE_WEIGHTS = (
    "ffn_gate_inp.weight", "exp_probs_b.bias", "ffn_up_exps.weight", "ffn_down_exps.weight",
    "ffn_up_shexp.weight", "ffn_down_shexp.weight",
)  # fmt: skip


@dataclass(frozen=True)
class _Inputs:
    rs: RsInputs
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
            cur = mamba2_block(b, ins.rs, il, cur)
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
            kind, needed = "mamba", MAMBA2_WEIGHTS
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
    attn = build_attn_inp(b, "kv")
    out_ids = build_inp_out_ids(b)
    routing = MoeRouting.of(b, GATING_SIGMOID, act="relu_sqr")
    return _Inputs(rs, attn, out_ids, routing)


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
