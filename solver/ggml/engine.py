"""The scheduler and allocator replay of ``solver.ggml.sched`` / ``solver.ggml.alloc``, compiled.

The readable ports in ``ggml_sched`` and ``ggml_alloc`` walk tensor objects; this module does
the same computation on a graph compiled once into flat arrays, because the placement solver
calls it for many placements of the same graph. Per placement:

1. scheduler passes 1-4 (backend of every node) are vector operations: a node's backend
   comes from the buffer of the weight/KV it touches, then GPU backends are expanded down and
   up the node list, then any backend (``ggml_backend_sched_split_graph``'s expand loops are
   forward/backward fills);
2. pass 5 (splits, copies of inputs from other backends) works on the edges whose source
   lives elsewhere, a few hundred at most;
3. the allocator (``ggml_gallocr_alloc_graph_impl``) runs segment by segment (the inputs,
   each layer, the output head). A segment's allocation depends only on its scheduled
   structure and the allocator state it starts from, so results are memoised on
   (segment signature, canonical state): identical layers of one device reach a fixed point
   after a layer or two and are not replayed, and placements the solver tries later reuse
   whatever segments they share with earlier ones.

Every step is exact (no approximation beyond what the backend models in
``solver.llama.compute_buffer`` state); ``tests/test_compute_buffer.py`` checks the result against
both the readable ports and the real llama-server.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from solver.errors import BadInput
from solver.ggml.alloc import INPLACE_OPS, DynAllocator, is_preallocated
from solver.ggml.ops import FLAG_INPUT, FLAG_OUTPUT, VIEW_OPS, Graph, Tensor, same_layout

# The scheduler skips these when it picks a backend from a weight (ggml-backend.cpp pass 1).
_NO_WEIGHT_PICK = frozenset({"ROPE", "FLASH_ATTN_EXT"})


def _owner_key(t: Tensor) -> tuple | None:
    """Who owns a pre-allocated tensor's data: the layer of a weight duplicated into each
    layer's buffer, a weight by name, a KV tensor by layer; None for any other tensor."""
    if t.dup_layer is not None:
        return ("dup", t.dup_layer)
    if t.weight is not None:
        return ("w", t.weight)
    if t.kv_layer is not None:
        return ("kv", t.kv_layer)
    return None


@dataclass(frozen=True)
class BackendSpec:
    """What the compiled replay needs of a backend."""

    kind: str  # size table of the tensors it computes ("plain" or "cuda")
    copy_kind: str  # size table of the copies it receives (op NONE: layout only)
    alignment: int
    offloads: bool  # takes CPU-weight ops with a large batch (CUDA offload_op)
    # supports_op: the predicate's name in the graph's support table (None: every op); a
    # backend of a family refuses ops reading pre-allocated data of another of the family
    supports: str | None = None
    family: str | None = None


class CompiledGraph:
    """A reserve graph flattened: tensor ids, sources, sizes, and per-node scheduling facts.

    Tensor ids: graph nodes first, in order (so a node's id is its position), then leafs,
    then view sources that are neither (e.g. a KV tensor only reached through views).
    """

    def __init__(
        self,
        graph: Graph,
        segments: Sequence[int],
        size_fns: dict[str, Callable[[Tensor], int]],
        support_fns: dict[str, Callable[[Tensor], bool]] | None = None,
    ) -> None:
        ids = self._number(graph, segments)
        self._links(ids)
        own = self._ownership()
        self._node_kinds()
        self._weight_picks(graph.nodes, ids, own)
        self._copy_edges()
        # size tables per kind (and alignment), computed on first use
        self._size_fns = size_fns
        self._sizes: dict[str, list[int]] = {}
        self._sizes_np: dict[tuple[str, int], np.ndarray] = {}
        self._support_fns = support_fns or {}
        self._supported: dict[str, np.ndarray] = {}
        self.offloadable: np.ndarray | None = None
        self.pin_layers = False  # set by the caller: pins apply whatever the placement
        self.owner_map = np.zeros(1, dtype=np.int64)  # owner index -> caller's owner index
        self._allocator_facts()
        self._segment_structure()

    def _number(self, graph: Graph, segments: Sequence[int]) -> dict[int, int]:
        """Give every tensor its id (see the class docstring); returns uid -> id."""
        nodes, leafs = graph.nodes, graph.leafs
        ids: dict[int, int] = {}
        tensors: list[Tensor] = []

        def number(t: Tensor) -> None:
            if t.uid not in ids:
                ids[t.uid] = len(tensors)
                tensors.append(t)

        for t in nodes:
            number(t)
        for t in leafs:
            number(t)
        i = 0
        while i < len(tensors):
            t = tensors[i]
            if t.view_src is not None:
                number(t.view_src)
            for s in t.src:
                if s is not None:
                    number(s)
            i += 1
        self.n_nodes = len(nodes)
        self.n_tensors = len(tensors)
        self.tensors = tensors
        self.leaf_ids = [ids[t.uid] for t in leafs]
        self.segments = np.asarray(segments, dtype=np.int64)
        self.n_segments = int(self.segments.max()) + 1 if len(segments) else 0
        return ids

    def _links(self, ids: dict[int, int]) -> None:
        """Per tensor id: view source and sources as ids, flags, op, what kind of data it has,
        and its in-place candidates."""
        tensors = self.tensors
        self.view_src = [ids[t.view_src.uid] if t.view_src is not None else -1 for t in tensors]
        self.src = [tuple(ids[s.uid] if s is not None else -1 for s in t.src) for t in tensors]
        self.flags = [t.flags for t in tensors]
        self.prealloc = [is_preallocated(t) for t in tensors]
        self.is_weight = [t.weight is not None for t in tensors]
        self.is_weight_np = np.array(self.is_weight, dtype=bool)
        self.ops = [t.op for t in tensors]
        # in-place candidates: source slots with the node's layout (ggml_gallocr_allocate_node)
        self.inplace = [
            tuple(
                j for j, s in enumerate(t.src)
                if s is not None and same_layout(t, s)
            ) if t.op in INPLACE_OPS else ()
            for t in tensors
        ]  # fmt: skip

    def _ownership(self) -> list[int]:
        """Owners of pre-allocated data (weights by name, KV tensors by layer) and the owner
        whose buffer each tensor's data lives in; returns each tensor's own owner (-1: none)."""
        owners: dict[tuple, int] = {}
        self.owners: list[tuple] = []

        def owner_index(t: Tensor) -> int:
            key = _owner_key(t)
            if key is None:
                return -1
            if key not in owners:
                owners[key] = len(self.owners)
                self.owners.append(key)
            return owners[key]

        own = [owner_index(t) for t in self.tensors]
        # the buffer a tensor's data lives in: its own, or its view source's
        self.owner_of = np.array(
            [own[i] if own[i] >= 0 else (own[v] if (v := self.view_src[i]) >= 0 else -1)
             for i in range(self.n_tensors)],
            dtype=np.int64,
        )  # fmt: skip
        return own

    def _node_kinds(self) -> None:
        """Graph inputs, and the nodes that compute (positions) versus view-op nodes."""
        tensors = self.tensors
        self.is_input = np.array([bool(t.flags & FLAG_INPUT) for t in tensors])
        self.is_view_op = np.array([t.op in VIEW_OPS for t in tensors[: self.n_nodes]])
        self.compute_pos = np.flatnonzero(~self.is_view_op)
        self.view_pos = np.flatnonzero(self.is_view_op)
        self.view_pos_src = np.asarray([self.view_src[p] for p in self.view_pos], dtype=np.int64)
        self.leaf_ids_np = np.asarray(self.leaf_ids, dtype=np.int64)

    def _weight_picks(self, nodes: Sequence[Tensor], ids: dict[int, int], own: list[int]) -> None:
        """Pass 1 facts per node: the owner of the weight whose buffer picks its backend, and
        the nodes the graph pins to a backend."""
        p1_weight = np.full(self.n_nodes, -1, dtype=np.int64)
        for pos in range(self.n_nodes):
            t = self.tensors[pos]
            if t.op in _NO_WEIGHT_PICK:
                continue
            for s in t.src:
                if s is not None and s.weight is not None:
                    p1_weight[pos] = own[ids[s.uid]]
                    break
        self.p1_weight = p1_weight
        self.pins = [(pos, t.pin) for pos, t in enumerate(nodes) if t.pin is not None]

    def _copy_edges(self) -> None:
        """Edges of compute nodes (the only ones that can need a copy of their source)."""
        e_pos, e_src = [], []
        for pos in self.compute_pos:
            for s in self.src[pos]:
                if s >= 0:
                    e_pos.append(pos)
                    e_src.append(s)
        self.e_pos = np.array(e_pos, dtype=np.int64)
        self.e_src = np.array(e_src, dtype=np.int64)
        # (node, source) pairs of every node whose source is itself pre-allocated (not a
        # view of it: a view has no buffer while the scheduler runs), for supports_op's
        # same-device rule
        d_pos, d_src = [], []
        for pos in range(self.n_nodes):
            for s in self.src[pos]:
                if s >= 0 and self.prealloc[s] and self.view_src[s] < 0:
                    d_pos.append(pos)
                    d_src.append(s)
        self.d_pos = np.array(d_pos, dtype=np.int64)
        self.d_src = np.array(d_src, dtype=np.int64)

    def _allocator_facts(self) -> None:
        """Allocator facts that do not depend on the placement: consumers and live views of
        every tensor, and the tensors the allocator gives memory to."""
        n = self.n_tensors
        children0 = np.zeros(n, dtype=np.int64)
        views0 = [0] * n
        for pos in range(self.n_nodes):
            for sid in self.src[pos]:
                if sid >= 0:
                    children0[sid] += 1
            v = self.view_src[pos]
            if v >= 0 and self.ops[pos] != "NONE":
                views0[v] += 1
        self.children0 = children0
        self.views0 = views0
        self.allocatable_mask = np.array(
            [not self.prealloc[t] and self.view_src[t] < 0 for t in range(n)], dtype=bool
        )
        self.alloc_leafs = [
            t for t in self.leaf_ids if not self.prealloc[t] and self.view_src[t] < 0
        ]

    def _segment_structure(self) -> None:
        """Segment bounds, and a structural signature per segment (placement independent).

        Pre-allocated tensors (weights, KV) are named by the segment that first reads them
        and their order there, so two layers built alike have equal signatures.
        """
        segs = self.segments
        n_seg = self.n_segments
        self.seg_of = segs
        self.seg_start = np.searchsorted(segs, np.arange(n_seg), side="left")
        self.seg_end = np.searchsorted(segs, np.arange(n_seg), side="right")
        first_use: dict[int, tuple[int, int]] = {}
        counters = [0] * n_seg
        for pos in range(self.n_nodes):
            seg = int(segs[pos])
            for sid in (*self.src[pos], self.view_src[pos]):
                if sid >= self.n_nodes and self.prealloc[sid] and sid not in first_use:
                    first_use[sid] = (seg, counters[seg])
                    counters[seg] += 1
        self.prealloc_key = first_use
        self.prealloc_at = {v: k for k, v in first_use.items()}
        n = self.n_tensors
        self.t_seg = np.full(n, -1, dtype=np.int64)
        self.t_seg[: self.n_nodes] = segs
        self.t_rel = np.zeros(n, dtype=np.int64)
        self.t_rel[: self.n_nodes] = np.arange(self.n_nodes) - self.seg_start[segs]
        self.pre_seg = np.full(n, -1, dtype=np.int64)
        self.pre_ord = np.zeros(n, dtype=np.int64)
        for t, (seg, k) in first_use.items():
            self.pre_seg[t] = seg
            self.pre_ord[t] = k
        kinds = list(self._size_fns)
        tables = [self.sizes(k) for k in kinds]
        structs = []
        for seg in range(n_seg):
            a, b = int(self.seg_start[seg]), int(self.seg_end[seg])
            items = []
            for pos in range(a, b):
                items.append(
                    (
                        self.ops[pos],
                        self.flags[pos],
                        tuple(self.struct_key(sid, seg) for sid in self.src[pos]),
                        self.struct_key(self.view_src[pos], seg),
                        self.inplace[pos],
                        tuple(t[pos] for t in tables),
                        int(self.children0[pos]),
                        self.views0[pos],
                    )
                )
            structs.append(hash(tuple(items)))
        self.seg_struct = structs

    def relative_names(
        self, tensors: np.ndarray, segs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``struct_key`` for many (tensor, segment) pairs at once: (kind, a, b) arrays."""
        t_seg = self.t_seg[tensors]
        delta = segs - t_seg
        is_node = t_seg >= 0
        relative = is_node & ~(((t_seg == 0) & (segs > 0)) | (delta >= 2))
        pre = ~is_node & (self.pre_seg[tensors] >= 0)
        kind = np.where(relative, 0, np.where(pre, 4, 1))
        a = np.where(relative, delta, np.where(pre, segs - self.pre_seg[tensors], tensors))
        b = np.where(relative, self.t_rel[tensors], np.where(pre, self.pre_ord[tensors], 0))
        return kind, a, b

    def struct_key(self, t: int, seg: int, horizon: int = 1) -> tuple:
        """A tensor named relative to segment ``seg`` (see ``_segment_structure``).

        Nodes of the inputs' segment, and nodes more than ``horizon`` segments back, are
        long-lived and named by id. A memoised segment's result is named with horizon 2
        (``_Canon.result_state``): what ages into an id during the segment is still
        named relative to it, and gets the id of wherever the result is reused.
        """
        if t < 0:
            return ()
        if t < self.n_nodes:
            s = int(self.segments[t])
            if s == 0 < seg or seg - s > horizon:
                return (1, t)
            return (0, seg - s, t - int(self.seg_start[s]))
        pk = self.prealloc_key.get(t)
        if pk is not None:
            return (4, seg - pk[0], pk[1])
        return (1, t)

    def sizes(self, kind: str) -> list[int]:
        table = self._sizes.get(kind)
        if table is None:
            fn = self._size_fns[kind]
            table = self._sizes[kind] = [fn(t) for t in self.tensors]
        return table

    def aligned_sizes(self, kind: str, alignment: int) -> np.ndarray:
        key = (kind, alignment)
        arr = self._sizes_np.get(key)
        if arr is None:
            raw = np.asarray(self.sizes(kind), dtype=np.int64)
            arr = self._sizes_np[key] = (raw + alignment - 1) // alignment * alignment
        return arr

    def supported(self, kind: str) -> np.ndarray:
        """Per node: does the ``kind`` predicate of ``support_fns`` run it (computed once)."""
        mask = self._supported.get(kind)
        if mask is None:
            fn = self._support_fns[kind]
            mask = np.array([fn(t) for t in self.tensors[: self.n_nodes]], dtype=bool)
            self._supported[kind] = mask
        return mask

    def set_offloadable(self, fn: Callable[[Tensor], bool]) -> np.ndarray:
        if self.offloadable is None:
            self.offloadable = np.array([fn(t) for t in self.tensors[: self.n_nodes]])
        return self.offloadable


def _fill(values: np.ndarray, carry: np.ndarray, reverse: bool) -> np.ndarray:
    """Forward (or backward) fill: for each position, ``carry`` at the last assigned one."""
    n = values.size
    assigned = values != -1
    if reverse:
        idx = np.where(assigned, np.arange(n), n)
        idx = np.minimum.accumulate(idx[::-1])[::-1]
        ok = idx < n
    else:
        idx = np.where(assigned, np.arange(n), -1)
        idx = np.maximum.accumulate(idx)
        ok = idx >= 0
    out = np.full(n, -1, dtype=np.int64)
    out[ok] = carry[idx[ok]]
    return out


@dataclass
class Schedule:
    """Scheduler output for one placement: backend per tensor, splits, copies.

    Copies are listed in creation order (first consumer in node order); foreign edges are
    the (node, source) pairs whose source lives on another backend, in node order.
    """

    bid: np.ndarray
    n_splits: int
    split_starts: np.ndarray  # node positions where a split starts (first is 0)
    c_src: np.ndarray  # copy -> source tensor
    c_b: np.ndarray  # copy -> backend it is made on
    c_pos: np.ndarray  # copy -> node position of its first consumer
    f_pos: np.ndarray  # foreign edge -> consuming node position
    f_src: np.ndarray  # foreign edge -> source tensor
    f_copy: np.ndarray  # foreign edge -> copy that replaces the source

    @property
    def copies(self) -> list[tuple[int, int, int]]:
        return list(zip(self.c_src.tolist(), self.c_b.tolist(), self.c_pos.tolist(), strict=True))


def support_matrix(
    cg: CompiledGraph, specs: Sequence[BackendSpec], owner_backend: np.ndarray
) -> np.ndarray | None:
    """``ggml_backend_supports_op`` per (backend, node); None when every backend runs every
    node (the common case, scheduled without the checks)."""
    n_b = len(specs)
    sup = np.ones((n_b, cg.n_nodes), dtype=bool)
    for b, spec in enumerate(specs):
        if spec.supports is not None:
            sup[b] &= cg.supported(spec.supports)
    if cg.d_pos.size:
        src_b = owner_backend[cg.owner_of[cg.d_src]]
        for b, spec in enumerate(specs):
            if spec.family is None:
                continue
            peer = np.array([specs[o].family == spec.family and o != b for o in range(n_b)])
            sup[b, cg.d_pos[peer[src_b]]] = False
    return None if sup.all() else sup


def schedule(
    cg: CompiledGraph,
    owner_backend: np.ndarray,
    n_backends: int,
    offload_targets: Sequence[int],
    pins: dict[int, int],
    supported: np.ndarray | None = None,
) -> Schedule:
    """Passes 1-5 of ggml_backend_sched_split_graph. ``offload_targets``: the backends whose
    ``offload_op`` takes a CPU-weight op, in priority order (none without op offload);
    ``supported`` is ``support_matrix``'s (None: every backend supports every op)."""
    cpu = n_backends - 1
    bid = _assign_from_buffers(cg, owner_backend, cpu, offload_targets, pins, supported)
    comp_b = _expand_assignments(cg, bid, cpu, owner_backend, supported)
    f_pos, f_src, f_copy, c_src, c_b, c_pos = _input_copies(cg, bid, owner_backend, n_backends)
    split_starts = _split_starts(cg, comp_b, f_pos, f_src, c_pos)
    return Schedule(
        bid=bid,
        n_splits=int(split_starts.size),
        split_starts=split_starts,
        c_src=c_src,
        c_b=c_b,
        c_pos=c_pos,
        f_pos=f_pos,
        f_src=f_src,
        f_copy=f_copy,
    )


def _assign_from_buffers(
    cg: CompiledGraph,
    owner_backend: np.ndarray,
    cpu: int,
    offload_targets: Sequence[int],
    pins: dict[int, int],
    supported: np.ndarray | None = None,
) -> np.ndarray:
    """Pass 1: the backend of every tensor whose data has a buffer, graph inputs on the CPU,
    nodes on the backend of the weight they read (or the offload target) if it runs them,
    then the pins; -1 where still unassigned."""
    n_nodes = cg.n_nodes
    bid = np.full(cg.n_tensors, -1, dtype=np.int64)
    owned = cg.owner_of >= 0
    bid[owned] = owner_backend[cg.owner_of[owned]]
    leaf_ids = cg.leaf_ids_np
    inputs = leaf_ids[cg.is_input[leaf_ids] & (bid[leaf_ids] == -1)]
    bid[inputs] = cpu
    node_b = bid[:n_nodes]  # view into bid
    positions = np.arange(n_nodes)
    if supported is not None:
        _check_preallocated(cg, node_b, supported)
    by_weight = np.where(cg.p1_weight >= 0, owner_backend[np.maximum(cg.p1_weight, 0)], -1)
    if supported is not None:  # the weight's backend refuses the op: no backend (ggml: -1)
        by_weight[(by_weight >= 0) & ~supported[np.maximum(by_weight, 0), positions]] = -1
    if offload_targets and cg.offloadable is not None:
        # the first backend (in priority order) that runs the op and wants it
        todo = (by_weight == cpu) & cg.offloadable
        offloaded = by_weight.copy()
        for b in offload_targets:
            take = todo if supported is None else todo & supported[b]
            offloaded[take] = b
            todo = todo & ~take
        by_weight = offloaded
    take = (node_b == -1) & (by_weight != -1)
    node_b[take] = by_weight[take]
    for pos, b in pins.items():
        node_b[pos] = b
    return bid


def _check_preallocated(cg: CompiledGraph, node_b: np.ndarray, supported: np.ndarray) -> None:
    """ggml aborts on a node with data in a buffer whose backend refuses it; so does fit."""
    owned = np.flatnonzero(node_b >= 0)
    refused = owned[~supported[node_b[owned], owned]]
    if refused.size:
        t = cg.tensors[int(refused[0])]
        raise BadInput(
            f"llama.cpp aborts: pre-allocated tensor {t.name or t.op} in a buffer whose "
            f"backend cannot run the operation ({t.op})"
        )


def _expand_assignments(
    cg: CompiledGraph,
    bid: np.ndarray,
    cpu: int,
    owner_backend: np.ndarray,
    supported: np.ndarray | None = None,
) -> np.ndarray:
    """Passes 2-4 on ``bid`` in place: compute nodes take the backend expanded to them (GPU
    backends down and up, then any backend) where it runs them, refused ones the backend of
    pass 3, view ops their view source's, the rest the CPU. Returns the compute nodes'
    backends."""
    node_b = bid[: cg.n_nodes]  # view into bid
    # pass 2: expand assignments over the compute (non view-op) nodes; a node the carried
    # backend refuses stays unassigned and does not stop the carry (ggml's set_if_supported)
    comp = cg.compute_pos
    v = node_b[comp].copy()
    for reverse, skip_cpu in ((False, True), (True, True), (False, False), (True, False)):
        carry = np.where(v == cpu, -1, v) if skip_cpu else v
        filled = _fill(v, carry, reverse)
        todo = (v == -1) & (filled != -1)
        if supported is not None:
            todo &= supported[np.maximum(filled, 0), comp]
        v[todo] = filled[todo]
    node_b[comp] = v
    if supported is not None:
        _assign_by_inputs(cg, bid, owner_backend, supported)
    # pass 4: view ops follow their view source
    vp = cg.view_pos
    if vp.size:
        vs = cg.view_pos_src
        unset = node_b[vp] == -1
        node_b[vp[unset]] = bid[vs[unset]]
    if (node_b[comp] == -1).any():
        node_b[comp[node_b[comp] == -1]] = cpu
    # pass 4: a source still unassigned (a leaf the graph made itself, neither input nor in
    # a buffer: DSA's zeros) takes the backend of its first consumer
    unset = bid[cg.e_src] == -1
    if unset.any():
        srcs, first = np.unique(cg.e_src[unset], return_index=True)
        bid[srcs] = node_b[cg.e_pos[unset][first]]
    return node_b[comp].copy()


def _assign_by_inputs(
    cg: CompiledGraph, bid: np.ndarray, owner_backend: np.ndarray, supported: np.ndarray
) -> None:
    """Pass 3 (ggml: "upgrade nodes to higher prio backends"), in node order: a compute node
    still unassigned (refused where the expansion reached it) goes to the backend that runs
    it and can read most of its assigned inputs in place (ties: the higher priority)."""
    n_b = supported.shape[0]
    for pos in cg.compute_pos[bid[cg.compute_pos] == -1].tolist():
        best = -1
        for b in range(n_b):
            if not supported[b, pos]:
                continue
            srcs = [s for s in cg.src[pos] if s >= 0]
            n_ok = sum(_reads_in_place(cg, bid, owner_backend, s, b) for s in srcs)
            if n_ok > best:
                best = n_ok
                bid[pos] = b


def _reads_in_place(
    cg: CompiledGraph, bid: np.ndarray, owner_backend: np.ndarray, s: int, b: int
) -> bool:
    """Pass 3's test of a source: assigned (itself or its view source) and in a buffer
    backend ``b`` reads (ggml_backend_sched_buffer_supported: here, on ``b`` itself)."""
    vs = cg.view_src[s]
    if bid[s] == -1 and (vs < 0 or bid[vs] == -1):
        return False
    owner = cg.owner_of[s]
    if owner >= 0:
        return int(owner_backend[owner]) == b
    tb = bid[s] if bid[s] != -1 or vs < 0 else bid[vs]
    return int(tb) == b


def _input_copies(
    cg: CompiledGraph, bid: np.ndarray, owner_backend: np.ndarray, n_backends: int
) -> tuple[np.ndarray, ...]:
    """Pass 5's copies: the edges whose source lives on another backend (f_pos, f_src, and
    f_copy, the copy replacing the source) and one copy per (source, backend), created at
    its first consumer (c_src, c_b, c_pos)."""
    owned = cg.owner_of >= 0
    src_b = np.where(owned[cg.e_src], owner_backend[np.maximum(cg.owner_of[cg.e_src], 0)], -1)
    plain = ~owned[cg.e_src]
    src_b[plain] = bid[cg.e_src[plain]]
    e_node_b = bid[cg.e_pos]
    foreign = np.flatnonzero(src_b != e_node_b)
    f_pos = cg.e_pos[foreign]
    f_src = cg.e_src[foreign]
    f_b = e_node_b[foreign]
    if not foreign.size:
        empty = np.zeros(0, dtype=np.int64)
        return f_pos, f_src, empty, empty, empty, empty
    keys = f_src * n_backends + f_b
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    f_copy = rank[inverse.ravel()]
    firsts = first[order]
    return f_pos, f_src, f_copy, f_src[firsts], f_b[firsts], f_pos[firsts]


def _split_starts(
    cg: CompiledGraph,
    comp_b: np.ndarray,
    f_pos: np.ndarray,
    f_src: np.ndarray,
    c_pos: np.ndarray,
) -> np.ndarray:
    """Pass 5's splits: node positions where one starts (the first is 0), where the compute
    nodes' backend (``comp_b``) changes and where ``need_new_split`` starts one."""
    comp = cg.compute_pos
    change = np.flatnonzero(comp_b[1:] != comp_b[:-1]) + 1
    starts = comp[change].tolist()
    if f_pos.size:
        weight_pos = np.unique(f_pos[cg.is_weight_np[f_src]])
        if weight_pos.size:
            first = int(comp[0]) if comp.size else 0
            starts = _weight_splits(starts, weight_pos.tolist(), c_pos.tolist(), first)
    return np.asarray([0, *starts], dtype=np.int64)


def _weight_splits(
    starts: list[int], weight_pos: list[int], creation: list[int], first: int
) -> list[int]:
    """need_new_split: a weight from an incompatible backend while the split already has
    inputs starts a new split. ``starts``: the splits so far (after ``first``, the first
    compute node); ``weight_pos``: nodes reading a foreign weight, ascending; ``creation``:
    where each copy is made, non-decreasing (copies are created in node order, at first
    use). Returns the split starts with the new ones."""
    start_set = set(starts)
    boundaries = iter(starts)
    next_start = next(boundaries, None)
    split_start = first
    extra = []
    for pos in weight_pos:
        while next_start is not None and next_start <= pos:
            split_start = next_start
            next_start = next(boundaries, None)
        if pos in start_set:
            continue
        lo = bisect_left(creation, split_start)
        if lo < len(creation) and creation[lo] < pos:
            extra.append(pos)
            split_start = pos
    return sorted(start_set.union(extra)) if extra else starts


def upper_bound(
    cg: CompiledGraph, sched: Schedule, backends: Sequence[BackendSpec], n_copies: int
) -> list[int]:
    """Bytes per backend if nothing were ever freed or reused: a bound on the reserve.

    A buffer's high-water mark grows by at most one tensor per allocation, so the sum of
    every allocation it serves bounds it.
    """
    n = cg.n_tensors
    bid = sched.bid
    mask = cg.allocatable_mask
    out = []
    for b, spec in enumerate(backends):
        sizes = cg.aligned_sizes(spec.kind, spec.alignment)
        total = int(sizes[mask & (bid == b)].sum())
        if n_copies > 1:
            copy_sizes = cg.aligned_sizes(spec.copy_kind, spec.alignment)
            inputs = cg.is_input[:n] & (bid == b)
            total += (n_copies - 1) * int(copy_sizes[inputs].sum())
        out.append(total)
    copy_sizes = {
        b: cg.aligned_sizes(spec.copy_kind, spec.alignment) for b, spec in enumerate(backends)
    }
    for b in range(len(backends)):
        mine = sched.c_b == b
        if mine.any():
            out[b] += n_copies * int(copy_sizes[b][sched.c_src[mine]].sum())
    return out


class SegmentMemo:
    """Allocation results of segments, keyed by (segment signature, canonical state). The
    caller keeps one per (graph, backends, copies) and passes it to ``allocate``, which reads
    and fills it."""

    def __init__(self) -> None:
        self.table: dict[tuple, tuple] = {}

    def clear_if_large(self, limit: int = 20_000) -> None:
        if len(self.table) > limit:
            self.table.clear()


def allocate(
    cg: CompiledGraph,
    sched: Schedule,
    backends: Sequence[BackendSpec],
    n_copies: int,
    memo: SegmentMemo | None = None,
) -> list[int]:
    """ggml_gallocr_reserve_n on the scheduler's graph copy: bytes per backend.

    The graph copy is walked segment by segment. Before each segment the allocator state is
    put in canonical form (free blocks, and every live tensor named relative to the segment:
    ``(0, segments back, position in its segment)`` for nodes, ``(1, id)`` for inputs,
    ``(2, source, backend, k)`` for scheduler copies), and a segment whose signature and
    canonical state were seen before is not replayed: its result (the next state, the peak
    per backend, the uses of long-lived tensors) is reused, also by other placements, and
    at other segments. So a result names nothing by an id the segment did not receive: a
    tensor that becomes long-lived in the segment (it ages past the previous layer, or is
    a copy made of an input) keeps a relative name and its consumer count in the stored
    result, and gets this placement's id where the result is applied.

    The pieces: ``_Allocator`` is the allocator proper (ggml-alloc.c over flat lists);
    ``_Canon`` names its tensors relative to a segment and converts its state to and from
    the canonical form; ``_segment_signatures`` gives what else a segment depends on;
    ``_MemoisedReserve`` walks the segments, reusing or replaying each.
    """
    allocator = _Allocator(cg, sched, backends, n_copies)
    return _MemoisedReserve(allocator, memo or SegmentMemo()).run()


# --- the allocator proper -------------------------------------------------------------------


class _Allocator:
    """ggml's graph allocator (``ggml_gallocr_alloc_graph_impl``) over the scheduler's graph
    copy of a compiled graph, on flat per-tensor lists.

    Tensor ids: ``0 .. n-1`` are the compiled graph's; ``n + c * n_copies + k`` is buffer k
    of scheduler copy c (copies in ``Schedule`` order). A reserve is ``run_leafs`` then
    ``run_nodes`` over consecutive node ranges; ``_MemoisedReserve`` skips the ranges whose
    result it already knows and brings these lists up to date (``_Canon.restore``).
    """

    def __init__(
        self, cg: CompiledGraph, sched: Schedule, backends: Sequence[BackendSpec], n_copies: int
    ) -> None:
        self.cg = cg
        self.sched = sched
        self.backends = backends
        self.n_copies = n_copies
        self.n = cg.n_tensors
        self.n_cp = int(sched.c_src.size)
        extra = self.n_cp * n_copies
        self.total = self.n + extra
        # copy c's n_copies buffers are ids n + c * n_copies + k: ``rep`` spreads per-copy
        # values over them
        rep = np.repeat(np.arange(self.n_cp), n_copies) if n_copies > 1 else np.arange(self.n_cp)
        self._copies(rep)
        self._tensor_facts(extra)
        self._consumers(rep, extra)
        self.c_at = self._copy_split_starts()

        # the allocator state: one dynamic allocator per backend; per tensor id whether it
        # holds memory, where (address, buffer), and the live ones
        self.allocs = [DynAllocator(b.alignment) for b in backends]
        self.allocated = [False] * self.total
        self.addr = [0] * self.total
        self.buf = [0] * self.total
        self.alive: set[int] = set()

    def _copies(self, rep: np.ndarray) -> None:
        """The scheduler's copies: source and backend of each, the backend of every id, and
        sizes (a tensor's in its backend's table, a copy's in its copy table)."""
        cg, sched = self.cg, self.sched
        c_src, c_b = sched.c_src, sched.c_b
        self.c_src = c_src.tolist()
        self.c_b = c_b.tolist()
        self.bid = sched.bid.tolist() + c_b[rep].tolist()
        self.sizes_by_backend = [cg.sizes(b.kind) for b in self.backends]
        copy_size = np.zeros(self.n_cp, dtype=np.int64)
        for b, spec in enumerate(self.backends):
            mine = c_b == b
            if mine.any():
                copy_size[mine] = np.asarray(cg.sizes(spec.copy_kind), dtype=np.int64)[c_src[mine]]
        self.copy_size_np = copy_size
        self.copy_size = copy_size[rep].tolist()

    def _tensor_facts(self, extra: int) -> None:
        """View source, flags and pre-allocation of every id. With pipeline parallelism the
        copies and the graph inputs are inputs and outputs (never freed)."""
        cg, n_copies = self.cg, self.n_copies
        self.view_src = cg.view_src + [-1] * extra
        flags = cg.flags + [(FLAG_INPUT | FLAG_OUTPUT) if n_copies > 1 else 0] * extra
        if n_copies > 1:
            for leaf in cg.leaf_ids:
                if flags[leaf] & FLAG_INPUT:
                    flags[leaf] |= FLAG_OUTPUT
        self.flags = flags
        self.prealloc = cg.prealloc + [False] * extra

    def _consumers(self, rep: np.ndarray, extra: int) -> None:
        """Consumers left (``children``) and live views (``views``) of every id: graph edges,
        minus those redirected to copies, plus each copy's dependency on its source."""
        cg, sched = self.cg, self.sched
        children = cg.children0.copy()
        if self.n_cp:
            np.subtract.at(children, sched.f_src, 1)
            np.add.at(children, sched.c_src, 1)
            copy_children = np.bincount(sched.f_copy, minlength=self.n_cp)
        else:
            copy_children = np.zeros(0, dtype=np.int64)
        self.children_np = children
        self.copy_children_np = copy_children
        self.children = children.tolist() + copy_children[rep].tolist()
        self.views = cg.views0 + [0] * extra

    def _copy_split_starts(self) -> np.ndarray:
        """Per copy, the node position it is inserted at: the start of the split where it is
        first needed."""
        sched = self.sched
        if not self.n_cp:
            return np.zeros(0, dtype=np.int64)
        which = np.searchsorted(sched.split_starts, sched.c_pos, side="right") - 1
        return sched.split_starts[which]

    # --- tensor sizes, allocation and freeing (ggml-alloc.c) ------------------------------

    def size_of(self, t: int, b: int) -> int:
        if t >= self.n:
            return self.copy_size[t - self.n]
        return self.sizes_by_backend[b][t]

    def free(self, t: int) -> None:
        if self.flags[t] & FLAG_OUTPUT:
            return
        b = self.buf[t]
        self.allocs[b].free(self.addr[t], self.size_of(t, b))
        self.allocated[t] = False
        self.alive.discard(t)

    def allocate_node(self, t: int, b: int, srcs: tuple[int, ...]) -> None:
        if self.allocated[t] or self.view_src[t] >= 0 or self.prealloc[t]:
            return
        allocated = self.allocated
        allocated[t] = True
        self.alive.add(t)
        if t < self.n:
            for j in self.cg.inplace[t]:
                p = srcs[j]
                if not allocated[p] or self.flags[p] & FLAG_OUTPUT:
                    continue
                if self.children[p] == 1 and self.views[p] == 0:
                    pb = self.buf[p]
                    self.buf[t] = pb
                    self.addr[t] = self.addr[p]
                    allocated[p] = False
                    self.alive.discard(p)
                    al = self.allocs[pb].alignment
                    ps = (self.size_of(p, pb) + al - 1) // al * al
                    ns = (self.size_of(t, pb) + al - 1) // al * al
                    if ps > ns:
                        self.allocs[pb].free(self.addr[p] + ns, ps - ns)
                    return
        self.buf[t] = b
        self.addr[t] = self.allocs[b].alloc(self.size_of(t, b))

    def release(self, p: int) -> None:
        """A consumer of p ran: the last one frees p (or p's view source)."""
        children = self.children
        children[p] -= 1
        if children[p] == 0 and self.views[p] == 0:
            self.alive.discard(p)
            vsrc = self.view_src[p]
            if vsrc >= 0:
                views = self.views
                views[vsrc] -= 1
                if views[vsrc] == 0 and children[vsrc] == 0 and self.allocated[vsrc]:
                    self.free(vsrc)
            elif self.allocated[p]:
                self.free(p)

    # --- walking the graph copy -----------------------------------------------------------

    def run_leafs(self) -> None:
        cg = self.cg
        bid = self.bid
        n_copies = self.n_copies
        order: list[int] = []
        if n_copies > 1:
            for leaf in cg.leaf_ids:
                if cg.flags[leaf] & FLAG_INPUT:
                    order.append(leaf)
            order.extend(range(self.n, self.total))
        order.extend(cg.alloc_leafs)
        for t in order:
            if n_copies > 1 and t < self.n and cg.flags[t] & FLAG_INPUT and not self.allocated[t]:
                b = bid[t]
                self.allocate_node(t, b, ())
                for _k in range(n_copies - 1):
                    self.allocs[b].alloc(self.copy_size_of_input(t, b))
                continue
            self.allocate_node(t, bid[t], ())

    def copy_size_of_input(self, t: int, b: int) -> int:
        return self.cg.sizes(self.backends[b].copy_kind)[t]

    def run_nodes(self, start: int, end: int) -> None:
        """Nodes [start, end) of the graph copy, with the copies inserted at split starts."""
        rewritten = self._rewritten_srcs(start, end)
        copies_at = self._copies_at(start, end)
        n = self.n
        n_copies = self.n_copies
        bid = self.bid
        src_lists = self.cg.src
        view_src = self.view_src
        allocated = self.allocated
        children = self.children
        alive = self.alive
        allocate_node = self.allocate_node
        release = self.release
        c_src, c_b = self.c_src, self.c_b
        for pos in range(start, end):
            cl = copies_at.get(pos)
            if cl:
                for c in cl:
                    release(c_src[c])  # the dependency view: the source may be freed now
                    allocate_node(n + c * n_copies, c_b[c], ())
            srcs = rewritten.get(pos) or src_lists[pos]
            b = bid[pos]
            for p in srcs:
                if p >= 0 and not allocated[p]:
                    allocate_node(p, b, src_lists[p] if p < n else ())
            allocate_node(pos, b, srcs)
            if view_src[pos] >= 0 and children[pos] > 0:
                alive.add(pos)
            for p in srcs:
                if p >= 0:
                    release(p)

    def _rewritten_srcs(self, start: int, end: int) -> dict[int, tuple[int, ...]]:
        """Sources of nodes [start, end) as the scheduler rewrote them (inputs from another
        backend -> buffer 0 of their copy); only the nodes it rewrote."""
        sched = self.sched
        rewritten: dict[int, tuple[int, ...]] = {}
        lo, hi = np.searchsorted(sched.f_pos, (start, end))
        if hi > lo:
            for pos, src, c in zip(
                sched.f_pos[lo:hi].tolist(), sched.f_src[lo:hi].tolist(),
                sched.f_copy[lo:hi].tolist(), strict=True,
            ):  # fmt: skip
                cur = rewritten.get(pos) or self.cg.src[pos]
                t = self.n + c * self.n_copies
                rewritten[pos] = tuple(t if x == src else x for x in cur)
        return rewritten

    def _copies_at(self, start: int, end: int) -> dict[int, list[int]]:
        """The copies inserted before nodes [start, end), by node position."""
        copies_at: dict[int, list[int]] = {}
        lo, hi = np.searchsorted(self.c_at, (start, end))
        for c in range(int(lo), int(hi)):
            copies_at.setdefault(int(self.c_at[c]), []).append(c)
        return copies_at


# --- canonical state: the memo's key and result ---------------------------------------------


class _Canon:
    """An allocator's tensors named relative to a segment, and its state in canonical form.

    A name (``canon``) is ``CompiledGraph.struct_key`` for a graph tensor and ``(2, its
    source's name, backend, k)`` for buffer k of a scheduler copy; ``concrete`` turns a name
    back into this allocator's id at a segment. Long-lived tensors (``is_global``: named by
    id, as inputs and their copies are) are kept in a state without their consumer count;
    what a segment consumes of them is its ``uses``, checked (``valid``) and applied
    (``apply_uses``) where the segment is reused.
    """

    def __init__(self, allocator: _Allocator) -> None:
        self.al = allocator
        self._copy_index: dict[tuple[int, int], int] | None = None

    @property
    def copy_index(self) -> dict[tuple[int, int], int]:
        """(source, backend) -> copy, built on first use."""
        if self._copy_index is None:
            al = self.al
            self._copy_index = {
                (s, b): c for c, (s, b) in enumerate(zip(al.c_src, al.c_b, strict=True))
            }
        return self._copy_index

    # --- names ----------------------------------------------------------------------------

    def canon(self, t: int, s: int, horizon: int = 1) -> tuple:
        al = self.al
        if t < al.n:
            return al.cg.struct_key(t, s, horizon)
        c, k = divmod(t - al.n, al.n_copies)
        return (2, self.canon(al.c_src[c], s, horizon), al.c_b[c], k)

    def concrete(self, key: tuple, s: int) -> int:
        al = self.al
        if key[0] == 0:
            return int(al.cg.seg_start[s - key[1]]) + key[2]
        if key[0] == 1:
            return key[1]
        if key[0] == 4:
            return al.cg.prealloc_at[(s - key[1], key[2])]
        src = self.concrete(key[1], s)
        return al.n + self.copy_index[(src, key[2])] * al.n_copies + key[3]

    @staticmethod
    def is_global(key: tuple) -> bool:
        while key[0] == 2:
            key = key[1]
        return key[0] == 1

    @staticmethod
    def is_aging(key: tuple) -> bool:
        """A result's name (horizon 2) that the canonical horizon of 1 names by id."""
        while key[0] == 2:
            key = key[1]
        return key[0] == 0 and key[1] > 1

    def aged_key(self, key: tuple, s: int) -> tuple:
        """An ``is_aging`` name at segment s -> its canonical (long-lived) name there."""
        if key[0] == 2:
            return (2, self.aged_key(key[1], s), key[2], key[3])
        if key[0] == 0 and key[1] > 1:
            return (1, int(self.al.cg.seg_start[s - key[1]]) + key[2])
        return key

    # --- states ---------------------------------------------------------------------------

    def state(self, s: int) -> tuple:
        """Canonical allocator state at the start of segment s: the memo key.

        Long-lived tensors (``is_global``) are stored without their consumer count, which
        changes from layer to layer; ``uses`` tracks what a reused segment consumes of them.
        """
        al = self.al
        live = []
        for t in al.alive:
            key = self.canon(t, s)
            live.append(self._entry(t, key, None if self.is_global(key) else al.children[t]))
        live.sort()
        return (self._blocks(), tuple(live))

    def result_state(self, s: int, tracked: Mapping[int, int]) -> tuple[tuple, bool]:
        """The state after a replayed segment s - 1, as the memo stores it: (state, raw).

        It must hold wherever the segment is reused, so it is named relative to the segment
        (horizon 2: what ages into an id during the segment keeps a relative name) and keeps
        the consumer count of every tensor but those ``uses`` tracks (``tracked``: the
        long-lived ones alive at the segment's start). ``raw`` says whether ``canonical``
        has anything to rename or move out.
        """
        al = self.al
        live = []
        raw = False
        for t in al.alive:
            key = self.canon(t, s, horizon=2)
            count = None if t in tracked else al.children[t]
            raw = raw or self.is_aging(key) or (count is not None and self.is_global(key))
            live.append(self._entry(t, key, count))
        live.sort()
        return (self._blocks(), tuple(live)), raw

    def canonical(self, result: tuple, s: int) -> tuple[tuple, tuple]:
        """A stored result at segment s -> (canonical state, counts to set).

        The counts ``(canonical key, consumers left)`` are those of tensors that became
        long-lived in the reused segment (copies made of inputs, tensors that aged): the
        canonical state does not carry them and ``uses`` did not track them.
        """
        blocks, live = result
        out = []
        counts = []
        for entry in live:
            key = entry[0]
            if self.is_aging(key):
                key = self.aged_key(key, s)
            if entry[5] is not None and self.is_global(key):
                counts.append((key, entry[5]))
                entry = (key, *entry[1:5], None, entry[6])
            elif key is not entry[0]:
                entry = (key, *entry[1:])
            out.append(entry)
        out.sort()
        return (blocks, tuple(out)), tuple(counts)

    def _entry(self, t: int, key: tuple, count: int | None) -> tuple:
        al = self.al
        b = al.buf[t]
        allocated = al.allocated[t]
        size = al.size_of(t, b) if allocated else 0
        return (key, allocated, b, al.addr[t], size, count, al.views[t])

    def _blocks(self) -> tuple:
        return tuple(tuple(tuple(x) for x in a.blocks) for a in self.al.allocs)

    def restore(self, state: tuple, s: int) -> None:
        """Make the allocator's lists match a canonical state (after reused segments)."""
        al = self.al
        blocks, live = state
        for a, bl in zip(al.allocs, blocks, strict=True):
            a.blocks = [list(x) for x in bl]
        al.alive = set()
        for key, allocated, b, addr, _size, children, views in live:
            t = self.concrete(key, s)
            al.allocated[t] = allocated
            al.buf[t] = b
            al.addr[t] = addr
            if children is not None:
                al.children[t] = children
            al.views[t] = views
            al.alive.add(t)

    # --- uses of long-lived tensors -------------------------------------------------------

    def global_counts(self, s: int) -> dict[int, int]:
        """Remaining consumers of every live long-lived tensor (inputs and their copies)."""
        al = self.al
        out = {}
        for t in al.alive:
            if self.is_global(self.canon(t, s)):
                out[t] = al.children[t]
        return out

    def global_uses(self, before: dict[int, int], s: int) -> tuple:
        """What the segment starting at s consumed of the long-lived tensors alive before it
        (``before``: their counts then): (name, consumers used, whether it died)."""
        children = self.al.children
        uses = []
        for t, count in before.items():
            used = count - children[t]
            if used:
                uses.append((self.canon(t, s), used, children[t] == 0))
        return tuple(uses)

    def valid(self, uses: tuple, s: int) -> bool:
        """Do a stored segment's uses hold at segment s (same consumption, same deaths)?"""
        children = self.al.children
        for key, used, died in uses:
            t = self.concrete(key, s)
            remaining = children[t]
            if died != (remaining == used) or remaining < used:
                return False
        return True

    def apply_uses(self, uses: tuple, s: int) -> None:
        al = self.al
        for key, used, died in uses:
            t = self.concrete(key, s)
            al.children[t] -= used
            if died:
                al.allocated[t] = False
                al.alive.discard(t)


# --- segment signatures -----------------------------------------------------------------------


def _segment_signatures(al: _Allocator) -> list[tuple | None]:
    """Per layer segment: everything its allocation depends on besides the state (None for
    the inputs' and the output head's segments, which are always replayed).

    The structural signature (ops, sizes, sources, compiled once) plus, from this
    placement: the backends and consumer counts of its nodes, its copy edges and the
    copies created in it (sources named relative to the segment), its split starts.
    """
    cg = al.cg
    n_seg = cg.n_segments
    seg_start = cg.seg_start
    bid = al.sched.bid
    children = al.children_np
    e_rec, e_bounds = _copy_edge_records(al)
    c_rec, c_bounds = _copy_records(al)
    s_rel, s_bounds = _split_start_records(al)
    out: list[tuple | None] = [None] * n_seg
    for s in range(1, n_seg - 1):
        a, b = int(seg_start[s]), int(cg.seg_end[s])
        out[s] = (
            cg.seg_struct[s],
            bid[a:b].tobytes(),
            children[a:b].tobytes(),
            e_rec[e_bounds[s] : e_bounds[s + 1]].tobytes(),
            c_rec[c_bounds[s] : c_bounds[s + 1]].tobytes(),
            s_rel[s_bounds[s] : s_bounds[s + 1]].tobytes(),
        )
    return out


def _copy_edge_records(al: _Allocator) -> tuple[np.ndarray, np.ndarray]:
    """Copy edges as rows (position in segment, source named relative to it, backend), in
    node order, and the row range of each segment."""
    cg, sched = al.cg, al.sched
    e_seg = cg.seg_of[sched.f_pos] if sched.f_pos.size else sched.f_pos
    e_rec = np.stack(
        [
            sched.f_pos - cg.seg_start[e_seg],
            *cg.relative_names(sched.f_src, e_seg),
            sched.c_b[sched.f_copy] if sched.f_copy.size else sched.f_copy,
        ],
        axis=1,
    ) if sched.f_pos.size else np.zeros((0, 5), dtype=np.int64)  # fmt: skip
    return e_rec, np.searchsorted(e_seg, np.arange(cg.n_segments + 1))


def _copy_records(al: _Allocator) -> tuple[np.ndarray, np.ndarray]:
    """Copies created as rows (split start in segment, source named relative to it,
    backend, size, consumers), in creation order, and the row range of each segment."""
    cg, sched = al.cg, al.sched
    c_seg = cg.seg_of[al.c_at] if al.n_cp else al.c_at
    c_rec = np.stack(
        [
            al.c_at - cg.seg_start[c_seg],
            *cg.relative_names(sched.c_src, c_seg),
            sched.c_b,
            al.copy_size_np,
            al.copy_children_np,
        ],
        axis=1,
    ) if al.n_cp else np.zeros((0, 7), dtype=np.int64)  # fmt: skip
    return c_rec, np.searchsorted(c_seg, np.arange(cg.n_segments + 1))


def _split_start_records(al: _Allocator) -> tuple[np.ndarray, np.ndarray]:
    """Split starts as positions in their segment, and the range of each segment."""
    cg = al.cg
    starts = al.sched.split_starts
    s_seg = cg.seg_of[np.minimum(starts, cg.n_nodes - 1)]
    s_rel = starts - cg.seg_start[s_seg]
    return s_rel, np.searchsorted(s_seg, np.arange(cg.n_segments + 1))


# --- the memoised walk ------------------------------------------------------------------------


class _MemoisedReserve:
    """The segment walk of ``allocate``: a layer segment whose signature and canonical start
    state are in the memo, with uses that hold here, is reused (its peaks, uses and end
    state applied); any other segment is replayed on the allocator, and a layer segment's
    result stored."""

    def __init__(self, allocator: _Allocator, memo: SegmentMemo) -> None:
        self.al = allocator
        self.canon = _Canon(allocator)
        self.memo = memo
        self.state: tuple | None = None  # canonical state at the current segment, if known
        self.stale = False  # the allocator's lists lag behind ``state`` (segments reused)

    def run(self) -> list[int]:
        al = self.al
        cg = al.cg
        al.run_leafs()
        sigs = _segment_signatures(al)
        for s in range(cg.n_segments):
            sig = sigs[s]
            if sig is None:
                self._catch_up(s)
                al.run_nodes(int(cg.seg_start[s]), int(cg.seg_end[s]))
                self.state = None
            elif not self._reuse(sig, s):
                self._replay(sig, s)
        self.memo.clear_if_large()
        return [a.max_size for a in al.allocs]

    def _catch_up(self, s: int) -> None:
        """Before replaying segment s: bring the allocator's lists up to ``state``."""
        if self.stale:
            self.canon.restore(self.state, s)
            self.stale = False

    def _reuse(self, sig: tuple, s: int) -> bool:
        """Apply segment s's stored result, if one holds here; False when there is none."""
        canon = self.canon
        if self.state is None:
            self.state = canon.state(s)
        hit = self.memo.table.get((sig, self.state))
        if hit is None or not canon.valid(hit[2], s):
            return False
        new_state, peaks, uses, raw = hit
        allocs = self.al.allocs
        for b, peak in enumerate(peaks):
            if peak > allocs[b].max_size:
                allocs[b].max_size = peak
        canon.apply_uses(uses, s)
        if raw:  # this placement's ids for what aged; counts of new long-lived
            new_state, counts = canon.canonical(new_state, s + 1)
            for key, left in counts:
                self.al.children[canon.concrete(key, s + 1)] = left
        self.state = new_state
        self.stale = True
        return True

    def _replay(self, sig: tuple, s: int) -> None:
        """Replay layer segment s and store its result under (signature, start state)."""
        self._catch_up(s)
        al, canon, state = self.al, self.canon, self.state
        cg = al.cg
        before_max = [a.max_size for a in al.allocs]
        for a in al.allocs:
            a.max_size = 0
        glob_before = canon.global_counts(s)
        al.run_nodes(int(cg.seg_start[s]), int(cg.seg_end[s]))
        peaks = tuple(a.max_size for a in al.allocs)
        for a, m in zip(al.allocs, before_max, strict=True):
            a.max_size = max(a.max_size, m)
        uses = canon.global_uses(glob_before, s)
        result, raw = canon.result_state(s + 1, glob_before)
        self.memo.table[(sig, state)] = (result, peaks, uses, raw)
        self.state = canon.canonical(result, s + 1)[0] if raw else result
