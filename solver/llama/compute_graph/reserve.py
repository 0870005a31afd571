"""The entry: the graph ``llama_context::graph_reserve`` builds for one worst-case ubatch.

``build_graph`` pads the ubatch to whole sequences, picks the architecture's recipe, refuses
what no recipe models (``ComputeNotModelled``: an architecture without a recipe, never priced
as another one's graph; layers the recipe cannot build, e.g. recurrent layers without
attention weights), and runs the recipe over a fresh ``GraphBuilder``.

``runtime_graphs`` names the graphs llama.cpp builds while serving that can outgrow the
reserve graphs (ggml's allocator then grows the compute buffers past the startup log): only
minimax-m3's MSA, whose graphs size by the positions cached. Every other cache sizes its
reserve graphs at the full cache (``llama_kv_cache_context``'s ``n_kv = get_size()`` for the
reserve, at most that at run time; deepseek4's raw and compressed caches the same); a
1023-token prompt at ``-c 1024``, one sequence or two per-sequence streams (and with ``-fa
off``; the sparse-attention ones at ``-ub`` 1, 4 and 16 too), left every other synthetic
architecture's buffers at their startup size (exit line: "matches expectation").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from solver.errors import BadInput
from solver.ggml.ops import Graph
from solver.llama.compute_graph.builder import CacheParams, GraphBuilder, GraphModel, Ubatch
from solver.llama.compute_graph.inputs import msa_runs
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


def runtime_graphs(
    model: GraphModel, cache: CacheParams, pp: Ubatch, tg: Ubatch
) -> list[tuple[CacheParams, Ubatch]]:
    """The graphs built while serving that can need more than the reserve graphs (``pp``,
    ``tg``): none, but for minimax-m3 while MSA runs, whose position tensors span
    ``get_n_pos()`` positions, 256 at reserve (empty cache) and the context's at its fullest.

    Its worst cases, all at a full cache (``n_pos`` = the cells of a stream, which no
    sequence's positions exceed): the reserve's two ubatches, and with per-sequence streams a
    prompt ubatch of one sequence (llama.cpp splits them equally by sequence), whose
    per-stream block scores and masks span every token of the ubatch where the reserve's
    spread them over ``n_seq_max`` streams (that case built on a one-stream cache: only its
    views differ, and the cache tensors are not compute buffers)."""
    recipe = RECIPES.get(model.hparams.arch)
    if recipe is None or recipe.attention != "msa" or not msa_runs(cache):
        return []
    full = replace(cache, n_pos=cache.kv_size)
    graphs = [(full, pp), (full, tg)]
    if cache.n_stream > 1:
        graphs.append((replace(full, n_stream=1), Ubatch(pp.n_tokens, 1, pp.n_outputs)))
    return graphs


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
