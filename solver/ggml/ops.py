"""A symbolic ggml: tensors with shapes, types, strides and sources, but no data.

The compute-buffer model rebuilds llama.cpp's compute graph node for node and replays the
scheduler and the graph allocator on it. This module is the ggml half of that: each op
constructor mirrors the one in ``ggml/src/ggml.c`` of the pinned llama.cpp (result shape,
type, strides, which sources, whether the result is a fresh tensor or a view of its first
argument), and ``Graph.expand`` mirrors ``ggml_build_forward_expand``'s depth-first order,
which decides the order in which the allocator sees the nodes.

Only what the scheduler and the allocator read is kept: op, type, ne, nb, view source,
sources, input/output flags, and where a pre-allocated tensor lives (a model weight by its
GGUF name, a KV-cache tensor by its layer). Op parameters are kept only where a backend's
``supports_op`` / ``get_alloc_size`` depends on them (``solver.ggml.cuda_ops``): the unary /
GLU kind, CONCAT's dim, SSM_SCAN's snapshots, a MUL_MAT's Hadamard hint, a MUL_MAT_ID's F32
precision of src1.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import count

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

T = GGMLQuantizationType
F32, F16, I32, I64 = T.F32, T.F16, T.I32, T.I64

# ggml_is_view_op (ggml-impl.h): ops whose result only reinterprets its source
VIEW_OPS = frozenset({"VIEW", "RESHAPE", "PERMUTE", "TRANSPOSE"})

FLAG_INPUT = 1
FLAG_OUTPUT = 2

_uids = count()


def type_size(ggml_type: int) -> tuple[int, int]:
    """(block size, bytes per block) of a ggml type."""
    return GGML_QUANT_SIZES[T(ggml_type)]


def row_size(ggml_type: int, ne0: int) -> int:
    """ggml_row_size: bytes of ``ne0`` elements."""
    block, size = GGML_QUANT_SIZES[T(ggml_type)]
    return size * ne0 // block


def is_quantized(ggml_type: int) -> bool:
    return GGML_QUANT_SIZES[T(ggml_type)][0] > 1


def contiguous_strides(ggml_type: int, ne: Sequence[int]) -> tuple[int, int, int, int]:
    block, size = GGML_QUANT_SIZES[T(ggml_type)]
    nb0 = size
    nb1 = size * (ne[0] // block)
    nb2 = nb1 * ne[1]
    nb3 = nb2 * ne[2]
    return (nb0, nb1, nb2, nb3)


class Tensor:
    """One ggml tensor of the graph (``struct ggml_tensor`` without data)."""

    __slots__ = (
        "dup_layer",
        "flags",
        "il",
        "kv_layer",
        "name",
        "nb",
        "ne",
        "op",
        "params",
        "pin",
        "src",
        "type",
        "uid",
        "view_offs",
        "view_src",
        "weight",
    )

    def __init__(
        self,
        ggml_type: int,
        ne: Sequence[int],
        op: str = "NONE",
        src: Sequence[Tensor | None] = (),
        view_src: Tensor | None = None,
        view_offs: int = 0,
        nb: Sequence[int] | None = None,
    ) -> None:
        ne4 = tuple(ne) + (1,) * (4 - len(ne))
        # ggml_new_tensor_impl: a view of a view points at the base tensor
        if view_src is not None and view_src.view_src is not None:
            view_offs += view_src.view_offs
            view_src = view_src.view_src
        self.uid = next(_uids)
        self.type = int(ggml_type)
        self.ne = ne4
        self.nb = tuple(nb) if nb is not None else contiguous_strides(ggml_type, ne4)
        self.op = op
        self.src: tuple[Tensor | None, ...] = tuple(src)
        self.view_src = view_src
        self.view_offs = view_offs
        self.flags = 0
        self.name = ""
        self.weight: str | None = None  # GGUF tensor name of a model weight
        # TENSOR_DUPLICATED copies (llama-model.cpp): a global weight loaded again into each
        # layer's buffer, so it lives on that layer's device (rope_freqs, rope factors)
        self.dup_layer: int | None = None
        self.kv_layer: int | None = None  # layer of a KV-cache tensor
        self.pin: tuple | None = None  # ggml_backend_sched_set_tensor_backend from llama.cpp
        self.params: dict | None = None
        self.il = -1

    def __repr__(self) -> str:
        return f"Tensor({self.name or self.op}, {T(self.type).name}, {self.ne})"

    @property
    def is_view(self) -> bool:
        return self.view_src is not None

    @property
    def n_elements(self) -> int:
        ne = self.ne
        return ne[0] * ne[1] * ne[2] * ne[3]

    def nbytes(self) -> int:
        """ggml_nbytes: bytes spanned by the tensor's strides."""
        ne, nb = self.ne, self.nb
        if min(ne) <= 0:
            return 0
        block, size = GGML_QUANT_SIZES[T(self.type)]
        if block == 1:
            total = size
            for i in range(4):
                total += (ne[i] - 1) * nb[i]
            return total
        total = ne[0] * nb[0] // block
        for i in range(1, 4):
            total += (ne[i] - 1) * nb[i]
        return total

    def is_contiguous(self) -> bool:
        """ggml_is_contiguous: rows packed in order; a dimension of one element may have any
        stride (a permuted view of such a dimension is still contiguous)."""
        return is_contiguous_m_n(self, 0, 4)

    def set_input(self) -> Tensor:
        self.flags |= FLAG_INPUT
        return self

    def set_output(self) -> Tensor:
        self.flags |= FLAG_OUTPUT
        return self


def is_contiguous_m_n(t: Tensor, m: int, n: int) -> bool:
    """ggml_is_contiguous_m_n (ggml.c): dims 1..m may have any stride, dims m+1..n-1 follow
    packed (``ggml_is_contiguous_1`` is (1, 4), ``_to_3`` (0, 3))."""
    block, size = GGML_QUANT_SIZES[T(t.type)]
    if t.ne[0] != block and t.nb[0] != size:
        return False
    next_nb = size * (t.ne[0] // block)
    for i in range(1, n):
        if i > m:
            if t.ne[i] != 1 and t.nb[i] != next_nb:
                return False
            next_nb *= t.ne[i]
        else:
            next_nb = t.ne[i] * t.nb[i]
    return True


def is_contiguous_rows(t: Tensor) -> bool:
    """ggml_is_contiguous_rows: the elements of a row are packed."""
    block, size = GGML_QUANT_SIZES[T(t.type)]
    return t.ne[0] == block or t.nb[0] == size


def same_layout(a: Tensor, b: Tensor) -> bool:
    """ggml_are_same_layout (ggml-impl.h)."""
    return a.type == b.type and a.ne == b.ne and a.nb == b.nb


# --- leaves ------------------------------------------------------------------------------


def new_tensor(ggml_type: int, *ne: int) -> Tensor:
    return Tensor(ggml_type, ne)


def weight(name: str, ggml_type: int, shape: Sequence[int]) -> Tensor:
    """A model weight (pre-allocated in a weights buffer)."""
    t = Tensor(ggml_type, shape)
    t.weight = name
    t.name = name
    return t


# --- helpers mirroring ggml.c's result constructors ------------------------------------


def _dup(a: Tensor, op: str, src: Sequence[Tensor | None]) -> Tensor:
    """``ggml_dup_tensor(ctx, a)`` as result: same type and ne, contiguous."""
    return Tensor(a.type, a.ne, op, src)


def _view_of(a: Tensor, op: str, src: Sequence[Tensor | None]) -> Tensor:
    """``ggml_view_tensor(ctx, a)`` as result (in-place ops, set_rows, cpy)."""
    return Tensor(a.type, a.ne, op, src, view_src=a, nb=a.nb)


# --- element-wise and normalisation ----------------------------------------------------


def add(a: Tensor, b: Tensor) -> Tensor:
    return _dup(a, "ADD", (a, b))


def sub(a: Tensor, b: Tensor) -> Tensor:
    return _dup(a, "SUB", (a, b))


def mul(a: Tensor, b: Tensor) -> Tensor:
    return _dup(a, "MUL", (a, b))


def div(a: Tensor, b: Tensor) -> Tensor:
    return _dup(a, "DIV", (a, b))


def add_id(a: Tensor, b: Tensor, ids: Tensor) -> Tensor:
    return _dup(a, "ADD_ID", (a, b, ids))


def scale(a: Tensor) -> Tensor:
    return _dup(a, "SCALE", (a,))


def add_inplace(a: Tensor, b: Tensor) -> Tensor:
    """ggml_add_inplace: a view of ``a`` (no memory of its own)."""
    return _view_of(a, "ADD", (a, b))


def scale_inplace(a: Tensor) -> Tensor:
    """ggml_scale_inplace: a view of ``a`` (no memory of its own)."""
    return _view_of(a, "SCALE", (a,))


def clamp(a: Tensor) -> Tensor:
    return _dup(a, "CLAMP", (a,))


def sqrt(a: Tensor) -> Tensor:
    return _dup(a, "SQRT", (a,))


def sqr(a: Tensor) -> Tensor:
    return _dup(a, "SQR", (a,))


def rms_norm(a: Tensor) -> Tensor:
    return _dup(a, "RMS_NORM", (a,))


def norm(a: Tensor) -> Tensor:
    return _dup(a, "NORM", (a,))


def unary(a: Tensor, kind: str) -> Tensor:
    t = _dup(a, "UNARY", (a,))
    t.params = {"unary": kind}
    return t


def fill(a: Tensor) -> Tensor:
    return _dup(a, "FILL", (a,))


def rope(a: Tensor, pos: Tensor, freqs: Tensor | None = None) -> Tensor:
    return _dup(a, "ROPE", (a, pos, freqs))


def rope_back(a: Tensor, pos: Tensor, freqs: Tensor | None = None) -> Tensor:
    """ggml_rope_ext_back: ggml_rope_ext's result with op ROPE_BACK (deepseek4 de-ropes the
    attention output). ``ggml_rope_set_offset`` only sets an op parameter: no node."""
    return _dup(a, "ROPE_BACK", (a, pos, freqs))


def soft_max(a: Tensor, mask: Tensor | None = None, sinks: Tensor | None = None) -> Tensor:
    return _dup(a, "SOFT_MAX", (a, mask, sinks))


def glu_split(a: Tensor, b: Tensor, kind: str) -> Tensor:
    """ggml_swiglu_split / geglu_split / reglu_split / swiglu_oai: result has a's ne."""
    t = Tensor(a.type, a.ne, "GLU", (a, b))
    t.params = {"glu": kind}
    return t


def glu(a: Tensor, kind: str) -> Tensor:
    """ggml_swiglu / ggml_geglu / ggml_reglu of one tensor: its two halves gate each other,
    the result half as wide (ggml_glu_impl with b NULL)."""
    t = Tensor(a.type, (a.ne[0] // 2, *a.ne[1:]), "GLU", (a,))
    t.params = {"glu": kind}
    return t


def sum_rows(a: Tensor) -> Tensor:
    return Tensor(a.type, (1, *a.ne[1:]), "SUM_ROWS", (a,))


def concat(a: Tensor, b: Tensor, dim: int) -> Tensor:
    ne = list(a.ne)
    ne[dim] = a.ne[dim] + b.ne[dim]
    t = Tensor(a.type, ne, "CONCAT", (a, b))
    t.params = {"dim": dim}
    return t


def pad(a: Tensor, p0: int, p1: int = 0, p2: int = 0, p3: int = 0) -> Tensor:
    ne = (a.ne[0] + p0, a.ne[1] + p1, a.ne[2] + p2, a.ne[3] + p3)
    return Tensor(a.type, ne, "PAD", (a,))


# --- matrix products and attention ----------------------------------------------------


def mul_mat(a: Tensor, b: Tensor) -> Tensor:
    return Tensor(F32, (a.ne[1], b.ne[1], b.ne[2], b.ne[3]), "MUL_MAT", (a, b))


def mul_mat_id(experts: Tensor, b: Tensor, ids: Tensor) -> Tensor:
    return Tensor(F32, (experts.ne[1], ids.ne[0], b.ne[2], 1), "MUL_MAT_ID", (experts, b, ids))


def flash_attn_ext(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, sinks: Tensor | None = None
) -> Tensor:
    t = Tensor(F32, (v.ne[0], q.ne[2], q.ne[1], q.ne[3]), "FLASH_ATTN_EXT", (q, k, v, mask, sinks))
    return t


def lightning_indexer(q: Tensor, k: Tensor, weights: Tensor, mask: Tensor) -> Tensor:
    """ggml_lightning_indexer (DSA): F32 scores, cached positions x tokens x 1 x streams."""
    return Tensor(F32, (k.ne[2], q.ne[2], 1, q.ne[3]), "LIGHTNING_INDEXER", (q, k, weights, mask))


def top_k(a: Tensor, k: int) -> Tensor:
    """ggml_top_k: the I32 indices of each row's k largest values."""
    return Tensor(I32, (k, a.ne[1], a.ne[2], a.ne[3]), "TOP_K", (a,))


def get_rows(a: Tensor, b: Tensor) -> Tensor:
    out_type = I32 if a.type == I32 else F32
    return Tensor(out_type, (a.ne[0], b.ne[0], b.ne[1], b.ne[2]), "GET_ROWS", (a, b))


def set_rows(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Result is a view of the destination ``a``; sources are (b, c, a) as in ggml.c."""
    return _view_of(a, "SET_ROWS", (b, c, a))


def cpy(a: Tensor, b: Tensor) -> Tensor:
    return _view_of(b, "CPY", (a, b))


def cast(a: Tensor, ggml_type: int) -> Tensor:
    t = Tensor(ggml_type, a.ne, "CPY", ())
    t.src = (a, t)  # ggml_cast: src[1] is the result itself
    return t


def dup(a: Tensor) -> Tensor:
    return _dup(a, "DUP", (a,))


def cont(a: Tensor) -> Tensor:
    return _dup(a, "CONT", (a,))


def cont_nd(a: Tensor, *ne: int) -> Tensor:
    return Tensor(a.type, ne, "CONT", (a,))


def arange(steps: int) -> Tensor:
    """ggml_arange: an F32 node of ``steps`` values without sources."""
    return Tensor(F32, (steps,), "ARANGE", ())


def pool_2d_max(a: Tensor, k0: int) -> Tensor:
    """ggml_pool_2d(a, MAX, k0, 1, k0, 1, 0, 0): F32, each row's k0-wide windows pooled."""
    return Tensor(F32, ((a.ne[0] - k0) // k0 + 1, a.ne[1], a.ne[2], a.ne[3]), "POOL_2D", (a,))


def repeat_4d(a: Tensor, ne0: int, ne1: int, ne2: int, ne3: int) -> Tensor:
    """ggml_repeat_4d: ``a`` tiled to ne0 x ne1 x ne2 x ne3, a new tensor of a's type."""
    return Tensor(a.type, (ne0, ne1, ne2, ne3), "REPEAT", (a,))


def argsort(a: Tensor) -> Tensor:
    return Tensor(I32, a.ne, "ARGSORT", (a,))


def argsort_top_k(a: Tensor, k: int) -> Tensor:
    s = argsort(a)
    return view_4d(s, k, s.ne[1], s.ne[2], s.ne[3], s.nb[1], s.nb[2], s.nb[3], 0)


# --- state-space and linear-attention ops ----------------------------------------------


def ssm_conv(sx: Tensor, c: Tensor) -> Tensor:
    """ggml_ssm_conv: sx (d_conv - 1 + n_t) x d_inner x n_s convolved with the kernel c
    (d_conv x d_inner) -> F32 d_inner x n_t x n_s."""
    n_t = sx.ne[0] - c.ne[0] + 1
    return Tensor(F32, (c.ne[1], n_t, sx.ne[2]), "SSM_CONV", (sx, c))


def gated_delta_net(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor, state: Tensor, n_snapshots: int
) -> Tensor:
    """ggml_gated_delta_net: F32 (S_v * H) x (n_tokens * n_seqs + K * S_v * n_seqs): every
    token's output rows, then K snapshots of the S_v x S_v x H state per sequence."""
    s_v, heads, n_tokens, n_seqs = v.ne
    rows = n_tokens * n_seqs + n_snapshots * s_v * n_seqs
    return Tensor(F32, (s_v * heads, rows), "GATED_DELTA_NET", (q, k, v, g, beta, state))


def ssm_scan(
    s: Tensor, x: Tensor, dt: Tensor, a: Tensor, b: Tensor, c: Tensor, ids: Tensor, n_snap: int
) -> Tensor:
    """ggml_ssm_scan: F32, 1-D: y (x's elements), then K snapshots of each sequence's state
    (d_state x head_dim x n_head per id)."""
    n = x.n_elements + n_snap * s.ne[0] * s.ne[1] * s.ne[2] * ids.ne[0]
    t = Tensor(F32, (n,), "SSM_SCAN", (s, x, dt, a, b, c, ids))
    t.params = {"n_snap": n_snap}  # op_params[0], K
    return t


# --- DeepSeek V4 hyper-connections (ggml_dsv4_hc_*) --------------------------------------


def dsv4_hc_comb(mixes: Tensor, scale: Tensor, base: Tensor) -> Tensor:
    """ggml_dsv4_hc_comb: the Sinkhorn-normalised stream mixing matrix, F32 hc x hc x
    tokens, from mixes ((2 + hc) * hc x tokens) and the layer's scale and base weights."""
    n_mix = mixes.ne[0]
    hc = next(i for i in range(1, n_mix + 1) if (2 + i) * i == n_mix)
    return Tensor(F32, (hc, hc, mixes.ne[1]), "DSV4_HC_COMB", (mixes, scale, base))


def dsv4_hc_pre(x: Tensor, weights: Tensor) -> Tensor:
    """ggml_dsv4_hc_pre: the streams x (n_embd x hc x tokens) summed with per-token weights
    (hc x tokens) into one F32 n_embd x tokens input."""
    return Tensor(F32, (x.ne[0], x.ne[2]), "DSV4_HC_PRE", (x, weights))


def dsv4_hc_post(x: Tensor, residual: Tensor, post: Tensor, comb: Tensor | None) -> Tensor:
    """ggml_dsv4_hc_post: a block's output x (n_embd x tokens) spread back over the
    residual's hc streams: F32 n_embd x hc x tokens."""
    return Tensor(
        F32, (x.ne[0], residual.ne[1], x.ne[1]), "DSV4_HC_POST", (x, residual, post, comb)
    )


# --- views ------------------------------------------------------------------------------


def _view(a: Tensor, ne: Sequence[int], offset: int) -> Tensor:
    return Tensor(a.type, ne, "VIEW", (a,), view_src=a, view_offs=offset)


def view_1d(a: Tensor, ne0: int, offset: int) -> Tensor:
    return _view(a, (ne0,), offset)


def view_2d(a: Tensor, ne0: int, ne1: int, nb1: int, offset: int) -> Tensor:
    t = _view(a, (ne0, ne1), offset)
    t.nb = (t.nb[0], nb1, nb1 * ne1, nb1 * ne1)
    return t


def view_3d(a: Tensor, ne0: int, ne1: int, ne2: int, nb1: int, nb2: int, offset: int) -> Tensor:
    t = _view(a, (ne0, ne1, ne2), offset)
    t.nb = (t.nb[0], nb1, nb2, nb2 * ne2)
    return t


def view_4d(
    a: Tensor,
    ne0: int,
    ne1: int,
    ne2: int,
    ne3: int,
    nb1: int,
    nb2: int,
    nb3: int,
    offset: int,
) -> Tensor:
    t = _view(a, (ne0, ne1, ne2, ne3), offset)
    t.nb = (t.nb[0], nb1, nb2, nb3)
    return t


def reshape(a: Tensor, *ne: int) -> Tensor:
    return Tensor(a.type, ne, "RESHAPE", (a,), view_src=a)


def permute(a: Tensor, ax0: int, ax1: int, ax2: int, ax3: int) -> Tensor:
    ne = [0, 0, 0, 0]
    nb = [0, 0, 0, 0]
    for i, ax in enumerate((ax0, ax1, ax2, ax3)):
        ne[ax] = a.ne[i]
        nb[ax] = a.nb[i]
    return Tensor(a.type, ne, "PERMUTE", (a,), view_src=a, nb=nb)


def transpose(a: Tensor) -> Tensor:
    ne = (a.ne[1], a.ne[0], a.ne[2], a.ne[3])
    nb = (a.nb[1], a.nb[0], a.nb[2], a.nb[3])
    return Tensor(a.type, ne, "TRANSPOSE", (a,), view_src=a, nb=nb)


def view_tensor(a: Tensor) -> Tensor:
    """ggml_view_tensor: op NONE, a view of ``a`` (used by the scheduler for dependencies)."""
    return Tensor(a.type, a.ne, "NONE", (), view_src=a, nb=a.nb)


# --- graph ------------------------------------------------------------------------------


class Graph:
    """``ggml_cgraph``: nodes and leafs in the order ``ggml_build_forward_expand`` adds them."""

    __slots__ = ("leafs", "node_segments", "nodes", "segment", "visited")

    def __init__(self) -> None:
        self.nodes: list[Tensor] = []
        self.leafs: list[Tensor] = []
        self.visited: set[int] = set()
        # which part of the model was being built when each node entered the graph
        # (0: inputs, 1 + il: layer il, then the output head); used to memoise allocation
        self.segment = 0
        self.node_segments: list[int] = []

    def expand(self, tensor: Tensor | None) -> Tensor | None:
        """ggml_visit_parents_graph, left to right, iteratively (graphs are deep)."""
        if tensor is None or tensor.uid in self.visited:
            return tensor
        visited = self.visited
        stack: list[tuple[Tensor, int]] = [(tensor, 0)]
        visited.add(tensor.uid)
        while stack:
            node, i = stack[-1]
            srcs = node.src
            while i < len(srcs):
                s = srcs[i]
                i += 1
                if s is not None and s.uid not in visited:
                    visited.add(s.uid)
                    stack[-1] = (node, i)
                    stack.append((s, 0))
                    break
            else:
                stack.pop()
                if node.op == "NONE":
                    if not node.name:  # ggml_visit_parents names an unnamed leaf by its index
                        node.name = f"leaf_{len(self.leafs)}"
                    self.leafs.append(node)
                else:
                    self.nodes.append(node)
                    self.node_segments.append(self.segment)
        return tensor

    def select(self, tensors: Sequence[Tensor]) -> None:
        """ggml_build_forward_select: every branch enters the graph (only one computes)."""
        for t in tensors:
            self.expand(t)
