"""The graph-building context for one ubatch: the model, the cache switches, shared primitives.

``GraphBuilder`` is fit's ``llm_graph_context`` (``src/llama-graph.h``). It holds what every
block reads (the model's ``ModelHparams`` and weights as a ``GraphModel``, the context's
``CacheParams``, the ``Ubatch``) and the ``Graph`` being built, and offers the primitives all
blocks share: weights by GGUF name (None when the file lacks one, as llama.cpp's loader treats
TENSOR_NOT_REQUIRED), TENSOR_DUPLICATED per-layer copies, KV-cache tensors, graph inputs, the
naming callback, norms and matmuls. The blocks themselves (inputs, attention, FFN) are
functions over a builder in the sibling modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from gguf import GGMLQuantizationType

from solver.errors import BadInput
from solver.ggml import ops as g
from solver.ggml.ops import Graph, Tensor
from solver.gguf.inventory import Inventory
from solver.llama.hparams import ModelHparams, model_hparams

# (ggml type, shape) of a weight, by GGUF tensor name
WeightInfo = tuple[int, tuple[int, ...]]


@dataclass(frozen=True)
class GraphModel:
    """The model as the builder reads it: ``llama_hparams`` and the weights the file has."""

    hparams: ModelHparams
    weights: Mapping[str, WeightInfo] = field(repr=False)

    @classmethod
    def of(cls, inventory: Inventory) -> GraphModel:
        """The hparams of ``model_hparams`` and every tensor's type and shape.

        Raises ``BadInput`` for a tensor type ggml does not know, and whatever
        ``model_hparams`` raises for a model whose memory fit does not model.
        """
        weights: dict[str, WeightInfo] = {}
        for t in inventory.tensors:
            try:
                ggml_type = int(GGMLQuantizationType[t.type])
            except KeyError as exc:
                raise BadInput(
                    f"{inventory.source}: tensor {t.name} has unknown type {t.type}"
                ) from exc
            weights[t.name] = (ggml_type, tuple(t.shape))
        return cls(hparams=model_hparams(inventory), weights=weights)

    @cached_property
    def v_width_max(self) -> int:
        """n_embd_v_gqa_max(), the V row width of a transposed V cache, as the graph sizes it:
        each layer at its own V head width and KV heads (``ModelHparams.v_width_max``; gemma4's
        sliding layers have narrower heads, and more of them, than its global ones)."""
        return self.hparams.v_width_max


@dataclass(frozen=True)
class Ubatch:
    """The worst-case ubatch one ``graph_reserve`` call builds."""

    n_tokens: int
    n_seqs: int
    n_outputs: int


@dataclass(frozen=True)
class CacheParams:
    """KV-cache and attention switches of the context (from ``ComputeWorkload``)."""

    flash_attn: bool
    type_k: int
    type_v: int
    v_trans: bool
    kv_unified: bool
    n_stream: int
    kv_size: int
    kv_size_swa: int
    offload_kqv: bool
    n_seq_max: int = 1  # cparams.n_seq_max (server slots)
    n_ubatch: int = 0  # cparams.n_ubatch (glm5-next's indexer gathers at 16 or less)
    n_ctx: int = 0  # cparams.n_ctx, padded (glm5-next gathers only past its selection width)
    fused_hc_post: bool = True  # cparams.fused_dsv4_hc_post, as llama.cpp's probe left it
    # positions the cache holds when the graph is built (pos_max + 1 over the sequences):
    # 0 for the reserve graphs (an empty cache); only minimax-m3's MSA graphs read it
    n_pos: int = 0


class GraphBuilder:
    """``llm_graph_context`` for one ubatch: the graph being built and its shared primitives."""

    def __init__(self, model: GraphModel, cache: CacheParams, ubatch: Ubatch) -> None:
        self.model = model
        self.hp = model.hparams
        self.cache = cache
        self.ub = ubatch
        self.n_tokens = ubatch.n_tokens
        self.gf = Graph()
        self._weights: dict[str, Tensor] = {}
        self._kv: dict[tuple[str, int], Tensor] = {}
        self.inp_tokens: Tensor | None = None  # res->t_inp_tokens, once build_inp_embd ran

    # --- model tensors -------------------------------------------------------------------

    def w(self, name: str) -> Tensor | None:
        """A weight by GGUF name, or None when the file lacks it (TENSOR_NOT_REQUIRED)."""
        t = self._weights.get(name)
        if t is None:
            info = self.model.weights.get(name)
            if info is None:
                return None
            t = self._weights[name] = g.weight(name, info[0], info[1])
        return t

    def lw(self, il: int, role: str, suffix: str = "weight") -> Tensor | None:
        """Layer il's weight ``blk.{il}.{role}.{suffix}``, or None when the file lacks it."""
        return self.w(f"blk.{il}.{role}.{suffix}")

    def reshaped_weight(self, w: Tensor, shape: tuple[int, ...]) -> Tensor:
        """A weight as the loader creates it with TENSOR_ALLOW_RESHAPE: the same GGUF tensor
        (same buffer) in another shape; later lookups by its name get this one."""
        t = self._weights[w.weight] = g.weight(w.weight, w.type, shape)
        return t

    def layer_duplicate(self, name: str, il: int) -> Tensor | None:
        """A TENSOR_DUPLICATED weight as layer il sees it: its own copy on the layer's device."""
        key = f"{name}#{il}"
        t = self._weights.get(key)
        if t is None:
            info = self.model.weights.get(name)
            if info is None:
                return None
            t = self._weights[key] = g.weight(name, info[0], info[1])
            t.dup_layer = il
        return t

    def output_weight(self) -> Tensor:
        """The output head; a tied one reads token_embd (loaded again on the output device)."""
        out = self._weights.get("output.weight")
        if out is not None:
            return out
        info = self.model.weights.get("output.weight") or self.model.weights["token_embd.weight"]
        # tied embeddings: llama.cpp loads a duplicate of token_embd on the output device
        out = self._weights["output.weight"] = g.weight("output.weight", info[0], info[1])
        return out

    def kv_tensor(
        self, kind: str, il: int, ggml_type: int, width: int, size: int, n_stream: int = 0
    ) -> Tensor:
        """Layer il's K or V cache tensor (``kind`` "k" / "v", or another cache of the layer's
        memory): width x size x n_stream (the context's KV streams unless given)."""
        key = (kind, il)
        t = self._kv.get(key)
        if t is None:
            t = g.new_tensor(ggml_type, width, size, n_stream or self.cache.n_stream)
            t.kv_layer = il
            t.name = f"cache_{kind}_l{il}"
            self._kv[key] = t
        return t

    # --- callbacks and inputs --------------------------------------------------------------

    def cb(self, t: Tensor, name: str, il: int) -> None:
        """llama_context::graph_get_cb: names, and pins "norm"/"l_last" to the layer device."""
        t.name = f"{name}-{il}" if il >= 0 else name
        t.il = il
        if il != -1 and name in ("norm", "l_last"):
            t.pin = ("layer", il)

    def input(self, t: Tensor, name: str) -> Tensor:
        """Mark ``t`` as a graph input named ``name``."""
        t.set_input()
        t.name = name
        return t

    # --- shared arithmetic -------------------------------------------------------------------

    def build_norm(self, cur: Tensor, w: Tensor | None, b: Tensor | None, il: int, *, rms=True):
        """llm_graph_context::build_norm: (RMS) norm, then the optional weight and bias."""
        cur = g.rms_norm(cur) if rms else g.norm(cur)
        if w is not None or b is not None:
            self.cb(cur, "norm", il)
        if w is not None:
            cur = g.mul(cur, w)
        if b is not None:
            cur = g.add(cur, b)
        return cur

    def build_lora_mm(self, w: Tensor, cur: Tensor, w_s: Tensor | None = None) -> Tensor:
        """llm_graph_context::build_lora_mm without adapters: w @ cur, times an optional scale."""
        res = g.mul_mat(w, cur)
        if w_s is not None:
            res = g.mul(res, w_s)
        return res
