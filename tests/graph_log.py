"""Reserve graphs node by node, for graph tests: what llama-server's ``-lv 5`` log says of
them, and fit's graphs of the same launch.

``llama_graph_n_input_tensors`` logs, for every graph input, the nodes that read it ("input
tensor '<name>' [...] is used by node 'node_12' (OP)"; an unnamed node is ``node_<its
index>``), after the "reserving a graph for ubatch with n_tokens = N" line of each reserve.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from profiles.fidelity import MEASURE_ARGS
from solver.ggml.ops import Graph
from solver.gguf.sources import load_local_inventory
from solver.llama.args import parse_llama_args
from solver.llama.compute_buffer import cache_params, reserve_ubatches
from solver.llama.compute_graph import GraphModel, build_graph
from solver.llama.memory import estimate_memory

_USED_BY = re.compile(
    r"input tensor '\s*([^']+)' \[\w+, ne = \{([\d, ]+)\}\] is used by node '([^']+)' \((\w+)\)"
)
_RESERVING = "graph_reserve: reserving a graph for ubatch with n_tokens"
_UNNAMED = re.compile(r"node_(\d+)")


class InputUse(NamedTuple):
    """One logged read of a graph input: the input's name and shape, the node and its op."""

    input: str
    ne: tuple[int, ...]
    node: str
    op: str


def input_users(log: str, n_tokens: int) -> list[InputUse]:
    """The logged input reads of the first reserve of the n_tokens-token graph."""
    start = f"{_RESERVING} = {n_tokens:4d},"
    users: list[InputUse] = []
    inside = False
    for line in log.splitlines():
        if _RESERVING in line:
            if inside:
                break
            inside = start in line
        elif inside and (found := _USED_BY.search(line)):
            ne = tuple(int(n) for n in found[2].split(","))
            users.append(InputUse(found[1], ne, found[3], found[4]))
    return users


def first_uses(log: str, n_tokens: int) -> set[tuple[str, int, str]]:
    """(input, node index, op) of the unnamed nodes (``node_<index>``) among input_users."""
    return {
        (use.input, int(unnamed[1]), use.op)
        for use in input_users(log, n_tokens)
        if (unnamed := _UNNAMED.fullmatch(use.node))
    }


def fit_graphs(path: Path, args: list[str]) -> tuple[Graph, Graph, int]:
    """fit's prompt and decode reserve graphs of the model at ``path`` launched with
    ``MEASURE_ARGS`` + ``args``, and the prompt graph's token count."""
    inventory = load_local_inventory(path)
    workload = estimate_memory(inventory, parse_llama_args([*MEASURE_ARGS, *args])).workload
    model, cache = GraphModel.of(inventory), cache_params(workload)
    pp_ubatch, tg_ubatch = reserve_ubatches(workload)
    pp, tg = (build_graph(model, cache, ubatch).graph for ubatch in (pp_ubatch, tg_ubatch))
    return pp, tg, pp_ubatch.n_tokens
