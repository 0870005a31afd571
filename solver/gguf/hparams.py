"""Hyperparameters of a model, derived from GGUF metadata the way llama.cpp derives them.

Most facts are read generically through gguf-py's key templates (``{arch}.block_count``,
``{arch}.attention.head_count``...), exactly as ``llama_model_base::load_hparams`` in
``src/llama-model.cpp`` of the pinned llama.cpp reads them: scalars or per-layer arrays, K/V
head sizes defaulting to ``n_embd / n_head``, ``n_head_kv`` defaulting to ``n_head``.

A few facts llama.cpp hardcodes per architecture in ``load_arch_hparams``
(``src/models/<arch>.cpp``) instead of storing them in the GGUF: which layers use the sliding
window and with what default pattern, which layers of a hybrid model are recurrent, default
window sizes, shared-KV layers, which layers run a DSA lightning indexer. They live in
``ARCH_FACTS`` below, one row per architecture, each citing its source.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any

from gguf import Keys, LlamaFileType
from pydantic import ValidationError

from solver.datafiles import data_path
from solver.errors import BadInput
from solver.gguf.inventory import (
    Attention,
    Experts,
    Inventory,
    Recurrent,
    Tensor,
    TensorGroup,
)
from solver.gguf.newer_names import KpoolKeys

# llama-hparams.h: LLAMA_MAX_LAYERS, LLAMA_MAX_EXPERTS.
MAX_LAYERS = 512
MAX_EXPERTS = 1024
_U32_LIMIT = 1 << 32

# Keys of the pinned llama.cpp (src/llama-arch.cpp LLM_KV_NAMES) that gguf-py 0.19 lacks.
RECURRENT_LAYERS_KEY = "{arch}.attention.recurrent_layers"

# llama.h llama_ftype values newer than the installed gguf-py's LlamaFileType.
_NEWER_FILE_TYPES = {41: "Q2_0"}


class SwaWhen(StrEnum):
    """When an architecture turns sliding-window attention on (its ``load_arch_hparams``)."""

    ALWAYS = "always"  # swa_type set unconditionally, pattern via load_swa_pattern
    IF_WINDOW = "if_window"  # only if {arch}.attention.sliding_window is present and > 0
    UNLESS_WINDOW_ZERO = "unless_window_zero"  # llama4: on unless the window key says 0
    IF_64_LAYERS = "if_64_layers"  # exaone4: only the 32B (64 layers) has SWA
    PATTERN_ARRAY = "pattern_array"  # per-layer bool array key is required
    ALL_LAYERS = "all_layers"  # set_swa_pattern(0): every non-MTP layer
    NON_RECURRENT = "non_recurrent"  # lfm2: attention layers are the SWA layers, if window > 0
    NEVER = "never"  # phi3: window in the GGUF is ignored


class IndexerWhen(StrEnum):
    """Which trunk layers of a DSA model run their own lightning indexer (is_indexer_full)."""

    EVERY_LAYER = "every_layer"  # deepseek32
    TYPES = "types"  # glm5-next: {arch}.attention.indexer.types (one per trunk layer), else all
    # glm-dsa: {arch}.attention.indexer.types (one per trunk layer), else every layer below
    # GLM-5.2's context (GLM-5, 5.1) and GLM_5_2_DEFAULT_INDEXER_TYPES from it
    GLM_TYPES = "glm_types"


# glm-dsa.cpp: is_pre_5_2 = n_ctx_train < 1048576; GLM_5_2_DEFAULT_INDEXER_TYPES (GLM-5.2's
# config.json) is full on layers 0 and 1, then on every fourth layer from 2, of its first 78
GLM_5_2_CONTEXT = 1048576
GLM_5_2_TYPED_LAYERS = 78


class RecurrentWhen(StrEnum):
    """How a (hybrid) recurrent architecture marks its recurrent layers."""

    ALL = "all"  # llm_arch_is_recurrent, or every layer (falcon-h1)
    NO_KV_HEADS = "no_kv_heads"  # layer il < n_layer() with n_head_kv(il) == 0
    NO_KV_HEADS_NO_FFN = "no_kv_heads_no_ffn"  # nemotron-h: n_head_kv == 0 and n_ff == 0
    INTERVAL = "interval"  # recurrent_layers array, else every layer but each interval-th


@dataclass(frozen=True)
class ArchFacts:
    """What llama.cpp hardcodes for one architecture; ``source`` names the function."""

    source: str
    swa_when: SwaWhen | None = None
    swa_type: str = "standard"
    swa_pattern: int = 0  # default n_pattern given to load_swa_pattern
    swa_dense_first: bool = False
    default_window: int = 0  # n_swa before the window key is read
    forced_window: int = 0  # n_swa set after the key, whatever the GGUF says
    recurrent_when: RecurrentWhen | None = None
    full_attention_interval: int = 0
    default_shared_experts: int = 0
    n_layer_kv_from_start: int = -1  # fixed count of layers owning a KV cache
    kv_shared_by_key: bool = False  # n_layer - {arch}.attention.shared_kv_layers own KV
    value_length_is_kv_lora_rank: bool = False  # MLA cache holds the compressed latent
    one_expert_is_dense: bool = False  # expert_count <= 1 means no experts at all
    indexer_when: IndexerWhen | None = None  # DSA: the layers with a full lightning indexer


def _swa(source: str, when: SwaWhen, pattern: int = 0, **kw: Any) -> ArchFacts:
    return ArchFacts(source=source, swa_when=when, swa_pattern=pattern, **kw)


def _recurrent(source: str, when: RecurrentWhen, **kw: Any) -> ArchFacts:
    return ArchFacts(source=source, recurrent_when=when, **kw)


_AW, _IW = SwaWhen.ALWAYS, SwaWhen.IF_WINDOW
_PA = SwaWhen.PATTERN_ARRAY
_KV0 = RecurrentWhen.NO_KV_HEADS

# Keyed by the architecture name in general.architecture (src/llama-arch.cpp LLM_ARCH_NAMES).
# Every source is src/models/<file>.cpp, llama_model_<arch>::load_arch_hparams, unless noted.
ARCH_FACTS: dict[str, ArchFacts] = {
    # sliding-window attention
    "afmoe": _swa("afmoe.cpp", _IW, 4),
    "cohere2": _swa("cohere2.cpp", _AW, 4),
    "cohere2moe": _swa("cohere2moe.cpp", _AW, 4, swa_dense_first=True),
    "exaone-moe": _swa("exaone-moe.cpp", _AW, 4, default_window=128),
    "exaone4": _swa("exaone4.cpp", SwaWhen.IF_64_LAYERS, 4, default_window=4096),
    "gemma-embedding": _swa("gemma-embedding.cpp", _AW, 6, swa_type="symmetric"),
    "gemma2": _swa("gemma2.cpp", _AW, 2, default_window=4096),
    "gemma3": _swa("gemma3.cpp", _IW, 6),
    "gemma3n": _swa("gemma3n.cpp", _AW, 5, n_layer_kv_from_start=20),
    "gemma4": _swa("gemma4.cpp", _PA, kv_shared_by_key=True),
    "gemma4-assistant": _swa("gemma4-assistant.cpp", _PA, kv_shared_by_key=True),
    "laguna": _swa("laguna.cpp", _IW, 4, swa_dense_first=True, default_shared_experts=1),
    "llama4": _swa(
        "llama4.cpp", SwaWhen.UNLESS_WINDOW_ZERO, 4, swa_type="chunked", forced_window=8192
    ),
    "mellum": _swa("mellum.cpp", _IW, 4),
    "modern-bert": _swa("modern-bert.cpp", _IW, 3, swa_dense_first=True, swa_type="symmetric"),
    "muse-glimmer": _swa("muse-glimmer.cpp", _AW, 4),
    "olmo2": _swa("olmo2.cpp", _IW, 4),
    "gpt-oss": _swa("openai-moe.cpp", _AW, 2),
    "phi3": _swa("phi3.cpp", SwaWhen.NEVER),
    "plamo3": _swa("plamo3.cpp", _IW, 8),
    "smallthinker": _swa("smallthinker.cpp", _IW, 4, swa_dense_first=True, forced_window=4096),
    "deepseek4": _swa("deepseek4.cpp", SwaWhen.ALL_LAYERS),
    "granite_swa": _swa("granite-swa.cpp", _PA),
    "step35": _swa("step35.cpp", _PA),
    "mimo2": _swa("mimo2.cpp", _PA),
    "dots3note": _swa("dots3note.cpp", _PA),
    "maple": _swa("maple.cpp", _PA),
    "spark2_5": _swa("spark2-5.cpp", _PA),
    # recurrent and hybrid (llm_arch_is_recurrent / llm_arch_is_hybrid in src/llama-arch.cpp)
    "mamba": _recurrent("llama-arch.cpp llm_arch_is_recurrent", RecurrentWhen.ALL),
    "mamba2": _recurrent("llama-arch.cpp llm_arch_is_recurrent", RecurrentWhen.ALL),
    "rwkv6": _recurrent("llama-arch.cpp llm_arch_is_recurrent", RecurrentWhen.ALL),
    "rwkv6qwen2": _recurrent("llama-arch.cpp llm_arch_is_recurrent", RecurrentWhen.ALL),
    "rwkv7": _recurrent("llama-arch.cpp llm_arch_is_recurrent", RecurrentWhen.ALL),
    "arwkv7": _recurrent("llama-arch.cpp llm_arch_is_recurrent", RecurrentWhen.ALL),
    "falcon-h1": _recurrent("falcon-h1.cpp", RecurrentWhen.ALL),
    "jamba": _recurrent("jamba.cpp", _KV0),
    "granitehybrid": _recurrent("granite-hybrid.cpp", _KV0),
    "plamo2": _recurrent("plamo2.cpp", _KV0),
    "lfm2": ArchFacts("lfm2.cpp", swa_when=SwaWhen.NON_RECURRENT, recurrent_when=_KV0),
    "lfm2moe": _recurrent("lfm2moe.cpp", _KV0),
    "kimi-linear": _recurrent("kimi-linear.cpp", _KV0),
    "kimi-k3": _recurrent("kimi-k3.cpp", _KV0, value_length_is_kv_lora_rank=True),
    "glm5-next": _recurrent(
        "glm5-next.cpp", _KV0, value_length_is_kv_lora_rank=True, indexer_when=IndexerWhen.TYPES
    ),
    "bailingmoe3": _recurrent("bailingmoe3.cpp", _KV0),
    "nemotron_h": _recurrent("nemotron-h.cpp", RecurrentWhen.NO_KV_HEADS_NO_FFN),
    "nemotron_h_moe": _recurrent("nemotron-h.cpp (inherited)", RecurrentWhen.NO_KV_HEADS_NO_FFN),
    "qwen3next": _recurrent("qwen3next.cpp", RecurrentWhen.INTERVAL, full_attention_interval=4),
    "qwen35": _recurrent("qwen35.cpp", RecurrentWhen.INTERVAL, full_attention_interval=4),
    "qwen35moe": _recurrent("qwen35moe.cpp", RecurrentWhen.INTERVAL, full_attention_interval=4),
    "qwen4exp": _recurrent("qwen4exp.cpp", RecurrentWhen.INTERVAL, full_attention_interval=4),
    "minimax-01": _recurrent("minimax-01.cpp", RecurrentWhen.INTERVAL, full_attention_interval=8),
    # DSA lightning indexers
    "deepseek32": ArchFacts("deepseek32.cpp", indexer_when=IndexerWhen.EVERY_LAYER),
    "glm-dsa": ArchFacts("glm-dsa.cpp", indexer_when=IndexerWhen.GLM_TYPES),
    # mixture of experts (llama-model.cpp llama_model_base::load_hparams)
    "hunyuan_vl": ArchFacts("llama-model.cpp load_hparams", one_expert_is_dense=True),
    "hunyuan-dense": ArchFacts("llama-model.cpp load_hparams", one_expert_is_dense=True),
}

_NO_FACTS = ArchFacts(source="generic load_hparams only")


@cache
def llama_architectures() -> frozenset[str]:
    """Architecture names the pinned llama.cpp knows (``data/llama_archs.json``)."""
    with open(data_path("llama_archs.json"), encoding="utf-8") as handle:
        names = json.load(handle)["names"]
    # "(unknown)" is llama.cpp's placeholder, not a model architecture.
    return frozenset(name for name in names if name != "(unknown)")


def file_type_label(value: object) -> str:
    """``general.file_type`` as a quant label: 15 -> ``Q4_K_M``; '' if absent or guessed."""
    if not isinstance(value, int) or isinstance(value, bool):
        return ""
    if value in _NEWER_FILE_TYPES:
        return _NEWER_FILE_TYPES[value]
    try:
        file_type = LlamaFileType(value)
    except ValueError:
        return f"ftype {value}"
    if file_type == LlamaFileType.GUESSED:
        return ""
    return file_type.name.removeprefix("MOSTLY_").removeprefix("ALL_")


class _Meta:
    """Typed access to one model's metadata; every problem is a ``BadInput`` naming it."""

    def __init__(self, source: str, metadata: Mapping[str, Any], arch: str) -> None:
        self.source = source
        self.metadata = metadata
        self.arch = arch

    def key(self, template: str) -> str:
        return template.format(arch=self.arch)

    def bad(self, problem: str) -> BadInput:
        return BadInput(f"{self.source}: {problem}")

    def has(self, template: str) -> bool:
        return self.key(template) in self.metadata

    def uint(self, template: str, default: int | None = None) -> int:
        key = self.key(template)
        if key not in self.metadata:
            if default is None:
                raise self.bad(f"missing metadata key {key!r}")
            return default
        return self._check_uint(key, self.metadata[key])

    def _check_uint(self, key: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.bad(f"metadata {key!r} should be an unsigned integer, not {value!r:.40}")
        if not 0 <= value < _U32_LIMIT:
            raise self.bad(f"metadata {key!r} = {value} is out of range")
        return value

    def per_layer(self, template: str, n_layers: int, default: Sequence[int]) -> tuple[int, ...]:
        """A ``get_key_or_arr`` value: one int for all layers or an array of ``n_layers``."""
        key = self.key(template)
        if key not in self.metadata:
            return tuple(default)
        value = self.metadata[key]
        if isinstance(value, list):
            if len(value) != n_layers:
                raise self.bad(f"metadata {key!r} has {len(value)} entries for {n_layers} layers")
            return tuple(self._check_uint(key, item) for item in value)
        return (self._check_uint(key, value),) * n_layers

    def flags(self, template: str, n_layers: int) -> tuple[bool, ...] | None:
        """A per-layer bool array (``get_arr`` into a layer array); None if absent or scalar."""
        key = self.key(template)
        value = self.metadata.get(key)
        if not isinstance(value, list):
            return None
        if len(value) > n_layers:
            raise self.bad(f"metadata {key!r} has {len(value)} entries for {n_layers} layers")
        flags = [bool(item) for item in value]
        return tuple(flags + [False] * (n_layers - len(flags)))


def build_inventory(
    source: str,
    metadata: Mapping[str, Any],
    tensors: Sequence[Tensor],
    *,
    files: Sequence[str] = (),
    header_bytes: int = 0,
    bytes_read: int = 0,
    file_bytes: int = 0,
) -> Inventory:
    """Turn a model's metadata and tensor list into an ``Inventory``.

    ``source`` names the model in errors. Raises ``BadInput`` if the architecture is not one
    the pinned llama.cpp knows or the metadata is missing or contradicts itself.
    """
    arch = metadata.get(Keys.General.ARCHITECTURE)
    if not isinstance(arch, str) or not arch:
        raise BadInput(f"{source}: no {Keys.General.ARCHITECTURE} in the metadata")
    if arch == "clip":
        raise BadInput(
            f"{source}: is a multimodal projector (mmproj, architecture 'clip'), not a model; "
            "inspect the main model GGUF"
        )
    if arch not in llama_architectures():
        raise BadInput(f"{source}: architecture {arch!r} is not one the pinned llama.cpp knows")
    meta = _Meta(source, metadata, arch)
    facts = ARCH_FACTS.get(arch, _NO_FACTS)

    n_layers = meta.uint(Keys.LLM.BLOCK_COUNT)
    if not 0 < n_layers <= MAX_LAYERS:
        raise meta.bad(f"block_count {n_layers} is outside [1, {MAX_LAYERS}]")
    n_nextn = meta.uint(Keys.LLM.NEXTN_PREDICT_LAYERS, 0)
    if n_nextn > n_layers:
        raise meta.bad(f"nextn_predict_layers {n_nextn} exceeds block_count {n_layers}")
    _check_tensor_layers(meta, tensors, n_layers)

    attention = _attention(meta, facts, n_layers, n_nextn)
    recurrent = _recurrent_state(meta, facts, n_layers, n_nextn, attention)
    if recurrent is not None and facts.swa_when == SwaWhen.NON_RECURRENT:
        attention = _swa_on_attention_layers(meta, attention, recurrent, n_layers - n_nextn)
    try:
        return Inventory(
            source=source,
            architecture=arch,
            name=_string(metadata.get(Keys.General.NAME)),
            file_type=file_type_label(metadata.get(Keys.General.FILE_TYPE)),
            n_layers=n_layers,
            n_layers_nextn=n_nextn,
            n_embd=meta.uint(Keys.LLM.EMBEDDING_LENGTH),
            n_vocab=_vocab_size(meta, tensors),
            context_length=meta.uint(Keys.LLM.CONTEXT_LENGTH),
            n_ff=_dense_ffn_widths(meta, tensors, n_layers),
            attention=attention,
            experts=_experts(meta, facts, tensors, n_layers),
            recurrent=recurrent,
            metadata=dict(metadata),
            tensors=tuple(tensors),
            files=tuple(files),
            header_bytes=header_bytes,
            bytes_read=bytes_read,
            file_bytes=file_bytes,
        )
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise meta.bad(f"metadata does not make a valid model ({where}: {first['msg']})") from None


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


def _check_tensor_layers(meta: _Meta, tensors: Sequence[Tensor], n_layers: int) -> None:
    for tensor in tensors:
        if tensor.layer is not None and tensor.layer >= n_layers:
            raise meta.bad(
                f"tensor {tensor.name!r} belongs to layer {tensor.layer} "
                f"but block_count is {n_layers}"
            )


def _vocab_size(meta: _Meta, tensors: Sequence[Tensor]) -> int:
    """``{arch}.vocab_size``, else the tokenizer's token count, else token_embd's rows."""
    if meta.has(Keys.LLM.VOCAB_SIZE):
        return meta.uint(Keys.LLM.VOCAB_SIZE)
    tokens = meta.metadata.get(Keys.Tokenizer.LIST)
    if isinstance(tokens, list):
        return len(tokens)
    if isinstance(tokens, int) and not isinstance(tokens, bool):
        return tokens
    for tensor in tensors:
        if tensor.role == "token_embd" and len(tensor.shape) >= 2:
            return tensor.shape[1]
    return 0


def _dense_ffn_widths(meta: _Meta, tensors: Sequence[Tensor], n_layers: int) -> tuple[int, ...]:
    """feed_forward_length per layer, 0 where the layer has no dense FFN tensors (MoE)."""
    widths = meta.per_layer(Keys.LLM.FEED_FORWARD_LENGTH, n_layers, (0,) * n_layers)
    if not tensors:
        return widths
    dense = {t.layer for t in tensors if t.group == TensorGroup.FFN_DENSE}
    return tuple(width if layer in dense else 0 for layer, width in enumerate(widths))


def _experts(meta: _Meta, facts: ArchFacts, tensors: Sequence[Tensor], n_layers: int) -> Experts:
    count = meta.uint(Keys.LLM.EXPERT_COUNT, 0)
    if count > MAX_EXPERTS:
        raise meta.bad(f"expert_count {count} exceeds llama.cpp's {MAX_EXPERTS}")
    used = max(meta.per_layer(Keys.LLM.EXPERT_USED_COUNT, n_layers, (0,)), default=0)
    if facts.one_expert_is_dense and count <= 1:
        count = used = 0
    if used > count:
        raise meta.bad(f"expert_used_count {used} exceeds expert_count {count}")
    # Graphs with shared-expert tensors build one shared FFN; older GGUFs omit the count.
    has_shared = any(t.group == TensorGroup.FFN_SHARED_EXPERTS for t in tensors)
    shared_default = facts.default_shared_experts or (1 if has_shared else 0)
    shared = meta.uint(Keys.LLM.EXPERT_SHARED_COUNT, shared_default)
    expert_width = max(
        meta.per_layer(Keys.LLM.EXPERT_FEED_FORWARD_LENGTH, n_layers, (0,)), default=0
    )
    # Without the key, the shared FFN is n_ff_exp * n_expert_shared wide, as deepseek2.cpp
    # (and the bailingmoe3/laguna fallbacks) create the ffn_*_shexp tensors.
    shared_width = meta.uint(Keys.LLM.EXPERT_SHARED_FEED_FORWARD_LENGTH, expert_width * shared)
    return Experts(
        count=count,
        used=used,
        shared=shared,
        leading_dense_layers=meta.uint(Keys.LLM.LEADING_DENSE_BLOCK_COUNT, 0),
        feed_forward_length=expert_width,
        shared_feed_forward_length=shared_width,
    )


def _attention(meta: _Meta, facts: ArchFacts, n_layers: int, n_nextn: int) -> Attention:
    """Head counts and sizes (llama_model_base::load_hparams), then the SWA layers."""
    n_head = meta.per_layer(Keys.Attention.HEAD_COUNT, n_layers, (0,) * n_layers)
    n_head_kv = meta.per_layer(Keys.Attention.HEAD_COUNT_KV, n_layers, n_head)
    n_embd = meta.uint(Keys.LLM.EMBEDDING_LENGTH)
    head0 = n_head[0]
    key_length = value_length = rope_dim = 0
    if head0 > 0:
        key_length = meta.uint(Keys.Attention.KEY_LENGTH, n_embd // head0)
        value_length = meta.uint(Keys.Attention.VALUE_LENGTH, n_embd // head0)
        rope_dim = meta.uint(Keys.Rope.DIMENSION_COUNT, key_length)
    kv_lora_rank = meta.uint(Keys.Attention.KV_LORA_RANK, 0)
    if facts.value_length_is_kv_lora_rank:
        value_length = kv_lora_rank
    swa_type, window, swa_layers = _sliding_window(meta, facts, n_layers, n_layers - n_nextn)
    return Attention(
        n_head=n_head,
        n_head_kv=n_head_kv,
        key_length=key_length,
        value_length=value_length,
        sliding_window=window,
        swa_layers=swa_layers,
        swa_type=swa_type,
        kv_lora_rank=kv_lora_rank,
        q_lora_rank=meta.uint(Keys.Attention.Q_LORA_RANK, 0),
        rope_dim=rope_dim,
        key_length_mla=meta.uint(Keys.Attention.KEY_LENGTH_MLA, 0),
        value_length_mla=meta.uint(Keys.Attention.VALUE_LENGTH_MLA, 0),
        n_layer_kv_from_start=_kv_layers_from_start(meta, facts, n_layers),
        indexer_full=_indexer_full(meta, facts, n_layers - n_nextn),
    )


def _indexer_full(meta: _Meta, facts: ArchFacts, n_main: int) -> tuple[bool, ...]:
    """is_indexer_full per trunk layer (``IndexerWhen``; () without an indexer). glm-dsa's
    layer 0 must be full: a shared layer reuses an earlier full layer's top-k, and its graph
    asserts one."""
    when = facts.indexer_when
    if when is None:
        return ()
    key = meta.key(KpoolKeys.TYPES)
    value = meta.metadata.get(key)
    if when is IndexerWhen.EVERY_LAYER:
        full = (True,) * n_main
    elif isinstance(value, list):
        if len(value) != n_main:  # get_key_or_arr throws
            raise meta.bad(f"{key} has {len(value)} entries for {n_main} layers")
        full = tuple(bool(item) for item in value)
    elif when is IndexerWhen.TYPES or meta.uint(Keys.LLM.CONTEXT_LENGTH) < GLM_5_2_CONTEXT:
        full = (True,) * n_main
    else:
        full = tuple(il < GLM_5_2_TYPED_LAYERS and (il < 2 or il % 4 == 2) for il in range(n_main))
    if when is IndexerWhen.GLM_TYPES and full and not full[0]:
        raise meta.bad("layer 0's lightning indexer is shared, with no full layer before it")
    return full


def _kv_layers_from_start(meta: _Meta, facts: ArchFacts, n_layers: int) -> int:
    if facts.kv_shared_by_key:
        shared = meta.uint(Keys.Attention.SHARED_KV_LAYERS, 0)
        if shared > n_layers:
            raise meta.bad(f"shared_kv_layers {shared} exceeds block_count {n_layers}")
        return n_layers - shared
    return facts.n_layer_kv_from_start


def _sliding_window(
    meta: _Meta, facts: ArchFacts, n_layers: int, n_main: int
) -> tuple[str, int, tuple[bool, ...]]:
    """(swa_type, window, per-layer flags) as the architecture's load_arch_hparams sets them.

    Steps: 1. decide whether SWA is on (``facts.swa_when``); 2. read the window, applying the
    architecture's default or forced value; 3. pick the layers: an explicit bool array in
    ``{arch}.attention.sliding_window_pattern`` wins, else an integer pattern in that key,
    else the architecture's default pattern (llama_model_base::load_swa_pattern and
    llama_hparams::set_swa_pattern).
    """
    none: tuple[str, int, tuple[bool, ...]] = ("none", 0, ())  # () like Attention's default
    when = facts.swa_when
    has_window = meta.has(Keys.Attention.SLIDING_WINDOW)
    window = meta.uint(Keys.Attention.SLIDING_WINDOW, facts.default_window)
    if when is None or when in (SwaWhen.NEVER, SwaWhen.NON_RECURRENT):
        return none
    if when == SwaWhen.IF_WINDOW and window == 0:
        return none
    if when == SwaWhen.UNLESS_WINDOW_ZERO and has_window and window == 0:
        return none
    if when == SwaWhen.IF_64_LAYERS and n_main != 64:
        return none
    window = facts.forced_window or window
    if when == SwaWhen.ALL_LAYERS:
        return facts.swa_type, window, _swa_pattern(0, False, n_layers, n_main)
    explicit = meta.flags(Keys.Attention.SLIDING_WINDOW_PATTERN, n_layers)
    if explicit is not None:
        return facts.swa_type, window, explicit
    if when == SwaWhen.PATTERN_ARRAY:
        raise meta.bad(f"missing metadata key {meta.key(Keys.Attention.SLIDING_WINDOW_PATTERN)!r}")
    pattern = meta.uint(Keys.Attention.SLIDING_WINDOW_PATTERN, facts.swa_pattern)
    layers = _swa_pattern(pattern, facts.swa_dense_first, n_layers, n_main)
    return facts.swa_type, window, layers


def _swa_pattern(n_pattern: int, dense_first: bool, n_layers: int, n_main: int) -> tuple[bool, ...]:
    """llama_hparams::set_swa_pattern: every n_pattern-th layer is full attention."""
    flags = []
    for il in range(n_layers):
        if il >= n_main:
            flags.append(False)
        elif n_pattern == 0:
            flags.append(True)
        elif dense_first:
            flags.append(il % n_pattern != 0)
        else:
            flags.append(il % n_pattern < n_pattern - 1)
    return tuple(flags)


def _swa_on_attention_layers(
    meta: _Meta, attention: Attention, recurrent: Recurrent, n_main: int
) -> Attention:
    """lfm2: with a window > 0, every non-recurrent layer uses it."""
    window = meta.uint(Keys.Attention.SLIDING_WINDOW, 0)
    if window == 0:
        return attention
    layers = tuple(
        il < n_main and not is_recurrent
        for il, is_recurrent in enumerate(recurrent.recurrent_layers)
    )
    return attention.model_copy(
        update={"swa_type": "standard", "sliding_window": window, "swa_layers": layers}
    )


_SSM_KEYS = (
    Keys.SSM.CONV_KERNEL,
    Keys.SSM.INNER_SIZE,
    Keys.SSM.STATE_SIZE,
    Keys.SSM.TIME_STEP_RANK,
    Keys.SSM.GROUP_COUNT,
)


def _recurrent_state(
    meta: _Meta, facts: ArchFacts, n_layers: int, n_nextn: int, attention: Attention
) -> Recurrent | None:
    """SSM sizes and which layers are recurrent; None for a pure attention model."""
    when = facts.recurrent_when
    if when is None and not any(meta.has(key) for key in _SSM_KEYS):
        return None
    n_main = n_layers - n_nextn
    kv = attention.n_head_kv
    if when == RecurrentWhen.ALL:
        layers = (True,) * n_layers
    elif when == RecurrentWhen.NO_KV_HEADS:
        layers = tuple(il < n_main and kv[il] == 0 for il in range(n_layers))
    elif when == RecurrentWhen.NO_KV_HEADS_NO_FFN:
        n_ff = meta.per_layer(Keys.LLM.FEED_FORWARD_LENGTH, n_layers, (0,) * n_layers)
        layers = tuple(il < n_main and kv[il] == 0 and n_ff[il] == 0 for il in range(n_layers))
    elif when == RecurrentWhen.INTERVAL:
        layers = _interval_recurrent_layers(meta, facts, n_layers, n_main)
    else:
        layers = (False,) * n_layers
    return Recurrent(
        conv_kernel=meta.uint(Keys.SSM.CONV_KERNEL, 0),
        inner_size=meta.uint(Keys.SSM.INNER_SIZE, 0),
        state_size=meta.uint(Keys.SSM.STATE_SIZE, 0),
        time_step_rank=meta.uint(Keys.SSM.TIME_STEP_RANK, 0),
        group_count=meta.uint(Keys.SSM.GROUP_COUNT, 0),
        kda_head_dim=meta.uint(Keys.KDA.HEAD_DIM, 0),
        recurrent_layers=layers,
    )


def _interval_recurrent_layers(
    meta: _Meta, facts: ArchFacts, n_layers: int, n_main: int
) -> tuple[bool, ...]:
    """qwen3next/qwen35/minimax-01: an explicit array, else all but every interval-th layer."""
    key = meta.key(RECURRENT_LAYERS_KEY)
    if key in meta.metadata:
        value = meta.metadata[key]
        if not isinstance(value, list) or len(value) != n_layers:
            raise meta.bad(f"metadata {key!r} must be an array of {n_layers} flags")
        return tuple(bool(flag) for flag in value)
    interval = meta.uint(Keys.LLM.FULL_ATTENTION_INTERVAL, facts.full_attention_interval)
    if interval == 0:
        raise meta.bad("full_attention_interval is 0")
    return tuple(il < n_main and (il + 1) % interval != 0 for il in range(n_layers))
