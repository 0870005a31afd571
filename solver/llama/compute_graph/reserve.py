"""The entry: the graph ``llama_context::graph_reserve`` builds for one worst-case ubatch.

``build_graph`` pads the ubatch to whole sequences, picks the architecture's recipe (the
llama recipe, flagged approximate, for an architecture without one), refuses a model whose
layers the recipe cannot build (``ComputeNotModelled``, e.g. recurrent layers without
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
    approximate: bool
    n_tokens: int


class ComputeNotModelled(BadInput):
    """The model's architecture has no compute-graph recipe that can build it (e.g. SSM)."""


def build_graph(model: GraphModel, cache: CacheParams, ubatch: Ubatch) -> BuiltGraph:
    """The graph ``llama_context::graph_reserve`` builds for this ubatch."""
    n_tokens = ubatch.n_tokens
    if n_tokens % ubatch.n_seqs:
        n_tokens = (n_tokens + ubatch.n_seqs - 1) // ubatch.n_seqs * ubatch.n_seqs
        ubatch = Ubatch(n_tokens, ubatch.n_seqs, ubatch.n_outputs)
    hp = model.hparams
    recipe = RECIPES.get(hp.arch)
    approximate = recipe is None
    if recipe is None:
        recipe = RECIPES["llama"]
    if recipe.attention == "mla" and not hp.is_mla:
        raise BadInput(f"{hp.arch}: MLA hyperparameters (key_length_mla) are missing")
    _check_modelled(model, recipe)
    b = GraphBuilder(model, cache, ubatch)
    build_generic(b, recipe)
    return BuiltGraph(
        graph=b.gf, pin_layers=n_tokens < 32, approximate=approximate, n_tokens=n_tokens
    )


def _check_modelled(model: GraphModel, recipe: ArchRecipe) -> None:
    """Refuse, with a clear message, a model whose layers the recipe cannot build."""
    w = model.weights
    if recipe.attention == "mla":
        needed = ["attn_kv_a_mqa", "attn_k_b", "attn_v_b", "attn_output"]
    else:
        needed = ["attn_output"]
    for il in range(model.hparams.n_layer):
        names = [f"blk.{il}.{role}.weight" for role in needed]
        fused = f"blk.{il}.attn_qkv.weight" in w
        separate = all(f"blk.{il}.attn_{x}.weight" in w for x in "qkv")
        if recipe.attention != "mla" and not (fused or separate):
            names.append(f"blk.{il}.attn_q.weight")
        missing = [n for n in names if n not in w]
        if missing:
            raise ComputeNotModelled(
                f"{model.hparams.arch}: the compute graph of this architecture is not modelled "
                f"(layer {il} has no {missing[0]})"
            )
