"""The hyperparameters llama.cpp derives from a model, as far as fit's memory model needs them.

``llama_model_base::load_hparams`` plus each architecture's ``load_arch_hparams`` turn GGUF
metadata into ``llama_hparams``: heads and head widths per layer, which layers use a sliding
window (and its size), MLA, MTP ("nextn") layers, layers without their own KV, the experts and
their router, and the scales and soft-caps the compute graph applies. This module reproduces
the parts the memory model reads (KV cache, recurrent state, and the compute graph of
``solver.llama.compute_graph``), from an ``Inventory``'s fields and its metadata, and refuses
architectures whose memory layout it does not model. ``ModelHparams`` is the one record of
them: nothing else re-reads these metadata keys.

The architecture-specific derivations (sliding-window layers, MTP layers, shared-KV layers)
are ``solver.gguf.hparams``'s and arrive in the ``Inventory``; the tables below add which
architectures build which memory module (``llama_model::create_memory``).
"""

from __future__ import annotations

from enum import StrEnum

from gguf import Keys
from pydantic import BaseModel, ConfigDict, Field

from solver.errors import BadInput
from solver.gguf.hparams import llama_architectures
from solver.gguf.inventory import Inventory
from solver.gguf.newer_names import ATTENTION_VALUE_SCALE, Dsv4Keys, KpoolKeys, MsaKeys


class MemoryKind(StrEnum):
    """Which ``llama_memory_i`` ``llama_model::create_memory`` builds for the architecture."""

    NONE = "none"  # embedding / diffusion models: no KV cache at all
    KV = "kv"  # llama_kv_cache
    ISWA = "iswa"  # llama_kv_cache_iswa: a full cache plus a sliding-window cache
    RECURRENT = "recurrent"  # llama_memory_recurrent: per-sequence r/s state
    HYBRID = "hybrid"  # llama_memory_hybrid: a KV cache for attention + recurrent state
    # llama_memory_hybrid_idx (glm5-next): the hybrid's caches plus an indexer K cache on the
    # layers with a full indexer (ModelHparams.lid_layers)
    HYBRID_IDX = "hybrid_idx"
    DSA = "dsa"  # llama_kv_cache_dsa: the MLA K cache plus the lightning indexer's K cache
    # llama_kv_cache_msa (minimax-m3): a K/V cache of every layer plus the MSA indexer's K/V
    # cache (one head) of the sparse layers
    MSA = "msa"
    # llama_kv_cache_dsv4: a sliding-window K cache, K caches of the compressed positions per
    # compression ratio (and the indexer's), the compressors' F32 states
    DSV4 = "dsv4"


# llm_arch_is_recurrent / llm_arch_is_hybrid and the create_memory special cases
RECURRENT_ARCHS = frozenset({"mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"})
HYBRID_ARCHS = frozenset(
    {"jamba", "falcon-h1", "plamo2", "granitehybrid", "lfm2", "lfm2moe", "nemotron_h",
     "nemotron_h_moe", "qwen3next", "kimi-linear", "bailingmoe3", "kimi-k3", "glm5-next",
     "qwen35", "qwen35moe", "qwen4exp", "deepseek4", "minimax-01"}
)  # fmt: skip
NO_MEMORY_ARCHS = frozenset(
    {"bert", "jina-bert-v2", "jina-bert-v3", "nomic-bert", "nomic-bert-moe", "neo-bert",
     "eurobert", "wavtokenizer-dec", "modern-bert", "gemma-embedding", "dream", "llada",
     "llada-moe", "rnd1", "clef"}
)  # fmt: skip
SPECIAL_MEMORY_ARCHS = frozenset(
    {"hy_v4", "dots3note", "dflash", "gemma4-assistant",
     "eagle3", "t5", "t5encoder", "clip"}
)  # fmt: skip

# Hybrids whose memory llama.cpp builds from other parts (an indexer cache, or recurrent
# state fit does not size: KDA / lightning attention heads).
UNMODELLED_HYBRID_ARCHS = frozenset({"qwen4exp", "kimi-k3", "bailingmoe3", "minimax-01"})
# create_memory's hybrid layer filters (default: attention = !is_recr, recurrent = is_recr)
_TRUNK_FILTER_ARCHS = frozenset({"qwen3next", "qwen35", "qwen35moe", "glm5-next"})
# llama_memory_hybrid_idx: glm5-next's indexer cache row holds key | gate | pooled key
# (llama_hparams::indexer_kpool_row's default)
KPOOL_ROW = 3
_NO_FFN_FILTER_ARCHS = frozenset({"nemotron_h", "nemotron_h_moe"})

# load_arch_hparams reads {arch}.n_deepstack_layers (granite's loaders derive the count from
# a deepstack mapping instead; granite has no compute-graph recipe)
DEEPSTACK_ARCHS = frozenset({"qwen3vl", "qwen3vlmoe"})
# the loaders that read Granite's residual and logit scales and the rope switch (of those
# with a compute-graph recipe)
GRANITE_SCALE_ARCHS = frozenset({"granitehybrid"})

# hparams.causal_attn = false in these loaders
NON_CAUSAL_ARCHS = frozenset({"dream", "llada", "llada-moe", "gemma-embedding"})

# Architectures whose loaders skip the MTP/NextN layers' tensors unless --spec-type draft-mtp
# asks for them (``mtp_flags |= TENSOR_SKIP`` when !ml.load_mtp).
MTP_SKIPPING_ARCHS = frozenset(
    {"deepseek32", "qwen4exp", "deepseek2", "qwen3next", "step35", "glm5-next", "deepseek4",
     "bailingmoe3", "cohere2moe", "qwen35moe", "nemotron_h_moe", "hy_v3", "glm-dsa",
     "glm4moe", "qwen35", "mimo2", "mistral4"}
)  # fmt: skip

# MTP-layer tensors such a loader creates all the same (its create_tensor leaves out the skip
# flag): deepseek32.cpp's and glm-dsa.cpp's ffn_exp_probs_b is TENSOR_NOT_REQUIRED only;
# step35.cpp's load_block_mtp skips only what it creates with mtp_flags (norms, Q/K/V, wo,
# eh_proj, enorm, hnorm) and loads every optional tensor: Q/K norms, the head gate, FFN,
# experts, router, shared expert, the NextN embedding / shared head and its duplicate of the
# rope factors
MTP_LOADED_SUFFIXES = {
    "deepseek32": (".exp_probs_b.bias",),
    "glm-dsa": (".exp_probs_b.bias",),
    "step35": (
        ".attn_q_norm.weight", ".attn_k_norm.weight", ".attn_gate.weight",
        ".ffn_gate.weight", ".ffn_down.weight", ".ffn_up.weight", ".ffn_gate_inp.weight",
        ".ffn_gate_exps.weight", ".ffn_down_exps.weight", ".ffn_up_exps.weight",
        ".exp_probs_b.bias", ".ffn_gate_shexp.weight", ".ffn_up_shexp.weight",
        ".ffn_down_shexp.weight", ".nextn.embed_tokens.weight",
        ".nextn.shared_head_head.weight", ".nextn.shared_head_norm.weight",
        # the global rope factors, duplicated into the MTP layer's buffer (TENSOR_DUPLICATED)
        "rope_freqs.weight", "rope_factors_long.weight", "rope_factors_short.weight",
    ),
}  # fmt: skip

# create_memory's llama_kv_cache_dsa: an MLA cache and the lightning indexer's K cache
DSA_ARCHS = frozenset({"deepseek32", "glm-dsa"})


class LayerAttention(BaseModel):
    """Attention geometry of one layer as ``llama_hparams`` reports it."""

    model_config = ConfigDict(frozen=True)

    n_head: int  # n_head(il): query heads
    n_head_kv: int
    head_k: int  # n_embd_head_k(il)
    head_v: int  # n_embd_head_v(il)
    is_swa: bool

    @property
    def k_width(self) -> int:
        """n_embd_k_gqa(il)"""
        return self.head_k * self.n_head_kv

    @property
    def v_width(self) -> int:
        """n_embd_v_gqa(il)"""
        return self.head_v * self.n_head_kv


class ModelHparams(BaseModel):
    """What the memory model needs from ``llama_hparams``, layer by layer.

    Field names follow ``llama_hparams`` (``src/llama-hparams.h``). A scale or soft-cap of 0
    means the model has none; ``expert_gating_func`` 0 means the GGUF names none and the
    architecture's default applies (its graph recipe knows it).
    """

    model_config = ConfigDict(frozen=True)

    arch: str
    n_layer_all: int  # block_count, MTP layers included
    n_layer_nextn: int
    n_embd: int
    n_vocab: int
    n_ctx_train: int
    causal_attn: bool
    memory: MemoryKind
    n_swa: int
    layers: tuple[LayerAttention, ...]
    # attention geometry the graph functions read without a layer index
    n_embd_head_k: int  # n_embd_head_k_full: K head width of full-attention layers
    n_embd_head_v: int  # n_embd_head_v_full
    n_embd_head_k_mla: int = 0  # MLA: per-head K width before compression (0: no MLA)
    n_embd_head_v_mla: int = 0
    n_rot: int  # rotary dimensions
    n_lora_kv: int = 0  # MLA: compressed KV width (kv_lora_rank)
    # DSA lightning indexer (deepseek32, glm-dsa; 0: none): its heads, head width (one cached
    # K head) and how many cached positions each token attends to
    indexer_n_head: int = 0
    indexer_head_size: int = 0
    indexer_top_k: int = 0  # minimax-m3: blocks of positions
    # minimax-m3's MSA (0: none): positions per block, the latest blocks always attended
    indexer_block_size: int = 0
    indexer_local_blocks: int = 0
    indexer_kpool: int = 0  # glm5-next: tokens pooled into one indexer key (0: no pools)
    indexer_kpool_select_tail: bool = True  # glm5-next: the incomplete pool is attended too
    lid_layers: tuple[bool, ...] = Field(
        default=(), description="per layer: has an indexer K cache (DSA's, MSA's, hybrid_idx's)"
    )
    # deepseek4: each layer's KV compression ratio (0: none; 4 with the indexer; 128)
    compress_ratios: tuple[int, ...] = ()
    n_ctx_orig_yarn: int  # rope scaling's original context, else the training context
    # mixture of experts (n_expert 0: a dense model)
    n_expert: int = 0
    n_expert_used: int = 0
    n_layer_dense_lead: int = 0  # first layers with a dense FFN
    n_expert_groups: int = 0
    n_group_used: int = 0
    expert_gating_func: int = 0  # llama_expert_gating_func_type; 0: the architecture's default
    expert_weights_norm: bool = False
    expert_weights_scale: float = 0.0
    # scales and soft-caps of the compute graph
    f_embedding_scale: float = 0.0
    f_attn_temp_scale: float = 0.0  # llama-4 style attention temperature tuning
    f_attn_logit_softcapping: float = 0.0
    f_final_logit_softcapping: float = 0.0
    f_attn_value_scale: float = 0.0  # mimo2: the attention output's scale (0: none)
    # granitehybrid: the residual branches' and the logits' scales (0: none)
    f_residual_scale: float = 0.0
    f_logit_scale: float = 0.0
    rope_finetuned: bool = True  # granitehybrid: {arch}.rope.scaling.finetuned, its RoPE switch
    n_layer_kv_from_start: int = -1
    kv_layers: tuple[bool, ...] = Field(description="per layer: has its own KV cache")
    rs_layers: tuple[bool, ...] = Field(
        default=(), description="per layer: has recurrent state (llama_memory_recurrent)"
    )
    n_embd_r: int = Field(default=0, description="floats of one sequence's conv/shift state")
    n_embd_s: int = Field(default=0, description="floats of one sequence's SSM/WKV state")
    # SSM / gated DeltaNet sizes ({arch}.ssm.*) the recurrent layers' graph reads (0: none)
    ssm_d_conv: int = 0
    ssm_d_inner: int = 0
    ssm_d_state: int = 0
    ssm_dt_rank: int = 0
    ssm_n_group: int = 0
    n_embd_head_kda: int = 0  # kimi-linear: the KDA layers' head width (0: no KDA)
    n_shortconv_l_cache: int = 0  # lfm2: the short convolutions' window (0: none)
    # qwen3vl / qwen3vlmoe: layers that add a deepstack slice of the input rows, which are
    # n_embd_inp() = n_embd * (1 + n_deepstack_layers) wide
    n_deepstack_layers: int = 0
    # llama_hparams::use_mrope(): {arch}.rope.dimension_sections with its first two sections
    # set (glm4 then ropes with M-RoPE: four positions a token)
    use_mrope: bool = False

    @property
    def n_embd_inp(self) -> int:
        """llama_hparams::n_embd_inp(): the width of an input embedding row."""
        return self.n_embd * (1 + self.n_deepstack_layers)

    @property
    def n_layer(self) -> int:
        """Trunk layers: n_layer_all - n_layer_nextn."""
        return self.n_layer_all - self.n_layer_nextn

    @property
    def is_mla(self) -> bool:
        """llama_hparams::is_mla(): both MLA head sizes are set."""
        return self.n_embd_head_k_mla != 0 and self.n_embd_head_v_mla != 0

    def layer_has_indexer(self, il: int) -> bool:
        """A layer with an indexer K cache (``lid_layers``): a DSA layer with a full lightning
        indexer (glm-dsa's "shared" layers reuse the last full one's top-k), MSA's sparse ones."""
        return il < len(self.lid_layers) and self.lid_layers[il]

    def layer_has_kv(self, il: int) -> bool:
        """has_kv(il) and the create_memory layer filter (MTP layers are not in the cache)."""
        return self.kv_layers[il]

    @property
    def indexer_cache_width(self) -> int:
        """One layer's indexer K row: indexer_head_size, times KPOOL_ROW with pools
        (llama_memory_hybrid_idx's hparams_idx.n_embd_head_k_full)."""
        return self.indexer_head_size * (KPOOL_ROW if self.indexer_kpool else 1)

    @property
    def v_width_max(self) -> int:
        """n_embd_v_gqa_max(): the V row width when V is stored transposed."""
        return max(layer.v_width for layer in self.layers)

    @property
    def skips_mtp_tensors(self) -> bool:
        return self.n_layer_nextn > 0 and self.arch in MTP_SKIPPING_ARCHS

    def loads(self, name: str, layer: int | None) -> bool:
        """Whether llama.cpp's loader creates this tensor: all but the MTP layers' tensors it
        skips (``MTP_LOADED_SUFFIXES`` are created all the same)."""
        if not self.skips_mtp_tensors or layer is None or layer < self.n_layer:
            return True
        return name.endswith(MTP_LOADED_SUFFIXES.get(self.arch, ()))


def _int_meta(inventory: Inventory, key_template: str, default: int) -> int:
    value = inventory.metadata.get(key_template.format(arch=inventory.architecture))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return int(value)


def _scalar_meta(inventory: Inventory, key_template: str, default: float) -> float:
    """A number or bool from the metadata, else ``default`` (absent or of another type)."""
    value = inventory.metadata.get(key_template.format(arch=inventory.architecture), default)
    return value if isinstance(value, int | float | bool) else default


def memory_kind(inventory: Inventory) -> MemoryKind:
    """The memory module llama.cpp builds, or ``BadInput`` when fit does not model it."""
    arch = inventory.architecture
    if arch not in llama_architectures():
        raise BadInput(f"unknown model architecture '{arch}': llama.cpp would refuse to load it")
    if arch in NO_MEMORY_ARCHS:
        return MemoryKind.NONE
    if arch in RECURRENT_ARCHS:
        return MemoryKind.RECURRENT
    if arch == "deepseek4":  # hybrid to llm_arch_is_hybrid, but create_memory builds its own
        if inventory.n_layers_nextn:
            raise BadInput("deepseek4 with MTP layers: its MTP KV cache is not modelled")
        return MemoryKind.DSV4
    if arch in HYBRID_ARCHS:
        if arch in UNMODELLED_HYBRID_ARCHS:
            raise BadInput(f"architecture '{arch}' keeps a state fit does not model yet")
        if any(inventory.attention.swa_layers):
            raise BadInput(f"hybrid architecture '{arch}' with a sliding window is not modelled")
        return MemoryKind.HYBRID_IDX if arch == "glm5-next" else MemoryKind.HYBRID
    if arch in DSA_ARCHS:
        return MemoryKind.DSA
    if arch == "minimax-m3":
        if _int_meta(inventory, MsaKeys.BLOCK_SIZE, 0) <= 0:  # its loader asserts a block
            raise BadInput("minimax-m3: attention.indexer.block_size must be positive")
        return MemoryKind.MSA
    if arch in SPECIAL_MEMORY_ARCHS:
        raise BadInput(f"architecture '{arch}' has its own KV cache type; fit does not model it")
    if any(inventory.attention.swa_layers):
        return MemoryKind.ISWA
    return MemoryKind.KV


def model_hparams(inventory: Inventory) -> ModelHparams:
    """Derive the memory-relevant ``llama_hparams`` of a model.

    The inventory already carries what llama.cpp derives per architecture (sliding-window
    layers and window, MTP layers, layers without their own KV: ``solver.gguf.hparams``); this
    adds the per-layer head widths of SWA layers and MLA, and checks the memory type.
    """
    arch = inventory.architecture
    kind = memory_kind(inventory)
    attention = inventory.attention
    head_k_full = attention.key_length
    layers = _layer_attention(inventory)
    causal = inventory.metadata.get(Keys.Attention.CAUSAL.format(arch=arch), True)
    kv_layers, rs_layers = _memory_layers(inventory, kind)
    n_embd_r, n_embd_s = _recurrent_widths(inventory) if any(rs_layers) else (0, 0)
    return ModelHparams(
        arch=arch,
        n_layer_all=inventory.n_layers,
        n_layer_nextn=inventory.n_layers_nextn,
        n_embd=inventory.n_embd,
        n_vocab=inventory.n_vocab,
        n_ctx_train=inventory.context_length,
        causal_attn=bool(causal) and arch not in NON_CAUSAL_ARCHS,
        memory=kind,
        n_swa=attention.sliding_window if any(attention.swa_layers) else 0,
        layers=layers,
        n_embd_head_k=head_k_full,
        n_embd_head_v=attention.value_length,
        n_embd_head_k_mla=attention.key_length_mla,
        n_embd_head_v_mla=attention.value_length_mla,
        n_rot=attention.rope_dim or head_k_full,
        n_lora_kv=attention.kv_lora_rank,
        **_indexer_hparams(inventory, kind, kv_layers),
        compress_ratios=_compress_ratios(inventory) if kind is MemoryKind.DSV4 else (),
        n_ctx_orig_yarn=int(_scalar_meta(inventory, Keys.Rope.SCALING_ORIG_CTX_LEN, 0))
        or inventory.context_length,
        **_expert_hparams(inventory),
        **_graph_scales(inventory),
        n_layer_kv_from_start=attention.n_layer_kv_from_start,
        kv_layers=kv_layers,
        rs_layers=rs_layers,
        n_embd_r=n_embd_r,
        n_embd_s=n_embd_s,
        **_ssm_sizes(inventory),
        **_position_hparams(inventory),
    )


def _layer_attention(inventory: Inventory) -> tuple[LayerAttention, ...]:
    """Each layer's heads and head widths: sliding-window layers read the ``_swa`` widths
    (llama_hparams::n_embd_head_k(il)), the others the full ones."""
    n_layer_all = inventory.n_layers
    attention = inventory.attention
    swa_flags = list(attention.swa_layers) or [False] * n_layer_all
    n_head = list(attention.n_head) or [0] * n_layer_all
    n_head_kv = list(attention.n_head_kv) or n_head
    head_k_full = attention.key_length
    head_v_full = attention.value_length
    head_k_swa = _int_meta(inventory, Keys.Attention.KEY_LENGTH_SWA, head_k_full)
    head_v_swa = _int_meta(inventory, Keys.Attention.VALUE_LENGTH_SWA, head_v_full)
    return tuple(
        LayerAttention(
            n_head=n_head[il],
            n_head_kv=n_head_kv[il],
            head_k=head_k_swa if swa_flags[il] else head_k_full,
            head_v=head_v_swa if swa_flags[il] else head_v_full,
            is_swa=swa_flags[il],
        )
        for il in range(n_layer_all)
    )


def _indexer_hparams(
    inventory: Inventory, kind: MemoryKind, kv_layers: tuple[bool, ...]
) -> dict[str, object]:
    """The sparse-attention indexer's sizes (DSA, the k-pool, MSA's blocks) and the layers
    that keep its cache; zeros for a model without one."""
    return {
        "indexer_n_head": _int_meta(inventory, Keys.Attention.Indexer.HEAD_COUNT, 0),
        "indexer_head_size": _int_meta(inventory, Keys.Attention.Indexer.KEY_LENGTH, 0),
        "indexer_top_k": _int_meta(inventory, Keys.Attention.Indexer.TOP_K, 0),
        "indexer_kpool": _int_meta(inventory, KpoolKeys.KPOOL, 0),
        "indexer_kpool_select_tail": bool(
            _scalar_meta(inventory, KpoolKeys.KPOOL_SELECT_TAIL, True)
        ),
        "lid_layers": _indexer_layers(inventory, kind, kv_layers),
        "indexer_block_size": _int_meta(inventory, MsaKeys.BLOCK_SIZE, 0),
        "indexer_local_blocks": _int_meta(inventory, MsaKeys.LOCAL_BLOCKS, 0),
    }


def _position_hparams(inventory: Inventory) -> dict[str, object]:
    """How positions reach the layers: the deepstack count (qwen3vl), M-RoPE, and whether
    the rope scaling was fine-tuned (granite's key; every other architecture: true)."""
    arch = inventory.architecture
    finetuned = inventory.metadata.get(Keys.Rope.SCALING_FINETUNED.format(arch=arch), True)
    return {
        "n_deepstack_layers": _int_meta(inventory, Keys.LLM.NUM_DEEPSTACK_LAYERS, 0)
        if arch in DEEPSTACK_ARCHS
        else 0,
        "use_mrope": _use_mrope(inventory),
        "rope_finetuned": arch not in GRANITE_SCALE_ARCHS or bool(finetuned),
    }


def _use_mrope(inventory: Inventory) -> bool:
    """llama_hparams::use_mrope(): rope_sections[0] > 0 && rope_sections[1] > 0."""
    key = Keys.Rope.DIMENSION_SECTIONS.format(arch=inventory.architecture)
    sections = inventory.metadata.get(key)
    return isinstance(sections, list) and len(sections) >= 2 and sections[0] > 0 < sections[1]


def _compress_ratios(inventory: Inventory) -> tuple[int, ...]:
    """deepseek4.cpp: ``{arch}.attention.compress_ratios``, one per layer, each 0, 4 or 128
    (its loader throws otherwise, or when the array is shorter than block_count)."""
    value = inventory.metadata.get(Dsv4Keys.COMPRESS_RATIOS.format(arch=inventory.architecture))
    ratios = tuple(value) if isinstance(value, list) else ()
    if len(ratios) < inventory.n_layers or not set(ratios) <= {0, 4, 128}:
        raise BadInput(
            f"{inventory.architecture}.attention.compress_ratios must give each of the "
            f"{inventory.n_layers} layers 0, 4 or 128 (llama.cpp refuses the file)"
        )
    return ratios[: inventory.n_layers]


def _ssm_sizes(inventory: Inventory) -> dict[str, int]:
    """``ssm_d_conv`` ... ``ssm_n_group`` as the loader reads them (0 without SSM keys)."""
    state = inventory.recurrent
    if state is None:
        return {}
    return {
        "ssm_d_conv": state.conv_kernel,
        "ssm_d_inner": state.inner_size,
        "ssm_d_state": state.state_size,
        "ssm_dt_rank": state.time_step_rank,
        "ssm_n_group": state.group_count,
        "n_embd_head_kda": state.kda_head_dim,
        "n_shortconv_l_cache": _int_meta(inventory, Keys.ShortConv.L_CACHE, 0),
    }


def _expert_hparams(inventory: Inventory) -> dict[str, int | bool | float]:
    """The experts and their router (``{arch}.expert_*``; the gating default is the recipe's)."""
    experts = inventory.experts
    return {
        "n_expert": experts.count,
        "n_expert_used": experts.used,
        "n_layer_dense_lead": experts.leading_dense_layers,
        "n_expert_groups": int(_scalar_meta(inventory, Keys.LLM.EXPERT_GROUP_COUNT, 0)),
        "n_group_used": int(_scalar_meta(inventory, Keys.LLM.EXPERT_GROUP_USED_COUNT, 0)),
        "expert_gating_func": int(_scalar_meta(inventory, Keys.LLM.EXPERT_GATING_FUNC, 0)),
        "expert_weights_norm": bool(_scalar_meta(inventory, Keys.LLM.EXPERT_WEIGHTS_NORM, False)),
        "expert_weights_scale": float(_scalar_meta(inventory, Keys.LLM.EXPERT_WEIGHTS_SCALE, 0.0)),
    }


def _graph_scales(inventory: Inventory) -> dict[str, float]:
    """Scales and soft-caps the compute graph applies (0: the model has none)."""

    def scale(key_template: str) -> float:
        return float(_scalar_meta(inventory, key_template, 0.0))

    # mimo2.cpp keeps a value scale other than 1 (dflash, unmodelled, reads it too)
    value_scale = scale(ATTENTION_VALUE_SCALE) if inventory.architecture == "mimo2" else 0.0
    granite = inventory.architecture in GRANITE_SCALE_ARCHS
    return {
        "f_attn_value_scale": 0.0 if value_scale == 1.0 else value_scale,
        "f_residual_scale": scale(Keys.LLM.RESIDUAL_SCALE) if granite else 0.0,
        # granite divides its logits by it, cohere2.cpp multiplies them by it
        "f_logit_scale": scale(Keys.LLM.LOGIT_SCALE)
        if granite or inventory.architecture == "cohere2"
        else 0.0,
        "f_embedding_scale": scale(Keys.LLM.EMBEDDING_SCALE),
        "f_attn_temp_scale": scale(Keys.Attention.TEMPERATURE_SCALE),
        "f_attn_logit_softcapping": scale(Keys.LLM.ATTN_LOGIT_SOFTCAPPING),
        "f_final_logit_softcapping": scale(Keys.LLM.FINAL_LOGIT_SOFTCAPPING),
    }


def _memory_layers(
    inventory: Inventory, kind: MemoryKind
) -> tuple[tuple[bool, ...], tuple[bool, ...]]:
    """Which layers get a KV cache and which get recurrent state (create_memory's filters)."""
    n_all = inventory.n_layers
    n_layer = n_all - inventory.n_layers_nextn
    from_start = inventory.attention.n_layer_kv_from_start
    recr = list(inventory.recurrent.recurrent_layers) if inventory.recurrent else []
    recr += [False] * (n_all - len(recr))
    if kind is MemoryKind.NONE:
        return (False,) * n_all, (False,) * n_all
    if kind is MemoryKind.RECURRENT:  # every trunk layer, no KV at all
        return (False,) * n_all, tuple(il < n_layer for il in range(n_all))
    if kind in (MemoryKind.HYBRID, MemoryKind.HYBRID_IDX):
        arch = inventory.architecture
        if arch == "falcon-h1":
            return (True,) * n_all, tuple(il < n_layer for il in range(n_all))
        if arch in _NO_FFN_FILTER_ARCHS:
            n_ff = _per_layer_meta(inventory, Keys.LLM.FEED_FORWARD_LENGTH)
            kv = tuple(not recr[il] and n_ff[il] == 0 for il in range(n_all))
            return kv, tuple(il < n_layer and recr[il] and n_ff[il] == 0 for il in range(n_all))
        if arch in _TRUNK_FILTER_ARCHS:
            kv = tuple(il < n_layer and not recr[il] for il in range(n_all))
            return kv, tuple(il < n_layer and recr[il] for il in range(n_all))
        # default filters; the recurrent memory only walks the trunk layers
        return tuple(not r for r in recr), tuple(il < n_layer and recr[il] for il in range(n_all))
    # llama_kv_cache: has_kv(il), and the MTP filter when the model has trunk layers
    kv = []
    for il in range(n_all):
        own = from_start < 0 or il < from_start
        mtp = inventory.n_layers_nextn > 0 and n_layer > 0 and il >= n_layer
        kv.append(own and not mtp)
    return tuple(kv), (False,) * n_all


def _indexer_layers(
    inventory: Inventory, kind: MemoryKind, kv_layers: tuple[bool, ...]
) -> tuple[bool, ...]:
    """Layers with an indexer K cache: llama_kv_cache_dsa's filter_lid and glm5-next's
    filter_idx, the KV layers whose indexer is full (``Attention.indexer_full``, llama.cpp's
    ``is_indexer_full``); minimax-m3's filter_idx, the KV layers past the leading dense ones
    (the sparse layers)."""
    if kind is MemoryKind.MSA:
        dense = inventory.experts.leading_dense_layers
        return tuple(kv and il >= dense for il, kv in enumerate(kv_layers))
    if kind not in (MemoryKind.DSA, MemoryKind.HYBRID_IDX):
        return ()
    full = inventory.attention.indexer_full
    return tuple(kv and il < len(full) and full[il] for il, kv in enumerate(kv_layers))


def _per_layer_meta(inventory: Inventory, key_template: str) -> list[int]:
    value = inventory.metadata.get(key_template.format(arch=inventory.architecture), 0)
    if isinstance(value, list):
        return [int(v) for v in value]
    return [int(value)] * inventory.n_layers


def _recurrent_widths(inventory: Inventory) -> tuple[int, int]:
    """``llama_hparams::n_embd_r()`` and ``n_embd_s()``: floats of state per sequence."""
    n_embd = inventory.n_embd
    wkv_head_size = _int_meta(inventory, Keys.WKV.HEAD_SIZE, 0)
    if wkv_head_size:  # RWKV: token shift and WKV state
        return _int_meta(inventory, Keys.LLM.TOKEN_SHIFT_COUNT, 2) * n_embd, n_embd * wkv_head_size
    state = inventory.recurrent
    d_conv = state.conv_kernel if state else 0
    d_inner = state.inner_size if state else 0
    d_state = state.state_size if state else 0
    n_group = state.group_count if state else 0
    l_cache = _int_meta(inventory, Keys.ShortConv.L_CACHE, 0)
    if l_cache:  # LFM2 short convolutions
        return n_embd * (l_cache - 1), d_state * d_inner
    kda = state.kda_head_dim if state else 0
    if kda:  # kimi-linear's KDA: Q, K and V conv windows (3 by default), a head x head state
        n_head = inventory.attention.n_head[0] if inventory.attention.n_head else 0
        return 3 * (d_conv - 1 if d_conv > 0 else 3) * kda * n_head, kda * kda * n_head
    # Mamba-style conv state (the first column is shifted out) and SSM state
    n_conv = (d_conv - 1 if d_conv > 0 else 0) * (d_inner + 2 * n_group * d_state)
    return n_conv, d_state * d_inner
