"""Names of the pinned llama.cpp that the installed gguf-py lacks, as raw templates.

``src/llama-arch.cpp`` (``LLM_KV_NAMES``, ``LLM_TENSOR_NAMES``) is the source of each string;
``{arch}`` and ``{bid}`` are filled in the way gguf-py's own templates are: DeepSeek V4's
(``deepseek4``: hyper-connections, the grouped low-rank output projection, the KV compressors
and their per-layer ratios, hash routing), GLM-5.3-Flash's (``glm5-next``) k-pool indexer
keys, and MiniMax-M3's sparse attention (``minimax-m3``: the MSA indexer's block keys and its
projections). glm5-next's k-pool tensors have deepseek4's indexer-compressor names
(``LLM_TENSOR_INDEXER_KPOOL_GATE`` / ``_APE``: ``Dsv4Tensors.INDEXER_COMPRESSOR_*``).
And mimo2's attention value scale.
"""

from __future__ import annotations


class Dsv4Keys:
    """deepseek4 metadata keys (``llama_model_deepseek4::load_arch_hparams``)."""

    OUTPUT_GROUP_COUNT = "{arch}.attention.output_group_count"
    OUTPUT_LORA_RANK = "{arch}.attention.output_lora_rank"
    COMPRESS_ROPE_FREQ_BASE = "{arch}.attention.compress_rope_freq_base"
    COMPRESS_RATIOS = "{arch}.attention.compress_ratios"  # one per layer: 0, 4 or 128
    HC_COUNT = "{arch}.hyper_connection.count"
    HC_SINKHORN_ITERATIONS = "{arch}.hyper_connection.sinkhorn_iterations"
    HC_EPSILON = "{arch}.hyper_connection.epsilon"
    HASH_LAYER_COUNT = "{arch}.hash_layer_count"


class Dsv4Tensors:
    """deepseek4 tensor name templates (``llama_model_deepseek4::load_arch_tensors``)."""

    HC_HEAD_FN = "output_hc_fn"
    HC_HEAD_BASE = "output_hc_base"
    HC_HEAD_SCALE = "output_hc_scale"
    HC_ATTN_FN = "blk.{bid}.hc_attn_fn"
    HC_ATTN_BASE = "blk.{bid}.hc_attn_base"
    HC_ATTN_SCALE = "blk.{bid}.hc_attn_scale"
    HC_FFN_FN = "blk.{bid}.hc_ffn_fn"
    HC_FFN_BASE = "blk.{bid}.hc_ffn_base"
    HC_FFN_SCALE = "blk.{bid}.hc_ffn_scale"
    ATTN_KV = "blk.{bid}.attn_kv"
    ATTN_OUT_A = "blk.{bid}.attn_output_a"
    ATTN_OUT_B = "blk.{bid}.attn_output_b"
    ATTN_COMPRESSOR_KV = "blk.{bid}.attn_compressor_kv"
    ATTN_COMPRESSOR_GATE = "blk.{bid}.attn_compressor_gate"
    ATTN_COMPRESSOR_APE = "blk.{bid}.attn_compressor_ape"
    ATTN_COMPRESSOR_NORM = "blk.{bid}.attn_compressor_norm"
    INDEXER_COMPRESSOR_KV = "blk.{bid}.indexer_compressor_kv"
    INDEXER_COMPRESSOR_GATE = "blk.{bid}.indexer_compressor_gate"
    INDEXER_COMPRESSOR_APE = "blk.{bid}.indexer_compressor_ape"
    INDEXER_COMPRESSOR_NORM = "blk.{bid}.indexer_compressor_norm"
    FFN_GATE_TID2EID = "blk.{bid}.ffn_gate_tid2eid"  # I32 token -> experts table


class KpoolKeys:
    """glm5-next's indexer keys (``llama_model_glm5_next::load_arch_hparams``); ``TYPES``
    (``LLM_KV_ATTENTION_INDEXER_TYPES``) is glm-dsa's too."""

    KPOOL = "{arch}.attention.indexer.kpool"  # tokens pooled into one indexer key
    KPOOL_SELECT_TAIL = "{arch}.attention.indexer.kpool_select_tail"
    TYPES = "{arch}.attention.indexer.types"  # per layer: full indexer (else shared)


class MsaKeys:
    """minimax-m3's MSA keys (``llama_model_minimax_m3::load_arch_hparams``)."""

    BLOCK_SIZE = "{arch}.attention.indexer.block_size"  # positions per selectable block
    LOCAL_BLOCKS = "{arch}.attention.indexer.local_blocks"  # the latest blocks, always kept


class MsaTensors:
    """minimax-m3's indexer tensors (``llama_model_minimax_m3::load_arch_tensors``); its K
    norm is gguf-py's ``INDEXER_K_NORM``."""

    INDEXER_Q_PROJ = "blk.{bid}.indexer.q_proj"
    INDEXER_K_PROJ = "blk.{bid}.indexer.k_proj"
    INDEXER_Q_NORM = "blk.{bid}.indexer.q_norm"


# llama-hparams.h llama_expert_gating_func_type values gguf-py's ExpertGatingFuncType lacks
SQRT_SOFTPLUS_GATING = 4

# LLM_KV_ATTENTION_VALUE_SCALE (mimo2: the attention output's scale)
ATTENTION_VALUE_SCALE = "{arch}.attention.value_scale"
