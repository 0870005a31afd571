"""Feed-forward blocks: the dense FFN, the mixture-of-experts FFN, shared experts.

``build_ffn`` is ``llm_graph_context::build_ffn`` (parallel gate, fused GLU) and
``build_moe_ffn`` its MoE counterpart (``src/llama-graph.cpp``): route (gating function,
optional selection bias and expert groups, top-k, weight normalisation and scale), run the
selected experts (``mul_mat_id``), and sum their weighted outputs. ``ffn_block`` picks what
a layer has: a dense FFN, or routed experts plus an optional shared expert.
"""

from __future__ import annotations

from dataclasses import dataclass

from solver.ggml import ops as g
from solver.ggml.ops import Tensor
from solver.llama.compute_graph.builder import GraphBuilder

# llama-hparams.h llama_expert_gating_func_type
GATING_SOFTMAX = 1
GATING_SIGMOID = 2
GATING_SOFTMAX_WEIGHT = 3
GATING_SQRT_SOFTPLUS = 4

# the fused GLU op of a gated FFN, by activation
_GLU = {"silu": "swiglu", "gelu": "geglu", "relu": "reglu", "swiglu_oai": "swiglu_oai"}


@dataclass(frozen=True)
class MoeRouting:
    """How a model's MoE layers route and activate (build_moe_ffn's arguments)."""

    gating: int  # GATING_*
    norm_w: bool  # normalise the selected experts' weights to sum 1
    w_scale: float  # scale of the weights (0 or 1: none)
    act: str  # expert activation: "silu", "gelu", "relu" or gpt-oss's "swiglu_oai"

    @classmethod
    def of(
        cls,
        b: GraphBuilder,
        gating: int,
        *,
        from_gguf: bool = False,
        norm_w: bool | None = None,
        act: str = "silu",
    ) -> MoeRouting:
        """What a graph function passes build_moe_ffn: ``gating``, or the GGUF's gating
        function where the architecture's load_hparams reads one (``from_gguf``; ``gating``
        is its default then); the GGUF's weight normalisation unless ``norm_w`` fixes it;
        the GGUF's weight scale."""
        hp = b.hp
        return cls(
            gating=(hp.expert_gating_func or gating) if from_gguf else gating,
            norm_w=hp.expert_weights_norm if norm_w is None else norm_w,
            w_scale=hp.expert_weights_scale,
            act=act,
        )


# --- dense --------------------------------------------------------------------------------


def build_ffn(
    b: GraphBuilder,
    cur: Tensor,
    up: Tensor | None,
    gate: Tensor | None,
    down: Tensor | None,
    act: str,
    up_b: Tensor | None = None,
    gate_b: Tensor | None = None,
    down_b: Tensor | None = None,
    par: bool = True,
) -> Tensor:
    """llm_graph_context::build_ffn: up, (parallel) gate, activation or fused GLU, down."""
    tmp = b.build_lora_mm(up, cur) if up is not None else cur
    if up_b is not None:
        tmp = g.add(tmp, up_b)
    if gate is not None:
        cur = b.build_lora_mm(gate, cur if par else tmp)
        if gate_b is not None:
            cur = g.add(cur, gate_b)
    else:
        cur = tmp
    cur = g.glu_split(cur, tmp, _GLU[act]) if gate is not None and par else _activate(cur, act)
    if down is not None:
        cur = b.build_lora_mm(down, cur)
    if down_b is not None:
        cur = g.add(cur, down_b)
    return cur


def _activate(cur: Tensor, act: str) -> Tensor:
    """An ungated FFN's activation; LLM_FFN_RELU_SQR (nemotron-h) is relu, then sqr;
    LLM_FFN_SWIGLU (glm4: gate and up fused in one projection) the halves' GLU."""
    if act == "relu_sqr":
        return g.sqr(g.unary(cur, "relu"))
    if act == "swiglu":
        return g.glu(cur, act)
    # xielu (apertus): ggml_xielu is a GGML_OP_UNARY like silu
    return g.unary(cur, act)


def dense_ffn(b: GraphBuilder, cur: Tensor, il: int, act: str) -> Tensor:
    """Layer il's dense FFN (ffn_up / ffn_gate / ffn_down with their optional biases)."""
    return build_ffn(
        b,
        cur,
        b.lw(il, "ffn_up"),
        b.lw(il, "ffn_gate"),
        b.lw(il, "ffn_down"),
        act,
        up_b=b.lw(il, "ffn_up", "bias"),
        gate_b=b.lw(il, "ffn_gate", "bias"),
        down_b=b.lw(il, "ffn_down", "bias"),
    )


def ffn_block(
    b: GraphBuilder,
    cur: Tensor,
    il: int,
    act: str,
    routing: MoeRouting,
    shared_expert_gate: bool = False,
    shared_expert_first: bool = False,
) -> Tensor:
    """Dense FFN, or routed experts plus an optional shared expert, as the layer has them.

    ``shared_expert_gate``: qwen2moe's sigmoid gate on the shared expert;
    ``shared_expert_first``: hunyuan-moe builds the shared MLP before the experts.
    """
    if b.lw(il, "ffn_gate_inp") is None:
        return dense_ffn(b, cur, il, act)
    if shared_expert_first and b.lw(il, "ffn_up_shexp") is not None:
        shexp = shared_expert(b, cur, il, routing.act)
        return g.add(build_moe_ffn(b, cur, il, routing), shexp)
    moe_out = build_moe_ffn(b, cur, il, routing)
    if b.lw(il, "ffn_up_shexp") is None:
        return moe_out
    if shared_expert_gate:
        # qwen2moe.cpp: sigmoid gate as silu(x) / x, computed before the shared FFN
        gate_inp = b.build_lora_mm(b.lw(il, "ffn_gate_inp_shexp"), cur)
        gate = g.div(g.unary(gate_inp, "silu"), gate_inp)
        shexp = shared_expert(b, cur, il, routing.act)
        return g.add(moe_out, g.mul(shexp, gate))
    return g.add(moe_out, shared_expert(b, cur, il, routing.act))


def shared_expert(b: GraphBuilder, cur: Tensor, il: int, act: str) -> Tensor:
    """The shared expert, activated as the routed ones (minimax-m3: swigluoai)."""
    return build_ffn(
        b, cur, b.lw(il, "ffn_up_shexp"), b.lw(il, "ffn_gate_shexp"),
        b.lw(il, "ffn_down_shexp"), act,
    )  # fmt: skip


# --- mixture of experts ----------------------------------------------------------------------


def build_moe_ffn(
    b: GraphBuilder, cur: Tensor, il: int, routing: MoeRouting, selected: Tensor | None = None
) -> Tensor:
    """llm_graph_context::build_moe_ffn: route, run the selected experts, sum their outputs.
    ``selected``: the experts chosen outside the router (deepseek4's hash routing)."""
    n_embd, n_tokens = cur.ne[0], cur.ne[1]
    selected, weights = _route(b, cur, il, routing, selected)
    cur = g.reshape(cur, n_embd, 1, n_tokens)
    experts = run_experts(b, cur, il, selected, routing.act)
    experts = g.mul(experts, weights)
    b.gf.expand(experts)
    return sum_experts(b, experts, n_embd, n_tokens, il)


def _route(
    b: GraphBuilder, cur: Tensor, il: int, routing: MoeRouting, selected: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The router: (selected expert ids, their weights as 1 x n_used x n_tokens); the
    selection is skipped when ``selected`` is given."""
    hp = b.hp
    n_tokens = cur.ne[1]
    n_expert, n_used = hp.n_expert, hp.n_expert_used
    gating = routing.gating
    logits = b.build_lora_mm(b.lw(il, "ffn_gate_inp"), cur)
    gate_inp_b = b.lw(il, "ffn_gate_inp", "bias")
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
    if selected is None:
        selected = _select(b, probs, il, n_tokens)
    probs3 = g.reshape(probs, 1, n_expert, n_tokens)
    weights = g.get_rows(probs3, selected)
    if gating == GATING_SOFTMAX_WEIGHT:
        weights = g.reshape(weights, n_used, n_tokens)
        weights = g.soft_max(weights)
        weights = g.reshape(weights, 1, n_used, n_tokens)
    if routing.norm_w:
        weights = g.reshape(weights, n_used, n_tokens)
        weights_sum = g.sum_rows(weights)
        weights_sum = g.clamp(weights_sum)
        weights = g.div(weights, weights_sum)
        weights = g.reshape(weights, 1, n_used, n_tokens)
    if routing.w_scale != 0.0 and routing.w_scale != 1.0:
        weights = g.scale(weights)
    b.gf.expand(weights)
    return selected, weights


def _select(b: GraphBuilder, probs: Tensor, il: int, n_tokens: int) -> Tensor:
    """The top n_used experts by probability plus the selection bias, within the best
    expert groups where the model has groups."""
    selection = probs
    exp_probs_b = b.lw(il, "exp_probs_b", "bias")
    if exp_probs_b is not None:
        selection = g.add(probs, exp_probs_b)
    if b.hp.n_expert_groups > 1 and n_tokens > 0:
        selection = _select_groups(b, selection, n_tokens)
    return g.argsort_top_k(selection, b.hp.n_expert_used)


def _select_groups(b: GraphBuilder, selection: Tensor, n_tokens: int) -> Tensor:
    """Expert groups: keep the n_group_used groups with the best top-2 sums, mask the rest."""
    hp = b.hp
    per_group = hp.n_expert // hp.n_expert_groups
    groups = g.reshape(selection, per_group, hp.n_expert_groups, n_tokens)
    scores = g.argsort_top_k(groups, 2)
    scores = g.get_rows(g.reshape(groups, 1, *groups.ne[:3]), scores)
    scores = g.sum_rows(g.reshape(scores, *scores.ne[1:4]))
    scores = g.reshape(scores, scores.ne[1], scores.ne[2])
    expert_groups = g.argsort_top_k(scores, hp.n_group_used)
    selection = g.get_rows(groups, expert_groups)
    selection = g.set_rows(g.fill(groups), selection, expert_groups)
    return g.reshape(selection, hp.n_expert, n_tokens)


def run_experts(b: GraphBuilder, cur: Tensor, il: int, selected: Tensor, act: str) -> Tensor:
    """The selected experts' FFNs (fused gate_up or separate up/gate), before weighting."""
    gate_up = b.lw(il, "ffn_gate_up_exps")
    if gate_up is not None:
        gu = g.mul_mat_id(gate_up, cur, selected)
        gu_b = b.lw(il, "ffn_gate_up_exps", "bias")
        if gu_b is not None:
            gu = g.add_id(gu, gu_b, selected)
        n_ff = gu.ne[0] // 2
        cur = g.view_3d(gu, n_ff, gu.ne[1], gu.ne[2], gu.nb[1], gu.nb[2], 0)
        up = g.view_3d(gu, n_ff, gu.ne[1], gu.ne[2], gu.nb[1], gu.nb[2], n_ff * gu.nb[0])
        has_gate = True
    else:
        up = g.mul_mat_id(b.lw(il, "ffn_up_exps"), cur, selected)
        up_b = b.lw(il, "ffn_up_exps", "bias")
        if up_b is not None:
            up = g.add_id(up, up_b, selected)
        gate_exps = b.lw(il, "ffn_gate_exps")
        cur = g.mul_mat_id(gate_exps, cur, selected) if gate_exps is not None else up
        gate_b = b.lw(il, "ffn_gate_exps", "bias")
        if gate_b is not None:
            cur = g.add_id(cur, gate_b, selected)
        has_gate = gate_exps is not None
    if act == "swiglu_oai":
        cur = g.glu_split(cur, up, "swiglu_oai")
    elif has_gate:
        cur = g.glu_split(cur, up, _GLU[act])
    else:
        cur = _activate(cur, act)
    experts = g.mul_mat_id(b.lw(il, "ffn_down_exps"), cur, selected)
    if b.hp.arch == "mistral4":
        # llama-graph.cpp build_moe_ffn: ggml_prec_set_src(experts, GGML_PREC_F32, 1), "src1
        # can exceed F16 range"; ggml-cuda refuses it (solver.ggml.cuda_ops)
        experts.params = {"prec_src1": "f32"}
    down_b = b.lw(il, "ffn_down_exps", "bias")
    if down_b is not None:
        experts = g.add_id(experts, down_b, selected)
    return experts


def sum_experts(b: GraphBuilder, experts: Tensor, n_embd: int, n_tokens: int, il: int) -> Tensor:
    """Add the n_used weighted expert outputs (views of one tensor), as llama.cpp does."""
    n_used = b.hp.n_expert_used
    views = []
    for i in range(n_used):
        v = g.view_2d(experts, n_embd, n_tokens, experts.nb[2], i * experts.nb[1])
        b.gf.expand(v)
        views.append(v)
    moe_out = views[0]
    for v in views[1:]:
        moe_out = g.add(moe_out, v)
        b.gf.expand(moe_out)
    if n_used == 1:
        moe_out = g.cont(moe_out)
    b.cb(moe_out, "ffn_moe_out", il)
    return moe_out
