"""Sources of the model catalogue; run to rebuild ``data/models/*.json``.

    python -m solver.gguf.catalogue_sources

Every blueprint below is a model's published config.json hyperparameters; each names where the
numbers were read. Published file sizes are what quantizers list on their Hugging Face pages
(GB = 10^9 bytes, rounded by the listing, so a +-0.05 GB rounding is expected on top of any
real difference); each catalogue file records the difference from fit's own total.
"""

from __future__ import annotations

from solver.gguf.blueprint import Arch, Blueprint, RopeScaling, Tokenizer
from solver.gguf.catalogue_build import CatalogueSource, PublishedSize, write_catalogue
from solver.gguf.quant_mix import NamedMix

COMMON_QUANTS = ("Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0")
BIG_QUANTS = (*COMMON_QUANTS, "Q3_K_M", "Q2_K", "IQ4_XS")

GPT_OSS_SHARED = {
    "architecture": Arch.GPT_OSS,
    "n_embd": 2880,
    "n_vocab": 201088,
    "context_length": 131072,
    "n_head": 64,
    "n_head_kv": 8,
    "head_dim": 64,
    "n_ff": 2880,
    "rms_norm_eps": 1e-5,
    "rope_theta": 150000.0,
    "rope_scaling": RopeScaling(type="yarn", factor=32.0, original_context_length=4096),
    "attention_bias": True,
    "n_expert_used": 4,
    "n_ff_exp": 2880,
    "sliding_window": 128,
    "tokenizer": Tokenizer(model="gpt2", pre="gpt-4o"),
}

# DeepSeek-V3's topology, which V3.2 keeps (it adds the DSA indexer and keeps the MTP block)
DEEPSEEK_V3 = {
    "n_layer": 61,
    "n_embd": 7168,
    "n_vocab": 129280,
    "context_length": 163840,
    "n_head": 128,
    "n_head_kv": 128,
    "n_ff": 18432,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "rope_scaling": RopeScaling(
        type="yarn", factor=40.0, original_context_length=4096, yarn_log_multiplier=0.1
    ),
    "n_expert": 256,
    "n_expert_used": 8,
    "n_ff_exp": 2048,
    "n_expert_shared": 1,
    "leading_dense_layers": 3,
    "expert_gating": "sigmoid",
    "expert_weights_scale": 2.5,
    "expert_weights_norm": True,
    "expert_groups": 8,
    "expert_groups_used": 4,
    "expert_probs_bias": True,
    "q_lora_rank": 1536,
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "tokenizer": Tokenizer(model="gpt2", pre="deepseek-v3", bos_token_id=0, eos_token_id=1),
}

# GLM-5's topology (glm-dsa), which GLM-5.1 and GLM-5.2 keep: 744B-A40B, DSA on MLA, one MTP layer
GLM_5 = {
    "architecture": Arch.GLM_DSA,
    "n_layer": 78,
    "nextn_layers": 1,
    "n_embd": 6144,
    "n_vocab": 154880,
    "context_length": 202752,
    "n_head": 64,
    "n_head_kv": 64,
    "n_ff": 12288,
    "rms_norm_eps": 1e-5,
    "rope_theta": 1e6,
    "n_expert": 256,
    "n_expert_used": 8,
    "n_ff_exp": 2048,
    "n_expert_shared": 1,
    "leading_dense_layers": 3,
    "expert_gating": "sigmoid",
    "expert_weights_scale": 2.5,
    "expert_weights_norm": True,
    "expert_groups": 1,
    "expert_groups_used": 1,
    "expert_probs_bias": True,
    "q_lora_rank": 2048,
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 192,
    "qk_rope_head_dim": 64,
    "v_head_dim": 256,
    "indexer_n_head": 32,
    "indexer_head_size": 128,
    "indexer_top_k": 2048,
    "tokenizer": Tokenizer(model="gpt2", pre="glm4"),
}
# GLM-5.2's IndexShare: its config.json's indexer_types, full on layers 0 and 1 and then on
# every fourth layer from 2 (llama.cpp's GLM_5_2_DEFAULT_INDEXER_TYPES transcribes it)
GLM_5_2_INDEXER_TYPES = tuple(layer < 2 or (layer - 2) % 4 == 0 for layer in range(78))

# The GGUF header of Llama 3's 128256-token tokenizer (tokens, types, merges, template):
# bartowski/Meta-Llama-3.1-8B-Instruct-GGUF's Q4_K_M (4,920,739,232 B, the Hub's size in a public
# app's model list) less fit's llama-3-8b Q4_K_M tensors (4,912,898,048 B) and Llama 3.1's
# rope_freqs (64 F32)
LLAMA3_TOKENIZER_HEADER = 4_920_739_232 - 4_912_898_048 - 64 * 4

# The GGUF header of LFM2's 65536-token tokenizer: LiquidAI/LFM2-8B-A1B-GGUF's Q4_K_M
# (5,044,779,712 B, the Hub's size in a public app's model list) less fit's lfm2-8b-a1b Q4_K_M
# tensors (5,042,386,688 B)
LFM2_TOKENIZER_HEADER = 5_044_779_712 - 5_042_386_688

# EXAONE 4.0's 32B (exaone4); the 1.2B keeps its attention and vocabulary
EXAONE4_32B = {
    "architecture": Arch.EXAONE4,
    "n_layer": 64,
    "n_embd": 5120,
    "n_vocab": 102400,
    "context_length": 131072,
    "n_head": 40,
    "n_head_kv": 8,
    "head_dim": 128,
    "n_ff": 27392,
    "rms_norm_eps": 1e-5,
    "rope_theta": 1e6,
    "rope_scaling": RopeScaling(type="llama3", factor=16.0, original_context_length=8192),
    "qk_norm": True,
    "sliding_window": 4096,
    "tokenizer": Tokenizer(model="gpt2", pre="exaone4"),
}

QWEN3_TOKENIZER = Tokenizer(model="gpt2", pre="qwen2", bos_token_id=151643, eos_token_id=151645)
QWEN3_MOE_SHARED = {
    "architecture": Arch.QWEN3MOE,
    "n_vocab": 151936,
    "head_dim": 128,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1e6,
    "qk_norm": True,
    "n_expert": 128,
    "n_expert_used": 8,
    "tokenizer": QWEN3_TOKENIZER,
}

# Qwen3-VL's text towers (qwen3vl / qwen3vlmoe): Qwen3's layers with interleaved MRoPE over
# the whole 128-wide head, a 5e6 rope base, 262144 positions and three deepstack layers
QWEN3_VL_TEXT = {
    "n_vocab": 151936,
    "context_length": 262144,
    "head_dim": 128,
    "rms_norm_eps": 1e-6,
    "rope_theta": 5e6,
    "rope_sections": (24, 20, 20, 0),
    "qk_norm": True,
    "n_deepstack_layers": 3,  # len(vision_config.deepstack_visual_indexes): [8, 16, 24]
    "tokenizer": QWEN3_TOKENIZER,
}
QWEN3_VL_8B = {
    **QWEN3_VL_TEXT,
    "architecture": Arch.QWEN3VL,
    "n_layer": 36,
    "n_embd": 4096,
    "n_head": 32,
    "n_head_kv": 8,
    "n_ff": 12288,
}
QWEN3_VL_30B_A3B = {
    **QWEN3_VL_TEXT,
    "architecture": Arch.QWEN3VLMOE,
    "n_layer": 48,
    "n_embd": 2048,
    "n_head": 32,
    "n_head_kv": 4,
    "n_ff": 6144,
    "n_expert": 128,
    "n_expert_used": 8,
    "n_ff_exp": 768,
}
QWEN3_VL_SOURCE = (
    "InternLM/xtuner xtuner/v1/model/compose/qwen3_vl/qwen3_vl_config.py {text}; "
    "max_position_embeddings 262144, rope_theta 5e6, mrope_section [24, 20, 20] and the "
    "vision tower's deepstack_visual_indexes [8, 16, 24] there as well"
)
QWEN3_VL_NOTE = (
    "the text GGUF only (llama-server without --mmproj); the vision tower is a separate mmproj "
    "file. No published size of a Qwen3-VL GGUF was found to check the totals against"
)

# Qwen3.5/3.6 35B-A3B (qwen35moe): one text topology for both releases
QWEN35_MOE_35B = {
    "architecture": Arch.QWEN35MOE,
    "n_layer": 40,
    "n_embd": 2048,
    "n_vocab": 248320,
    "context_length": 262144,
    "n_head": 16,
    "n_head_kv": 2,
    "head_dim": 256,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1e7,
    "rope_dim": 64,  # partial_rotary_factor 0.25 of head_dim 256
    "rope_sections": (11, 11, 10, 0),
    "n_expert": 256,
    "n_expert_used": 8,
    "n_ff_exp": 512,
    "n_ff_shexp": 512,
    "ssm_d_conv": 4,
    "ssm_d_state": 128,
    "ssm_n_group": 16,
    "ssm_dt_rank": 32,
    "full_attention_interval": 4,
    "tokenizer": Tokenizer(model="gpt2", pre="qwen35", eos_token_id=248046, n_merges=247587),
}
QWEN35_MOE_35B_SOURCE = (
    "text_config as published for Qwen3.5-35B-A3B and Qwen3.6-35B-A3B (same topology): "
    "THUDM/slime scripts/models/qwen3.5-35B-A3B.sh (and qwen36-35B-A3B.sh, which sources it): "
    "40 layers, hidden 2048, 16 q / 2 kv heads of 256, rotary 0.25, rope base 1e7, rms eps "
    "1e-6, vocab 248320, 256 experts top-8 of width 512, a gated shared expert of 512, linear "
    "attention every layer but each 4th with 16 key / 32 value heads of 128 and conv kernel 4; "
    "the Qwen3.6-35B-A3B model card as quoted on mera.a-ai.ru/en/industrial/submits/181 "
    "(10 x (3 x Gated DeltaNet + 1 x Gated Attention), rotary dim 64, 262144 native context); "
    "mrope_section [11, 11, 10] and max_position_embeddings 262144 from an "
    "mlx-community/Qwen3.5-35B-A3B-4bit text_config copy; tokenizer pre qwen35, 247587 merges, "
    "eos 248046 from a published qwen35moe GGUF's llama.cpp log (ggml-org/llama.cpp#25121)"
)
# Qwen3.5-122B-A10B (qwen35moe): the 35B-A3B's layout, wider and deeper
QWEN35_MOE_122B = {
    **QWEN35_MOE_35B,
    "n_layer": 48,
    "n_embd": 3072,
    "n_head": 32,
    "n_ff_exp": 1024,
    "n_ff_shexp": 1024,
    "ssm_dt_rank": 64,  # linear_num_value_heads
}
QWEN35_MOE_122B_SOURCE = (
    "Qwen/Qwen3.5-122B-A10B text_config as copied in alibaba/InferSim "
    "hf_configs/qwen3.5-122B-A10B_config.json (commit 86bc550): 48 layers, hidden 3072, 32 q / "
    "2 kv heads of 256, rotary 0.25 with mrope_section [11, 11, 10], rope base 1e7, rms eps "
    "1e-6, vocab 248320, 256 experts top-8 of width 1024, a shared expert of 1024, linear "
    "attention every layer but each 4th with 16 key / 64 value heads of 128 and conv kernel 4, "
    "262144 positions, untied embeddings; tokenizer as the 35B-A3B's (same vocabulary and eos); "
    "the same sizes (ssm inner 8192, state 128, dt rank 64, 16 groups, vocab 248320, eos "
    "248046, 122.11 B parameters) in llama.cpp's log of unsloth's Q4_K_M (ggml-org/llama.cpp#20575)"
)
QWEN35_MOE_NOTES = (
    "no MTP layer: the published GGUFs of the first upload (unsloth's Q8_0 of 36.9 GB) carry "
    "none; the pinned converter appends one (mtp_num_hidden_layers 1, +0.9 GB at Q8_0) that "
    "llama.cpp skips unless --spec-type draft-mtp",
    "{arch}.attention.recurrent_layers is not written: the loader derives the same 3:1 pattern "
    "from full_attention_interval",
    "text model only: the vision tower ships as a separate mmproj GGUF",
    "bartowski/Qwen_Qwen3.6-35B-A3B-GGUF Q4_K_M is 22,285,080,192 bytes (a file-size gate in a "
    "public evaluation script), 5.3 % above llama-quantize's standard Q4_K_M mix modelled "
    "here: that upload keeps more tensors at higher precision (not modelled); Unsloth's UD- "
    "mixes are not modelled either: their per-tensor types are published only in the GGUF "
    "headers on the Hub (what is public: Qwen3.6's UD-Q4_K_XL is 21.28 GiB, "
    "joryirving/home-ops#9398; its UD-Q4_K_M keeps ffn_down_exps at Q5_K beside Q4_K "
    "gate/up, gittensor-ai-lab/sparkinfer#224; Unsloth's Qwen3.5 benchmark page says which "
    "tensor kinds stay high, not which types)",
)

# Llama 4 Scout (llama4): 16 experts top-1 plus a shared expert in every layer, 3 chunked
# attention layers with RoPE then 1 global without, llama3 rope factors
LLAMA4_SCOUT = Blueprint(
    architecture=Arch.LLAMA4,
    name="Llama-4-Scout-17B-16E-Instruct",
    n_layer=48,
    n_embd=5120,
    n_vocab=202048,
    context_length=10485760,
    n_head=40,
    n_head_kv=8,
    head_dim=128,
    n_ff=16384,  # intermediate_size_mlp: written as feed_forward_length, no dense layer uses it
    rms_norm_eps=1e-5,
    rope_theta=500000.0,
    rope_scaling=RopeScaling(
        type="llama3", factor=16.0, original_context_length=8192, high_freq_factor=1.0
    ),
    n_expert=16,
    n_expert_used=1,
    n_ff_exp=8192,
    moe_layer_step=1,
    tokenizer=Tokenizer(model="gpt2", pre="llama4", bos_token_id=200000, eos_token_id=200008),
)
LLAMA4_SCOUT_SOURCE = (
    "meta-llama/Llama-4-Scout-17B-16E-Instruct text_config as published and quoted in public "
    "code: Shameerisb/llama-4-scout_Implementation_Pytorch configs/text_config.py (vocab "
    "202048, hidden 5120, intermediate_size 8192 per expert, intermediate_size_mlp 16384, 48 "
    "layers, 40 q / 8 kv heads of 128, rms eps 1e-5, rope theta 500000, 16 local experts "
    "top-1, qk norm, no RoPE every 4th layer, attention chunk 8192); aws-neuron "
    "neuronx-distributed-inference's Llama 4 Scout test config (max_position_embeddings "
    "10485760); interleave_moe_layer_step 1 and rope_scaling llama3 (factor 16, low/high "
    "frequency factors 1, original 8192) as quoted from the published config in public tests; "
    "bos 200000 and eos ids [200001, 200007, 200008] from a Llama-4-Scout-derived config "
    "(eos 200008, <|eot|>, assumed the GGUF's)"
)

# Gemma 4 (gemma4): sliding layers at head_dim 256, a global layer (head 512, proportional
# rope over a quarter of it) every period-th and the last; tied embeddings, soft-capped logits
GEMMA4_SHARED = {
    "architecture": Arch.GEMMA4,
    "n_vocab": 262144,
    "head_dim": 512,  # global_head_dim
    "gemma4_head_dim_swa": 256,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1e6,
    "rope_theta_swa": 1e4,
    "tied_embeddings": True,
    "final_logit_softcapping": 30.0,
    "tokenizer": Tokenizer(model="llama", pre="default", bos_token_id=2, eos_token_id=1),
}
GEMMA4_LARGE_SOURCE = (
    "text_config of the published Gemma 4 31B and 26B-A4B config.json files (nvidia/"
    "Gemma-4-31B-IT-NVFP4 and bg-digitalservices/Gemma-4-26B-A4B-it-NVFP4A16, transcribed in "
    "a public C++ test header): 31B: 60 layers, hidden 5376, 32 heads, 16 sliding / 4 global "
    "KV heads, attention_k_eq_v, intermediate 21504; 26B-A4B: 30 layers, hidden 2816, 16 "
    "heads, 8 / 2 KV heads, attention_k_eq_v, dense MLP 2112 beside 128 experts top-8 of "
    "width 704; both: head_dim 256, global_head_dim 512, sliding window 1024, layer_types 5 "
    "sliding + 1 full, rope theta 1e6 (full, proportional, partial 0.25) / 1e4 (sliding), "
    "262144 positions, vocab 262144, soft-cap 30, rms eps 1e-6, tied embeddings"
)
GEMMA4_NOTES = (
    "text model only: the vision (and audio) towers ship as a separate mmproj GGUF",
    "the converter's tokenizer.ggml.model is 'gemma4'; the blueprint writes 'llama' (the "
    "same token count, scores and types; fit's tokenizer record has no gemma4 kind)",
)

# Qwen3-Next-80B-A3B (qwen3next): 3:1 gated DeltaNet / gated attention, 512 experts top-10
QWEN3_NEXT_80B = {
    "architecture": Arch.QWEN3NEXT,
    "n_layer": 48,
    "n_embd": 2048,
    "n_vocab": 151936,
    "context_length": 262144,
    "n_head": 16,
    "n_head_kv": 2,
    "head_dim": 256,
    "n_ff": 5120,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1e7,
    "rope_dim": 64,  # partial_rotary_factor 0.25 of head_dim 256
    "n_expert": 512,
    "n_expert_used": 10,
    "n_ff_exp": 512,
    "n_ff_shexp": 512,
    "ssm_d_conv": 4,
    "ssm_d_state": 128,
    "ssm_n_group": 16,
    "ssm_dt_rank": 32,
    "full_attention_interval": 4,
    "tokenizer": QWEN3_TOKENIZER,
}
QWEN3_NEXT_80B_SOURCE = (
    "THUDM/slime scripts/models/qwen3-next-80B-A3B.sh: 48 layers, hidden 2048, ffn 5120, 16 q "
    "/ 2 kv heads of 256, rotary 0.25, rope base 1e7, norm eps 1e-6, vocab 151936, 512 experts "
    "top-10 of width 512, a gated shared expert of 512, gated attention; Qwen3-Next config.json "
    "copies (huggingface.co QuantTrio/Qwen3-Coder-Next-E336, ISTA-DASLab Qwen3-Coder-Next "
    "configs, the Qwen/Qwen3-Next-80B-A3B-Instruct model config excerpt): linear attention "
    "with 16 key / 32 value heads of 128, conv kernel 4, full_attention_interval 4, "
    "max_position_embeddings 262144, untied embeddings; tokenizer as Qwen3's"
)
# NVIDIA Nemotron 3 Nano 30B-A3B (nemotron_h_moe): 23 Mamba-2, 23 MoE, 6 attention layers
NEMOTRON_3_NANO_30B = {
    "architecture": Arch.NEMOTRON_H_MOE,
    "n_layer": 52,
    "layer_pattern": "MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME",
    "n_embd": 2688,
    "n_vocab": 131072,
    "context_length": 1 << 20,  # the converter's (GraniteHybridModel without RoPE)
    "n_head": 32,
    "n_head_kv": 2,
    "head_dim": 128,
    "rms_norm_eps": 1e-5,
    "n_expert": 128,
    "n_expert_used": 6,
    "n_ff_exp": 1856,
    "n_ff_shexp": 3712,
    "n_expert_shared": 1,
    "expert_weights_norm": True,
    "expert_weights_scale": 2.5,
    "expert_groups": 1,
    "expert_probs_bias": True,
    "ssm_d_conv": 4,
    "ssm_d_state": 128,
    "ssm_n_group": 8,
    "ssm_dt_rank": 64,
    "mamba_head_dim": 64,
    "tokenizer": Tokenizer(model="gpt2", pre="default", bos_token_id=1, eos_token_id=2),
}
NEMOTRON_3_NANO_30B_SOURCE = (
    "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16 config.json as copied in public repositories: "
    "52 layers with hybrid_override_pattern MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME, "
    "hidden 2688, 32 q / 2 kv heads of 128, layer_norm_epsilon 1e-5, vocab 131072, 128 routed "
    "experts top-6 of 1856 plus one shared expert of 3712, routed_scaling_factor 2.5, "
    "norm_topk_prob, n_group 1, Mamba-2 with 64 heads of 64, state 128, 8 groups, conv kernel "
    "4, untied embeddings, bos 1 / eos 2; the same values in THUDM/slime "
    "scripts/models/nemotron-nano-30B-A3B.sh; 31.6B parameters on its model listings"
)

MXFP4_NOTE = (
    "MXFP4 is gpt-oss as published: the converter keeps the MXFP4 experts and stores the other "
    "2-D weights as Q8_0, the same types llama-quantize's MXFP4_MOE mix gives"
)


# MiniMax-M2 (minimax-m2): config.json as published (copied in public quantization notes)
MINIMAX_M2 = {
    "architecture": Arch.MINIMAX_M2,
    "n_layer": 62,
    "n_embd": 3072,
    "n_vocab": 200064,
    "context_length": 196608,
    "n_head": 48,
    "n_head_kv": 8,
    "head_dim": 128,
    "n_ff": 1536,  # intermediate_size: the converter writes it as both FFN widths
    "rms_norm_eps": 1e-6,
    "rope_theta": 5e6,
    "rope_dim": 64,  # rotary_dim
    "n_expert": 256,
    "n_expert_used": 8,
    "n_ff_exp": 1536,
    "expert_gating": "sigmoid",
    "expert_probs_bias": True,  # use_routing_bias
    "tokenizer": Tokenizer(model="gpt2", pre="minimax-m2"),
}
MINIMAX_M2_SOURCE = (
    "MiniMaxAI/MiniMax-M2 config.json (MiniMaxM2ForCausalLM) as copied in a public W8A8 "
    "quantization guide: 62 layers, hidden 3072, 48 q / 8 kv heads of 128, rotary_dim 64, "
    "rope_theta 5e6, rms eps 1e-6, vocab 200064, 196608 positions, 256 local experts top-8 "
    "of intermediate_size 1536, sigmoid scoring with routing bias, qk_norm_type per_layer, "
    "no shared expert, untied embeddings"
)


# Step-3.5-Flash (step35): config.json as published (Step3p5ForCausalLM)
STEP35_FLASH = {
    "architecture": Arch.STEP35,
    "n_layer": 45,
    "n_embd": 4096,
    "n_vocab": 128896,
    "context_length": 262144,
    "n_head": 64,
    "n_head_swa": 96,  # attention_other_setting.num_attention_heads
    "n_head_kv": 8,  # num_attention_groups (both layer kinds)
    "head_dim": 128,
    "n_ff": 11264,  # the dense layers 0-2 and the MTP blocks
    "rms_norm_eps": 1e-5,
    "rope_theta": 5e6,  # rope_theta[0] (full layers); the sliding layers' is 1e4
    "rope_theta_swa": 1e4,
    "rope_scaling": RopeScaling(
        type="llama3", factor=2.0, original_context_length=131072, high_freq_factor=32.0
    ),
    "qk_norm": True,  # use_qk_norm
    "n_expert": 288,
    "n_expert_used": 8,
    "n_ff_exp": 1280,
    "n_ff_shexp": 1280,  # share_expert_dim
    "leading_dense_layers": 3,  # moe_layers_enum starts at 3
    "expert_probs_bias": True,  # use_moe_router_bias
    "expert_weights_scale": 3.0,  # moe_router_scaling_factor
    "expert_weights_norm": True,  # norm_expert_weight
    "sliding_window": 512,
    "step35_full_period": 4,  # layer_types: full_attention on 0, 4, ..., 44, sliding between
    "nextn_layers": 3,  # num_nextn_predict_layers (layers 45-47: sliding, dense, own head)
    "tokenizer": Tokenizer(model="gpt2", pre="default", bos_token_id=0, eos_token_id=1),
}
STEP35_FLASH_SOURCE = (
    "stepfun-ai/Step-3.5-Flash config.json (Step3p5ForCausalLM) as public tools and model "
    "pages copy it: 45 layers, hidden 4096, vocab 128896, 262144 positions, head_dim 128, 64 "
    "query heads on full-attention layers and 96 on sliding ones (attention_other_setting), 8 KV "
    "groups, layer_types full every 4th from layer 0 over all 48 layers (rope_theta 5e6 full / "
    "1e4 sliding, partial_rotary_factors 0.5 / 1.0), sliding_window 512, llama3 rope scaling "
    "factor 2 from 131072 (high_freq_factor 32) on full layers, intermediate_size 11264, "
    "moe_layers_enum 3-44, 288 experts top-8 of 1280 plus share_expert_dim 1280, sigmoid "
    "routing with router bias, norm_expert_weight, moe_router_scaling_factor 3.0, use_qk_norm, "
    "use_head_wise_attn_gate, rms eps 1e-5, 3 MTP layers, untied, bos 0 / eos 1; MTP layers "
    "45-47 dense with their own shared head (AMD Quark W8A8 card's module table)"
)

# MiniMax-M3 (minimax-m3): the text_config of MiniMaxAI/MiniMax-M3's config.json
# (MiniMaxM3SparseForConditionalGeneration; the vision tower goes to an mmproj file)
MINIMAX_M3 = {
    "architecture": Arch.MINIMAX_M3,
    "n_layer": 60,
    "n_embd": 6144,
    "n_vocab": 200064,
    "context_length": 1048576,
    "n_head": 64,
    "n_head_kv": 4,
    "head_dim": 128,
    "n_ff": 12288,  # dense_intermediate_size: the converter's feed_forward_length (layers 0-2)
    "rms_norm_eps": 1e-6,
    "rope_theta": 5e6,
    "rope_dim": 64,  # rotary_dim
    "n_expert": 128,
    "n_expert_used": 4,
    "n_ff_exp": 3072,  # intermediate_size; shared_intermediate_size 3072 = one expert's width
    "n_expert_shared": 1,
    "leading_dense_layers": 3,  # moe_layer_freq starts 0, 0, 0
    "expert_gating": "sigmoid",
    "expert_weights_scale": 2.0,  # routed_scaling_factor
    "expert_weights_norm": True,  # conversion/minimax.py writes it true
    "expert_probs_bias": True,  # use_routing_bias
    "indexer_n_head": 4,  # sparse_num_index_heads
    "indexer_head_size": 128,  # sparse_index_dim
    "indexer_top_k": 16,  # sparse_topk_blocks
    "indexer_block_size": 128,  # sparse_block_size
    "indexer_local_blocks": 1,  # sparse_local_block
    "tokenizer": Tokenizer(model="gpt2", pre="minimax-m2"),
}
MINIMAX_M3_SOURCE = (
    "MiniMaxAI/MiniMax-M3 config.json text_config (MiniMaxM3SparseForConditionalGeneration) "
    "as public ports copy it verbatim (an MLX port's test fixture of the released config): 60 "
    "layers, hidden 6144, 64 q / 4 kv heads of 128, rotary_dim 64, rope_theta 5e6, rms eps "
    "1e-6, vocab 200064, 1048576 positions, dense_intermediate_size 12288 on layers 0-2 "
    "(moe_layer_freq), 128 local experts top-4 of intermediate_size 3072 plus one shared of "
    "3072, sigmoid scoring with routing bias, routed_scaling_factor 2.0, swigluoai, per-head "
    "qk norm, untied; sparse_attention_config: 4 index heads of 128, top-16 blocks of 128, 1 "
    "local block, sparse layers 3-59 (sparse_attention_freq); num_mtp_modules declared but no "
    "MTP weights released"
)

# Mistral Small 4 (mistral4: deepseek2's MLA and MoE layout), the text model of the
# Mistral3ForConditionalGeneration checkpoint
MISTRAL_SMALL_4 = {
    "architecture": Arch.MISTRAL4,
    "n_layer": 36,
    "n_embd": 4096,
    "n_vocab": 131072,
    "context_length": 1048576,
    "n_head": 32,
    "n_head_kv": 32,
    "n_ff": 12288,  # intermediate_size: written, but no layer is dense (first_k_dense_replace 0)
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "rope_scaling": RopeScaling(
        type="yarn", factor=128.0, original_context_length=8192, yarn_log_multiplier=0.1
    ),
    "n_expert": 128,
    "n_expert_used": 4,
    "n_ff_exp": 2048,
    "n_expert_shared": 1,
    "expert_weights_scale": 1.0,
    "expert_weights_norm": True,
    "expert_groups": 8,
    "expert_groups_used": 1,
    "q_lora_rank": 1024,
    "kv_lora_rank": 256,
    "qk_nope_head_dim": 64,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "tokenizer": Tokenizer(model="gpt2", pre="tekken", bos_token_id=1, eos_token_id=2),
}
MISTRAL_SMALL_4_SOURCE = (
    "Mistral4Config of NVIDIA NeMo AutoModel (docs.nvidia.com/nemo/automodel, "
    "nemo_automodel.components.models.mistral4.configuration), registered for Mistral Small "
    "4's text_config: 36 layers, hidden 4096, 32 heads, q_lora_rank 1024, kv_lora_rank 256, "
    "qk_nope 64 + qk_rope 64, v_head 128, 128 routed experts top-4 of 2048 plus one shared, "
    "n_group 8 / topk_group 1, vocab 131072, 1048576 positions, rms eps 1e-6; yarn factor 128 "
    "over 8192 as in transformers' Mistral4 params tests"
)


# Kimi Linear 48B-A3B (kimi-linear): KDA layers with one MLA layer (NoPE) every fourth and last
KIMI_LINEAR_48B = {
    "architecture": Arch.KIMI_LINEAR,
    "n_layer": 27,
    "n_embd": 2304,
    "n_vocab": 163840,
    "context_length": 1048576,  # model_max_length
    "n_head": 32,
    "n_head_kv": 32,
    "n_ff": 9216,  # the dense first layer
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "n_expert": 256,
    "n_expert_used": 8,
    "n_ff_exp": 1024,
    "n_expert_shared": 1,
    "leading_dense_layers": 1,
    "expert_gating": "sigmoid",
    "expert_weights_scale": 2.446,
    "kda_head_dim": 128,
    "ssm_d_conv": 4,
    "full_attention_layers": (4, 8, 12, 16, 20, 24, 27),
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "tokenizer": Tokenizer(model="gpt2", pre="kimi-k2", eos_token_id=163586),
}
KIMI_LINEAR_48B_SOURCE = (
    "moonshotai/Kimi-Linear-48B-A3B-Instruct config.json as public tools pin it "
    "(DEPENDED_FIELDS digests, llama.cpp-fork test fixtures): 27 layers, hidden 2304, 32 "
    "heads, KDA heads 32 x 128 with short convolutions of 4 on every layer but full_attn_layers "
    "[4, 8, 12, 16, 20, 24, 27] (MLA, NoPE: kv_lora_rank 512, no q_lora, nope 128 + rope 64, "
    "v 128), first layer dense (9216), then 256 experts top-8 of 1024 plus one shared, "
    "sigmoid routing scaled 2.446, vocab 163840, rms eps 1e-5, untied"
)


# DeepSeek V4 Flash (deepseek4): hyper-connections (4 streams), one shared KV head of 512,
# grouped low-rank output, compressed KV (none on the first two layers, then 4 and 128 in turn),
# hash-routed first three layers, 256 experts top-6 of 2048 plus one shared
DEEPSEEK_V4_FLASH = Blueprint(
    architecture=Arch.DEEPSEEK4,
    name="DeepSeek-V4-Flash",
    n_layer=43,
    n_embd=4096,
    n_vocab=129280,
    context_length=1048576,
    n_head=64,
    n_head_kv=1,
    head_dim=512,
    rope_dim=64,  # qk_rope_head_dim
    rms_norm_eps=1e-6,
    rope_theta=10000.0,
    rope_scaling=RopeScaling(type="yarn", factor=16.0, original_context_length=65536),
    n_expert=256,
    n_expert_used=6,
    n_ff_exp=2048,
    n_expert_shared=1,
    expert_gating="sqrtsoftplus",
    expert_weights_scale=1.5,
    expert_weights_norm=True,
    q_lora_rank=1024,
    o_groups=8,
    o_lora_rank=1024,
    hc_mult=4,
    hc_sinkhorn_iters=20,
    hc_eps=1e-6,
    # the first 43 of config.json's 44 ratios: the 44th is the MTP layer's, which the converter
    # writes too and the loader ignores (it reads block_count entries)
    compress_ratios=(0, 0, *(4, 128) * 20, 4),
    compress_rope_theta=160000.0,
    hash_layers=3,
    indexer_n_head=64,
    indexer_head_size=128,
    indexer_top_k=512,
    sliding_window=128,
    swiglu_limit=10.0,
    tokenizer=Tokenizer(
        model="gpt2", pre="deepseek-v3", bos_token_id=0, eos_token_id=1, n_merges=127741
    ),
)
DEEPSEEK_V4_FLASH_SOURCE = (
    "deepseek-ai/DeepSeek-V4-Flash config.json as copied in chenwainuo/mtp-tree-attention-"
    "evolution configs/deepseek-v4-flash-config.json (commit 93fc479): 43 layers, hidden 4096, "
    "64 heads of 512 with one KV head, rope 64 of them (theta 1e4, yarn x16 over 65536; "
    "compress_rope_theta 160000), q_lora_rank 1024, o_groups 8 of o_lora_rank 1024, hc_mult 4 "
    "with 20 Sinkhorn iterations, compress_ratios [0, 0, 4, 128, ..., 4, 0] (44: the last is "
    "the MTP layer's), indexer 64 heads of 128 with top-512, sliding window 128, 256 experts "
    "top-6 of 2048 plus one shared, sqrtsoftplus routing scaled 1.5 with norm_topk_prob, "
    "swiglu_limit 10, num_hash_layers 3, num_nextn_predict_layers 1, vocab 129280, 1048576 "
    "positions, untied; bos 0 / eos 1 and 127741 merges from llama.cpp's log of Unsloth's "
    "upload (noonghunna/club-3090#1106)"
)
# The converter (conversion/deepseek.py DeepseekV4Model) keeps the checkpoint's BF16 tensors
# BF16: the router (ffn.gate.weight, BF16 in the safetensors), which llama-quantize leaves alone
DSV4_ROUTER = (("ffn_gate_inp", "BF16"),)
DSV4_CONVERTED = (
    "llama-quantize {ftype} of the pinned converter's GGUF (FP8 weights as Q8_0, experts as "
    "MXFP4, the BF16 router kept BF16)"
)
# ggml-org/convert models/deepseek-v4-flash/convert.sh (commit 9491811): --pure MXFP4_MOE
# with these --tensor-type rules, for its Q2_K (experts' down stays MXFP4) and Q2_K_S
GGML_ORG_Q2 = (
    ("token_embd.weight", "Q8_0"),
    ("output.weight", "Q6_K"),
    ("attn_", "Q8_0"),
    ("shexp", "Q8_0"),
    ("hc_attn", "Q8_0"),
    ("hc_ffn", "Q8_0"),
    ("indexer", "Q8_0"),
    ("output_hc", "Q8_0"),
)
GGML_ORG_SOURCE = (
    "ggml-org/convert models/deepseek-v4-flash/convert.sh (commit 9491811), the recipe of "
    "ggml-org/DeepSeek-V4-Flash-GGUF's {label}; no published file size found"
)
# antirez/deepseek-v4-gguf README's per-tensor-class table (files for the ds4 engine, with
# llama.cpp's tensor names): Q8_0 attention projections, shared experts and output; F16
# embedding, router, indexer, compressors and hyper-connection mixes; F32 norms and biases
DS4_F16 = (("token_embd.weight", "F16"), ("indexer", "F16"), ("compressor", "F16"), ("hc_", "F16"))
DS4_SOURCE = (
    "antirez/deepseek-v4-gguf README (its quantization-recipe table, as read on hugingapi.com "
    "and quantamrkt.com mirrors): {file}"
)
DEEPSEEK_V4_FLASH_MIXES = (
    *(
        NamedMix(
            label=label,
            file_type=label,
            imatrix=label.startswith("IQ"),
            stored_types=DSV4_ROUTER,
            source=DSV4_CONVERTED.format(ftype="MXFP4_MOE" if label == "MXFP4" else label),
        )
        for label in ("MXFP4", *BIG_QUANTS)
    ),
    *(
        NamedMix(
            label=label,
            file_type="MXFP4",
            pure=True,
            tensor_types=(
                *GGML_ORG_Q2,
                ("ffn_down_exps", down),
                ("ffn_gate_exps", "Q2_K"),
                ("ffn_up_exps", "Q2_K"),
            ),
            stored_types=DSV4_ROUTER,
            source=GGML_ORG_SOURCE.format(label=label.removeprefix("GGML-")),
        )
        for label, down in (("GGML-Q2_K", "MXFP4"), ("GGML-Q2_K_S", "Q2_K"))
    ),
    *(
        NamedMix(
            label=label,
            file_type="Q8_0",
            pure=True,
            tensor_types=(*DS4_F16, *experts),
            stored_types=(("ffn_gate_inp", "F16"),),
            source=DS4_SOURCE.format(file=file),
        )
        for label, file, experts in (
            (
                "DS4-Q2",
                "DeepSeek-V4-Flash-IQ2XXS-w2Q2K-AProjQ8-SExpQ8-OutQ8-chat-v2.gguf",
                (("ffn_(gate|up)_exps", "IQ2_XXS"), ("ffn_down_exps", "Q2_K")),
            ),
            (
                "DS4-Q4",
                "DeepSeek-V4-Flash-Q4KExperts-F16HC-F16Compressor-F16Indexer-Q8Attn-Q8Shared-"
                "Q8Out-chat-v2.gguf",
                (("_exps", "Q4_K"),),
            ),
        )
    ),
)
DEEPSEEK_V4_FLASH_NOTES = (
    "no MTP layer: the pinned converter drops the checkpoint's mtp.* tensors from the main "
    "GGUF (--mtp writes them to a separate mtp- file, as ggml-org's uploads do), so "
    "block_count is 43 and fit's refusal of deepseek4 MTP layers never meets a published file",
    "the hash-routing tables (ffn_gate_tid2eid, 3 x 6 x 129280) are I32 and never quantized; "
    "attn_output_a is stored 2-D (8 groups side by side) and the loader views it 3-D",
    "llama-quantize quantizes the 2-D F32 hyper-connection mixes and compressor position "
    "embeddings like any weight (Q8_0 in MXFP4, the file type's default elsewhere)",
    "DS4-Q2 and DS4-Q4 are antirez's files for the ds4 engine (80.8 and 153.3 GiB published); "
    "their totals check the tensor shapes against published bytes",
    "Unsloth's UD- quants of it are not modelled: their per-tensor types are published only in "
    "the GGUF headers on the Hub; no size of Unsloth's or ggml-org's files was found published. "
    "teamblobfish's Q8_0 for a llama.cpp fork (~282 GiB at 8.50 BPW, ggml-org/llama.cpp#22319) "
    "agrees with this Q8_0 (281.40 GiB), not asserted: approximate, and not loadable upstream",
    "tokenizer pre assumed deepseek-v3 (the same 129280 tokens and 127741 merges as V3)",
)


# Llama 3 8B and Llama 2 7B/13B/70B: the dense models of the public speed corpus's largest
# sources (llama-bench tables of XiongjieDai/GPU-Benchmarks-on-LLM-Inference); published sizes
# are llama-bench's ``size`` column there (GiB).
LLAMA_BENCH_SIZES = "llama-bench's size column in XiongjieDai/GPU-Benchmarks-on-LLM-Inference"
LLAMA2_SHARED = {
    "architecture": Arch.LLAMA,
    "n_vocab": 32000,
    "context_length": 4096,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tokenizer": Tokenizer(model="llama", pre="default", bos_token_id=1, eos_token_id=2),
}
LLAMA2_SOURCE = (
    "Llama 2 (Touvron et al. 2023): 7B as microsoft/Olive examples/llm/config.py "
    "(meta-llama/Llama-2-7b-chat-hf: hidden 4096, ffn 11008, 32 layers, 32 q / 32 kv heads, "
    "vocab 32000, 4096 context, eps 1e-5); 13B as the module print in Retruth/deontic "
    "nlp_models/llama2/README.md (hidden 5120, ffn 13824, 40 layers); 70B: hidden 8192, ffn "
    "28672, 80 layers, 64 q / 8 kv heads (grouped-query attention, the paper's table 1)"
)
LLAMA_SMALL_SOURCES = [
    CatalogueSource(
        name="llama-3-8b",
        blueprint=Blueprint(
            architecture=Arch.LLAMA,
            name="Meta-Llama-3-8B",
            n_layer=32,
            n_embd=4096,
            n_vocab=128256,
            context_length=8192,
            n_head=32,
            n_head_kv=8,
            n_ff=14336,
            rms_norm_eps=1e-5,
            rope_theta=500000.0,
            tokenizer=Tokenizer(model="gpt2", pre="llama-bpe", bos_token_id=128000),
        ),
        hyperparameters_source=(
            "vulkomilev/oumi configs/recipes/llama3_1/README.md, 8B (hidden 4096, ffn 14336, "
            "32 layers, 32 q / 8 kv heads, vocab 128256, untied, trained at 8192); rope theta "
            "500000 and eps 1e-5 as Meta-Llama-3-8B's config (no rope scaling in Llama 3)"
        ),
        quants=(*COMMON_QUANTS, "F16"),
        default_quant="Q4_K_M",
        published={
            "Q4_K_M": PublishedSize(bytes=round(4.58 * 2**30), source=LLAMA_BENCH_SIZES),
            "F16": PublishedSize(bytes=round(14.96 * 2**30), source=LLAMA_BENCH_SIZES),
        },
    ),
    *(
        CatalogueSource(
            name=f"llama-2-{size}",
            blueprint=Blueprint(name=f"Llama-2-{size}", **shape, **LLAMA2_SHARED),
            hyperparameters_source=LLAMA2_SOURCE,
            quants=("Q4_0", "Q4_K_M", "Q8_0", "F16"),
            default_quant="Q4_0",
            published=published,
        )
        for size, shape, published in (
            (
                "7b",
                {"n_layer": 32, "n_embd": 4096, "n_head": 32, "n_head_kv": 32, "n_ff": 11008},
                {"Q4_0": PublishedSize(bytes=round(3.56 * 2**30), source=LLAMA_BENCH_SIZES)},
            ),
            (
                "13b",
                {"n_layer": 40, "n_embd": 5120, "n_head": 40, "n_head_kv": 40, "n_ff": 13824},
                {},
            ),
            (
                "70b",
                {"n_layer": 80, "n_embd": 8192, "n_head": 64, "n_head_kv": 8, "n_ff": 28672},
                {},
            ),
        )
    ),
]

SOURCES: list[CatalogueSource] = [
    CatalogueSource(
        name="gpt-oss-120b",
        blueprint=Blueprint(name="gpt-oss-120b", n_layer=36, n_expert=128, **GPT_OSS_SHARED),
        hyperparameters_source=(
            "openai/gpt-oss gpt_oss/torch/model.py ModelConfig defaults (the 120b checkpoint: "
            "36 layers, 128 experts, top-4, hidden 2880, 64 q / 8 kv heads of 64, sliding "
            "window 128, rope theta 150000, yarn x32 from 4096); max_position_embeddings 131072 "
            "and rms_norm_eps 1e-5 as in openai/gpt-oss-20b's config.json "
            "(EchoCog/gpt-oss-20b docs/gpt-oss-20b-architecture.md)"
        ),
        quants=("MXFP4",),
        default_quant="MXFP4",
        published={
            "MXFP4": PublishedSize(
                bytes=round(59.02 * 2**30),
                source="ggml-org/gpt-oss-120b-GGUF mxfp4: 59.02 GiB of tensors in llama-bench "
                "(community.frame.work/t/will-the-ai-max-395-128gb-be-able-to-run-gpt-oss-120b/"
                "73280/26)",
            )
        },
        notes=(MXFP4_NOTE,),
    ),
    CatalogueSource(
        name="gpt-oss-20b",
        blueprint=Blueprint(name="gpt-oss-20b", n_layer=24, n_expert=32, **GPT_OSS_SHARED),
        hyperparameters_source=(
            "openai/gpt-oss-20b config.json as summarised in EchoCog/gpt-oss-20b "
            "docs/gpt-oss-20b-architecture.md and ParagEkbote/hf-model-inspector "
            "model_inspection_report.md: 24 layers, 32 experts, top-4, hidden 2880, "
            "64 q / 8 kv heads of 64, sliding window 128, rope theta 150000, yarn x32 from "
            "4096, max_position_embeddings 131072, vocab 201088, rms_norm_eps 1e-5"
        ),
        quants=("MXFP4",),
        default_quant="MXFP4",
        published={
            "MXFP4": PublishedSize(
                bytes=12_100_000_000,
                source="bartowski/openai_gpt-oss-20b-GGUF README: gpt-oss-20b-MXFP4.gguf 12.1GB",
            )
        },
        notes=(MXFP4_NOTE,),
    ),
    CatalogueSource(
        name="qwen3-30b-a3b",
        blueprint=Blueprint(
            name="Qwen3-30B-A3B",
            n_layer=48,
            n_embd=2048,
            context_length=40960,
            n_head=32,
            n_head_kv=4,
            n_ff=6144,
            n_ff_exp=768,
            **QWEN3_MOE_SHARED,
        ),
        hyperparameters_source=(
            "Qwen/Qwen3-30B-A3B config.json, copy in citsjtu2020/LLM-Prof sglang/Model_Config.md"
        ),
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        published={
            quant: PublishedSize(
                bytes=size,
                source="bartowski/Qwen_Qwen3-30B-A3B-GGUF README (llama.cpp b5200, imatrix), "
                "mirrored at model.aibase.com/zh/models/details/1924737621108723712",
            )
            for quant, size in (
                ("Q8_0", 32_480_000_000),
                ("Q6_K", 25_100_000_000),
                ("Q5_K_M", 21_740_000_000),
            )
        },
    ),
    CatalogueSource(
        name="qwen3-coder-30b-a3b",
        blueprint=Blueprint(
            name="Qwen3-Coder-30B-A3B-Instruct",
            n_layer=48,
            n_embd=2048,
            context_length=262144,
            n_head=32,
            n_head_kv=4,
            n_ff=5472,
            n_ff_exp=768,
            **{**QWEN3_MOE_SHARED, "rope_theta": 1e7},
        ),
        hyperparameters_source=(
            "Qwen/Qwen3-Coder-30B-A3B-Instruct config.json, copy in ztxz16/fastllm "
            "Qwen3-Coder-30B-A3B-Instruct/config.json"
        ),
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
    ),
    CatalogueSource(
        name="qwen3-235b-a22b",
        blueprint=Blueprint(
            name="Qwen3-235B-A22B",
            n_layer=94,
            n_embd=4096,
            context_length=40960,
            n_head=64,
            n_head_kv=4,
            n_ff=12288,
            n_ff_exp=1536,
            **QWEN3_MOE_SHARED,
        ),
        hyperparameters_source=(
            "zyzshishui/slime scripts/models/qwen3-235B-A22B.sh (94 layers, hidden 4096, "
            "ffn 12288, 64 q / 4 kv heads of 128, 128 experts top-8 of width 1536, vocab "
            "151936, rope 1e6, eps 1e-6); context 40960 as in the Qwen3 family configs "
            "(citsjtu2020/LLM-Prof sglang/Model_Config.md)"
        ),
        quants=BIG_QUANTS,
        default_quant="Q4_K_M",
    ),
    CatalogueSource(
        name="qwen3-32b",
        blueprint=Blueprint(
            architecture=Arch.QWEN3,
            name="Qwen3-32B",
            n_layer=64,
            n_embd=5120,
            n_vocab=151936,
            context_length=40960,
            n_head=64,
            n_head_kv=8,
            head_dim=128,
            n_ff=25600,
            rms_norm_eps=1e-6,
            rope_theta=1e6,
            qk_norm=True,
            tokenizer=QWEN3_TOKENIZER,
        ),
        hyperparameters_source=(
            "Qwen/Qwen3-32B config.json, copy in citsjtu2020/LLM-Prof sglang/Model_Config.md"
        ),
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
    ),
    CatalogueSource(
        name="qwen3-vl-8b",
        blueprint=Blueprint(name="Qwen3-VL-8B-Instruct", **QWEN3_VL_8B),
        hyperparameters_source=QWEN3_VL_SOURCE.format(
            text="Qwen3VLDense8BConfig: Qwen3-8B's text tower (xtuner/v1/model/dense/qwen3.py: "
            "36 layers, hidden 4096, ffn 12288, 32 q / 8 kv heads of 128, vocab 151936, rms "
            "eps 1e-6, untied embeddings)"
        ),
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        notes=(QWEN3_VL_NOTE,),
    ),
    CatalogueSource(
        name="qwen3-vl-30b-a3b",
        blueprint=Blueprint(name="Qwen3-VL-30B-A3B-Instruct", **QWEN3_VL_30B_A3B),
        hyperparameters_source=QWEN3_VL_SOURCE.format(
            text="Qwen3VLMoE30BA3Config; its text_config as transcribed from Qwen/"
            "Qwen3-VL-30B-A3B-Instruct config.json at commit 1fc78ad in a public Rust port's "
            "parser test: 48 layers, hidden 2048, 32 q / 4 kv heads of 128, 128 experts top-8 "
            "of width 768 (norm_topk_prob), intermediate 6144, vocab 151936, rms eps 1e-6, "
            "untied embeddings"
        ),
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        notes=(QWEN3_VL_NOTE,),
    ),
    CatalogueSource(
        name="glm-4.5-air",
        blueprint=Blueprint(
            architecture=Arch.GLM4MOE,
            name="GLM-4.5-Air",
            n_layer=46,
            nextn_layers=1,
            n_embd=4096,
            n_vocab=151552,
            context_length=131072,
            n_head=96,
            n_head_kv=8,
            head_dim=128,
            rope_dim=64,
            n_ff=10944,
            rms_norm_eps=1e-5,
            rope_theta=1e6,
            attention_bias=True,
            n_expert=128,
            n_expert_used=8,
            n_ff_exp=1408,
            n_expert_shared=1,
            leading_dense_layers=1,
            expert_gating="sigmoid",
            expert_weights_scale=1.0,
            expert_weights_norm=True,
            expert_groups=1,
            expert_groups_used=1,
            tokenizer=Tokenizer(model="gpt2", pre="glm4"),
        ),
        hyperparameters_source=(
            "vllm-project/vime scripts/models/glm4.5-106B-A12B.sh (1 dense + 45 MoE layers, "
            "hidden 4096, ffn 10944, 96 q / 8 kv heads of 128, qkv bias, rotary 0.5, 128 "
            "experts top-8 of width 1408, one shared expert, sigmoid router with expert bias, "
            "vocab 151552, rope 1e6); huggingface/transformers configuration_glm4_moe.py "
            "defaults (131072 context, eps 1e-5, n_group 1, norm_topk_prob); the NextN layer "
            "(blk.46, 803 tensors in all) as in the GLM-4.5-Air GGUF log in "
            "ggml-org/llama.cpp PR #14939"
        ),
        quants=BIG_QUANTS,
        default_quant="Q4_K_M",
        published={
            "Q8_0": PublishedSize(
                bytes=round(109.381 * 2**30),
                source="ubergarm/GLM-4.5-Air-GGUF README: baseline Q8_0 109.381 GiB (8.505 BPW)",
            )
        },
        notes=(
            "blk.46 is the NextN/MTP layer: in the file, not loaded unless MTP is enabled "
            "(glm4-moe.cpp marks it TENSOR_SKIP)",
            "routed_scaling_factor 1.0 assumed (not in the cited sources)",
        ),
    ),
    CatalogueSource(
        name="llama-3.3-70b",
        blueprint=Blueprint(
            architecture=Arch.LLAMA,
            name="Llama-3.3-70B-Instruct",
            n_layer=80,
            n_embd=8192,
            n_vocab=128256,
            context_length=131072,
            n_head=64,
            n_head_kv=8,
            n_ff=28672,
            rms_norm_eps=1e-5,
            rope_theta=500000.0,
            rope_scaling=RopeScaling(type="llama3", factor=8.0, original_context_length=8192),
            tokenizer=Tokenizer(model="gpt2", pre="llama-bpe", bos_token_id=128000),
        ),
        hyperparameters_source=(
            "vulkomilev/oumi configs/recipes/llama3_3/README.md (hidden 8192, ffn 28672, 80 "
            "layers, 64 q / 8 kv heads, vocab 128256, untied, 131072 context); rope theta "
            "500000, llama3 rope scaling x8 from 8192 and eps 1e-5 as in the Llama 3.1 configs "
            "(citsjtu2020/LLM-Prof sglang/Model_Config.md)"
        ),
        quants=(*BIG_QUANTS, "F16"),
        default_quant="Q4_K_M",
        published={
            quant: PublishedSize(
                bytes=size,
                source="bartowski's Llama-3.1-70B table (same shapes as 3.3) as quoted at "
                "ozeki.chat/p_8590-understanding-ai-model-files.html",
            )
            for quant, size in (
                ("Q8_0", 74_980_000_000),
                ("Q6_K", 57_890_000_000),
                ("Q5_K_M", 49_950_000_000),
                ("Q4_K_M", 42_520_000_000),
                ("IQ4_XS", 37_900_000_000),
                ("Q3_K_M", 34_270_000_000),
            )
        },
        notes=("llama3 rope scaling travels as the rope_freqs.weight tensor (64 F32 values)",),
    ),
    CatalogueSource(
        name="gemma-3-27b",
        blueprint=Blueprint(
            architecture=Arch.GEMMA3,
            name="gemma-3-27b-it",
            n_layer=62,
            n_embd=5376,
            n_vocab=262208,
            context_length=131072,
            n_head=32,
            n_head_kv=16,
            head_dim=128,
            n_ff=21504,
            rms_norm_eps=1e-6,
            rope_theta=1e6,
            rope_theta_swa=1e4,
            rope_scaling=RopeScaling(type="linear", factor=8.0),
            tied_embeddings=True,
            qk_norm=True,
            sliding_window=1024,
            tokenizer=Tokenizer(model="llama", pre="default", bos_token_id=2, eos_token_id=1),
        ),
        hyperparameters_source=(
            "google/gemma_pytorch gemma/config.py get_config_for_27b_v3 (62 layers, 32 q / 16 "
            "kv heads of 128, hidden 5376, ffn 5376*8//2, sliding window 1024 on 5 of 6 layers, "
            "rope 10k local / 1M global, x8 scaling, 131072 positions); vocab 262208 as in the "
            "gemma-3 text_config (e.g. google/gemma-3-4b-it config.json quoted in public code)"
        ),
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        notes=("text model only: the vision tower ships as a separate mmproj GGUF",),
    ),
    CatalogueSource(
        name="deepseek-v3",
        blueprint=Blueprint(architecture=Arch.DEEPSEEK2, name="DeepSeek-V3", **DEEPSEEK_V3),
        hyperparameters_source=(
            "huggingface/transformers configuration_deepseek_v3.py defaults (documented as "
            "DeepSeek-V3's) and zyzshishui/slime scripts/models/deepseek-v3.sh: 61 layers (3 "
            "dense), hidden 7168, ffn 18432, 128 heads, q/kv lora 1536/512, qk 128+64, v 128, "
            "256 experts top-8 of width 2048 in 8 groups (4 used), 1 shared, sigmoid router "
            "with expert bias, scaling 2.5, vocab 129280; 163840 positions with yarn x40 from "
            "4096 (mscale_all_dim 1.0) as in the published config.json quoted in public code"
        ),
        quants=BIG_QUANTS,
        default_quant="Q4_K_M",
        published={
            "Q4_K_M": PublishedSize(
                bytes=404_000_000_000,
                source="ollama library deepseek-v3 (Q4_K_M, older layout with attn_kv_b) listed "
                "as 404GB (ollama/ollama issue #11368)",
            )
        },
        notes=(
            "current converter layout: MLA split into attn_k_b / attn_v_b; the MTP layer is "
            "not converted (conversion/deepseek.py skip_mtp)",
        ),
    ),
    CatalogueSource(
        name="deepseek-v3.2",
        blueprint=Blueprint(
            architecture=Arch.DEEPSEEK32,
            name="DeepSeek-V3.2",
            **DEEPSEEK_V3,
            indexer_n_head=64,
            indexer_head_size=128,
            indexer_top_k=2048,
            nextn_layers=1,
        ),
        hyperparameters_source=(
            "DeepSeek-V3.2's config.json as tabulated in huggingface/transformers "
            "docs/DEEPSEEK_V32_API.md ('Official Model Configuration'): V3's topology (61 "
            "layers, hidden 7168, 128 heads, q/kv lora 1536/512, qk 128+64, v 128, 256 experts "
            "top-8 of 2048 plus 1 shared, 3 dense layers of 18432, vocab 129280, 163840 "
            "positions with yarn x40) plus the DSA indexer: index_n_heads 64, index_head_dim "
            "128, index_topk 2048 (the same defaults in hicann/cann-recipes-train's "
            "DeepSeekV32ModelArgs); one MTP layer (num_nextn_predict_layers 1)"
        ),
        quants=BIG_QUANTS,
        default_quant="Q4_K_M",
        notes=(
            "the pinned converter (conversion/deepseek.py DeepseekV32Model) keeps the MTP "
            "layer; llama.cpp skips it (but for its exp_probs_b) unless --spec-type draft-mtp",
            "no exact published GGUF file size found to check against (unsloth/DeepSeek-V3.2-"
            "GGUF's Q4_K_M is a 9-part set whose sizes were not found in public text; listings "
            "seen give estimates only)",
            "KV cache: the MLA cache (576 per token and layer) plus the lightning indexer's "
            "(128 per token and layer), both in the -ctk type",
        ),
    ),
    CatalogueSource(
        name="glm-5.1",
        blueprint=Blueprint(name="GLM-5.1", **GLM_5),
        hyperparameters_source=(
            "zai-org/GLM-5.1 config.json as quoted in a public model report (GlmMoeDsaForCausal"
            "LM): 78 layers (3 dense of 12288, then 256 experts top-8 of 2048 plus 1 shared, "
            "sigmoid router with e_score_correction_bias, n_group 1, scaling 2.5, normalised), "
            "hidden 6144, 64 heads, q/kv lora 2048/512, qk 192+64, v 256, index_n_heads 32, "
            "index_head_dim 128, index_topk 2048 (no indexer_types: every indexer full), vocab "
            "154880, 202752 positions, rope_theta 1e6, untied output, one MTP layer "
            "(num_nextn_predict_layers 1); the same report's safetensors list (753,864,139,008 "
            "parameters, blk.78 with eh_proj, enorm, hnorm and shared_head.norm, no MTP "
            "embedding or head) is fit's count to the parameter"
        ),
        quants=(*BIG_QUANTS, "BF16"),
        default_quant="Q4_K_M",
        published={
            "BF16": PublishedSize(
                bytes=round(1404.406 * 2**30),
                source="ubergarm/GLM-5.1-GGUF README: baseline BF16 1404.406 GiB (16.003 BPW)",
            ),
            "Q8_0": PublishedSize(
                bytes=round(746.302 * 2**30),
                source="ubergarm/GLM-5.1-GGUF README: baseline Q8_0 746.302 GiB (8.504 BPW)",
            ),
        },
        notes=(
            "GLM-5 publishes the same topology (744B-A40B, 78 layers, DSA): its files have "
            "these sizes too",
            "blk.78 is the MTP layer: in the file, skipped by llama.cpp unless --spec-type "
            "draft-mtp (but for its exp_probs_b), as ubergarm notes ('unused blk.78/indexer/"
            "nextn tensors')",
            "KV cache: the MLA cache (576 per token and layer) plus the lightning indexer's "
            "(128 per token and layer) on every layer, both in the -ctk type",
            "AesSedai's and Unsloth's uploads are custom mixes (FFN-only quantization, "
            "Dynamic 2.0), not llama-quantize's standard mix, and are not modelled",
        ),
    ),
    CatalogueSource(
        name="glm-5",
        blueprint=Blueprint(name="GLM-5", **GLM_5),
        hyperparameters_source=(
            "zai-org/GLM-5 README (744B parameters, 40B active, DeepSeek Sparse Attention; "
            "public copies of the repository); GlmMoeDsaConfig as public ports document GLM-5's "
            "config (78 layers, 3 dense of 12288, 256 experts top-8 of 2048 plus 1 shared, "
            "sigmoid scoring, scaling 2.5, hidden 6144, 64 heads, q/kv lora 2048/512, qk 192+64, "
            "v 256, indexer 32 x 128 top-2048 on every layer (no indexer_types), vocab 154880, "
            "202752 positions, untied): GLM-5.1's topology, which keeps it; one MTP layer"
        ),
        quants=(*BIG_QUANTS, "BF16"),
        default_quant="Q4_K_M",
        notes=(
            "753.86 B parameters with the MTP layer (Hugging Face's size label for GLM-5: "
            "754B), 744 B without it (the README's count)",
            "the same tensors and sizes as glm-5.1 (GLM-5.1 keeps GLM-5's topology); no "
            "published size of a standard llama-quantize mix of GLM-5 was found: Unsloth's "
            "Q4_K_M (465 GB in a public model table) is a Dynamic 2.0 mix, 2.2 % above fit's "
            "standard one, not modelled",
            "blk.78 is the MTP layer, skipped by llama.cpp unless --spec-type draft-mtp",
        ),
    ),
    CatalogueSource(
        name="glm-5.2",
        blueprint=Blueprint(
            name="GLM-5.2",
            **GLM_5
            | {
                "context_length": 1048576,
                "rope_theta": 8e6,
                "indexer_types": GLM_5_2_INDEXER_TYPES,
            },
        ),
        hyperparameters_source=(
            "zai-org/GLM-5.2: GLM-5's topology with IndexShare and a 1M context. A published "
            "GGUF's metadata (Deviad/GLM-5.2-mixed-IQ2S-experts-IQ4NL-rest, from unsloth/GLM-5.2-"
            "GGUF): glm-dsa, 79 blocks (3 dense + 76 MoE layers, 1 NextN), context 1,048,576, "
            "embedding 6144, dense FFN 12288, experts 256 top-8 of 2048 plus 1 shared, 64 heads, "
            "q/kv lora 2048/512, key/value length 256, rope base 8,000,000 over 64, vocab 154880, "
            "sigmoid gating, scale 2.5, normalised; its config.json's indexer_types (full on "
            "layers 0, 1 and every fourth from 2) as the pinned llama.cpp transcribes them "
            "(src/models/glm-dsa.cpp GLM_5_2_DEFAULT_INDEXER_TYPES); indexer 32 x 128 top-2048 "
            "as GLM-5's"
        ),
        quants=(*BIG_QUANTS, "BF16"),
        default_quant="Q4_K_M",
        notes=(
            "IndexShare: the 57 shared layers reuse the previous full layer's top-k and carry "
            "neither indexer weights nor an indexer K cache (21 full layers of 78, and the MTP "
            "layer's)",
            "no published size of a standard llama-quantize mix was found: Unsloth's uploads are "
            "Dynamic 2.0 mixes (UD-IQ2_M 239 GB), the others custom (--tensor-type) mixes; "
            "totals not asserted",
            "blk.78 is the MTP layer, skipped by llama.cpp unless --spec-type draft-mtp",
        ),
    ),
    CatalogueSource(
        name="qwen3.6-35b-a3b",
        blueprint=Blueprint(name="Qwen3.6-35B-A3B", **QWEN35_MOE_35B),
        hyperparameters_source=QWEN35_MOE_35B_SOURCE,
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        published={
            "Q8_0": PublishedSize(
                bytes=36_903_140_320,
                source="unsloth/Qwen3.6-35B-A3B-GGUF Qwen3.6-35B-A3B-Q8_0.gguf: 36,903,140,320 "
                "bytes in a public test fixture of that file (36.9 GB on its Hugging Face page)",
            )
        },
        notes=QWEN35_MOE_NOTES,
    ),
    CatalogueSource(
        name="qwen3.5-35b-a3b",
        blueprint=Blueprint(name="Qwen3.5-35B-A3B", **QWEN35_MOE_35B),
        hyperparameters_source=QWEN35_MOE_35B_SOURCE,
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        published={
            "Q8_0": PublishedSize(
                bytes=36_900_000_000,
                source="unsloth/Qwen3.5-35B-A3B-GGUF Q8_0: 36.9 GB (ggml-org/Llama-macOS#63 "
                "model catalog table)",
            )
        },
        notes=QWEN35_MOE_NOTES[:3],
    ),
    CatalogueSource(
        name="qwen3.5-122b-a10b",
        blueprint=Blueprint(name="Qwen3.5-122B-A10B", **QWEN35_MOE_122B),
        hyperparameters_source=QWEN35_MOE_122B_SOURCE,
        quants=BIG_QUANTS,
        default_quant="Q4_K_M",
        notes=(
            *QWEN35_MOE_NOTES[1:3],
            "no MTP layer (as the 35B-A3B's first uploads; the pinned converter appends one "
            "that llama.cpp skips unless --spec-type draft-mtp)",
            "122.11 B parameters here and in llama.cpp's logs of Unsloth's uploads "
            "(ggml-org/llama.cpp#20575; llmgarage.ai, 'Running Qwen3.5-122B-A10B on Six RTX "
            "3090s'); no exact published file size was found (Unsloth's UD-Q6_K_XL 'about "
            "105 GB' in the same post, a UD- mix not modelled)",
        ),
    ),
    CatalogueSource(
        name="glm-4.7-flash",
        blueprint=Blueprint(
            architecture=Arch.DEEPSEEK2,
            name="GLM-4.7-Flash",
            n_layer=47,
            n_embd=2048,
            n_vocab=154880,
            context_length=202752,
            n_head=20,
            n_head_kv=20,
            n_ff=10240,
            rms_norm_eps=1e-5,
            rope_theta=1e6,
            n_expert=64,
            n_expert_used=4,
            n_ff_exp=1536,
            n_expert_shared=1,
            leading_dense_layers=1,
            expert_weights_scale=1.8,
            expert_weights_norm=True,
            expert_groups=1,
            expert_groups_used=1,
            expert_probs_bias=True,
            q_lora_rank=768,
            kv_lora_rank=512,
            qk_nope_head_dim=192,
            qk_rope_head_dim=64,
            v_head_dim=256,
            tokenizer=Tokenizer(model="gpt2", pre="glm4"),
        ),
        hyperparameters_source=(
            "huggingface/transformers src/transformers/models/glm4_moe_lite/"
            "configuration_glm4_moe_lite.py defaults (GLM-4.7-Flash: 47 layers, 1 dense, "
            "hidden 2048, ffn 10240, 20 heads, q/kv lora 768/512, qk 192+64, v 256, 64 experts "
            "top-4 of width 1536, 1 shared, scaling 1.8, vocab 154880, 202752 positions); rope "
            "theta 1e6 from blap/Mod src/inference_pio/models/glm_4_7_flash/config.py"
        ),
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        notes=(
            "converted as deepseek2 (conversion/glm.py Glm4MoeLiteModel); llama.cpp infers the "
            "sigmoid router from n_layer 47 and vocab 154880",
            "assumes the published GGUFs carry no NextN layer; the pinned converter would "
            "append one when num_nextn_predict_layers is set",
            "e_score_correction_bias (exp_probs_b) assumed present, as in DeepSeek-V3",
        ),
    ),
    CatalogueSource(
        name="gemma-4-31b",
        blueprint=Blueprint(
            name="gemma-4-31B-it",
            n_layer=60,
            n_embd=5376,
            context_length=262144,
            n_head=32,
            n_head_kv=16,
            gemma4_n_head_kv_full=4,
            gemma4_k_eq_v=True,
            n_ff=21504,
            sliding_window=1024,
            gemma4_swa_period=6,
            **GEMMA4_SHARED,
        ),
        hyperparameters_source=GEMMA4_LARGE_SOURCE,
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        published={
            "Q4_K_M": PublishedSize(
                bytes=18_700_000_000,
                source="steampunque/gemma-4-31B-it-MP-GGUF comparison table: Q4_K_M 18.7e9 "
                "bytes (its Q4_K_M 17.4 'GB' = GiB on pidtom/Gemma-4-31B-it-TQPlus agrees); "
                "30.7 B parameters on unsloth/gemma-4-31B-it-qat-GGUF's listing",
            )
        },
        notes=GEMMA4_NOTES,
    ),
    CatalogueSource(
        name="gemma-4-26b-a4b",
        blueprint=Blueprint(
            name="gemma-4-26B-A4B-it",
            n_layer=30,
            n_embd=2816,
            context_length=262144,
            n_head=16,
            n_head_kv=8,
            gemma4_n_head_kv_full=2,
            gemma4_k_eq_v=True,
            n_ff=2112,
            sliding_window=1024,
            gemma4_swa_period=6,
            n_expert=128,
            n_expert_used=8,
            n_ff_exp=704,
            **GEMMA4_SHARED,
        ),
        hyperparameters_source=GEMMA4_LARGE_SOURCE,
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        notes=(
            *GEMMA4_NOTES,
            "25.23 B parameters here, 25.2 B total on unsloth/gemma-4-26B-A4B-it-GGUF's card; "
            "no exact published file size was found (Q4_K_M 'about 17 GB')",
        ),
    ),
    CatalogueSource(
        name="gemma-4-e2b",
        blueprint=Blueprint(
            name="gemma-4-E2B-it",
            n_layer=35,
            n_embd=1536,
            context_length=131072,
            n_head=8,
            n_head_kv=1,
            n_ff=6144,
            sliding_window=512,
            gemma4_swa_period=5,
            gemma4_kv_shared_layers=20,
            gemma4_n_embd_per_layer=256,
            gemma4_double_wide_mlp=True,
            **GEMMA4_SHARED,
        ),
        hyperparameters_source=(
            "google/gemma-4-E2B-it text_config as quoted in public tests: 35 layers, hidden "
            "1536, 8 heads, 1 KV head, head_dim 256, global_head_dim 512 (no separate global "
            "KV heads, attention_k_eq_v false), sliding window 512, layer_types 4 sliding + 1 "
            "full, intermediate 6144 with use_double_wide_mlp (the 20 KV-sharing layers twice "
            "wide), num_kv_shared_layers 20, hidden_size_per_layer_input 256, vocab 262144, "
            "131072 positions, soft-cap 30, tied embeddings"
        ),
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        notes=(*GEMMA4_NOTES, "no exact published file size was found"),
    ),
    CatalogueSource(
        name="gemma-4-e4b",
        blueprint=Blueprint(
            name="gemma-4-E4B-it",
            n_layer=42,
            n_embd=2560,
            context_length=131072,
            n_head=8,
            n_head_kv=2,
            n_ff=10240,
            sliding_window=512,
            gemma4_swa_period=6,
            gemma4_kv_shared_layers=18,
            gemma4_n_embd_per_layer=256,
            **GEMMA4_SHARED,
        ),
        hyperparameters_source=(
            "google/gemma-4-E4B-it text_config as transcribed in public tests (one from "
            "google/gemma-4-E4B-it-qat-w4a16-ct's config.json, others in MLX and Rust loaders, "
            "all alike): 42 layers, hidden 2560, 8 heads, 2 KV heads of 256, global_head_dim "
            "512 (no separate global KV heads, attention_k_eq_v false), sliding window 512, "
            "layer_types 5 sliding + 1 full, intermediate 10240 without use_double_wide_mlp, "
            "num_kv_shared_layers 18, hidden_size_per_layer_input 256, vocab 262144, 131072 "
            "positions, soft-cap 30, tied embeddings"
        ),
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        notes=(*GEMMA4_NOTES, "no exact published file size was found"),
    ),
    CatalogueSource(
        name="llama-4-scout-17b-16e",
        blueprint=LLAMA4_SCOUT,
        hyperparameters_source=LLAMA4_SCOUT_SOURCE,
        quants=BIG_QUANTS,
        default_quant="Q4_K_M",
        published={
            "Q8_0": PublishedSize(
                bytes=round(106.67 * 2**30),
                source="unsloth/Llama-4-Scout-17B-16E-Instruct-GGUF Q8_0 (three parts): "
                "106.67 GiB 'from file size' in kyuz0/amd-strix-halo-toolboxes README "
                "(gguf-vram-estimator.py on Q8_0/...-Q8_0-00001-of-00003.gguf)",
            )
        },
        notes=(
            "text model only (the converter's Llama4Model); the vision tower ships as a "
            "separate mmproj GGUF",
            "the converter writes no sliding_window: llama.cpp forces the 8192-token chunked "
            "window, three chunked layers then one global layer without RoPE",
            "Unsloth's UD- mixes (UD-Q4_K_XL: 57.74 GiB in the same README) and bartowski's "
            "uploads (per-tensor overrides) are not modelled",
        ),
    ),
    CatalogueSource(
        name="qwen3-next-80b-a3b",
        blueprint=Blueprint(name="Qwen3-Next-80B-A3B-Instruct", **QWEN3_NEXT_80B),
        hyperparameters_source=QWEN3_NEXT_80B_SOURCE,
        quants=BIG_QUANTS,
        default_quant="Q4_K_M",
        published={
            "Q4_K_M": PublishedSize(
                bytes=48_500_000_000,
                source="steampunque/Qwen3-Coder-Next-Hybrid-GGUF README: Q4_K_M 48.5e9 with the "
                "default embedding and output types (Qwen3-Coder-Next has the same qwen3next "
                "tensor shapes: 48 layers, hidden 2048, 512 experts of 512, vocab 151936)",
            )
        },
        notes=(
            "no MTP layer: the pinned converter appends one (mtp_num_hidden_layers 1) that "
            "llama.cpp skips unless --spec-type draft-mtp; published GGUFs converted before "
            "MTP export carry none",
            "files converted before attn_qkv/attn_gate (one fused ssm_in per DeltaNet layer) "
            "have the same sizes; their compute graph is modelled too (build_qkvz's legacy path)",
            "Unsloth's UD- mixes and per-tensor overrides of other uploads are not modelled",
        ),
    ),
    CatalogueSource(
        name="nemotron-3-nano-30b-a3b",
        blueprint=Blueprint(name="NVIDIA-Nemotron-3-Nano-30B-A3B", **NEMOTRON_3_NANO_30B),
        hyperparameters_source=NEMOTRON_3_NANO_30B_SOURCE,
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        notes=(
            "no published GGUF file size found to check against (listings seen give rounded "
            "or estimated sizes only); 31.58 B parameters vs 31.6 B published",
            "the expert widths (2688 in, 1856 out) are not multiples of 256: llama-quantize "
            "falls back from K-quants to Q5_0/Q5_1/Q8_0 on the experts, so Q4_K_M is larger "
            "than 4.8 bits per weight",
            "context_length is the converter's 2^20 (no RoPE); max_position_embeddings is 262144",
            "Unsloth's UD- mixes and the MTP head of later uploads are not modelled",
        ),
    ),
    CatalogueSource(
        name="minimax-m2",
        blueprint=Blueprint(name="MiniMax-M2", **MINIMAX_M2),
        hyperparameters_source=MINIMAX_M2_SOURCE,
        quants=(*BIG_QUANTS, "Q4_K_S", "Q3_K_S", "Q5_K_S"),
        default_quant="Q4_K_M",
        published={
            quant: PublishedSize(
                bytes=round(size * 1e9),
                source="mradermacher/MiniMax-M2-BF16-GGUF README, static quants (no imatrix) "
                f"of ModelCloud/MiniMax-M2-BF16: {quant} {size} GB",
            )
            for quant, size in (
                ("Q2_K", 83.4),
                ("Q3_K_S", 98.8),
                ("Q3_K_M", 109.4),
                ("Q4_K_S", 130.1),
                ("Q4_K_M", 138.4),
                ("Q5_K_S", 157.6),
                ("Q5_K_M", 162.4),
                ("Q6_K", 187.9),
            )
        },
        notes=(
            "MiniMax-M2.1 and M2.5 publish the same config.json topology (62 layers, 256 "
            "experts of 1536): their GGUFs have these sizes too",
            "no MTP modules: the checkpoint's use_mtp / num_mtp_modules are not converted "
            "(the pinned converter maps no MTP tensor for minimax-m2)",
            "IQ4_XS is priced with an importance matrix, as published IQ quants are made; "
            "Unsloth's UD- mixes are not modelled",
        ),
    ),
    CatalogueSource(
        name="mistral-small-4-119b",
        blueprint=Blueprint(name="Mistral-Small-4-119B-2603", **MISTRAL_SMALL_4),
        hyperparameters_source=MISTRAL_SMALL_4_SOURCE,
        quants=(*BIG_QUANTS, "BF16"),
        default_quant="Q4_K_M",
        published={
            "Q8_0": PublishedSize(
                bytes=126_500_000_000,
                source="unsloth/Mistral-Small-4-119B-2603-GGUF Q8_0 126.5 GB, as tabulated in a "
                "public local-model survey (section 2.4, read 2026-09-26)",
            ),
            "BF16": PublishedSize(
                bytes=round(221.64 * 2**30),
                source="alexanderkyng/mistral-small-119b-2603-ik-gguf README (as indexed on "
                "graysoft.dev): 'BF16 (Unsloth Base)' 221.64 GiB at 16.00 BPW",
            ),
        },
        notes=(
            "text model only (the checkpoint's Pixtral vision tower is a separate mmproj file)",
            "the expert groups (8, 1 used) are NeMo's Mistral4Config defaults; transformers' "
            "own tests use one group: sizes do not depend on it, the router's compute does",
            "Unsloth's K-quants of it are not llama-quantize's standard mix (the same survey "
            "lists Q3_K_M 54.4, Q4_K_M 73.8, Q6_K 99.4 GB: +4.6 %, -2.2 %, -1.7 % from these "
            "totals) and are not modelled. The cause is Unsloth's, not the mix's: its uploads "
            "are Dynamic 2.0 ('All future GGUF uploads will utilize Unsloth Dynamic 2.0', which "
            "'dynamically adjust[s] the quantization type of every possible layer': "
            "docs.unsloth.ai/basics/unsloth-dynamic-v2.0-ggufs), and "
            "llama-quantize's Q6_K is Q6_K in every quantized tensor (no mistral4 rule, no "
            "importance-matrix branch in the pinned llama_tensor_get_type), so a Q6_K 1.7 GB "
            "larger holds tensors that --tensor-type overrides raised. Standard-mix files "
            "agree: Q8_0 117.78, Q6_K 90.96, Q4_K_M 67.21 GiB as prositronic.eu tabulates "
            "them (fit: 117.78, 90.95, 67.20); LM Studio's Q4_K_M is given as about 72 GB",
            "Unsloth's UD- mixes are not modelled (UD-Q4_K_S 69.30 GiB in the same README as "
            "the BF16 size)",
        ),
    ),
    CatalogueSource(
        name="kimi-linear-48b-a3b",
        blueprint=Blueprint(name="Kimi-Linear-48B-A3B-Instruct", **KIMI_LINEAR_48B),
        hyperparameters_source=KIMI_LINEAR_48B_SOURCE,
        quants=(*COMMON_QUANTS, "Q2_K"),
        default_quant="Q4_K_M",
        published={
            "Q8_0": PublishedSize(
                bytes=39_761_166_432 + 12_487_220_000,
                source="bartowski/moonshotai_Kimi-Linear-48B-A3B-Instruct-GGUF Q8_0, two parts of "
                "39,761,166,432 and 12,487,220,000 bytes as a public model-fetch table pins them",
            ),
            "Q2_K": PublishedSize(
                bytes=round(16.78 * 2**30),
                source="llama-bench of ymcki's Kimi-Linear-48B-A3B-Instruct.Q2_K.gguf (no "
                "imatrix) in ggml-org/llama.cpp#17592: 16.78 GiB, 49.12 B parameters",
            ),
        },
        notes=(
            "bartowski's Q4_K_M is 30,061,058,720 bytes (a public benchmark manifest), 1.2 % "
            "above this Q4_K_M: 358 MB more tensor data once its 6.9 MB header (its Q8_0 minus "
            "fit's) is taken off. Not the standard mix as fit computes it: the pinned "
            "llama_tensor_get_type has no kimi-linear rule and no importance-matrix branch for "
            "Q4_K_M, and the same arithmetic gives ymcki's static Q2_K (16.78 GiB) and "
            "bartowski's Q8_0 to the byte; 358 MB is no single group's step (token_embd to "
            "Q6_K 97 MB, to Q8_0 189 MB; one layer's down experts to Q6_K 156 MB), so which "
            "tensors the upload raised is only in its header on the Hub; not asserted",
            "config.json's legacy head_dim 72 is n_embd / n_head, what llama.cpp assumes "
            "without the key: left out here; 49.12 B parameters against the 48 B of its name",
            "the KDA state per sequence: 3 x 3 x 4096 conv floats and 32 x 128 x 128 "
            "delta-rule floats per KDA layer (20 layers), F32, whatever the KV type",
        ),
    ),
    CatalogueSource(
        name="deepseek-v4-flash",
        blueprint=DEEPSEEK_V4_FLASH,
        hyperparameters_source=DEEPSEEK_V4_FLASH_SOURCE,
        quants=(),
        mixes=DEEPSEEK_V4_FLASH_MIXES,
        default_quant="MXFP4",
        published={
            label: PublishedSize(
                bytes=round(gib * 2**30),
                source=f"antirez/deepseek-v4-gguf README files table: {label} {gib} GiB",
            )
            for label, gib in (("DS4-Q2", 80.8), ("DS4-Q4", 153.3))
        },
        notes=DEEPSEEK_V4_FLASH_NOTES,
    ),
    CatalogueSource(
        name="step-3.5-flash",
        blueprint=Blueprint(name="Step-3.5-Flash", **STEP35_FLASH),
        hyperparameters_source=STEP35_FLASH_SOURCE,
        quants=BIG_QUANTS,
        default_quant="Q4_K_M",
        published={
            "Q8_0": PublishedSize(
                bytes=round(197.43 * 2**30),
                source="AesSedai/Step-3.5-Flash-GGUF README: Q8_0 197.43 GiB (8.51 BPW), "
                "llama.cpp's size of every tensor, MTP heads included (re-converted 6/3/2026)",
            )
        },
        notes=(
            "199.38 B parameters, the 3 MTP layers' 2.43 B included (196.96 B without): "
            "199.4 B listed for the safetensors; 8.51 BPW at Q8_0 as published",
            "serving skips the MTP layers' norms, attention and NextN projections (0.24 GB at "
            "Q4_K_M), but llama.cpp loads their FFN, head-wise gate, Q/K norms and shared head "
            "(step35.cpp creates them without the skip flag): 1.16 GB at Q4_K_M in fit's weights",
            "AesSedai's other quants keep the non-FFN tensors at Q8_0 (Q4_K_M 116.22 GiB): not "
            "llama-quantize's standard mix, not asserted; no other exact GGUF size found",
            "the tokenizer's pre-tokenizer name is not known here (pre 'default'); its arrays "
            "are not in the totals",
        ),
    ),
    CatalogueSource(
        name="minimax-m3",
        blueprint=Blueprint(name="MiniMax-M3", **MINIMAX_M3),
        hyperparameters_source=MINIMAX_M3_SOURCE,
        quants=BIG_QUANTS,
        default_quant="Q4_K_M",
        notes=(
            "426.17 B parameters in the text model (the vision tower is the mmproj's): the "
            "model card's ~428B counts the whole multimodal checkpoint; 852.9 GB in BF16",
            "no published size of a standard llama-quantize mix was found (Unsloth publishes "
            "UD- mixes, not modelled; its BF16 is given only as ~855 GB): totals not asserted",
            "the MSA indexer's projections are F32 in the converter's output "
            "(tensor_force_quant); llama-quantize's rules decide their type in each quant",
            "the KV cache holds the indexer's cache beside the main one: one K head of 128 and "
            "one unread V head of 128 per sparse layer and cell",
            "the pre-tokenizer is minimax-m2's (the converter has no separate M3 entry)",
        ),
    ),
    CatalogueSource(
        name="seed-oss-36b",
        blueprint=Blueprint(
            architecture=Arch.SEED_OSS,
            name="Seed-OSS-36B-Instruct",
            n_layer=64,
            n_embd=5120,
            n_vocab=155136,
            context_length=524288,
            n_head=80,
            n_head_kv=8,
            head_dim=128,
            n_ff=27648,
            rms_norm_eps=1e-6,
            rope_theta=1e7,
            attention_bias=True,
            tokenizer=Tokenizer(model="gpt2", pre="seed-coder", bos_token_id=0, eos_token_id=2),
        ),
        hyperparameters_source=(
            "ByteDance-Seed/seed-oss README model summary (64 layers, 80 / 8 / 8 QKV heads of "
            "128, hidden 5120, vocab 155K, 512K context, rope base 1e7); ByteDance-Seed/Seed-OSS-"
            "36B-Instruct config.json as public loaders copy it (a Seed-OSS-36B-Instruct-4bit "
            "config in an MLX port's tests; a Seed-OSS transformers audit): vocab 155136, "
            "intermediate 27648, max_position_embeddings 524288, rms eps 1e-6, attention_bias "
            "true (Q/K/V), attention_out_bias false, untied embeddings, 36,151,104,512 "
            "parameters in the safetensors index; pre-tokenizer seed-coder (the pinned "
            "convert_hf_to_gguf_update.py's ByteDance-Seed tokenizer)"
        ),
        quants=BIG_QUANTS,
        default_quant="Q4_K_M",
        published={
            "Q4_K_M": PublishedSize(
                bytes=21_762_149_024,
                source="bartowski/ByteDance-Seed_Seed-OSS-36B-Instruct-GGUF "
                "ByteDance-Seed_Seed-OSS-36B-Instruct-Q4_K_M.gguf: 21,762,149,024 bytes, the "
                "Hub's size as a public app's model list records it (unsloth's Q4_K_M: "
                "21,762,149,536 bytes in another app's list)",
            )
        },
        notes=(
            "36,151,104,512 parameters, the safetensors index's count to the parameter",
            "the published Q4_K_M files are 6.3 MB (0.03 %) above fit's tensor bytes, about "
            "what the GGUF header of a 155136-token BPE vocabulary with its merges holds",
            "Hermes-4.3-36B and other seed_oss fine-tunes share these shapes",
        ),
    ),
    CatalogueSource(
        name="mimo-v2-flash",
        blueprint=Blueprint(
            architecture=Arch.MIMO2,
            name="MiMo-V2-Flash",
            n_layer=48,
            nextn_layers=3,
            n_embd=4096,
            n_vocab=152576,
            context_length=262144,
            n_head=64,
            n_head_kv=4,
            n_head_kv_swa=8,
            head_dim=192,
            v_head_dim=128,
            rope_dim=64,  # int(192 * partial_rotary_factor 0.334)
            n_ff=16384,
            rms_norm_eps=1e-5,  # the converter's default: the config names no layernorm_epsilon
            rope_theta=5e6,
            rope_theta_swa=1e4,
            n_expert=256,
            n_expert_used=8,
            n_ff_exp=2048,
            leading_dense_layers=1,
            expert_gating="sigmoid",
            expert_weights_norm=True,
            expert_probs_bias=True,
            # hybrid_layer_pattern: full attention on layer 0 and every sixth from 5
            swa_layer_pattern=tuple(0 if i == 0 or (i - 5) % 6 == 0 else 1 for i in range(48)),
            sliding_window=128,
            attention_sinks_swa=True,
            attention_value_scale=0.707,
            tokenizer=Tokenizer(model="gpt2", pre="qwen2"),
        ),
        hyperparameters_source=(
            "XiaomiMiMo/MiMo-V2-Flash config.json as public ports copy it: a MaxText converter's "
            "MODEL_PARAMS (48 layers, 64 heads, 4 KV heads on full / 8 on sliding layers, hidden "
            "4096, Q/K heads of 192, V heads of 128, 256 experts of 2048, a dense first layer of "
            "16384, separate q/k/v projections, the hybrid_layer_pattern), a Trainium port's "
            "MiMoConfig (rope base 5e6 full / 1e4 sliding, window 128, partial rotary 0.334, top-8 "
            "sigmoid routing with noaux_tc); a later MiMo-V2 config pinned in public tests (vocab "
            "152576, attention_value_scale 0.707, sinks on sliding layers only, 3 MTP layers); "
            "256K context (the model card as listings quote it); the MTP layers as the pinned "
            "conversion/mimo.py writes them (_n_nextn 3)"
        ),
        quants=BIG_QUANTS,
        default_quant="Q4_K_M",
        notes=(
            "308.78 B parameters in the 48 trunk layers (the card's 309B), 309.77 B with the 3 "
            "MTP layers the pinned converter appends (blk.48-50: sliding-window attention with "
            "sinks, a dense FFN of 16384, eh_proj, enorm, hnorm and final_layernorm as "
            "layer_output_norm; no embedding or head of their own: conversion/mimo.py's MTP-only "
            "export keeps the trunk's embed_tokens and lm_head for them); llama.cpp skips them "
            "unless --spec-type draft-mtp",
            "no published size of a MiMo-V2-Flash GGUF was found: totals not asserted; uploads "
            "converted before the converter wrote MTP layers lack blk.48-50 (1.05 GB at Q8_0)",
            "the vocabulary (embedding rows) is 152576 in the later MiMo-V2 config; ports quote "
            "151936 or the tokenizer's 151669/151680 (at most 0.01 % of the totals)",
            "MiMo-V2.5 (same backbone, 310B) stores a fused qkv_proj (attn_qkv in the GGUF), "
            "which llama-quantize types differently: not this entry",
        ),
    ),
    CatalogueSource(
        name="smollm3-3b",
        blueprint=Blueprint(
            architecture=Arch.SMOLLM3,
            name="SmolLM3-3B",
            n_layer=36,
            n_embd=2048,
            n_vocab=128256,
            context_length=65536,
            n_head=16,
            n_head_kv=4,
            n_ff=11008,
            rms_norm_eps=1e-6,
            rope_theta=5e6,
            tied_embeddings=True,
            tokenizer=Tokenizer(
                model="gpt2", pre="smollm", bos_token_id=128000, eos_token_id=128012
            ),
        ),
        hyperparameters_source=(
            "HuggingFaceTB/SmolLM3-3B config.json as public ports pin it (SmolLM3ForCausalLM: "
            "36 layers, hidden 2048, 16 q / 4 kv heads of 128, intermediate 11008, vocab 128256, "
            "65536 positions, rope_theta 5e6, rms eps 1e-6, tied embeddings, no_rope_layers "
            "(1, 1, 1, 0) x 9 with interval 4: llama.cpp's fixed n_no_rope_layer_step), bos "
            "128000, eos 128012"
        ),
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        published={
            "Q4_K_M": PublishedSize(
                bytes=1_915_306_528,
                header_bytes=LLAMA3_TOKENIZER_HEADER,
                source="unsloth/SmolLM3-3B-GGUF SmolLM3-3B-Q4_K_M.gguf: 1,915,306,528 bytes, the "
                "Hub's size as a public app's model list records it",
            )
        },
        notes=(
            "3.08 B parameters (tied embeddings: the 128256 x 2048 table counted once)",
            "the published Q4_K_M is 7,844,384 B above fit's tensor bytes (0.41 %): the GGUF "
            "header of Llama 3's 128256-token tokenizer, which bartowski's Meta-Llama-3.1-8B-"
            "Instruct-Q4_K_M.gguf measures at 7,840,928 B (its 4,920,739,232 B less fit's "
            "llama-3-8b Q4_K_M tensors and 3.1's rope_freqs); the tensor data agree to 3.5 KB",
        ),
    ),
    CatalogueSource(
        name="glm-4-32b-0414",
        blueprint=Blueprint(
            architecture=Arch.GLM4,
            name="GLM-4-32B-0414",
            n_layer=61,
            n_embd=6144,
            n_vocab=151552,
            context_length=32768,
            n_head=48,
            n_head_kv=2,
            head_dim=128,
            rope_dim=64,  # partial_rotary_factor 0.5
            n_ff=23040,
            rms_norm_eps=1e-5,
            rope_theta=1e4,
            tokenizer=Tokenizer(
                model="gpt2", pre="glm4", bos_token_id=151331, eos_token_id=151329, n_merges=318088
            ),
        ),
        hyperparameters_source=(
            "llama.cpp's log of bartowski/THUDM_GLM-Z1-32B-0414-GGUF's IQ4_XS (ubergarm's "
            "ik_llama.cpp PR #344 benchmark, GLM-Z1-32B-0414 being GLM-4-32B-0414's reasoning "
            "model on the same architecture): glm4, 61 blocks, context 32768, embedding 6144, "
            "feed_forward 23040 (gate and up fused), 48 heads, 2 KV heads, key/value length "
            "128, rope dims 64, rope base 10000, rms eps 1e-5, vocab 151552 with 318088 merges, "
            "bos 151331, eos 151329, 613 tensors: 4 F32 norms per layer, no Q/K/V biases, "
            "untied output"
        ),
        quants=BIG_QUANTS,
        default_quant="Q4_K_M",
        published={
            "IQ4_XS": PublishedSize(
                bytes=round(16.382 * 2**30),
                source="bartowski/THUDM_GLM-Z1-32B-0414-GGUF IQ4_XS (imatrix): llama.cpp's "
                "'model size = 16.382 GiB (4.321 BPW)' and 'CPU model buffer size = 16775.23 "
                "MiB' (fit: 16775.23 MiB) with 245 F32, 306 IQ4_XS, 61 Q5_K and 1 Q6_K tensors "
                "(fit's mix, tensor for tensor) in ubergarm's ik_llama.cpp PR #344 log",
            )
        },
        notes=(
            "32,566,081,536 parameters: llama.cpp's 'model params = 32.566 B' for the same file",
            "GLM-Z1-32B-0414 and GLM-Z1-Rumination-32B-0414 have these shapes too",
            "the GGUF has no Q/K/V biases (4 F32 tensors per layer in the published file; the "
            "glm4 loader takes them as optional)",
        ),
    ),
    CatalogueSource(
        name="olmo-2-1b",
        blueprint=Blueprint(
            architecture=Arch.OLMO2,
            name="OLMo-2-0425-1B-Instruct",
            n_layer=16,
            n_embd=2048,
            n_vocab=100352,
            context_length=4096,
            n_head=16,
            n_head_kv=16,
            n_ff=8192,
            rms_norm_eps=1e-6,
            rope_theta=5e5,
            tokenizer=Tokenizer(model="gpt2", pre="dbrx", eos_token_id=100257),
        ),
        hyperparameters_source=(
            "allenai/OLMo-2-0425-1B config.json as a public Rust port's test copies it verbatim "
            "(Olmo2ForCausalLM: 16 layers, hidden 2048, 16 q / 16 kv heads, intermediate 8192, "
            "vocab 100352, rope_theta 500000, rms eps 1e-6, untied embeddings, eos 100257, no "
            "sliding window); OLMo 2's 4096-token context"
        ),
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        notes=(
            "1.48 B parameters",
            "allenai/OLMo-2-0425-1B-Instruct-GGUF's Q4_K_M is 935,515,296 B (the Hub's size in a "
            "public app's model list), 3,552,416 B (0.38 %) above fit's tensor bytes: about the "
            "GGUF header of a 100352-token BPE vocabulary with its merges, which no file with "
            "the same tokenizer measures here; not asserted (the test's bound is 0.2 % of the "
            "file)",
        ),
    ),
    CatalogueSource(
        name="lfm2-8b-a1b",
        blueprint=Blueprint(
            architecture=Arch.LFM2MOE,
            name="LFM2-8B-A1B",
            n_layer=24,
            n_embd=2048,
            n_vocab=65536,
            context_length=128000,
            n_head=32,
            n_head_kv=8,
            n_ff=7168,
            rms_norm_eps=1e-5,
            rope_theta=1e6,
            n_expert=32,
            n_expert_used=4,
            n_ff_exp=1792,
            leading_dense_layers=2,
            expert_gating="sigmoid",
            expert_weights_norm=True,
            expert_probs_bias=True,
            # layer_types: full attention on layers 2, 6, 10, 14, 18 and 21, short convolutions
            layer_pattern="".join("*" if i in (2, 6, 10, 14, 18, 21) else "C" for i in range(24)),
            shortconv_l_cache=3,
            qk_norm=True,
            tied_embeddings=True,
            tokenizer=Tokenizer(model="gpt2", pre="lfm2", eos_token_id=7),
        ),
        hyperparameters_source=(
            "LiquidAI/LFM2-8B-A1B config.json as a public MLX port's tests trim it (lfm2_moe: 24 "
            "layers, hidden 2048, 32 q / 8 kv heads, dense intermediate 7168 on the first 2 "
            "layers, 32 experts top-4 of 1792 with the expert bias, normalised, scaling 1.0, "
            "vocab 65536, 128000 positions, rope 1e6, norm eps 1e-5, conv_L_cache 3, no conv "
            "bias, layer_types with full attention on layers 2, 6, 10, 14, 18, 21); tied "
            "embeddings as LFM2 ties them"
        ),
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        published={
            "Q4_K_M": PublishedSize(
                bytes=5_044_779_712,
                source="LiquidAI/LFM2-8B-A1B-GGUF LFM2-8B-A1B-Q4_K_M.gguf: 5,044,779,712 bytes, "
                "the Hub's size as a public app's model list records it",
            )
        },
        notes=(
            "8.34 B parameters (the card's 8.3B), 18 short-convolution and 6 attention layers",
            "the published Q4_K_M is 2.4 MB (0.05 %) above fit's tensor bytes: its GGUF header "
            "(a 65536-token vocabulary)",
            "LFM2.5-8B-A1B keeps the layout with a 128000-token vocabulary and rope base 5e6: "
            "not this entry",
        ),
    ),
    CatalogueSource(
        name="lfm2-350m",
        blueprint=Blueprint(
            architecture=Arch.LFM2,
            name="LFM2-350M",
            n_layer=16,
            n_embd=1024,
            n_vocab=65536,
            context_length=128000,
            n_head=16,
            n_head_kv=8,
            # block_ff_dim 6656 as conversion/lfm2.py adjusts it: 2/3 of it, up to a multiple
            # of 256 (block_auto_adjust_ff_dim; the published file's size confirms it)
            n_ff=4608,
            rms_norm_eps=1e-5,
            rope_theta=1e6,
            layer_pattern="".join("*" if i in (2, 5, 8, 10, 12, 14) else "C" for i in range(16)),
            shortconv_l_cache=3,
            qk_norm=True,
            tied_embeddings=True,
            tokenizer=Tokenizer(model="gpt2", pre="lfm2", eos_token_id=7),
        ),
        hyperparameters_source=(
            "LiquidAI/LFM2-350M config.json as a public MLX port's tests trim it (lfm2: 16 "
            "layers, hidden 1024, 16 q / 8 kv heads, full_attn_idxs [2, 5, 8, 10, 12, 14], "
            "block_ff_dim 6656, vocab 65536, 128000 positions, rope 1e6, norm eps 1e-5, "
            "conv_L_cache 3, no conv bias); feed_forward_length 4608 as the pinned converter "
            "adjusts block_ff_dim (2/3, rounded up to 256): the published Q4_K_M agrees with it "
            "to 9 KB; an unadjusted 6656 would put fit's Q4_K_M 25 % above the file"
        ),
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        published={
            "Q4_K_M": PublishedSize(
                bytes=229_309_376,
                header_bytes=LFM2_TOKENIZER_HEADER,
                source="LiquidAI/LFM2-350M-GGUF LFM2-350M-Q4_K_M.gguf: 229,309,376 bytes, the "
                "Hub's size as a public app's model list records it",
            )
        },
        notes=(
            "354.48 M parameters",
            "the published Q4_K_M is 2,383,808 B (1.04 %) above fit's tensor bytes: the GGUF "
            "header of LFM2's 65536-token tokenizer, which LiquidAI's LFM2-8B-A1B Q4_K_M "
            "measures at 2,393,024 B (its file less fit's lfm2-8b-a1b tensors); the tensor data "
            "agree to 9 KB",
        ),
    ),
    CatalogueSource(
        name="granite-4.0-h-tiny",
        blueprint=Blueprint(
            architecture=Arch.GRANITEHYBRID,
            name="granite-4.0-h-tiny",
            n_layer=40,
            n_embd=1536,
            n_vocab=100352,
            context_length=1048576,  # the converter's 2**20 for a model without RoPE
            n_head=12,
            n_head_kv=4,
            n_ff=512,
            rms_norm_eps=1e-5,
            n_expert=64,
            n_expert_used=6,
            n_ff_exp=512,
            n_ff_shexp=1024,
            # layer_types: attention on layers 5, 15, 25 and 35, Mamba-2 elsewhere
            layer_pattern="".join("*" if i in (5, 15, 25, 35) else "M" for i in range(40)),
            ssm_d_conv=4,
            ssm_d_state=128,
            ssm_n_group=1,
            ssm_dt_rank=48,  # mamba_n_heads
            mamba_head_dim=64,
            use_rope=False,
            embedding_scale=12.0,
            residual_scale=0.22,
            logit_scale=6.0,
            attention_scale=0.0078125,
            tied_embeddings=True,
            tokenizer=Tokenizer(model="gpt2", pre="dbrx", bos_token_id=100257, eos_token_id=100257),
        ),
        hyperparameters_source=(
            "ibm-granite/granite-4.0-h-tiny config.json as a public simulator's tests copy it "
            "(granitemoehybrid: 40 layers, hidden 1536, 12 q / 4 kv heads, 64 experts top-6 of "
            "512 plus a shared expert of 1024, vocab 100352, tied embeddings, Mamba-2 with "
            "d_state 128, 1 group, 48 heads of 64, expand 2, conv 4, layer_types with attention "
            "on layers 5, 15, 25, 35); Granite's multipliers (embedding 12, residual 0.22, "
            "logits 6, attention 1/128), no RoPE (rope.scaling.finetuned false), rms eps 1e-5 "
            "and the dbrx pre-tokenizer with bos/eos 100257 as the GGUF's metadata reads in "
            "Ollama's granite4:tiny-h listing"
        ),
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        published={
            "Q4_K_M": PublishedSize(
                bytes=4_230_976_352,
                source="ibm-granite/granite-4.0-h-tiny-GGUF granite-4.0-h-tiny-Q4_K_M.gguf: "
                "4,230,976,352 bytes, the Hub's size as a public app's model list records it",
            )
        },
        notes=(
            "6.94 B parameters (the card's 7B, 1B active)",
            "the published Q4_K_M is 3,588,704 B (0.08 %) above fit's tensor bytes: its GGUF "
            "header (a 100352-token vocabulary; OLMo 2's of the same size is 3,552,416 B over)",
            "no attention biases (attention_bias false): the loader's optional Q/K/V and "
            "output biases are not in the file",
        ),
    ),
    CatalogueSource(
        name="exaone-4.0-32b",
        blueprint=Blueprint(name="EXAONE-4.0-32B", **EXAONE4_32B),
        hyperparameters_source=(
            "LGAI-EXAONE/EXAONE-4.0-32B config.json as TensorRT-LLM's single-layer test copies it "
            "(Exaone4ForCausalLM: hidden 5120, intermediate 27392, 40 q / 8 kv heads of 128, "
            "vocab 102400, 131072 positions, rope_theta 1e6 with llama3 scaling x16 from 8192, "
            "rms eps 1e-5, sliding_window_pattern 4 (LLLG), untied; its 64 layers and window "
            "4096 as the test's notes give them)"
        ),
        quants=BIG_QUANTS,
        default_quant="Q4_K_M",
        notes=(
            "32.00 B parameters",
            "48 sliding-window layers of 4096 (three in four) and 16 global layers without "
            "RoPE, as llama.cpp gives 64-layer exaone4 models",
            "no published size of EXAONE-4.0-32B's GGUFs was found: totals not asserted",
        ),
    ),
    CatalogueSource(
        name="exaone-4.0-1.2b",
        blueprint=Blueprint(
            name="EXAONE-4.0-1.2B",
            **EXAONE4_32B
            | {
                "n_layer": 30,
                "n_embd": 2048,
                "context_length": 65536,
                "n_head": 32,
                "head_dim": 64,
                "n_ff": 4096,
                "sliding_window": 0,
                "tied_embeddings": True,
            },
        ),
        hyperparameters_source=(
            "LGAI-EXAONE/EXAONE-4.0-1.2B config.json as a public Go port's tests copy it "
            "(Exaone4ForCausalLM: 30 layers, hidden 2048, intermediate 4096, 32 q / 8 kv heads "
            "of 64, vocab 102400, 65536 positions, rope_theta 1e6 with llama3 scaling x16 from "
            "8192, rms eps 1e-5); tied embeddings; llama.cpp gives it no sliding window (only "
            "64-layer exaone4 models get one)"
        ),
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        notes=(
            "1.28 B parameters (tied embeddings)",
            "LGAI-EXAONE/EXAONE-4.0-1.2B-GGUF's Q4_K_M is 812,437,792 B (the Hub's size in a "
            "public app's model list), 4,207,776 B (0.52 %) above fit's tensor bytes: about the "
            "GGUF header of a 102400-token vocabulary, which no file with the same tokenizer "
            "measures here; not asserted (the test's bound is 0.2 % of the file)",
        ),
    ),
    CatalogueSource(
        name="ernie-4.5-21b-a3b",
        blueprint=Blueprint(
            architecture=Arch.ERNIE4_5_MOE,
            name="ERNIE-4.5-21B-A3B",
            n_layer=28,
            n_embd=2560,
            n_vocab=103424,
            context_length=131072,
            n_head=20,
            n_head_kv=4,
            head_dim=128,
            n_ff=12288,
            rms_norm_eps=1e-5,
            rope_theta=5e5,
            n_expert=64,
            n_expert_used=6,
            n_ff_exp=1536,
            n_expert_shared=2,
            n_ff_shexp=3072,  # two shared experts of moe_intermediate_size, fused
            leading_dense_layers=1,
            moe_layer_step=1,
            expert_probs_bias=True,
            tied_embeddings=True,
            tokenizer=Tokenizer(model="llama", pre="default", bos_token_id=1, eos_token_id=2),
        ),
        hyperparameters_source=(
            "baidu/ERNIE-4.5-21B-A3B-PT config.json as public ports' tests copy it "
            "(Ernie4_5_MoeForCausalLM: 28 layers, hidden 2560, 20 q / 4 kv heads of 128, dense "
            "intermediate 12288 on layer 0, experts from layer 1 to 27 every layer: 64 of 1536, "
            "top-6, 2 shared experts, vocab 103424, 131072 positions, rope 5e5, rms eps 1e-5, "
            "tied embeddings); the router's e_score_correction_bias as the selection bias"
        ),
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        notes=(
            "21.83 B parameters (21.8B in all as public ports count it; 3B active)",
            "unsloth/ERNIE-4.5-21B-A3B-PT-GGUF's Q4_K_M is 13,331,015,456 B (the Hub's size in "
            "a public app's model list), 87.6 MB (0.66 %) above fit's standard mix: more than a "
            "header, an Unsloth mix with tensors kept higher (not modelled, not asserted)",
        ),
    ),
    CatalogueSource(
        name="command-a-03-2025",
        blueprint=Blueprint(
            architecture=Arch.COHERE2,
            name="c4ai-command-a-03-2025",
            n_layer=64,
            n_embd=12288,
            n_vocab=256000,
            context_length=262144,
            n_head=96,
            n_head_kv=8,
            head_dim=128,
            n_ff=36864,
            rms_norm_eps=1e-5,  # LayerNorm's epsilon
            rope_theta=5e4,
            logit_scale=0.25,
            sliding_window=4096,
            tied_embeddings=True,
            tokenizer=Tokenizer(
                model="gpt2", pre="command-r", bos_token_id=5, eos_token_id=255001, n_merges=253333
            ),
        ),
        hyperparameters_source=(
            "llama.cpp's log of a GGUF of Agatha-111B-v1, a fine-tune of CohereLabs/c4ai-command-"
            "a-03-2025 on its architecture (ik_llama.cpp issue thread, 2025-07-20): cohere2, 64 "
            "blocks, context 262144, embedding 12288, feed_forward 36864, 96 heads, 8 KV heads "
            "of 128 (rope over all 128), rope base 50000, LayerNorm eps 1e-5, logit scale 0.25, "
            "sliding window 4096 on three layers in four, vocab 256000 with 253333 merges, bos 5, "
            "eos 255001, 514 tensors (tied embeddings)"
        ),
        quants=COMMON_QUANTS,
        mixes=(
            NamedMix(
                label="Q4_K_M-Q8EMB",
                file_type="Q4_K_M",
                imatrix=True,
                tensor_types=(("token_embd", "Q8_0"),),
                source="the Agatha-111B-v1 Q4_K_M in that log: llama-quantize's Q4_K_M with "
                "token_embd at Q8_0 (its census: 65 F32, 1 Q8_0, 384 Q4_K, 64 Q6_K; the "
                "standard mix would keep the tied embedding at Q6_K)",
            ),
        ),
        default_quant="Q4_K_M",
        published={
            "Q4_K_M-Q8EMB": PublishedSize(
                bytes=round(63.224 * 2**30),
                source="llama.cpp's 'model size = 63.224 GiB (4.890 BPW)' and 'model params = "
                "111.058 B' for Agatha-111B-v1 Q4_K_M (ik_llama.cpp issue thread, 2025-07-20)",
            )
        },
        notes=(
            "111,057,580,032 parameters: the log's 111.058 B",
            "the standard Q4_K_M (tied token_embd at Q6_K) is 0.709 GiB smaller than the "
            "published file, which keeps token_embd at Q8_0: that recipe is Q4_K_M-Q8EMB",
        ),
    ),
    CatalogueSource(
        name="ling-mini-2.0",
        blueprint=Blueprint(
            architecture=Arch.BAILINGMOE2,
            name="Ling-mini-2.0",
            n_layer=20,
            n_embd=2048,
            n_vocab=157184,
            context_length=32768,
            n_head=16,
            n_head_kv=4,
            head_dim=128,
            rope_dim=64,  # partial_rotary_factor 0.5
            n_ff=5120,
            rms_norm_eps=1e-6,
            rope_theta=6e5,
            n_expert=256,
            n_expert_used=8,
            n_ff_exp=512,
            n_expert_shared=1,
            n_ff_shexp=512,
            leading_dense_layers=1,
            expert_gating="sigmoid",
            expert_weights_norm=True,
            expert_weights_scale=2.5,
            expert_probs_bias=True,
            expert_groups=8,
            expert_groups_used=4,
            qk_norm=True,
            tokenizer=Tokenizer(model="gpt2", pre="bailingmoe2"),
        ),
        hyperparameters_source=(
            "inclusionAI's Ling/Ring-mini-2.0 config.json (BailingMoeV2ForCausalLM) as a public "
            "porting note quotes it: 20 layers, hidden 2048, dense first layer of 5120, 16 q / "
            "4 kv heads, 256 experts top-8 of 512 plus 1 shared, sigmoid routing with the expert "
            "bias in 8 groups (top 4), scaling 2.5, normalised, qk norm; SGLang's test shrunk "
            "from Ling-mini-2.0 for head_dim 128, partial rotary 0.5, rope 600000, rms eps 1e-6, "
            "untied embeddings; vocab 157184 for the Bailing V2 family (a public model "
            "registry); 32768 positions"
        ),
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        notes=(
            "16.26 B parameters (16B total, 1.4B active)",
            "bartowski/inclusionAI_Ling-mini-2.0-GGUF's Q4_K_M is 9,941,894,336 B (the Hub's size "
            "in a public app's model list), 36.3 MB (0.37 %) above fit's standard mix: its "
            "header (a 157184-token vocabulary, some 6 MB) does not explain the rest; not "
            "asserted",
            "no MTP layer: one (a full MoE layer, some 0.8 B parameters) would put fit some "
            "450 MB above the published Q4_K_M, which has none",
        ),
    ),
    CatalogueSource(
        name="dots-llm1-inst",
        blueprint=Blueprint(
            architecture=Arch.DOTS1,
            name="dots.llm1.inst",
            n_layer=62,
            n_embd=4096,
            n_vocab=152064,
            context_length=32768,
            n_head=32,
            n_head_kv=32,
            head_dim=128,
            n_ff=10944,
            rms_norm_eps=1e-5,
            rope_theta=1e7,
            n_expert=128,
            n_expert_used=6,
            n_ff_exp=1408,
            n_expert_shared=2,
            leading_dense_layers=1,
            expert_gating="sigmoid",
            expert_weights_norm=True,
            expert_weights_scale=2.5,
            expert_probs_bias=True,
            qk_norm=True,
            tokenizer=Tokenizer(model="gpt2", pre="qwen2", eos_token_id=151649),
        ),
        hyperparameters_source=(
            "rednote-hilab/dots.llm1.inst config.json as a public MLX port's tests trim it "
            "(dots1: 62 layers, hidden 4096, 32 heads with 32 KV heads (MHA), a dense first layer "
            "of 10944, then 128 sigmoid experts top-6 of 1408 with the selection bias, "
            "normalised, scaling 2.5, plus 2 shared experts, vocab 152064, 32768 positions, "
            "rope 1e7, rms eps 1e-5, untied, eos 151649)"
        ),
        quants=BIG_QUANTS,
        default_quant="Q4_K_M",
        notes=(
            "142.77 B parameters (the card's 142B total, 14B active)",
            "no published size of a dots.llm1 GGUF was found: totals not asserted",
        ),
    ),
    CatalogueSource(
        name="apertus-8b",
        blueprint=Blueprint(
            architecture=Arch.APERTUS,
            name="Apertus-8B-Instruct-2509",
            n_layer=32,
            n_embd=4096,
            n_vocab=131072,
            context_length=65536,
            n_head=32,
            n_head_kv=8,
            n_ff=21504,
            rms_norm_eps=1e-5,
            rope_theta=12e6,
            rope_scaling=RopeScaling(type="llama3", factor=8.0, original_context_length=8192),
            qk_norm=True,
            tokenizer=Tokenizer(model="gpt2", pre="default"),
        ),
        hyperparameters_source=(
            "swiss-ai/Apertus-8B-Instruct-2509 config.json as Ollama's Apertus tests copy it "
            "(ApertusForCausalLM: 32 layers, hidden 4096, intermediate 21504 (ungated, xIELU), 32 "
            "q / 8 kv heads of 128 with Q/K norms, vocab 131072, 65536 positions, rope 1.2e7 "
            "with llama3 scaling x8 from 8192, rms eps 1e-5, untied)"
        ),
        quants=COMMON_QUANTS,
        default_quant="Q4_K_M",
        published={
            "Q4_K_M": PublishedSize(
                bytes=5_057_885_568,
                source="bartowski/swiss-ai_Apertus-8B-Instruct-2509-GGUF "
                "swiss-ai_Apertus-8B-Instruct-2509-Q4_K_M.gguf: 5,057,885,568 bytes, the Hub's "
                "size as a public app's model list records it",
            )
        },
        notes=(
            "8.05 B parameters",
            "the published Q4_K_M is 7.9 MB (0.16 %) above fit's tensor bytes: its GGUF header "
            "(a 131072-token vocabulary with its merges)",
            "the pre-tokenizer's name is not known here (pre 'default')",
        ),
    ),
    *LLAMA_SMALL_SOURCES,
]


def main() -> None:
    """Rebuild every catalogue file from ``SOURCES``."""
    for path in write_catalogue(SOURCES):
        print(f"{path}  {path.stat().st_size:>9} bytes")


if __name__ == "__main__":
    main()
