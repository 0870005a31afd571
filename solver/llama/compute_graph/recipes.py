"""Architecture recipes: what each architecture's graph function does, over shared blocks.

An ``ArchRecipe`` records what distinguishes one architecture's graph function in
``src/models/<arch>.cpp`` from the shared pre-norm transformer template; ``RECIPES`` maps
architecture names to recipes, and ``build_generic`` is the template. It builds, in
llama.cpp's order: the inputs (``_graph_inputs``), each layer (``_layer``: norm, attention,
the last layer's output-row selection, residual, norm, FFN, residual), then the output head
(``_output_head``: final norm, logits, soft-cap, the graph's outputs).

To add an architecture the template fits, add a recipe; one whose layer differs (another
attention or a recurrent block) gets its own build function, made of the same blocks
(``inputs``, ``attention``, ``ffn``), as the recipe's ``build`` (``qwen35``: gated DeltaNet).
A layer kind beside attention in the template's layer is the recipe's ``recurrent`` block
(``kimi-linear``: KDA between MLA layers; ``lfm2``: gated short convolutions;
``granitehybrid``: Mamba-2).

An architecture without a recipe is refused (``ComputeNotModelled``), never priced as
another. Popular ones the pinned llama.cpp loads (``src/llama-arch.cpp``) that have none
here, as of 2026-12 (qwen3vl/-moe, glm-dsa, step35, mimo2, glm5-next, minimax-m3,
deepseek4, glm4, olmo2, lfm2/-moe, exaone4, granitehybrid, ernie4_5-moe, cohere2,
hunyuan-moe and phi3 were on this list and are modelled now):

==============  ================================================  ===========================
architecture    models (Hugging Face)                             graph function
==============  ================================================  ===========================
gemma2          google/gemma-2-2b-it, -9b-it, -27b-it             gemma2.cpp: soft-capping
qwen2vl         Qwen/Qwen2.5-VL-3B/7B/32B/72B-Instruct            qwen2vl.cpp: M-RoPE
gemma3n         google/gemma-3n-E2B-it, -E4B-it                   gemma3n.cpp: AltUp, Laurel
falcon-h1       tiiuae/Falcon-H1-7B-Instruct, -34B-Instruct       falcon-h1.cpp: Mamba-2
nemotron_h      nvidia/NVIDIA-Nemotron-Nano-9B-v2, -12B-v2        nemotron-h.cpp (dense FFNs)
==============  ================================================  ===========================

Some are refused earlier, by their memory: the hybrids ``hparams.UNMODELLED_HYBRID_ARCHS``
(qwen4exp, kimi-k3, bailingmoe3, minimax-01) and the caches of ``SPECIAL_MEMORY_ARCHS``
(hy_v4, dots3note, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from solver.ggml import ops as g
from solver.ggml.ops import Tensor
from solver.llama.compute_graph.attention import (
    layer_sinks,
    mla_attention,
    rope_factors,
    self_attention,
)
from solver.llama.compute_graph.builder import GraphBuilder
from solver.llama.compute_graph.deepseek4 import build_deepseek4
from solver.llama.compute_graph.dsa import SharedTopK, dsa_attention
from solver.llama.compute_graph.ffn import (
    GATING_SIGMOID,
    GATING_SOFTMAX,
    GATING_SOFTMAX_WEIGHT,
    MoeRouting,
    ffn_block,
)
from solver.llama.compute_graph.gemma4 import build_gemma4
from solver.llama.compute_graph.glm5_next import build_glm5_next
from solver.llama.compute_graph.inputs import (
    MROPE_POSITIONS,
    AttnInputs,
    build_attn_inp,
    build_inp_attn_scale,
    build_inp_embd,
    build_inp_out_ids,
    build_inp_pos,
    deepstack_slice,
)
from solver.llama.compute_graph.kimi_linear import check_kimi_layers, kda_block
from solver.llama.compute_graph.lfm2 import check_lfm2_layers, shortconv_block
from solver.llama.compute_graph.llama4 import build_llama4
from solver.llama.compute_graph.mamba2 import check_mamba2_layers, mamba2_block
from solver.llama.compute_graph.msa import msa_attention
from solver.llama.compute_graph.nemotron_h import build_nemotron_h
from solver.llama.compute_graph.output import logits
from solver.llama.compute_graph.qwen3next import build_qwen3next
from solver.llama.compute_graph.qwen35 import build_qwen35
from solver.llama.compute_graph.recurrent import RsInputs, build_rs_inputs


@dataclass(frozen=True)
class ArchRecipe:
    """What distinguishes one architecture's graph function from the shared layer template."""

    # "kv" | "iswa" | "mla" | "dsa" (MLA over the indexer's top-k) | "msa" (GQA over the
    # indexer's top-k blocks)
    attention: str = "kv"
    iswa_if_window: bool = False  # olmo2: "iswa" where the file has sliding-window layers
    pre_norms: bool = True  # olmo2: no norm before attention or before the FFN
    layer_norm: bool = False  # cohere2: LayerNorm (LLM_NORM) where the others RMS-norm
    parallel: bool = False  # cohere2: attention and the FFN both read the normed input
    rope: bool = True
    no_rope_layer_step: int = 0  # smollm3: layers il with (il + 1) % step == 0 skip RoPE
    rope_swa_layers_only: bool = False  # exaone4: with iswa attention, full layers skip RoPE
    qk_norms_first: bool = False  # exaone4: Q and K normed before either is roped
    qk_norms_after_rope: bool = False  # hunyuan-moe: both roped, then K normed, then Q
    shared_expert_first: bool = False  # hunyuan-moe: the shared MLP built before the experts
    rope_factors: bool = False  # llama/mistral3: model.get_rope_factors (per-layer duplicate)
    q_scale_after_rope: bool = False  # gemma3: Qcur = ggml_scale(Qcur, f_attention_scale)
    post_attn_norm: bool = False  # gemma: attn_post_norm before the residual add
    post_ffn_norm: bool = False  # gemma: ffn_post_norm (il = -1) before the residual add
    post_ffn_norm_in_layer: bool = False  # glm4: the same normed as the layer's (il)
    attn_post_norm_as_ffn_norm: bool = False  # gpt-oss: attn_post_norm is the FFN's pre-norm
    ffn_act: str = "silu"  # dense FFN activation
    moe_act: str = "silu"
    gating: int = GATING_SOFTMAX  # the router's gating function (GATING_*)
    # whether the architecture's load_hparams reads {arch}.expert_gating_func, ``gating``
    # being only its default then (deepseek2.cpp, glm4-moe.cpp, step35.cpp...); elsewhere the
    # graph passes a fixed function to build_moe_ffn and llama.cpp ignores the GGUF's key
    gating_from_gguf: bool = False
    moe_norm_w: bool | None = True  # None: from {arch}.expert_weights_norm
    tok_scale_sqrt_embd: bool = False  # gemma: inputs scaled by sqrt(n_embd)
    out_ids_after_loop: bool = False  # gpt-oss: rows selected after the last layer
    h_nextn_output: str = ""  # "" | "norm" (deepseek2) | "pre_norm" (gpt-oss)
    shared_expert_gate: bool = False  # qwen2moe: sigmoid gate on the shared expert
    sinks: bool = False  # gpt-oss attention sinks
    qk_norm_full: bool = False  # minimax-m2: Q/K normed over all heads, before the reshape
    # qwen3vl: ggml_rope_multi with IMRoPE, llama_hparams::n_pos_per_embd() positions a token
    rope_positions: int = 1
    # glm4: M-RoPE (4 positions a token) where the file has rope sections (GLM-4.1V's text)
    mrope_if_sections: bool = False
    rope_factors_full_only: bool = False  # step35: sliding layers rope without the factors
    head_gate: bool = False  # step35: attention output times sigmoid(attn_gate x), per head
    # the block of a layer with recurrent state instead of attention (kimi-linear's KDA), and
    # the check that the file's layers are what the recipe builds (reserve's default else)
    recurrent: Callable[[GraphBuilder, RsInputs, int, Tensor], Tensor] | None = None
    check: Callable[[GraphBuilder], None] | None = None
    # the architecture's own graph function, instead of build_generic (it checks its layers)
    build: Callable[[GraphBuilder], None] | None = None
    output_norm: str = "output_norm"  # lfm2: token_embd_norm (LLM_TENSOR_OUTPUT_NORM_LFM2)
    # lfm2: both residual adds take the residual stream as their first operand, which orders
    # the last layer's output-row selection of the stream before the mixer's (ggml visits a
    # node's sources in order)
    residual_first: bool = False
    # phi3: only the FFN's residual add takes the stream first (attention's takes the branch
    # first); the allocator reuses the first operand in place, so the order moves buffers
    ffn_residual_first: bool = False
    rope_if_finetuned: bool = False  # granitehybrid: RoPE only where rope.scaling.finetuned


_DEEPSEEK2 = ArchRecipe(
    attention="mla", moe_norm_w=None, h_nextn_output="norm", gating_from_gguf=True
)
# lfm2.cpp (lfm2moe.cpp builds the same graph): short-convolution layers (recurrent) between
# qwen3-like attention layers; a dense FFN, or sigmoid routing (the GGUF's gating) with
# normalised weights and the selection bias; the final norm is token_embd_norm. LFM2/LFM2.5
# 230M-2.6B and LFM2-8B-A1B / LFM2.5-8B-A1B: LiquidAI's own GGUFs (LiquidAI/LFM2-350M-GGUF:
# 5,369 downloads last month on its card), unsloth/LFM2-8B-A1B-GGUF (17.3K quant downloads,
# llmrun.dev), mudler's APEX and NobodyWho's LFM2.5 GGUFs
_LFM2 = ArchRecipe(
    recurrent=shortconv_block,
    check=check_lfm2_layers,
    gating=GATING_SIGMOID,
    gating_from_gguf=True,
    output_norm="token_embd_norm",
    residual_first=True,
)

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
    "deepseek2": _DEEPSEEK2,
    # llama_model_mistral4::graph is deepseek2's; its one difference (F32 precision of the
    # expert down-projection's input, llama-graph.cpp; ffn.py) changes no CPU buffer, but
    # CUDA refuses that MUL_MAT_ID
    "mistral4": _DEEPSEEK2,
    "deepseek32": ArchRecipe(
        attention="dsa", moe_norm_w=None, h_nextn_output="norm", gating_from_gguf=True
    ),
    # glm-dsa.cpp: deepseek32's graph but for the "shared" indexer layers (dsa.SharedTopK);
    # sigmoid routing when the GGUF names no gating function
    "glm-dsa": ArchRecipe(
        attention="dsa",
        gating=GATING_SIGMOID,
        gating_from_gguf=True,
        moe_norm_w=None,
        h_nextn_output="norm",
    ),
    # glm4-moe.cpp: sigmoid routing when the GGUF names no gating function
    "glm4moe": ArchRecipe(
        attn_post_norm_as_ffn_norm=True,
        gating=GATING_SIGMOID,
        gating_from_gguf=True,
        moe_norm_w=None,
        h_nextn_output="norm",
    ),
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
    "deepseek4": ArchRecipe(build=build_deepseek4),
    "glm5-next": ArchRecipe(build=build_glm5_next),
    "qwen35": ArchRecipe(build=build_qwen35),
    "qwen35moe": ArchRecipe(build=build_qwen35),
    "llama4": ArchRecipe(build=build_llama4),
    "gemma4": ArchRecipe(build=build_gemma4),
    "qwen3next": ArchRecipe(build=build_qwen3next),
    "nemotron_h_moe": ArchRecipe(build=build_nemotron_h),
    # kimi-linear.cpp: KDA layers (recurrent) between MLA layers without RoPE; sigmoid
    # routing (the GGUF's gating) with normalised weights plus an ungated shared expert
    "kimi-linear": ArchRecipe(
        attention="mla",
        rope=False,
        gating_from_gguf=True,
        recurrent=kda_block,
        check=check_kimi_layers,
    ),
    # minimax-m2.cpp: qwen3moe's layer with full-width Q/K norms and sigmoid routing with the
    # selection bias; build_moe_ffn's norm_w is true (the GGUF writes the gating function)
    "minimax-m2": ArchRecipe(qk_norm_full=True, gating=GATING_SIGMOID, gating_from_gguf=True),
    # qwen3vl.cpp / qwen3vlmoe.cpp: qwen3's / qwen3moe's layer with IMRoPE (4 positions a
    # token; ggml_rope_multi has ggml_rope's shape) and the deepstack slices of the input rows
    # added after the first n_deepstack_layers layers (build_generic, from the hparams)
    "qwen3vl": ArchRecipe(rope_positions=MROPE_POSITIONS),
    "qwen3vlmoe": ArchRecipe(rope_positions=MROPE_POSITIONS),
    # step35.cpp: full and sliding layers of their own head counts (iswa), per-head Q/K norms,
    # rope factors on full layers only, the head-wise gate; sigmoid routing by default with
    # the GGUF's weight normalisation, plus the shared expert; the output rows picked after
    # the last layer, whose output seeds MTP (embeddings_nextn_masked is false in serving)
    "step35": ArchRecipe(
        attention="iswa",
        rope_factors=True,
        rope_factors_full_only=True,
        head_gate=True,
        gating=GATING_SIGMOID,
        gating_from_gguf=True,
        moe_norm_w=None,
        out_ids_after_loop=True,
        h_nextn_output="pre_norm",
    ),
    # minimax-m3.cpp: per-head Q/K norms, MSA past the leading dense layers (msa: dense
    # attention without flash attention or with a unified cache of several sequences),
    # swigluoai dense FFN, experts and ungated shared expert, sigmoid routing
    "minimax-m3": ArchRecipe(
        attention="msa",
        ffn_act="swiglu_oai",
        moe_act="swiglu_oai",
        gating=GATING_SIGMOID,
        gating_from_gguf=True,
        moe_norm_w=None,
    ),
    # mimo2.cpp: full and sliding-window layers (iswa) with their own KV heads, V narrower
    # than K, optional sinks, the attention output scaled by f_attn_value_scale (the template
    # scales it wherever the hparams have one); a dense FFN or sigmoid-routed experts with
    # normalised weights and the selection bias, as the layer's tensors say. Sigmoid whatever
    # the GGUF says: llama_model_mimo2 never reads expert_gating_func and its graph passes
    # LLAMA_EXPERT_GATING_FUNC_TYPE_SIGMOID to build_moe_ffn
    "mimo2": ArchRecipe(attention="iswa", sinks=True, gating=GATING_SIGMOID),
    # seed-oss.cpp: qwen2's layer (Q/K/V biases, no wo bias) with attn_post_norm as the
    # FFN's pre-norm. Seed-OSS-36B-Instruct and its fine-tunes (NousResearch/Hermes-4.3-36B);
    # GGUFs by unsloth, bartowski, lmstudio-community (huggingface.co/models?other=seed_oss)
    "seed_oss": ArchRecipe(attn_post_norm_as_ffn_norm=True),
    # smollm3.cpp: llama's layer without RoPE on every 4th (hparams.n_no_rope_layer_step = 4,
    # fixed by its loader). SmolLM3-3B: bartowski/HuggingFaceTB_SmolLM3-3B-GGUF, unsloth's and
    # ggml-org's GGUFs (huggingface.co/models?search=SmolLM3 3B GGUF)
    "smollm3": ArchRecipe(no_rope_layer_step=4),
    # glm4.cpp: Q/K/V biases, norms after attention and after the FFN (both the layer's),
    # gate and up fused in ffn_up (LLM_FFN_SWIGLU over its halves), M-RoPE where the file has
    # sections. GLM-4-32B-0414 / GLM-4-9B-0414 (bartowski/THUDM_GLM-4-32B-0414-GGUF,
    # unsloth's GGUFs) and GLM-4.1V / GLM-4.6V-Flash text towers
    "glm4": ArchRecipe(
        post_attn_norm=True,
        post_ffn_norm=True,
        post_ffn_norm_in_layer=True,
        ffn_act="swiglu",
        mrope_if_sections=True,
    ),
    # olmo2.cpp: no pre-norms, Q/K normed over all heads before the reshape, norms after
    # attention (the layer's) and after the FFN (il -1), iswa attention where the file has
    # sliding windows (OLMo 3). OLMo 2 / OLMo 3 7B and 32B (lmstudio-community/
    # Olmo-3-7B-Instruct-GGUF, allenai's and unsloth's GGUFs)
    "olmo2": ArchRecipe(
        iswa_if_window=True,
        pre_norms=False,
        qk_norm_full=True,
        post_attn_norm=True,
        post_ffn_norm=True,
    ),
    "lfm2": _LFM2,
    "lfm2moe": _LFM2,
    # exaone4.cpp: olmo2's layer with per-head Q/K norms (both before either RoPE), llama3
    # rope factors, and with sliding windows (the 32B: 64 layers) RoPE on the sliding layers
    # only. EXAONE 4.0 32B / 1.2B (LG's own LGAI-EXAONE/EXAONE-4.0-32B-GGUF)
    "exaone4": ArchRecipe(
        iswa_if_window=True,
        pre_norms=False,
        post_attn_norm=True,
        post_ffn_norm=True,
        rope_factors=True,
        rope_swa_layers_only=True,
        qk_norms_first=True,
    ),
    # granite-hybrid.cpp: Mamba-2 layers (recurrent) between attention layers that rope only
    # where rope.scaling.finetuned says so (Granite 4.0 H: NoPE; Bamba: RoPE); Granite's
    # residual and logit scales (the template applies them wherever the hparams have them);
    # a dense FFN, or softmax routing with normalised weights plus the shared expert. Granite
    # 4.0 H Small/Tiny/Micro/1B/350M: lmstudio-community's granite-4.0-h-small/-tiny GGUFs
    # (r/LocalLLaMA 1nzpjz8), unsloth's Granite-4.0-H GGUFs and their requantisations
    "granitehybrid": ArchRecipe(
        recurrent=mamba2_block, check=check_mamba2_layers, rope_if_finetuned=True
    ),
    # ernie4-5-moe.cpp: llama's layer; past the dense leading layers, softmax-routed experts
    # (normalised weights, the optional selection bias) plus an ungated shared expert.
    # ERNIE-4.5-21B-A3B (lmstudio-community/ERNIE-4.5-21B-A3B-PT-GGUF; huggingface.co/models?
    # other=base_model:quantized:baidu/ERNIE-4.5-21B-A3B-PT)
    "ernie4_5-moe": ArchRecipe(),
    # dots1.cpp: qwen3moe's layer with the GGUF's gating, weight normalisation and scale, the
    # selection bias and the ungated shared expert past the dense leading layers.
    # dots.llm1 (rednote-hilab; no GGUF download listing found to rank it)
    "dots1": ArchRecipe(moe_norm_w=None, gating_from_gguf=True),
    # bailingmoe2.cpp: dots1's layer over a fused QKV (half-rotary heads). Ling-mini-2.0 /
    # Ling-flash-2.0 / Ring-flash-2.0 (inclusionAI; NVIDIA's Megatron Bridge supports them; no
    # GGUF download listing found to rank them)
    "bailingmoe2": ArchRecipe(moe_norm_w=None, gating_from_gguf=True),
    # apertus.cpp: llama's layer with per-head Q/K norms (both before either RoPE; their
    # biases unused), rope factors, and an ungated FFN with the xIELU activation (a unary op).
    # Apertus 8B / 70B (swiss-ai; no GGUF download listing found to rank them)
    "apertus": ArchRecipe(rope_factors=True, qk_norms_first=True, ffn_act="xielu"),
    # hunyuan-moe.cpp: per-head Q/K norms after RoPE (K's first), the shared MLP built before
    # the softmax-routed experts (normalised weights) and added after them. Hunyuan-A13B
    # (tencent/Hunyuan-A13B-Instruct-GGUF)
    "hunyuan-moe": ArchRecipe(
        rope_factors=True, qk_norms_after_rope=True, shared_expert_first=True
    ),
    # cohere2.cpp: LayerNorm, attention and the FFN side by side, iswa attention with RoPE
    # (and the rope factors) on the sliding layers only, the logits scaled (f_logit_scale).
    # Command R7B / Command A (CohereLabs' c4ai-command-r7b-12-2024 and command-a GGUFs)
    "cohere2": ArchRecipe(
        attention="iswa",
        layer_norm=True,
        parallel=True,
        rope_factors=True,
        rope_swa_layers_only=True,
    ),
    # phi3.cpp: llama's layer with the fused QKV and gate/up (LLM_FFN_SWIGLU over ffn_up's
    # halves), LongRoPE factors, Q scaled after RoPE, the FFN's residual add with the stream
    # first (ggml_add(residual, cur)). Phi-4 and Phi-4-mini (microsoft/phi-4-gguf,
    # unsloth/phi-4-GGUF, unsloth/Phi-4-mini-instruct-GGUF)
    "phi3": ArchRecipe(
        rope_factors=True, q_scale_after_rope=True, ffn_act="swiglu", ffn_residual_first=True
    ),
}


@dataclass(frozen=True)
class _GraphInputs:
    """The inputs every layer reads."""

    attn: AttnInputs
    inp_pos: Tensor
    attn_scale: Tensor | None  # temperature tuning, when the model has it
    out_ids: Tensor
    attention: str  # the recipe's attention kind, resolved for this file (olmo2)
    routing: MoeRouting
    rs: RsInputs | None  # the recurrent state's copy input, for recipes with such layers
    top_k: SharedTopK  # dsa: the last full indexer's top-k, which shared layers reuse


def build_generic(b: GraphBuilder, recipe: ArchRecipe) -> None:
    """The pre-norm transformer template shared by llama, qwen*, gemma3, deepseek2, gpt-oss."""
    tok_scale = math.sqrt(b.hp.n_embd) if recipe.tok_scale_sqrt_embd else 1.0
    inp_embd = inp_l = build_inp_embd(b, tok_scale)
    ins = _graph_inputs(b, recipe)
    for il in range(b.hp.n_layer):
        b.gf.segment = 1 + il
        inp_l = _layer(b, recipe, ins, il, inp_l)
        if il < b.hp.n_deepstack_layers:
            inp_l = g.add(inp_l, deepstack_slice(b, inp_embd, il))
    b.gf.segment = 1 + b.hp.n_layer
    _output_head(b, recipe, inp_l, ins.out_ids)


def _graph_inputs(b: GraphBuilder, recipe: ArchRecipe) -> _GraphInputs:
    """The inputs after the embedding, in llama.cpp's order; and the model's MoE routing."""
    hp = b.hp
    attn_scale = build_inp_attn_scale(b)
    positions = recipe.rope_positions
    if recipe.mrope_if_sections and hp.use_mrope:
        positions = MROPE_POSITIONS
    inp_pos = build_inp_pos(b, positions)  # not in the graph without RoPE
    rs = build_rs_inputs(b) if recipe.recurrent is not None else None
    kind = recipe.attention
    if recipe.iswa_if_window and any(layer.is_swa for layer in hp.layers):
        kind = "iswa"
    attn = build_attn_inp(b, kind)
    out_ids = build_inp_out_ids(b)
    routing = MoeRouting.of(
        b,
        recipe.gating,
        from_gguf=recipe.gating_from_gguf,
        norm_w=recipe.moe_norm_w,
        act=recipe.moe_act,
    )
    return _GraphInputs(attn, inp_pos, attn_scale, out_ids, kind, routing, rs, SharedTopK())


def _layer(b: GraphBuilder, recipe: ArchRecipe, ins: _GraphInputs, il: int, inp_l: Tensor):
    """One transformer layer: the residual stream in, the residual stream out."""
    if recipe.parallel:
        return _parallel_layer(b, recipe, ins, il, inp_l)
    inp_sa = cur = inp_l
    if recipe.pre_norms:
        cur = b.build_norm(inp_l, b.lw(il, "attn_norm"), b.lw(il, "attn_norm", "bias"), il)
    cur = _attention(b, recipe, ins, il, cur)
    if il == b.hp.n_layer - 1 and not recipe.out_ids_after_loop:
        cur = g.get_rows(cur, ins.out_ids)
        inp_sa = g.get_rows(inp_sa, ins.out_ids)
    if recipe.post_attn_norm:
        cur = b.build_norm(cur, b.lw(il, "post_attention_norm"), None, il)
    cur = ffn_inp = _residual(b, recipe, inp_sa, cur)
    if recipe.attn_post_norm_as_ffn_norm:
        cur = b.build_norm(ffn_inp, b.lw(il, "post_attention_norm"), None, il)
    elif recipe.pre_norms:
        cur = b.build_norm(ffn_inp, b.lw(il, "ffn_norm"), None, il)
    cur = ffn_block(
        b, cur, il, recipe.ffn_act, ins.routing, recipe.shared_expert_gate,
        recipe.shared_expert_first,
    )  # fmt: skip
    if recipe.post_ffn_norm:
        norm_il = il if recipe.post_ffn_norm_in_layer else -1
        cur = b.build_norm(cur, b.lw(il, "post_ffw_norm"), None, norm_il)
    cur = _residual(b, recipe, ffn_inp, cur, ffn=True)
    b.cb(cur, "l_out", il)
    return cur


def _residual(
    b: GraphBuilder, recipe: ArchRecipe, stream: Tensor, cur: Tensor, *, ffn: bool = False
) -> Tensor:
    """The residual add, its operands in the architecture's order (``ffn``: the add after
    the FFN); the branch scaled first where the model has a residual scale (granite)."""
    if b.hp.f_residual_scale:
        cur = g.scale(cur)
    stream_first = recipe.residual_first or (ffn and recipe.ffn_residual_first)
    return g.add(stream, cur) if stream_first else g.add(cur, stream)


def _parallel_layer(
    b: GraphBuilder, recipe: ArchRecipe, ins: _GraphInputs, il: int, inp_l: Tensor
) -> Tensor:
    """cohere2.cpp's layer: one norm, then attention and the FFN on its output, both added to
    the residual stream (the FFN's first); the last layer's rows picked from all three."""
    normed = b.build_norm(inp_l, b.lw(il, "attn_norm"), None, il, rms=not recipe.layer_norm)
    cur = _attention(b, recipe, ins, il, normed)
    if il == b.hp.n_layer - 1 and not recipe.out_ids_after_loop:
        cur, inp_l, normed = (g.get_rows(t, ins.out_ids) for t in (cur, inp_l, normed))
    ffn_out = ffn_block(b, normed, il, recipe.ffn_act, ins.routing, recipe.shared_expert_gate)
    cur = g.add(g.add(ffn_out, inp_l), cur)
    b.cb(cur, "l_out", il)
    return cur


def _attention(
    b: GraphBuilder, recipe: ArchRecipe, ins: _GraphInputs, il: int, cur: Tensor
) -> Tensor:
    """The recipe's attention block for layer il (its recurrent block on a recurrent layer)."""
    if recipe.recurrent is not None and b.hp.rs_layers[il]:
        return recipe.recurrent(b, ins.rs, il, cur)
    if recipe.attention == "mla":
        return mla_attention(b, ins.attn, il, cur, ins.inp_pos, ins.attn_scale, recipe.rope)
    if recipe.attention == "dsa":
        return dsa_attention(b, ins.attn, il, cur, ins.inp_pos, ins.top_k)
    if recipe.attention == "msa":
        return msa_attention(b, ins.attn, il, cur, ins.inp_pos)
    cur = self_attention(
        b,
        ins.attn,
        il,
        cur,
        ins.inp_pos,
        kind=ins.attention,
        rope=_layer_ropes(b, recipe, ins, il),
        rope_freqs=_rope_factors(b, recipe, il),
        q_scale_after_rope=recipe.q_scale_after_rope,
        attn_scale=ins.attn_scale,
        sinks=layer_sinks(b, il) if recipe.sinks else None,
        qk_norm_full=recipe.qk_norm_full,
        head_gate=recipe.head_gate,
        qk_norms_first=recipe.qk_norms_first,
        qk_norms_after_rope=recipe.qk_norms_after_rope,
    )
    if b.hp.f_attn_value_scale:
        cur = g.scale(cur)
    return cur


def _layer_ropes(b: GraphBuilder, recipe: ArchRecipe, ins: _GraphInputs, il: int) -> bool:
    """Whether layer il applies RoPE (smollm3: not on every no_rope_layer_step-th layer;
    exaone4 with sliding windows: only on the sliding layers; granitehybrid: as
    rope.scaling.finetuned says)."""
    step = recipe.no_rope_layer_step
    if recipe.rope_if_finetuned and not b.hp.rope_finetuned:
        return False
    if recipe.rope_swa_layers_only and ins.attention == "iswa" and not b.hp.layers[il].is_swa:
        return False
    return recipe.rope and not (step and (il + 1) % step == 0)


def _rope_factors(b: GraphBuilder, recipe: ArchRecipe, il: int) -> Tensor | None:
    """The layer's rope factors where the recipe applies them (step35: full layers only)."""
    if not recipe.rope_factors or (recipe.rope_factors_full_only and b.hp.layers[il].is_swa):
        return None
    return rope_factors(b, il)


def _output_head(b: GraphBuilder, recipe: ArchRecipe, cur: Tensor, out_ids: Tensor) -> None:
    """Final norm and logits; marks the outputs (llm_graph_result::set_outputs)."""
    h_nextn = None
    if recipe.h_nextn_output == "pre_norm":
        h_nextn = cur
    if recipe.out_ids_after_loop:
        cur = g.get_rows(cur, out_ids)
    norm = recipe.output_norm
    rms = not recipe.layer_norm
    cur = b.build_norm(cur, b.w(f"{norm}.weight"), b.w(f"{norm}.bias"), -1, rms=rms)
    if recipe.h_nextn_output == "norm":
        h_nextn = cur
    logits(b, cur, h_nextn, bias=True, softcap=True)
