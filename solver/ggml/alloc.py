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
    galloc = _GraphAllocator(bufts, extra_flags or {})
    galloc.alloc_graph(nodes, node_srcs, leafs, node_buffer_ids, leaf_buffer_ids)
    return [a.max_size for a in galloc.allocs]


class _GraphAllocator:
    """``ggml_gallocr`` for one reserve (``ggml_gallocr_reserve_n_impl``): fresh allocators
    and hash table, filled by ``ggml_gallocr_alloc_graph_impl``; the buffer sizes are the
    allocators' high-water marks. Methods are named after the ggml-alloc.c functions."""

    def __init__(self, bufts: Sequence[BufferType], extra_flags: dict[int, int]) -> None:
        self.bufts = bufts
        self.extra = extra_flags
        self.allocs = [DynAllocator(b.alignment) for b in bufts]
        self.hash_nodes: dict[int, _HashNode] = {}

    def flags(self, t: Tensor) -> int:
        """The tensor's flags plus those the scheduler set on it."""
        extra = self.extra
        return t.flags | extra.get(t.uid, 0) if extra else t.flags

    def hash_get(self, t: Tensor) -> _HashNode:
        """``ggml_gallocr_hash_get``: the tensor's hash node, created on first use."""
        hn = self.hash_nodes.get(t.uid)
        if hn is None:
            hn = self.hash_nodes[t.uid] = _HashNode()
        return hn

    # --- ggml_gallocr_alloc_graph_impl --------------------------------------------------------

    def alloc_graph(
        self,
        nodes: Sequence[Tensor],
        node_srcs: Sequence[Sequence[Tensor | None]],
        leafs: Sequence[Tensor],
        node_buffer_ids: Sequence[int],
        leaf_buffer_ids: Sequence[int],
    ) -> None:
        """``ggml_gallocr_alloc_graph_impl``: leafs, then children/views counted and explicit
        inputs allocated, then every node in order."""
        # leafs (graph inputs not consumed by a node are allocated too)
        for leaf, b in zip(leafs, leaf_buffer_ids, strict=True):
            self.allocate_node(leaf, b)
        self._count_children_and_inputs(nodes, node_srcs, node_buffer_ids)
        for node, srcs, b in zip(nodes, node_srcs, node_buffer_ids, strict=True):
            self._allocate_and_update_parents(node, srcs, b)

    def _count_children_and_inputs(
        self,
        nodes: Sequence[Tensor],
        node_srcs: Sequence[Sequence[Tensor | None]],
        node_buffer_ids: Sequence[int],
    ) -> None:
        """Count children and views; allocate explicit inputs first (so nothing overwrites
        them)."""
        for node, srcs, b in zip(nodes, node_srcs, node_buffer_ids, strict=True):
            if node.view_src is not None and node.op != "NONE":
                self.hash_get(node.view_src).n_views += 1
            if self.flags(node) & FLAG_INPUT:
                self.allocate_node(node, b)
            for src in srcs:
                if src is None:
                    continue
                self.hash_get(src).n_children += 1
                if self.flags(src) & FLAG_INPUT:
                    self.allocate_node(src, b)

    def _allocate_and_update_parents(
        self, node: Tensor, srcs: Sequence[Tensor | None], b: int
    ) -> None:
        """One node of the allocation loop: its parents (only leafs can still be
        unallocated) and itself, then free parents whose last consumer this was."""
        for parent in srcs:
            if parent is not None:
                self.allocate_node(parent, b, parent.src)
        self.allocate_node(node, b, srcs)
        for parent in srcs:
            if parent is None:
                continue
            p_hn = self.hash_nodes[parent.uid]
            p_hn.n_children -= 1
            if p_hn.n_children == 0 and p_hn.n_views == 0:
                view_src = parent.view_src
                if view_src is not None:
                    vs_hn = self.hash_get(view_src)
                    vs_hn.n_views -= 1
                    if vs_hn.n_views == 0 and vs_hn.n_children == 0 and vs_hn.allocated:
                        self.free_node(view_src, vs_hn)
                elif p_hn.allocated:
                    self.free_node(parent, p_hn)

    # --- ggml_gallocr_allocate_node and ggml_gallocr_free_node --------------------------------

    def allocate_node(self, t: Tensor, buffer_id: int, srcs: Sequence[Tensor | None] = ()) -> None:
        """``ggml_gallocr_allocate_node``: give t memory unless it has some (allocated, a
        view, pre-allocated): a parent's in place when the op allows it, else a new block."""
        hn = self.hash_get(t)
        if hn.allocated or t.view_src is not None or is_preallocated(t):
            return
        hn.allocated = True
        if t.op in INPLACE_OPS and self._reuse_parent(t, hn, srcs):
            return
        buft = self.bufts[buffer_id]
        hn.buffer_id = buffer_id
        hn.addr = self.allocs[buffer_id].alloc(buft.alloc_size(t))

    def _reuse_parent(self, t: Tensor, hn: _HashNode, srcs: Sequence[Tensor | None]) -> bool:
        """The in-place branch of ``ggml_gallocr_allocate_node``: t takes the memory of the
        first parent it may overwrite (ours, not an output, same layout, t its only
        consumer); False when there is none."""
        for parent in srcs:
            if parent is None:
                continue
            p_hn = self.hash_get(parent)
            if not p_hn.allocated:  # external data or a view: not ours to reuse
                continue
            if self.flags(parent) & FLAG_OUTPUT:
                continue
            if not same_layout(t, parent):
                continue
            if p_hn.n_children == 1 and p_hn.n_views == 0:
                hn.buffer_id = p_hn.buffer_id
                hn.addr = p_hn.addr
                p_hn.allocated = False
                self._free_extra_space(t, hn, parent, p_hn)
                return True
        return False

    def _free_extra_space(self, t: Tensor, hn: _HashNode, parent: Tensor, p_hn: _HashNode) -> None:
        """``ggml_gallocr_free_extra_space``: give back the parent's surplus (aligned)."""
        buft = self.bufts[p_hn.buffer_id]
        align = self.allocs[p_hn.buffer_id]._align
        parent_size = align(buft.alloc_size(parent))
        node_size = align(self.bufts[hn.buffer_id].alloc_size(t))
        if parent_size > node_size:
            self.allocs[p_hn.buffer_id].free(p_hn.addr + node_size, parent_size - node_size)

    def free_node(self, t: Tensor, hn: _HashNode) -> None:
        """``ggml_gallocr_free_node``: return t's memory (graph outputs are never freed)."""
        if self.flags(t) & FLAG_OUTPUT:
            return
        buft = self.bufts[hn.buffer_id]
        self.allocs[hn.buffer_id].free(hn.addr, buft.alloc_size(t))
        hn.allocated = False
