"""The per-layer hyperparameters llama.cpp derives from a model, as far as memory needs them.

``llama_model_base::load_hparams`` plus each architecture's ``load_arch_hparams`` turn GGUF
metadata into ``llama_hparams``: KV heads and head widths per layer, which layers use a
sliding window (and its size), MLA, MTP ("nextn") layers, layers without their own KV. This
module reproduces the parts the memory model reads, from an ``Inventory``'s fields and its
metadata, and refuses architectures whose memory layout it does not model.

Architecture facts (pinned ``src/models/*.cpp``) live in the tables below; everything else
is generic and reads the metadata keys gguf-py names (``gguf.Keys``).
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from importlib import resources

from gguf import Keys
from pydantic import BaseModel, ConfigDict

from solver.errors import BadInput
from solver.inventory import Inventory


class MemoryKind(StrEnum):
    """Which ``llama_memory_i`` ``llama_model::create_memory`` builds for the architecture."""

    NONE = "none"  # embedding / diffusion models: no KV cache at all
    KV = "kv"  # llama_kv_cache
    ISWA = "iswa"  # llama_kv_cache_iswa: a full cache plus a sliding-window cache


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
    {"minimax-m3", "glm-dsa", "deepseek32", "hy_v4", "dots3note", "dflash", "gemma4-assistant",
     "eagle3", "t5", "t5encoder", "clip"}
)  # fmt: skip

# Architectures whose loaders skip the MTP/NextN layers' tensors unless --spec-type draft-mtp
# asks for them (``mtp_flags |= TENSOR_SKIP`` when !ml.load_mtp).
MTP_SKIPPING_ARCHS = frozenset(
    {"deepseek32", "qwen4exp", "deepseek2", "qwen3next", "step35", "glm5-next", "deepseek4",
     "bailingmoe3", "cohere2moe", "qwen35moe", "nemotron_h_moe", "hy_v3", "glm-dsa",
     "glm4moe", "qwen35", "mimo2"}
)  # fmt: skip


class SwaRule(BaseModel):
    """How an architecture's loader sets up sliding-window attention."""

    model_config = ConfigDict(frozen=True)

    pattern: int = 0  # load_swa_pattern(ml, pattern, dense_first); 0 = read the array
    dense_first: bool = False
    default_window: int = 0  # n_swa before the metadata is read
    needs_window: bool = True  # SWA only if the sliding_window key is present and > 0
    chunked: bool = False


# From each architecture's load_arch_hparams (pinned src/models/<arch>.cpp).
SWA_RULES: dict[str, SwaRule] = {
    "gemma2": SwaRule(pattern=2, default_window=4096, needs_window=False),
    "gemma3": SwaRule(pattern=6),
    "gemma3n": SwaRule(pattern=5, needs_window=False),
    "gemma4": SwaRule(pattern=0, needs_window=False),
    "gpt-oss": SwaRule(pattern=2, needs_window=False),
    "cohere2": SwaRule(pattern=4, needs_window=False),
    "cohere2moe": SwaRule(pattern=4, dense_first=True, needs_window=False),
    "olmo2": SwaRule(pattern=4),
    "afmoe": SwaRule(pattern=4),
    "mellum": SwaRule(pattern=4),
    "laguna": SwaRule(pattern=4, dense_first=True),
    "smallthinker": SwaRule(pattern=4, dense_first=True),
    "plamo3": SwaRule(pattern=8),
    "muse-glimmer": SwaRule(pattern=4, needs_window=False),
    "exaone-moe": SwaRule(pattern=4, default_window=128, needs_window=False),
    "granite_swa": SwaRule(pattern=0, needs_window=False),
    "maple": SwaRule(pattern=0, needs_window=False),
    "mimo2": SwaRule(pattern=0, needs_window=False),
    "step35": SwaRule(pattern=0, needs_window=False),
    "llama4": SwaRule(pattern=4, default_window=8192, needs_window=False, chunked=True),
    "exaone4": SwaRule(pattern=4, default_window=4096, needs_window=False),  # 64-layer only
}

# Architectures that read a sliding window in a way this module does not reproduce.
SWA_UNMODELLED_ARCHS = frozenset({"spark2_5"})


class LayerAttention(BaseModel):
    """Attention geometry of one layer as ``llama_hparams`` reports it."""

    model_config = ConfigDict(frozen=True)

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
    """What the memory model needs from ``llama_hparams``, layer by layer."""

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
    is_mla: bool
    n_layer_kv_from_start: int = -1

    @property
    def n_layer(self) -> int:
        """Trunk layers: n_layer_all - n_layer_nextn."""
        return self.n_layer_all - self.n_layer_nextn

    def layer_has_kv(self, il: int) -> bool:
        """has_kv(il) and the create_memory layer filter (MTP layers are not in the cache)."""
        if 0 <= self.n_layer_kv_from_start <= il:
            return False
        return not (self.n_layer_nextn > 0 and self.n_layer > 0 and il >= self.n_layer)

    @property
    def v_width_max(self) -> int:
        """n_embd_v_gqa_max(): the V row width when V is stored transposed."""
        return max(layer.v_width for layer in self.layers)

    @property
    def skips_mtp_tensors(self) -> bool:
        return self.n_layer_nextn > 0 and self.arch in MTP_SKIPPING_ARCHS


@cache
def known_architectures() -> frozenset[str]:
    """Architecture names the pinned llama.cpp accepts (``LLM_ARCH_NAMES``)."""
    text = resources.files("data").joinpath("llama_archs.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def _meta(inventory: Inventory, key_template: str, default: object = None) -> object:
    return inventory.metadata.get(key_template.format(arch=inventory.architecture), default)


def _int_meta(inventory: Inventory, key_template: str, default: int) -> int:
    value = _meta(inventory, key_template)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return int(value)


def memory_kind(arch: str, has_swa: bool) -> MemoryKind:
    """The memory module llama.cpp builds, or ``BadInput`` when fit does not model it."""
    if arch not in known_architectures():
        raise BadInput(f"unknown model architecture '{arch}': llama.cpp would refuse to load it")
    if arch in NO_MEMORY_ARCHS:
        return MemoryKind.NONE
    if arch in RECURRENT_ARCHS or arch in HYBRID_ARCHS:
        raise BadInput(f"architecture '{arch}' keeps recurrent state; fit does not model it yet")
    if arch in SPECIAL_MEMORY_ARCHS:
        raise BadInput(f"architecture '{arch}' has its own KV cache type; fit does not model it")
    return MemoryKind.ISWA if has_swa else MemoryKind.KV


def _swa_layers(inventory: Inventory, n_layer_all: int, n_layer: int) -> tuple[int, list[bool]]:
    """(n_swa, is_swa per layer) as the architecture's loader sets them."""
    arch = inventory.architecture
    window_value = _meta(inventory, Keys.Attention.SLIDING_WINDOW)
    window_found = isinstance(window_value, int | float) and not isinstance(window_value, bool)
    pattern_value = _meta(inventory, Keys.Attention.SLIDING_WINDOW_PATTERN)
    rule = SWA_RULES.get(arch)
    if arch in SWA_UNMODELLED_ARCHS:
        raise BadInput(f"sliding-window layout of architecture '{arch}' is not modelled")
    if rule is None:  # llama.cpp ignores the window key for all other architectures
        return 0, [False] * n_layer_all
    n_swa = int(window_value) if window_found else rule.default_window
    if arch == "llama4":  # llama4: sliding_window == 0 disables chunking; else fixed 8192
        if window_found and int(window_value) == 0:
            return 0, [False] * n_layer_all
        n_swa = rule.default_window
    if (arch == "exaone4" and n_layer != 64) or (rule.needs_window and n_swa <= 0):
        return 0, [False] * n_layer_all
    if isinstance(pattern_value, list):  # per-layer array wins (load_swa_pattern)
        flags = [bool(x) for x in pattern_value][:n_layer_all]
        flags += [False] * (n_layer_all - len(flags))
        return n_swa, flags
    if rule.pattern == 0:
        raise BadInput(
            f"{inventory.source}: architecture '{arch}' needs the per-layer "
            f"{Keys.Attention.SLIDING_WINDOW_PATTERN.format(arch=arch)} array"
        )
    n_pattern = int(pattern_value) if isinstance(pattern_value, int) else rule.pattern
    flags = []
    for il in range(n_layer_all):
        if il >= n_layer:
            flags.append(False)  # set_swa_pattern: MTP layers are never SWA
        elif rule.dense_first:
            flags.append(n_pattern == 0 or il % n_pattern != 0)
        else:
            flags.append(n_pattern == 0 or il % n_pattern < n_pattern - 1)
    return n_swa, flags


def model_hparams(inventory: Inventory) -> ModelHparams:
    """Derive the memory-relevant ``llama_hparams`` of a model."""
    arch = inventory.architecture
    n_layer_all = inventory.n_layers
    n_layer_nextn = _int_meta(inventory, Keys.LLM.NEXTN_PREDICT_LAYERS, 0)
    n_layer = n_layer_all - n_layer_nextn
    n_swa, swa_flags = _swa_layers(inventory, n_layer_all, n_layer)
    kind = memory_kind(arch, has_swa=any(swa_flags))

    attention = inventory.attention
    n_head = list(attention.n_head) or [0] * n_layer_all
    n_head_kv = list(attention.n_head_kv) or n_head
    if len(n_head) == 1:
        n_head *= n_layer_all
    if len(n_head_kv) == 1:
        n_head_kv *= n_layer_all
    head_k_full = attention.key_length
    head_v_full = attention.value_length
    if n_head and n_head[0] > 0:  # llama.cpp defaults both to n_embd / n_head()
        head_k_full = head_k_full or inventory.n_embd // n_head[0]
        head_v_full = head_v_full or inventory.n_embd // n_head[0]
    head_k_swa = _int_meta(inventory, Keys.Attention.KEY_LENGTH_SWA, head_k_full)
    head_v_swa = _int_meta(inventory, Keys.Attention.VALUE_LENGTH_SWA, head_v_full)
    layers = tuple(
        LayerAttention(
            n_head_kv=n_head_kv[il],
            head_k=head_k_swa if swa_flags[il] else head_k_full,
            head_v=head_v_swa if swa_flags[il] else head_v_full,
            is_swa=swa_flags[il],
        )
        for il in range(n_layer_all)
    )
    is_mla = (
        _int_meta(inventory, Keys.Attention.KEY_LENGTH_MLA, 0) != 0
        and _int_meta(inventory, Keys.Attention.VALUE_LENGTH_MLA, 0) != 0
    )
    n_layer_kv_from_start = -1
    if arch == "gemma3n":
        n_layer_kv_from_start = 20
    elif arch == "gemma4":
        shared = _int_meta(inventory, Keys.Attention.SHARED_KV_LAYERS, 0)
        n_layer_kv_from_start = n_layer_all - shared
    causal = _meta(inventory, Keys.Attention.CAUSAL, True)
    return ModelHparams(
        arch=arch,
        n_layer_all=n_layer_all,
        n_layer_nextn=n_layer_nextn,
        n_embd=inventory.n_embd,
        n_vocab=inventory.n_vocab,
        n_ctx_train=inventory.context_length,
        causal_attn=bool(causal) and arch not in ("dream", "llada", "llada-moe", "gemma-embedding"),
        memory=kind,
        n_swa=n_swa,
        layers=layers,
        is_mla=is_mla,
        n_layer_kv_from_start=n_layer_kv_from_start,
    )
