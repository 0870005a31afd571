"""DeepSeek V4 (``deepseek4``): the graph function of ``src/models/deepseek4.cpp``.

The residual is ``hc`` hyper-connection streams (``hyper_connections``). Each layer: the
attention block between ``hc_pre``/``hc_post``, then the MoE FFN (sqrt-softplus routing with
the selection bias; the first ``hash_layer_count`` layers route by a token-id table,
``ffn_gate_tid2eid``, read with GET_ROWS at the input tokens) plus the shared expert, between
another pair. The attention: a compressed query (``q_a``, norm, ``q_b``, a per-head RMS
norm), one K/V head (``wkv``, norm), both roped on the rotary tail of the head, then by the
layer's compression ratio:

- 0: attention over the raw sliding-window cache alone;
- 4 (CSA): two compressors (``dsv4_cache.compress``: the layer's own and the lightning
  indexer's) write compressed positions; the indexer's scores (the fused
  ``LIGHTNING_INDEXER``) pick the top-k compressed cells; attention over the raw cache and
  the compressed cells, the latter masked to the top-k;
- 128 (HCA): one compressor; attention over the raw cache and every compressed cell.

The output is de-roped (``ROPE_BACK``), projected per output group (``wo_a``, 3-D) and by
``wo_b``. The head reduces the streams (``hc_head``) before the final norm and the logits.
The MTP graph (``graph_mtp``) is a separate context fit refuses (``hparams``).
"""

from __future__ import annotations

from solver.ggml import ops as g
from solver.ggml.ops import F16, F32, Tensor
from solver.llama.compute_graph.attention import build_attn_mha, top_k_mask
from solver.llama.compute_graph.builder import GraphBuilder
from solver.llama.compute_graph.dsa import indexer_query, lightning_top_k
from solver.llama.compute_graph.dsv4_cache import (
    CompInputs,
    CompressorWeights,
    Dsv4Inputs,
    build_dsv4_inputs,
    compress,
    compressed_k,
    raw_cache,
)
from solver.llama.compute_graph.ffn import (
    GATING_SQRT_SOFTPLUS,
    MoeRouting,
    build_moe_ffn,
    shared_expert,
)
from solver.llama.compute_graph.hyper_connections import (
    HcWeights,
    hc_expand,
    hc_head,
    hc_post,
    hc_pre,
)
from solver.llama.compute_graph.inputs import build_inp_embd, build_inp_out_ids, build_inp_pos
from solver.llama.compute_graph.kv_ops import cpy_k, get_k, hadamard
from solver.llama.compute_graph.output import logits
from solver.llama.kv_dsv4 import CSA_RATIO, HCA_RATIO


def build_deepseek4(b: GraphBuilder) -> None:
    """llama_model_deepseek4::graph: embedding, inputs, layers, the streams' head, logits."""
    hp = b.hp
    inp = build_inp_embd(b)
    inp_pos = build_inp_pos(b)
    out_ids = build_inp_out_ids(b)
    dsv4 = build_dsv4_inputs(b)
    b.gf.expand(dsv4.raw_mask)
    hc = b.lw(0, "hc_attn_fn").ne[0] // hp.n_embd
    inp_l = hc_expand(b, inp, hc)
    # deepseek4.cpp requires the key, and refuses any function but sqrt-softplus
    routing = MoeRouting.of(b, GATING_SQRT_SOFTPLUS, from_gguf=True)
    for il in range(hp.n_layer):
        b.gf.segment = 1 + il
        inp_l = _layer(b, dsv4, routing, il, inp_l, inp_pos)
    b.gf.segment = 1 + hp.n_layer
    flat = g.reshape(inp_l, hp.n_embd * hc, b.n_tokens)
    flat = g.get_rows(flat, out_ids)
    inp_l = g.reshape(flat, hp.n_embd, hc, b.ub.n_outputs)
    cur = hc_head(b, inp_l, HcWeights.of_head(b))
    cur = b.build_norm(cur, b.w("output_norm.weight"), None, -1)
    logits(b, cur, None, bias=False, softcap=False)


def _layer(
    b: GraphBuilder,
    dsv4: Dsv4Inputs,
    routing: MoeRouting,
    il: int,
    inp_l: Tensor,
    inp_pos: Tensor,
) -> Tensor:
    """One layer: attention and MoE FFN, each between hc_pre and hc_post."""
    residual = inp_l
    mix = hc_pre(b, inp_l, HcWeights.of_layer(b, il, "attn"), il)
    cur = b.build_norm(mix.cur, b.lw(il, "attn_norm"), None, il)
    cur = _attention(b, dsv4, il, cur, inp_pos)
    inp_l = hc_post(b, cur, residual, mix)
    residual = inp_l
    mix = hc_pre(b, inp_l, HcWeights.of_layer(b, il, "ffn"), il)
    for t in (residual, mix.post, mix.comb):
        b.gf.expand(t)
    cur = b.build_norm(mix.cur, b.lw(il, "ffn_norm"), None, il)
    tid2eid = b.lw(il, "ffn_gate_tid2eid")
    selected = g.get_rows(tid2eid, b.inp_tokens) if tid2eid is not None else None
    moe_out = build_moe_ffn(b, cur, il, routing, selected=selected)
    cur = hc_post(b, g.add(moe_out, shared_expert(b, cur, il, "silu")), residual, mix)
    b.cb(cur, "l_last", il)
    return cur


def _attention(b: GraphBuilder, dsv4: Dsv4Inputs, il: int, cur: Tensor, pos: Tensor) -> Tensor:
    """build_attention_impl: q and kv, the layer's compressors, attention, output."""
    hp = b.hp
    layer = hp.layers[il]
    head, n_head = layer.head_k, layer.n_head
    qr = b.build_norm(b.build_lora_mm(b.lw(il, "attn_q_a"), cur), b.lw(il, "attn_q_a_norm"),
                      None, il)  # fmt: skip
    q = g.reshape(b.build_lora_mm(b.lw(il, "attn_q_b"), qr), head, n_head, b.n_tokens)
    q = g.rope(g.rms_norm(q), pos)
    kv = b.build_norm(b.build_lora_mm(b.lw(il, "attn_kv"), cur), b.lw(il, "attn_kv_a_norm"),
                      None, il)  # fmt: skip
    kv = g.rope(g.reshape(kv, head, 1, b.n_tokens), pos)
    ratio = hp.compress_ratios[il]
    if ratio == CSA_RATIO:
        compress(b, dsv4.csa, CompressorWeights.of(b, il, "attn_compressor"), il, cur, head)
        lid_weights = CompressorWeights.of(b, il, "indexer_compressor")
        compress(b, dsv4.lid, lid_weights, il, cur, hp.indexer_head_size)
        top_k = _lightning_top_k(b, dsv4.lid, il, qr, cur, pos)
        out = _cache_attention(b, dsv4, il, q, kv, dsv4.csa, top_k)
    elif ratio == HCA_RATIO:
        compress(b, dsv4.hca, CompressorWeights.of(b, il, "attn_compressor"), il, cur, head)
        out = _cache_attention(b, dsv4, il, q, kv, dsv4.hca, None)
    else:
        out = _cache_attention(b, dsv4, il, q, kv, None, None)
    return _output(b, il, out, pos)


def _cache_attention(
    b: GraphBuilder,
    dsv4: Dsv4Inputs,
    il: int,
    q: Tensor,
    kv: Tensor,
    comp: CompInputs | None,
    top_k: Tensor | None,
) -> Tensor:
    """build_raw_attention / build_hca_attention / build_csa_lid_attention: the raw cache,
    with the compressed cells of ``comp`` beside it (masked to ``top_k`` when given)."""
    head = kv.ne[0]
    k_rot = dsv4.raw_k_rot
    if k_rot is not None:
        q, kv = hadamard(q, k_rot), hadamard(kv, k_rot)
    b.gf.expand(q)
    b.gf.expand(kv)
    raw = raw_cache(b, dsv4, il)
    b.gf.expand(cpy_k(raw, kv, dsv4.raw_k_idxs))
    k = get_k(raw, dsv4.raw_n_kv, head, 1, raw.ne[2])
    mask = dsv4.raw_mask
    if comp is not None:
        comp_k = compressed_k(b, comp, il, head)
        comp_k = g.view_4d(comp_k, *comp_k.ne[:2], comp.n_kv, comp_k.ne[3], *comp_k.nb[1:], 0)
        k = g.concat(k, comp_k, 2)
        zeros_type = F16 if b.cache.flash_attn else F32
        comp_mask = comp.mask if top_k is None else top_k_mask(comp.mask, top_k, zeros_type)
        mask = g.concat(mask, comp_mask, 0)
    out = build_attn_mha(b, q, k, k, mask, b.lw(il, "attn_sinks"), None)
    if k_rot is not None:
        out = hadamard(out, k_rot)
    return out


def _lightning_top_k(
    b: GraphBuilder, lid: CompInputs, il: int, qr: Tensor, cur: Tensor, pos: Tensor
) -> Tensor:
    """build_lid_top_k: the indexer's roped, rotated heads over its compressed cache, the
    top-k cells per token (``dsa.lightning_top_k``, the weights scaled before the split)."""
    q = hadamard(g.rope(indexer_query(b, il, qr), pos), lid.k_rot)
    k = compressed_k(b, lid, il, b.hp.indexer_head_size)
    k = g.view_4d(k, *k.ne[:2], lid.n_kv, k.ne[3], *k.nb[1:], 0)
    return lightning_top_k(b, il, q, k, cur, lid.mask)


def _output(b: GraphBuilder, il: int, out: Tensor, pos: Tensor) -> Tensor:
    """De-rope the heads, project each output group by its wo_a slice, then wo_b."""
    layer = b.hp.layers[il]
    head, n_head = layer.head_k, layer.n_head
    wo_a = b.lw(il, "attn_output_a")
    groups = n_head * head // wo_a.ne[0]
    if wo_a.ne[2] != groups:  # the loader makes the file's [H*D/G, R*G] a [H*D/G, R, G]
        wo_a = b.reshaped_weight(wo_a, (wo_a.ne[0], wo_a.ne[1] // groups, groups))
    groups, rank = wo_a.ne[2], wo_a.ne[1]
    out = g.rope_back(g.reshape(out, head, n_head, b.n_tokens), pos)
    out = g.permute(g.reshape(out, n_head * head // groups, groups, b.n_tokens), 0, 2, 1, 3)
    oa = g.permute(g.mul_mat(wo_a, out), 0, 2, 1, 3)
    oa = g.cont_nd(oa, rank * groups, b.n_tokens)
    return b.build_lora_mm(b.lw(il, "attn_output_b"), oa)
