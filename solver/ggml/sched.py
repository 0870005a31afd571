"""ggml's backend scheduler (``ggml_backend_sched_split_graph``), replayed on a symbolic graph.

The scheduler decides which backend runs each node, cuts the node list into splits (runs of
nodes on one backend), and inserts a copy of every tensor a split reads from another
backend. Those copies live in the reading backend's compute buffer, and the split count is
what llama.cpp logs as ``graph splits``. This module follows ``ggml/src/ggml-backend.cpp``
pass for pass, one function per pass (``split_graph`` calls them in order):

1. ``_assign_preallocated``: nodes that touch pre-allocated data (weights, KV cache) go to
   the backend holding it; inputs go to the CPU; ``op_offload`` may move a CPU-weight op to
   a GPU;
2. ``_expand_assignments``: expand GPU assignments down and up the node list, then any
   assignment down and up;
3. ``_assign_by_inputs``: still-unassigned nodes get the backend that supports most of their
   inputs;
4. ``_assign_remaining_srcs``: remaining sources from their consumer or view source;
5. ``_split_nodes``: split the node list where the backend changes (or a weight from another
   backend would be read), and create copies of cross-backend inputs (``n_copies`` of each
   with pipeline parallelism);
6. ``_copy_graph_inputs``: with pipeline parallelism, ``n_copies`` buffers per graph input;
   then ``_graph_copy_nodes`` and ``_graph_copy_leafs`` build the graph copy the allocator
   walks.

Backends are given in llama.cpp's priority order (GPUs/RPC first, CPU last). Each backend
says which ops it runs (``supports_op``), whether it wants to take a CPU-weight op
(``offload_op``), and its compute buffer type. An op a backend refuses is left to the passes
as ggml leaves it: pass 1 gives no backend to a node whose weight's backend refuses it, the
expansions skip it, pass 3 gives it the backend (that runs it) reading most of its inputs in
place. A pre-allocated node its buffer's backend refuses makes ggml abort; here BadInput.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from solver.errors import BadInput
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
    # backends of one family ("CUDA") refuse an op reading a pre-allocated tensor of another
    # device of the family (ggml-cuda.cu:5255, "check if all the sources are allocated on
    # this device")
    family: str | None = None


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
    a = _Assignment(backends, buffer_backend, dict(pins))
    _assign_preallocated(a, nodes, leafs, op_offload)
    compute_nodes = [n for n in nodes if n.op not in VIEW_OPS]
    _expand_assignments(a, compute_nodes)
    _assign_by_inputs(a, compute_nodes)
    _assign_remaining_srcs(a, nodes)
    cut = _split_nodes(a, nodes, n_copies)
    graph_inputs = _copy_graph_inputs(a, leafs, n_copies, cut) if n_copies > 1 else []
    g_nodes, g_srcs, g_backend = _graph_copy_nodes(a, nodes, cut)
    g_leafs, g_leaf_backend = _graph_copy_leafs(a, leafs, cut, graph_inputs, n_copies)
    return SchedResult(
        n_splits=len(cut.splits),
        nodes=g_nodes,
        node_srcs=g_srcs,
        node_backend=g_backend,
        leafs=g_leafs,
        leaf_backend=g_leaf_backend,
        extra_flags=cut.extra_flags,
        split_backends=[s.backend for s in cut.splits],
    )


# --- the assignment the passes share --------------------------------------------------------


@dataclass
class _Assignment:
    """The backends and the backend chosen so far for each tensor (ggml's
    ``tensor_backend_id``): ``bid`` maps a tensor uid to a backend index; absent means -1,
    unassigned. Passes 1-4 fill it; passes 5-6 read it."""

    backends: Sequence[Backend]
    buffer_backend: Callable[[Tensor], int]
    bid: dict[int, int]

    @property
    def cpu(self) -> int:
        """The CPU backend: the last, lowest-priority one."""
        return len(self.backends) - 1

    def get(self, t: Tensor) -> int:
        return self.bid.get(t.uid, -1)

    def supports(self, b: int, op: Tensor) -> bool:
        """``ggml_backend_supports_op(backends[b], op)``."""
        backend = self.backends[b]
        if backend.family is not None:
            for src in op.src:
                if src is None or src.view_src is not None or not is_preallocated(src):
                    continue  # a view has no buffer yet while the scheduler runs
                owner = self.backends[self.buffer_backend(src)]
                if owner.family == backend.family and owner is not backend:
                    return False
        return backend.supports_op(op)


def _backend_from_buffer(a: _Assignment, t: Tensor, op: Tensor) -> int:
    """``ggml_backend_sched_backend_from_buffer``: the backend owning ``t``'s buffer, if it
    runs ``op``; else -1."""
    owner = a.buffer_backend(t)
    if a.supports(owner, op):
        return owner
    return -1


def _backend_from_cur(a: _Assignment, t: Tensor, op_offload: bool) -> int:
    """``ggml_backend_sched_backend_id_from_cur``: the backend pass 1 gives ``t`` (-1: none)."""
    vs = t.view_src
    data = t if is_preallocated(t) else vs if vs is not None and is_preallocated(vs) else None
    if data is not None:
        b = _backend_from_buffer(a, data, t)
        if b == -1:
            device = a.backends[a.buffer_backend(data)].device
            raise BadInput(
                f"llama.cpp aborts: pre-allocated tensor {t.name or data.name} in a {device} "
                f"buffer that cannot run the operation ({t.op})"
            )
        return b
    if t.flags & FLAG_INPUT:
        return a.cpu
    if t.op in ("ROPE", "FLASH_ATTN_EXT"):
        return -1
    for src in t.src:
        if src is None or src.weight is None:
            continue
        src_backend = _backend_from_buffer(a, src, t)
        if op_offload and src_backend == a.cpu and a.backends[a.cpu].host_weights:
            for b in range(a.cpu):
                if a.supports(b, t) and a.backends[b].offload_op(t):
                    return b
        return src_backend
    return -1


def _buffer_supported(a: _Assignment, t: Tensor, b: int) -> bool:
    """``ggml_backend_sched_buffer_supported``: can backend ``b`` read ``t`` in place? There
    is one buffer type per device here, so exactly when ``t`` lives on ``b``."""
    owner = t.view_src if t.view_src is not None else t
    if is_preallocated(owner):
        return a.buffer_backend(owner) == b
    tb = a.get(t)
    if tb == -1 and t.view_src is not None:
        tb = a.get(t.view_src)
    return tb == b


# --- passes 1-4: a backend for every tensor -------------------------------------------------


def _assign_preallocated(
    a: _Assignment, nodes: Sequence[Tensor], leafs: Sequence[Tensor], op_offload: bool
) -> None:
    """Pass 1 (ggml: "assign backends to ops with pre-allocated inputs"): every leaf, then
    every node, not pinned gets ``_backend_from_cur`` (possibly -1)."""
    for leaf in leafs:
        if leaf.uid not in a.bid:
            a.bid[leaf.uid] = _backend_from_cur(a, leaf, op_offload)
    for node in nodes:
        if node.uid not in a.bid:
            a.bid[node.uid] = _backend_from_cur(a, node, op_offload)


def _expand_assignments(a: _Assignment, compute_nodes: Sequence[Tensor]) -> None:
    """Pass 2 (ggml: "expand current backend assignments"): GPU backends spread down then up
    the node list, ignoring the CPU, so the CPU runs nothing unless its weights or inputs
    force it; then every backend spreads down then up. ``compute_nodes`` excludes views."""
    reverse = compute_nodes[::-1]
    _expand(a, compute_nodes, skip_cpu=True)  # expand gpu down
    _expand(a, reverse, skip_cpu=True)  # expand gpu up
    _expand(a, compute_nodes, skip_cpu=False)  # expand rest down
    _expand(a, reverse, skip_cpu=False)  # expand rest up


def _expand(a: _Assignment, order: Sequence[Tensor], *, skip_cpu: bool) -> None:
    """One expansion: an unassigned node takes the last assigned backend before it in
    ``order`` if that backend runs it (an unsupported node stays unassigned for later)."""
    cur = -1
    for node in order:
        b = a.bid.get(node.uid, -1)
        if b != -1:
            cur = -1 if (skip_cpu and b == a.cpu) else b
        elif cur != -1 and a.supports(cur, node):
            a.bid[node.uid] = cur


def _assign_by_inputs(a: _Assignment, compute_nodes: Sequence[Tensor]) -> None:
    """Pass 3 (ggml: "upgrade nodes to higher prio backends"): an unassigned node goes to the
    backend that can read most of its assigned inputs in place (ties: the higher priority).
    ggml's other half, moving an assigned node to a higher-priority backend of the same
    buffer type, never applies here: each backend has its own buffer type."""
    for node in compute_nodes:
        if a.get(node) != -1:
            continue
        best = -1
        for b in range(len(a.backends)):
            if not a.supports(b, node):
                continue
            n_supported = 0
            for src in node.src:
                if src is None:
                    continue
                has_id = a.get(src) != -1 or (
                    src.view_src is not None and a.get(src.view_src) != -1
                )
                if has_id and _buffer_supported(a, src, b):
                    n_supported += 1
            if n_supported > best:
                best = n_supported
                a.bid[node.uid] = b


def _assign_remaining_srcs(a: _Assignment, nodes: Sequence[Tensor]) -> None:
    """Pass 4 (ggml: "assign backends to remaining src from dst and view_src"): a view takes
    its source's backend, an unassigned source its view source's or its consumer's, and a
    node still unassigned the first backend that runs it."""
    for node in nodes:
        cur = a.get(node)
        if node.view_src is not None and cur == -1:
            cur = a.bid[node.uid] = a.get(node.view_src)
        for src in node.src:
            if src is None or a.get(src) != -1:
                continue
            if src.view_src is not None:
                a.bid[src.uid] = a.get(src.view_src)
            else:
                a.bid[src.uid] = cur
        if cur == -1:
            for b in range(len(a.backends)):
                if a.supports(b, node):
                    a.bid[node.uid] = b
                    break


# --- pass 5: splits and the copies of their inputs ------------------------------------------


@dataclass
class _Split:
    """One split: its backend, the tensors it copies in from other backends, and the indices
    (into the original node list) of its nodes, views included."""

    backend: int
    inputs: list[Tensor]
    node_indices: list[int]


@dataclass
class _Cut:
    """Pass 5's result, completed by pass 6: the splits, the copies of each copied tensor
    per reading backend (``(uid, backend)`` -> ``n_copies`` tensors), allocator flags of the
    copies, and the sources of nodes that read a copy instead of the original."""

    splits: list[_Split] = field(default_factory=list)
    copies: dict[tuple[int, int], list[Tensor]] = field(default_factory=dict)
    extra_flags: dict[int, int] = field(default_factory=dict)
    node_srcs: dict[int, tuple[Tensor | None, ...]] = field(default_factory=dict)


def _split_nodes(a: _Assignment, nodes: Sequence[Tensor], n_copies: int) -> _Cut:
    """Pass 5 (ggml: "split graph, find tensors that need to be copied"): a new split starts
    where the backend changes, or where a node reads a weight the split's backend cannot
    read in place once the split already has inputs. Views join the split they fall in;
    those before the first non-view node join the first split."""
    cut = _Cut()
    split_inputs: list[Tensor] = []
    split_nodes: list[int] = []
    cur_backend = -1
    first = True
    for i, node in enumerate(nodes):
        if node.op in VIEW_OPS:
            if not first:
                split_nodes.append(i)
            continue
        nb = a.bid[node.uid]
        if first:
            cur_backend = nb
            split_nodes = list(range(i))
            first = False
        if nb != cur_backend or (split_inputs and _reads_foreign_weight(a, node, cur_backend)):
            cut.splits.append(_Split(cur_backend, split_inputs, split_nodes))
            split_inputs = []
            split_nodes = []
            cur_backend = nb
        split_nodes.append(i)
        new_srcs = _redirect_to_copies(a, node, cur_backend, split_inputs, cut, n_copies)
        if new_srcs is not None:
            cut.node_srcs[node.uid] = new_srcs
    if first:  # a graph of views only
        split_nodes = list(range(len(nodes)))
        cur_backend = a.bid[nodes[0].uid] if nodes else a.cpu
    cut.splits.append(_Split(cur_backend, split_inputs, split_nodes))
    return cut


def _reads_foreign_weight(a: _Assignment, node: Tensor, backend: int) -> bool:
    """Does ``node`` read a weight that ``backend`` cannot read in place?"""
    for src in node.src:
        if src is None or src.weight is None:
            continue
        if a.bid[src.uid] != backend and not _buffer_supported(a, src, backend):
            return True
    return False


def _redirect_to_copies(
    a: _Assignment,
    node: Tensor,
    backend: int,
    split_inputs: list[Tensor],
    cut: _Cut,
    n_copies: int,
) -> tuple[Tensor | None, ...] | None:
    """``node``'s sources with each one ``backend`` cannot read in place replaced by its
    copy on ``backend`` (made, and added to the split's inputs, on first use); None when
    no source needs a copy."""
    new_srcs = None
    for j, src in enumerate(node.src):
        if src is None:
            continue
        if a.bid[src.uid] != backend and not _buffer_supported(a, src, backend):
            key = (src.uid, backend)
            tcopies = cut.copies.get(key)
            if tcopies is None:
                device = a.backends[backend].device
                tcopies = cut.copies[key] = _new_copies(src, device, n_copies, cut.extra_flags)
                split_inputs.append(src)
            if new_srcs is None:
                new_srcs = list(node.src)
            new_srcs[j] = tcopies[0]
    return None if new_srcs is None else tuple(new_srcs)


def _new_copies(
    src: Tensor, device: str, n_copies: int, extra_flags: dict[int, int]
) -> list[Tensor]:
    """``n_copies`` tensors of ``src``'s layout on ``device`` (named as ggml does); with
    pipeline parallelism they are graph inputs and outputs to the allocator."""
    tcopies: list[Tensor] = []
    for _ in range(n_copies):
        c = Tensor(src.type, src.ne, "NONE", (), nb=src.nb)
        c.name = f"{device}#{src.name}"
        if n_copies > 1:
            extra_flags[c.uid] = FLAG_INPUT | FLAG_OUTPUT
        tcopies.append(c)
    return tcopies


# --- pass 6 and the graph copy ----------------------------------------------------------------


def _copy_graph_inputs(
    a: _Assignment, leafs: Sequence[Tensor], n_copies: int, cut: _Cut
) -> list[tuple[list[Tensor], int]]:
    """Pass 6 (pipeline parallelism only): every graph input gets ``n_copies`` buffers, the
    input itself first, all flagged input and output. Returns (copies, backend) per input
    leaf, and records new copies in ``cut``."""
    graph_input_copies: list[tuple[list[Tensor], int]] = []
    for leaf in leafs:
        if not leaf.flags & FLAG_INPUT:
            continue
        lb = a.bid[leaf.uid]
        key = (leaf.uid, lb)
        if key not in cut.copies:
            tcopies = [leaf]
            for _ in range(1, n_copies):
                tcopies.append(Tensor(leaf.type, leaf.ne, "NONE", (), nb=leaf.nb))
            for c in tcopies:
                cut.extra_flags[c.uid] = FLAG_INPUT | FLAG_OUTPUT
            cut.copies[key] = tcopies
        graph_input_copies.append((cut.copies[key], lb))
    return graph_input_copies


def _graph_copy_nodes(
    a: _Assignment, nodes: Sequence[Tensor], cut: _Cut
) -> tuple[list[Tensor], list[tuple[Tensor | None, ...]], list[int]]:
    """The graph copy's nodes, their sources and backends: per split, each input as a view
    (on the input's backend) then its copy (on the split's), then the split's nodes."""
    g_nodes: list[Tensor] = []
    g_srcs: list[tuple[Tensor | None, ...]] = []
    g_backend: list[int] = []
    for split in cut.splits:
        for inp in split.inputs:
            g_nodes.append(view_tensor(inp))
            g_srcs.append((inp,))
            g_backend.append(a.bid[inp.uid])
            g_nodes.append(cut.copies[(inp.uid, split.backend)][0])
            g_srcs.append(())
            g_backend.append(split.backend)
        for i in split.node_indices:
            node = nodes[i]
            g_nodes.append(node)
            g_srcs.append(cut.node_srcs.get(node.uid, node.src))
            g_backend.append(a.bid[node.uid])
    return g_nodes, g_srcs, g_backend


def _graph_copy_leafs(
    a: _Assignment,
    leafs: Sequence[Tensor],
    cut: _Cut,
    graph_input_copies: list[tuple[list[Tensor], int]],
    n_copies: int,
) -> tuple[list[Tensor], list[int]]:
    """The graph copy's leafs and their backends: with pipeline parallelism, the copies of
    graph inputs and of split inputs first (ggml: "add input copies as leafs so that they
    are allocated first"); then the original leafs."""
    g_leafs: list[Tensor] = []
    g_leaf_backend: list[int] = []
    if n_copies > 1:
        for tcopies, lb in graph_input_copies:
            for c in tcopies:
                g_leafs.append(c)
                g_leaf_backend.append(lb)
        for split in cut.splits:
            for inp in split.inputs:
                for c in cut.copies[(inp.uid, split.backend)]:
                    g_leafs.append(c)
                    g_leaf_backend.append(split.backend)
    for leaf in leafs:
        g_leafs.append(leaf)
        g_leaf_backend.append(a.bid[leaf.uid])
    return g_leafs, g_leaf_backend


__all__ = ["FLAG_OUTPUT", "Backend", "SchedResult", "split_graph"]
