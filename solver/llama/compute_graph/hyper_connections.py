"""Hyper-connections (``src/models/deepseek4.cpp``): the residual stream as ``hc`` streams.

DeepSeek V4 (and GLM-5-Next, which reuses the ops) keeps ``hc`` copies of the residual,
n_embd x hc x tokens. Around each attention and FFN block:

- ``hc_pre`` (``build_hc_pre``): the streams, flattened and RMS-normed, are projected by the
  block's ``hc_*_fn`` into ``(2 + hc) * hc`` mixes per token; their first ``hc`` give the
  ``pre`` weights (times the scale, plus the base, sigmoid, plus eps), the next ``hc`` the
  ``post`` weights (the same, times 2), the last ``hc * hc`` the stream mixing matrix
  ``comb`` (the fused ``DSV4_HC_COMB``: Sinkhorn iterations); the block's input is the
  streams summed with the ``pre`` weights (the fused ``DSV4_HC_PRE``).
- ``hc_post`` (``build_hc_post``): the block's output spread back over the streams by
  ``post``, plus the residual streams mixed by ``comb`` (the fused ``DSV4_HC_POST``).
- ``hc_head`` (``build_hc_head``): before the output norm, the streams reduced to one with
  the head's own ``pre`` weights; with il = -1 llama.cpp takes the unfused sum (one MUL and
  ADD per stream) whatever the fused flags say.
- ``hc_expand``: the token embedding repeated into the streams (``hc_init``).

The pinned llama_context enables the three fused ops and probes them (``auto_fhc``, on the
one-token-per-sequence graph): each fused node must land on its layer's device, or the op is
disabled. Every backend runs them (CPU and RPC do), but the scheduler can still carry a
layer's unpinned ``hc_post`` to the next layer's device when the layers before run on the
CPU (glm5-next's last op of a layer is not pinned); ``solver.llama.compute_buffer`` replays
that probe and builds ``hc_post`` unfused then (``CacheParams.fused_hc_post``). Each fused
node carries its layer in ``il``. Only what allocation reads is kept: views, op order and
shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

from solver.ggml import ops as g
from solver.ggml.ops import Tensor
from solver.llama.compute_graph.builder import GraphBuilder


@dataclass(frozen=True)
class HcMix:
    """What ``hc_pre`` returns: the block's input and the weights ``hc_post`` needs."""

    cur: Tensor  # n_embd x tokens, the streams summed with the pre weights
    post: Tensor  # hc x tokens
    comb: Tensor  # hc x hc x tokens
    il: int  # the layer (the fused nodes' add_fused_node il)


@dataclass(frozen=True)
class HcWeights:
    """One hyper-connection's weights: the mixes projection, its scale (3) and base."""

    fn: Tensor
    scale: Tensor
    base: Tensor

    @classmethod
    def of_layer(cls, b: GraphBuilder, il: int, block: str) -> HcWeights:
        """Layer il's ``hc_attn`` or ``hc_ffn`` weights (``block``: "attn" or "ffn")."""
        return cls(
            b.lw(il, f"hc_{block}_fn"), b.lw(il, f"hc_{block}_scale"), b.lw(il, f"hc_{block}_base")
        )

    @classmethod
    def of_head(cls, b: GraphBuilder) -> HcWeights:
        """The output head's (``output_hc_*``)."""
        return cls(
            b.w("output_hc_fn.weight"), b.w("output_hc_scale.weight"), b.w("output_hc_base.weight")
        )


def hc_expand(b: GraphBuilder, inp: Tensor, hc: int) -> Tensor:
    """The embedding (n_embd x tokens) repeated into hc streams: n_embd x hc x tokens."""
    n_embd, n_tokens = inp.ne[0], inp.ne[1]
    cur = g.repeat_4d(g.reshape(inp, n_embd, 1, n_tokens), n_embd, hc, n_tokens, 1)
    b.cb(cur, "hc_init", -1)
    return cur


def hc_pre(b: GraphBuilder, x: Tensor, w: HcWeights, il: int) -> HcMix:
    """build_hc_pre (fused): mixes, pre/post weights, the comb matrix, the block's input."""
    hc = x.ne[1]
    mixes = _mixes(b, x, w.fn, "hc_mixes", il)
    pre = _gate(mixes, _elem(w.scale, 1, 0), _elem(w.base, hc, 0), hc, 0)
    pre = g.scale(pre)  # ggml_scale_bias(pre, 1, eps)
    b.cb(pre, "hc_pre", il)
    post = _gate(mixes, _elem(w.scale, 1, 1), _elem(w.base, hc, hc), hc, hc)
    post = g.scale(post)  # times 2
    b.cb(post, "hc_post", il)
    comb = g.dsv4_hc_comb(mixes, w.scale, w.base)
    b.cb(comb, "hc_comb", il)
    cur = g.dsv4_hc_pre(x, pre)
    cur.il = il
    return HcMix(cur, post, comb, il)


def hc_post(b: GraphBuilder, x: Tensor, residual: Tensor, mix: HcMix) -> Tensor:
    """build_hc_post: the block output x over the streams, plus the mixed residual; fused,
    or, where llama.cpp's probe disabled the fused op, per destination stream: x times its
    post weight plus each source stream times its comb weight, the streams concatenated."""
    if b.cache.fused_hc_post:
        out = g.dsv4_hc_post(x, residual, mix.post, mix.comb)
        out.il = mix.il
        return out
    n_embd, hc, nt = x.ne[0], residual.ne[1], x.ne[1]
    post, comb = mix.post, mix.comb
    out = None
    for dst in range(hc):
        cur = g.mul(x, g.view_2d(post, 1, nt, post.nb[1], dst * post.nb[0]))
        for src in range(hc):
            res = g.view_2d(residual, n_embd, nt, residual.nb[2], src * residual.nb[1])
            weight = g.view_2d(comb, 1, nt, comb.nb[2], dst * comb.nb[0] + src * comb.nb[1])
            cur = g.add(cur, g.mul(res, weight))
        cur = g.reshape(cur, n_embd, 1, nt)
        out = cur if out is None else g.concat(out, cur, 1)
    return out


def hc_head(b: GraphBuilder, x: Tensor, w: HcWeights) -> Tensor:
    """build_hc_head: the streams reduced to one (n_embd x tokens) before the output norm."""
    mixes = _mixes(b, x, w.fn, "hc_head_mixes", -1)
    pre = g.unary(g.add(g.mul(mixes, w.scale), w.base), "sigmoid")
    pre = g.scale(pre)  # ggml_scale_bias(pre, 1, eps)
    b.cb(pre, "hc_head_pre", -1)
    return _weighted_sum(x, pre)


def _mixes(b: GraphBuilder, x: Tensor, fn: Tensor, name: str, il: int) -> Tensor:
    """The streams flattened (hc * n_embd x tokens), RMS-normed, projected by ``fn``."""
    flat = g.reshape(x, x.ne[0] * x.ne[1], x.ne[2])
    mixes = g.mul_mat(fn, g.rms_norm(flat))
    b.cb(mixes, name, il)
    return mixes


def _elem(t: Tensor, n: int, i0: int) -> Tensor:
    """dsv4_view_1d: n elements of ``t`` from element i0."""
    return g.view_1d(t, n, g.row_size(t.type, i0))


def _gate(mixes: Tensor, scale: Tensor, base: Tensor, hc: int, i0: int) -> Tensor:
    """hc mixes per token from mix i0, times the scale plus the base, through a sigmoid."""
    cur = g.view_2d(mixes, hc, mixes.ne[1], mixes.nb[1], g.row_size(mixes.type, i0))
    return g.unary(g.add(g.mul(cur, scale), base), "sigmoid")


def _weighted_sum(x: Tensor, weights: Tensor) -> Tensor:
    """build_hc_pre's unfused path: sum over streams of x[:, h, :] * weights[h, :]."""
    n_embd, hc, n_tokens = x.ne[0], x.ne[1], x.ne[2]
    result = None
    for ih in range(hc):
        xh = g.view_2d(x, n_embd, n_tokens, x.nb[2], ih * x.nb[1])
        wh = g.view_2d(weights, 1, n_tokens, weights.nb[1], ih * weights.nb[0])
        cur = g.mul(xh, wh)
        result = cur if result is None else g.add(result, cur)
    return result
