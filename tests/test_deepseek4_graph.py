"""The hyper-connection graphs (``solver.llama.compute_graph.deepseek4`` and ``glm5_next``)
against llama.cpp.

The real llama-server logs, at ``-lv 5``, the node count of each reserve graph and, for every
graph input, the nodes that read it (``llama_graph_n_input_tensors``: an unnamed node is
``node_<its index>``). fit's graphs of the same launch must have the same node counts, and
at each logged index a node of the logged op reading that input: the hyper-connection blocks
(``hyper_connections``: the fused DSV4_HC_PRE / COMB / POST), the compressors, the indexer and
the three attention paths all shift later indices when a node is missing or extra; so do
glm5-next's KDA blocks, its k-pool indexer (pooling, scoring, the scattered selection mask)
and its MLA, over the whole cache or (``-ub`` 16 or less) over the gathered selection. The
buffer sizes themselves are the fidelity grid's (``deepseek4/6`` and ``glm5-next/6`` in
``CI_GRID``; glm5-next's gather path: ``glm5-next/8:ub*`` in ``SYNTHETIC``).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli import cli
from profiles.fidelity import MEASURE_ARGS
from profiles.fidelity_cases import model_blueprint
from solver.ggml import ops as g
from solver.gguf.blueprint import Blueprint
from solver.gguf.sources import load_local_inventory
from solver.llama.args import parse_llama_args
from solver.llama.memory import estimate_memory
from tests.graph_log import first_uses, fit_graphs

# flash attention on F16 caches; two streams and the soft-max path; Hadamard-rotated q8_0
# caches (every cache but the indexer's is rotated only when quantized). deepseek4/6: ratios
# 0, 4, 128, 4, 0, 4 and a hash-routed layer; glm5-next/6: KDA and MLA layers, a full and a
# shared indexer, the pools of one or of three sequences (separate streams); glm5-next's
# gather path (-ub 16 or less: the prompt and the two-token decode graph), and its scatter
# path at -ub 16 where the context is no wider than the selection (WIDE_SELECTION)
WIDE_SELECTION = "glm5-next/6 top-k 256"
LAUNCHES = [
    ("deepseek4/6", "-c 1024 -np 1"),
    ("deepseek4/6", "-c 2048 -np 2 -fa off"),
    ("deepseek4/6", "-c 4096 -np 3 -ub 128 -ctk q8_0 -ctv q8_0"),
    ("glm5-next/6", "-c 1024 -np 1"),
    ("glm5-next/6", "-c 3000 -np 3 --no-kv-unified -fa off -ub 128"),
    ("glm5-next/6", "-c 1024 -np 1 -ub 16"),
    ("glm5-next/6", "-c 2048 -np 2 -ub 1 -ctk q8_0 -ctv q8_0"),
    (WIDE_SELECTION, "-c 256 -np 1 -ub 16"),
]
# logged input uses at least: deepseek4's compressors and indexer in every layer; glm5-next's
# state copies (four KDA layers) and the indexer's pool inputs
MIN_USES = {"deepseek4/6": 40, "glm5-next/6": 10, WIDE_SELECTION: 10}


def _blueprint(synthetic: str) -> tuple[Blueprint, str]:
    """The synthetic's blueprint and quant; WIDE_SELECTION selects 256 cells (64 pools)."""
    if synthetic == WIDE_SELECTION:
        blueprint, quant = _blueprint("glm5-next/6")
        update = {"indexer_top_k": 256, "name": "glm5-next-top256"}
        return blueprint.model_copy(update=update), quant
    found = model_blueprint(synthetic)
    assert found is not None
    return found


@pytest.mark.llama
@pytest.mark.parametrize(("synthetic", "args"), LAUNCHES)
def test_graph_nodes_match_the_log(
    synthetic: str, args: str, synthetic_gguf, run_llama, tmp_path
) -> None:
    """Node counts of both reserve graphs, and the op and input of every node the log names
    by index, on the 6-layer synthetic."""
    blueprint, quant = _blueprint(synthetic)
    (path,) = synthetic_gguf(blueprint, quant)
    report = run_llama(path, *MEASURE_ARGS, *args.split())
    [log_path] = sorted(tmp_path.glob("llama-server-*.log"))
    pp, tg, n_tokens = fit_graphs(path, args.split())
    assert (len(pp.nodes), len(tg.nodes)) == (report.graph.pp_nodes, report.graph.tg_nodes)
    gathered = {n.name.rsplit("-", 1)[0] for n in pp.nodes} & {"kv_gathered", "kqv_gathered"}
    ub = int(args.split("-ub ")[1].split()[0]) if "-ub " in args else 512
    assert bool(gathered) == (synthetic == "glm5-next/6" and ub <= 16)

    uses = first_uses(log_path.read_text(), n_tokens)
    assert len(uses) >= MIN_USES[synthetic]
    for name, index, op in sorted(uses, key=lambda use: use[1]):
        node = pp.nodes[index]
        assert node.op == op and name in {s.name for s in node.src if s is not None}, (
            f"node_{index}: llama.cpp {op} reading {name}, fit {node.op} {node.name}"
        )


def test_glm5_next_gather_path_is_priced(synthetic_gguf) -> None:
    """glm5-next with -ub 16 or less gathers the selected latents: fit memory prices that
    graph (the fidelity grid's ub*-gather launches check its bytes)."""
    (path,) = synthetic_gguf("glm5-next")
    inventory = load_local_inventory(path)
    for ub in ("1", "16", "17"):
        memory = estimate_memory(inventory, parse_llama_args(["-c", "1024", "-ub", ub]))
        assert memory.unmodelled is None and memory.devices["CPU"].compute


def test_hyper_connection_ops_have_ggml_shapes() -> None:
    """ggml_dsv4_hc_comb / _pre / _post result shapes (ggml.c), all F32."""
    n_embd, hc, tokens = 256, 4, 7
    mixes = g.new_tensor(g.F32, (2 + hc) * hc, tokens)
    scale, base = g.new_tensor(g.F32, 3), g.new_tensor(g.F32, (2 + hc) * hc)
    streams = g.new_tensor(g.F32, n_embd, hc, tokens)
    comb = g.dsv4_hc_comb(mixes, scale, base)
    pre = g.dsv4_hc_pre(streams, g.new_tensor(g.F32, hc, tokens))
    post = g.dsv4_hc_post(pre, streams, g.new_tensor(g.F32, hc, tokens), comb)
    assert (comb.ne, pre.ne, post.ne) == ((hc, hc, tokens, 1), (n_embd, tokens, 1, 1),
                                          (n_embd, hc, tokens, 1))  # fmt: skip
    assert {comb.type, pre.type, post.type} == {g.F32}
    assert post.src == (pre, streams, post.src[2], comb)


def test_fit_solve_plans_deepseek4_on_a_gpu_rig(synthetic_gguf) -> None:
    """Compute modelled: fit solve plans the tiny deepseek4 without a margin. The hash-routing
    table (I32) and the compressors' position embeddings are GET_ROWS weights, which CUDA
    takes: the rendered arguments keep them in their layer, where the plan counts them (the
    solve's own check re-applies the arguments)."""
    (path,) = synthetic_gguf("deepseek4")
    args = ["solve", str(path), "--hardware", "reference", "--ctx", "4096", "--time-limit", "2"]
    result = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["status"] in ("optimal", "feasible") and "unmodelled" not in doc
    runs_layers = [d for d in doc["devices"].values() if d["kv"]]
    assert runs_layers and all(d["compute"] for d in runs_layers)
