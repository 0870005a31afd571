"""llama.cpp's compute graph, rebuilt node for node from a model's inventory.

``build_graph`` mirrors ``llama_model::build_graph`` for one worst-case ubatch
(``llama_context::graph_reserve``): the architecture's graph function in
``src/models/<arch>.cpp`` plus the shared pieces of ``src/llama-graph.cpp`` (input embedding
with its three select branches, attention with the KV cache of ``src/llama-kv-cache.cpp``,
dense and mixture-of-experts FFNs). Node order, views and in-place candidates follow the C++
so the allocator replay in ``solver.ggml.alloc`` reserves the same bytes.

The builder is generic: an architecture is a small ``ArchRecipe`` (which attention input,
which norms, activation, gating function, where the output rows are selected) over shared
block builders, and optional tensors (biases, Q/K norms, shared experts, a MoE router) are
taken from the inventory the way llama.cpp's loader finds them. Architectures without a
recipe fall back to the llama recipe and are flagged as approximate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from gguf import GGMLQuantizationType

from solver.errors import BadInput
from solver.ggml import ops as g
from solver.ggml.ops import F16, F32, I32, I64, Graph, Tensor
from solver.gguf.inventory import Inventory

# llama-hparams.h llama_expert_gating_func_type
GATING_SOFTMAX = 1
GATING_SIGMOID = 2
GATING_SOFTMAX_WEIGHT = 3
GATING_SQRT_SOFTPLUS = 4


@dataclass(frozen=True)
class ArchRecipe:
    """What distinguishes one architecture's graph function from the shared layer template."""

    attention: str = "kv"  # "kv" | "iswa" | "mla"
    rope: bool = True
    rope_factors: bool = False  # llama/mistral3: model.get_rope_factors (per-layer duplicate)
    q_scale_after_rope: bool = False  # gemma3: Qcur = ggml_scale(Qcur, f_attention_scale)
    post_attn_norm: bool = False  # gemma: attn_post_norm before the residual add
    post_ffn_norm: bool = False  # gemma: ffn_post_norm (il = -1) before the residual add
    attn_post_norm_as_ffn_norm: bool = False  # gpt-oss: attn_post_norm is the FFN's pre-norm
    ffn_act: str = "silu"  # dense FFN activation
    moe_act: str = "silu"
    gating: int = GATING_SOFTMAX  # default gating when the GGUF has no key
    moe_norm_w: bool | None = True  # None: from {arch}.expert_weights_norm
    tok_scale_sqrt_embd: bool = False  # gemma: inputs scaled by sqrt(n_embd)
    out_ids_after_loop: bool = False  # gpt-oss: rows selected after the last layer
    h_nextn_output: str = ""  # "" | "norm" (deepseek2) | "pre_norm" (gpt-oss)
    shared_expert_gate: bool = False  # qwen2moe: sigmoid gate on the shared expert
    sinks: bool = False  # gpt-oss attention sinks


RECIPES: dict[str, ArchRecipe] = {
    "llama": ArchRecipe(rope_factors=True),
    "mistral3": ArchRecipe(rope_factors=True),
    "qwen2": ArchRecipe(),
    "qwen3": ArchRecipe(),
    "qwen3moe": ArchRecipe(),
    "qwen2moe": ArchRecipe(shared_expert_gate=True, moe_norm_w=False),
    "gemma3": ArchRecipe(
        attention="iswa",
        q_scale_after_rope=True,
        post_attn_norm=True,
        post_ffn_norm=True,
        ffn_act="gelu",
        tok_scale_sqrt_embd=True,
    ),
    "deepseek2": ArchRecipe(attention="mla", moe_norm_w=None, h_nextn_output="norm"),
    "glm4moe": ArchRecipe(attn_post_norm_as_ffn_norm=True, moe_norm_w=None, h_nextn_output="norm"),
    "gpt-oss": ArchRecipe(
        attention="iswa",
        attn_post_norm_as_ffn_norm=True,
        moe_act="swiglu_oai",
        gating=GATING_SOFTMAX_WEIGHT,
        moe_norm_w=False,
        out_ids_after_loop=True,
        h_nextn_output="pre_norm",
        sinks=True,
    ),
}


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


@dataclass
class BuiltGraph:
    """One reserve graph: nodes and leafs in ggml order, plus llama.cpp's backend pins."""

    graph: Graph
    pin_layers: bool  # the graph callback pins "norm"/"l_last" (n_tokens < 32 or full offload)
    approximate: bool
    n_tokens: int


@dataclass(frozen=True)
class ModelSpec:
    """The hyperparameters and weights of an inventory, in the form the builder reads."""

    arch: str
    n_layer: int  # layers the main graph runs (llama_hparams::n_layer(): without NextN/MTP)
    n_layer_all: int
    n_embd: int
    n_vocab: int
    n_head: tuple[int, ...]
    n_head_kv: tuple[int, ...]
    head_k: int
    head_v: int
    head_k_mla: int
    head_v_mla: int
    n_rot: int
    kv_lora_rank: int
    swa: tuple[bool, ...]
    n_expert: int
    n_expert_used: int
    n_layer_dense_lead: int
    n_expert_groups: int
    n_group_used: int
    expert_gating: int
    expert_weights_norm: bool
    expert_weights_scale: float
    final_logit_softcap: float
    attn_logit_softcap: float
    attn_temp_scale: float
    n_ctx_orig: int  # n_ctx_orig_yarn: rope scaling's original context, else training context
    embedding_scale: float
    weights: Mapping[str, tuple[int, tuple[int, ...]]] = field(repr=False)

    @classmethod
    def from_inventory(cls, inv: Inventory) -> ModelSpec:
        arch = inv.architecture
        meta = inv.metadata
        att = inv.attention

        def key(name: str, default: float | int | bool) -> float | int | bool:
            value = meta.get(f"{arch}.{name}", default)
            return value if isinstance(value, int | float | bool) else default

        recipe = RECIPES.get(arch, RECIPES["llama"])
        gating = int(key("expert_gating_func", 0)) or recipe.gating
        weights: dict[str, tuple[int, tuple[int, ...]]] = {}
        for t in inv.tensors:
            try:
                ggml_type = int(GGMLQuantizationType[t.type])
            except KeyError as exc:
                raise BadInput(f"{inv.source}: tensor {t.name} has unknown type {t.type}") from exc
            weights[t.name] = (ggml_type, tuple(t.shape))
        n_layer_all = inv.n_layers
        n_layer = n_layer_all - int(key("nextn_predict_layers", 0))
        swa = tuple(att.swa_layers) if att.swa_layers else (False,) * n_layer_all
        return cls(
            arch=arch,
            n_layer=n_layer,
            n_layer_all=n_layer_all,
            n_embd=inv.n_embd,
            n_vocab=inv.n_vocab,
            n_head=tuple(att.n_head),
            n_head_kv=tuple(att.n_head_kv),
            head_k=att.key_length,
            head_v=att.value_length,
            head_k_mla=att.key_length_mla,
            head_v_mla=att.value_length_mla,
            n_rot=att.rope_dim or att.key_length,
            kv_lora_rank=att.kv_lora_rank,
            swa=swa,
            n_expert=inv.experts.count,
            n_expert_used=inv.experts.used,
            n_layer_dense_lead=inv.experts.leading_dense_layers,
            n_expert_groups=int(key("expert_group_count", 0)),
            n_group_used=int(key("expert_group_used_count", 0)),
            expert_gating=gating,
            expert_weights_norm=bool(key("expert_weights_norm", False)),
            expert_weights_scale=float(key("expert_weights_scale", 0.0)),
            final_logit_softcap=float(key("final_logit_softcapping", 0.0)),
            attn_logit_softcap=float(key("attn_logit_softcapping", 0.0)),
            attn_temp_scale=float(key("attention.temperature_scale", 0.0)),
            n_ctx_orig=int(key("rope.scaling.original_context_length", 0)) or inv.context_length,
            embedding_scale=float(key("embedding_scale", 0.0)),
            weights=weights,
        )

    @cached_property
    def is_mla(self) -> bool:
        return self.head_k_mla > 0 and self.head_v_mla > 0

    def n_embd_k_gqa(self, il: int) -> int:
        return self.head_k * self.n_head_kv[il]

    def n_embd_v_gqa(self, il: int) -> int:
        return self.head_v * self.n_head_kv[il]

    @cached_property
    def n_embd_v_gqa_max(self) -> int:
        return max(self.n_embd_v_gqa(il) for il in range(self.n_layer_all))


def rotation_size(spec: ModelSpec, cache_type: int, head: int) -> int:
    """n_rot_k / n_rot_v of llama_kv_cache: Hadamard rotation for quantized K/V caches."""
    if not g.is_quantized(cache_type) or head <= 0 or head % 64 != 0:
        return 0
    return 64


class GraphBuilder:
    """``llm_graph_context`` for one ubatch: the shared block builders of llama-graph.cpp."""

    def __init__(
        self, spec: ModelSpec, recipe: ArchRecipe, cache: CacheParams, ubatch: Ubatch
    ) -> None:
        self.spec = spec
        self.recipe = recipe
        self.cache = cache
        self.ub = ubatch
        self.n_tokens = ubatch.n_tokens
        self.gf = Graph()
        self._weights: dict[str, Tensor] = {}
        self._kv: dict[tuple[str, int], Tensor] = {}

    # --- model tensors -------------------------------------------------------------------

    def w(self, name: str) -> Tensor | None:
        """A weight by GGUF name, or None when the file lacks it (TENSOR_NOT_REQUIRED)."""
        t = self._weights.get(name)
        if t is None:
            info = self.spec.weights.get(name)
            if info is None:
                return None
            t = self._weights[name] = g.weight(name, info[0], info[1])
        return t

    def layer_duplicate(self, name: str, il: int) -> Tensor | None:
        """A TENSOR_DUPLICATED weight as layer il sees it: its own copy on the layer's device."""
        key = f"{name}#{il}"
        t = self._weights.get(key)
        if t is None:
            info = self.spec.weights.get(name)
            if info is None:
                return None
            t = self._weights[key] = g.weight(name, info[0], info[1])
            t.dup_layer = il
        return t

    def rope_factors(self, il: int) -> Tensor | None:
        """llama_model::get_rope_factors: rope_freqs, else long/short factors by context."""
        if not self.recipe.rope_factors:
            return None
        freqs = self.layer_duplicate("rope_freqs.weight", il)
        if freqs is not None:
            return freqs
        if self.cache.kv_size > self.spec.n_ctx_orig:
            return self.layer_duplicate("rope_factors_long.weight", il)
        return self.layer_duplicate("rope_factors_short.weight", il)

    def lw(self, il: int, role: str, suffix: str = "weight") -> Tensor | None:
        return self.w(f"blk.{il}.{role}.{suffix}")

    def output_weight(self) -> Tensor:
        out = self._weights.get("output.weight")
        if out is not None:
            return out
        info = self.spec.weights.get("output.weight") or self.spec.weights["token_embd.weight"]
        # tied embeddings: llama.cpp loads a duplicate of token_embd on the output device
        out = self._weights["output.weight"] = g.weight("output.weight", info[0], info[1])
        return out

    def kv_tensor(self, kind: str, il: int, ggml_type: int, width: int, size: int) -> Tensor:
        key = (kind, il)
        t = self._kv.get(key)
        if t is None:
            t = g.new_tensor(ggml_type, width, size, self.cache.n_stream)
            t.kv_layer = il
            t.name = f"cache_{kind}_l{il}"
            self._kv[key] = t
        return t

    # --- callbacks ------------------------------------------------------------------------

    def cb(self, t: Tensor, name: str, il: int) -> None:
        """llama_context::graph_get_cb: names, and pins "norm"/"l_last" to the layer device."""
        t.name = f"{name}-{il}" if il >= 0 else name
        t.il = il
        if il != -1 and name in ("norm", "l_last"):
            t.pin = ("layer", il)

    def input(self, t: Tensor, name: str) -> Tensor:
        t.set_input()
        t.name = name
        return t

    # --- inputs ---------------------------------------------------------------------------

    def build_inp_embd(self, tok_scale: float = 1.0) -> Tensor:
        spec = self.spec
        n_tokens = self.n_tokens
        tok_embd = self.w("token_embd.weight")
        if tok_embd is None:
            raise BadInput(f"{spec.arch}: the model has no token_embd.weight")
        tokens = self.input(g.new_tensor(I32, n_tokens), "inp_tokens")
        embd = self.input(g.new_tensor(F32, spec.n_embd, n_tokens), "inp_embd")
        tok = g.get_rows(tok_embd, tokens)
        mixed_tokens = self.input(g.new_tensor(I32, n_tokens), "inp_mixed_tokens")
        mixed_slots = self.input(g.new_tensor(I64, n_tokens), "inp_mixed_slots")
        mixed_embd = self.input(g.new_tensor(F32, spec.n_embd, n_tokens), "inp_mixed_embd")
        mixed = g.set_rows(g.dup(mixed_embd), g.get_rows(tok_embd, mixed_tokens), mixed_slots)
        self.gf.select([tok, embd, mixed])
        cur = tok
        if spec.embedding_scale != 0.0:
            cur = g.scale(cur)
        if tok_scale != 1.0:
            scale_rows = self.input(g.new_tensor(F32, 1, n_tokens), "inp_scale_rows")
            cur = g.mul(cur, scale_rows)
        self.cb(cur, "embd", -1)
        self.gf.expand(cur)
        return cur

    def build_inp_pos(self) -> Tensor:
        return self.input(g.new_tensor(I32, self.n_tokens), "inp_pos")

    def build_inp_attn_scale(self) -> Tensor | None:
        """Llama-4 style temperature tuning input (mistral3, deepseek2), if the model has it."""
        if not self.spec.attn_temp_scale:
            return None
        return self.input(g.new_tensor(F32, 1, 1, self.n_tokens), "inp_attn_scale")

    def build_inp_out_ids(self) -> Tensor:
        return self.input(g.new_tensor(I32, self.ub.n_outputs), "out_ids")

    def build_kq_mask(self, n_kv: int) -> Tensor:
        c = self.cache
        n_stream = 1 if c.kv_unified else self.ub.n_seqs
        mask_type = F16 if c.flash_attn else F32
        t = g.new_tensor(mask_type, n_kv, self.n_tokens // n_stream, 1, n_stream)
        return self.input(t, "attn_inp_kq_mask")

    def build_attn_inp(self, kind: str) -> dict[str, dict[str, Tensor | None]]:
        """build_attn_inp_kv / _iswa / _k: index inputs, masks and rotations per cache."""
        c = self.cache
        spec = self.spec
        caches = {"base": c.kv_size}
        if kind == "iswa":
            caches["swa"] = c.kv_size_swa
        inputs: dict[str, dict[str, Tensor | None]] = {}
        for name, size in caches.items():
            k_idxs = self.input(g.new_tensor(I64, self.n_tokens), "attn_inp_k_idxs")
            v_idxs = None
            if kind != "mla":
                width = self.n_tokens * (spec.n_embd_v_gqa_max if c.v_trans else 1)
                v_idxs = self.input(g.new_tensor(I64, width), "attn_inp_v_idxs")
            mask = self.build_kq_mask(size)
            k_rot = v_rot = None
            if kind != "mla":
                n_rot_k = rotation_size(spec, c.type_k, spec.head_k)
                n_rot_v = rotation_size(spec, c.type_v, spec.head_v)
                if n_rot_k:
                    while spec.head_k % (2 * n_rot_k) == 0:
                        n_rot_k *= 2
                    k_rot = self.input(g.new_tensor(F32, n_rot_k, n_rot_k), "attn_inp_k_rot")
                if n_rot_v:
                    v_rot = self.input(g.new_tensor(F32, n_rot_v, n_rot_v), "attn_inp_v_rot")
            inputs[name] = {
                "k_idxs": k_idxs,
                "v_idxs": v_idxs,
                "mask": mask,
                "k_rot": k_rot,
                "v_rot": v_rot,
                "size": None,
            }
            inputs[name]["_size"] = size  # type: ignore[assignment]
        return inputs

    # --- blocks ---------------------------------------------------------------------------

    def build_norm(self, cur: Tensor, w: Tensor | None, b: Tensor | None, il: int, *, rms=True):
        cur = g.rms_norm(cur) if rms else g.norm(cur)
        if w is not None or b is not None:
            self.cb(cur, "norm", il)
        if w is not None:
            cur = g.mul(cur, w)
        if b is not None:
            cur = g.add(cur, b)
        return cur

    def build_lora_mm(self, w: Tensor, cur: Tensor, w_s: Tensor | None = None) -> Tensor:
        res = g.mul_mat(w, cur)
        if w_s is not None:
            res = g.mul(res, w_s)
        return res

    def build_qkv(self, il: int, cur: Tensor, head_q: int, n_head: int, n_head_kv: int):
        n_tokens = self.n_tokens
        wqkv = self.lw(il, "attn_qkv")
        if wqkv is not None:
            qkv = self.build_lora_mm(wqkv, cur, self.lw(il, "attn_qkv", "scale"))
            bias = self.lw(il, "attn_qkv", "bias")
            if bias is not None:
                qkv = g.add(qkv, bias)
            n_embd_q = head_q * n_head
            n_embd_k = head_q * n_head_kv
            rs = g.row_size
            q = g.view_3d(qkv, head_q, n_head, n_tokens, rs(qkv.type, head_q), qkv.nb[1], 0)
            k = g.view_3d(
                qkv, head_q, n_head_kv, n_tokens, rs(qkv.type, head_q), qkv.nb[1],
                rs(qkv.type, n_embd_q),
            )  # fmt: skip
            v = g.view_3d(
                qkv, head_q, n_head_kv, n_tokens, rs(qkv.type, head_q), qkv.nb[1],
                rs(qkv.type, n_embd_q + n_embd_k),
            )  # fmt: skip
            return q, k, v
        out = []
        for role, heads in (("attn_q", n_head), ("attn_k", n_head_kv), ("attn_v", n_head_kv)):
            t = self.build_lora_mm(self.lw(il, role), cur, self.lw(il, role, "scale"))
            bias = self.lw(il, role, "bias")
            if bias is not None:
                t = g.add(t, bias)
            out.append((t, heads))
        return tuple(g.reshape(t, head_q, heads, n_tokens) for t, heads in out)

    def build_ffn(
        self,
        cur: Tensor,
        up: Tensor | None,
        gate: Tensor | None,
        down: Tensor | None,
        act: str,
        il: int,
        up_b: Tensor | None = None,
        gate_b: Tensor | None = None,
        down_b: Tensor | None = None,
        par: bool = True,
    ) -> Tensor:
        tmp = self.build_lora_mm(up, cur) if up is not None else cur
        if up_b is not None:
            tmp = g.add(tmp, up_b)
        if gate is not None:
            cur = self.build_lora_mm(gate, cur if par else tmp)
            if gate_b is not None:
                cur = g.add(cur, gate_b)
        else:
            cur = tmp
        if gate is not None and par:
            kind = {"silu": "swiglu", "gelu": "geglu", "relu": "reglu"}[act]
            cur = g.glu_split(cur, tmp, kind)
        else:
            cur = g.unary(cur, act)
        if down is not None:
            cur = self.build_lora_mm(down, cur)
        if down_b is not None:
            cur = g.add(cur, down_b)
        return cur

    def build_moe_ffn(
        self,
        cur: Tensor,
        il: int,
        gating: int,
        norm_w: bool,
        w_scale: float,
        act: str,
    ) -> Tensor:
        spec = self.spec
        n_embd, n_tokens = cur.ne[0], cur.ne[1]
        n_expert, n_used = spec.n_expert, spec.n_expert_used
        logits = self.build_lora_mm(self.lw(il, "ffn_gate_inp"), cur)
        gate_inp_b = self.lw(il, "ffn_gate_inp", "bias")
        if gate_inp_b is not None:
            logits = g.add(logits, gate_inp_b)
        if gating == GATING_SOFTMAX:
            probs = g.soft_max(logits)
        elif gating == GATING_SIGMOID:
            probs = g.unary(logits, "sigmoid")
        elif gating == GATING_SOFTMAX_WEIGHT:
            probs = logits
        else:
            probs = g.sqrt(g.unary(logits, "softplus"))
        selection = probs
        exp_probs_b = self.lw(il, "exp_probs_b", "bias")
        if exp_probs_b is not None:
            selection = g.add(probs, exp_probs_b)
        if spec.n_expert_groups > 1 and n_tokens > 0:
            per_group = n_expert // spec.n_expert_groups
            groups = g.reshape(selection, per_group, spec.n_expert_groups, n_tokens)
            scores = g.argsort_top_k(groups, 2)
            scores = g.get_rows(g.reshape(groups, 1, *groups.ne[:3]), scores)
            scores = g.sum_rows(g.reshape(scores, *scores.ne[1:4]))
            scores = g.reshape(scores, scores.ne[1], scores.ne[2])
            expert_groups = g.argsort_top_k(scores, spec.n_group_used)
            selection = g.get_rows(groups, expert_groups)
            selection = g.set_rows(g.fill(groups), selection, expert_groups)
            selection = g.reshape(selection, n_expert, n_tokens)
        selected = g.argsort_top_k(selection, n_used)
        probs3 = g.reshape(probs, 1, n_expert, n_tokens)
        weights = g.get_rows(probs3, selected)
        if gating == GATING_SOFTMAX_WEIGHT:
            weights = g.reshape(weights, n_used, n_tokens)
            weights = g.soft_max(weights)
            weights = g.reshape(weights, 1, n_used, n_tokens)
        if norm_w:
            weights = g.reshape(weights, n_used, n_tokens)
            weights_sum = g.sum_rows(weights)
            weights_sum = g.clamp(weights_sum)
            weights = g.div(weights, weights_sum)
            weights = g.reshape(weights, 1, n_used, n_tokens)
        if w_scale != 0.0 and w_scale != 1.0:
            weights = g.scale(weights)
        self.gf.expand(weights)

        cur = g.reshape(cur, n_embd, 1, n_tokens)
        gate_up = self.lw(il, "ffn_gate_up_exps")
        if gate_up is not None:
            gu = g.mul_mat_id(gate_up, cur, selected)
            gu_b = self.lw(il, "ffn_gate_up_exps", "bias")
            if gu_b is not None:
                gu = g.add_id(gu, gu_b, selected)
            n_ff = gu.ne[0] // 2
            cur = g.view_3d(gu, n_ff, gu.ne[1], gu.ne[2], gu.nb[1], gu.nb[2], 0)
            up = g.view_3d(gu, n_ff, gu.ne[1], gu.ne[2], gu.nb[1], gu.nb[2], n_ff * gu.nb[0])
            has_gate = True
        else:
            up = g.mul_mat_id(self.lw(il, "ffn_up_exps"), cur, selected)
            up_b = self.lw(il, "ffn_up_exps", "bias")
            if up_b is not None:
                up = g.add_id(up, up_b, selected)
            gate_exps = self.lw(il, "ffn_gate_exps")
            cur = g.mul_mat_id(gate_exps, cur, selected) if gate_exps is not None else up
            gate_b = self.lw(il, "ffn_gate_exps", "bias")
            if gate_b is not None:
                cur = g.add_id(cur, gate_b, selected)
            has_gate = gate_exps is not None
        if act == "swiglu_oai":
            cur = g.glu_split(cur, up, "swiglu_oai")
        elif has_gate:
            kind = {"silu": "swiglu", "gelu": "geglu", "relu": "reglu"}[act]
            cur = g.glu_split(cur, up, kind)
        else:
            cur = g.unary(cur, act)
        experts = g.mul_mat_id(self.lw(il, "ffn_down_exps"), cur, selected)
        down_b = self.lw(il, "ffn_down_exps", "bias")
        if down_b is not None:
            experts = g.add_id(experts, down_b, selected)
        experts = g.mul(experts, weights)
        self.gf.expand(experts)
        views = []
        for i in range(n_used):
            v = g.view_2d(experts, n_embd, n_tokens, experts.nb[2], i * experts.nb[1])
            self.gf.expand(v)
            views.append(v)
        moe_out = views[0]
        for v in views[1:]:
            moe_out = g.add(moe_out, v)
            self.gf.expand(moe_out)
        if n_used == 1:
            moe_out = g.cont(moe_out)
        self.cb(moe_out, "ffn_moe_out", il)
        return moe_out

    # --- attention ------------------------------------------------------------------------

    def hadamard(self, cur: Tensor, rot: Tensor) -> Tensor:
        """llama_mul_mat_hadamard (llama-impl.h)."""
        n = rot.ne[0]
        if not cur.is_contiguous():
            res = g.cont_nd(cur, n, cur.n_elements // n)
        else:
            res = g.reshape(cur, n, cur.n_elements // n)
        res = g.mul_mat(rot, res)
        return g.reshape(res, *cur.ne)

    def cpy_k(self, k: Tensor, k_cur: Tensor, k_idxs: Tensor) -> Tensor:
        n_embd_gqa = k_cur.ne[0] * k_cur.ne[1]
        k_cur = g.view_2d(k_cur, n_embd_gqa, k_cur.ne[2], k_cur.nb[2], 0)
        if k.ne[2] > 1:
            k = g.reshape(k, n_embd_gqa, k.ne[1] * k.ne[2])
        return g.set_rows(k, k_cur, k_idxs)

    def cpy_v(self, v: Tensor, v_cur: Tensor, v_idxs: Tensor) -> Tensor:
        n_embd_gqa = v_cur.ne[0] * v_cur.ne[1]
        n_tokens = v_cur.ne[2]
        if not self.cache.v_trans:
            v_cur = g.view_2d(v_cur, n_embd_gqa, n_tokens, v_cur.nb[2], 0)
            if v.ne[2] > 1:
                v = g.reshape(v, n_embd_gqa, v.ne[1] * v.ne[2])
            return g.set_rows(v, v_cur, v_idxs)
        if g.row_size(v_cur.type, n_embd_gqa) == v_cur.nb[2]:
            v_cur = g.reshape(v_cur, n_embd_gqa, n_tokens)
        else:
            v_cur = g.cont_nd(v_cur, n_embd_gqa, n_tokens)
        if n_embd_gqa < v.ne[0]:
            v_cur = g.pad(v_cur, v.ne[0] - n_embd_gqa)
        v_view = g.reshape(v, 1, v.n_elements)
        v_cur = g.reshape(v_cur, 1, v_cur.n_elements)
        return g.set_rows(v_view, v_cur, v_idxs)

    def get_k(self, k: Tensor, il: int, n_kv: int, head: int, n_head_kv: int) -> Tensor:
        rs = g.row_size
        width, size = k.ne[0], k.ne[1]
        return g.view_4d(
            k, head, n_head_kv, n_kv, self.cache.n_stream,
            rs(k.type, head), rs(k.type, width), rs(k.type, width * size), 0,
        )  # fmt: skip

    def get_v(self, v: Tensor, il: int, n_kv: int, head: int, n_head_kv: int) -> Tensor:
        rs = g.row_size
        width, size = v.ne[0], v.ne[1]
        ns = self.cache.n_stream
        if not self.cache.v_trans:
            return g.view_4d(
                v, head, n_head_kv, n_kv, ns,
                rs(v.type, head), rs(v.type, width), rs(v.type, width * size), 0,
            )  # fmt: skip
        return g.view_4d(
            v, n_kv, n_head_kv, head, ns,
            rs(v.type, size * head), rs(v.type, size), rs(v.type, size * width), 0,
        )  # fmt: skip

    def build_attn_mha(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor,
        sinks: Tensor | None,
        v_mla: Tensor | None,
        il: int,
    ) -> Tensor:
        v_trans = v.nb[1] > v.nb[2]
        n_stream = k.ne[3]
        q = g.view_4d(
            q, q.ne[0], q.ne[1], q.ne[2] // n_stream, n_stream,
            q.nb[1], q.nb[2], q.nb[2] * (q.ne[2] // n_stream), 0,
        )  # fmt: skip
        q = g.permute(q, 0, 2, 1, 3)
        k = g.permute(k, 0, 2, 1, 3)
        v = g.permute(v, 0, 2, 1, 3)
        if self.cache.flash_attn:
            if v_trans:
                v = g.transpose(v)
            if k.type == F32:
                k = g.cast(k, F16)
            if v.type == F32:
                v = g.cast(v, F16)
            cur = g.flash_attn_ext(q, k, v, mask, sinks)
            cur.params = {"n_kv": k.ne[1]}
            if v_mla is not None:
                cur = g.permute(cur, 0, 2, 1, 3)
                cur = g.mul_mat(v_mla, cur)
                cur = g.permute(cur, 0, 2, 1, 3)
                cur = g.cont(cur)
            cur = g.reshape(cur, cur.ne[0] * cur.ne[1], cur.ne[2] * cur.ne[3])
        else:
            kq = g.mul_mat(k, q)
            if self.spec.attn_logit_softcap:
                kq = g.scale(kq)
                kq = g.unary(kq, "tanh")
                kq = g.scale(kq)
            kq = g.soft_max(kq, mask, sinks)
            if not v_trans:
                v = g.cont(g.transpose(v))
            kqv = g.mul_mat(v, kq)
            if v_mla is not None:
                kqv = g.mul_mat(v_mla, kqv)
            cur = g.permute(kqv, 0, 2, 1, 3)
            cur = g.cont_nd(cur, cur.ne[0] * cur.ne[1], cur.ne[2] * cur.ne[3])
            if not self.cache.offload_kqv:
                cur.pin = ("cpu",)
        self.gf.expand(cur)
        return cur

    def build_attn(
        self,
        inp: dict[str, dict[str, Tensor | None]],
        kind: str,
        il: int,
        q_cur: Tensor,
        k_cur: Tensor,
        v_cur: Tensor,
        head_k: int,
        head_v: int,
        n_head_kv: int,
        sinks: Tensor | None = None,
        v_mla: Tensor | None = None,
    ) -> Tensor:
        spec = self.spec
        c = self.cache
        is_swa = kind == "iswa" and spec.swa[il]
        cache_inp = inp["swa" if is_swa else "base"]
        n_kv = cache_inp["_size"]  # type: ignore[assignment]
        k_rot, v_rot = cache_inp["k_rot"], cache_inp["v_rot"]
        if k_rot is not None:
            q_cur = self.hadamard(q_cur, k_rot)
            k_cur = self.hadamard(k_cur, k_rot)
        if v_rot is not None:
            v_cur = self.hadamard(v_cur, v_rot)
        order = (q_cur, k_cur, v_cur) if kind == "iswa" else (q_cur, v_cur, k_cur)
        for t in order:
            self.gf.expand(t)
        kv_size = c.kv_size_swa if is_swa else c.kv_size
        n_embd_k = head_k * n_head_kv
        k = self.kv_tensor("k", il, c.type_k, n_embd_k, kv_size)
        self.gf.expand(self.cpy_k(k, k_cur, cache_inp["k_idxs"]))
        if kind == "mla":
            k_view = self.get_k(k, il, n_kv, head_k, n_head_kv)
            v = g.view_4d(
                k_view, v_cur.ne[0], k_view.ne[1], k_view.ne[2], k_view.ne[3],
                k_view.nb[1], k_view.nb[2], k_view.nb[3], 0,
            )  # fmt: skip
            k_view_final = k_view
        else:
            width_v = spec.n_embd_v_gqa_max if c.v_trans else head_v * n_head_kv
            vt = self.kv_tensor("v", il, c.type_v, width_v, kv_size)
            self.gf.expand(self.cpy_v(vt, v_cur, cache_inp["v_idxs"]))
            k_view_final = self.get_k(k, il, n_kv, head_k, n_head_kv)
            v = self.get_v(vt, il, n_kv, head_v, n_head_kv)
        cur = self.build_attn_mha(q_cur, k_view_final, v, cache_inp["mask"], sinks, v_mla, il)
        self.cb(cur, "kqv_out", il)
        if v_rot is not None:
            cur = self.hadamard(cur, v_rot)
        return cur

    def attn_output(self, cur: Tensor, il: int) -> Tensor:
        wo = self.lw(il, "attn_output")
        if wo is not None:
            cur = self.build_lora_mm(wo, cur, self.lw(il, "attn_output", "scale"))
        wo_b = self.lw(il, "attn_output", "bias")
        if wo_b is not None:
            cur = g.add(cur, wo_b)
        return cur


# --- architecture graph functions ---------------------------------------------------------


def _dense_ffn(b: GraphBuilder, cur: Tensor, il: int, act: str) -> Tensor:
    return b.build_ffn(
        cur,
        b.lw(il, "ffn_up"),
        b.lw(il, "ffn_gate"),
        b.lw(il, "ffn_down"),
        act,
        il,
        up_b=b.lw(il, "ffn_up", "bias"),
        gate_b=b.lw(il, "ffn_gate", "bias"),
        down_b=b.lw(il, "ffn_down", "bias"),
    )


def _ffn_block(b: GraphBuilder, recipe: ArchRecipe, cur: Tensor, il: int) -> Tensor:
    """Dense FFN, or routed experts plus an optional shared expert, as the layer has them."""
    spec = b.spec
    if b.lw(il, "ffn_gate_inp") is None:
        return _dense_ffn(b, cur, il, recipe.ffn_act)
    norm_w = spec.expert_weights_norm if recipe.moe_norm_w is None else recipe.moe_norm_w
    moe_out = b.build_moe_ffn(
        cur, il, spec.expert_gating, norm_w, spec.expert_weights_scale, recipe.moe_act
    )
    if b.lw(il, "ffn_up_shexp") is None:
        return moe_out
    if recipe.shared_expert_gate:
        # qwen2moe.cpp: sigmoid gate as silu(x) / x, computed before the shared FFN
        gate_inp = b.build_lora_mm(b.lw(il, "ffn_gate_inp_shexp"), cur)
        gate = g.div(g.unary(gate_inp, "silu"), gate_inp)
        shexp = b.build_ffn(
            cur, b.lw(il, "ffn_up_shexp"), b.lw(il, "ffn_gate_shexp"),
            b.lw(il, "ffn_down_shexp"), "silu", il,
        )  # fmt: skip
        return g.add(moe_out, g.mul(shexp, gate))
    shexp = b.build_ffn(
        cur, b.lw(il, "ffn_up_shexp"), b.lw(il, "ffn_gate_shexp"), b.lw(il, "ffn_down_shexp"),
        "silu", il,
    )  # fmt: skip
    return g.add(moe_out, shexp)


def _mla_attention(
    b: GraphBuilder, inp, il: int, cur: Tensor, inp_pos: Tensor, attn_scale: Tensor | None
) -> Tensor:
    """deepseek2.cpp: multi-head latent attention with the absorption optimisation."""
    spec = b.spec
    n_tokens = b.n_tokens
    n_head = spec.n_head[il]
    head_k_mla = spec.head_k_mla
    rope = spec.n_rot
    nope = head_k_mla - rope
    rank = spec.kv_lora_rank
    if b.lw(il, "attn_q") is not None:
        q = g.mul_mat(b.lw(il, "attn_q"), cur)
    else:
        q = g.mul_mat(b.lw(il, "attn_q_a"), cur)
        q = b.build_norm(q, b.lw(il, "attn_q_a_norm"), None, il)
        q = g.mul_mat(b.lw(il, "attn_q_b"), q)
    q = g.reshape(q, head_k_mla, n_head, n_tokens)
    kv_cmpr_pe = g.mul_mat(b.lw(il, "attn_kv_a_mqa"), cur)
    rs = g.row_size
    row = rs(kv_cmpr_pe.type, rank + rope)
    kv_cmpr = g.view_2d(kv_cmpr_pe, rank, n_tokens, row, 0)
    k_pe = g.view_3d(kv_cmpr_pe, rope, 1, n_tokens, row, row, rs(kv_cmpr_pe.type, rank))
    k_pe = g.rope(k_pe, inp_pos)
    kv_cmpr = b.build_norm(kv_cmpr, b.lw(il, "attn_kv_a_norm"), None, il)
    q_nope = g.view_3d(q, nope, n_head, n_tokens, q.nb[1], q.nb[2], 0)
    q_pe = g.view_3d(q, rope, n_head, n_tokens, q.nb[1], q.nb[2], rs(q.type, nope))
    q_pe = g.rope(q_pe, inp_pos)
    q_nope = g.permute(q_nope, 0, 2, 1, 3)
    q_absorbed = g.mul_mat(b.lw(il, "attn_k_b"), q_nope)
    q_absorbed = g.permute(q_absorbed, 0, 2, 1, 3)
    q_cur = g.concat(q_absorbed, q_pe, 0)
    kv_cmpr = g.reshape(kv_cmpr, rank, 1, n_tokens)
    k_cur = g.concat(kv_cmpr, k_pe, 0)
    v_cur = kv_cmpr
    if attn_scale is not None:
        q_cur = g.mul(q_cur, attn_scale)
    cur = b.build_attn(
        inp, "mla", il, q_cur, k_cur, v_cur, spec.head_k, spec.head_v, 1,
        v_mla=b.lw(il, "attn_v_b"),
    )  # fmt: skip
    return b.attn_output(cur, il)


def _std_attention(
    b: GraphBuilder,
    recipe: ArchRecipe,
    inp,
    il: int,
    cur: Tensor,
    inp_pos: Tensor,
    attn_scale: Tensor | None,
) -> Tensor:
    spec = b.spec
    head = spec.head_k
    q, k, v = b.build_qkv(il, cur, head, spec.n_head[il], spec.n_head_kv[il])
    q_norm = b.lw(il, "attn_q_norm")
    k_norm = b.lw(il, "attn_k_norm")
    rope_freqs = b.rope_factors(il)
    if q_norm is not None:
        q = b.build_norm(q, q_norm, None, il)
    if recipe.rope:
        q = g.rope(q, inp_pos, rope_freqs)
    if k_norm is not None:
        k = b.build_norm(k, k_norm, None, il)
    if recipe.rope:
        k = g.rope(k, inp_pos, rope_freqs)
    if recipe.q_scale_after_rope:
        q = g.scale(q)
    if attn_scale is not None:
        q = g.mul(q, attn_scale)
    sinks = b.lw(il, "attn_sinks") if recipe.sinks else None
    if sinks is None and recipe.sinks:
        sinks = b.lw(il, "attn_sinks", "bias")
    cur = b.build_attn(
        inp, recipe.attention, il, q, k, v, head, spec.head_v, spec.n_head_kv[il], sinks=sinks
    )
    return b.attn_output(cur, il)


def build_generic(b: GraphBuilder, recipe: ArchRecipe) -> None:
    """The pre-norm transformer template shared by llama, qwen*, gemma3, deepseek2, gpt-oss."""
    spec = b.spec
    tok_scale = math.sqrt(spec.n_embd) if recipe.tok_scale_sqrt_embd else 1.0
    inp_l = b.build_inp_embd(tok_scale)
    attn_scale = b.build_inp_attn_scale()
    inp_pos = b.build_inp_pos()
    inp = b.build_attn_inp(recipe.attention)
    out_ids = b.build_inp_out_ids()
    n_layer = spec.n_layer
    for il in range(n_layer):
        b.gf.segment = 1 + il
        inp_sa = inp_l
        cur = b.build_norm(inp_l, b.lw(il, "attn_norm"), b.lw(il, "attn_norm", "bias"), il)
        if recipe.attention == "mla":
            cur = _mla_attention(b, inp, il, cur, inp_pos, attn_scale)
        else:
            cur = _std_attention(b, recipe, inp, il, cur, inp_pos, attn_scale)
        if il == n_layer - 1 and not recipe.out_ids_after_loop:
            cur = g.get_rows(cur, out_ids)
            inp_sa = g.get_rows(inp_sa, out_ids)
        if recipe.post_attn_norm:
            cur = b.build_norm(cur, b.lw(il, "post_attention_norm"), None, il)
        ffn_inp = g.add(cur, inp_sa)
        if recipe.attn_post_norm_as_ffn_norm:
            cur = b.build_norm(ffn_inp, b.lw(il, "post_attention_norm"), None, il)
        else:
            cur = b.build_norm(ffn_inp, b.lw(il, "ffn_norm"), None, il)
        cur = _ffn_block(b, recipe, cur, il)
        if recipe.post_ffn_norm:
            cur = b.build_norm(cur, b.lw(il, "post_ffw_norm"), None, -1)
        cur = g.add(cur, ffn_inp)
        b.cb(cur, "l_out", il)
        inp_l = cur
    b.gf.segment = 1 + n_layer
    cur = inp_l
    h_nextn = None
    if recipe.h_nextn_output == "pre_norm":
        h_nextn = cur
    if recipe.out_ids_after_loop:
        cur = g.get_rows(cur, out_ids)
    cur = b.build_norm(cur, b.w("output_norm.weight"), b.w("output_norm.bias"), -1)
    if recipe.h_nextn_output == "norm":
        h_nextn = cur
    b.cb(cur, "result_norm", -1)
    t_embd = cur
    cur = b.build_lora_mm(b.output_weight(), cur)
    output_b = b.w("output.bias")
    if output_b is not None:
        cur = g.add(cur, output_b)
    if spec.final_logit_softcap:
        cur = g.scale(cur)
        cur = g.unary(cur, "tanh")
        cur = g.scale(cur)
    b.cb(cur, "result_output", -1)
    b.gf.expand(cur)
    # llm_graph_result::set_outputs
    for t in (cur, t_embd, h_nextn):
        if t is not None:
            t.set_output()


class ComputeNotModelled(BadInput):
    """The model's architecture has no compute-graph recipe that can build it (e.g. SSM)."""


def _check_modelled(spec: ModelSpec, recipe: ArchRecipe) -> None:
    """Refuse, with a clear message, a model whose layers the recipe cannot build."""
    w = spec.weights
    if recipe.attention == "mla":
        needed = ["attn_kv_a_mqa", "attn_k_b", "attn_v_b", "attn_output"]
    else:
        needed = ["attn_output"]
    for il in range(spec.n_layer):
        names = [f"blk.{il}.{role}.weight" for role in needed]
        fused = f"blk.{il}.attn_qkv.weight" in w
        separate = all(f"blk.{il}.attn_{x}.weight" in w for x in "qkv")
        if recipe.attention != "mla" and not (fused or separate):
            names.append(f"blk.{il}.attn_q.weight")
        missing = [n for n in names if n not in w]
        if missing:
            raise ComputeNotModelled(
                f"{spec.arch}: the compute graph of this architecture is not modelled "
                f"(layer {il} has no {missing[0]})"
            )


def build_graph(spec: ModelSpec, cache: CacheParams, ubatch: Ubatch) -> BuiltGraph:
    """The graph ``llama_context::graph_reserve`` builds for this ubatch."""
    n_tokens = ubatch.n_tokens
    if n_tokens % ubatch.n_seqs:
        n_tokens = (n_tokens + ubatch.n_seqs - 1) // ubatch.n_seqs * ubatch.n_seqs
        ubatch = Ubatch(n_tokens, ubatch.n_seqs, ubatch.n_outputs)
    recipe = RECIPES.get(spec.arch)
    approximate = recipe is None
    if recipe is None:
        recipe = RECIPES["llama"]
    if recipe.attention == "mla" and not spec.is_mla:
        raise BadInput(f"{spec.arch}: MLA hyperparameters (key_length_mla) are missing")
    _check_modelled(spec, recipe)
    b = GraphBuilder(spec, recipe, cache, ubatch)
    build_generic(b, recipe)
    return BuiltGraph(
        graph=b.gf, pin_layers=n_tokens < 32, approximate=approximate, n_tokens=n_tokens
    )
