"""DeepSeek V4's cache inputs and compressors (``llama_kv_cache_dsv4``, ``build_inp_dsv4``).

``build_dsv4_inputs`` creates what ``llm_graph_context::build_inp_dsv4`` creates for the
reserve ubatch (``dsv4_build_reserve_comp_plan``): the raw sliding-window cache's indices,
mask and Hadamard rotation, then per compressed cache (``csa``: ratio 4, ``hca``: 128,
``lid``: the indexer's, ratio 4) the state positions, the persist/read/write indices and
the mask over its compressed cells, then the compressed caches' rotations. Restore and
snapshot indices exist only with speculative rollback (``n_rs_seq`` > 0), which fit refuses.

``compress`` is one compressor of a layer (deepseek4.cpp, ``build_attention_impl``): the
layer input projected into new state rows (kv, and a score plus its position embedding),
appended to the layer's state, the compressed positions pooled from them (soft-max weighted
over the ratio's rows, ``build_overlap_compressed_kv_from_state`` / ``build_hca_...``), RMS-
normed, roped, rotated and stored in the compressed K cache; then the rows the next ubatch
needs persisted into the state. Every DSV4 cache keeps one stream per sequence, whatever
``--kv-unified`` says (``solver.llama.kv_dsv4``).
"""

from __future__ import annotations

from dataclasses import dataclass

from solver.ggml import ops as g
from solver.ggml.ops import F16, F32, I32, I64, Tensor
from solver.llama.compute_graph.builder import GraphBuilder
from solver.llama.compute_graph.inputs import rotation_size
from solver.llama.compute_graph.kv_ops import cpy_k, get_k, hadamard
from solver.llama.kv_dsv4 import CSA_RATIO, HCA_RATIO, compressed_cells, state_size


@dataclass(frozen=True)
class CompInputs:
    """One compressed cache's inputs (``llm_graph_input_dsv4::comp_input``)."""

    name: str  # "csa", "hca" or "lid"
    ratio: int
    overlap: bool  # ratio-4 windows overlap: two halves per state row
    n_kv: int  # compressed cells
    state_rows: int  # state_size x streams (get_n_rows)
    state_pos: Tensor
    persist_src: Tensor
    persist_dst: Tensor
    read_idxs: Tensor
    write_idxs: Tensor
    write_pos: Tensor
    mask: Tensor
    k_rot: Tensor | None = None


@dataclass(frozen=True)
class Dsv4Inputs:
    """The raw cache's inputs and the three compressed caches'."""

    raw_n_kv: int
    raw_k_idxs: Tensor
    raw_mask: Tensor
    raw_k_rot: Tensor | None
    csa: CompInputs
    hca: CompInputs
    lid: CompInputs


def build_dsv4_inputs(b: GraphBuilder) -> Dsv4Inputs:
    """build_inp_dsv4 for the reserve ubatch (the graph takes its inputs in its own order)."""
    fa = b.cache.flash_attn
    raw_k_idxs = b.input(g.new_tensor(I64, b.n_tokens), "attn_inp_k_idxs")
    raw_n_kv = b.cache.kv_size_swa
    raw_mask = _mask(b, F16 if fa else F32, raw_n_kv, "attn_inp_kq_mask")
    head = b.hp.layers[0].head_k
    # the lid mask is F16 for the fused lightning indexer, its cache always rotated
    csa = _comp_inputs(b, "csa", CSA_RATIO, fa, _k_rot(b, head))
    hca = _comp_inputs(b, "hca", HCA_RATIO, fa, _k_rot(b, head))
    lid = _comp_inputs(b, "lid", CSA_RATIO, True, _rot_input(b, b.hp.indexer_head_size))
    return Dsv4Inputs(raw_n_kv, raw_k_idxs, raw_mask, _k_rot(b, head), csa, hca, lid)


def _comp_inputs(
    b: GraphBuilder, name: str, ratio: int, f16: bool, k_rot: Tensor | None
) -> CompInputs:
    """dsv4_build_comp_inputs over dsv4_build_reserve_comp_plan's sizes: a block per ratio
    tokens plus one per sequence, the state's rows of every stream at most persisted."""
    n_tokens = b.n_tokens
    overlap = ratio == CSA_RATIO
    n_kv = compressed_cells(b.cache.kv_size, ratio)
    state_rows = state_size(ratio) * _streams(b)
    n_blocks = n_tokens // ratio + b.ub.n_seqs
    n_persist = min(n_tokens, state_rows)

    def idx(ne0: int, what: str, ggml_type: int = I32) -> Tensor:
        return b.input(g.new_tensor(ggml_type, ne0), f"dsv4_{name}_{what}")

    return CompInputs(
        name, ratio, overlap, n_kv, state_rows,
        state_pos=idx(n_tokens, "state_pos"),
        persist_src=idx(n_persist, "state_persist_src_idxs"),
        persist_dst=idx(n_persist, "state_persist_dst_idxs"),
        read_idxs=idx((2 if overlap else 1) * ratio * n_blocks, "state_read_idxs"),
        write_idxs=idx(n_blocks, "state_write_idxs", I64),
        write_pos=idx(n_blocks, "state_write_pos"),
        mask=_mask(b, F16 if f16 else F32, n_kv, f"dsv4_{name}_kq_mask"),
        k_rot=k_rot,
    )  # fmt: skip


def _mask(b: GraphBuilder, ggml_type: int, n_kv: int, name: str) -> Tensor:
    """A mask over n_kv cells per stream (dsv4_comp_graph_n_stream: one per sequence)."""
    n_stream = _streams(b)
    return b.input(g.new_tensor(ggml_type, n_kv, b.n_tokens // n_stream, 1, n_stream), name)


def _rot_input(b: GraphBuilder, head: int) -> Tensor:
    """llama_kv_cache's K rotation: 64 wide, doubled while the cache's head allows."""
    n_rot = 64
    while head % (2 * n_rot) == 0:
        n_rot *= 2
    return b.input(g.new_tensor(F32, n_rot, n_rot), "attn_inp_k_rot")


def _k_rot(b: GraphBuilder, head: int) -> Tensor | None:
    """The rotation of a quantized K cache (the raw, csa and hca caches), else None."""
    return _rot_input(b, head) if rotation_size(b.cache.type_k, head) else None


# --- caches --------------------------------------------------------------------------------


def raw_cache(b: GraphBuilder, inp: Dsv4Inputs, il: int) -> Tensor:
    """Layer il's raw sliding-window K cache (one K head, a stream per sequence)."""
    head = b.hp.layers[il].head_k
    return b.kv_tensor("k", il, b.cache.type_k, head, inp.raw_n_kv, n_stream=_streams(b))


def compressed_k(b: GraphBuilder, inp: CompInputs, il: int, head: int) -> Tensor:
    """Layer il's compressed K cache of ``inp`` as attention reads it: every cell, every
    stream (``get_k`` of the cache's context)."""
    streams = _streams(b)
    cache = b.kv_tensor(inp.name, il, b.cache.type_k, head, inp.n_kv, n_stream=streams)
    return get_k(cache, inp.n_kv, head, 1, streams)


def _streams(b: GraphBuilder) -> int:
    """Streams of every DSV4 cache, and of the reserve graph: one per sequence (unified or
    not; the reserve ubatch has every sequence)."""
    return b.ub.n_seqs


# --- compressors ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CompressorWeights:
    """A compressor's weights: the kv and gate projections, position embedding, norm."""

    wkv: Tensor
    wgate: Tensor
    ape: Tensor
    norm: Tensor

    @classmethod
    def of(cls, b: GraphBuilder, il: int, prefix: str) -> CompressorWeights:
        """``attn_compressor`` (csa, hca) or ``indexer_compressor`` (lid) of layer il."""
        return cls(*(b.lw(il, f"{prefix}_{part}") for part in ("kv", "gate", "ape", "norm")))


def compress(
    b: GraphBuilder, inp: CompInputs, w: CompressorWeights, il: int, cur: Tensor, head: int
) -> None:
    """One compressor of layer il: new state rows, the compressed positions pooled from the
    state and stored in the compressed K cache, then the state rows persisted."""
    kv = b.build_lora_mm(w.wkv, cur)
    score = g.add(b.build_lora_mm(w.wgate, cur), g.get_rows(w.ape, inp.state_pos))
    state_kv, state_score = _state(b, inp, il, "kv"), _state(b, inp, il, "score")
    # dsv4_build_state_restore without rollback: views of the whole state; of those, the
    # current rows (dsv4_view_2d) start the source the compressed positions pool from
    rows = inp.state_rows
    restored_kv, restored_score = _rows(state_kv, rows), _rows(state_score, rows)
    source_kv = g.concat(_rows(restored_kv, rows), kv, 1)
    source_score = g.concat(_rows(restored_score, rows), score, 1)
    if inp.overlap:
        comp = _pool_overlap(inp, source_kv, source_score, head)
    else:
        n_blocks = inp.write_pos.ne[0]
        kv_rows = g.reshape(g.get_rows(source_kv, inp.read_idxs), head, inp.ratio, n_blocks)
        score_rows = g.reshape(g.get_rows(source_score, inp.read_idxs), head, inp.ratio, n_blocks)
        comp = _pool(kv_rows, score_rows)
    comp = b.build_norm(comp, w.norm, None, il)
    comp = g.rope(comp, inp.write_pos)
    if inp.k_rot is not None:
        comp = hadamard(comp, inp.k_rot)
    streams = _streams(b)
    cache = b.kv_tensor(inp.name, il, b.cache.type_k, head, inp.n_kv, n_stream=streams)
    b.gf.expand(cpy_k(cache, comp, inp.write_idxs))
    persist_kv = g.get_rows(kv, inp.persist_src)
    persist_score = g.get_rows(score, inp.persist_src)
    b.gf.expand(g.set_rows(_rows(state_kv, rows), persist_kv, inp.persist_dst))
    b.gf.expand(g.set_rows(_rows(state_score, rows), persist_score, inp.persist_dst))


def _state(b: GraphBuilder, inp: CompInputs, il: int, part: str) -> Tensor:
    """Layer il's compressor state tensor (``kv`` or ``score``): F32, n_embd_state x
    state_size x streams."""
    streams = _streams(b)
    width = 2 * (b.hp.indexer_head_size if inp.name == "lid" else b.hp.layers[il].head_k)
    if not inp.overlap:
        width //= 2
    rows = inp.state_rows // streams
    return b.kv_tensor(f"{inp.name}_state_{part}", il, F32, width, rows, n_stream=streams)


def _rows(state: Tensor, n_rows: int) -> Tensor:
    """get_kv_all / get_score_all: the state's rows of every stream, as one 2-D view."""
    return g.view_2d(state, state.ne[0], n_rows, state.nb[1], 0)


def _pool_overlap(inp: CompInputs, source_kv: Tensor, source_score: Tensor, head: int) -> Tensor:
    """build_overlap_compressed_kv_from_state: each block pools the previous window's first
    halves and its own window's second halves (a zero row, -inf score, pads the reads)."""
    kv_rows = g.get_rows(_append_zero_row(source_kv), inp.read_idxs)
    score_rows = g.get_rows(_append_zero_row(source_score), inp.read_idxs)
    n_read = inp.read_idxs.ne[0] // 2
    n_blocks = n_read // inp.ratio

    def half(rows: Tensor, offset: int) -> Tensor:
        view = g.view_2d(rows, head, n_read, rows.nb[1], offset)
        return g.reshape(g.cont(view), head, inp.ratio, n_blocks)

    second = n_read * kv_rows.nb[1] + g.row_size(kv_rows.type, head)
    kv_prev, score_prev = half(kv_rows, 0), half(score_rows, 0)
    kv_cur, score_cur = half(kv_rows, second), half(score_rows, second)
    values = g.concat(kv_prev, kv_cur, 1)
    scores = g.concat(score_prev, score_cur, 1)
    return _pool(values, scores)


def _append_zero_row(t: Tensor) -> Tensor:
    """dsv4_append_zero_row: t with one more row (its first row scaled to 0 or -inf)."""
    row = g.reshape(g.scale(g.view_1d(t, t.ne[0], 0)), t.ne[0], 1)
    return g.concat(t, row, 1)


def _pool(values: Tensor, scores: Tensor) -> Tensor:
    """Soft-max weighted sum over each block's rows: head x 1 x blocks."""
    values = g.cont(g.permute(values, 1, 0, 2, 3))
    scores = g.cont(g.permute(scores, 1, 0, 2, 3))
    comp = g.sum_rows(g.mul(values, g.soft_max(scores)))
    return g.cont(g.permute(comp, 1, 0, 2, 3))
