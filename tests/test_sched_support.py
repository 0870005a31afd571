"""The scheduler with an op a backend refuses, against ``ggml_backend_sched_split_graph``.

Small graphs whose outcome follows from ``ggml/src/ggml-backend.cpp`` of the pinned llama.cpp
by hand: pass 1 leaves a refused node unassigned, the expansions carry past it without
assigning it, pass 3 gives it the backend that runs it and reads most of its inputs, and a
pre-allocated node its buffer's backend refuses aborts. Both the readable port
(``solver.ggml.sched``) and the compiled engine (``solver.ggml.engine``) must say so.
"""

from __future__ import annotations

import numpy as np
import pytest

from solver.errors import BadInput
from solver.ggml import ops as g
from solver.ggml.alloc import BufferType
from solver.ggml.engine import BackendSpec, CompiledGraph, schedule, support_matrix
from solver.ggml.sched import Backend, split_graph

F32 = g.F32
SUPPORT = {
    "no_concat": lambda t: t.op != "CONCAT",
    "no_set_rows": lambda t: t.op != "SET_ROWS",
    "all": lambda t: True,
}


def _backend(device: str, refuses: str | None = None, family: str | None = None) -> Backend:
    supports = (lambda t: t.op != refuses) if refuses else (lambda t: True)
    return Backend(device, BufferType(device, 32, g.Tensor.nbytes), supports, family=family)


def _spec(supports: str | None = None, family: str | None = None) -> BackendSpec:
    return BackendSpec("plain", "plain", 32, False, supports=supports, family=family)


def _graph(*outputs: g.Tensor) -> g.Graph:
    graph = g.Graph()
    for t in outputs:
        graph.expand(t)
    return graph


def _chain() -> tuple[g.Graph, list[g.Tensor]]:
    """x (input) -> mul_mat(w1) -> silu -> concat -> silu -> mul_mat(w2); weights on RPC0."""
    x = g.new_tensor(F32, 64, 8).set_input()
    n1 = g.mul_mat(g.weight("w1", F32, (64, 64)), x)
    n2 = g.unary(n1, "silu")
    n3 = g.concat(n2, n2, 0)
    n4 = g.unary(n3, "silu")
    n5 = g.mul_mat(g.weight("w2", F32, (128, 32)), n4)
    for t, name in ((x, "x"), (n1, "n1"), (n2, "n2"), (n3, "n3"), (n4, "n4"), (n5, "n5")):
        t.name = name
    return _graph(n5), [n1, n2, n3, n4, n5]


def _compiled_backends(graph: g.Graph, nodes, owner_backend_of, specs) -> list[int]:
    cg = CompiledGraph(graph, graph.node_segments, {"plain": g.Tensor.nbytes}, SUPPORT)
    owners = np.array([owner_backend_of(key) for key in cg.owners], dtype=np.int64)
    supported = support_matrix(cg, specs, owners)
    sched = schedule(cg, owners, len(specs), [], {}, supported)
    position = {t.uid: i for i, t in enumerate(graph.nodes)}
    return [int(sched.bid[position[n.uid]]) for n in nodes], sched.n_splits


def test_a_refused_op_runs_on_the_cpu_between_two_gpu_splits() -> None:
    """The CONCAT that RPC0 refuses goes to the CPU (pass 3: the only backend running it);
    the silu after it is still RPC0's (the expansion carries past the refused node): three
    splits, where every op supported gives one."""
    graph, nodes = _chain()
    backends = [_backend("RPC0", refuses="CONCAT"), _backend("CPU")]
    res = split_graph(graph.nodes, graph.leafs, backends, lambda t: 0, {})
    assert res.n_splits == 3 and res.split_backends == [0, 1, 0]
    compiled, n_splits = _compiled_backends(
        graph, nodes, lambda key: 0, (_spec("no_concat"), _spec())
    )
    assert compiled == [0, 0, 1, 0, 0] and n_splits == 3
    everything = split_graph(graph.nodes, graph.leafs, [_backend("RPC0"), _backend("CPU")],
                             lambda t: 0, {})  # fmt: skip
    assert everything.n_splits == 1
    # RPC0 copies the input, the CPU what it reads from RPC0 (the silu), RPC0 the concat
    copied = [t.name for t in res.nodes if t.op == "NONE" and t.view_src is None]
    assert copied == ["RPC0#x", "CPU#n2", "RPC0#n3"]


def test_a_preallocated_node_its_backend_refuses_aborts() -> None:
    """ggml-backend.cpp: "pre-allocated tensor ... in a buffer ... that cannot run the
    operation" (GGML_ABORT): SET_ROWS into a cache on a backend refusing it."""
    cache = g.new_tensor(F32, 64, 16)
    cache.kv_layer = 0
    rows = g.mul_mat(g.weight("w", F32, (64, 64)), g.new_tensor(F32, 64, 2).set_input())
    store = g.set_rows(cache, rows, g.new_tensor(g.I64, 2).set_input())
    graph = _graph(store)
    backends = [_backend("RPC0", refuses="SET_ROWS"), _backend("CPU")]
    with pytest.raises(BadInput, match="cannot run the operation"):
        split_graph(graph.nodes, graph.leafs, backends, lambda t: 0, {})
    with pytest.raises(BadInput, match="cannot run the operation"):
        _compiled_backends(graph, [store], lambda key: 0, (_spec("no_set_rows"), _spec()))


def test_cuda_refuses_an_op_reading_another_cuda_devices_weight() -> None:
    """ggml-cuda.cu:5255: a ROPE whose frequencies live on CUDA1 cannot be expanded down from
    CUDA0 (pass 1 skips ROPE's weight); the up-expansion gives it CUDA1."""
    x = g.new_tensor(F32, 64, 8).set_input()
    a = g.mul_mat(g.weight("w0", F32, (64, 64)), x)  # CUDA0
    roped = g.rope(g.reshape(a, 64, 1, 8), g.new_tensor(g.I32, 8).set_input(),
                   g.weight("freqs", F32, (32,)))  # fmt: skip
    b = g.mul_mat(g.weight("w1", F32, (64, 64)), g.reshape(roped, 64, 8))  # CUDA1
    graph = _graph(b)
    device_of = {"w0": 0, "freqs": 1, "w1": 1}
    backends = [_backend("CUDA0", family="CUDA"), _backend("CUDA1", family="CUDA"),
                _backend("CPU")]  # fmt: skip
    res = split_graph(graph.nodes, graph.leafs, backends, lambda t: device_of[t.weight], {})
    rope_backend = res.node_backend[[t.uid for t in res.nodes].index(roped.uid)]
    assert rope_backend == 1
    specs = (_spec("all", "CUDA"), _spec("all", "CUDA"), _spec())
    compiled, _ = _compiled_backends(graph, [a, roped, b], lambda key: device_of[key[1]], specs)
    assert compiled == [0, 1, 1]
    # without the rule (plain backends) the down-expansion from CUDA0 takes it
    plain = [_backend("RPC0"), _backend("RPC1"), _backend("CPU")]
    res = split_graph(graph.nodes, graph.leafs, plain, lambda t: device_of[t.weight], {})
    assert res.node_backend[[t.uid for t in res.nodes].index(roped.uid)] == 0
