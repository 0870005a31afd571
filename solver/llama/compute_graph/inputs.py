"""The graph's inputs (``llm_graph_input_*`` of ``src/llama-graph.cpp``).

Each function creates the input tensors llama.cpp's ``build_inp_*`` creates, in the same
order and with the same names, so the allocator sees the same leafs. ``build_inp_embd``
also builds the token embedding (with its three ``ggml_build_forward_select`` branches);
``build_attn_inp`` builds, per KV cache, the index inputs, the KQ mask and the Hadamard
rotation matrices of a quantized cache (``AttnInputs``), and for minimax-m3's sparse
attention the indexer cache's indices and the block-selection inputs (``MsaInputs``).
"""

from __future__ import annotations

from dataclasses import dataclass

from solver.errors import BadInput
from solver.ggml import ops as g
from solver.ggml.ops import F16, F32, I32, I64, Tensor
from solver.llama.compute_graph.builder import CacheParams, GraphBuilder

# GGML_MROPE_SECTIONS: llama_hparams::n_pos_per_embd() with MRoPE / IMRoPE (qwen35, qwen3vl)
MROPE_POSITIONS = 4
# llm_arch_supports_mixed_batch (llama-arch.cpp): architectures without the mixed branch
NO_MIXED_BATCH_ARCHS = frozenset(
    {"cogvlm", "deepseek4", "graniteswitch", "eagle3", "dflash", "gemma4-assistant"}
)


def build_inp_embd(b: GraphBuilder, tok_scale: float = 1.0) -> Tensor:
    """build_inp_embd: token rows, or given embeddings, or a mix (one branch computes; the
    mix only where the architecture takes mixed batches).

    With deepstack layers (qwen3vl) the rows are ``n_embd_inp`` wide (token rows padded with
    zeros) and the result is a view of their first ``n_embd`` columns, ``res->t_inp_embd``,
    whose other slices the deepstack layers add (``deepstack_slice``)."""
    hp = b.hp
    n_tokens = b.n_tokens
    n_embd_inp = hp.n_embd_inp
    tok_embd = b.w("token_embd.weight")
    if tok_embd is None:
        raise BadInput(f"{hp.arch}: the model has no token_embd.weight")

    def token_rows(ids: Tensor) -> Tensor:
        rows = g.get_rows(tok_embd, ids)
        return g.pad(rows, n_embd_inp - hp.n_embd) if n_embd_inp != hp.n_embd else rows

    tokens = b.input(g.new_tensor(I32, n_tokens), "inp_tokens")
    b.inp_tokens = tokens
    embd = b.input(g.new_tensor(F32, n_embd_inp, n_tokens), "inp_embd")
    tok = token_rows(tokens)
    branches = [tok, embd]
    if hp.arch not in NO_MIXED_BATCH_ARCHS:
        mixed_tokens = b.input(g.new_tensor(I32, n_tokens), "inp_mixed_tokens")
        mixed_slots = b.input(g.new_tensor(I64, n_tokens), "inp_mixed_slots")
        mixed_embd = b.input(g.new_tensor(F32, n_embd_inp, n_tokens), "inp_mixed_embd")
        branches.append(g.set_rows(g.dup(mixed_embd), token_rows(mixed_tokens), mixed_slots))
    b.gf.select(branches)
    cur = tok
    if n_embd_inp != hp.n_embd:
        cur = g.view_2d(cur, hp.n_embd, n_tokens, cur.nb[1], 0)
    # deepstack models scale the token rows only, through the scale_rows input
    scale_tok_only = hp.f_embedding_scale != 0.0 and hp.n_deepstack_layers > 0
    if hp.f_embedding_scale != 0.0 and not scale_tok_only:
        cur = g.scale(cur if cur.is_contiguous() else g.cont(cur))
    if scale_tok_only or tok_scale != 1.0:
        scale_rows = b.input(g.new_tensor(F32, 1, n_tokens), "inp_scale_rows")
        cur = g.mul(cur if cur.is_contiguous() else g.cont(cur), scale_rows)
    b.cb(cur, "embd", -1)
    b.gf.expand(cur)
    return cur


def deepstack_slice(b: GraphBuilder, inp_embd: Tensor, il: int) -> Tensor:
    """qwen3vl.cpp: the input rows' slice layer il adds to its output (a view of
    ``res->t_inp_embd``, ``build_inp_embd``'s unscaled result)."""
    n_embd = b.hp.n_embd
    offset = (il + 1) * g.row_size(F32, n_embd)
    return g.view_2d(inp_embd, n_embd, b.n_tokens, inp_embd.nb[1], offset)


def build_inp_pos(b: GraphBuilder, per_token: int = 1) -> Tensor:
    """build_inp_pos: ``per_token`` positions per token (llama_hparams::n_pos_per_embd: 4
    with MRoPE/IMRoPE)."""
    return b.input(g.new_tensor(I32, b.n_tokens * per_token), "inp_pos")


def build_inp_attn_scale(b: GraphBuilder) -> Tensor | None:
    """Llama-4 style temperature tuning input (mistral3, deepseek2), if the model has it."""
    if not b.hp.f_attn_temp_scale:
        return None
    return b.input(g.new_tensor(F32, 1, 1, b.n_tokens), "inp_attn_scale")


def build_inp_out_ids(b: GraphBuilder) -> Tensor:
    """build_inp_out_ids: the rows whose logits are output."""
    return b.input(g.new_tensor(I32, b.ub.n_outputs), "out_ids")


def build_kq_mask(b: GraphBuilder, n_kv: int, f16: bool | None = None) -> Tensor:
    """The KQ mask over n_kv cells, per stream (F16 for flash attention, or when ``f16``)."""
    c = b.cache
    n_stream = 1 if c.kv_unified else b.ub.n_seqs
    mask_type = F16 if (c.flash_attn if f16 is None else f16) else F32
    t = g.new_tensor(mask_type, n_kv, b.n_tokens // n_stream, 1, n_stream)
    return b.input(t, "attn_inp_kq_mask")


def rotation_size(cache_type: int, head: int) -> int:
    """n_rot_k / n_rot_v of llama_kv_cache: Hadamard rotation for quantized K/V caches."""
    if not g.is_quantized(cache_type) or head <= 0 or head % 64 != 0:
        return 0
    return 64


@dataclass(frozen=True)
class CacheInputs:
    """The inputs of one KV cache (llm_graph_input_attn_kv): where new K/V rows go, the mask."""

    n_kv: int  # cells the attention reads (the cache size at reserve)
    k_idxs: Tensor
    v_idxs: Tensor | None  # None with MLA (V is a view of K)
    mask: Tensor
    k_rot: Tensor | None  # Hadamard rotation of a quantized K cache
    v_rot: Tensor | None


@dataclass(frozen=True)
class MsaInputs:
    """minimax-m3's MSA inputs (``build_attn_inp_kv_msa``'s indexer indices, then
    ``llm_graph_input_msa``) and the per-graph sizes its layers share: the cache's cells
    ``n_kv``, ``ns`` streams of ``n_tps`` tokens, ``n_ps`` positions in ``nblk`` blocks."""

    k_idxs: Tensor  # where the indexer cache's new K rows go
    bias: Tensor  # F32 nblk x n_tokens: the latest blocks forced into the top-k
    pos_mask: Tensor  # F32 n_ps x n_tokens: 0 / -inf by position
    pos_slot_i: Tensor  # I32 n_ps x ns: position -> cell
    pos_slot_f: Tensor | None  # F32 n_ps x ns: the same, gatherable (decode graphs)
    cell_blk: Tensor | None  # I32 n_kv x ns: cell -> position block (batch graphs)
    mask_f32: Tensor | None  # the KQ mask cast to F32 (batch graphs)
    n_kv: int
    ns: int
    n_tps: int
    n_ps: int
    nblk: int

    @property
    def decode(self) -> bool:
        """One token per stream: the gathering decode path (else the per-stream mask path)."""
        return self.n_tps == 1


@dataclass(frozen=True)
class AttnInputs:
    """The attention inputs of the graph: the full cache, and the SWA cache with iswa, or
    the lightning indexer's cache with dsa, or with msa (when MSA runs) its inputs."""

    base: CacheInputs
    swa: CacheInputs | None = None
    lid: CacheInputs | None = None
    msa: MsaInputs | None = None

    def for_layer(self, is_swa: bool) -> CacheInputs:
        """The cache a layer reads: the SWA one for a sliding-window layer of an iswa model."""
        return self.swa if is_swa and self.swa is not None else self.base


def build_attn_inp(b: GraphBuilder, kind: str) -> AttnInputs:
    """build_attn_inp_kv / _kv_iswa / _k / _k_dsa / _kv_msa (``kind`` "kv" / "iswa" / "mla" /
    "dsa" / "msa")."""
    if kind == "dsa":
        return AttnInputs(base=_cache_inputs(b, "mla", b.cache.kv_size, None), lid=_lid_inputs(b))
    if kind == "msa":
        base = _cache_inputs(b, "kv", b.cache.kv_size, None)
        return AttnInputs(base=base, msa=_msa_inputs(b, base.mask) if msa_runs(b.cache) else None)
    base_swa = False if kind == "iswa" else None
    base = _cache_inputs(b, kind, b.cache.kv_size, base_swa)
    swa = _cache_inputs(b, kind, b.cache.kv_size_swa, True) if kind == "iswa" else None
    return AttnInputs(base=base, swa=swa)


def _cache_inputs(b: GraphBuilder, kind: str, n_kv: int, swa: bool | None) -> CacheInputs:
    """One cache's inputs, created in llama.cpp's order: k_idxs, v_idxs, mask, rotations.

    ``swa``: the cache holds the sliding-window layers (True), the others (False), or all
    layers (None)."""
    c = b.cache
    k_idxs = b.input(g.new_tensor(I64, b.n_tokens), "attn_inp_k_idxs")
    v_idxs = None
    if kind != "mla":
        width = b.n_tokens * (b.model.v_width_max if c.v_trans else 1)
        v_idxs = b.input(g.new_tensor(I64, width), "attn_inp_v_idxs")
    mask = build_kq_mask(b, n_kv)
    k_rot = v_rot = None
    if kind != "mla":
        k_rot, v_rot = _rotation_inputs(b, _cache_head_k(b, swa))
    return CacheInputs(n_kv=n_kv, k_idxs=k_idxs, v_idxs=v_idxs, mask=mask, k_rot=k_rot,
                       v_rot=v_rot)  # fmt: skip


def _lid_inputs(b: GraphBuilder) -> CacheInputs:
    """build_attn_inp_k_dsa_impl's indexer part: k_idxs, its mask (F16: the fused lightning
    indexer, which llama_context enables unconditionally) and the Hadamard rotation that
    llama_kv_cache always gives a DeepSeek indexer cache (64 wide, doubled while the indexer
    head allows)."""
    k_idxs = b.input(g.new_tensor(I64, b.n_tokens), "attn_inp_k_idxs")
    mask = build_kq_mask(b, b.cache.kv_size, f16=True)
    head, n_rot = b.hp.indexer_head_size, 64
    while head % (2 * n_rot) == 0:
        n_rot *= 2
    k_rot = b.input(g.new_tensor(F32, n_rot, n_rot), "attn_inp_k_rot")
    return CacheInputs(n_kv=b.cache.kv_size, k_idxs=k_idxs, v_idxs=None, mask=mask,
                       k_rot=k_rot, v_rot=None)  # fmt: skip


# llama_kv_cache_msa_context::get_n_pos: positions padded to 256 (max(n_pad, 256), the MSA
# cache's n_pad being 1), at least 256; the reserve graphs see an empty cache, so 256
MSA_POS_PAD = 256


def msa_positions(n_pos: int, block: int) -> int:
    """minimax-m3.cpp's n_ps: get_n_pos (the cached positions padded to MSA_POS_PAD, at least
    that) padded to whole blocks of ``block`` positions."""
    padded = max(MSA_POS_PAD, -(-n_pos // MSA_POS_PAD) * MSA_POS_PAD)
    return -(-padded // block) * block


def msa_runs(c: CacheParams) -> bool:
    """minimax-m3.cpp's msa_enabled: flash attention (MSA needs its V layout) and one
    sequence or per-sequence streams; else every layer attends densely."""
    return c.flash_attn and (c.n_seq_max == 1 or not c.kv_unified)


def _msa_inputs(b: GraphBuilder, kq_mask: Tensor) -> MsaInputs:
    """The indexer cache's k_idxs, then llm_graph_input_msa's tensors, sized by the KQ mask
    (cells x tokens per stream x streams) and the positions padded to whole blocks."""
    k_idxs = b.input(g.new_tensor(I64, b.n_tokens), "attn_inp_k_idxs")
    n_kv, n_tps, ns = kq_mask.ne[0], kq_mask.ne[1], kq_mask.ne[3]
    blk = b.hp.indexer_block_size
    n_ps = msa_positions(b.cache.n_pos, blk)
    nblk = n_ps // blk
    bias = b.input(g.new_tensor(F32, nblk, b.n_tokens), "msa_bias")
    pos_mask = b.input(g.new_tensor(F32, n_ps, b.n_tokens), "msa_pos_mask")
    pos_slot_i = b.input(g.new_tensor(I32, n_ps, ns), "msa_pos_slot_i")
    pos_slot_f = cell_blk = mask_f32 = None
    if n_tps == 1:
        pos_slot_f = b.input(g.new_tensor(F32, n_ps, ns), "msa_pos_slot_f")
    else:
        cell_blk = b.input(g.new_tensor(I32, n_kv, ns), "msa_cell_blk")
        mask_f32 = g.cast(kq_mask, F32)
    return MsaInputs(k_idxs, bias, pos_mask, pos_slot_i, pos_slot_f, cell_blk, mask_f32,
                     n_kv, ns, n_tps, n_ps, nblk)  # fmt: skip


def _cache_head_k(b: GraphBuilder, swa: bool | None) -> int:
    """llama_kv_cache's n_embd_head_k_all: the K head width of the cache's own layers, -1
    when they differ (gemma4's global and sliding caches each have one width)."""
    hp = b.hp
    heads = {
        layer.head_k
        for il, layer in enumerate(hp.layers)
        if hp.layer_has_kv(il) and (swa is None or layer.is_swa == swa)
    }
    return heads.pop() if len(heads) == 1 else (hp.n_embd_head_k if not heads else -1)


def _rotation_inputs(b: GraphBuilder, head_k_all: int) -> tuple[Tensor | None, Tensor | None]:
    """The K and V Hadamard matrices of quantized caches (llama_kv_cache's n_rot_k/n_rot_v):
    64 wide, K doubled while the cache's K head width allows it."""
    c = b.cache
    head_k, head_v = b.hp.n_embd_head_k, b.hp.n_embd_head_v
    k_rot = v_rot = None
    n_rot_k = rotation_size(c.type_k, head_k) if head_k_all > 0 else 0
    n_rot_v = rotation_size(c.type_v, head_v)
    if n_rot_k:
        while head_k_all % (2 * n_rot_k) == 0:
            n_rot_k *= 2
        k_rot = b.input(g.new_tensor(F32, n_rot_k, n_rot_k), "attn_inp_k_rot")
    if n_rot_v:
        v_rot = b.input(g.new_tensor(F32, n_rot_v, n_rot_v), "attn_inp_v_rot")
    return k_rot, v_rot
