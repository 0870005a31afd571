"""The entry: the graph ``llama_context::graph_reserve`` builds for one worst-case ubatch.

``build_graph`` pads the ubatch to whole sequences, picks the architecture's recipe, refuses
what no recipe models (``ComputeNotModelled``: an architecture without a recipe, never priced
as another one's graph; layers the recipe cannot build, e.g. recurrent layers without
attention weights), and runs the recipe over a fresh ``GraphBuilder``.
"""

from __future__ import annotations

from dataclasses import dataclass

from solver.errors import BadInput
from solver.ggml.ops import Graph
from solver.llama.compute_graph.builder import CacheParams, GraphBuilder, GraphModel, Ubatch
from solver.llama.compute_graph.recipes import RECIPES, ArchRecipe, build_generic


@dataclass
class BuiltGraph:
    """One reserve graph: nodes and leafs in ggml order, plus llama.cpp's backend pins."""

    graph: Graph
    pin_layers: bool  # the graph callback pins "norm"/"l_last" (n_tokens < 32 or full offload)
    n_tokens: int


class ComputeNotModelled(BadInput):
    """No compute-graph recipe can build the model: its architecture has none, or its layers
    are not what the recipe builds (e.g. SSM). ``architecture`` names it; ``reason`` says why."""

    def __init__(self, architecture: str, reason: str) -> None:
        super().__init__(f"{architecture}: compute buffers not modelled ({reason})")
        self.architecture = architecture
        self.reason = reason


def build_graph(model: GraphModel, cache: CacheParams, ubatch: Ubatch) -> BuiltGraph:
    """The graph ``llama_context::graph_reserve`` builds for this ubatch."""
    n_tokens = ubatch.n_tokens
    if n_tokens % ubatch.n_seqs:
        n_tokens = (n_tokens + ubatch.n_seqs - 1) // ubatch.n_seqs * ubatch.n_seqs
        ubatch = Ubatch(n_tokens, ubatch.n_seqs, ubatch.n_outputs)
    hp = model.hparams
    recipe = RECIPES.get(hp.arch)
    if recipe is None:
        # another architecture's graph would price its buffers wrong, silently (8-25 % low)
        raise ComputeNotModelled(hp.arch, "fit has no compute-graph recipe for this architecture")
    if recipe.attention in ("mla", "dsa") and not hp.is_mla:
        raise BadInput(f"{hp.arch}: MLA hyperparameters (key_length_mla) are missing")
    b = GraphBuilder(model, cache, ubatch)
    if recipe.build is not None:
        recipe.build(b)  # the architecture's own graph function (e.g. qwen35's DeltaNet)
    else:
        if recipe.check is not None:
            recipe.check(b)  # layers of more than one kind (kimi-linear's KDA and MLA)
        else:
            _check_modelled(model, recipe)
        build_generic(b, recipe)
    return BuiltGraph(graph=b.gf, pin_layers=n_tokens < 32, n_tokens=n_tokens)


def _check_modelled(model: GraphModel, recipe: ArchRecipe) -> None:
    """Refuse, with a clear message, a model whose layers the recipe cannot build."""
    w = model.weights
    mla = recipe.attention in ("mla", "dsa")
    needed = ["attn_kv_a_mqa", "attn_k_b", "attn_v_b", "attn_output"] if mla else ["attn_output"]
    if recipe.attention == "dsa":  # the indexer reads the compressed q
        needed += ["attn_q_a", "attn_q_b"]
    for il in range(model.hparams.n_layer):
        roles = needed
        if recipe.attention == "dsa" and model.hparams.layer_has_indexer(il):
            roles = [*needed, "indexer.attn_q_b", "indexer.attn_k"]  # glm-dsa's shared: none
        if recipe.attention == "msa" and il >= model.hparams.n_layer_dense_lead:
            roles = [*needed, "indexer.q_proj", "indexer.k_proj"]  # the sparse layers' indexer
        names = [f"blk.{il}.{role}.weight" for role in roles]
        fused = f"blk.{il}.attn_qkv.weight" in w
        separate = all(f"blk.{il}.attn_{x}.weight" in w for x in "qkv")
        if not mla and not (fused or separate):
            names.append(f"blk.{il}.attn_q.weight")
        missing = [n for n in names if n not in w]
        if missing:
            raise ComputeNotModelled(
                model.hparams.arch,
                f"its layers are not what the recipe builds: layer {il} has no {missing[0]}",
            )
