"""The KV cache's graph operations (``src/llama-kv-cache.cpp``) and the Hadamard rotation.

``cpy_k`` / ``cpy_v`` write the ubatch's new K/V rows into the cache tensors (``set_rows``
at the index inputs); ``get_k`` / ``get_v`` view the cache as the attention reads it. A V
cache without flash attention is stored transposed (``v_trans``): one row per channel.
``hadamard`` is ``llama_mul_mat_hadamard`` (``src/llama-impl.h``), the rotation applied to
Q/K/V and the output when the cache is quantized.
"""

from __future__ import annotations

from solver.ggml import ops as g
from solver.ggml.ops import Tensor


def hadamard(cur: Tensor, rot: Tensor) -> Tensor:
    """llama_mul_mat_hadamard (llama-impl.h): rows of ``cur`` times the rotation ``rot``."""
    n = rot.ne[0]
    if not cur.is_contiguous():
        res = g.cont_nd(cur, n, cur.n_elements // n)
    else:
        res = g.reshape(cur, n, cur.n_elements // n)
    res = g.mul_mat(rot, res)
    res.params = {"hint": "hadamard"}  # ggml_mul_mat_set_hint(GGML_HINT_SRC0_IS_HADAMARD)
    return g.reshape(res, *cur.ne)


def cpy_k(k: Tensor, k_cur: Tensor, k_idxs: Tensor) -> Tensor:
    """llama_kv_cache::cpy_k: the new K rows into the cache."""
    n_embd_gqa = k_cur.ne[0] * k_cur.ne[1]
    k_cur = g.view_2d(k_cur, n_embd_gqa, k_cur.ne[2], k_cur.nb[2], 0)
    if k.ne[2] > 1:
        k = g.reshape(k, n_embd_gqa, k.ne[1] * k.ne[2])
    return g.set_rows(k, k_cur, k_idxs)


def cpy_v(v: Tensor, v_cur: Tensor, v_idxs: Tensor, v_trans: bool) -> Tensor:
    """llama_kv_cache::cpy_v: the new V rows into the cache, one element per row if transposed."""
    n_embd_gqa = v_cur.ne[0] * v_cur.ne[1]
    n_tokens = v_cur.ne[2]
    if not v_trans:
        v_cur = g.view_2d(v_cur, n_embd_gqa, n_tokens, v_cur.nb[2], 0)
        if v.ne[2] > 1:
            v = g.reshape(v, n_embd_gqa, v.ne[1] * v.ne[2])
        return g.set_rows(v, v_cur, v_idxs)
    if g.row_size(v_cur.type, n_embd_gqa) == v_cur.nb[2]:
        v_cur = g.reshape(v_cur, n_embd_gqa, n_tokens)
    else:
        v_cur = g.cont_nd(v_cur, n_embd_gqa, n_tokens)
    if n_embd_gqa < v.ne[0]:
        v_cur = g.pad(v_cur, v.ne[0] - n_embd_gqa)
    v_view = g.reshape(v, 1, v.n_elements)
    v_cur = g.reshape(v_cur, 1, v_cur.n_elements)
    return g.set_rows(v_view, v_cur, v_idxs)


def get_k(k: Tensor, n_kv: int, head: int, n_head_kv: int, n_stream: int) -> Tensor:
    """llama_kv_cache::get_k: head x n_head_kv x n_kv x n_stream view of the K cache."""
    rs = g.row_size
    width, size = k.ne[0], k.ne[1]
    return g.view_4d(
        k, head, n_head_kv, n_kv, n_stream,
        rs(k.type, head), rs(k.type, width), rs(k.type, width * size), 0,
    )  # fmt: skip


def get_v(v: Tensor, n_kv: int, head: int, n_head_kv: int, n_stream: int, v_trans: bool) -> Tensor:
    """llama_kv_cache::get_v: the V cache as attention reads it (n_kv first if transposed)."""
    rs = g.row_size
    width, size = v.ne[0], v.ne[1]
    if not v_trans:
        return g.view_4d(
            v, head, n_head_kv, n_kv, n_stream,
            rs(v.type, head), rs(v.type, width), rs(v.type, width * size), 0,
        )  # fmt: skip
    return g.view_4d(
        v, n_kv, n_head_kv, head, n_stream,
        rs(v.type, size * head), rs(v.type, size), rs(v.type, size * width), 0,
    )  # fmt: skip
