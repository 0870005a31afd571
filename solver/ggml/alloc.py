"""ggml's graph allocator (``ggml/src/ggml-alloc.c``), replayed to measure compute buffers.

``ggml_gallocr_reserve_n`` walks the scheduler's graph copy once: leafs first, then graph
inputs, then every node in order, allocating each result from its backend's dynamic
allocator (best-fit over free blocks, growing the buffer at its end when nothing fits),
reusing a parent's memory in place when the op allows it, and freeing a tensor when its last
consumer has run. The buffer size llama.cpp reserves is the high-water mark (``max_size``) of
each allocator. This module does exactly that, step for step, so the sizes are the same bytes.

Simplification, exact for the backends fit targets: every allocator has a single chunk
(``max_size`` of the CPU, CUDA and RPC buffer types is SIZE_MAX, so a second chunk is never
opened).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from solver.ggml.ops import FLAG_INPUT, FLAG_OUTPUT, Tensor, same_layout

_HUGE = (1 << 63) - 1  # SIZE_MAX/2: the size of a fresh chunk's only free block

# ggml_op_can_inplace (ggml-alloc.c)
INPLACE_OPS = frozenset(
    {
        "FILL",
        "SCALE",
        "DIAG_MASK_ZERO",
        "DIAG_MASK_INF",
        "ADD",
        "ADD_ID",
        "ADD1",
        "SUB",
        "MUL",
        "DIV",
        "SQR",
        "SQRT",
        "LOG",
        "UNARY",
        "ROPE",
        "ROPE_BACK",
        "SILU_BACK",
        "RMS_NORM",
        "RMS_NORM_BACK",
        "CLAMP",
        "SOFT_MAX",
        "SOFT_MAX_BACK",
    }
)


class BufferType:
    """What the allocator asks a backend buffer type: alignment and per-tensor size."""

    __slots__ = ("alignment", "alloc_size", "name")

    def __init__(self, name: str, alignment: int, alloc_size: Callable[[Tensor], int]) -> None:
        self.name = name
        self.alignment = alignment
        self.alloc_size = alloc_size


class DynAllocator:
    """``ggml_dyn_tallocr`` with one chunk: sorted free blocks and a high-water mark."""

    __slots__ = ("alignment", "blocks", "max_size")

    def __init__(self, alignment: int) -> None:
        self.alignment = alignment
        self.blocks: list[list[int]] = [[0, _HUGE]]  # [offset, size], sorted by offset
        self.max_size = 0

    def _align(self, size: int) -> int:
        a = self.alignment
        return (size + a - 1) // a * a

    def alloc(self, size: int) -> int:
        size = self._align(size)
        blocks = self.blocks
        best = -1
        best_size = _HUGE * 2
        # best fit among all blocks but the last; ties go to the later block (<=)
        for i in range(len(blocks) - 1):
            bsize = blocks[i][1]
            if bsize >= size and bsize <= best_size:
                best = i
                best_size = bsize
        if best == -1:
            # the last block; it always fits (a chunk's tail is virtually endless)
            best = len(blocks) - 1
        block = blocks[best]
        addr = block[0]
        block[0] += size
        block[1] -= size
        if block[1] == 0:
            del blocks[best]
        if addr + size > self.max_size:
            self.max_size = addr + size
        return addr

    def free(self, offset: int, size: int) -> None:
        size = self._align(size)
        blocks = self.blocks
        n = len(blocks)
        for i in range(n):
            block = blocks[i]
            if block[0] + block[1] == offset:
                block[1] += size
                if i < n - 1:
                    nxt = blocks[i + 1]
                    if block[0] + block[1] == nxt[0]:
                        block[1] += nxt[1]
                        del blocks[i + 1]
                return
            if offset + size == block[0]:
                block[0] = offset
                block[1] += size
                if i > 0:
                    prev = blocks[i - 1]
                    if prev[0] + prev[1] == block[0]:
                        prev[1] += block[1]
                        del blocks[i]
                return
        pos = 0
        while pos < n and blocks[pos][0] < offset:
            pos += 1
        blocks.insert(pos, [offset, size])


class _HashNode:
    __slots__ = ("addr", "allocated", "buffer_id", "n_children", "n_views")

    def __init__(self) -> None:
        self.n_children = 0
        self.n_views = 0
        self.buffer_id = 0
        self.addr = 0
        self.allocated = False


def is_preallocated(t: Tensor) -> bool:
    """Tensors with data outside the compute buffer: model weights and the KV cache."""
    return t.weight is not None or t.kv_layer is not None


def reserve(
    nodes: Sequence[Tensor],
    node_srcs: Sequence[Sequence[Tensor | None]],
    leafs: Sequence[Tensor],
    node_buffer_ids: Sequence[int],
    leaf_buffer_ids: Sequence[int],
    bufts: Sequence[BufferType],
    extra_flags: dict[int, int] | None = None,
) -> list[int]:
    """``ggml_gallocr_reserve_n``: bytes each buffer needs for this graph.

    ``node_srcs[i]`` are node i's sources as the scheduler rewrote them (inputs from another
    backend replaced by their copies); ``extra_flags`` adds flags the scheduler set on tensors
    of the shared graph (by uid), so the cached graph itself is never mutated.
    """
    extra = extra_flags or {}

    def flags(t: Tensor) -> int:
        return t.flags | extra.get(t.uid, 0) if extra else t.flags

    allocs = [DynAllocator(b.alignment) for b in bufts]
    hash_nodes: dict[int, _HashNode] = {}

    def get(t: Tensor) -> _HashNode:
        hn = hash_nodes.get(t.uid)
        if hn is None:
            hn = hash_nodes[t.uid] = _HashNode()
        return hn

    def free_node(t: Tensor, hn: _HashNode) -> None:
        if flags(t) & FLAG_OUTPUT:
            return
        buft = bufts[hn.buffer_id]
        allocs[hn.buffer_id].free(hn.addr, buft.alloc_size(t))
        hn.allocated = False

    def allocate(t: Tensor, buffer_id: int, srcs: Sequence[Tensor | None] = ()) -> None:
        hn = get(t)
        if hn.allocated or t.view_src is not None or is_preallocated(t):
            return
        hn.allocated = True
        if t.op in INPLACE_OPS:
            for parent in srcs:
                if parent is None:
                    continue
                p_hn = get(parent)
                if not p_hn.allocated:  # external data or a view: not ours to reuse
                    continue
                if flags(parent) & FLAG_OUTPUT:
                    continue
                if not same_layout(t, parent):
                    continue
                if p_hn.n_children == 1 and p_hn.n_views == 0:
                    hn.buffer_id = p_hn.buffer_id
                    hn.addr = p_hn.addr
                    p_hn.allocated = False
                    # ggml_gallocr_free_extra_space: give back the parent's surplus
                    buft = bufts[p_hn.buffer_id]
                    align = allocs[p_hn.buffer_id]._align
                    parent_size = align(buft.alloc_size(parent))
                    node_size = align(bufts[hn.buffer_id].alloc_size(t))
                    if parent_size > node_size:
                        allocs[p_hn.buffer_id].free(p_hn.addr + node_size, parent_size - node_size)
                    return
        buft = bufts[buffer_id]
        hn.buffer_id = buffer_id
        hn.addr = allocs[buffer_id].alloc(buft.alloc_size(t))

    # leafs (graph inputs not consumed by a node are allocated too)
    for leaf, b in zip(leafs, leaf_buffer_ids, strict=True):
        allocate(leaf, b)

    # count children and views; allocate explicit inputs first
    for node, srcs, b in zip(nodes, node_srcs, node_buffer_ids, strict=True):
        if node.view_src is not None and node.op != "NONE":
            get(node.view_src).n_views += 1
        if flags(node) & FLAG_INPUT:
            allocate(node, b)
        for src in srcs:
            if src is None:
                continue
            get(src).n_children += 1
            if flags(src) & FLAG_INPUT:
                allocate(src, b)

    # allocate every node, free parents whose last consumer this was
    for node, srcs, b in zip(nodes, node_srcs, node_buffer_ids, strict=True):
        for parent in srcs:
            if parent is not None:
                allocate(parent, b, parent.src)
        allocate(node, b, srcs)
        for parent in srcs:
            if parent is None:
                continue
            p_hn = hash_nodes[parent.uid]
            p_hn.n_children -= 1
            if p_hn.n_children == 0 and p_hn.n_views == 0:
                view_src = parent.view_src
                if view_src is not None:
                    vs_hn = get(view_src)
                    vs_hn.n_views -= 1
                    if vs_hn.n_views == 0 and vs_hn.n_children == 0 and vs_hn.allocated:
                        free_node(view_src, vs_hn)
                elif p_hn.allocated:
                    free_node(parent, p_hn)

    return [a.max_size for a in allocs]
