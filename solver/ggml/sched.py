"""ggml's backend scheduler (``ggml_backend_sched_split_graph``), replayed on a symbolic graph.

The scheduler decides which backend runs each node, cuts the node list into splits (runs of
nodes on one backend), and inserts a copy of every tensor a split reads from another
backend. Those copies live in the reading backend's compute buffer, and the split count is
what llama.cpp logs as ``graph splits``. This module follows ``ggml/src/ggml-backend.cpp``
pass for pass:

1. assign nodes that touch pre-allocated data (weights, KV cache) to the backend holding it;
   inputs go to the CPU; ``op_offload`` may move a CPU-weight op to a GPU;
2. expand GPU assignments down and up the node list, then any assignment down and up;
3. give still-unassigned nodes the backend that supports most of their inputs;
4. assign remaining sources from their consumer or view source;
5. split the node list where the backend changes (or a weight from another backend would be
   read), and create copies of cross-backend inputs (``n_copies`` of each with pipeline
   parallelism), then build the graph copy the allocator walks.

Backends are given in llama.cpp's priority order (GPUs/RPC first, CPU last). Each backend
says which ops it runs (``supports_op``), whether it wants to take a CPU-weight op
(``offload_op``), and its compute buffer type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from solver.ggml.alloc import BufferType, is_preallocated
from solver.ggml.ops import FLAG_INPUT, FLAG_OUTPUT, VIEW_OPS, Tensor, view_tensor


@dataclass(frozen=True)
class Backend:
    """One ggml backend as the scheduler sees it (device name as llama.cpp prints it)."""

    device: str
    buft: BufferType
    supports_op: Callable[[Tensor], bool] = field(default=lambda t: True)
    offload_op: Callable[[Tensor], bool] = field(default=lambda t: False)
    host_weights: bool = False  # weights on this device are in a host buffer (CPU)


@dataclass
class SchedResult:
    """What one ``ggml_backend_sched_reserve`` produces: the graph copy and its splits."""

    n_splits: int
    nodes: list[Tensor]
    node_srcs: list[tuple[Tensor | None, ...]]
    node_backend: list[int]
    leafs: list[Tensor]
    leaf_backend: list[int]
    extra_flags: dict[int, int]
    split_backends: list[int]


def split_graph(
    nodes: Sequence[Tensor],
    leafs: Sequence[Tensor],
    backends: Sequence[Backend],
    buffer_backend: Callable[[Tensor], int],
    pins: Mapping[int, int],
    *,
    op_offload: bool = True,
    n_copies: int = 1,
) -> SchedResult:
    """Replay ``ggml_backend_sched_split_graph``.

    ``buffer_backend(t)`` gives the backend index whose buffer holds a pre-allocated tensor
    (a weight or a KV-cache tensor). ``pins`` maps tensor uid to a backend index set by
    ``ggml_backend_sched_set_tensor_backend`` before the split (user assignments).
    """
    n_backends = len(backends)
    cpu = n_backends - 1
    bid: dict[int, int] = dict(pins)

    def get_id(t: Tensor) -> int:
        return bid.get(t.uid, -1)

    def from_buffer(t: Tensor, op: Tensor) -> int:
        # ggml_backend_sched_backend_from_buffer: the backend owning the buffer, if it runs op
        owner = buffer_backend(t)
        if backends[owner].supports_op(op):
            return owner
        return -1

    def from_cur(t: Tensor) -> int:
        if is_preallocated(t):
            return from_buffer(t, t)
        vs = t.view_src
        if vs is not None and is_preallocated(vs):
            return from_buffer(vs, t)
        if t.flags & FLAG_INPUT:
            return cpu
        if t.op in ("ROPE", "FLASH_ATTN_EXT"):
            return -1
        for src in t.src:
            if src is None or src.weight is None:
                continue
            src_backend = from_buffer(src, t)
            if op_offload and src_backend == cpu and backends[cpu].host_weights:
                for b in range(cpu):
                    if backends[b].supports_op(t) and backends[b].offload_op(t):
                        return b
            return src_backend
        return -1

    # pass 1: pre-allocated inputs
    for leaf in leafs:
        if leaf.uid not in bid:
            bid[leaf.uid] = from_cur(leaf)
    for node in nodes:
        if node.uid not in bid:
            bid[node.uid] = from_cur(node)

    compute_nodes = [n for n in nodes if n.op not in VIEW_OPS]

    def set_if_supported(node: Tensor, b: int) -> None:
        if backends[b].supports_op(node):
            bid[node.uid] = b

    # pass 2: expand GPU assignments down, up; then all assignments down, up
    for order, skip_cpu in (
        (compute_nodes, True),
        (compute_nodes[::-1], True),
        (compute_nodes, False),
        (compute_nodes[::-1], False),
    ):
        cur = -1
        for node in order:
            b = bid.get(node.uid, -1)
            if b != -1:
                cur = -1 if (skip_cpu and b == cpu) else b
            elif cur != -1:
                set_if_supported(node, cur)

    def buffer_supported(t: Tensor, b: int) -> bool:
        # ggml_backend_sched_buffer_supported: one buffer type per device here, so a tensor
        # is readable by a backend exactly when it lives on that backend
        owner = t.view_src if t.view_src is not None else t
        if is_preallocated(owner):
            return buffer_backend(owner) == b
        tb = get_id(t)
        if tb == -1 and t.view_src is not None:
            tb = get_id(t.view_src)
        return tb == b

    # pass 3: unassigned nodes go where most of their inputs already are
    for node in compute_nodes:
        if get_id(node) != -1:
            continue
        best = -1
        for b in range(n_backends):
            if not backends[b].supports_op(node):
                continue
            n_supported = 0
            for src in node.src:
                if src is None:
                    continue
                has_id = get_id(src) != -1 or (
                    src.view_src is not None and get_id(src.view_src) != -1
                )
                if has_id and buffer_supported(src, b):
                    n_supported += 1
            if n_supported > best:
                best = n_supported
                bid[node.uid] = b

    # pass 4: remaining sources from their consumer or view source
    for node in nodes:
        cur = get_id(node)
        if node.view_src is not None and cur == -1:
            cur = bid[node.uid] = get_id(node.view_src)
        for src in node.src:
            if src is None or get_id(src) != -1:
                continue
            if src.view_src is not None:
                bid[src.uid] = get_id(src.view_src)
            else:
                bid[src.uid] = cur
        if cur == -1:
            for b in range(n_backends):
                if backends[b].supports_op(node):
                    bid[node.uid] = b
                    break

    # pass 5: split, and copy inputs that live on another backend
    copies: dict[tuple[int, int], list[Tensor]] = {}
    extra_flags: dict[int, int] = {}
    splits: list[tuple[int, list[Tensor], list[int]]] = []  # backend, inputs, node indices
    node_srcs: dict[int, tuple[Tensor | None, ...]] = {}
    split_inputs: list[Tensor] = []
    split_nodes: list[int] = []
    cur_backend = -1
    first = True
    for i, node in enumerate(nodes):
        if node.op in VIEW_OPS:
            if not first:
                split_nodes.append(i)
            continue
        nb = bid[node.uid]
        if first:
            cur_backend = nb
            # nodes before the first non-view node belong to the first split
            split_nodes = [j for j in range(i)]
            first = False
        need_new = False
        if nb == cur_backend and split_inputs:
            for src in node.src:
                if src is None or src.weight is None:
                    continue
                if bid[src.uid] != cur_backend and not buffer_supported(src, cur_backend):
                    need_new = True
                    break
        if nb != cur_backend or need_new:
            splits.append((cur_backend, split_inputs, split_nodes))
            split_inputs = []
            split_nodes = []
            cur_backend = nb
        split_nodes.append(i)
        new_srcs = None
        for j, src in enumerate(node.src):
            if src is None:
                continue
            sb = bid[src.uid]
            if sb != cur_backend and not buffer_supported(src, cur_backend):
                key = (src.uid, cur_backend)
                tcopies = copies.get(key)
                if tcopies is None:
                    tcopies = []
                    for _ in range(n_copies):
                        c = Tensor(src.type, src.ne, "NONE", (), nb=src.nb)
                        c.name = f"{backends[cur_backend].device}#{src.name}"
                        if n_copies > 1:
                            extra_flags[c.uid] = FLAG_INPUT | FLAG_OUTPUT
                        tcopies.append(c)
                    copies[key] = tcopies
                    split_inputs.append(src)
                if new_srcs is None:
                    new_srcs = list(node.src)
                new_srcs[j] = tcopies[0]
        if new_srcs is not None:
            node_srcs[node.uid] = tuple(new_srcs)
    if first:  # a graph of views only
        split_nodes = list(range(len(nodes)))
        cur_backend = bid[nodes[0].uid] if nodes else cpu
    splits.append((cur_backend, split_inputs, split_nodes))

    # pass 6 (pipeline parallelism): every graph input gets n_copies buffers
    graph_input_copies: list[tuple[list[Tensor], int]] = []
    if n_copies > 1:
        for leaf in leafs:
            if not leaf.flags & FLAG_INPUT:
                continue
            lb = bid[leaf.uid]
            key = (leaf.uid, lb)
            if key not in copies:
                tcopies = [leaf]
                for _ in range(1, n_copies):
                    tcopies.append(Tensor(leaf.type, leaf.ne, "NONE", (), nb=leaf.nb))
                for c in tcopies:
                    extra_flags[c.uid] = FLAG_INPUT | FLAG_OUTPUT
                copies[key] = tcopies
            graph_input_copies.append((copies[key], lb))

    # the graph copy the allocator walks: per split, its input copies, then its nodes
    g_nodes: list[Tensor] = []
    g_srcs: list[tuple[Tensor | None, ...]] = []
    g_backend: list[int] = []
    for backend_id, inputs, idxs in splits:
        for inp in inputs:
            dep = view_tensor(inp)
            g_nodes.append(dep)
            g_srcs.append((inp,))
            g_backend.append(bid[inp.uid])
            cpy = copies[(inp.uid, backend_id)][0]
            g_nodes.append(cpy)
            g_srcs.append(())
            g_backend.append(backend_id)
        for i in idxs:
            node = nodes[i]
            g_nodes.append(node)
            g_srcs.append(node_srcs.get(node.uid, node.src))
            g_backend.append(bid[node.uid])

    g_leafs: list[Tensor] = []
    g_leaf_backend: list[int] = []
    if n_copies > 1:
        for tcopies, lb in graph_input_copies:
            for c in tcopies:
                g_leafs.append(c)
                g_leaf_backend.append(lb)
        for backend_id, inputs, _ in splits:
            for inp in inputs:
                for c in copies[(inp.uid, backend_id)]:
                    g_leafs.append(c)
                    g_leaf_backend.append(backend_id)
    for leaf in leafs:
        g_leafs.append(leaf)
        g_leaf_backend.append(bid[leaf.uid])

    return SchedResult(
        n_splits=len(splits),
        nodes=g_nodes,
        node_srcs=g_srcs,
        node_backend=g_backend,
        leafs=g_leafs,
        leaf_backend=g_leaf_backend,
        extra_flags=extra_flags,
        split_backends=[s[0] for s in splits],
    )


__all__ = ["FLAG_OUTPUT", "Backend", "SchedResult", "split_graph"]
