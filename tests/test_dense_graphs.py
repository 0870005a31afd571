"""Dense architectures over the generic template (``seed_oss``, ``smollm3``, ``glm4``,
``olmo2``, ``exaone4``, ``cohere2``) against llama.cpp, node by node.

Their buffer sizes are the fidelity grid's (``CI_GRID``); some of what distinguishes them
changes no byte there: smollm3's layers without RoPE (every 4th) and exaone4's and cohere2's
global layers (with sliding windows) only drop their two ROPE nodes, glm4's post-norms add
nodes of the residual stream's size. So fit's reserve graphs of each synthetic must have
llama-server's node counts, every ROPE, every input's shape, and at every index the log names
a node reading a graph input, a node of the logged op reading it.
"""

from __future__ import annotations

import pytest

from profiles.fidelity import MEASURE_ARGS
from profiles.fidelity_cases import model_blueprint
from solver.ggml.ops import FLAG_INPUT
from tests.graph_log import first_uses, fit_graphs, input_users

ARGS = ["-c", "1024", "-np", "1"]
# the layers without RoPE: smollm3's every 4th; exaone4 with sliding windows (64 layers, as the
# 32B) ropes only its sliding layers, three in four
NO_ROPE = {"smollm3/6": {3}, "exaone4-swa/64": set(range(3, 64, 4)), "cohere2/6": {3}}
MODELS = ["seed_oss/6", "smollm3/6", "glm4/6", "glm4-mrope/6", "olmo2/6", "olmo2-full/6",
          "exaone4/6", "exaone4-swa/64", "cohere2/6"]  # fmt: skip


@pytest.mark.llama
@pytest.mark.parametrize("model", MODELS)
def test_graph_nodes_match_the_log(model: str, synthetic_gguf, run_llama, tmp_path) -> None:
    blueprint, quant = model_blueprint(model)
    (path,) = synthetic_gguf(blueprint, quant)
    report = run_llama(path, *MEASURE_ARGS, *ARGS)
    [log_path] = sorted(tmp_path.glob("llama-server-*.log"))
    pp, tg, n_tokens = fit_graphs(path, ARGS)
    assert (len(pp.nodes), len(tg.nodes)) == (report.graph.pp_nodes, report.graph.tg_nodes)

    log = log_path.read_text()
    users = input_users(log, n_tokens)
    # every logged input has a shape fit gives an input of that name (glm4-mrope: four
    # positions a token; iswa: two masks of one name)
    inputs = {(s.name, s.ne) for n in pp.nodes for s in n.src if s and s.flags & FLAG_INPUT}
    assert {(u.input, u.ne) for u in users} <= inputs
    ropes = [u.node for u in users if u.input == "inp_pos"]
    ours = [n for n in pp.nodes if n.op == "ROPE" and "inp_pos" in {s.name for s in n.src if s}]
    # Q and K of every layer with RoPE (llama.cpp names them; fit does not)
    skipped = NO_ROPE.get(model, set())
    layers = range(blueprint.n_layer)
    expected = [f"{qk}cur-{il}" for il in layers if il not in skipped for qk in "QK"]
    assert (sorted(ropes), len(ours)) == (sorted(expected), len(expected))
    uses = first_uses(log, n_tokens)
    for name, index, op in sorted(uses, key=lambda use: use[1]):
        node = pp.nodes[index]
        assert node.op == op and name in {s.name for s in node.src if s is not None}, (
            f"node_{index}: llama.cpp {op} reading {name}, fit {node.op} {node.name}"
        )
